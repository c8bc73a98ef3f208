import { Redis } from "@upstash/redis/cloudflare";
import type { Config } from "./config.ts";
import { AppError, ServiceUnavailableError } from "./errors.ts";

/**
 * Redis over Upstash's REST protocol (`@upstash/redis`); locally the project's adapter speaks the
 * same protocol in front of `redis-server`. Every key goes through {@link RedisKeys} so a whole
 * deployment — or one test run — lives under one prefix.
 */

/** The Upstash client type, re-exported so services depend on this module only. */
export type { Redis };

/** Builds keys under the configured prefix. */
export interface RedisKeys {
  /** Joins `parts` with `:` under the prefix, e.g. `cm:perm:org_1:v`. */
  key(...parts: (string | number)[]): string;
}

/** Creates the Upstash client and the key builder for a configuration. */
export function createRedis(config: Pick<Config, "redis">): { redis: Redis; keys: RedisKeys } {
  const redis = new Redis({
    url: config.redis.url,
    token: config.redis.token,
    // Values are what we stored; never let the client turn "123" into a number behind our back.
    automaticDeserialization: false,
    enableTelemetry: false,
    retry: { retries: 2, backoff: (n) => Math.min(50 * 2 ** n, 400) },
  });
  const prefix = config.redis.keyPrefix;
  return { redis: unavailableOnFailure(redis), keys: { key: (...parts) => prefix + parts.join(":") } };
}

/**
 * Redis is reached over HTTP: an unreachable server (or adapter) surfaces as whatever the client
 * throws — an `UpstashError`, a `TypeError` from `fetch` — which the error handler would turn into a
 * 500. Every failed command (and `multi()`/`pipeline()` `exec`) becomes a 503
 * `service_unavailable` with `Retry-After`, the one "try again shortly" of the platform; callers
 * that can do without Redis still catch it and go on.
 */
export function unavailableOnFailure<T extends object>(target: T): T {
  const map = (err: unknown) => {
    if (err instanceof AppError) throw err;
    throw new ServiceUnavailableError("redis unavailable", { cause: err, retryAfterSeconds: 1 });
  };
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        let result: unknown;
        try {
          result = value.apply(obj, args);
        } catch (err) {
          map(err);
        }
        if (result instanceof Promise) return result.catch(map);
        // multi()/pipeline() return a builder whose exec() runs the commands.
        if (result && typeof result === "object" && typeof (result as { exec?: unknown }).exec === "function")
          return unavailableOnFailure(result);
        return result;
      };
    },
  });
}
