import real from "../src/index.ts";
import { getConfig } from "../src/platform/config.ts";
import { createDb } from "../src/platform/db.ts";
import { createRedis } from "../src/platform/redis.ts";
import { postLoop, round, runBounded, summarize } from "./lib.ts";

/**
 * Bench-only Worker entry (`npm run bench` starts it instead of src/index.ts): the real Worker —
 * default export and every named export (Durable Object classes, …) — plus `/__bench/*` routes that
 * measure I/O from inside workerd. Never deployed; the routes also refuse to run in production.
 * Latencies come from workerd's clock: whole milliseconds that only advance across I/O, so p50/p99
 * of sub-millisecond operations are quantized; `mean` (loop time / ops) is the precise figure.
 */
export * from "../src/index.ts";

const MAX_N = 100_000;
const MAX_CONCURRENCY = 256;
const TIME_LIMIT_MS = 60_000;

const json = (data: unknown, status = 200) =>
  new Response(JSON.stringify(data), { status, headers: { "content-type": "application/json" } });

/** Bounded integer from the request body (bad input is a 400, not a runaway loop). */
function int(value: unknown, fallback: number, max: number): number {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new RangeError(`expected an integer in 1..${max}, got ${String(value)}`);
  return n;
}

// Only loopback targets: the harness promises traffic to 127.0.0.1 only.
const isLoopback = (url: string) => ["127.0.0.1", "localhost", "[::1]"].includes(new URL(url).hostname);

async function benchRoute(route: string, body: Record<string, unknown>, env: CloudflareBindings, ctx: ExecutionContext): Promise<Response> {
  const config = getConfig(env);
  switch (route) {
    case "fetch": {
      const url = String(body.url ?? "");
      if (!isLoopback(url)) return json({ error: "url must be a loopback http URL" }, 400);
      const result = await postLoop({
        url,
        n: int(body.n, 1000, MAX_N),
        concurrency: int(body.concurrency, 1, MAX_CONCURRENCY),
        body: typeof body.body === "string" ? body.body : JSON.stringify(body.body ?? {}),
        headers: (body.headers ?? {}) as Record<string, string>,
        timeLimitMs: TIME_LIMIT_MS,
      });
      return json(result);
    }
    case "redis": {
      const { redis, keys } = createRedis(config);
      const key = keys.key("bench", "get");
      await redis.set(key, "x".repeat(64)); // also warms the connection
      const r = await runBounded(
        { count: int(body.n, 1000, MAX_N), concurrency: int(body.concurrency, 1, MAX_CONCURRENCY), timeLimitMs: TIME_LIMIT_MS },
        () => redis.get(key),
      );
      const s = summarize(r.latencies);
      return json({ ms: round(r.ms), ok: r.ok, failed: r.failed, p50: s.p50, p99: s.p99, mean: round(r.ms / r.ok), errors: r.errors });
    }
    case "pg": {
      const db = createDb(config);
      try {
        // The first query opens the WebSocket + Postgres session; report it apart from the loop.
        const c0 = performance.now();
        await db.query("select 1");
        const connectMs = performance.now() - c0;
        const r = await runBounded({ count: int(body.n, 500, MAX_N), timeLimitMs: TIME_LIMIT_MS }, () => db.query("select 1"));
        const s = summarize(r.latencies);
        return json({
          ms: round(r.ms),
          ok: r.ok,
          failed: r.failed,
          p50: s.p50,
          p99: s.p99,
          mean: round(r.ms / r.ok),
          connectMs: round(connectMs),
          errors: r.errors,
        });
      } finally {
        ctx.waitUntil(db.end());
      }
    }
    default:
      return json({ error: `unknown bench route ${route}` }, 404);
  }
}

export default {
  ...real,
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (!url.pathname.startsWith("/__bench/")) return real.fetch(request, env, ctx);
    if (getConfig(env).environment === "production" || request.method !== "POST") return json({ error: "not found" }, 404);
    try {
      const body = (await request.json().catch(() => ({}))) as Record<string, unknown>;
      return await benchRoute(url.pathname.slice("/__bench/".length), body, env, ctx);
    } catch (err) {
      const status = err instanceof RangeError ? 400 : 500;
      return json({ error: err instanceof Error ? err.message : String(err) }, status);
    }
  },
} satisfies ExportedHandler<CloudflareBindings>;
