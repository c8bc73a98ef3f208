/**
 * Runtime-neutral benchmark helpers, shared by the Node harness and the bench Worker entry.
 * Uses only ES2023 + `fetch`/`performance` (both in Node and workerd): no Node or Workers imports,
 * so this file typechecks in either tsconfig project.
 */

/** Latency summary in milliseconds. */
export interface LatencySummary {
  n: number;
  p50: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/**
 * Nearest-rank percentile (p in 0..100) of unsorted values; NaN when empty.
 * @param values - samples (not modified)
 * @param p - percentile, e.g. 50 or 99
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

/** Rounds to `digits` decimals (keeps JSON and summaries readable). */
export function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** p50/p99/mean/min/max of latencies, rounded to µs. */
export function summarize(latencies: readonly number[]): LatencySummary {
  if (latencies.length === 0) return { n: 0, p50: NaN, p99: NaN, mean: NaN, min: NaN, max: NaN };
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const l of latencies) {
    sum += l;
    if (l < min) min = l;
    if (l > max) max = l;
  }
  return {
    n: latencies.length,
    p50: round(percentile(latencies, 50)),
    p99: round(percentile(latencies, 99)),
    mean: round(sum / latencies.length),
    min: round(min),
    max: round(max),
  };
}

/** Limits of {@link runBounded}: every loop has both a count and a time limit. */
export interface BoundedOptions {
  /** Total tasks to run. */
  count: number;
  /** Tasks in flight at once (default 1 = sequential). */
  concurrency?: number;
  /** No new task starts after this many ms (in-flight ones finish; give them their own timeouts). */
  timeLimitMs: number;
  /** Stops starting tasks once aborted (e.g. Ctrl-C in the harness). */
  signal?: AbortSignal;
}

/** Outcome of {@link runBounded}. */
export interface BoundedResult {
  ok: number;
  failed: number;
  /** Wall time of the whole run in ms. */
  ms: number;
  /** Latency of each successful task, in completion order. */
  latencies: number[];
  /** True if the time limit or the signal stopped the run before `count`. */
  stoppedEarly: boolean;
  /** The first few error messages. */
  errors: string[];
}

/**
 * Runs `task(i, lane)` for i = 0..count-1 with at most `concurrency` in flight. `lane` (0..concurrency-1)
 * identifies the worker loop, so a caller can give each lane its own connection. A throw counts as
 * a failure and does not stop the run.
 */
export async function runBounded(
  opts: BoundedOptions,
  task: (i: number, lane: number) => Promise<unknown>,
): Promise<BoundedResult> {
  const count = Math.max(0, Math.floor(opts.count));
  const lanes = Math.max(1, Math.min(Math.floor(opts.concurrency ?? 1), count || 1));
  const start = performance.now();
  const deadline = start + opts.timeLimitMs;
  const latencies: number[] = [];
  const errors: string[] = [];
  let next = 0;
  let ok = 0;
  let failed = 0;
  let stoppedEarly = false;

  const lane = async (id: number) => {
    while (next < count) {
      if (performance.now() > deadline || opts.signal?.aborted) {
        stoppedEarly = true;
        return;
      }
      const i = next++;
      const t0 = performance.now();
      try {
        await task(i, id);
        latencies.push(performance.now() - t0);
        ok++;
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: lanes }, (_, id) => lane(id)));
  return { ok, failed, ms: performance.now() - start, latencies, stoppedEarly, errors };
}

/** Options of {@link postLoop}. */
export interface PostLoopOptions {
  /** Target URL (callers restrict it to loopback). */
  url: string;
  n: number;
  concurrency: number;
  body?: string;
  headers?: Record<string, string>;
  /** Default 60 s. */
  timeLimitMs?: number;
  /** Per-request timeout, default 10 s. */
  requestTimeoutMs?: number;
}

/** Result of {@link postLoop}: counts, wall time, latency percentiles (ms) and throughput. */
export interface PostLoopResult {
  ms: number;
  ok: number;
  failed: number;
  p50: number;
  p99: number;
  rps: number;
  stoppedEarly: boolean;
  errors: string[];
}

/**
 * n POSTs to `url` with bounded concurrency using the global `fetch`; non-2xx counts as failed.
 * The same code runs inside workerd (`/__bench/fetch`) and in Node, so the two are comparable.
 */
export async function postLoop(opts: PostLoopOptions): Promise<PostLoopResult> {
  const body = opts.body ?? "{}";
  const headers = { "content-type": "application/json", ...opts.headers };
  const timeout = opts.requestTimeoutMs ?? 10_000;
  const r = await runBounded(
    { count: opts.n, concurrency: opts.concurrency, timeLimitMs: opts.timeLimitMs ?? 60_000 },
    async () => {
      const res = await fetch(opts.url, { method: "POST", body, headers, signal: AbortSignal.timeout(timeout) });
      await res.arrayBuffer(); // drain, so the connection can be reused
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
    },
  );
  const s = summarize(r.latencies);
  return {
    ms: round(r.ms),
    ok: r.ok,
    failed: r.failed,
    p50: s.p50,
    p99: s.p99,
    rps: round(r.ms > 0 ? (r.ok * 1000) / r.ms : 0, 1),
    stoppedEarly: r.stoppedEarly,
    errors: r.errors,
  };
}

/** mulberry32: a small seeded PRNG, so a benchmark's workload is the same in every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
