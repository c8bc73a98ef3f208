import { z } from "zod";
import { ConfigurationError } from "./errors.ts";

/**
 * The Worker's configuration, parsed once per env object from the bindings (wrangler `[vars]`,
 * secrets, `.dev.vars`). Replaces the seed's per-service `config.js`: `databaseUrl`, Redis,
 * `rabbitmqUrl` and each service's settings live here, with defaults only where a default is
 * safe — never for a secret.
 */

const int = (min: number, max: number, fallback: number) => z.coerce.number().int().min(min).max(max).default(fallback);
const bool = (fallback: boolean) =>
  z
    .enum(["true", "false", "1", "0"])
    .default(fallback ? "true" : "false")
    .transform((v) => v === "true" || v === "1");

const envSchema = z.object({
  ENVIRONMENT: z.enum(["development", "test", "production"]).default("production"),
  DATABASE_URL: z.string({ error: "is required" }).regex(/^postgres(ql)?:\/\//, "must be a postgres:// URL"),
  DATABASE_WS_PROXY: z
    .string()
    .regex(/^[\w.-]+:\d+$/, "must be host:port of the local WebSocket-to-TCP proxy")
    .optional(),
  UPSTASH_REDIS_REST_URL: z.url({ error: "must be the Upstash REST URL" }),
  UPSTASH_REDIS_REST_TOKEN: z.string({ error: "is required" }).min(1, "is required"),
  REDIS_KEY_PREFIX: z.string().default("cm:"),
  RABBITMQ_URL: z.string({ error: "is required" }).regex(/^amqps?:\/\//, "must be an amqp:// or amqps:// URL"),
  RABBITMQ_EXCHANGE: z.string().min(1).default("cloudmatrix.events"),
  RABBITMQ_QUEUE_PREFIX: z.string().default("cloudmatrix-edge."),
  AUTH_JWT_SECRET: z.string({ error: "is required" }).min(32, "must be at least 32 characters"),
  AUTH_JWT_ISSUER: z.string().min(1).default("cloudmatrix"),
  AUTH_JWT_AUDIENCE: z.string().min(1).default("cloudmatrix-edge"),
  TOKEN_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  MAX_BODY_BYTES: int(1024, 50 * 1024 * 1024, 1024 * 1024),
  EVENTS_INBOUND_POLL_MS: int(50, 86_400_000, 1_000),
  EVENTS_INBOUND_BURST_MAX: int(1, 5_000, 5_000),
  EVENTS_INBOUND_BURST_MS: int(10, 25_000, 5_000),
  EVENTS_OUTBOX_LAG_ALERT_SECONDS: int(1, 86_400, 300),
  EVENTS_RELAY_LANES: int(1, 3, 3),
  USERS_SERVICE_URL: z.url().optional(),
  EMAIL_API_URL: z.url().optional(),
  EMAIL_API_TOKEN: z.string().min(1).optional(),
  EMAIL_FROM: z.string().min(3).default("CloudMatrix <no-reply@cloudmatrix.dev>"),
  // Webhooks (seed Task 3).
  WEBHOOK_TIMEOUT_MS: int(100, 120_000, 30_000),
  WEBHOOK_MAX_ATTEMPTS: int(1, 50, 15),
  WEBHOOK_BACKOFF_BASE_MS: int(100, 3_600_000, 1_000),
  WEBHOOK_BACKOFF_CAP_MS: int(1_000, 86_400_000, 3_600_000),
  WEBHOOK_CONCURRENCY: int(1, 64, 4),
  WEBHOOK_CIRCUIT_FAILURE_THRESHOLD: int(1, 1_000, 5),
  WEBHOOK_CIRCUIT_SUCCESS_THRESHOLD: int(1, 1_000, 2),
  WEBHOOK_CIRCUIT_COOLDOWN_MS: int(1_000, 86_400_000, 60_000),
  WEBHOOK_SECRET_OVERLAP_MS: int(0, 30 * 86_400_000, 86_400_000),
  WEBHOOK_ALLOW_LOCAL_HTTP: bool(false),
  WEBHOOK_RETENTION_DAYS: int(1, 3_650, 30),
  WEBHOOK_AUTO_DISABLE_AFTER_MS: int(0, 365 * 86_400_000, 5 * 86_400_000),
  WEBHOOK_RATE_LIMIT_PER_SECOND: int(0, 10_000, 0),
  WEBHOOK_WRITER_SHARDS: int(1, 64, 4),
  // Usage (seed Task 1).
  USAGE_LATE_EVENT_HORIZON_DAYS: int(1, 400, 35),
  USAGE_INGEST_RATE_LIMIT_PER_MINUTE: int(1, 10_000_000, 600),
  USAGE_MINUTE_RETENTION_DAYS: int(1, 90, 7),
  USAGE_FOLD_INTERVAL_MS: int(0, 3_600_000, 1_000),
  // Teams (seed Task 2).
  TEAMS_MAX_DEPTH: int(1, 100, 20),
  TEAMS_INVITATION_TTL_DAYS: int(1, 30, 7),
  TEAMS_INVITATION_RATE_LIMIT: int(1, 100_000, 50),
  TEAMS_INVITATION_ACCEPT_URL: z.url().optional(),
});

/** Typed configuration of the Worker. */
export interface Config {
  /** `development` enables dev-only routes (captured e-mails) and local conveniences. */
  environment: "development" | "test" | "production";
  /** Postgres connection string (Neon in production, local Postgres through the proxy in dev). */
  databaseUrl: string;
  /** `host:port` of the local WebSocket-to-TCP proxy; unset in production (Neon speaks WSS itself). */
  databaseWsProxy?: string;
  /** Upstash REST endpoint, token, and the prefix every key gets (tests isolate runs with it). */
  redis: { url: string; token: string; keyPrefix: string };
  /** RabbitMQ: connection URL, the platform's topic exchange, and the prefix of this project's queues. */
  rabbitmq: { url: string; exchange: string; queuePrefix: string };
  /** Event bus: inbound RabbitMQ burst sizes and polling, and the outbox lag that fails readiness. */
  events: {
    inboundPollMs: number;
    inboundBurstMax: number;
    inboundBurstMs: number;
    outboxLagAlertSeconds: number;
    relayLanes: number;
  };
  /** JWT verification: HS256 secret, required `iss` and `aud`. */
  auth: { secret: string; issuer: string; audience: string };
  /** Key of derived tokens (invitation links); `TOKEN_SECRET`, else the JWT secret (domain-separated). */
  tokenSecret: string;
  /** Largest accepted request body in bytes. */
  maxBodyBytes: number;
  /** Base URL of the platform's users service, when there is one. */
  usersServiceUrl?: string;
  /** E-mail provider (an HTTP API taking JSON); without one, e-mails are captured in Postgres. */
  email: { apiUrl?: string; apiToken?: string; from: string };
  /** Webhook delivery settings. */
  webhooks: {
    timeoutMs: number;
    maxAttempts: number;
    backoffBaseMs: number;
    backoffCapMs: number;
    concurrency: number;
    circuit: { failureThreshold: number; successThreshold: number; cooldownMs: number };
    secretOverlapMs: number;
    /** Allow `http://127.0.0.1`/`localhost` receivers; only `npm run dev` turns it on. */
    allowLocalHttp: boolean;
    /** Days delivery and attempt history is kept. */
    retentionDays: number;
    /** Disable an endpoint whose every attempt failed for this long (0: never). */
    autoDisableAfterMs: number;
    /** Default per-endpoint rate limit, deliveries per second (0: none). */
    rateLimitPerSecond: number;
    /** Writer objects (Postgres sessions kept warm) that batch fan-out and attempt results. */
    writerShards: number;
  };
  /** Usage analytics settings. */
  usage: {
    lateEventHorizonDays: number;
    ingestRateLimitPerMinute: number;
    minuteRetentionDays: number;
    /** How long the aggregator lets the log's tail grow before folding it (reads stay exact meanwhile). */
    foldIntervalMs: number;
  };
  /** Team management settings. */
  teams: { maxDepth: number; invitationTtlDays: number; invitationRateLimit: number; acceptUrl?: string };
}

function parseEnv<T extends z.ZodType>(schema: T, env: Record<string, unknown>): z.infer<T> {
  // Empty strings count as unset so `FOO=` in .dev.vars falls back to the default (or fails if required).
  const raw = Object.fromEntries(Object.entries(env).filter(([, v]) => typeof v === "string" && v !== ""));
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`);
    throw new ConfigurationError(`invalid configuration: ${problems.join("; ")}`, {
      details: { variables: parsed.error.issues.map((i) => i.path.join(".")) },
    });
  }
  return parsed.data;
}

const rabbitmqSchema = envSchema.pick({ RABBITMQ_URL: true, RABBITMQ_EXCHANGE: true, RABBITMQ_QUEUE_PREFIX: true });

/**
 * Parses only the RabbitMQ settings, with the same defaults as {@link parseConfig}: for tooling
 * that declares the broker topology (`npm run setup`, the local stack) without the other secrets.
 */
export function parseRabbitmqConfig(env: Record<string, unknown>): Config["rabbitmq"] {
  const e = parseEnv(rabbitmqSchema, env);
  return { url: e.RABBITMQ_URL, exchange: e.RABBITMQ_EXCHANGE, queuePrefix: e.RABBITMQ_QUEUE_PREFIX };
}

/** Parses raw bindings into a {@link Config}; throws {@link ConfigurationError} naming every bad variable. */
export function parseConfig(env: Record<string, unknown>): Config {
  const e = parseEnv(envSchema, env);
  return {
    environment: e.ENVIRONMENT,
    databaseUrl: e.DATABASE_URL,
    databaseWsProxy: e.DATABASE_WS_PROXY,
    redis: { url: e.UPSTASH_REDIS_REST_URL, token: e.UPSTASH_REDIS_REST_TOKEN, keyPrefix: e.REDIS_KEY_PREFIX },
    rabbitmq: { url: e.RABBITMQ_URL, exchange: e.RABBITMQ_EXCHANGE, queuePrefix: e.RABBITMQ_QUEUE_PREFIX },
    events: {
      inboundPollMs: e.EVENTS_INBOUND_POLL_MS,
      inboundBurstMax: e.EVENTS_INBOUND_BURST_MAX,
      inboundBurstMs: e.EVENTS_INBOUND_BURST_MS,
      outboxLagAlertSeconds: e.EVENTS_OUTBOX_LAG_ALERT_SECONDS,
      relayLanes: e.EVENTS_RELAY_LANES,
    },
    auth: { secret: e.AUTH_JWT_SECRET, issuer: e.AUTH_JWT_ISSUER, audience: e.AUTH_JWT_AUDIENCE },
    tokenSecret: e.TOKEN_SECRET ?? e.AUTH_JWT_SECRET,
    maxBodyBytes: e.MAX_BODY_BYTES,
    usersServiceUrl: e.USERS_SERVICE_URL,
    email: { apiUrl: e.EMAIL_API_URL, apiToken: e.EMAIL_API_TOKEN, from: e.EMAIL_FROM },
    webhooks: {
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
      maxAttempts: e.WEBHOOK_MAX_ATTEMPTS,
      backoffBaseMs: e.WEBHOOK_BACKOFF_BASE_MS,
      backoffCapMs: e.WEBHOOK_BACKOFF_CAP_MS,
      concurrency: e.WEBHOOK_CONCURRENCY,
      circuit: {
        failureThreshold: e.WEBHOOK_CIRCUIT_FAILURE_THRESHOLD,
        successThreshold: e.WEBHOOK_CIRCUIT_SUCCESS_THRESHOLD,
        cooldownMs: e.WEBHOOK_CIRCUIT_COOLDOWN_MS,
      },
      secretOverlapMs: e.WEBHOOK_SECRET_OVERLAP_MS,
      allowLocalHttp: e.WEBHOOK_ALLOW_LOCAL_HTTP && e.ENVIRONMENT !== "production",
      retentionDays: e.WEBHOOK_RETENTION_DAYS,
      autoDisableAfterMs: e.WEBHOOK_AUTO_DISABLE_AFTER_MS,
      rateLimitPerSecond: e.WEBHOOK_RATE_LIMIT_PER_SECOND,
      writerShards: e.WEBHOOK_WRITER_SHARDS,
    },
    usage: {
      lateEventHorizonDays: e.USAGE_LATE_EVENT_HORIZON_DAYS,
      ingestRateLimitPerMinute: e.USAGE_INGEST_RATE_LIMIT_PER_MINUTE,
      minuteRetentionDays: e.USAGE_MINUTE_RETENTION_DAYS,
      foldIntervalMs: e.USAGE_FOLD_INTERVAL_MS,
    },
    teams: {
      maxDepth: e.TEAMS_MAX_DEPTH,
      invitationTtlDays: e.TEAMS_INVITATION_TTL_DAYS,
      invitationRateLimit: e.TEAMS_INVITATION_RATE_LIMIT,
      acceptUrl: e.TEAMS_INVITATION_ACCEPT_URL,
    },
  };
}

// Keyed by the env object: the runtime hands the same object to every request of an isolate,
// so parsing happens once, and a changed deployment (new env) is parsed anew.
const cache = new WeakMap<object, Config>();

/** Returns the parsed, cached configuration for a Worker env. */
export function getConfig(env: object): Config {
  let config = cache.get(env);
  if (!config) {
    config = parseConfig(env as Record<string, unknown>);
    cache.set(env, config);
  }
  return config;
}
