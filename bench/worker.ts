import real from "../src/index.ts";
import { getConfig } from "../src/platform/config.ts";
import { createDb } from "../src/platform/db.ts";
import { createRedis } from "../src/platform/redis.ts";
import { createEvent } from "../src/events/cloudevent.ts";
import { drainInbound } from "../src/events/inbound.ts";
import { kickInbound } from "../src/events/jobs.ts";
import { eventMessage, topology } from "../src/events/rabbit.ts";
import { relayWithConfig } from "../src/events/relay.ts";
import { withAmqp } from "../src/platform/amqp.ts";
import { createLogger } from "../src/platform/logger.ts";
import { createPlatform } from "../src/platform/platform.ts";
import { envelope, newDeliveryId } from "../src/webhooks/delivery.ts";
import { createWebhookService } from "../src/webhooks/service.ts";
import { signAll } from "../src/webhooks/signing.ts";
import { PermissionCache } from "../src/teams/cache.ts";
import { grantsOnPath } from "../src/teams/hierarchy.ts";
import { createTeamService } from "../src/teams/service.ts";
import { aggregateLog } from "../src/usage/log.ts";
import { authzBench } from "./authz-worker.ts";
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
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new RangeError(`expected an integer in 1..${max}, got ${String(value)}`);
  return n;
}

// Only loopback targets: the harness promises traffic to 127.0.0.1 only.
const isLoopback = (url: string) => ["127.0.0.1", "localhost", "[::1]"].includes(new URL(url).hostname);

async function benchRoute(
  route: string,
  body: Record<string, unknown>,
  env: CloudflareBindings,
  ctx: ExecutionContext,
): Promise<Response> {
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
      if (targets.length === 0 || targets.length > 10_000)
        return json({ error: "targets: 1..10000 {url, secret}" }, 400);
      for (const t of targets) {
        if (typeof t.url !== "string" || !isLoopback(t.url) || typeof t.secret !== "string")
          return json({ error: "every target needs a loopback url and a secret" }, 400);
      }
      const data = (body.data ?? {}) as Record<string, unknown>;
      const eventType = String(body.eventType ?? "team.updated");
      const organizationId = String(body.organizationId ?? "org_bench_raw");
      const timeoutMs = int(body.timeoutMs, 10_000, 120_000);
      const r = await runBounded(
        {
          count: int(body.n, 1000, MAX_N),
          concurrency: int(body.concurrency, 1, MAX_CONCURRENCY),
          timeLimitMs: TIME_LIMIT_MS,
        },
        async (i) => {
          const target = targets[i % targets.length] as { url: string; secret: string };
          const deliveryId = newDeliveryId();
          const payload = envelope(
            deliveryId,
            {
              eventType,
              eventId: `raw-${i}`,
              organizationId,
              occurredAt: new Date().toISOString(),
              data: { ...data, seq: i, sentAt: Date.now() },
            },
            i + 1, // a sequence number, as every pipeline delivery carries
          );
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
      return json({
        ms: round(r.ms),
        ok: r.ok,
        failed: r.failed,
        p50: s.p50,
        p99: s.p99,
        rps: round(r.ms > 0 ? (r.ok * 1000) / r.ms : 0, 1),
        stoppedEarly: r.stoppedEarly,
        errors: r.errors,
      });
    }
    case "do-rpc": {
      // The cost of one call to a Durable Object (the endpoint objects' `pending()`, a count): what
      // every hand-off and every flush of attempt results pays besides its own work.
      const ids = Array.isArray(body.webhookIds) ? (body.webhookIds as string[]) : [];
      if (ids.length === 0) return json({ error: "webhookIds required" }, 400);
      const ns = env.WEBHOOK_ENDPOINT;
      const n = int(body.n, 1000, MAX_N);
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await ns.get(ns.idFromName(ids[i % ids.length]!)).pending();
      return json({ n, ms: round(performance.now() - t0) });
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
        {
          count: int(body.n, 1000, MAX_N),
          concurrency: int(body.concurrency, 1, MAX_CONCURRENCY),
          timeLimitMs: TIME_LIMIT_MS,
        },
        () => redis.get(key),
      );
      const s = summarize(r.latencies);
      return json({
        ms: round(r.ms),
        ok: r.ok,
        failed: r.failed,
        p50: s.p50,
        p99: s.p99,
        mean: round(r.ms / r.ok),
        errors: r.errors,
      });
    }
    case "pg": {
      const db = createDb(config);
      try {
        // The first query opens the WebSocket + Postgres session; report it apart from the loop.
        const c0 = performance.now();
        await db.query("select 1");
        const connectMs = performance.now() - c0;
        const r = await runBounded({ count: int(body.n, 500, MAX_N), timeLimitMs: TIME_LIMIT_MS }, () =>
          db.query("select 1"),
        );
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
      const messages = Array.from({ length: n }, () =>
        eventMessage(createEvent({ type: "api.call", organizationId: "org_bench", source: "/bench", data: {} })),
      );
      const t0 = performance.now();
      await withAmqp(config.rabbitmq.url, async (client) => {
        const ch = await client.channel();
        await ch.confirmSelect();
        await ch.exchangeDeclare(exchange, "topic", { durable: true });
        for (let i = 0; i < n; i += window) {
          await Promise.all(
            messages
              .slice(i, i + window)
              .map((m) => ch.basicPublish(exchange, String(body.routingKey ?? "bench.raw"), m.body, m.properties)),
          );
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
        const r = await relayWithConfig(
          { config, queue: env.PLATFORM_EVENTS, logger: createLogger({ bench: "relay" }) },
          {
            ...(body.batchSize ? { batchSize: int(body.batchSize, 1000, 5_000) } : {}),
            ...(body.lanes ? { lanes: int(body.lanes, 3, 4) } : {}),
          },
        );
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
          deliver: async (events) =>
            void (await env.USAGE_EVENTS.sendBatch(events.map((e) => ({ body: e, contentType: "json" as const })))),
        });
        delivered += r.delivered;
        deadLettered += r.deadLettered;
        if (r.received === 0) break;
      }
      const ms = performance.now() - t0;
      return json({ delivered, deadLettered, ms: round(ms), perSecond: round((delivered * 1000) / ms, 0) });
    }
    case "usage-aggregate": {
      // Folds everything the usage log holds past the watermark (what the cron and consumers do).
      const db = createDb(config);
      try {
        return json(await aggregateLog(db, { flush: true }));
      } finally {
        await db.end();
      }
    }
    case "inbound-kick": {
      // What the minute cron does: make sure every inbound queue's object has its alarm chain running.
      const platform = createPlatform(env, ctx, createLogger({ bench: "inbound-kick" }));
      await kickInbound(platform, (queue) => env.RABBIT_INBOUND.get(env.RABBIT_INBOUND.idFromName(queue)));
      return json({ kicked: true });
    }
    case "teams-check":
      return teamsCheck(body, env, ctx);
    case "authz":
      return authzBench(body, env, ctx);
    case "teams-parts": {
      // The I/O a checkPermission is made of, each in its own sequential loop of n (mean = loop / n):
      // the cache EVAL (team → organization → version → entry), grantsOnPath, the cache SET; plus
      // controls (a plain GET, trivial scripts) to tell the script's cost from the round trip's.
      const teamId = String(body.teamId ?? "");
      const userId = String(body.userId ?? "");
      const org = String(body.organizationId ?? "");
      if (!teamId || !userId || !org) return json({ error: "teamId, userId, organizationId required" }, 400);
      const n = int(body.n, 300, 10_000);
      const platform = createPlatform(env, ctx, createLogger({ bench: "teams-parts" }));
      try {
        const { redis, keys, db } = platform;
        const cache = new PermissionCache(redis, keys);
        const maxDepth = platform.config.teams.maxDepth;
        await grantsOnPath(db, teamId, userId, maxDepth); // pool connect
        const loop = async (fn: () => Promise<unknown>) => {
          const r = await runBounded({ count: n, timeLimitMs: TIME_LIMIT_MS / 6 }, fn);
          const s = summarize(r.latencies);
          return {
            ok: r.ok,
            failed: r.failed,
            p50: s.p50,
            p99: s.p99,
            mean: round(r.ms / Math.max(1, r.ok)),
            errors: r.errors,
          };
        };
        const orgKey = keys.key("teams", "org-of", teamId);
        const grants = await grantsOnPath(db, teamId, userId, maxDepth);
        await cache.setOrg(teamId, org);
        const version = (await cache.lookup(teamId, userId)).version ?? "0";
        return json({
          orgOfGet: await loop(() => redis.get(orgKey)),
          cacheEval: await loop(() => cache.lookup(teamId, userId)),
          grantsOnPath: await loop(() => grantsOnPath(db, teamId, userId, maxDepth)),
          cacheSet: await loop(() => cache.set(org, version, teamId, userId, grants)),
          bump: await loop(() => cache.bump(org)),
          // Controls: a plain GET of the entry the EVAL reads, and trivial scripts (is it the script or the trip?).
          entryGet: await loop(() => redis.get(keys.key("perm", org, `w${version}`, teamId, userId))),
          evalReturn1: await loop(() => redis.eval("return 1", [], [])),
          evalGet: await loop(() => redis.eval("return redis.call('GET', KEYS[1])", [orgKey], [])),
          grants: grants.length,
        });
      } finally {
        platform.close();
      }
    }
    case "teams-hierarchy": {
      // getHierarchy(teamId, direction) through the service (no viewer), `runs` times after one warm-up.
      const teamId = String(body.teamId ?? "");
      const direction = String(body.direction ?? "descendants") as "ancestors" | "descendants" | "both";
      if (!teamId || !["ancestors", "descendants", "both"].includes(direction))
        return json({ error: "teamId and direction required" }, 400);
      const platform = createPlatform(env, ctx, createLogger({ bench: "teams-hierarchy" }));
      try {
        const svc = createTeamService(platform);
        const count = (nodes: { children: unknown[] }[]): number =>
          nodes.reduce((n, c) => n + 1 + count(c.children as { children: unknown[] }[]), 0);
        let nodes = count((await svc.getHierarchy(teamId, direction)).descendants); // warm-up: pool connect, plans
        const r = await runBounded({ count: int(body.runs, 5, 100), timeLimitMs: TIME_LIMIT_MS }, async () => {
          nodes = count((await svc.getHierarchy(teamId, direction)).descendants);
        });
        const s = summarize(r.latencies);
        return json({
          ok: r.ok,
          failed: r.failed,
          p50: s.p50,
          p99: s.p99,
          mean: round(r.ms / Math.max(1, r.ok)),
          max: s.max,
          nodes,
          errors: r.errors,
        });
      } finally {
        platform.close();
      }
    }
    default:
      return json({ error: `unknown bench route ${route}` }, 404);
  }
}

/** A `/__bench/teams-check` pair; `group` labels it in the per-group summaries. */
interface CheckPair {
  teamId: string;
  userId: string;
  permission: string;
  group?: string;
}

/**
 * `checkPermission` latency from inside the Worker, sequential, one platform (one pool, one Redis
 * client) for the whole loop. Modes:
 * - `cached`: every pair is checked once (fills the cache), then `n` checks cycle through the pairs;
 * - `bump`: before each of the `n` checks (untimed) the organization's cache version is bumped
 *   (`PermissionCache.bump`), so every check misses the permission cache and runs `grantsOnPath`;
 * - `cold`: each pair once, none checked before (permission cache and team→organization cache miss).
 * `warmupPairs` (checked first, untimed) open the Postgres connection and warm the clients.
 * Replies with the summary of all checks, per-group summaries, and each pair's last decision.
 */
async function teamsCheck(
  body: Record<string, unknown>,
  env: CloudflareBindings,
  ctx: ExecutionContext,
): Promise<Response> {
  const pairs = (Array.isArray(body.pairs) ? body.pairs : []) as CheckPair[];
  const warmupPairs = (Array.isArray(body.warmupPairs) ? body.warmupPairs : []) as CheckPair[];
  const mode = String(body.mode ?? "cached");
  const org = String(body.organizationId ?? "");
  if (pairs.length === 0 || pairs.length > 10_000 || warmupPairs.length > 1_000)
    return json({ error: "pairs: 1..10000, warmupPairs: ..1000" }, 400);
  if (!["cached", "bump", "cold"].includes(mode)) return json({ error: "mode: cached | bump | cold" }, 400);
  if (mode === "bump" && !org) return json({ error: "bump needs organizationId" }, 400);
  for (const p of [...pairs, ...warmupPairs]) {
    if (typeof p?.teamId !== "string" || typeof p.userId !== "string" || typeof p.permission !== "string")
      return json({ error: "every pair needs teamId, userId, permission" }, 400);
  }
  const n = mode === "cold" ? pairs.length : int(body.n, 1000, MAX_N);
  const platform = createPlatform(env, ctx, createLogger({ bench: "teams-check" }));
  try {
    const svc = createTeamService(platform);
    const cache = new PermissionCache(platform.redis, platform.keys);
    for (const p of warmupPairs) await svc.checkPermission(p.teamId, p.userId, p.permission);
    if (mode === "cached") for (const p of pairs) await svc.checkPermission(p.teamId, p.userId, p.permission);
    const latencies: number[] = [];
    const byGroup = new Map<string, number[]>();
    const allowed: (boolean | null)[] = pairs.map(() => null);
    const reasons: string[] = pairs.map(() => "");
    const errors: string[] = [];
    let failed = 0;
    let stoppedEarly = false;
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      if (performance.now() - start > TIME_LIMIT_MS) {
        stoppedEarly = true;
        break;
      }
      const k = i % pairs.length;
      const p = pairs[k]!;
      try {
        if (mode === "bump") await cache.bump(org); // not timed
        const t0 = performance.now();
        const d = await svc.checkPermission(p.teamId, p.userId, p.permission);
        const ms = performance.now() - t0;
        latencies.push(ms);
        const g = p.group ?? "all";
        let list = byGroup.get(g);
        if (!list) byGroup.set(g, (list = []));
        list.push(ms);
        allowed[k] = d.allowed;
        reasons[k] = d.reason;
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push(err instanceof Error ? err.message : String(err));
      }
    }
    const totalMs = performance.now() - start;
    const groups = Object.fromEntries([...byGroup].map(([g, l]) => [g, summarize(l)]));
    // mean = sum of the timed checks / count (in `bump` mode the loop also holds the untimed bumps).
    // Raw per-group latencies too (whole ms in workerd), so the harness can pool several requests.
    const raw = Object.fromEntries([...byGroup].map(([g, l]) => [g, l.map((x) => round(x))]));
    return json({
      mode,
      ok: latencies.length,
      failed,
      stoppedEarly,
      loopMs: round(totalMs),
      ...summarize(latencies),
      groups,
      raw,
      allowed,
      reasons,
      errors,
    });
  } finally {
    platform.close();
  }
}

export default {
  ...real,
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (!url.pathname.startsWith("/__bench/")) return real.fetch(request, env, ctx);
    if (getConfig(env).environment === "production" || request.method !== "POST")
      return json({ error: "not found" }, 404);
    try {
      const body = (await request.json().catch(() => ({}))) as Record<string, unknown>;
      return await benchRoute(url.pathname.slice("/__bench/".length), body, env, ctx);
    } catch (err) {
      const status = err instanceof RangeError ? 400 : 500;
      return json({ error: err instanceof Error ? err.message : String(err) }, status);
    }
  },
} satisfies ExportedHandler<CloudflareBindings>;
