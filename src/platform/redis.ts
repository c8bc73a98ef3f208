import { Redis } from "@upstash/redis/cloudflare";
import type { Config } from "./config.ts";

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
  return { redis, keys: { key: (...parts) => prefix + parts.join(":") } };
}
