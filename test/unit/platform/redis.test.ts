import { describe, expect, it } from "vitest";
import { NotFoundError, ServiceUnavailableError } from "../../../src/platform/errors.ts";
import { unavailableOnFailure } from "../../../src/platform/redis.ts";
import { jsonTooDeep, unstorableIssue, unstorablePath } from "../../../src/platform/validation.ts";

// A stand-in for the Upstash client: commands return promises, multi() a builder with exec().
const fake = {
  async get(_k: string): Promise<string> {
    throw new TypeError("fetch failed");
  },
  async set(_k: string, _v: string): Promise<string> {
    return "OK";
  },
  async guarded(): Promise<never> {
    throw new NotFoundError("kept");
  },
  multi() {
    const tx = {
      incr: (_k: string) => tx,
      async exec(): Promise<unknown[]> {
        throw new Error("redis connection closed");
      },
    };
    return tx;
  },
};

describe("unavailableOnFailure", () => {
  it("turns a failed command into 503 service_unavailable with Retry-After 1", async () => {
    const redis = unavailableOnFailure(fake);
    const err = await redis.get("k").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceUnavailableError);
    expect(err).toMatchObject({ status: 503, retryAfterSeconds: 1, message: "redis unavailable" });
    expect(await redis.set("k", "v")).toBe("OK");
  });

  it("maps a failed multi().exec() too, and leaves the platform's own errors alone", async () => {
    const redis = unavailableOnFailure(fake);
    await expect(redis.multi().incr("a").exec()).rejects.toBeInstanceOf(ServiceUnavailableError);
    await expect(redis.guarded()).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe("unstorableIssue", () => {
  it("finds U+0000 in path, query and JSON, and nowhere else", () => {
    expect(unstorableIssue("http://x/v1/a%00b", undefined)?.in).toBe("param");
    expect(unstorableIssue("http://x/v1/a?q=%00", undefined)?.in).toBe("query");
    expect(unstorableIssue("http://x/v1/a", '{"a":{"b":["x\\u0000"]}}')).toMatchObject({ in: "json", path: "a.b.0" });
    expect(unstorableIssue("http://x/v1/a", '{"a":"\\\\u0000"}')).toBeUndefined(); // an escaped backslash
    expect(unstorableIssue("http://x/v1/a", "{not json \\u0000")).toBeUndefined(); // invalid_json is the validator's
    expect(unstorablePath({ "k\u0000": 1 })).toBe("k\u0000");
  });

  it("finds unpaired surrogates (jsonb refuses them), and passes well-formed pairs", () => {
    expect(unstorableIssue("http://x/v1/a", '{"a":["ok","\\ud800"]}')).toMatchObject({ in: "json", path: "a.1" });
    expect(unstorableIssue("http://x/v1/a", '{"a":"x\\udc00"}')).toMatchObject({ path: "a" });
    expect(unstorableIssue("http://x/v1/a", '{"\\udbff":1}')).toMatchObject({ path: "\udbff" });
    expect(unstorableIssue("http://x/v1/a", '{"a":"\\ud83c\\udf89 🎉"}')).toBeUndefined();
    expect(unstorablePath({ deep: { list: [{ k: "\ud800" }] } })).toBe("deep.list.0.k");
    expect(unstorablePath({ k: "\ud83c\udf89" })).toBeUndefined();
  });

  it("refuses JSON nested deeper than 64 levels, counting brackets outside strings only", () => {
    expect(jsonTooDeep(`${"[".repeat(64)}${"]".repeat(64)}`)).toBe(false);
    expect(jsonTooDeep(`${"[".repeat(65)}${"]".repeat(65)}`)).toBe(true);
    expect(jsonTooDeep(`{"s":"${"{[".repeat(100)}\\"}"}`)).toBe(false); // brackets inside a string, an escaped quote
    expect(jsonTooDeep(`[${"[],".repeat(1000)}[]]`)).toBe(false); // wide, not deep
    expect(jsonTooDeep(`{"s":"x\\"${"[".repeat(70)}"}`)).toBe(false); // an escaped quote does not end the string
    expect(jsonTooDeep(`{"s":"x\\\\","t":${"[".repeat(70)}${"]".repeat(70)}}`)).toBe(true); // an escaped backslash does
    expect(unstorableIssue("http://x/v1/a", `{"a":${"[".repeat(70)}${"]".repeat(70)}}`)).toMatchObject({
      code: "too_deep",
      in: "json",
    });
  });

  it("finds them at any depth, without running out of stack", () => {
    let deep: unknown = { k: "x\u0000" };
    for (let i = 0; i < 100_000; i++) deep = { a: deep };
    expect(unstorablePath(deep)?.split(".")).toHaveLength(100_001);
    const body = `${'{"a":'.repeat(500)}"\\ud800"${"}".repeat(500)}`;
    expect(unstorableIssue("http://x/v1/a", body)).toMatchObject({ in: "json" });
    let ok: unknown = "fine";
    for (let i = 0; i < 100_000; i++) ok = [ok];
    expect(unstorablePath(ok)).toBeUndefined();
  });
});
