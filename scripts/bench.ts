import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Redis } from "@upstash/redis";
import type {
  BenchContext,
  BenchModule,
  BenchResult,
  BenchResultFile,
  BenchWorker,
  ReceiverHandler,
} from "../bench/harness.ts";
import { parseBenchArgs, startReceiver } from "../bench/harness.ts";
import { buildAssets } from "./build-assets.ts";
import { ensureStack } from "./stack.ts";
import { startLocalEnv } from "./lib/local-env.ts";
import type { LocalEnv } from "./lib/local-env.ts";
import { closePgProxy, databaseUrl, dropDatabase } from "./lib/pg.ts";

/**
 * `npm run bench -- <name> [--flags]`: fresh database `cm_bench_<id>` + Redis prefix `cm:bench:<id>:`,
 * bench/worker.ts in workerd via wrangler's `unstable_startWorker` (wrangler.toml's compatibility
 * settings, entry overridden), then `bench/<name>.ts`'s `run(ctx)`; prints the result and writes
 * `bench/results/<name>.json`. Everything started here is torn down, also on failure or Ctrl-C.
 * Harness flags: `--timeout <s>` (whole run, default 300), `--verbose` (wrangler/stack logs), `--out <file>`
 * (result name, default `<name>`).
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const [arg0, ...rest] = process.argv.slice(2);
const name = arg0 ?? "";
if (!name || !/^[a-z][a-z0-9_-]*$/.test(name) || !existsSync(path.join(ROOT, "bench", `${name}.ts`))) {
  console.error("usage: npm run bench -- <name> [--flags]   (runs bench/<name>.ts)");
  process.exit(2);
}
const args = parseBenchArgs(rest);
const verbose = args.verbose === true;
const timeoutS = Number(args.timeout ?? 300);
// `--out <file>`: the result's name under bench/results/ (default: the benchmark's), so a partial run
// (`--skip-…`) can be kept beside the full one instead of replacing it.
const outName = typeof args.out === "string" ? args.out : name;
if (!/^[a-z][a-z0-9_-]*$/.test(outName)) {
  console.error("--out must be a plain file name (letters, digits, - and _)");
  process.exit(2);
}
if (!(timeoutS > 0)) {
  console.error("--timeout must be a positive number of seconds");
  process.exit(2);
}
const t0 = Date.now();
const log = (msg: string) => process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);

// ─── teardown: LIFO, each step bounded, runs once whatever happens ───
const cleanups: { label: string; fn: () => unknown }[] = [];
const defer = (label: string, fn: () => unknown) => void cleanups.push({ label, fn });
let tearingDown: Promise<void> | undefined;
function teardown(): Promise<void> {
  tearingDown ??= (async () => {
    for (const { label, fn } of cleanups.reverse()) {
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise(
        (_, reject) => (timer = setTimeout(() => reject(new Error("timed out after 20 s")), 20_000)),
      );
      try {
        await Promise.race([Promise.resolve().then(fn), limit]);
      } catch (err) {
        log(`teardown ${label} failed: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        clearTimeout(timer);
      }
    }
  })();
  return tearingDown;
}

const abort = new AbortController();
let exiting = false;
const stopOn = (why: string, code: number) => {
  if (exiting) {
    log("second signal: exiting without finishing teardown");
    process.exit(code);
  }
  exiting = true;
  log(`${why}: tearing down`);
  abort.abort(new Error(why));
  void teardown().finally(() => {
    log("torn down");
    process.exit(code);
  });
};
const SIGNALS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
const ownSignalHandlers = new Set<unknown>();
for (const [sig, code] of Object.entries(SIGNALS)) {
  const handler = () => stopOn(sig, code);
  ownSignalHandlers.add(handler);
  process.on(sig, handler);
}
/**
 * Miniflare (inside wrangler) installs SIGINT/SIGTERM/SIGHUP handlers that kill workerd and call
 * process.exit() at once, which would skip our async teardown (database drop, Redis keys). Drop
 * them; its process "exit" hook, which kills workerd, stays, and our teardown disposes it anyway.
 */
function removeForeignSignalHandlers(): void {
  for (const sig of Object.keys(SIGNALS)) {
    for (const l of process.listeners(sig as NodeJS.Signals))
      if (!ownSignalHandlers.has(l)) process.removeListener(sig, l);
  }
}
const overall = setTimeout(() => stopOn(`time limit of ${timeoutS} s reached`, 124), timeoutS * 1000);
overall.unref();

function git(...a: string[]): string {
  try {
    return execFileSync("git", a, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "";
  }
}

/** Deletes this run's Redis keys through the Upstash adapter (SCAN/DEL, bounded). */
async function deleteRedisKeys(bindings: Record<string, string>, prefix: string): Promise<number> {
  const redis = new Redis({
    url: bindings.UPSTASH_REDIS_REST_URL!,
    token: bindings.UPSTASH_REDIS_REST_TOKEN!,
    automaticDeserialization: false,
    enableTelemetry: false,
  });
  let cursor = "0";
  let deleted = 0;
  const deadline = Date.now() + 15_000;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    const [next, keys] = await redis.scan(cursor, { match: `${prefix}*`, count: 1000 });
    if (keys.length) deleted += await redis.del(...keys);
    cursor = String(next);
    if (cursor === "0") break;
  }
  return deleted;
}

function checkTarget(value: number | undefined, target: string): string {
  const m = /^\s*(<=|>=|<|>)\s*(-?[\d.]+)\s*$/.exec(target);
  if (!m || value === undefined || !Number.isFinite(value)) return "unknown";
  const bound = Number(m[2]);
  const ok = { "<": value < bound, "<=": value <= bound, ">": value > bound, ">=": value >= bound }[
    m[1] as "<" | "<=" | ">" | ">="
  ];
  return ok ? "ok" : "missed";
}

const fmt = (v: number) => (Number.isFinite(v) ? v.toLocaleString("en-US", { maximumFractionDigits: 3 }) : "n/a");

function report(result: BenchResult, file: BenchResultFile): void {
  const keys = Object.keys(result.figures);
  const width = Math.max(10, ...keys.map((k) => k.length));
  const lines = [
    `\n== bench ${result.name} @ ${file.commit} — ${file.machine.cpus}× ${file.machine.cpuModel}, node ${file.node}, ${(file.durationMs / 1000).toFixed(1)} s`,
  ];
  if (result.headline && result.figures[result.headline] !== undefined)
    lines.push(`headline ${result.headline} = ${fmt(result.figures[result.headline]!)}`);
  lines.push("figures:");
  for (const k of keys) lines.push(`  ${k.padEnd(width)}  ${fmt(result.figures[k]!)}`);
  lines.push("ratios:");
  for (const [k, v] of Object.entries(result.ratios))
    lines.push(`  ratio ${k} = ${fmt(v)}${k.includes(" / ") ? "" : "   (baseline not named!)"}`);
  if (file.targetResults) {
    lines.push("targets:");
    for (const [k, t] of Object.entries(result.targets ?? {})) lines.push(`  ${k} ${t}: ${file.targetResults[k]}`);
  }
  if (result.notes?.length) lines.push("notes:", ...result.notes.map((n) => `  - ${n}`));
  console.log(lines.join("\n"));
}

async function main(): Promise<number> {
  const mod = (await import(pathToFileURL(path.join(ROOT, "bench", `${name}.ts`)).href)) as BenchModule;
  if (typeof mod.default !== "function") throw new Error(`bench/${name}.ts has no default export run(ctx)`);

  const id = `${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
  const database = `cm_bench_${id}`;
  const redisKeyPrefix = `cm:bench:${id}:`;
  const rabbitmq = { exchange: `cm.bench.${id}.events`, queuePrefix: `cm.bench.${id}.` };
  const stackLog = verbose ? (m: string) => log(`[stack] ${m}`) : () => {};

  log(`local env: database ${database}, redis prefix ${redisKeyPrefix}`);
  let env: LocalEnv;
  try {
    env = await startLocalEnv({
      database,
      dropOnClose: true,
      redisKeyPrefix,
      rabbitmqExchange: rabbitmq.exchange,
      rabbitmqQueuePrefix: rabbitmq.queuePrefix,
      wsProxyThread: mod.config?.wsProxyThread,
      log: stackLog,
    });
  } catch (err) {
    // startLocalEnv may have created the database before failing (e.g. in a migration); drop it.
    const stack = await ensureStack({ log: stackLog });
    await dropDatabase(stack.postgresUrl, database).catch(() => undefined);
    await closePgProxy();
    await stack.stop();
    throw err;
  }
  // close() drops the database and (dropOnClose) the run's RabbitMQ exchanges/queues.
  defer("local env", () => env.close());
  defer("redis keys", async () => log(`deleted ${await deleteRedisKeys(env.bindings, redisKeyPrefix)} redis key(s)`));

  // BENCH_BINDINGS='{"NAME":"value"}': an experiment's settings over the benchmark's own.
  const extra = process.env.BENCH_BINDINGS ? (JSON.parse(process.env.BENCH_BINDINGS) as Record<string, string>) : {};
  const bindings = { ...env.bindings, ENVIRONMENT: "development", ...mod.config?.bindings, ...extra };
  await buildAssets(); // wrangler.toml's [assets] folder is git-ignored: a fresh clone has none
  log("starting bench/worker.ts in workerd (wrangler unstable_startWorker)");
  process.env.WRANGLER_SEND_METRICS = "false";
  process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false"; // else miniflare fetches workers.cloudflare.com/cf.json
  const { unstable_startWorker } = await import("wrangler");
  const wrangler = await unstable_startWorker({
    config: path.join(ROOT, "wrangler.toml"), // same compatibility date/flags, bundling and triggers as src/index.ts
    entrypoint: path.join(ROOT, "bench", "worker.ts"),
    // Only our bindings: a non-existent env file keeps a developer's .dev.vars/.env out of the run.
    envFiles: [path.join(ROOT, "bench", ".no-env-file")],
    bindings: Object.fromEntries(Object.entries(bindings).map(([k, value]) => [k, { type: "plain_text", value }])),
    sendMetrics: false,
    dev: {
      server: { hostname: "127.0.0.1", port: 0 },
      inspector: process.env.BENCH_INSPECTOR
        ? { port: Number(process.env.BENCH_INSPECTOR), hostname: "127.0.0.1" }
        : false,
      watch: false,
      liveReload: false,
      remote: false,
      persist: false, // Durable Object storage etc. in memory: nothing left on disk
      logLevel: verbose ? "info" : "warn",
    },
  });
  removeForeignSignalHandlers();
  defer("worker", () => wrangler.dispose());
  await wrangler.ready;
  removeForeignSignalHandlers();
  const url = (await wrangler.url).origin;
  log(`worker at ${url}`);

  const worker: BenchWorker = {
    url,
    fetch: (p, init) => fetch(new URL(p, url), { ...init, signal: init?.signal ?? abort.signal }),
    async json<T>(p: string, body?: unknown): Promise<T> {
      const res = await worker.fetch(
        p,
        body === undefined
          ? {}
          : { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } },
      );
      const text = await res.text();
      if (!res.ok) throw new Error(`${p}: HTTP ${res.status} ${text.slice(0, 500)}`);
      return JSON.parse(text) as T;
    },
  };
  const ctx: BenchContext = {
    name,
    worker,
    bindings,
    pgUrl: databaseUrl(env.stack.postgresUrl, database),
    stack: env.stack,
    redisKeyPrefix,
    rabbitmq,
    log,
    args,
    signal: abort.signal,
    defer: (fn) => defer("benchmark", fn),
    async receiver(handler?: ReceiverHandler) {
      const r = await startReceiver(handler);
      defer(`receiver ${r.url}`, () => r.close());
      return r;
    },
    previous(other) {
      const file = path.join(ROOT, "bench", "results", `${other}.json`);
      return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as BenchResultFile) : undefined;
    },
  };

  const result = await mod.default(ctx);
  if (abort.signal.aborted) return 1;
  const cpus = os.cpus();
  const targetResults = result.targets
    ? Object.fromEntries(
        Object.entries(result.targets).map(([k, t]) => [k, checkTarget(result.figures[k] ?? result.ratios[k], t)]),
      )
    : undefined;
  const dirty = git("status", "--porcelain") !== "";
  const file: BenchResultFile = {
    ...result,
    ...(targetResults ? { targetResults } : {}),
    timestamp: new Date().toISOString(),
    durationMs: Date.now() - t0,
    commit: (git("rev-parse", "--short", "HEAD") || "unknown") + (dirty ? "+dirty" : ""),
    node: process.version,
    machine: {
      cpuModel: cpus[0]?.model ?? "unknown",
      cpus: cpus.length,
      totalMemBytes: os.totalmem(),
      platform: os.platform(),
      release: os.release(),
      arch: os.arch(),
    },
  };
  mkdirSync(path.join(ROOT, "bench", "results"), { recursive: true });
  const out = path.join(ROOT, "bench", "results", `${outName}.json`);
  writeFileSync(out, `${JSON.stringify(file, null, 2)}\n`);
  report(result, file);
  console.log(`wrote ${path.relative(process.cwd(), out)}`);
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  if (!abort.signal.aborted) log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
} finally {
  if (!exiting) {
    exiting = true;
    await teardown();
    log("torn down");
    process.exit(code);
  }
}
