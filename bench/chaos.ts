import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import type { AMQPChannel, AMQPClient } from "@cloudamqp/amqp-client";
import type { Client } from "@neondatabase/serverless";
import { LOCAL_JWT_SECRET, startLocalEnv } from "../scripts/lib/local-env.ts";
import type { LocalEnv } from "../scripts/lib/local-env.ts";
import { buildAssets } from "../scripts/build-assets.ts";
import { closePgProxy, connectPg } from "../scripts/lib/pg.ts";
import { ensureStack } from "../scripts/stack.ts";
import type { Stack } from "../scripts/stack.ts";
import { createEvent } from "../src/events/cloudevent.ts";
import { eventMessage, topology } from "../src/events/rabbit.ts";
import { connectAmqp } from "../src/platform/amqp.ts";
import { signToken } from "../src/platform/auth.ts";
import { getConfig } from "../src/platform/config.ts";
import { verifyWebhook } from "../src/webhooks/signing.ts";
import type { Receiver } from "./harness.ts";
import {
  childrenOf,
  descendants,
  numArg,
  parseBenchArgs,
  quietToolEnv,
  startReceiver,
  wranglerDevCommand,
} from "./harness.ts";
import { Inspector } from "./inspector.ts";
import { bundle, INSPECTOR_TARGET, type MiniflareWorkerOptions, SCHEDULED_PATH } from "./miniflare-worker.ts";
import { percentile, round } from "./lib.ts";

/**
 * `npm run chaos [-- --quick] [--soak-minutes N] [--skip-soak] [--skip-fuzz] [--only a,b]`:
 * reliability under faults and load, measured against an independent record of what was sent.
 *
 * It starts its own Postgres, Redis and RabbitMQ (scripts/stack.ts with `LOCAL_STACK_OWN`, under
 * `.stack/chaos-<id>/`, on free ports) and its own Worker (`wrangler dev` in its own process group,
 * Durable Object and Queue state persisted to disk so a killed Worker comes back with it), and
 * never touches any other server. Crons are fired by this script, faster than the real schedule
 * (every-minute crons every 2 s), so recovery paths run within the bounded run.
 *
 * Scenarios (each under load, the fault at several points; `--quick`: one point each):
 *  1. usage ingest over HTTP and RabbitMQ while Postgres, then Redis, then RabbitMQ is SIGKILLed
 *     and restarted: totals exact (0 lost, 0 double-counted);
 *  2. webhook fan-out to a verifying receiver answering 30 % failures while Postgres, then the
 *     Worker, is killed: every delivery verified, duplicates counted, circuits consistent;
 *  3. the outbox relay while RabbitMQ is killed mid-batch: every event on the broker, no row stuck;
 *  4. team moves, last-owner removals and invitation accepts while Postgres restarts: no cycle, no
 *     ownerless team, no invitation accepted twice.
 * During each fault a sampler records what a user sees (`/readyz`, writes, cached reads) and the
 * time from the server being back to the service being whole again. Then a load soak at 70 % of
 * the measured capacity, and the OpenAPI fuzzer with more cases. Results: bench/results/chaos.json.
 * Run it under `flock /work/.bench.lock` on shared machines.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = parseBenchArgs(process.argv.slice(2));
const QUICK = args.quick === true;
const only = typeof args.only === "string" ? new Set(args.only.split(",")) : undefined;
const t0 = Date.now();
const log = (m: string) => process.stderr.write(`[chaos ${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const REQUEST_TIMEOUT_MS = 10_000;
const SVC_DOWN_MS = Number(args["down-ms"] ?? (QUICK ? 4_000 : 8_000));

// ─────────────────────────── own servers: kill -9 and restart ───────────────────────────

type Svc = "postgres" | "redis" | "rabbitmq";

/** The servers this run started, with SIGKILL and restart on the same port and data. */
class Servers {
  private restarts: Stack[] = [];
  private epmdPorts = new Set<number>();
  readonly dir: string;
  readonly env: Record<string, string | undefined>;
  constructor(dir: string, env: Record<string, string | undefined>) {
    this.dir = dir;
    this.env = env;
  }

  state(svc: Svc): { pid: number; port: number; pgid?: number; epmdPort?: number } {
    const st = JSON.parse(fs.readFileSync(path.join(this.dir, svc, "state.json"), "utf8"));
    if (st.epmdPort) this.epmdPorts.add(st.epmdPort);
    return st;
  }

  /** SIGKILL, like the OOM killer or a lost machine: Postgres with its backends, RabbitMQ with its group. */
  kill(svc: Svc): void {
    const st = this.state(svc);
    const victims = [st.pid, ...(svc === "postgres" ? childrenOf(st.pid) : [])];
    if (svc === "rabbitmq" && st.pgid) {
      try {
        process.kill(-st.pgid, "SIGKILL");
      } catch {}
    }
    for (const pid of victims) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
  }

  /** Starts the killed server again on its port and data directory (the others are reused as they are). */
  async restart(svc: Svc): Promise<void> {
    const port = this.state(svc).port;
    for (let i = 0; i < 50 && childrenOf(this.state(svc).pid).length > 0; i++) await sleep(100);
    const stack = await ensureStack({ dataDir: this.dir, env: this.env, ports: { [svc]: port }, log: () => {} });
    this.restarts.push(stack);
    this.state(svc);
  }

  /** Stops what the restarts started, and the epmd daemons of earlier RabbitMQ incarnations. */
  async stop(): Promise<void> {
    for (const s of this.restarts.reverse()) await s.stop().catch((e) => log(`stop: ${e}`));
    for (const p of this.epmdPorts) {
      await new Promise<void>((resolve) => {
        const c = spawn("epmd", ["-port", String(p), "-kill"], { stdio: "ignore" });
        c.on("exit", () => resolve());
        c.on("error", () => resolve());
      });
    }
  }
}

const comm = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
};
/** Resident memory of `pid` in bytes: all of it (`VmRSS`), or its anonymous or file-backed part. */
const rssBytes = (pid: number, field: "VmRSS" | "RssAnon" | "RssFile" = "VmRSS") => {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
};
const cmdline = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
};
const fdCount = (pid: number) => {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
};

// ─────────────────────────── own Worker, in its own process group ───────────────────────────

/**
 * `--runtime wrangler` (default): `wrangler dev`, two workerd processes — wrangler's ProxyWorker
 * (with its inspector proxy) on the public port, which forwards every request to the Worker's
 * own workerd. `--runtime miniflare`: the Worker bundled as a deploy would and run by Miniflare
 * alone (`bench/miniflare-worker.ts`), one workerd and no proxy. Both persist Durable Object and
 * Queue state under the run's folder, so a killed Worker comes back with it.
 */
type Runtime = "wrangler" | "miniflare";

class WorkerProc {
  private child?: ChildProcess;
  url = "";
  private readonly vars: Record<string, string>;
  private readonly dir: string;
  private readonly port: number;
  readonly runtime: Runtime;
  /** Where the isolate's inspector is served (`--heap`), if anywhere. */
  readonly inspectorPort: number | undefined;
  /** The inspector target of the Worker's isolate (wrangler's inspector proxy lists it first). */
  readonly inspectorTarget: string | undefined;
  constructor(vars: Record<string, string>, dir: string, port: number, runtime: Runtime, inspectorPort?: number) {
    this.vars = vars;
    this.dir = dir;
    this.port = port;
    this.runtime = runtime;
    this.inspectorPort = inspectorPort;
    this.inspectorTarget = runtime === "miniflare" ? INSPECTOR_TARGET : undefined;
  }

  private get logPath(): string {
    // Outside the state folder, which is removed at the end: the log is what explains a 500.
    return path.join(os.tmpdir(), `chaos-${this.runtime}-${path.basename(this.dir)}.log`);
  }

  /** The URL that fires cron `expr` (wrangler dev's `--test-scheduled`, or Miniflare's trigger handler). */
  scheduledUrl(expr: string): string {
    return `${this.url}${this.runtime === "miniflare" ? SCHEDULED_PATH : "/__scheduled"}?cron=${encodeURIComponent(expr)}`;
  }

  async start(): Promise<void> {
    const logFile = fs.openSync(this.logPath, "a");
    if (this.runtime === "miniflare") {
      const bundleDir = path.join(this.dir, "bundle");
      if (!fs.existsSync(path.join(bundleDir, "index.js"))) bundle(bundleDir); // once per run: restarts reuse it
      const optionsFile = path.join(this.dir, "miniflare-worker.json");
      const options: MiniflareWorkerOptions = {
        port: this.port,
        persistTo: path.join(this.dir, "wrangler-state"),
        vars: this.vars,
        bundleDir,
        inspectorPort: this.inspectorPort,
        allLogs: args.verbose === true,
      };
      fs.writeFileSync(optionsFile, JSON.stringify(options));
      this.child = spawn(process.execPath, [path.join(ROOT, "bench", "miniflare-worker.ts"), optionsFile], {
        cwd: ROOT,
        detached: true, // own process group: a kill takes Node and workerd together
        stdio: ["ignore", logFile, logFile],
        env: quietToolEnv(),
      });
    } else {
      const envFile = path.join(this.dir, "worker.env");
      fs.writeFileSync(
        envFile,
        Object.entries(this.vars)
          .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
          .join("\n"),
      );
      const wrangler = wranglerDevCommand(this.port, [
        "--test-scheduled",
        "--persist-to",
        path.join(this.dir, "wrangler-state"),
        "--env-file",
        envFile,
        ...(this.inspectorPort ? ["--inspector-port", String(this.inspectorPort)] : []),
      ]);
      this.child = spawn(process.execPath, wrangler.argv, {
        cwd: ROOT,
        detached: true, // own process group: a kill takes wrangler and workerd together
        stdio: ["ignore", logFile, logFile],
        env: wrangler.env,
      });
    }
    fs.closeSync(logFile);
    this.url = `http://127.0.0.1:${this.port}`;
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      const ok = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(2000) })
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) return;
      if (this.child.exitCode !== null) break;
      await sleep(300);
    }
    throw new Error(`worker did not start; see ${this.logPath}`);
  }

  private workerds(): { pid: number; ownsPort: boolean }[] {
    if (!this.child?.pid) return [];
    return descendants(this.child.pid)
      .filter((p) => comm(p) === "workerd")
      .map((pid) => ({ pid, ownsPort: cmdline(pid).includes(`--socket-addr=entry=127.0.0.1:${this.port}\0`) }));
  }

  /**
   * The workerd process that runs the Worker (memory and descriptors are sampled from it). Under
   * `wrangler dev` that is the one *not* on the public port: that one is wrangler's ProxyWorker.
   */
  workerdPid(): number | undefined {
    const all = this.workerds();
    return this.runtime === "wrangler" ? all.find((w) => !w.ownsPort)?.pid : all[0]?.pid;
  }

  /** `wrangler dev`'s ProxyWorker process (every request passes through it), if any. */
  proxyPid(): number | undefined {
    return this.runtime === "wrangler" ? this.workerds().find((w) => w.ownsPort)?.pid : undefined;
  }

  kill(): void {
    if (!this.child?.pid) return;
    try {
      process.kill(-this.child.pid, "SIGKILL");
    } catch {}
    this.child = undefined;
  }

  async stop(): Promise<void> {
    if (!this.child?.pid) return;
    const pid = this.child.pid;
    try {
      process.kill(-pid, "SIGTERM");
    } catch {}
    for (let i = 0; i < 50 && descendants(pid).length > 0; i++) await sleep(100);
    try {
      process.kill(-pid, "SIGKILL");
    } catch {}
    this.child = undefined;
  }
}

// ─────────────────────────── what a user sees ───────────────────────────

type Outcome = "ok" | "503_retry_after" | "503_no_retry_after" | "5xx" | "4xx" | "hang" | "conn_error";

interface Sample {
  t: number;
  kind: string;
  outcome: Outcome;
  status: number;
  ms: number;
  detail?: string;
}

async function call(
  base: string,
  p: string,
  init: { method?: string; token?: string; body?: unknown; timeoutMs?: number } = {},
): Promise<{ status: number; outcome: Outcome; ms: number; json: unknown; retryAfter: string | null }> {
  const started = performance.now();
  try {
    const res = await fetch(`${base}${p}`, {
      method: init.method ?? (init.body === undefined ? "GET" : "POST"),
      headers: {
        ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
        ...(init.body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal: AbortSignal.timeout(init.timeoutMs ?? REQUEST_TIMEOUT_MS),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    const ra = res.headers.get("retry-after");
    const outcome: Outcome =
      res.status < 400
        ? "ok"
        : res.status === 503
          ? ra
            ? "503_retry_after"
            : "503_no_retry_after"
          : res.status >= 500
            ? "5xx"
            : "4xx";
    return { status: res.status, outcome, ms: performance.now() - started, json, retryAfter: ra };
  } catch (err) {
    const ms = performance.now() - started;
    const timedOut = (err as Error).name === "TimeoutError";
    return { status: 0, outcome: timedOut ? "hang" : "conn_error", ms, json: String(err), retryAfter: null };
  }
}

/** Probes `/readyz`, a write and the cached reads every 300 ms while a fault is on. */
class Sampler {
  samples: Sample[] = [];
  private stopped = false;
  private loop?: Promise<void>;
  private readonly probes: { kind: string; run: () => ReturnType<typeof call> }[];
  constructor(probes: { kind: string; run: () => ReturnType<typeof call> }[]) {
    this.probes = probes;
  }
  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        await Promise.all(
          this.probes.map(async (p) => {
            const t = Date.now();
            const r = await p.run();
            const detail =
              p.kind === "readyz" && r.status === 503
                ? String((r.json as { error?: { message?: string } })?.error?.message ?? "")
                : r.outcome === "5xx" || r.outcome === "503_no_retry_after"
                  ? JSON.stringify(r.json).slice(0, 200)
                  : undefined;
            this.samples.push({ t, kind: p.kind, outcome: r.outcome, status: r.status, ms: r.ms, detail });
          }),
        );
        await sleep(300);
      }
    })();
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

/** What a fault looked like from outside, and how long until everything answered again. */
interface FaultReport {
  scenario: string;
  fault: string;
  point: string;
  down_ms: number;
  /** /readyz samples during the outage that named the failed part / all outage samples. */
  readyz_named_failed_part: string;
  readyz_messages: string[];
  /** Write outcomes during the outage (and until recovered), by kind. */
  writes: Record<Outcome, number>;
  /** Cached reads served / probed during the outage. */
  reads_served: Record<string, string>;
  /** From the server answering again until /readyz is 200 and a write succeeds. */
  recovery_ms: number;
  /** 5xx bodies and hangs seen, for the report. */
  anomalies: string[];
}

function faultReport(
  scenario: string,
  fault: string,
  point: string,
  samples: Sample[],
  window: { killedAt: number; upAt: number; recoveredAt: number },
  namesFailedPart: (msg: string) => boolean,
): FaultReport {
  const during = samples.filter((s) => s.t >= window.killedAt && s.t <= window.recoveredAt);
  const outage = samples.filter((s) => s.t >= window.killedAt + 500 && s.t <= window.upAt);
  const ready = outage.filter((s) => s.kind === "readyz");
  const named = ready.filter((s) => s.status === 503 && namesFailedPart(s.detail ?? ""));
  const writes = {} as Record<Outcome, number>;
  for (const s of during.filter((x) => x.kind.startsWith("write"))) writes[s.outcome] = (writes[s.outcome] ?? 0) + 1;
  const reads: Record<string, string> = {};
  for (const kind of new Set(outage.filter((s) => s.kind.startsWith("read:")).map((s) => s.kind))) {
    const xs = outage.filter((s) => s.kind === kind);
    reads[kind] = `${xs.filter((s) => s.outcome === "ok").length}/${xs.length}`;
  }
  const anomalies = during
    .filter((s) => s.outcome === "5xx" || s.outcome === "hang" || s.outcome === "503_no_retry_after")
    .slice(0, 5)
    .map((s) => `${s.kind} ${s.outcome} ${s.status} ${s.detail ?? ""}`);
  return {
    scenario,
    fault,
    point,
    down_ms: window.upAt - window.killedAt,
    readyz_named_failed_part: `${named.length}/${ready.length}`,
    readyz_messages: [...new Set(ready.map((s) => s.detail ?? `HTTP ${s.status}`))].slice(0, 3),
    writes,
    reads_served: reads,
    recovery_ms: window.recoveredAt - window.upAt,
    anomalies,
  };
}

// ─────────────────────────── the run ───────────────────────────

interface Ctx {
  worker: WorkerProc;
  servers: Servers;
  bindings: Record<string, string>;
  pg: () => Promise<Client>;
  token: (org: string, user?: string, extra?: { email?: string; scopes?: string[] }) => Promise<string>;
  receiver: Receiver;
  received: Map<string, { ok: number; bad: number; attempts: number }>;
  secrets: Map<string, string>;
  failRate: { value: number };
}

const results: Record<string, unknown> = {};
const faults: FaultReport[] = [];

async function main(): Promise<number> {
  const id = `${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
  const dir = path.join(ROOT, ".stack", `chaos-${id}`);
  fs.mkdirSync(dir, { recursive: true });
  const stackEnv = { ...process.env, LOCAL_STACK_OWN: "postgres,redis,rabbitmq", LOCAL_STACK_DIR: dir };
  Object.assign(process.env, { LOCAL_STACK_OWN: stackEnv.LOCAL_STACK_OWN, LOCAL_STACK_DIR: dir });
  log(`own servers under ${dir}`);
  let env: LocalEnv | undefined;
  const servers = new Servers(dir, stackEnv);
  let worker: WorkerProc | undefined;
  const cleanups: (() => Promise<unknown>)[] = [];
  const teardown = async () => {
    for (const c of cleanups.reverse()) await c().catch((e) => log(`teardown: ${e}`));
    await worker?.stop();
    await env?.close().catch((e) => log(`env close: ${e}`));
    await servers.stop();
    await closePgProxy();
    if (!args["keep-state"]) fs.rmSync(dir, { recursive: true, force: true });
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const)
    process.on(sig, () => void teardown().finally(() => process.exit(130)));
  try {
    env = await startLocalEnv({
      database: "cm_chaos",
      redisKeyPrefix: `cm:chaos:${id}:`,
      rabbitmqExchange: `cm.chaos.${id}.events`,
      rabbitmqQueuePrefix: `cm.chaos.${id}.`,
      wsProxyThread: true,
      log: (m) => args.verbose && log(`[stack] ${m}`),
    });
    log(`postgres ${env.stack.postgresUrl}, redis ${env.stack.redisUrl}, rabbitmq ${env.stack.rabbitmqUrl}`);
    const bindings: Record<string, string> = {
      ...env.bindings,
      ENVIRONMENT: "development",
      WEBHOOK_ALLOW_LOCAL_HTTP: "true",
      WEBHOOK_TIMEOUT_MS: "5000",
      WEBHOOK_BACKOFF_BASE_MS: "250",
      WEBHOOK_BACKOFF_CAP_MS: "4000",
      WEBHOOK_CIRCUIT_COOLDOWN_MS: "3000",
      WEBHOOK_MAX_ATTEMPTS: "40",
      USAGE_INGEST_RATE_LIMIT_PER_MINUTE: "1000000",
      EVENTS_INBOUND_POLL_MS: "500",
    };
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const runtime = String(args.runtime ?? "wrangler");
    if (runtime !== "wrangler" && runtime !== "miniflare")
      throw new Error(`--runtime: wrangler or miniflare, got ${runtime}`);
    worker = new WorkerProc(bindings, dir, port, runtime, args.heap ? port + 1 : undefined);
    await buildAssets(); // wrangler.toml's [assets] folder is git-ignored: a fresh clone has none
    await worker.start();
    log(`worker at ${worker.url} (${runtime})`);
    results.runtime = runtime;

    // Fire the every-minute crons every 2 s and the */5 ones every 10 s (the schedule, compressed).
    let cronStop = false;
    const cronLoop = (async () => {
      for (let i = 0; !cronStop; i++) {
        const crons = i % 5 === 0 ? ["* * * * *", "*/5 * * * *"] : ["* * * * *"];
        await Promise.all(
          crons.map((c) =>
            fetch(worker!.scheduledUrl(c), {
              signal: AbortSignal.timeout(30_000),
            }).catch(() => undefined),
          ),
        );
        await sleep(2000);
      }
    })();
    cleanups.push(async () => {
      cronStop = true;
      await cronLoop;
    });

    const received = new Map<string, { ok: number; bad: number; attempts: number }>();
    const secrets = new Map<string, string>();
    const failRate = { value: 0.3 };
    const receiver = await startReceiver(async (req, body) => {
      const hook = (req.url ?? "").split("/")[2] ?? "";
      const secret = secrets.get(hook);
      const headers = new Headers(req.headers as Record<string, string>);
      const verified = secret ? await verifyWebhook(headers, body.toString("utf8"), secret) : false;
      const key = `${hook}|${(JSON.parse(body.toString("utf8")) as { eventId?: string }).eventId}`;
      const r = received.get(key) ?? { ok: 0, bad: 0, attempts: 0 };
      r.attempts++;
      received.set(key, r);
      if (!verified) {
        r.bad++;
        return { status: 401 };
      }
      if (Math.random() < failRate.value) return { status: 500 };
      r.ok++;
      return { status: 204 };
    });
    cleanups.push(() => receiver.close());

    const auth = getConfig({ ...bindings, AUTH_JWT_SECRET: LOCAL_JWT_SECRET }).auth;
    const ctx: Ctx = {
      worker,
      servers,
      bindings,
      pg: () => connectPg(bindings.DATABASE_URL!),
      token: (org, user = "u_chaos", extra = {}) =>
        signToken(
          {
            userId: user,
            organizationId: org,
            email: extra.email,
            scopes: extra.scopes ?? [
              "usage:read",
              "usage:write",
              "teams:read",
              "teams:write",
              "webhooks:read",
              "webhooks:write",
              "admin",
            ],
          },
          auth,
        ),
      receiver,
      received,
      secrets,
      failRate,
    };

    const want = (name: string) => !only || only.has(name);
    const errors: string[] = [];
    // A scenario that breaks is reported and the run goes on: one bug must not hide the others.
    const guarded = async (name: string, fn: (c: Ctx) => Promise<void>) => {
      if (!want(name)) return;
      try {
        await fn(ctx);
      } catch (err) {
        const msg = `${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
        log(`scenario failed: ${msg}`);
        errors.push(msg.slice(0, 2000));
        const alive = await fetch(`${worker!.url}/healthz`, { signal: AbortSignal.timeout(3000) }).then(
          (r) => r.ok,
          () => false,
        );
        if (!alive) await worker!.start().catch(() => undefined); // it died with the scenario
        for (const svc of ["postgres", "redis", "rabbitmq"] as const) await servers.restart(svc).catch(() => undefined);
      }
    };
    await guarded("usage", usageScenario);
    await guarded("webhooks", webhookScenario);
    await guarded("outbox", outboxScenario);
    await guarded("teams", teamsScenario);
    if (!args["skip-soak"]) await guarded("soak", soak);
    results.errors = errors;
    results.faults = faults;
  } finally {
    await teardown();
  }
  if (want2("fuzz") && !args["skip-fuzz"]) results.fuzz = await runFuzz();
  writeResults();
  return 0;
}

const want2 = (name: string) => !only || only.has(name);

/** One Markdown row per fault: what a user saw, the time to recover, and what was lost or counted twice. */
function markdownTable(): string[] {
  const rows = [
    "| scenario | fault @ point | what a user sees during the fault | time to recover | lost / double-counted |",
    "| --- | --- | --- | --- | --- |",
  ];
  const byKey = new Map<string, Record<string, unknown>>();
  for (const [name, list] of Object.entries({
    usage: results.usage,
    webhooks: results.webhooks,
    outbox: results.outbox,
    teams: results.teams,
  })) {
    for (const r of (list as Record<string, unknown>[] | undefined) ?? [])
      byKey.set(`${name}|${String(r.fault ?? (name === "outbox" ? "rabbitmq" : "postgres"))}|${String(r.point)}`, r);
  }
  for (const f of faults) {
    const name = f.scenario.startsWith("usage")
      ? "usage"
      : f.scenario.startsWith("webhook")
        ? "webhooks"
        : f.scenario.startsWith("outbox")
          ? "outbox"
          : "teams";
    const r = byKey.get(`${name}|${f.fault}|${f.point}`) ?? {};
    const writes =
      Object.entries(f.writes)
        .map(([k, v]) => `${v} ${k}`)
        .join(", ") || "none probed";
    const reads = Object.entries(f.reads_served)
      .map(([k, v]) => `${k.replace(/^read:/, "")} ${v}`)
      .join(", ");
    const integrity =
      name === "usage"
        ? `${r.lost} lost / ${r.double_counted_log} + ${r.double_counted_api} (log + API)`
        : name === "webhooks"
          ? `${r.lost} lost / ${r.duplicates} duplicates (allowed), ${r.bad_signatures} bad signatures, ${r.circuit_mismatches} circuit mismatches${r.held_by_open_circuit ? `; ${r.held_by_open_circuit} held by a flapping endpoint's open breaker until reset, then delivered` : ""}`
          : name === "outbox"
            ? `${r.lost} lost / ${r.duplicates} duplicates (allowed), ${r.stuck_rows} stuck`
            : `${r.cycles} cycles, ${r.ownerless_teams} ownerless, ${r.double_accepted_http}+${r.double_accepted_events} double accepts`;
    rows.push(
      `| ${f.scenario} | ${f.fault} SIGKILL @ ${f.point} (down ${(f.down_ms / 1000).toFixed(1)} s) | /readyz named it ${f.readyz_named_failed_part}; writes: ${writes}${reads ? `; reads served: ${reads}` : ""} | ${(f.recovery_ms / 1000).toFixed(1)} s (settled ${r.settle_ms ?? r.drain_ms ?? "n/a"} ms) | ${integrity} |`,
    );
  }
  return rows;
}

/** The soak's minutes as a Markdown table (the README quotes it); the GC columns when `--heap` ran. */
function soakTable(): string[] {
  const soak = results.soak as { per_minute: Record<string, number>[] } | undefined;
  if (!soak?.per_minute.length) return [];
  const gc = soak.per_minute.some((m) => m.workerd_rss_anon_after_gc_mb !== undefined);
  const cols: [string, string][] = [
    ["minute", "minute"],
    ["n", "requests"],
    ["errors", "errors"],
    ["p50", "p50 ms"],
    ["p99", "p99 ms"],
    ["workerd_rss_mb", "workerd RSS MB"],
    ["workerd_rss_anon_mb", "anonymous MB"],
    ...(gc ? ([["workerd_rss_anon_after_gc_mb", "anonymous after GC MB"]] as [string, string][]) : []),
    ["workerd_fds", "workerd fds"],
    ["pg_connections", "pg connections"],
    ["outbox_lag_s", "outbox lag s"],
    ["webhook_backlog", "webhook backlog"],
  ];
  return [
    `| ${cols.map(([, h]) => h).join(" | ")} |`,
    `| ${cols.map(() => "---").join(" | ")} |`,
    ...soak.per_minute.map((m) => `| ${cols.map(([k]) => String(m[k] ?? "")).join(" | ")} |`),
  ];
}

function writeResults(): void {
  // `--out NAME`: bench/results/NAME.json, so a partial run (`--only soak`) sits beside the full one.
  const file = path.join(ROOT, "bench", "results", `${typeof args.out === "string" ? args.out : "chaos"}.json`);
  results.table = markdownTable();
  results.soak_table = soakTable();
  const out = {
    name: "chaos",
    timestamp: new Date().toISOString(),
    durationMs: Date.now() - t0,
    quick: QUICK,
    machine: { cpuModel: os.cpus()[0]?.model ?? "", cpus: os.cpus().length, totalMemBytes: os.totalmem() },
    ...results,
  };
  fs.writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(JSON.stringify(out, null, 2));
  console.log([...(results.table as string[]), "", ...(results.soak_table as string[])].join("\n"));
  log(`wrote ${file}`);
}

// ─────────────────────────── helpers shared by the scenarios ───────────────────────────

/** Kills `what` at `atMs` after `start`, restarts it `SVC_DOWN_MS` later, waits until whole again. */
async function injectFault(
  ctx: Ctx,
  what: Svc | "worker",
  sampler: Sampler,
  healthy: () => Promise<boolean>,
): Promise<{ killedAt: number; upAt: number; recoveredAt: number }> {
  const killedAt = Date.now();
  if (what === "worker") ctx.worker.kill();
  else ctx.servers.kill(what);
  log(`  SIGKILL ${what}`);
  await sleep(SVC_DOWN_MS);
  if (what === "worker") await ctx.worker.start();
  else await ctx.servers.restart(what);
  const upAt = Date.now();
  log(`  ${what} back after ${upAt - killedAt} ms`);
  let recoveredAt = upAt;
  for (const deadline = Date.now() + 180_000; Date.now() < deadline; ) {
    if (await healthy()) {
      recoveredAt = Date.now();
      break;
    }
    await sleep(250);
  }
  log(`  whole again ${recoveredAt - upAt} ms after ${what} came back`);
  void sampler;
  return { killedAt, upAt, recoveredAt };
}

async function readyAndWrites(ctx: Ctx, write: () => ReturnType<typeof call>): Promise<boolean> {
  const r = await call(ctx.worker.url, "/readyz", { timeoutMs: 5000 });
  if (r.status !== 200) return false;
  return (await write()).outcome === "ok";
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await check().catch(() => false)) return Date.now() - started;
    await sleep(500);
  }
  log(`  gave up waiting for ${what} after ${timeoutMs} ms`);
  return -1;
}

async function q<T = Record<string, unknown>>(ctx: Ctx, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = await ctx.pg();
  try {
    return (await c.query(sql, params)).rows as T[];
  } finally {
    await c.end();
  }
}

const points = (): { name: string; atMs: number }[] =>
  QUICK
    ? [{ name: "mid-load", atMs: 4000 }]
    : [
        { name: "early", atMs: 1500 },
        { name: "mid-load", atMs: 5000 },
        { name: "late", atMs: 9000 },
      ];

// ─────────────────────────── 1. usage ingest ───────────────────────────

async function usageScenario(ctx: Ctx): Promise<void> {
  const out: Record<string, unknown>[] = [];
  const rabbit = topology({
    url: ctx.bindings.RABBITMQ_URL!,
    exchange: ctx.bindings.RABBITMQ_EXCHANGE!,
    queuePrefix: ctx.bindings.RABBITMQ_QUEUE_PREFIX!,
  });
  for (const svc of ["postgres", "redis", "rabbitmq"] as const) {
    for (const point of points()) {
      const org = `chaos_u_${svc}_${point.name}_${randomUUID().slice(0, 6)}`.replace(/-/g, "_");
      await q(ctx, "insert into organizations (id, plan_id) values ($1, 'enterprise')", [org]).catch(async () => {
        await sleep(2000);
        await q(ctx, "insert into organizations (id, plan_id) values ($1, 'enterprise')", [org]);
      });
      const token = await ctx.token(org);
      log(`usage × ${svc} @ ${point.name} (org ${org})`);
      // The independent record: what the clients were told is accepted, by id and quantity.
      const acked = new Map<string, number>();
      let seq = 0;
      const loadMs = point.atMs + SVC_DOWN_MS + 6000;
      const stopAt = Date.now() + loadMs;
      const outcomes: Record<string, number> = {};
      const httpClient = async (n: number) => {
        while (Date.now() < stopAt) {
          const batch = Array.from({ length: 20 }, () => {
            const i = seq++;
            return {
              eventId: `h${n}_${i}`,
              organizationId: org,
              eventType: "api.call",
              quantity: 1 + (i % 3),
              timestamp: new Date().toISOString(),
            };
          });
          // A client retries the same ids until they are accepted (dedup makes that safe).
          for (let attempt = 0; attempt < 200; attempt++) {
            const r = await call(ctx.worker.url, `/v1/orgs/${org}/usage/events`, { token, body: { events: batch } });
            outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
            if (r.status === 202) {
              const rejected = new Set(
                ((r.json as { rejected?: { eventId?: string }[] }).rejected ?? []).map((x) => x.eventId),
              );
              for (const e of batch) if (!rejected.has(e.eventId)) acked.set(e.eventId, e.quantity);
              break;
            }
            await sleep(r.retryAfter ? Math.min(1000, Number(r.retryAfter) * 1000) : 500);
          }
        }
      };
      const amqpClient = async () => {
        let client: AMQPClient | undefined;
        let ch: AMQPChannel | undefined;
        let i = 0;
        while (Date.now() < stopAt) {
          const batch = Array.from({ length: 20 }, () =>
            createEvent({
              type: "document.viewed",
              organizationId: org,
              source: "/chaos",
              id: `r_${i++}`,
              data: { userId: "u_r", quantity: 1 },
            }),
          );
          for (let attempt = 0; attempt < 200; attempt++) {
            try {
              if (!ch) {
                client = await connectAmqp(ctx.bindings.RABBITMQ_URL!);
                ch = await client.channel();
                await ch.confirmSelect();
              }
              await Promise.race([
                Promise.all(
                  batch.map((e) => {
                    const m = eventMessage(e);
                    return ch!.basicPublish(rabbit.exchange, e.type, m.body, m.properties);
                  }),
                ),
                sleep(5000).then(() => Promise.reject(new Error("confirm timeout"))),
              ]);
              for (const e of batch) acked.set(e.id, 1);
              break;
            } catch {
              await client?.close().catch(() => undefined);
              client = undefined;
              ch = undefined;
              await sleep(500);
            }
          }
          await sleep(50);
        }
        await client?.close().catch(() => undefined);
      };
      const permToken = token;
      const sampler = new Sampler([
        { kind: "readyz", run: () => call(ctx.worker.url, "/readyz", { timeoutMs: 5000 }) },
        {
          kind: "write:ingest",
          run: () =>
            call(ctx.worker.url, `/v1/orgs/${org}/usage/events`, {
              token: permToken,
              body: {
                eventId: `probe_${randomUUID()}`,
                organizationId: org,
                eventType: "api.call",
                quantity: 0,
                timestamp: new Date().toISOString(),
              },
            }),
        },
        { kind: "read:quota", run: () => call(ctx.worker.url, `/v1/orgs/${org}/usage/quota`, { token: permToken }) },
      ]);
      sampler.start();
      const load = Promise.all([httpClient(0), httpClient(1), amqpClient()]);
      await sleep(point.atMs);
      const w = await injectFault(ctx, svc, sampler, () =>
        readyAndWrites(ctx, () =>
          call(ctx.worker.url, `/v1/orgs/${org}/usage/events`, {
            token,
            body: {
              eventId: `rec_${randomUUID()}`,
              organizationId: org,
              eventType: "api.call",
              quantity: 0,
              timestamp: new Date().toISOString(),
            },
          }),
        ),
      );
      await load;
      await sampler.stop();
      faults.push(
        faultReport("usage ingest (HTTP + RabbitMQ)", svc, point.name, sampler.samples, w, (m) => m.includes(svc)),
      );
      // After recovery: Postgres must hold exactly what was acknowledged.
      const expectCount = acked.size;
      const expectSum = [...acked.values()].reduce((a, b) => a + b, 0);
      const totals = async () =>
        (
          await q<{ n: number; s: number }>(
            ctx,
            `select count(*)::int as n, coalesce(sum(quantity), 0)::float8 as s from usage_log
              where organization_id = $1 and event_id not like 'probe_%' and event_id not like 'rec_%'`,
            [org],
          )
        )[0]!;
      const settleMs = await waitFor(
        "usage totals",
        async () => (await totals()).n >= expectCount,
        QUICK ? 120_000 : 240_000,
      );
      const t = await totals();
      const ids = new Set(
        (await q<{ id: string }>(ctx, "select event_id as id from usage_log where organization_id = $1", [org])).map(
          (r) => r.id,
        ),
      );
      const lost = [...acked.keys()].filter((k) => !ids.has(k)).length;
      // What a user reads: the metrics API (aggregates + the log's tail), which must not count twice.
      const from = new Date(Date.now() - 3 * 3600_000).toISOString();
      const to = new Date(Date.now() + 3600_000).toISOString();
      const m = (
        await call(
          ctx.worker.url,
          `/v1/orgs/${org}/usage/metrics?startTime=${encodeURIComponent(from)}&endTime=${encodeURIComponent(to)}&granularity=hour&metricTypes=api.call,document.viewed`,
          { token },
        )
      ).json as { totals?: Record<string, number> };
      const apiSum = (m.totals?.["api.call"] ?? Number.NaN) + (m.totals?.["document.viewed"] ?? Number.NaN);
      const deadLetters = (
        await q<{ n: number }>(ctx, "select count(*)::int as n from dead_letters where body::text like $1", [
          `%${org}%`,
        ])
      )[0]!.n;
      out.push({
        fault: svc,
        point: point.name,
        acknowledged_events: expectCount,
        stored_events: t.n,
        lost,
        double_counted_log: round(t.s - expectSum),
        double_counted_api: round(apiSum - expectSum),
        dead_letters: deadLetters,
        settle_ms: settleMs,
        client_outcomes: outcomes,
      });
      log(
        `  acked ${expectCount}, stored ${t.n}, lost ${lost}, log Σ ${t.s} / API Σ ${apiSum} vs ${expectSum}, dead letters ${deadLetters}, settle ${settleMs} ms`,
      );
    }
  }
  results.usage = out;
}

// ─────────────────────────── 2. webhook fan-out ───────────────────────────

async function webhookScenario(ctx: Ctx): Promise<void> {
  const out: Record<string, unknown>[] = [];
  for (const what of ["postgres", "worker"] as const) {
    for (const point of points()) {
      const org = `chaos_w_${what}_${point.name}_${randomUUID().slice(0, 6)}`.replace(/-/g, "_");
      await q(ctx, "insert into organizations (id, plan_id) values ($1, 'enterprise')", [org]);
      const token = await ctx.token(org);
      log(`webhooks × ${what} @ ${point.name} (org ${org})`);
      const hooks: string[] = [];
      for (let i = 0; i < 4; i++) {
        const slot = randomUUID().slice(0, 8);
        const r = await call(ctx.worker.url, `/v1/orgs/${org}/webhooks`, {
          token,
          body: { url: `${ctx.receiver.url}/h/${slot}`, events: ["document.shared"] },
        });
        const hook = r.json as { id: string; secret: string };
        if (r.status !== 201) throw new Error(`webhook create: ${r.status} ${JSON.stringify(r.json)}`);
        ctx.secrets.set(slot, hook.secret);
        hooks.push(hook.id);
        (hook as unknown as { slot: string }).slot = slot;
        ctx.secrets.set(`id:${hook.id}`, slot);
      }
      const accepted = new Set<string>();
      const outcomes: Record<string, number> = {};
      const stopAt = Date.now() + point.atMs + SVC_DOWN_MS + 6000;
      let n = 0;
      const producer = async () => {
        while (Date.now() < stopAt) {
          const eventId = `ev_${n++}`;
          for (let attempt = 0; attempt < 200; attempt++) {
            const r = await call(ctx.worker.url, `/v1/orgs/${org}/webhook-events`, {
              token,
              body: {
                eventId,
                eventType: "document.shared",
                organizationId: org,
                data: { n },
                occurredAt: new Date().toISOString(),
              },
            });
            outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
            if (r.status === 202) {
              accepted.add(eventId);
              break;
            }
            await sleep(r.retryAfter ? Math.min(1000, Number(r.retryAfter) * 1000) : 500);
          }
          await sleep(60);
        }
      };
      const sampler = new Sampler([
        { kind: "readyz", run: () => call(ctx.worker.url, "/readyz", { timeoutMs: 5000 }) },
        {
          kind: "read:circuit",
          run: () => call(ctx.worker.url, `/v1/orgs/${org}/webhooks/${hooks[0]}/circuit`, { token }),
        },
        {
          kind: "write:webhook-event",
          run: () =>
            call(ctx.worker.url, `/v1/orgs/${org}/webhook-events`, {
              token,
              body: {
                eventId: `probe_${randomUUID()}`,
                eventType: "document.shared",
                organizationId: org,
                data: {},
                occurredAt: new Date().toISOString(),
              },
            }),
        },
      ]);
      sampler.start();
      const load = Promise.all([producer(), producer()]);
      await sleep(point.atMs);
      const w = await injectFault(ctx, what, sampler, () =>
        readyAndWrites(ctx, () => call(ctx.worker.url, `/v1/orgs/${org}/webhooks/${hooks[0]}`, { token })),
      );
      await load;
      await sampler.stop();
      faults.push(
        faultReport("webhook fan-out (30 % failing receiver)", what, point.name, sampler.samples, w, (m) =>
          what === "worker" ? true : m.includes(what),
        ),
      );
      // Every accepted event × endpoint delivered with a verified signature; probes included.
      const expected = (): string[] => {
        const keys: string[] = [];
        for (const h of hooks) for (const e of accepted) keys.push(`${ctx.secrets.get(`id:${h}`)}|${e}`);
        return keys;
      };
      const missing = () => expected().filter((k) => !(ctx.received.get(k)?.ok ?? 0));
      let settleMs = await waitFor("webhook deliveries", async () => missing().length === 0, 240_000);
      // Still missing behind an open breaker: a flapping endpoint (30 % failures) is probed ever
      // less often (the cooldown doubles per failed probe round) — held, not lost. What its owner
      // would do: fix the endpoint and reset the breaker; then everything held must arrive.
      let heldByOpenCircuit = 0;
      const resets: string[] = [];
      if (missing().length > 0) {
        for (const h of hooks) {
          const c = (await call(ctx.worker.url, `/v1/orgs/${org}/webhooks/${h}/circuit`, { token })).json as {
            state?: string;
          };
          if (c.state === "open") resets.push(h);
        }
        if (resets.length > 0) {
          heldByOpenCircuit = missing().length;
          const rate = ctx.failRate.value;
          ctx.failRate.value = 0;
          for (const h of resets)
            await call(ctx.worker.url, `/v1/orgs/${org}/webhooks/${h}/circuit/reset`, { token, body: {} });
          log(`  ${heldByOpenCircuit} held by ${resets.length} open breaker(s): receiver healthy, breaker reset`);
          settleMs = await waitFor("held webhook deliveries", async () => missing().length === 0, 60_000);
          ctx.failRate.value = rate;
        }
      }
      const keys = expected();
      const dup = keys.reduce((a, k) => a + Math.max(0, (ctx.received.get(k)?.ok ?? 0) - 1), 0);
      const bad = keys.reduce((a, k) => a + (ctx.received.get(k)?.bad ?? 0), 0);
      const attempts = keys.reduce((a, k) => a + (ctx.received.get(k)?.attempts ?? 0), 0);
      // Circuits: the object's state and the Postgres mirror agree once quiet.
      let circuitMismatch = 0;
      const circuits: string[] = [];
      await sleep(1000);
      for (const h of hooks) {
        const api = (await call(ctx.worker.url, `/v1/orgs/${org}/webhooks/${h}/circuit`, { token })).json as {
          state?: string;
        };
        const row = (await q<{ s: string }>(ctx, "select circuit_state as s from webhooks where id = $1", [h]))[0];
        circuits.push(`${api.state}/${row?.s}`);
        if (api.state !== row?.s) circuitMismatch++;
      }
      const statuses = Object.fromEntries(
        (
          await q<{ status: string; n: number }>(
            ctx,
            "select status, count(*)::int as n from webhook_deliveries where webhook_id = any($1) and event_id = any($2) group by 1",
            [hooks, [...accepted]],
          )
        ).map((r) => [r.status, r.n]),
      );
      out.push({
        fault: what,
        point: point.name,
        events_accepted: accepted.size,
        deliveries_expected: keys.length,
        delivered_verified: keys.length - missing().length,
        lost: missing().length,
        duplicates: dup,
        bad_signatures: bad,
        attempts,
        delivery_rows_by_status: statuses,
        circuit_api_vs_db: circuits,
        circuit_mismatches: circuitMismatch,
        held_by_open_circuit: heldByOpenCircuit,
        circuit_resets: resets.length,
        settle_ms: settleMs,
        client_outcomes: outcomes,
      });
      log(
        `  ${accepted.size} events × 4: lost ${missing().length}, dup ${dup}, bad sig ${bad}, circuits ${circuits.join(" ")}, settle ${settleMs} ms`,
      );
    }
  }
  results.webhooks = out;
}

// ─────────────────────────── 3. outbox relay ───────────────────────────

async function outboxScenario(ctx: Ctx): Promise<void> {
  const out: Record<string, unknown>[] = [];
  const rabbit = topology({
    url: ctx.bindings.RABBITMQ_URL!,
    exchange: ctx.bindings.RABBITMQ_EXCHANGE!,
    queuePrefix: ctx.bindings.RABBITMQ_QUEUE_PREFIX!,
  });
  const n = QUICK ? 3000 : 6000;
  for (const point of QUICK
    ? [{ name: "mid-batch", atMs: 300 }]
    : [
        { name: "first-batch", atMs: 50 },
        { name: "mid-batch", atMs: 400 },
        { name: "late", atMs: 1500 },
      ]) {
    const tag = randomUUID().slice(0, 8);
    const tap = `${ctx.bindings.RABBITMQ_QUEUE_PREFIX}chaos-tap-${tag}`;
    const org = `chaos_o_${tag}`;
    // A durable tap: it and the persistent messages survive the broker's restart.
    const c = await connectAmqp(ctx.bindings.RABBITMQ_URL!);
    const ch = await c.channel();
    await ch.queueDeclare(tap, { durable: true });
    await ch.queueBind(tap, rabbit.exchange, "team.updated");
    await c.close();
    log(`outbox × rabbitmq @ ${point.name}: ${n} events`);
    const pg = await ctx.pg();
    const ids: string[] = [];
    try {
      for (let i = 0; i < n; i += 1000) {
        const evs = Array.from({ length: Math.min(1000, n - i) }, (_, k) =>
          createEvent({
            type: "team.updated",
            organizationId: org,
            source: "/chaos",
            id: `o_${tag}_${i + k}`,
            data: { i: i + k },
          }),
        );
        ids.push(...evs.map((e) => e.id));
        await pg.query(
          `insert into outbox (id, type, organization_id, event)
           select e->>'id', e->>'type', e->>'organizationid', e::json from jsonb_array_elements($1::jsonb) with ordinality x(e, k) order by k`,
          [JSON.stringify(evs)],
        );
      }
    } finally {
      await pg.end();
    }
    const sampler = new Sampler([{ kind: "readyz", run: () => call(ctx.worker.url, "/readyz", { timeoutMs: 5000 }) }]);
    sampler.start();
    // Kick the relay (the every-minute cron runs it) and kill the broker while it publishes.
    const kick = fetch(`${ctx.worker.url}/__scheduled?cron=${encodeURIComponent("* * * * *")}`).catch(() => undefined);
    // Mid-batch: once the relay has published part of the rows (or after atMs at the latest).
    const unpublished = async () =>
      (
        await q<{ n: number }>(
          ctx,
          "select count(*)::int as n from outbox where organization_id = $1 and published_at is null",
          [org],
        )
      )[0]!.n;
    for (const until = Date.now() + 10_000; Date.now() < until; await sleep(20)) {
      const left = await unpublished();
      if (left < n * (point.atMs < 100 ? 0.98 : point.atMs < 1000 ? 0.7 : 0.4)) break;
    }
    const pendingAtKill = (
      await q<{ n: number }>(
        ctx,
        "select count(*)::int as n from outbox where organization_id = $1 and published_at is null",
        [org],
      )
    )[0]!.n;
    const w = await injectFault(
      ctx,
      "rabbitmq",
      sampler,
      async () => (await call(ctx.worker.url, "/readyz", { timeoutMs: 5000 })).status === 200,
    );
    await kick;
    const pending = async () =>
      (
        await q<{ n: number }>(
          ctx,
          "select count(*)::int as n from outbox where organization_id = $1 and published_at is null",
          [org],
        )
      )[0]!.n;
    const settleMs = await waitFor("outbox drained", async () => (await pending()) === 0, 240_000);
    await sampler.stop();
    faults.push(faultReport("outbox relay", "rabbitmq", point.name, sampler.samples, w, (m) => m.includes("rabbitmq")));
    // Count what reached the broker.
    const seen = new Map<string, number>();
    const c2 = await connectAmqp(ctx.bindings.RABBITMQ_URL!);
    const ch2 = await c2.channel();
    for (let empty = 0; empty < 3; ) {
      const m = await ch2.basicGet(tap, { noAck: true });
      if (!m) {
        empty++;
        await sleep(200);
        continue;
      }
      const id2 = (JSON.parse(m.bodyToString() ?? "{}") as { id?: string }).id ?? "";
      seen.set(id2, (seen.get(id2) ?? 0) + 1);
    }
    await ch2.queueDelete(tap).catch(() => undefined);
    await c2.close();
    const lost = ids.filter((i) => !seen.has(i)).length;
    const dup = [...seen.values()].reduce((a, v) => a + v - 1, 0);
    const stuck = await pending();
    out.push({
      point: point.name,
      events: n,
      pending_at_kill: pendingAtKill,
      on_broker: seen.size,
      lost,
      duplicates: dup,
      stuck_rows: stuck,
      drain_ms: settleMs,
    });
    log(
      `  pending at kill ${pendingAtKill}, broker got ${seen.size}/${n}, dup ${dup}, stuck ${stuck}, drained in ${settleMs} ms`,
    );
  }
  results.outbox = out;
}

// ─────────────────────────── 4. teams ───────────────────────────

async function teamsScenario(ctx: Ctx): Promise<void> {
  const out: Record<string, unknown>[] = [];
  for (const point of points()) {
    const org = `chaos_t_${point.name}_${randomUUID().slice(0, 6)}`.replace(/-/g, "_");
    await q(ctx, "insert into organizations (id, plan_id) values ($1, 'enterprise')", [org]);
    const admin = await ctx.token(org, "u_admin");
    log(`teams × postgres @ ${point.name} (org ${org})`);
    const teams: string[] = [];
    for (let i = 0; i < 16; i++) {
      const r = await call(ctx.worker.url, `/v1/orgs/${org}/teams`, { token: admin, body: { name: `t${i}` } });
      if (r.status !== 201) throw new Error(`team create: ${r.status} ${JSON.stringify(r.json)}`);
      teams.push((r.json as { id: string }).id);
    }
    // The cached read probed during the fault: a team and a member the load never touches (an
    // entry is served only while nothing it read changed). The churned one — u_admin on a team
    // the load moves and whose memberships it keeps changing — shows stale entries are not served.
    const probe = await call(ctx.worker.url, `/v1/orgs/${org}/teams`, { token: admin, body: { name: "probe" } });
    if (probe.status !== 201) throw new Error(`team create: ${probe.status} ${JSON.stringify(probe.json)}`);
    const probeTeam = (probe.json as { id: string }).id;
    const added = await call(ctx.worker.url, `/v1/orgs/${org}/teams/${probeTeam}/members`, {
      token: admin,
      body: { userId: "u_probe", role: "member" },
    });
    if (added.status !== 201) throw new Error(`member add: ${added.status} ${JSON.stringify(added.json)}`);
    const stableCheck = () =>
      call(ctx.worker.url, `/v1/orgs/${org}/teams/${probeTeam}/permissions/check`, {
        token: admin,
        body: { userId: "u_probe", permission: "team.read" },
      });
    const churnedCheck = () =>
      call(ctx.worker.url, `/v1/orgs/${org}/teams/${teams[0]}/permissions/check`, {
        token: admin,
        body: { userId: "u_admin", permission: "team.read" },
      });
    await stableCheck(); // one check with Postgres up caches it
    await churnedCheck();
    const acceptOk = new Map<string, number>();
    const stopAt = Date.now() + point.atMs + SVC_DOWN_MS + 6000;
    const outcomes: Record<string, number> = {};
    const note = (k: string, o: string) => (outcomes[`${k}:${o}`] = (outcomes[`${k}:${o}`] ?? 0) + 1);
    let inv = 0;
    const mover = async () => {
      while (Date.now() < stopAt) {
        const a = teams[Math.floor(Math.random() * teams.length)]!;
        const b = Math.random() < 0.2 ? null : teams[Math.floor(Math.random() * teams.length)]!;
        const r = await call(ctx.worker.url, `/v1/orgs/${org}/teams/${a}/move`, {
          token: admin,
          body: { newParentId: b },
        });
        note("move", r.status === 409 ? "409" : r.outcome);
      }
    };
    const ownerRemover = async () => {
      while (Date.now() < stopAt) {
        const t = teams[Math.floor(Math.random() * teams.length)]!;
        // Two owners removed at once: at most one may go, the team keeps an owner.
        const u = `u_o${inv++}`;
        await call(ctx.worker.url, `/v1/orgs/${org}/teams/${t}/members`, {
          token: admin,
          body: { userId: u, role: "owner" },
        });
        const [r1, r2] = await Promise.all([
          call(ctx.worker.url, `/v1/orgs/${org}/teams/${t}/members/u_admin`, { token: admin, method: "DELETE" }),
          call(ctx.worker.url, `/v1/orgs/${org}/teams/${t}/members/${u}`, { token: admin, method: "DELETE" }),
        ]);
        note("remove-owner", r1.outcome);
        note("remove-owner", r2.outcome);
        // Put the admin back as owner for the next round.
        await call(ctx.worker.url, `/v1/orgs/${org}/teams/${t}/members`, {
          token: admin,
          body: { userId: "u_admin", role: "owner" },
        });
      }
    };
    const inviter = async () => {
      while (Date.now() < stopAt) {
        const t = teams[Math.floor(Math.random() * teams.length)]!;
        const email = `i${inv++}_${randomUUID().slice(0, 4)}@example.com`;
        const r = await call(ctx.worker.url, `/v1/orgs/${org}/teams/${t}/invitations`, {
          token: admin,
          body: { email, role: "member" },
        });
        note("invite", r.outcome);
        if (r.status !== 201) continue;
        const { id: invId, token: invToken } = r.json as { id: string; token: string };
        const users = ["a", "b", "c"].map((s) => `u_${s}_${invId.slice(-6)}`);
        const rs = await Promise.all(
          users.map(async (u) =>
            call(ctx.worker.url, "/v1/invitations/accept", {
              token: await ctx.token(org, u, { email, scopes: ["teams:read", "teams:write"] }),
              body: { token: invToken },
            }),
          ),
        );
        for (const x of rs) note("accept", x.status === 400 ? "400" : x.outcome);
        acceptOk.set(invId, rs.filter((x) => x.status < 300).length);
      }
    };
    const sampler = new Sampler([
      { kind: "readyz", run: () => call(ctx.worker.url, "/readyz", { timeoutMs: 5000 }) },
      { kind: "read:permission-check(cached)", run: stableCheck },
      { kind: "read:permission-check(under churn)", run: churnedCheck },
      {
        kind: "write:team-update",
        run: () =>
          call(ctx.worker.url, `/v1/orgs/${org}/teams/${teams[1]}`, {
            token: admin,
            method: "PATCH",
            body: { description: randomUUID() },
          }),
      },
    ]);
    sampler.start();
    const load = Promise.all([mover(), mover(), ownerRemover(), inviter()]);
    await sleep(point.atMs);
    const w = await injectFault(ctx, "postgres", sampler, () =>
      readyAndWrites(ctx, () =>
        call(ctx.worker.url, `/v1/orgs/${org}/teams/${teams[1]}`, {
          token: admin,
          method: "PATCH",
          body: { description: "x" },
        }),
      ),
    );
    await load;
    await sampler.stop();
    faults.push(
      faultReport("team moves / owner removals / invitation accepts", "postgres", point.name, sampler.samples, w, (m) =>
        m.includes("postgres"),
      ),
    );
    const cycles = (
      await q<{ n: number }>(
        ctx,
        `with recursive walk(start, id, depth) as (
           select id, parent_team_id, 1 from teams where organization_id = $1 and parent_team_id is not null
           union all
           select w.start, t.parent_team_id, w.depth + 1 from walk w join teams t on t.id = w.id
            where t.parent_team_id is not null and w.depth < 100 and w.id <> w.start)
         select count(distinct start)::int as n from walk where id = start`,
        [org],
      )
    )[0]!.n;
    const ownerless = (
      await q<{ n: number }>(
        ctx,
        `select count(*)::int as n from teams t where t.organization_id = $1
           and not exists (select 1 from team_memberships m where m.team_id = t.id and m.role = 'owner')`,
        [org],
      )
    )[0]!.n;
    const doubleAccepted = [...acceptOk.values()].filter((v) => v > 1).length;
    const acceptedEvents = (
      await q<{ n: number }>(
        ctx,
        `select count(*)::int as n from (select event->'data'->>'invitationId' as i from outbox
           where organization_id = $1 and type = 'invitation.accepted' group by 1 having count(*) > 1) x`,
        [org],
      )
    )[0]!.n;
    out.push({
      point: point.name,
      cycles,
      ownerless_teams: ownerless,
      invitations: acceptOk.size,
      double_accepted_http: doubleAccepted,
      double_accepted_events: acceptedEvents,
      outcomes,
    });
    log(
      `  cycles ${cycles}, ownerless ${ownerless}, invitations ${acceptOk.size}, double-accepted ${doubleAccepted}/${acceptedEvents}`,
    );
  }
  results.teams = out;
}

// ─────────────────────────── load soak ───────────────────────────

async function soak(ctx: Ctx): Promise<void> {
  const minutes = Number(args["soak-minutes"] ?? (QUICK ? 2 : 10));
  const org = `chaos_soak_${randomUUID().slice(0, 6)}`;
  await q(ctx, "insert into organizations (id, plan_id) values ($1, 'enterprise')", [org]);
  const token = await ctx.token(org, "u_admin");
  ctx.failRate.value = 0;
  const team = (await call(ctx.worker.url, `/v1/orgs/${org}/teams`, { token, body: { name: "soak" } })).json as {
    id: string;
  };
  const slot = randomUUID().slice(0, 8);
  const hook = (
    await call(ctx.worker.url, `/v1/orgs/${org}/webhooks`, {
      token,
      body: { url: `${ctx.receiver.url}/h/${slot}`, events: ["document.shared"] },
    })
  ).json as { id: string; secret: string };
  ctx.secrets.set(slot, hook.secret);
  let n = 0;
  const allOps: (() => ReturnType<typeof call>)[] = [
    () =>
      call(ctx.worker.url, `/v1/orgs/${org}/usage/events`, {
        token,
        body: {
          events: Array.from({ length: 10 }, () => ({
            eventId: `s${n++}`,
            organizationId: org,
            eventType: "api.call",
            timestamp: new Date().toISOString(),
          })),
        },
      }),
    () =>
      call(
        ctx.worker.url,
        `/v1/orgs/${org}/usage/metrics?startTime=${encodeURIComponent(new Date(Date.now() - 3600_000).toISOString())}&endTime=${encodeURIComponent(new Date().toISOString())}&granularity=minute&metricTypes=api.call`,
        { token },
      ),
    () =>
      call(ctx.worker.url, `/v1/orgs/${org}/teams/${team.id}/permissions/check`, {
        token,
        body: { userId: "u_admin", permission: "team.update" },
      }),
    () =>
      call(ctx.worker.url, `/v1/orgs/${org}/teams/${team.id}/permissions/check`, {
        token,
        body: { userId: "u_admin", permission: "team.read" },
      }),
    () =>
      call(ctx.worker.url, `/v1/orgs/${org}/webhook-events`, {
        token,
        body: {
          eventId: `se${n++}`,
          eventType: "document.shared",
          organizationId: org,
          data: {},
          occurredAt: new Date().toISOString(),
        },
      }),
    () => call(ctx.worker.url, "/healthz", {}),
  ];
  const allNames = ["ingest", "metrics", "check-update", "check-read", "webhook-event", "healthz"];
  // `--soak-ops a,b`: only those (to tell which part of the mix a trend comes from); default the mix.
  const picked = typeof args["soak-ops"] === "string" ? args["soak-ops"].split(",") : allNames.slice(0, 5);
  const unknown = picked.filter((p) => !allNames.includes(p));
  if (unknown.length) throw new Error(`--soak-ops: unknown ${unknown.join(", ")} (known: ${allNames.join(", ")})`);
  const ops = picked.map((p) => allOps[allNames.indexOf(p)]!);
  const opNames = picked;
  const errorKinds: Record<string, number> = {};
  // Capacity: closed loop at 8 in flight for 20 s (the mix, round robin). `--soak-rate N` offers N
  // req/s instead and skips it: the same load for two mixes, and no burst whose high-water mark
  // would hide a slower trend in memory.
  const fixedRate = args["soak-rate"] !== undefined ? numArg(args, "soak-rate", 0) : undefined;
  let capacity = 0;
  if (fixedRate === undefined) {
    log("soak: measuring capacity (20 s, 8 in flight)");
    let done = 0;
    const capEnd = Date.now() + 20_000;
    await Promise.all(
      Array.from({ length: 8 }, async (_, k) => {
        for (let i = k; Date.now() < capEnd; i += 8) {
          await ops[i % ops.length]!();
          done++;
        }
      }),
    );
    capacity = done / 20;
  }
  const rate = fixedRate ?? capacity * 0.7;
  log(`soak: capacity ${capacity.toFixed(0)} req/s (0: not measured); ${minutes} min at ${rate.toFixed(0)} req/s`);
  const perMinute: {
    minute: number;
    n: number;
    errors: number;
    p50: number;
    p99: number;
    workerd_rss_mb: number;
    workerd_rss_anon_mb: number;
    workerd_rss_file_mb: number;
    workerd_heap_used_mb?: number;
    workerd_heap_committed_mb?: number;
    workerd_heap_embedder_mb?: number;
    workerd_live_heap_mb?: number;
    workerd_rss_anon_after_gc_mb?: number;
    other_isolates_collected?: number;
    workerd_fds: number;
    proxy_workerd_rss_mb?: number;
    proxy_workerd_rss_anon_mb?: number;
    pg_connections: number;
    outbox_lag_s: number;
    webhook_backlog: number;
  }[] = [];
  const start = Date.now();
  let lat: number[] = [];
  let errors = 0;
  const inflight = new Set<Promise<unknown>>();
  let i = 0;
  // `--heap [worker|others|all]`: each minute the Worker isolate's V8 heap as it is (used,
  // committed, workerd's C++ objects on V8's cppgc heap), then a full GC and the Worker's workerd
  // RSS after it — of the Worker's isolate (`worker`, a bare `--heap`: its live heap), of every
  // other isolate of the process (`others`, Miniflare only: its entry worker, assets router, queue
  // broker…, which a deployed Worker does not have), or of all of them (`all`). With
  // `--heap-snapshots DIR`, a snapshot of the Worker's isolate after the first and the last minute.
  // The GC changes what it measures: RSS before it is this minute's, after it what GC gives back.
  const heapMode = args.heap === true ? "worker" : typeof args.heap === "string" ? args.heap : undefined;
  if (heapMode && !["worker", "others", "all"].includes(heapMode))
    throw new Error(`--heap: worker, others or all, got ${heapMode}`);
  if ((heapMode === "others" || heapMode === "all") && ctx.worker.runtime !== "miniflare")
    throw new Error(
      `--heap ${heapMode}: --runtime miniflare only (wrangler's inspector proxy shows the Worker's isolate alone)`,
    );
  const inspectorPort = ctx.worker.inspectorPort;
  const inspector = inspectorPort ? await Inspector.connect(inspectorPort, ctx.worker.inspectorTarget) : undefined;
  const otherIsolates =
    inspectorPort && (heapMode === "others" || heapMode === "all")
      ? await Promise.all(
          (await Inspector.targets(inspectorPort))
            .filter((id) => id !== ctx.worker.inspectorTarget)
            .map((id) => Inspector.connect(inspectorPort, id)),
        )
      : [];
  const collectWorker = heapMode === "worker" || heapMode === "all";
  // workerd runs a requested GC the next time the isolate has work: the load goes on while a
  // minute is sampled, and a `/healthz` every 200 ms nudges the entry and Worker isolates after
  // it ends. An isolate with no work within 10 s (no asset, no queue message…) is left pending,
  // not asked twice, and counted apart.
  const gcPending = new Set<Inspector>();
  const nudged = async <T>(work: Promise<T>): Promise<T | undefined> => {
    let done = false;
    const result = work.finally(() => {
      done = true;
    });
    for (let k = 0; k < 50 && !done; k++) {
      await Promise.race([result.catch(() => undefined), sleep(200)]);
      if (!done) void fetch(`${ctx.worker.url}/healthz`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
    }
    return done ? result.catch(() => undefined) : undefined;
  };
  const collectOthers = async (): Promise<number> => {
    const asked = otherIsolates
      .filter((o) => !gcPending.has(o))
      .map((o) => {
        gcPending.add(o);
        return o
          .collectGarbage()
          .catch(() => undefined)
          .finally(() => gcPending.delete(o));
      });
    await nudged(Promise.all(asked));
    return otherIsolates.length - gcPending.size;
  };
  const snapshotDir = typeof args["heap-snapshots"] === "string" ? args["heap-snapshots"] : undefined;
  const sampleMinute = async (minute: number) => {
    const pid = ctx.worker.workerdPid();
    const proxy = ctx.worker.proxyPid();
    const mb = (bytes: number) => round(bytes / 2 ** 20, 1);
    const rss = pid
      ? { all: rssBytes(pid), anon: rssBytes(pid, "RssAnon"), file: rssBytes(pid, "RssFile") }
      : undefined;
    const asIs = inspector ? await inspector.heapUsage().catch(() => undefined) : undefined;
    const collected = otherIsolates.length ? await collectOthers() : undefined;
    const heap = inspector && collectWorker ? await nudged(inspector.liveHeapBytes()) : undefined;
    const anonAfterGc = inspector && pid ? rssBytes(pid, "RssAnon") : undefined;
    if (inspector && snapshotDir && (minute === 1 || Date.now() - start >= minutes * 60_000))
      await inspector
        .snapshot(path.join(snapshotDir, `soak-${minute}.heapsnapshot`))
        .catch((e) => log(`snapshot: ${e}`));
    const [pgc] = await q<{ n: number; lag: number; backlog: number }>(
      ctx,
      `select (select count(*)::int from pg_stat_activity where datname = current_database()) as n,
              (select coalesce(extract(epoch from now() - min(created_at)), 0)::float8 from outbox where published_at is null) as lag,
              (select count(*)::int from webhook_deliveries where status = 'pending') as backlog`,
    );
    perMinute.push({
      minute,
      n: lat.length,
      errors,
      p50: round(percentile(lat, 50), 1),
      p99: round(percentile(lat, 99), 1),
      workerd_rss_mb: rss ? mb(rss.all) : 0,
      // File-backed pages (mapped files) are the kernel's to drop; anonymous memory is the process's own.
      workerd_rss_anon_mb: rss ? mb(rss.anon) : 0,
      workerd_rss_file_mb: rss ? mb(rss.file) : 0,
      ...(asIs
        ? {
            workerd_heap_used_mb: mb(asIs.usedSize),
            workerd_heap_committed_mb: mb(asIs.totalSize),
            workerd_heap_embedder_mb: mb(asIs.embedderHeapUsedSize ?? 0),
          }
        : {}),
      ...(heap !== undefined ? { workerd_live_heap_mb: mb(heap) } : {}),
      ...(anonAfterGc !== undefined ? { workerd_rss_anon_after_gc_mb: mb(anonAfterGc) } : {}),
      ...(collected !== undefined ? { other_isolates_collected: collected } : {}),
      workerd_fds: pid ? fdCount(pid) : 0,
      // Under wrangler dev: its ProxyWorker's workerd, apart (runs before this fix sampled it alone).
      ...(proxy
        ? {
            proxy_workerd_rss_mb: mb(rssBytes(proxy)),
            proxy_workerd_rss_anon_mb: mb(rssBytes(proxy, "RssAnon")),
          }
        : {}),
      pg_connections: pgc?.n ?? -1,
      outbox_lag_s: round(pgc?.lag ?? -1, 1),
      webhook_backlog: pgc?.backlog ?? -1,
    });
    log(`soak minute ${minute}: ${JSON.stringify(perMinute.at(-1))}`);
    lat = [];
    errors = 0;
  };
  let minute = 1;
  let sampling: Promise<void> | undefined;
  while (Date.now() - start < minutes * 60_000) {
    const due = Math.floor(((Date.now() - start) / 1000) * rate);
    while (i < due && inflight.size < 64) {
      const k = i++ % ops.length;
      const op = ops[k]!;
      const p = op().then((r) => {
        if (r.outcome === "ok") lat.push(r.ms);
        else {
          errors++;
          const key = `${opNames[k]} ${r.status}`;
          errorKinds[key] = (errorKinds[key] ?? 0) + 1;
        }
      });
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
    if (!sampling && Date.now() - start >= minute * 60_000)
      sampling = sampleMinute(minute++).finally(() => {
        sampling = undefined;
      });
    await sleep(10);
  }
  await sampling;
  await Promise.all(inflight);
  if (lat.length) await sampleMinute(minute);
  inspector?.close();
  for (const other of otherIsolates) other.close();
  const first = perMinute[0];
  const last = perMinute.at(-1);
  results.soak = {
    minutes,
    runtime: ctx.worker.runtime,
    capacity_req_per_s: round(capacity, 1),
    offered_req_per_s: round(rate, 1),
    mix: args["soak-ops"]
      ? picked.join(", ")
      : "usage ingest (10 events), metrics query, 2 permission checks, webhook fan-out (1 endpoint)",
    ...(heapMode
      ? {
          full_gc_each_minute: {
            worker: "the Worker's isolate",
            others: `the ${otherIsolates.length} other isolates of the Worker's workerd (${ctx.worker.runtime}'s own)`,
            all: `every isolate of the Worker's workerd (${otherIsolates.length + 1})`,
          }[heapMode],
        }
      : {}),
    per_minute: perMinute,
    p99_last_over_first: first && last ? round(last.p99 / first.p99, 2) : null,
    rss_last_over_first:
      first && last && first.workerd_rss_mb ? round(last.workerd_rss_mb / first.workerd_rss_mb, 2) : null,
    rss_anon_after_gc_last_over_first:
      first?.workerd_rss_anon_after_gc_mb && last?.workerd_rss_anon_after_gc_mb
        ? round(last.workerd_rss_anon_after_gc_mb / first.workerd_rss_anon_after_gc_mb, 2)
        : null,
    pg_connections_first_last: first && last ? [first.pg_connections, last.pg_connections] : null,
    max_outbox_lag_s: Math.max(...perMinute.map((m) => m.outbox_lag_s)),
    errors_by_op_and_status: errorKinds,
  };
}

// ─────────────────────────── the fuzzer, with more cases ───────────────────────────

async function runFuzz(): Promise<Record<string, unknown>> {
  const runs = Number(args["fuzz-runs"] ?? (QUICK ? 10 : 60));
  const seed = Number(args["fuzz-seed"] ?? Date.now() % 1_000_000);
  log(`fuzz: ${runs} cases per operation, seed ${seed}`);
  const started = Date.now();
  const env: NodeJS.ProcessEnv = { ...process.env, FUZZ_RUNS: String(runs), FUZZ_SEED: String(seed) };
  delete env.LOCAL_STACK_OWN; // the test run uses its own per-run names on the usual servers
  delete env.LOCAL_STACK_DIR;
  const child = spawn(
    process.execPath,
    [
      path.join(ROOT, "node_modules", "vitest", "vitest.mjs"),
      "run",
      "--config",
      "test/vitest.config.ts",
      "--project",
      "integration",
      "test/integration/platform/fuzz.test.ts",
      "--silent=false", // the summary line is a console.log of a passing test
    ],
    { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] },
  );
  // Keep only what is parsed below: the request log of thousands of cases is megabytes.
  let text = "";
  const keep = (d: Buffer) => {
    for (const line of d.toString().split("\n"))
      if (/fuzz: \d+ operations|→|Tests |FAIL|Error/.test(line)) text += `${line.slice(0, 2000)}\n`;
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const code = await new Promise<number>((r) => child.on("exit", (c) => r(c ?? 1)));
  const summary = /fuzz: (\d+) operations, (\d+) cases, statuses (\{[^}]*\})/.exec(text);
  const failures = [...text.matchAll(/"([A-Z]+ \/[^"]{0,200}→[^"]{0,200})"/g)].map((m) => m[1]).slice(0, 20);
  return {
    seed,
    runs_per_operation: runs,
    passed: code === 0,
    operations: summary ? Number(summary[1]) : null,
    cases: summary ? Number(summary[2]) : null,
    statuses: summary ? JSON.parse(summary[3]!) : null,
    failures,
    ms: Date.now() - started,
  };
}

main().then(
  (code) => process.exit(code),
  (err) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    writeResults();
    process.exit(1);
  },
);
