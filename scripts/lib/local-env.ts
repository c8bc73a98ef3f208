import { randomBytes } from "node:crypto";
import { ensureStack } from "../stack.ts";
import type { Stack } from "../stack.ts";
import { startUpstashAdapter } from "../upstash-adapter.ts";
import { startWsProxy, startWsProxyInThread } from "../ws-proxy.ts";
import { createDatabase, closePgProxy, databaseUrl, dropDatabase } from "./pg.ts";
import { migrate } from "../migrate.ts";
import { ensureTopology, topology } from "../../src/events/rabbit.ts";
import { withAmqp } from "../../src/platform/amqp.ts";
import { parseRabbitmqConfig } from "../../src/platform/config.ts";
import { Redis } from "@upstash/redis";

/**
 * Everything a local Worker needs, in one call shared by `npm run dev`, the test setup and the
 * benchmarks: the stack (reused or started), a migrated database, the declared RabbitMQ topology,
 * the WebSocket proxy for the Neon driver, the Upstash-compatible adapter, and the bindings that
 * point at them.
 */

/** Options of {@link startLocalEnv}. */
export interface LocalEnvOptions {
  /** Database to create (if missing) and migrate. */
  database: string;
  /** Drop the database, delete the Redis keys and the RabbitMQ exchanges/queues on close (tests, benchmarks). */
  dropOnClose?: boolean;
  /** Prefix of every Redis key; tests use a per-run prefix and delete it on close. */
  redisKeyPrefix: string;
  /** RabbitMQ exchange and queue prefix; tests use per-run names. */
  rabbitmqExchange?: string;
  rabbitmqQueuePrefix?: string;
  /** Fixed ports for the proxies (dev), else free ports. */
  wsProxyPort?: number;
  /** Run the Postgres WebSocket proxy on its own worker thread (benchmarks). */
  wsProxyThread?: boolean;
  upstashPort?: number;
  log?: (msg: string) => void;
}

/** A running local environment. */
export interface LocalEnv {
  /** Worker bindings (secrets and vars) pointing at the local servers. */
  bindings: Record<string, string>;
  stack: Stack;
  close(): Promise<void>;
}

/** The dev/test JWT secret (never used in production: there it is a `wrangler secret`). */
export const LOCAL_JWT_SECRET = "dev-secret-change-me-0123456789abcdef";

/** Brings the local environment up. */
export async function startLocalEnv(opts: LocalEnvOptions): Promise<LocalEnv> {
  const log = opts.log ?? (() => {});
  const stack = await ensureStack({ log });
  const dbUrl = databaseUrl(stack.postgresUrl, opts.database);
  await createDatabase(stack.postgresUrl, opts.database);
  const migrated = await migrate(dbUrl, "migrations", log);
  log(`database ${opts.database}: ${migrated.applied.length} migration(s) applied`);
  // Before anything can report ready: events published from then on must find their queue.
  const rabbit = parseRabbitmqConfig({
    RABBITMQ_URL: stack.rabbitmqUrl,
    RABBITMQ_EXCHANGE: opts.rabbitmqExchange,
    RABBITMQ_QUEUE_PREFIX: opts.rabbitmqQueuePrefix,
  });
  const t = await ensureTopology(rabbit);
  log(
    `rabbitmq: exchange ${t.exchange} → ${t.inbound.map((i) => i.queue).join(", ")} declared (dead letters ${t.deadLetterQueue})`,
  );

  const proxy = await (opts.wsProxyThread ? startWsProxyInThread : startWsProxy)({ port: opts.wsProxyPort ?? 0 });
  const upstashToken = randomBytes(16).toString("hex");
  const upstash = await startUpstashAdapter({
    redisUrl: stack.redisUrl,
    token: upstashToken,
    port: opts.upstashPort ?? 0,
  });

  const bindings: Record<string, string> = {
    DATABASE_URL: dbUrl,
    DATABASE_WS_PROXY: proxy.address,
    UPSTASH_REDIS_REST_URL: upstash.url,
    UPSTASH_REDIS_REST_TOKEN: upstashToken,
    REDIS_KEY_PREFIX: opts.redisKeyPrefix,
    RABBITMQ_URL: stack.rabbitmqUrl,
    AUTH_JWT_SECRET: LOCAL_JWT_SECRET,
    ...(opts.rabbitmqExchange ? { RABBITMQ_EXCHANGE: opts.rabbitmqExchange } : {}),
    ...(opts.rabbitmqQueuePrefix ? { RABBITMQ_QUEUE_PREFIX: opts.rabbitmqQueuePrefix } : {}),
  };

  return {
    bindings,
    stack,
    async close() {
      if (opts.dropOnClose) {
        await deleteRedisPrefix(new Redis({ url: upstash.url, token: upstashToken }), opts.redisKeyPrefix).catch((e) =>
          log(`redis cleanup failed: ${e}`),
        );
        await deleteRabbitNames(stack.rabbitmqUrl, bindings).catch((e) => log(`rabbitmq cleanup failed: ${e}`));
      }
      await upstash.close().catch(() => undefined);
      await proxy.close().catch(() => undefined);
      if (opts.dropOnClose) await dropDatabase(stack.postgresUrl, opts.database).catch((e) => log(`drop failed: ${e}`));
      await closePgProxy();
      await stack.stop();
    },
  };
}

/** Deletes every key under `prefix` (SCAN, never KEYS, so a shared server is not blocked). */
async function deleteRedisPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor: string | number = 0;
  do {
    const [next, keys]: [string | number, string[]] = await redis.scan(cursor, { match: `${prefix}*`, count: 1000 });
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (String(cursor) !== "0");
}

/** Deletes the per-run exchanges and queues the event bus declared. */
async function deleteRabbitNames(url: string, bindings: Record<string, string>): Promise<void> {
  if (!bindings.RABBITMQ_EXCHANGE || !bindings.RABBITMQ_QUEUE_PREFIX) return;
  const t = topology({ url, exchange: bindings.RABBITMQ_EXCHANGE, queuePrefix: bindings.RABBITMQ_QUEUE_PREFIX });
  await withAmqp(url, async (client) => {
    for (const q of [t.deadLetterQueue, ...t.inbound.map((i) => i.queue)]) {
      const ch = await client.channel();
      await ch.queueDelete(q).catch(() => undefined);
    }
    for (const x of [t.exchange, t.deadLetterExchange]) {
      const ch = await client.channel();
      await ch.exchangeDelete(x).catch(() => undefined);
    }
  });
}
