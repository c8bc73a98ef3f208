/**
 * End-to-end tests for scripts/upstash-adapter.ts: a real @upstash/redis client
 * talks to the adapter, which talks to the real redis-server at REDIS_URL.
 * Every key lives under a random per-run prefix and is deleted in afterAll.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import net from "node:net";
import { randomUUID } from "node:crypto";
import { Redis } from "@upstash/redis";
import { startUpstashAdapter } from "../../scripts/upstash-adapter.ts";
import type { UpstashAdapter } from "../../scripts/upstash-adapter.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const TOKEN = `test-token-${randomUUID()}`;
const PREFIX = `test:${randomUUID()}:`;
const key = (name: string): string => `${PREFIX}${name}`;

let adapter: UpstashAdapter;
/** Default client: auto-pipelining on, so most commands travel through POST /pipeline. */
let redis: Redis;
/** Auto-pipelining off: every command is its own POST / request. */
let direct: Redis;

/** Raw HTTP call to the adapter, for asserting on the wire format the SDK hides. */
async function call(
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  method = "POST",
): Promise<{ status: number; contentType: string | null; json: unknown }> {
  const res = await fetch(`${adapter.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, ...headers },
    body:
      body === undefined
        ? undefined
        : typeof body === "string"
          ? body
          : body instanceof Uint8Array
            ? new Uint8Array(body) // copy: narrows to an ArrayBuffer-backed view, which BodyInit requires
            : JSON.stringify(body),
  });
  return { status: res.status, contentType: res.headers.get("content-type"), json: await res.json() };
}

/** Sends one inline command straight to Redis (bypassing the adapter) and returns the first reply line. */
function rawRedis(command: string): Promise<string> {
  const url = new URL(REDIS_URL);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: url.hostname, port: Number(url.port || 6379) });
    let data = "";
    socket.on("data", (chunk) => {
      data += chunk.toString("utf8");
      const end = data.indexOf("\r\n");
      if (end !== -1) {
        socket.end();
        resolve(data.slice(0, end));
      }
    });
    socket.on("error", reject);
    socket.write(`${command}\r\n`);
  });
}

const b64 = (s: string | Uint8Array): string => Buffer.from(s).toString("base64");

beforeAll(async () => {
  adapter = await startUpstashAdapter({ redisUrl: REDIS_URL, token: TOKEN, port: 0 });
  redis = new Redis({ url: adapter.url, token: TOKEN, enableTelemetry: false });
  direct = new Redis({ url: adapter.url, token: TOKEN, enableTelemetry: false, enableAutoPipelining: false });
});

afterAll(async () => {
  if (!adapter) return;
  const leftovers = await direct.keys(`${PREFIX}*`);
  if (leftovers.length > 0) await direct.del(...leftovers);
  expect(await direct.keys(`${PREFIX}*`)).toEqual([]);
  await adapter.close();
});

describe("upstash adapter with @upstash/redis", () => {
  it("binds a free port and exposes its URL", () => {
    expect(adapter.port).toBeGreaterThan(0);
    expect(adapter.url).toBe(`http://127.0.0.1:${adapter.port}`);
  });

  it.each([
    ["auto-pipelined client (POST /pipeline)", () => redis],
    ["direct client (POST /)", () => direct],
  ])("set/get with EX via the %s", async (_label, client) => {
    const k = key(`ex:${randomUUID()}`);
    expect(await client().set(k, "value-1", { ex: 100 })).toBe("OK");
    expect(await client().get(k)).toBe("value-1");
    const ttl = await client().ttl(k);
    expect(ttl).toBeGreaterThan(90);
    expect(ttl).toBeLessThanOrEqual(100);
    expect(await client().get(key("never-set"))).toBeNull();
  });

  it("stores JSON values: the client serializes objects and parses them back", async () => {
    const value = { id: 42, name: "Ada", tags: ["x", "y"], nested: { ok: true, n: null } };
    await redis.set(key("json"), value);
    expect(await redis.get<typeof value>(key("json"))).toEqual(value);
    // Stored as a JSON string in Redis, not as some adapter-specific encoding.
    expect(await direct.strlen(key("json"))).toBe(JSON.stringify(value).length);
  });

  it("incr / incrby / decrby return integers", async () => {
    expect(await redis.incr(key("counter"))).toBe(1);
    expect(await redis.incr(key("counter"))).toBe(2);
    expect(await redis.incrby(key("counter"), 40)).toBe(42);
    expect(await redis.decrby(key("counter"), 2)).toBe(40);
    expect(await redis.get<number>(key("counter"))).toBe(40);
  });

  it("hset / hget / hgetall", async () => {
    expect(await redis.hset(key("hash"), { name: "Ada", year: 1815, profile: { lang: "en" } })).toBe(3);
    expect(await redis.hget(key("hash"), "name")).toBe("Ada");
    expect(await redis.hgetall(key("hash"))).toEqual({ name: "Ada", year: 1815, profile: { lang: "en" } });
    expect(await redis.hgetall(key("missing-hash"))).toBeNull();
  });

  it("zadd / zrange with scores / zremrangebyscore", async () => {
    const z = key("zset");
    expect(await redis.zadd(z, { score: 3, member: "c" }, { score: 1, member: "a" }, { score: 2.5, member: "b" })).toBe(
      3,
    );
    expect(await redis.zrange(z, 0, -1)).toEqual(["a", "b", "c"]);
    expect(await redis.zrange(z, 0, -1, { withScores: true })).toEqual(["a", 1, "b", 2.5, "c", 3]);
    expect(await redis.zscore(z, "b")).toBe(2.5);
    expect(await redis.zremrangebyscore(z, 0, 2.5)).toBe(2);
    expect(await redis.zrange(z, 0, -1, { withScores: true })).toEqual(["c", 3]);
    expect(await redis.zcard(z)).toBe(1);
  });

  it("pfadd / pfcount / pfmerge", async () => {
    expect(await redis.pfadd(key("hll:1"), "a", "b", "c")).toBe(1);
    expect(await redis.pfadd(key("hll:1"), "a")).toBe(0);
    expect(await redis.pfadd(key("hll:2"), "c", "d")).toBe(1);
    expect(await redis.pfcount(key("hll:1"))).toBe(3);
    expect(await redis.pfmerge(key("hll:all"), key("hll:1"), key("hll:2"))).toBe("OK");
    expect(await redis.pfcount(key("hll:all"))).toBe(4);
  });

  it("sadd / smembers / sismember", async () => {
    expect(await redis.sadd(key("set"), "x", "y", "z", "x")).toBe(3);
    expect((await redis.smembers(key("set"))).sort()).toEqual(["x", "y", "z"]);
    expect(await redis.sismember(key("set"), "y")).toBe(1);
    expect(await redis.sismember(key("set"), "nope")).toBe(0);
  });

  it("del removes keys and reports how many existed", async () => {
    await redis.set(key("del:1"), "1");
    await redis.set(key("del:2"), "2");
    expect(await redis.del(key("del:1"), key("del:2"), key("del:missing"))).toBe(2);
    expect(await redis.exists(key("del:1"), key("del:2"))).toBe(0);
  });

  it("eval runs a Lua script with keys and args and returns nested values", async () => {
    const script = `
      redis.call("SET", KEYS[1], ARGV[1])
      local n = redis.call("INCRBY", KEYS[2], tonumber(ARGV[2]))
      return { redis.call("GET", KEYS[1]), n, { "nested", false } }
    `;
    const result = await redis.eval(script, [key("lua:s"), key("lua:n")], ["from-lua", 7]);
    // Lua false becomes a nil reply.
    expect(result).toEqual(["from-lua", 7, ["nested", null]]);
    expect(await redis.eval("return redis.status_reply('OK')", [], [])).toBe("OK");
  });

  it("pipeline().exec() returns every result in order, in one round trip", async () => {
    const p = redis.pipeline();
    p.set(key("pipe:a"), "1");
    p.incr(key("pipe:a"));
    p.get(key("pipe:a"));
    p.sadd(key("pipe:s"), "m");
    p.smembers(key("pipe:s"));
    p.get(key("pipe:none"));
    expect(await p.exec()).toEqual(["OK", 2, 2, 1, ["m"], null]);
  });

  it("pipeline errors are per command: the others still run", async () => {
    await redis.set(key("pipe:str"), "not-a-number");
    const p = redis.pipeline();
    p.incr(key("pipe:str"));
    p.set(key("pipe:after"), "ran");
    const results = await p.exec({ keepErrors: true });
    expect(results[0]?.error).toMatch(/not an integer/);
    expect(results[1]).toEqual({ error: undefined, result: "OK" });
    expect(await redis.get(key("pipe:after"))).toBe("ran");
  });

  it("multi().exec() is atomic: concurrent transactions never interleave", async () => {
    const counter = key("tx:counter");
    const transaction = () => {
      const tx = redis.multi();
      for (let i = 0; i < 50; i++) tx.incr(counter);
      return tx.exec<number[]>();
    };
    const [a, b] = await Promise.all([transaction(), transaction()]);
    for (const results of [a, b]) {
      expect(results).toHaveLength(50);
      // Consecutive values prove nothing else ran between the commands of one transaction.
      const first = results[0] ?? 0;
      expect(results).toEqual(Array.from({ length: 50 }, (_, i) => first + i));
    }
    expect([a[0], b[0]].sort((x, y) => (x ?? 0) - (y ?? 0))).toEqual([1, 51]);
    expect(await redis.get<number>(counter)).toBe(100);
  });

  it("multi().exec() returns mixed results in order and aborts on queue-time errors", async () => {
    const tx = redis.multi();
    tx.set(key("tx:a"), "hello");
    tx.append(key("tx:a"), " world");
    tx.get(key("tx:a"));
    tx.hset(key("tx:h"), { f: "v" });
    tx.hgetall(key("tx:h"));
    expect(await tx.exec()).toEqual(["OK", 11, "hello world", 1, { f: "v" }]);

    // An unknown command is rejected while queueing, so Redis discards the whole transaction.
    const res = await call("/multi-exec", [["SET", key("tx:aborted"), "x"], ["NOT-A-COMMAND"]]);
    expect(res.status).toBe(400);
    expect(res.json).toEqual({ error: expect.stringMatching(/^EXECABORT/) });
    expect(await redis.exists(key("tx:aborted"))).toBe(0);
  });

  it("a Redis error (INCR on a non-integer) surfaces as a thrown error", async () => {
    await redis.set(key("not-int"), "abc");
    await expect(redis.incr(key("not-int"))).rejects.toThrow(/value is not an integer/);
    await expect(direct.incr(key("not-int"))).rejects.toThrow(/value is not an integer/);
    const raw = await call("/", ["INCR", key("not-int")]);
    expect(raw.status).toBe(400);
    expect(raw.json).toEqual({ error: "ERR value is not an integer or out of range" });
  });

  it("round-trips non-ASCII UTF-8 values and keys", async () => {
    const value = "héllo wörld — 你好 🚀 \u0000 end";
    const k = key("utf8:ключ🔑");
    await redis.set(k, value);
    expect(await redis.get(k)).toBe(value);
    expect(await direct.strlen(k)).toBe(Buffer.byteLength(value, "utf8"));
    expect(await redis.hset(key("utf8:hash"), { поле: "значение ✓" })).toBe(1);
    expect(await redis.hgetall(key("utf8:hash"))).toEqual({ поле: "значение ✓" });
  });
});

describe("upstash adapter wire protocol (raw fetch)", () => {
  it("rejects a wrong token with 401 JSON", async () => {
    const res = await fetch(adapter.url, {
      method: "POST",
      headers: { Authorization: "Bearer wrong-token" },
      body: JSON.stringify(["PING"]),
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual({ error: "Unauthorized" });
    // The SDK surfaces it as an error too.
    const bad = new Redis({ url: adapter.url, token: "wrong-token", enableTelemetry: false });
    await expect(bad.get(key("x"))).rejects.toThrow(/Unauthorized/);
  });

  it("rejects a missing token with 401 and accepts ?_token=", async () => {
    const res = await fetch(`${adapter.url}/get/${encodeURIComponent(key("x"))}`);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: "Unauthorized" });

    const ok = await fetch(`${adapter.url}/ping?_token=${encodeURIComponent(TOKEN)}`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ result: "PONG" });
  });

  it("answers invalid JSON and non-array bodies with 400 {error}", async () => {
    const invalid = await call("/", "{not json");
    expect(invalid.status).toBe(400);
    expect(invalid.contentType).toBe("application/json");
    expect(invalid.json).toEqual({ error: expect.stringMatching(/^ERR /) });

    for (const body of [{ cmd: "GET" }, [], [["GET"], "x"], ["SET", key("obj"), { a: 1 }]]) {
      const res = await call("/", body);
      expect(res.status).toBe(400);
      expect(res.json).toEqual({ error: expect.stringMatching(/^ERR /) });
    }
    const pipeline = await call("/pipeline", ["GET", "not-nested"]);
    expect(pipeline.status).toBe(400);
    expect(pipeline.json).toEqual({ error: expect.any(String) });
    // The server is still healthy afterwards.
    expect((await call("/", ["PING"])).json).toEqual({ result: "PONG" });
  });

  it("returns plain strings without Upstash-Encoding and base64 with it", async () => {
    const k = key("enc");
    expect(await call("/", ["SET", k, "héllo"])).toMatchObject({ status: 200, json: { result: "OK" } });
    expect((await call("/", ["GET", k])).json).toEqual({ result: "héllo" });

    const base64 = { "Upstash-Encoding": "base64" };
    expect((await call("/", ["GET", k], base64)).json).toEqual({ result: b64("héllo") });
    // Top-level "OK" stays readable (the SDK passes it through undecoded); integers and nil are untouched.
    expect((await call("/", ["SET", k, "v2"], base64)).json).toEqual({ result: "OK" });
    expect((await call("/", ["STRLEN", k], base64)).json).toEqual({ result: 2 });
    expect((await call("/", ["GET", key("enc:none")], base64)).json).toEqual({ result: null });
    // Other status replies and strings nested in arrays are encoded.
    expect((await call("/", ["PING"], base64)).json).toEqual({ result: b64("PONG") });
    expect((await call("/", ["MGET", k, key("enc:none")], base64)).json).toEqual({ result: [b64("v2"), null] });
    expect((await call("/", ["MGET", k, key("enc:none")])).json).toEqual({ result: ["v2", null] });

    const pipe = await call(
      "/pipeline",
      [
        ["SET", k, "x"],
        ["INCR", k],
        ["GET", k],
      ],
      base64,
    );
    expect(pipe.json).toEqual([
      { result: "OK" },
      { error: "ERR value is not an integer or out of range" },
      { result: b64("x") },
    ]);
  });

  // Needs JSON.parse source text access (Node >= 21); older runtimes fall back to the parsed number.
  const hasJsonSource =
    JSON.parse("1", (_k: string, v: unknown, ctx?: { source?: string }) => ctx?.source ?? v) === "1";
  it.skipIf(!hasJsonSource)("passes numbers through as their JSON text, exactly", async () => {
    const k = key("bigint");
    // 2^63 - 2 is not representable as a JS number, so the body is written by hand;
    // the adapter forwards the JSON digits verbatim and writes integer replies back exactly.
    expect((await call("/", `["SET",${JSON.stringify(k)},9223372036854775806]`)).json).toEqual({ result: "OK" });
    const res = await fetch(adapter.url, {
      method: "POST",
      headers: { Authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify(["INCR", k]),
    });
    expect(await res.text()).toBe('{"result":9223372036854775807}');
  });

  it("is binary safe: raw bytes go in via a path-form body and come back exactly as base64", async () => {
    const bytes = new Uint8Array([0x00, 0xff, 0xfe, 0x80, 0x0d, 0x0a, 0x24, 0x2a, 0xc3]); // invalid UTF-8 on purpose
    const k = key("binary");
    const set = await call(`/set/${encodeURIComponent(k)}`, bytes, { "Content-Type": "application/octet-stream" });
    expect(set).toMatchObject({ status: 200, json: { result: "OK" } });
    expect((await call("/", ["STRLEN", k])).json).toEqual({ result: bytes.length });
    expect((await call("/", ["GET", k], { "Upstash-Encoding": "base64" })).json).toEqual({ result: b64(bytes) });
  });

  it("supports the path form: /get/<key>, /set/<key>/<value>, URL-decoded", async () => {
    const k = key("path/with spaces?&é");
    const set = await call(`/set/${encodeURIComponent(k)}/${encodeURIComponent("a b/ü")}`, undefined, {}, "POST");
    expect(set.json).toEqual({ result: "OK" });
    const get = await call(`/get/${encodeURIComponent(k)}`, undefined, {}, "GET");
    expect(get).toEqual({ status: 200, contentType: "application/json", json: { result: "a b/ü" } });
    expect(await redis.get(k)).toBe("a b/ü");
    const withEx = await call(`/set/${encodeURIComponent(key("path:ex"))}/v/EX/100`, undefined, {}, "GET");
    expect(withEx.json).toEqual({ result: "OK" });
    expect(await redis.ttl(key("path:ex"))).toBeGreaterThan(90);
    expect(
      (await call(`/get/${encodeURIComponent(k)}`, undefined, { "Upstash-Encoding": "base64" }, "GET")).json,
    ).toEqual({
      result: b64("a b/ü"),
    });
  });

  it("handles replies split over many TCP chunks (large bulk strings and arrays)", async () => {
    const big = `${Array.from({ length: 300_000 }, (_, i) => String.fromCharCode(0x61 + (i % 26))).join("")}é🚀`;
    await direct.set(key("big"), big);
    expect(await direct.get(key("big"))).toBe(big);
    const items = Array.from({ length: 5_000 }, (_, i) => `item-${i}-${"x".repeat(i % 50)}`);
    expect(await direct.rpush(key("list"), ...items)).toBe(items.length);
    expect(await direct.lrange(key("list"), 0, -1)).toEqual(items);
  });

  it("serves many concurrent requests (more than the connection pool size)", async () => {
    const results = await Promise.all(Array.from({ length: 200 }, () => direct.incr(key("concurrent"))));
    expect([...results].sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
  });

  it("frees a blocked Redis connection when the HTTP client goes away", async () => {
    const k = key("blocked-list");
    const controller = new AbortController();
    const pending = fetch(adapter.url, {
      method: "POST",
      headers: { Authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify(["BLPOP", k, 0]),
      signal: controller.signal,
    });
    await new Promise((r) => setTimeout(r, 50));
    controller.abort();
    await expect(pending).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 50));
    // Had the BLPOP stayed alive on its connection it would consume this element.
    expect(await direct.rpush(k, "survivor")).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(await direct.lrange(k, 0, -1)).toEqual(["survivor"]);
  });

  it("recovers when Redis drops a pooled connection", async () => {
    const id = (await call("/", ["CLIENT", "ID"])).json as { result: number };
    expect(typeof id.result).toBe("number");
    // Kill the adapter's (now idle, pooled) connection from outside, as a Redis restart would.
    expect(await rawRedis(`CLIENT KILL ID ${id.result}`)).toBe(":1");
    await new Promise((r) => setTimeout(r, 50));
    expect((await call("/", ["PING"])).json).toEqual({ result: "PONG" });
    expect(await redis.set(key("after-kill"), "ok")).toBe("OK");
    expect(await redis.get(key("after-kill"))).toBe("ok");
  });

  it("answers 500 JSON while Redis is unreachable, without crashing", async () => {
    const broken = await startUpstashAdapter({ redisUrl: "redis://127.0.0.1:1", token: TOKEN, port: 0 });
    try {
      for (let i = 0; i < 2; i++) {
        const res = await fetch(broken.url, {
          method: "POST",
          headers: { Authorization: `Bearer ${TOKEN}` },
          body: JSON.stringify(["PING"]),
        });
        expect(res.status).toBe(500);
        expect(res.headers.get("content-type")).toBe("application/json");
        expect(await res.json()).toEqual({ error: expect.stringMatching(/^ERR .*redis/) });
      }
    } finally {
      await broken.close();
    }
  });
});
