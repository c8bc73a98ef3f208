/**
 * Local backing services for `npm run dev`, `npm test` and benchmarks.
 *
 * The one place that makes a real PostgreSQL (15+), Redis 7 and RabbitMQ
 * available on loopback. For each service it first probes the configured URL
 * (env `LOCAL_POSTGRES_URL`, `LOCAL_REDIS_URL`, `LOCAL_RABBITMQ_URL`, defaulting
 * to the standard local ports); only if nothing answers there does it start a
 * private server under `<dataDir>/<service>` on a free loopback port, recording
 * it in `<dataDir>/<service>/state.json` so later runs (and `down`) find it.
 *
 * CLI: `node scripts/stack.ts up [--data-dir DIR]`   prints the URLs as JSON, leaves servers running
 *      `node scripts/stack.ts down [--data-dir DIR]` stops servers recorded in DIR
 *
 * Only Node built-ins are used, so this works before/without any npm install.
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as tls from "node:tls";
import { fileURLToPath, pathToFileURL } from "node:url";

/** Where the local servers answer. */
export interface StackUrls {
  /** Admin URL, e.g. `postgres://postgres@127.0.0.1:5432/postgres`. */
  postgresUrl: string;
  /** e.g. `redis://127.0.0.1:6379`. */
  redisUrl: string;
  /** e.g. `amqp://guest:guest@127.0.0.1:5672` (default vhost, no trailing path). */
  rabbitmqUrl: string;
}

/** A usable set of local servers, plus a handle to stop the ones this call started. */
export interface Stack extends StackUrls {
  /** Names of servers this process started ("postgres" | "redis" | "rabbitmq"). */
  started: string[];
  /** Stops only what this call started (never reused or system servers). Idempotent. */
  stop(): Promise<void>;
}

/** Options for {@link ensureStack}. */
export interface EnsureStackOptions {
  /** Where own servers keep data, logs and state. Default `$LOCAL_STACK_DIR`, else `<repo>/.stack`. */
  dataDir?: string;
  /** Environment to read `LOCAL_*_URL` from. Default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Progress messages. Default: prefixed lines on stderr. */
  log?: (msg: string) => void;
  /** Prefer these ports when starting own servers; default: a free port each. */
  ports?: Partial<Record<Service, number>>;
}

type Service = "postgres" | "redis" | "rabbitmq";
const SERVICES: readonly Service[] = ["postgres", "redis", "rabbitmq"];

const ENV_KEYS: Record<Service, string> = {
  postgres: "LOCAL_POSTGRES_URL",
  redis: "LOCAL_REDIS_URL",
  rabbitmq: "LOCAL_RABBITMQ_URL",
};
const DEFAULT_URLS: Record<Service, string> = {
  postgres: "postgres://postgres@127.0.0.1:5432/postgres",
  redis: "redis://127.0.0.1:6379",
  rabbitmq: "amqp://guest:guest@127.0.0.1:5672",
};
const APT_PACKAGES: Record<Service, string> = {
  postgres: "postgresql",
  redis: "redis-server",
  rabbitmq: "rabbitmq-server",
};
const INSTALL_HINT = "sudo apt-get install postgresql redis-server rabbitmq-server";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const DEFAULT_DATA_DIR = path.join(REPO_ROOT, ".stack");
const MIN_PG_MAJOR = 15;

const defaultLog = (msg: string): void => {
  process.stderr.write(`[stack] ${msg}\n`);
};

// ---------------------------------------------------------------------------
// Protocol probes
// ---------------------------------------------------------------------------

/**
 * Protocol-level liveness probe: true only if a server of the URL's kind
 * answers there (a bare TCP accept is not enough, so a different service on
 * that port reads as "no"). Never throws.
 *
 * - `postgres://` / `postgresql://`: SSLRequest, expects 'S' or 'N'.
 * - `redis://` / `rediss://`: (AUTH if the URL has a password, then) PING, expects `+PONG`.
 * - `amqp://` / `amqps://`: AMQP 0-9-1 header, expects a Connection.Start frame.
 *
 * @param url server URL
 * @param timeoutMs whole-probe budget (connect + reply), default 1500 ms
 */
export async function answers(url: string, timeoutMs = 1500): Promise<boolean> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  const host = u.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1";
  const portOf = (dflt: number) => Number(u.port) || dflt;
  switch (u.protocol) {
    case "postgres:":
    case "postgresql:": {
      // SSLRequest: length 8, code 80877103. Any Postgres replies with one byte.
      const req = Buffer.alloc(8);
      req.writeInt32BE(8, 0);
      req.writeInt32BE(80877103, 4);
      return exchange(host, portOf(5432), false, req, pgVerdict, timeoutMs);
    }
    case "redis:":
    case "rediss:": {
      const parts: Buffer[] = [];
      if (u.password) {
        const user = decodeURIComponent(u.username);
        const pass = decodeURIComponent(u.password);
        parts.push(resp(user ? ["AUTH", user, pass] : ["AUTH", pass]));
      }
      parts.push(Buffer.from("PING\r\n"));
      return exchange(host, portOf(6379), u.protocol === "rediss:", Buffer.concat(parts), redisVerdict, timeoutMs);
    }
    case "amqp:":
    case "amqps:": {
      const header = Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 0, 9, 1]); // "AMQP" 0 0 9 1
      const secure = u.protocol === "amqps:";
      return exchange(host, portOf(secure ? 5671 : 5672), secure, header, amqpVerdict, timeoutMs);
    }
    default:
      return false;
  }
}

/** undefined = need more bytes. */
type Verdict = (buf: Buffer) => boolean | undefined;

const pgVerdict: Verdict = (b) => b[0] === 0x53 /* S */ || b[0] === 0x4e /* N */;

const redisVerdict: Verdict = (b) => {
  if (b[0] !== 0x2b /* + */ && b[0] !== 0x2d /* - */) return false;
  const lines = b.toString("latin1").split("\r\n");
  lines.pop(); // incomplete tail (or "" after the last CRLF)
  for (const line of lines) {
    if (line === "+PONG") return true;
    if (line !== "+OK") return false; // -NOAUTH, -ERR, anything unexpected
  }
  return undefined;
};

// Frame type 1 (method), channel 0, then class 10 / method 10 = Connection.Start.
const amqpVerdict: Verdict = (b) => {
  if (b[0] !== 1) return false; // e.g. "AMQP..." = protocol-version mismatch reply
  if (b.length < 11) return undefined;
  return b.readUInt16BE(7) === 10 && b.readUInt16BE(9) === 10;
};

function resp(args: string[]): Buffer {
  return Buffer.from(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`);
}

function exchange(
  host: string,
  port: number,
  secure: boolean,
  payload: Buffer,
  verdict: Verdict,
  timeoutMs: number,
): Promise<boolean> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    let done = false;
    const sock: net.Socket = secure
      ? tls.connect({ host, port, rejectUnauthorized: false, servername: net.isIP(host) ? undefined : host })
      : net.connect({ host, port });
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.once(secure ? "secureConnect" : "connect", () => sock.write(payload));
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const v = verdict(buf);
      if (v !== undefined) finish(v);
    });
    sock.on("error", () => finish(false));
    sock.on("close", () => finish(false));
  });
}

/** Sends bytes and waits until the server hangs up (used for Redis SHUTDOWN). */
function sendUntilClosed(port: number, payload: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    const timer = setTimeout(() => sock.destroy(), timeoutMs);
    sock.once("connect", () => sock.write(payload));
    sock.on("data", () => {});
    sock.on("error", () => {});
    sock.on("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// ---------------------------------------------------------------------------
// Small process / fs helpers
// ---------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const isRoot = () => process.getuid?.() === 0;

interface RunResult {
  code: number | null;
  out: string;
}

/** Runs a short-lived command, capturing (the last 64 KiB of) stdout+stderr. */
function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    let out = "";
    let settled = false;
    const settle = (code: number | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ code, out: out.slice(-65536) });
    };
    const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd ?? "/", stdio: ["ignore", "pipe", "pipe"] });
    const add = (d: Buffer) => {
      out = (out + d.toString()).slice(-131072);
    };
    child.stdout.on("data", add);
    child.stderr.on("data", add);
    const timer = setTimeout(() => {
      out += `\n[${cmd} timed out after ${opts.timeoutMs} ms]`;
      child.kill("SIGKILL");
    }, opts.timeoutMs ?? 120_000);
    child.on("error", (e) => {
      out += String(e);
      settle(-1);
    });
    child.on("close", (code) => settle(code));
  });
}

function which(name: string, extraDirs: string[] = []): string | undefined {
  const dirs = [
    ...(process.env.PATH ?? "").split(path.delimiter),
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
    ...extraDirs,
  ];
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/**
 * A process's state letter and process group from `/proc/<pid>/stat`, or undefined without procfs
 * (macOS) or once it is gone.
 */
function procStat(pid: number): { state: string; pgrp: number } | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "latin1");
    const [state = "", , pgrp = ""] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state, pgrp: Number(pgrp) };
  } catch {
    return undefined;
  }
}

/** Exited but not yet reaped: where init does not reap promptly (containers), a killed server lingers so. */
const isZombie = (pid: number) => ["Z", "X", "x"].includes(procStat(pid)?.state ?? "");

/** Whether `pid` is a running process: a zombie (exited, not reaped) is not. */
function pidAlive(pid: number | undefined): boolean {
  if (!pid || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  return !isZombie(pid);
}

/** Guards against pid reuse (e.g. after a reboot) before we signal a recorded pid. */
function pidLooksLike(pid: number, needle: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "latin1").includes(needle);
  } catch {
    return true; // no procfs (macOS) or hidepid: can't tell, trust the pid
  }
}

/** Whether any process of group `pgid` still runs (zombies do not count, as in {@link pidAlive}). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  let procs: string[];
  try {
    procs = fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return true; // no procfs: can't tell zombies apart
  }
  return procs.some((d) => {
    const st = procStat(Number(d));
    return st?.pgrp === pgid && !["Z", "X", "x"].includes(st.state);
  });
}

async function waitGone(alive: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (alive()) {
    if (Date.now() > end) return false;
    await sleep(100);
  }
  return true;
}

function readPidFile(file: string): number | undefined {
  try {
    const n = Number.parseInt(fs.readFileSync(file, "utf8").split("\n")[0]?.trim() ?? "", 10);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function tail(file: string, lines = 30): string {
  try {
    const text = fs.readFileSync(file, "utf8").trimEnd().split("\n");
    return `--- last ${Math.min(lines, text.length)} lines of ${file} ---\n${text.slice(-lines).join("\n")}`;
  } catch {
    return `(no log at ${file})`;
  }
}

/** Single-quote for /bin/sh (pg_ctl -o and su -c pass strings through a shell). */
const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

async function pickPort(svc: Service, preferred: number | undefined, log: (m: string) => void): Promise<number> {
  if (preferred) {
    if (await portFree(preferred)) return preferred;
    log(`${svc}: preferred port ${preferred} is busy, using a free one`);
  }
  return freePort();
}

async function waitAnswers(url: string, timeoutMs: number, died: () => string | undefined): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await answers(url, 1000)) return true;
    if (died() !== undefined || Date.now() > end) return false;
    await sleep(250);
  }
}

// ---------------------------------------------------------------------------
// State files and a cross-process start lock
// ---------------------------------------------------------------------------

interface BaseState {
  service: Service;
  url: string;
  port: number;
  pid: number;
  startedAt: string;
}
interface PgState extends BaseState {
  service: "postgres";
  pgdata: string;
  bindir: string;
  asPostgresUser: boolean;
}
interface RedisState extends BaseState {
  service: "redis";
  dir: string;
}
interface RabbitState extends BaseState {
  service: "rabbitmq";
  dir: string;
  /** Process group of the detached rabbitmq-server script (its pid). */
  pgid: number;
  nodename: string;
  distPort: number;
  epmdPort: number;
  ctl: string;
}
type State = PgState | RedisState | RabbitState;

const stateFile = (svcDir: string) => path.join(svcDir, "state.json");

function readState(svcDir: string): State | undefined {
  try {
    return JSON.parse(fs.readFileSync(stateFile(svcDir), "utf8")) as State;
  } catch {
    return undefined;
  }
}

function writeState(svcDir: string, st: State): void {
  const tmp = `${stateFile(svcDir)}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(st, null, 2)}\n`);
  fs.renameSync(tmp, stateFile(svcDir));
}

function removeState(svcDir: string): void {
  fs.rmSync(stateFile(svcDir), { force: true });
}

/** Parallel test workers / dev + test may call us at once: serialize "check state, maybe start" per service. */
async function withLock<T>(svcDir: string, fn: () => Promise<T>): Promise<T> {
  const lock = path.join(svcDir, ".lock");
  const end = Date.now() + 1_200_000; // the holder may be running apt-get install
  for (;;) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: "wx" });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const holder = readPidFile(lock);
      let age = 0;
      try {
        age = Date.now() - fs.statSync(lock).mtimeMs;
      } catch {}
      // Empty file = holder between create and write; only stale if that lasts.
      const stale = holder ? !pidAlive(holder) : age > 5000;
      if (stale || age > 1_800_000) fs.rmSync(lock, { force: true });
      else if (Date.now() > end) throw new Error(`timed out waiting for ${lock} (held by pid ${holder})`);
      else await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

// ---------------------------------------------------------------------------
// Installing missing packages (Debian/Ubuntu, root only)
// ---------------------------------------------------------------------------

let aptQueue: Promise<unknown> = Promise.resolve();
let aptUpdated = false;

/** apt/dpkg hold a global lock, so installs are queued; `apt-get update` runs once per process. */
function aptInstall(svc: Service, log: (m: string) => void, why: string): Promise<void> {
  const pkg = APT_PACKAGES[svc];
  const job = aptQueue.then(async () => {
    if (!isRoot()) {
      throw new Error(
        `${why}; not running as root, so not installing. Install the servers with: ${INSTALL_HINT} ` +
          `(or set ${ENV_KEYS[svc]} to a running server).`,
      );
    }
    const apt = which("apt-get");
    if (!apt)
      throw new Error(
        `${why}; apt-get is unavailable, install ${svc}${svc === "postgres" ? ` >= ${MIN_PG_MAJOR}` : ""} manually (or set ${ENV_KEYS[svc]} to a running server).`,
      );
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    if (!aptUpdated) {
      log("apt-get update (once) ...");
      const r = await run(apt, ["update"], { env, timeoutMs: 600_000 });
      if (r.code !== 0) throw new Error(`apt-get update failed (exit ${r.code}):\n${r.out.slice(-3000)}`);
      aptUpdated = true;
    }
    log(`${svc}: installing ${pkg} with apt-get (can take a minute) ...`);
    const r = await run(apt, ["install", "-y", "--no-install-recommends", pkg], { env, timeoutMs: 900_000 });
    if (r.code !== 0) throw new Error(`apt-get install ${pkg} failed (exit ${r.code}):\n${r.out.slice(-3000)}`);
  });
  aptQueue = job.catch(() => {});
  return job;
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

interface PgBins {
  bindir: string;
  major: number;
}

function findPostgres(preferMajor?: number): { found?: PgBins; tooOld: string[] } {
  const cands: PgBins[] = [];
  const tooOld: string[] = [];
  const complete = (dir: string) => ["initdb", "pg_ctl", "postgres"].every((b) => isExecutable(path.join(dir, b)));
  // Debian/Ubuntu: versioned dirs, not on PATH.
  try {
    for (const v of fs.readdirSync("/usr/lib/postgresql")) {
      const dir = `/usr/lib/postgresql/${v}/bin`;
      const major = Number.parseInt(v, 10);
      if (!Number.isFinite(major) || !complete(dir)) continue;
      if (major >= MIN_PG_MAJOR) cands.push({ bindir: dir, major });
      else tooOld.push(`${major} (${dir})`);
    }
  } catch {}
  // Elsewhere (Homebrew, Fedora, source builds): pg_ctl on PATH.
  const onPath = which("pg_ctl");
  if (onPath) {
    const dir = path.dirname(fs.realpathSync(onPath));
    const vOut = complete(dir) ? spawnVersion(path.join(dir, "postgres")) : "";
    const major = Number.parseInt(/\(PostgreSQL\)\s+(\d+)/.exec(vOut)?.[1] ?? "", 10);
    if (Number.isFinite(major)) {
      if (major >= MIN_PG_MAJOR) cands.push({ bindir: dir, major });
      else tooOld.push(`${major} (${dir})`);
    }
  }
  cands.sort((a, b) => b.major - a.major);
  // An existing data dir must be served by its own major version.
  const found = cands.find((c) => c.major === preferMajor) ?? cands[0];
  return { found, tooOld };
}

function spawnVersion(bin: string): string {
  try {
    // Synchronous on purpose: only used during discovery, takes milliseconds.
    return execFileSync(bin, ["--version"], { encoding: "utf8", timeout: 5000 });
  } catch {
    return "";
  }
}

async function ensurePostgresUser(log: (m: string) => void): Promise<void> {
  if ((await run("id", ["-u", "postgres"])).code === 0) return;
  log("postgres: creating system user 'postgres' (initdb refuses to run as root)");
  const r = await run("useradd", ["--system", "--no-create-home", "postgres"]);
  if (r.code !== 0) {
    throw new Error(
      `postgres: initdb cannot run as root and there is no 'postgres' OS user; 'useradd --system --no-create-home postgres' failed:\n${r.out}`,
    );
  }
}

/** Runs a Postgres binary as the `postgres` OS user when we are root (initdb/postgres refuse root). */
function pgRun(asPg: boolean, bin: string, args: string[], timeoutMs = 120_000): Promise<RunResult> {
  const env = { ...process.env, LC_ALL: "C", LANG: "C" };
  if (!asPg) return run(bin, args, { env, timeoutMs });
  const runuser = which("runuser");
  if (runuser) return run(runuser, ["-u", "postgres", "--", bin, ...args], { env, timeoutMs });
  return run("su", ["-s", "/bin/sh", "postgres", "-c", [bin, ...args].map(shq).join(" ")], { env, timeoutMs });
}

async function startPostgres(svcDir: string, port: number, log: (m: string) => void): Promise<PgState> {
  // Binaries first: on a fresh machine the Debian package also creates the `postgres` user.
  const probe = findPostgres();
  if (!probe.found) {
    const old = probe.tooOld.length
      ? `only PostgreSQL ${probe.tooOld.join(", ")} found; need >= ${MIN_PG_MAJOR}, e.g. postgresql-${MIN_PG_MAJOR} from apt.postgresql.org`
      : undefined;
    throw new MissingBinaries("postgres", old);
  }
  const asPg = isRoot();
  if (asPg) await ensurePostgresUser(log);

  // As root the server runs as `postgres`, which must be able to traverse to its
  // data dir. If only our own dirs block it (e.g. a mkdtemp 0700 dataDir), grant
  // traverse-only (o+x); if an outside ancestor does (repo under /root), use /tmp.
  let pgdata = path.join(svcDir, "data");
  const canReach = async (dir: string) => (await pgRun(true, "test", ["-x", dir])).code === 0;
  if (asPg && !(await canReach(svcDir)) && (await canReach(path.dirname(path.dirname(svcDir))))) {
    for (const d of [path.dirname(svcDir), svcDir]) fs.chmodSync(d, fs.statSync(d).mode | 0o001);
  }
  if (asPg && !(await canReach(svcDir))) {
    const base = path.join(
      os.tmpdir(),
      `cmedge-stack-pg-${createHash("sha1").update(svcDir).digest("hex").slice(0, 10)}`,
    );
    fs.mkdirSync(base, { recursive: true, mode: 0o755 });
    fs.chmodSync(base, 0o755);
    pgdata = path.join(base, "data");
    log(`postgres: user 'postgres' cannot reach ${svcDir}; using ${pgdata}`);
  }

  const existingMajor = Number.parseInt(readText(path.join(pgdata, "PG_VERSION")) ?? "", 10);
  const bins = findPostgres(Number.isFinite(existingMajor) ? existingMajor : undefined).found ?? probe.found;
  if (Number.isFinite(existingMajor) && existingMajor !== bins.major) {
    log(
      `postgres: ${pgdata} was initialised by PostgreSQL ${existingMajor}, only ${bins.major} is installed; re-initialising`,
    );
    fs.rmSync(pgdata, { recursive: true, force: true });
  }
  const bin = (b: string) => path.join(bins.bindir, b);

  // A server of ours may still run from a run whose state was lost; it would hold the data dir lock.
  if (
    fs.existsSync(path.join(pgdata, "postmaster.pid")) &&
    (await pgRun(asPg, bin("pg_ctl"), ["-D", pgdata, "status"])).code === 0
  ) {
    log(`postgres: stopping an unrecorded server of ours in ${pgdata}`);
    await pgRun(asPg, bin("pg_ctl"), ["-D", pgdata, "stop", "-m", "fast", "-w"]);
  }

  if (!fs.existsSync(path.join(pgdata, "PG_VERSION"))) {
    fs.rmSync(pgdata, { recursive: true, force: true }); // half-done initdb
    fs.mkdirSync(pgdata, { recursive: true, mode: 0o700 });
    if (asPg) {
      const uid = Number((await run("id", ["-u", "postgres"])).out.trim());
      const gid = Number((await run("id", ["-g", "postgres"])).out.trim());
      fs.chownSync(pgdata, uid, gid);
    }
    log(`postgres: initdb (PostgreSQL ${bins.major}) in ${pgdata}`);
    const r = await pgRun(asPg, bin("initdb"), [
      "-D",
      pgdata,
      "-U",
      "postgres",
      "--auth=trust",
      "-E",
      "UTF8",
      "--no-locale",
    ]);
    if (r.code !== 0) throw new Error(`postgres: initdb failed (exit ${r.code}):\n${r.out.slice(-3000)}`);
  }

  // Server log lives inside pgdata because only `postgres` can write there.
  const logFile = path.join(pgdata, "server.log");
  // Unix socket paths are limited to ~107 bytes; we only use TCP, so drop the socket if too long.
  const sockDir = pgdata.length + "/.s.PGSQL.65535.lock".length < 100 ? pgdata : "";
  const o = `-p ${port} -k ${shq(sockDir)} -c listen_addresses=127.0.0.1`;
  const r = await pgRun(asPg, bin("pg_ctl"), ["-D", pgdata, "-l", logFile, "-o", o, "-w", "-t", "60", "start"], 90_000);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  if (r.code !== 0 || !(await waitAnswers(url, 10_000, () => undefined))) {
    throw new Error(
      `postgres: failed to start on 127.0.0.1:${port} (pg_ctl exit ${r.code}; if ${pgdata} is damaged, delete it to re-initialise):\n${r.out.slice(-2000)}\n${tail(logFile)}`,
    );
  }
  const pid = readPidFile(path.join(pgdata, "postmaster.pid")) ?? 0;
  return {
    service: "postgres",
    url,
    port,
    pid,
    startedAt: new Date().toISOString(),
    pgdata,
    bindir: bins.bindir,
    asPostgresUser: asPg,
  };
}

/**
 * Stops the recorded server; false when it is gone already. Never one it did not start: a server
 * killed and started again on the same data directory (by a later `ensureStack`) is that one's.
 */
async function stopPostgres(st: PgState): Promise<boolean> {
  if (!pidAlive(st.pid)) return false;
  // pg_ctl stops whatever runs in the data directory now: only if that is still the recorded server.
  const current = readPidFile(path.join(st.pgdata, "postmaster.pid"));
  if (current !== undefined && current !== st.pid) return false;
  const r = await pgRun(
    st.asPostgresUser,
    path.join(st.bindir, "pg_ctl"),
    ["-D", st.pgdata, "stop", "-m", "fast", "-w", "-t", "60"],
    90_000,
  );
  if (r.code === 0 || !pidAlive(st.pid)) return true;
  // pg_ctl unusable (binaries removed?): SIGINT = fast shutdown.
  if (pidLooksLike(st.pid, "postgres")) {
    process.kill(st.pid, "SIGINT");
    if (await waitGone(() => pidAlive(st.pid), 30_000)) return true;
  }
  throw new Error(`postgres: could not stop pid ${st.pid}:\n${r.out}`);
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

async function startRedis(svcDir: string, port: number, log: (m: string) => void): Promise<RedisState> {
  const server = which("redis-server", ["/opt/homebrew/bin"]);
  if (!server) throw new MissingBinaries("redis");
  const major = Number.parseInt(/v=(\d+)/.exec(spawnVersion(server))?.[1] ?? "", 10);
  if (Number.isFinite(major) && major < 7)
    log(`redis: warning: ${server} is Redis ${major}, the project targets Redis 7`);

  const pidFile = path.join(svcDir, "redis.pid");
  const logFile = path.join(svcDir, "redis.log");
  const orphan = readPidFile(pidFile);
  if (orphan && pidAlive(orphan) && pidLooksLike(orphan, "redis-server")) {
    log(`redis: stopping an unrecorded server of ours (pid ${orphan})`);
    process.kill(orphan, "SIGTERM");
    await waitGone(() => pidAlive(orphan), 10_000);
  }
  fs.rmSync(pidFile, { force: true });

  // No persistence: this is a scratch server. No config file, so /etc/redis is ignored.
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    svcDir,
    "--daemonize",
    "yes",
    "--pidfile",
    pidFile,
    "--logfile",
    logFile,
  ];
  const r = await run(server, args, { cwd: svcDir, timeoutMs: 30_000 });
  const url = `redis://127.0.0.1:${port}`;
  if (r.code !== 0 || !(await waitAnswers(url, 15_000, () => undefined))) {
    throw new Error(
      `redis: failed to start on 127.0.0.1:${port} (exit ${r.code}):\n${r.out.slice(-2000)}\n${tail(logFile)}`,
    );
  }
  // The daemon writes its pidfile right after forking; give it a moment.
  let pid = readPidFile(pidFile);
  for (let i = 0; !pid && i < 50; i++) {
    await sleep(50);
    pid = readPidFile(pidFile);
  }
  return { service: "redis", url, port, pid: pid ?? 0, startedAt: new Date().toISOString(), dir: svcDir };
}

/**
 * Stops the recorded server; false when it is gone already — then whatever answers on its port is
 * another server (started again there after a kill), not touched.
 */
async function stopRedis(st: RedisState): Promise<boolean> {
  if (st.pid && !(pidAlive(st.pid) && pidLooksLike(st.pid, "redis-server"))) return false;
  if (await answers(st.url, 1000)) await sendUntilClosed(st.port, "SHUTDOWN NOSAVE\r\n", 5000);
  if (await waitGone(() => pidAlive(st.pid), 10_000)) return true;
  if (pidLooksLike(st.pid, "redis-server")) {
    process.kill(st.pid, "SIGKILL");
    if (await waitGone(() => pidAlive(st.pid), 5000)) return true;
  }
  throw new Error(`redis: could not stop pid ${st.pid}`);
}

// ---------------------------------------------------------------------------
// RabbitMQ
// ---------------------------------------------------------------------------

function findRabbit(): { server: string; ctl: string } | undefined {
  // The real script first: Debian's /usr/sbin/rabbitmq-server is a wrapper that,
  // as root, re-execs via `su rabbitmq`, which drops our environment.
  const cands = [
    "/usr/lib/rabbitmq/bin/rabbitmq-server",
    which("rabbitmq-server", ["/opt/homebrew/sbin"]),
    "/usr/sbin/rabbitmq-server",
  ];
  for (const c of cands) {
    if (!c || !isExecutable(c)) continue;
    const text = readText(c) ?? "";
    if (text.includes("su rabbitmq")) continue; // the wrapper
    const ctl = path.join(path.dirname(c), "rabbitmqctl");
    return { server: c, ctl: isExecutable(ctl) ? ctl : (which("rabbitmqctl") ?? ctl) };
  }
  return undefined;
}

/**
 * Environment that makes the node fully private: own config (so /etc/rabbitmq is
 * ignored), no plugins, own Erlang cookie (via HOME) and own epmd port, so it
 * neither clashes with nor can be stopped by the system broker's tooling.
 */
function rabbitEnv(st: Pick<RabbitState, "dir" | "port" | "nodename" | "distPort" | "epmdPort">): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(RABBITMQ_|ERL_)/.test(k)) env[k] = v; // inherited settings would leak into our node
  }
  const d = st.dir;
  return {
    ...env,
    HOME: path.join(d, "home"),
    RABBITMQ_NODE_PORT: String(st.port),
    RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
    RABBITMQ_NODENAME: st.nodename,
    RABBITMQ_DIST_PORT: String(st.distPort),
    RABBITMQ_MNESIA_BASE: path.join(d, "mnesia"),
    RABBITMQ_LOG_BASE: path.join(d, "log"),
    RABBITMQ_PID_FILE: path.join(d, "rabbitmq.pid"),
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(d, "enabled_plugins"),
    RABBITMQ_CONFIG_FILE: path.join(d, "rabbitmq.conf"),
    RABBITMQ_ADVANCED_CONFIG_FILE: path.join(d, "advanced.config"),
    RABBITMQ_CONF_ENV_FILE: path.join(d, "rabbitmq-env.conf"),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: "-kernel inet_dist_use_interface {127,0,0,1}",
    ERL_EPMD_PORT: String(st.epmdPort),
    ERL_EPMD_ADDRESS: "127.0.0.1",
  };
}

async function startRabbit(svcDir: string, port: number, log: (m: string) => void): Promise<RabbitState> {
  const bins = findRabbit();
  if (!bins) throw new MissingBinaries("rabbitmq");

  const orphan = readPidFile(path.join(svcDir, "rabbitmq.pid"));
  if (orphan && pidAlive(orphan) && pidLooksLike(orphan, "beam")) {
    log(`rabbitmq: stopping an unrecorded node of ours (pid ${orphan})`);
    process.kill(orphan, "SIGTERM"); // the VM shuts down cleanly on SIGTERM
    await waitGone(() => pidAlive(orphan), 20_000);
  }
  fs.rmSync(path.join(svcDir, "rabbitmq.pid"), { force: true });

  const distPort = port + 20_000 <= 65_535 && (await portFree(port + 20_000)) ? port + 20_000 : await freePort();
  const epmdPort = await freePort();
  const nodename = `cmedge${port}@localhost`;
  const st0 = { dir: svcDir, port, nodename, distPort, epmdPort };
  for (const d of ["home", "mnesia", "log"]) fs.mkdirSync(path.join(svcDir, d), { recursive: true });
  fs.writeFileSync(path.join(svcDir, "enabled_plugins"), "[].\n");
  fs.writeFileSync(path.join(svcDir, "rabbitmq-env.conf"), "");
  fs.writeFileSync(
    path.join(svcDir, "rabbitmq.conf"),
    `# generated by scripts/stack.ts\nlisteners.tcp.default = 127.0.0.1:${port}\nloopback_users.guest = true\n`,
  );

  const consoleLog = path.join(svcDir, "console.log");
  const out = fs.openSync(consoleLog, "a");
  // detached => own session + process group, so it outlives `stack up` and can be killed as a group.
  const child = spawn(bins.server, [], {
    detached: true,
    stdio: ["ignore", out, out],
    env: rabbitEnv(st0),
    cwd: svcDir,
  });
  fs.closeSync(out);
  let died: string | undefined;
  child.on("exit", (code, sig) => {
    died = `exited (${sig ?? code})`;
  });
  child.on("error", (e) => {
    died = String(e);
  });
  child.unref();
  const pgid = child.pid ?? 0;

  const url = `amqp://guest:guest@127.0.0.1:${port}`;
  log(`rabbitmq: booting node ${nodename} (usually 5-20 s) ...`);
  if (!(await waitAnswers(url, 60_000, () => died))) {
    if (pgid && groupAlive(pgid)) process.kill(-pgid, "SIGKILL");
    await run(epmdBin(), ["-port", String(epmdPort), "-kill"], { env: rabbitEnv(st0), timeoutMs: 5000 });
    const logs = [tail(consoleLog), tail(path.join(svcDir, "log", `${nodename}.log`))].join("\n");
    throw new Error(`rabbitmq: failed to start on 127.0.0.1:${port}${died ? ` (${died})` : " within 60 s"}:\n${logs}`);
  }
  const pid = readPidFile(path.join(svcDir, "rabbitmq.pid")) ?? pgid;
  return { service: "rabbitmq", url, pid, startedAt: new Date().toISOString(), pgid, ctl: bins.ctl, ...st0 };
}

function epmdBin(): string {
  return which("epmd", ["/usr/lib/erlang/bin"]) ?? "epmd";
}

/** Stops the recorded node and its epmd; false when the node was gone already. */
async function stopRabbit(st: RabbitState): Promise<boolean> {
  const alive = () => pidAlive(st.pid) || (st.pgid > 0 && groupAlive(st.pgid));
  const wasAlive = alive();
  if (wasAlive) {
    // Graceful: rabbitmqctl needs the same HOME (cookie) and epmd port as the node.
    await run(st.ctl, ["-n", st.nodename, "stop", path.join(st.dir, "rabbitmq.pid")], {
      env: rabbitEnv(st),
      cwd: st.dir,
      timeoutMs: 60_000,
    });
    if (!(await waitGone(alive, 10_000))) {
      if (st.pgid > 0 && groupAlive(st.pgid)) process.kill(-st.pgid, "SIGTERM");
      if (!(await waitGone(alive, 15_000))) {
        if (st.pgid > 0 && groupAlive(st.pgid)) process.kill(-st.pgid, "SIGKILL");
        if (pidAlive(st.pid) && pidLooksLike(st.pid, "beam")) process.kill(st.pid, "SIGKILL");
        if (!(await waitGone(alive, 5000)))
          throw new Error(`rabbitmq: could not stop node ${st.nodename} (pid ${st.pid})`);
      }
    }
  }
  // epmd daemonizes out of the node's process group; `-kill` refuses while any node is still registered.
  await run(epmdBin(), ["-port", String(st.epmdPort), "-kill"], { env: rabbitEnv(st), timeoutMs: 5000 });
  return wasAlive;
}

// ---------------------------------------------------------------------------
// Orchestration
// ---------------------------------------------------------------------------

class MissingBinaries extends Error {
  service: Service;
  constructor(service: Service, detail?: string) {
    super(`${service}: server binaries not found${detail ? ` (${detail})` : ""}`);
    this.service = service;
  }
}

const starters: Record<Service, (svcDir: string, port: number, log: (m: string) => void) => Promise<State>> = {
  postgres: startPostgres,
  redis: startRedis,
  rabbitmq: startRabbit,
};

/** Stops a recorded server of ours; false when it had exited already (killed, or stopped elsewhere). */
async function stopState(st: State): Promise<boolean> {
  if (st.service === "postgres") return stopPostgres(st);
  if (st.service === "redis") return stopRedis(st);
  return stopRabbit(st);
}

const serverNeedle: Record<Service, string> = { postgres: "postgres", redis: "redis-server", rabbitmq: "beam" };

/** A recorded server is ours and usable only if its pid is alive and it still speaks the protocol. */
async function recordedUsable(st: State): Promise<boolean> {
  return pidAlive(st.pid) && pidLooksLike(st.pid, serverNeedle[st.service]) && (await answers(st.url));
}

interface Resolved {
  url: string;
  /** Set when this call started the server. */
  state?: State;
}

async function ensureService(
  svc: Service,
  dataDir: string,
  env: Record<string, string | undefined>,
  log: (m: string) => void,
  preferredPort?: number,
): Promise<Resolved> {
  const configured = env[ENV_KEYS[svc]] || DEFAULT_URLS[svc];
  // LOCAL_STACK_OWN=postgres,… asks for a private server even when one answers (e.g. a test run
  // under a shifted clock needs a Postgres whose now() moved with it).
  const wantOwn = (env.LOCAL_STACK_OWN ?? "").split(",").includes(svc);
  if (!wantOwn && (await answers(configured))) {
    log(`${svc}: using ${redact(configured)}`);
    return { url: configured };
  }
  const svcDir = path.join(dataDir, svc);
  fs.mkdirSync(svcDir, { recursive: true });
  return withLock(svcDir, async () => {
    const prev = readState(svcDir);
    if (prev) {
      if (await recordedUsable(prev)) {
        log(`${svc}: reusing own server at ${redact(prev.url)} (pid ${prev.pid})`);
        return { url: prev.url };
      }
      log(`${svc}: recorded server (pid ${prev.pid}) is gone; starting a new one`);
      await stopState(prev).catch(() => {}); // best effort: e.g. a leftover epmd
      removeState(svcDir);
    }
    // Keep the previous port when possible so URLs (and RabbitMQ's per-node data) stay stable.
    const port = await pickPort(svc, preferredPort ?? prev?.port, log);
    const t0 = Date.now();
    let st: State;
    try {
      st = await starters[svc](svcDir, port, log);
    } catch (e) {
      if (!(e instanceof MissingBinaries)) throw e;
      await aptInstall(svc, log, e.message);
      // Installing may have started a system service at the configured URL.
      if (!wantOwn && (await answers(configured))) {
        log(`${svc}: using ${redact(configured)} (started by the package install)`);
        return { url: configured };
      }
      st = await starters[svc](svcDir, port, log);
    }
    writeState(svcDir, st);
    log(
      `${svc}: started own server at ${redact(st.url)} in ${((Date.now() - t0) / 1000).toFixed(1)} s (pid ${st.pid}, data ${svcDir})`,
    );
    return { url: st.url, state: st };
  });
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password && u.password !== "guest") u.password = "***";
    return u.toString().replace(/\/$/, "");
  } catch {
    return url;
  }
}

async function stopStates(states: State[], dataDir: string, log: (m: string) => void): Promise<void> {
  const results = await Promise.allSettled(
    states.map(async (st) => {
      const stopped = await stopState(st);
      const svcDir = path.join(dataDir, st.service);
      // Only forget it if the file still describes this server (not a newer one).
      if (readState(svcDir)?.pid === st.pid) removeState(svcDir);
      log(
        stopped
          ? `${st.service}: stopped own server at ${redact(st.url)}`
          : `${st.service}: own server at ${redact(st.url)} (pid ${st.pid}) had exited already`,
      );
    }),
  );
  const errors = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
  if (errors.length) throw new AggregateError(errors, `failed to stop: ${errors.map(String).join("; ")}`);
}

/**
 * Makes Postgres 15+, Redis 7 and RabbitMQ available on loopback: uses the
 * configured URLs (`LOCAL_POSTGRES_URL`, `LOCAL_REDIS_URL`, `LOCAL_RABBITMQ_URL`,
 * defaulting to the standard ports) when they answer, otherwise reuses or starts
 * private servers under `dataDir` (installing the Debian packages first when
 * missing and running as root). Resolves once every server answers; on failure
 * stops whatever this call started and rejects with the servers' log tails.
 */
export async function ensureStack(opts: EnsureStackOptions = {}): Promise<Stack> {
  const dataDir = path.resolve(opts.dataDir ?? (opts.env ?? process.env).LOCAL_STACK_DIR ?? DEFAULT_DATA_DIR);
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;

  // In parallel: RabbitMQ's boot dominates, the others finish meanwhile.
  const results = await Promise.allSettled(
    SERVICES.map((svc) => ensureService(svc, dataDir, env, log, opts.ports?.[svc])),
  );
  const ours = results.flatMap((r) => (r.status === "fulfilled" && r.value.state ? [r.value.state] : []));
  const failures = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
  if (failures.length) {
    await stopStates(ours, dataDir, log).catch((e) => log(`cleanup after failure: ${String(e)}`));
    const msg = failures.map((e) => (e instanceof Error ? e.message : String(e))).join("\n\n");
    throw new Error(`ensureStack failed:\n${msg}`);
  }

  const [pg, redis, rabbit] = results.map((r) => (r as PromiseFulfilledResult<Resolved>).value);
  let stopped = false;
  return {
    postgresUrl: pg!.url,
    redisUrl: redis!.url,
    rabbitmqUrl: rabbit!.url,
    started: ours.map((s) => s.service),
    async stop() {
      if (stopped) return;
      stopped = true;
      await stopStates(ours, dataDir, log);
    },
  };
}

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------

async function down(dataDir: string, log: (m: string) => void): Promise<void> {
  const states: State[] = [];
  for (const svc of SERVICES) {
    const svcDir = path.join(dataDir, svc);
    const st = readState(svcDir);
    if (!st) continue;
    if (pidAlive(st.pid) && pidLooksLike(st.pid, serverNeedle[svc])) states.push(st);
    else {
      log(`${svc}: recorded server (pid ${st.pid}) is not running; forgetting it`);
      if (st.service === "rabbitmq") await stopRabbit(st).catch(() => {}); // reaps a leftover epmd
      removeState(svcDir);
    }
  }
  if (!states.length) log(`nothing of ours is running (data dir ${dataDir})`);
  await stopStates(states, dataDir, log);
}

async function main(argv: string[]): Promise<number> {
  const cmd = argv[0];
  const i = argv.indexOf("--data-dir");
  const dataDir = path.resolve(
    i >= 0 && argv[i + 1] ? argv[i + 1]! : (process.env.LOCAL_STACK_DIR ?? DEFAULT_DATA_DIR),
  );
  if (cmd === "up") {
    const stack = await ensureStack({ dataDir });
    const urls: StackUrls = {
      postgresUrl: stack.postgresUrl,
      redisUrl: stack.redisUrl,
      rabbitmqUrl: stack.rabbitmqUrl,
    };
    process.stdout.write(`${JSON.stringify(urls, null, 2)}\n`);
    return 0;
  }
  if (cmd === "down") {
    await down(dataDir, defaultLog);
    return 0;
  }
  process.stderr.write("usage: node scripts/stack.ts up|down [--data-dir DIR]\n");
  return 2;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
