import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { IncomingMessage, OutgoingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { Stack } from "../scripts/stack.ts";
import type { PostLoopOptions, PostLoopResult } from "./lib.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/**
 * The contract between `scripts/bench.ts` and a benchmark module `bench/<name>.ts`, plus Node-side
 * helpers benchmarks share (local HTTP receivers, loose CLI args). Runtime-neutral helpers
 * (percentiles, bounded loops) are in `./lib.ts`; raw baselines in `./baseline.ts`.
 */

/** Loosely parsed CLI flags: `--k v`, `--k=v` → "v"; a bare `--flag` → true. */
export type BenchArgs = Record<string, string | boolean>;

/** The Worker under test (bench/worker.ts in workerd, behind wrangler's dev proxy). */
export interface BenchWorker {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Node `fetch` against the Worker; `path` is resolved against {@link url}. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** POSTs `body` as JSON (GET if undefined) and returns the parsed JSON; throws on non-2xx. */
  json<T = unknown>(path: string, body?: unknown): Promise<T>;
}

/** What `run(ctx)` gets. */
export interface BenchContext {
  /** Benchmark name (`bench/<name>.ts`). */
  name: string;
  worker: BenchWorker;
  /** Bindings the Worker runs with (local URLs, secrets, `ENVIRONMENT=development`). */
  bindings: Record<string, string>;
  /** URL of this run's fresh, migrated database `cm_bench_<id>` (dropped afterwards). */
  pgUrl: string;
  /** The local servers (admin Postgres URL, Redis URL, RabbitMQ URL). */
  stack: Stack;
  /** This run's Redis key prefix `cm:bench:<id>:` (its keys are deleted afterwards). */
  redisKeyPrefix: string;
  /** This run's RabbitMQ exchange and queue prefix (the event bus's exchanges/queues under them are deleted afterwards). */
  rabbitmq: { exchange: string; queuePrefix: string };
  /** Progress line on stderr. */
  log(msg: string): void;
  /** Remaining CLI flags. */
  args: BenchArgs;
  /** Aborted on Ctrl-C or when the run's overall time limit passes: stop loops early. */
  signal: AbortSignal;
  /** Registers teardown work; runs LIFO before the Worker and the local env are stopped, also on failure. */
  defer(fn: () => unknown): void;
  /** Starts a loopback HTTP receiver that is closed at teardown (see {@link startReceiver}). */
  receiver(handler?: ReceiverHandler): Promise<Receiver>;
  /** The last saved result of another benchmark (e.g. "baseline"), if any, to divide by. */
  previous(name: string): BenchResultFile | undefined;
}

/** What `run` returns. Ratio keys name their baseline: `"worker_redis_get_p50 / node_resp_ping_p50"`. */
export interface BenchResult {
  name: string;
  figures: Record<string, number>;
  ratios: Record<string, number>;
  /** Key of `figures` to print first. */
  headline?: string;
  /** Expectations by figure or ratio key, e.g. `"< 10"` or `">= 5000"`; checked and printed. */
  targets?: Record<string, string>;
  notes?: string[];
}

/** `bench/results/<name>.json`. */
export interface BenchResultFile extends BenchResult {
  timestamp: string;
  durationMs: number;
  commit: string;
  node: string;
  machine: { cpuModel: string; cpus: number; totalMemBytes: number; platform: string; release: string; arch: string };
  /** Outcome of each target: "ok" | "missed" | "unknown". */
  targetResults?: Record<string, string>;
}

/** Optional `export const config` of a benchmark module, read before the Worker starts. */
export interface BenchConfig {
  /** Extra/overriding Worker bindings, e.g. `{ WEBHOOK_ALLOW_LOCAL_HTTP: "true" }`. */
  bindings?: Record<string, string>;
  /**
   * Run the Postgres WebSocket proxy on its own thread, off the event loop of the benchmark's
   * receiver and load generator (in production Neon terminates the WebSocket elsewhere).
   */
  wsProxyThread?: boolean;
}

/** Shape of `bench/<name>.ts`. */
export interface BenchModule {
  default: (ctx: BenchContext) => Promise<BenchResult>;
  config?: BenchConfig;
}

/** Reply of a {@link ReceiverHandler}; default 204 with no body. */
export interface ReceiverReply {
  status?: number;
  headers?: OutgoingHttpHeaders;
  body?: string;
}

/** Handles one request to a {@link Receiver}; the body is fully read. */
export type ReceiverHandler = (
  req: IncomingMessage,
  body: Buffer,
) => ReceiverReply | undefined | Promise<ReceiverReply | undefined>;

/** A running local HTTP receiver. */
export interface Receiver {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  /** Requests answered so far. */
  readonly requests: number;
  close(): Promise<void>;
}

/**
 * Starts a `node:http` server on 127.0.0.1:0 (webhook targets, fetch baselines). Answers 204
 * unless `handler` says otherwise; a throwing handler answers 500.
 */
export async function startReceiver(handler?: ReceiverHandler): Promise<Receiver> {
  let requests = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      Promise.resolve(handler?.(req, Buffer.concat(chunks)))
        .then((reply) => {
          requests++;
          res.writeHead(reply?.status ?? 204, reply?.headers).end(reply?.body);
        })
        .catch(() => res.writeHead(500).end());
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get requests() {
      return requests;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // keep-alive sockets would hold close() open
      });
      return closing;
    },
  };
}

/**
 * {@link postLoop} from Node, on a worker thread: the receiver (usually on the main thread) and the
 * load generator then get their own event loops, as with workerd, which is a separate process.
 */
export function postLoopInThread(opts: PostLoopOptions): Promise<PostLoopResult> {
  const thread = new Worker(new URL("./post-loop-thread.ts", import.meta.url), { workerData: opts });
  const limitMs = (opts.timeLimitMs ?? 60_000) + (opts.requestTimeoutMs ?? 10_000) + 5_000;
  return new Promise<PostLoopResult>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`post loop thread exceeded ${limitMs} ms`)), limitMs);
    thread.once("message", (r: PostLoopResult) => resolve(r));
    thread.once("error", reject);
    thread.once("exit", (code) => reject(new Error(`post loop thread exited with ${code} before answering`)));
    const done = () => {
      clearTimeout(timer);
      void thread.terminate();
    };
    thread.once("message", done).once("error", done).once("exit", done);
  });
}

/** Parses `--k v`, `--k=v`, `--flag` loosely; stray positionals are ignored. */
export function parseBenchArgs(argv: readonly string[]): BenchArgs {
  const out: BenchArgs = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) continue;
    const eq = a.indexOf("=");
    if (eq !== -1) out[a.slice(2, eq)] = a.slice(eq + 1);
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--")) out[a.slice(2)] = argv[++i]!;
    else out[a.slice(2)] = true;
  }
  return out;
}

/** A numeric flag with a default; throws on garbage so a typo does not silently run the default. */
export function numArg(args: BenchArgs, name: string, fallback: number): number {
  const v = args[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got ${String(v)}`);
  return n;
}

/** CPU seconds used so far, by who (Linux /proc; zeros elsewhere). */
export interface Cpu {
  node: number;
  workerd: number;
  postgres: number;
  redis: number;
  machine: number;
}

const TICK = 100;

/** CPU seconds so far of this process, its workerd descendants, Postgres and Redis servers, the machine. */
export function cpu(): Cpu {
  const u = process.cpuUsage();
  const out: Cpu = { node: (u.user + u.system) / 1e6, workerd: 0, postgres: 0, redis: 0, machine: 0 };
  try {
    const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    out.machine = ((f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0)) / TICK;
    const procs = new Map<number, { ppid: number; comm: string; cpu: number; children: number }>();
    for (const d of readdirSync("/proc")) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = readFileSync(`/proc/${d}/stat`, "utf8");
        const close = stat.lastIndexOf(")");
        const s = stat.slice(close + 2).split(" ");
        procs.set(Number(d), {
          ppid: Number(s[1]),
          comm: stat.slice(stat.indexOf("(") + 1, close),
          cpu: (Number(s[11]) + Number(s[12])) / TICK,
          children: (Number(s[13]) + Number(s[14])) / TICK,
        });
      } catch {
        // exited meanwhile
      }
    }
    const mine = (pid: number) => {
      for (let p = procs.get(pid)?.ppid, i = 0; p !== undefined && p > 1 && i < 20; p = procs.get(p)?.ppid, i++)
        if (p === process.pid) return true;
      return false;
    };
    for (const [pid, p] of procs) {
      if (p.comm === "workerd" && mine(pid)) out.workerd += p.cpu;
      // Backends that exited are in the postmaster's reaped-children time.
      if (p.comm === "postgres") out.postgres += p.cpu + (procs.get(p.ppid)?.comm === "postgres" ? 0 : p.children);
      if (p.comm.startsWith("redis-server")) out.redis += p.cpu;
    }
  } catch {
    // not Linux
  }
  return out;
}

/** CPU used between two samples. */
export const cpuDelta = (a: Cpu, b: Cpu): Cpu => ({
  node: b.node - a.node,
  workerd: b.workerd - a.workerd,
  postgres: b.postgres - a.postgres,
  redis: b.redis - a.redis,
  machine: b.machine - a.machine,
});

/** The processes whose parent is `pid` (from `/proc`; Linux). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {}
  }
  return out;
}

/** Every process below `pid`, children first (from `/proc`; Linux). */
export function descendants(pid: number): number[] {
  const all: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift()!;
    for (const c of childrenOf(p)) {
      all.push(c);
      queue.push(c);
    }
  }
  return all;
}

/**
 * The command line that starts `wrangler dev` for a benchmark: loopback only, at warn level, no
 * interactive session (its keyboard shortcuts would read a detached stdin); `extra` adds flags.
 * Spawn it with the returned environment, which keeps wrangler off the network.
 */
export function wranglerDevCommand(
  port: number,
  extra: readonly string[] = [],
): { argv: string[]; env: NodeJS.ProcessEnv } {
  return {
    argv: [
      path.join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js"),
      "dev",
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--log-level",
      "warn",
      "--show-interactive-dev-session=false",
      ...extra,
    ],
    env: quietToolEnv(),
  };
}

/** This process's environment, plus what keeps wrangler and Miniflare off the network (no metrics, no cf fetch). */
export function quietToolEnv(): NodeJS.ProcessEnv {
  return { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" };
}
