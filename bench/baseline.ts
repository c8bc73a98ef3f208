import * as net from "node:net";
import { connectPg } from "../scripts/lib/pg.ts";
import type { BenchContext, BenchResult, BenchWorker } from "./harness.ts";
import { numArg, postLoopInThread, startReceiver } from "./harness.ts";
import type { PostLoopResult } from "./lib.ts";
import { round, runBounded, summarize } from "./lib.ts";

/**
 * Raw baselines the service benchmarks divide by: what Postgres, Redis and loopback HTTP do on this
 * machine without our code in the way, and what the same I/O costs from inside workerd.
 * Flags: --rows (200000) --pings (2000) --redis-n (1000) --pg-n (500) --fetch-n (3000) --fetch-concurrency (32).
 */

/** Result of {@link pgInsertRowsPerSecond}. */
export interface PgInsertResult {
  rows: number;
  ms: number;
  rowsPerSecond: number;
  statementP50: number;
  statementP99: number;
}

/**
 * Bulk-insert throughput: `INSERT … SELECT generate_series … ON CONFLICT DO NOTHING` into
 * `bench_raw`, `batch` rows per statement, `clients` connections (Neon driver through the local
 * WebSocket proxy — the Worker's path to Postgres). The table is truncated first.
 */
export async function pgInsertRowsPerSecond(
  pgUrl: string,
  {
    rows = 200_000,
    batch = 500,
    clients = 4,
    timeLimitMs = 60_000,
  }: { rows?: number; batch?: number; clients?: number; timeLimitMs?: number } = {},
): Promise<PgInsertResult> {
  const conns = await Promise.all(Array.from({ length: clients }, () => connectPg(pgUrl)));
  try {
    const c0 = conns[0]!;
    await c0.query("create table if not exists bench_raw (id bigint primary key, org text, v int)");
    await c0.query("truncate bench_raw");
    let inserted = 0;
    const r = await runBounded(
      { count: Math.ceil(rows / batch), concurrency: clients, timeLimitMs },
      async (i, lane) => {
        const from = i * batch + 1;
        const to = Math.min(rows, (i + 1) * batch);
        const res = await conns[lane]!.query(
          "insert into bench_raw (id, org, v) select g, 'org_' || (g % 100), (g % 1000)::int from generate_series($1::bigint, $2::bigint) g on conflict do nothing",
          [from, to],
        );
        inserted += res.rowCount ?? 0;
      },
    );
    if (r.failed) throw new Error(`pg insert: ${r.failed} statement(s) failed: ${r.errors.join("; ")}`);
    const s = summarize(r.latencies);
    return {
      rows: inserted,
      ms: round(r.ms),
      rowsPerSecond: round((inserted * 1000) / r.ms, 0),
      statementP50: s.p50,
      statementP99: s.p99,
    };
  } finally {
    await Promise.all(conns.map((c) => c.end().catch(() => undefined)));
  }
}

/**
 * Sequential raw RESP `PING` round trips over one `node:net` socket (AUTH first if the URL has a
 * password): the floor for any Redis access on this machine.
 */
export async function nodeRedisPingP50(
  redisUrl: string,
  { n = 2000, timeLimitMs = 30_000 }: { n?: number; timeLimitMs?: number } = {},
) {
  const u = new URL(redisUrl);
  const sock = net.connect({ host: u.hostname.replace(/^\[|\]$/g, ""), port: Number(u.port) || 6379 });
  sock.setNoDelay(true);
  let pending: { resolve: (line: string) => void; reject: (e: Error) => void } | undefined;
  let buf = "";
  sock.on("data", (d: Buffer) => {
    buf += d.toString("latin1");
    const end = buf.indexOf("\r\n");
    if (end === -1 || !pending) return;
    const line = buf.slice(0, end);
    buf = buf.slice(end + 2);
    const p = pending;
    pending = undefined;
    p.resolve(line);
  });
  const fail = (e: Error) => pending?.reject(e);
  sock.on("error", fail);
  sock.on("close", () => fail(new Error("redis closed the connection")));
  // One command in flight at a time, so a single pending reply is enough.
  const command = (raw: string) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("redis reply timed out")), 5_000);
      pending = {
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      sock.write(raw);
    });
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once("connect", resolve);
      sock.once("error", reject);
    });
    if (u.password) {
      const parts = u.username
        ? [decodeURIComponent(u.username), decodeURIComponent(u.password)]
        : [decodeURIComponent(u.password)];
      const reply = await command(
        `*${parts.length + 1}\r\n$4\r\nAUTH\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join("")}`,
      );
      if (reply !== "+OK") throw new Error(`redis AUTH: ${reply}`);
    }
    const ping = async () => {
      const reply = await command("*1\r\n$4\r\nPING\r\n");
      if (reply !== "+PONG") throw new Error(`unexpected reply ${reply}`);
    };
    await runBounded({ count: Math.min(200, n), timeLimitMs }, ping); // warm-up (JIT, socket buffers)
    const r = await runBounded({ count: n, timeLimitMs }, ping);
    if (r.failed) throw new Error(`redis ping: ${r.failed} failed: ${r.errors.join("; ")}`);
    return summarize(r.latencies);
  } finally {
    sock.destroy();
  }
}

/** Reply of `/__bench/redis` and `/__bench/pg`: ms, counts, quantized p50/p99, precise mean (ms/op). */
export interface WorkerLoopResult {
  ms: number;
  ok: number;
  failed: number;
  p50: number;
  p99: number;
  mean: number;
}

/** `/__bench/redis`: GETs of one key through the Upstash client inside workerd → adapter → Redis. */
export const workerRedisGet = (worker: BenchWorker, n = 1000, concurrency = 1) =>
  worker.json<WorkerLoopResult>("/__bench/redis", { n, concurrency });

/** `/__bench/pg`: sequential `select 1` on one pool inside one Worker request (connect excluded). */
export const workerPgSelect1 = (worker: BenchWorker, n = 500) =>
  worker.json<WorkerLoopResult & { connectMs: number }>("/__bench/pg", { n });

/** `/__bench/fetch`: n POSTs from inside workerd to a loopback URL. */
export const workerFetch = (worker: BenchWorker, url: string, n: number, concurrency: number, body?: string) =>
  worker.json<PostLoopResult>("/__bench/fetch", { url, n, concurrency, body });

/**
 * Loopback POST throughput from inside workerd vs the same loop from Node (on a worker thread, so
 * it does not share the receiver's event loop), against a `node:http` receiver answering 204.
 * Each side gets a short warm-up first.
 */
export async function fetchThroughput(worker: BenchWorker, { n = 3000, concurrency = 32 } = {}) {
  const receiver = await startReceiver();
  try {
    const body = JSON.stringify({ event: "bench", data: "x".repeat(200) });
    await workerFetch(worker, receiver.url, Math.min(200, n), concurrency, body);
    const w0 = performance.now();
    const inWorker = await workerFetch(worker, receiver.url, n, concurrency, body);
    const outerMs = performance.now() - w0;
    await postLoopInThread({ url: receiver.url, n: Math.min(200, n), concurrency, body });
    const inNode = await postLoopInThread({ url: receiver.url, n, concurrency, body });
    if (inWorker.failed || inNode.failed)
      throw new Error(`fetch loop failures: worker ${inWorker.errors.join("; ")} node ${inNode.errors.join("; ")}`);
    return { inWorker, inNode, workerOuterMs: round(outerMs), received: receiver.requests };
  } finally {
    await receiver.close();
  }
}

/** The baseline benchmark: `npm run bench -- baseline`. */
export default async function run(ctx: BenchContext): Promise<BenchResult> {
  const a = ctx.args;
  ctx.log("redis: raw RESP PING from node:net");
  const ping = await nodeRedisPingP50(ctx.stack.redisUrl, { n: numArg(a, "pings", 2000) });
  ctx.log("worker: /__bench/redis");
  await workerRedisGet(ctx.worker, 50); // warm-up: isolate, client, adapter pool
  const redis = await workerRedisGet(ctx.worker, numArg(a, "redis-n", 1000));
  ctx.log("worker: /__bench/pg");
  const pgw = await workerPgSelect1(ctx.worker, numArg(a, "pg-n", 500));
  ctx.log("worker vs node: loopback POST loop");
  const f = await fetchThroughput(ctx.worker, {
    n: numArg(a, "fetch-n", 3000),
    concurrency: numArg(a, "fetch-concurrency", 32),
  });
  // Last: the bulk insert leaves Postgres busy (WAL, autovacuum), which would skew the latency runs.
  ctx.log("pg: bulk insert");
  const pg = await pgInsertRowsPerSecond(ctx.pgUrl, { rows: numArg(a, "rows", 200_000) });

  return {
    name: "baseline",
    headline: "pg_insert_rows_per_s",
    figures: {
      pg_insert_rows_per_s: pg.rowsPerSecond,
      pg_insert_rows: pg.rows,
      pg_insert_statement_p50_ms: pg.statementP50,
      pg_insert_statement_p99_ms: pg.statementP99,
      node_resp_ping_p50: ping.p50,
      node_resp_ping_p99: ping.p99,
      node_resp_ping_mean: ping.mean,
      worker_redis_get_p50: redis.p50,
      worker_redis_get_p99: redis.p99,
      worker_redis_get_mean: redis.mean,
      worker_pg_select1_p50: pgw.p50,
      worker_pg_select1_p99: pgw.p99,
      worker_pg_select1_mean: pgw.mean,
      worker_pg_connect_ms: pgw.connectMs,
      worker_fetch_rps: f.inWorker.rps,
      worker_fetch_p50: f.inWorker.p50,
      worker_fetch_p99: f.inWorker.p99,
      worker_fetch_outer_rps: round((f.inWorker.ok * 1000) / f.workerOuterMs, 1),
      node_fetch_rps: f.inNode.rps,
      node_fetch_p50: f.inNode.p50,
      node_fetch_p99: f.inNode.p99,
    },
    ratios: {
      "worker_redis_get_p50 / node_resp_ping_p50": round(redis.p50 / ping.p50, 2),
      "worker_redis_get_mean / node_resp_ping_mean": round(redis.mean / ping.mean, 2),
      "worker_fetch_rps / node_fetch_rps": round(f.inWorker.rps / f.inNode.rps, 3),
      "worker_pg_select1_mean / node_resp_ping_mean": round(pgw.mean / ping.mean, 2),
    },
    notes: [
      `pg: ${pg.rows} rows, 500 rows/statement, 4 clients via the Neon driver + local WebSocket proxy`,
      "worker_* p50/p99 use workerd's clock: whole ms, advancing only across I/O, so sub-ms p50s are quantized (0/1/2 ms); *_mean = loop time / ops is precise",
      "node_fetch_*: the same fetch loop (bench/lib.ts postLoop) in Node on a worker thread; the receiver runs on the main thread",
      `fetch: concurrency ${numArg(a, "fetch-concurrency", 32)} against a node:http 204 receiver; worker_fetch_outer_rps includes the Node→Worker request`,
    ],
  };
}
