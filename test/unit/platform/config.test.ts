import { describe, expect, it } from "vitest";
import { getConfig, parseConfig } from "../../../src/platform/config.ts";
import { ConfigurationError } from "../../../src/platform/errors.ts";

const valid = {
  DATABASE_URL: "postgres://postgres@127.0.0.1:5432/db",
  UPSTASH_REDIS_REST_URL: "http://127.0.0.1:8079",
  UPSTASH_REDIS_REST_TOKEN: "t",
  RABBITMQ_URL: "amqp://guest:guest@127.0.0.1:5672",
  AUTH_JWT_SECRET: "x".repeat(32),
};

describe("parseConfig", () => {
  it("applies safe defaults for everything but secrets", () => {
    const c = parseConfig(valid);
    expect(c.environment).toBe("production");
    expect(c.auth).toEqual({ secret: "x".repeat(32), issuer: "cloudmatrix", audience: "cloudmatrix-edge" });
    expect(c.webhooks.timeoutMs).toBe(30_000);
    expect(c.webhooks.circuit).toEqual({ failureThreshold: 5, successThreshold: 2, cooldownMs: 60_000 });
    expect(c.teams.maxDepth).toBe(20);
    expect(c.usage.lateEventHorizonDays).toBe(35);
    expect(c.rabbitmq.exchange).toBe("cloudmatrix.events");
    expect(c.redis.keyPrefix).toBe("cm:");
  });

  it("names every missing secret in one error", () => {
    const { AUTH_JWT_SECRET: _s, DATABASE_URL: _d, ...rest } = valid;
    const err = (() => {
      try {
        parseConfig(rest);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigurationError);
    expect((err as Error).message).toMatch(/DATABASE_URL/);
    expect((err as Error).message).toMatch(/AUTH_JWT_SECRET/);
    expect((err as ConfigurationError).details).toEqual({
      variables: expect.arrayContaining(["DATABASE_URL", "AUTH_JWT_SECRET"]),
    });
  });

  it("treats an empty string as unset", () => {
    expect(() => parseConfig({ ...valid, AUTH_JWT_SECRET: "" })).toThrow(/AUTH_JWT_SECRET is required/);
  });

  it("rejects malformed values with the variable name", () => {
    expect(() => parseConfig({ ...valid, RABBITMQ_URL: "http://x" })).toThrow(/RABBITMQ_URL must be an amqp/);
    expect(() => parseConfig({ ...valid, AUTH_JWT_SECRET: "short" })).toThrow(/AUTH_JWT_SECRET must be at least 32/);
    expect(() => parseConfig({ ...valid, WEBHOOK_TIMEOUT_MS: "abc" })).toThrow(/WEBHOOK_TIMEOUT_MS/);
    expect(() => parseConfig({ ...valid, ENVIRONMENT: "staging" })).toThrow(/ENVIRONMENT/);
  });

  it("coerces numeric and boolean settings", () => {
    const c = parseConfig({
      ...valid,
      WEBHOOK_TIMEOUT_MS: "5000",
      WEBHOOK_ALLOW_LOCAL_HTTP: "true",
      ENVIRONMENT: "development",
    });
    expect(c.webhooks.timeoutMs).toBe(5000);
    expect(c.webhooks.allowLocalHttp).toBe(true);
  });

  it("never allows plain-http local receivers in production", () => {
    expect(parseConfig({ ...valid, WEBHOOK_ALLOW_LOCAL_HTTP: "true" }).webhooks.allowLocalHttp).toBe(false);
  });

  it("caches per env object", () => {
    const env = { ...valid };
    expect(getConfig(env)).toBe(getConfig(env));
    expect(getConfig({ ...valid })).not.toBe(getConfig(env));
  });
});
