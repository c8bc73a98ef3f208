import type { Config } from "./config.ts";
import { getConfig } from "./config.ts";
import type { Db } from "./db.ts";
import { createDb } from "./db.ts";
import type { Logger } from "./logger.ts";
import type { Redis, RedisKeys } from "./redis.ts";
import { createRedis } from "./redis.ts";

/**
 * The per-invocation composition root shared by HTTP requests, queue batches, cron runs and
 * Durable Object alarms: configuration, logger, and lazily opened Postgres and Redis clients.
 * Nothing here outlives the invocation (Workers forbid sharing I/O objects across requests).
 */
export interface Platform {
  /** Parsed configuration. */
  readonly config: Config;
  /** Logger carrying the invocation's fields (requestId, org…). */
  readonly logger: Logger;
  /** Request-scoped Postgres handle, opened on first use. */
  readonly db: Db;
  /** Upstash Redis client, created on first use. */
  readonly redis: Redis;
  /** Key builder under the configured prefix. */
  readonly keys: RedisKeys;
  /** Keeps the invocation alive until `promise` settles (ctx.waitUntil). */
  waitUntil(promise: Promise<unknown>): void;
  /** Releases what was opened; call once at the end of the invocation. */
  close(): void;
}

/** What {@link createPlatform} needs from the runtime's execution context. */
export interface WaitUntil {
  waitUntil(promise: Promise<unknown>): void;
}

/**
 * Creates the platform for one invocation.
 * @param env - Worker bindings (parsed into {@link Config}; throws ConfigurationError if invalid)
 * @param ctx - execution context (or DurableObjectState) for `waitUntil`
 * @param logger - logger for this invocation
 */
export function createPlatform(env: object, ctx: WaitUntil, logger: Logger): Platform {
  const config = getConfig(env);
  let db: Db | undefined;
  let redis: { redis: Redis; keys: RedisKeys } | undefined;
  const getRedis = () => (redis ??= createRedis(config));
  return {
    config,
    logger,
    get db() {
      return (db ??= createDb(config, (err) => logger.warn("postgres socket error", { err })));
    },
    get redis() {
      return getRedis().redis;
    },
    get keys() {
      return getRedis().keys;
    },
    waitUntil: (p) => ctx.waitUntil(p),
    close() {
      if (db) ctx.waitUntil(db.end());
    },
  };
}
