import real from "../src/index.ts";
import { getConfig } from "../src/platform/config.ts";
import { createDb } from "../src/platform/db.ts";
import { createRedis } from "../src/platform/redis.ts";
import { createEvent } from "../src/events/cloudevent.ts";
import { drainInbound } from "../src/events/inbound.ts";
import { eventMessage, topology } from "../src/events/rabbit.ts";
import { relayWithConfig } from "../src/events/relay.ts";
import { withAmqp } from "../src/platform/amqp.ts";
import { createLogger } from "../src/platform/logger.ts";
import { createPlatform } from "../src/platform/platform.ts";
import { envelope, newDeliveryId } from "../src/webhooks/delivery.ts";
import { createWebhookService } from "../src/webhooks/service.ts";
import { signAll } from "../src/webhooks/signing.ts";
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
    case "signed-fetch": {
      // Raw baseline of webhook delivery: n POSTs, each with a fresh delivery id, the same envelope
      // and headers the endpoint objects send, signed (Standard Webhooks, signAll) per request;
      // delivery i goes to targets[i % targets.length]. No queue, no Postgres, no Durable Object.
      const targets = Array.isArray(body.targets) ? (body.targets as { url?: unknown; secret?: unknown }[]) : [];
      if (targets.length === 0 || targets.length > 10_000) return json({ error: "targets: 1..10000 {url, secret}" }, 400);
      for (const t of targets) {
        if (typeof t.url !== "string" || !isLoopback(t.url) || typeof t.secret !== "string") return json({ error: "every target needs a loopback url and a secret" }, 400);
      }
      const data = (body.data ?? {}) as Record<string, unknown>;
      const eventType = String(body.eventType ?? "team.updated");
      const organizationId = String(body.organizationId ?? "org_bench_raw");
      const timeoutMs = int(body.timeoutMs, 10_000, 120_000);
      const r = await runBounded(
        { count: int(body.n, 1000, MAX_N), concurrency: int(body.concurrency, 1, MAX_CONCURRENCY), timeLimitMs: TIME_LIMIT_MS },
        async (i) => {
          const target = targets[i % targets.length] as { url: string; secret: string };
          const deliveryId = newDeliveryId();
          const payload = envelope(deliveryId, { eventType, eventId: `raw-${i}`, organizationId, occurredAt: new Date().toISOString(), data: { ...data, seq: i, sentAt: Date.now() } });
          const ts = Math.floor(Date.now() / 1000);
          const res = await fetch(target.url, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              "user-agent": "CloudMatrix-Webhooks/1.0 (+https://cloudmatrix.dev/webhooks)",
              "webhook-id": deliveryId,
              "webhook-timestamp": String(ts),
              "webhook-signature": await signAll(deliveryId, ts, payload, [target.secret]),
            },
            body: payload,
            redirect: "manual",
            signal: AbortSignal.timeout(timeoutMs),
          });
          await res.arrayBuffer();
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
        },
      );
      const s = summarize(r.latencies);
      return json({ ms: round(r.ms), ok: r.ok, failed: r.failed, p50: s.p50, p99: s.p99, rps: round(r.ms > 0 ? (r.ok * 1000) / r.ms : 0, 1), stoppedEarly: r.stoppedEarly, errors: r.errors });
    }
    case "webhook-sweep": {
      // The cron sweep (processQueue): hands overdue pending deliveries to their endpoint objects
      // and drains them. The webhooks bench seeds rows and calls this to time delivery alone.
      const platform = createPlatform(env, ctx, createLogger({ bench: "webhook-sweep" }));
      try {
        const t0 = performance.now();
        const r = await createWebhookService(platform).processQueue(int(body.batchSize, 1000, MAX_N));
        return json({ ...r, ms: round(performance.now() - t0) });
      } finally {
        platform.close();
      }
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
    case "amqp-publish": {
      // Raw baseline: basicPublish with publisher confirms, pipelined in windows like the relay's batches.
      const n = int(body.n, 10_000, MAX_N);
      const window = int(body.window, 200, 10_000);
      const exchange = config.rabbitmq.exchange;
      // Serialised before the clock starts: the baseline is the publish loop alone.
      const messages = Array.from({ length: n }, () => eventMessage(createEvent({ type: "api.call", organizationId: "org_bench", source: "/bench", data: {} })));
      const t0 = performance.now();
      await withAmqp(config.rabbitmq.url, async (client) => {
        const ch = await client.channel();
        await ch.confirmSelect();
        await ch.exchangeDeclare(exchange, "topic", { durable: true });
        for (let i = 0; i < n; i += window) {
          await Promise.all(messages.slice(i, i + window).map((m) => ch.basicPublish(exchange, String(body.routingKey ?? "bench.raw"), m.body, m.properties)));
        }
      });
      const ms = performance.now() - t0;
      return json({ n, ms: round(ms), perSecond: round((n * 1000) / ms, 0) });
    }
    case "relay": {
      // Our pipeline: outbox rows → Queue + RabbitMQ (confirms) → marked, until nothing is pending.
      const t0 = performance.now();
      let published = 0;
      let failed = 0;
      for (let i = 0; i < 1_000 && performance.now() - t0 < TIME_LIMIT_MS; i++) {
        const r = await relayWithConfig({ config, queue: env.PLATFORM_EVENTS, logger: createLogger({ bench: "relay" }) }, { ...(body.batchSize ? { batchSize: int(body.batchSize, 1000, 5_000) } : {}), ...(body.lanes ? { lanes: int(body.lanes, 3, 4) } : {}) });
        published += r.published;
        failed += r.failed;
        if (r.published === 0) break;
      }
      const ms = performance.now() - t0;
      return json({ published, failed, ms: round(ms), perSecond: round((published * 1000) / ms, 0) });
    }
    case "inbound": {
      // Drains the inbound queue into the usage-events Queue until it is empty.
      const t = topology(config.rabbitmq);
      const t0 = performance.now();
      let delivered = 0;
      let deadLettered = 0;
      for (let i = 0; i < 10_000 && performance.now() - t0 < TIME_LIMIT_MS; i++) {
        const r = await drainInbound({
          url: config.rabbitmq.url,
          topology: t,
          queue: t.inbound[0]!.queue,
          maxMessages: int(body.burst, 1000, 5_000),
          idleMs: 100,
          deliver: async (events) => void (await env.USAGE_EVENTS.sendBatch(events.map((e) => ({ body: e, contentType: "json" as const })))),
        });
        delivered += r.delivered;
        deadLettered += r.deadLettered;
        if (r.received === 0) break;
      }
      const ms = performance.now() - t0;
      return json({ delivered, deadLettered, ms: round(ms), perSecond: round((delivered * 1000) / ms, 0) });
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
