import type { EventBus } from "../events/bus.ts";
import { OutboxEventBus, hasOutboxWrites } from "../events/bus.ts";
import { relayWithConfig } from "../events/relay.ts";
import type { Config } from "./config.ts";
import { getConfig } from "./config.ts";
import type { Db, Queryable } from "./db.ts";
import { createDb } from "./db.ts";
import type { Logger } from "./logger.ts";
import type { QueueProducer } from "./queue.ts";
import type { Redis, RedisKeys } from "./redis.ts";
import { createRedis } from "./redis.ts";
import { deliverEmails, hasEmailWrites, providerFromConfig } from "./email.ts";

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
  /**
   * The event bus outside a transaction (inside one, use `withTransaction`). Either way the outbox
   * relay is kicked in the background once the events are committed.
   */
  readonly events: EventBus;
  /** Publishes pending outbox rows now (in the background via waitUntil); coalesces repeated kicks. */
  kickRelay(): void;
  /** Queue producers and other bindings the services use (typed structurally, so fakes fit). */
  readonly bindings: PlatformBindings;
  /** Registers a listener called after every committed transaction of {@link db}. */
  afterCommit(listener: (tx: Queryable) => void): void;
  /** Keeps the invocation alive until `promise` settles (ctx.waitUntil). */
  waitUntil(promise: Promise<unknown>): void;
  /** Releases what was opened; call once at the end of the invocation. */
  close(): void;
}

/** A Durable Object namespace, as far as the services use it. */
interface DoNamespace {
  idFromName(name: string): unknown;
  get(id: unknown): unknown;
}

/**
 * The objects of a Durable Object binding, by name (one per webhook, per organization…), typed as
 * the RPC surface the caller uses. Throws when the binding is missing from wrangler.toml.
 */
export function objectsByName<T>(platform: Pick<Platform, "bindings">, binding: string): (name: string) => T {
  const ns = platform.bindings[binding] as DoNamespace | undefined;
  if (!ns) throw new Error(`${binding} Durable Object binding missing`);
  return (name) => ns.get(ns.idFromName(name)) as T;
}

/** Bindings beyond configuration strings (see wrangler.toml). */
export interface PlatformBindings {
  /** Queue `platform-events`: every domain event, for in-Worker consumers. */
  PLATFORM_EVENTS?: QueueProducer;
  /** Queue `usage-events`: usage events to meter. */
  USAGE_EVENTS?: QueueProducer;
  [name: string]: unknown;
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
  const bindings = env as PlatformBindings;
  let db: Db | undefined;
  const kickRelay = coalescing(ctx, async () => {
    const queue = bindings.PLATFORM_EVENTS;
    if (!queue) return; // no queue bound (e.g. a bare test app): the cron sweep relays later
    await relayWithConfig({ config, queue, logger }).catch((err: unknown) =>
      logger.error("outbox relay failed", { err }),
    );
  });
  const kickEmails = coalescing(ctx, () =>
    sendQueuedEmails(config, logger).then(
      () => undefined,
      (err: unknown) => logger.error("e-mail sender failed", { err }),
    ),
  );
  const commitListeners: ((tx: Queryable) => void)[] = [
    (tx) => hasOutboxWrites(tx) && kickRelay(),
    (tx) => hasEmailWrites(tx) && kickEmails(),
  ];
  let redis: { redis: Redis; keys: RedisKeys } | undefined;
  const getRedis = () => (redis ??= createRedis(config));
  return {
    config,
    logger,
    get db() {
      return (db ??= createDb(config, {
        onError: (err) => logger.warn("postgres socket error", { err }),
        onCommit: (tx) => {
          for (const l of commitListeners) l(tx);
        },
      }));
    },
    get redis() {
      return getRedis().redis;
    },
    get keys() {
      return getRedis().keys;
    },
    get events() {
      return new OutboxEventBus(this.db, kickRelay);
    },
    kickRelay,
    bindings,
    afterCommit: (listener) => void commitListeners.push(listener),
    waitUntil: (p) => ctx.waitUntil(p),
    close() {
      if (db) ctx.waitUntil(db.end());
    },
  };
}

/**
 * A background job for `waitUntil` that coalesces kicks: a kick while it runs makes it run once more
 * afterwards (so nothing committed meanwhile waits for the cron), never twice at once.
 */
function coalescing(ctx: WaitUntil, job: () => Promise<void>): () => void {
  let running: Promise<void> | undefined;
  let again = false;
  return () => {
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        await job();
      } while (again);
    })().finally(() => (running = undefined));
    ctx.waitUntil(running);
  };
}

/**
 * One run of the e-mail sender on its own pool (the request's pool closes when the request ends).
 * @returns what it did
 */
export async function sendQueuedEmails(config: Config, logger: Logger, limit = 50) {
  const db = createDb(config, { onError: (err) => logger.warn("e-mail sender socket error", { err }) });
  try {
    return await deliverEmails(db, {
      provider: providerFromConfig(config),
      from: config.email.from,
      tokenSecret: config.tokenSecret,
      logger,
      limit,
    });
  } finally {
    await db.end();
  }
}

/** Runs `fn` with a platform for one invocation and closes it afterwards (Durable Object methods, jobs). */
export async function withPlatform<T>(
  env: object,
  ctx: WaitUntil,
  logger: Logger,
  fn: (p: Platform) => Promise<T>,
): Promise<T> {
  const platform = createPlatform(env, ctx, logger);
  try {
    return await fn(platform);
  } finally {
    platform.close();
  }
}
