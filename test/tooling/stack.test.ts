/**
 * Tests for scripts/stack.ts against real servers (Node environment, not workerd).
 * Needs the system Postgres/Redis/RabbitMQ on their default ports for (1) and (3);
 * (2) starts private servers on random ports in a temp dir and stops them again.
 */
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { AMQPClient } from "@cloudamqp/amqp-client";
import { afterAll, describe, expect, it } from "vitest";
import { answers, ensureStack, type Stack } from "../../scripts/stack.ts";

const SYSTEM = {
  postgres: "postgres://postgres@127.0.0.1:5432/postgres",
  redis: "redis://127.0.0.1:6379",
  rabbitmq: "amqp://guest:guest@127.0.0.1:5672",
};

/** A loopback port nobody listens on (bound then released). */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Minimal Postgres v3 client: trust auth + one simple query, returns the first row as text. */
function pgQuery(url: string, sql: string, timeoutMs = 5000): Promise<(string | null)[]> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: u.hostname, port: Number(u.port) });
    const timer = setTimeout(() => fail(new Error("pgQuery timed out")), timeoutMs);
    let buf = Buffer.alloc(0);
    let row: (string | null)[] | undefined;
    let queried = false;
    const fail = (e: Error) => {
      clearTimeout(timer);
      sock.destroy();
      reject(e);
    };
    sock.once("connect", () => {
      const params = Buffer.from(`user\0${decodeURIComponent(u.username)}\0database\0${u.pathname.slice(1)}\0\0`);
      const head = Buffer.alloc(8);
      head.writeInt32BE(8 + params.length, 0);
      head.writeInt32BE(196608, 4); // protocol 3.0
      sock.write(Buffer.concat([head, params]));
    });
    sock.on("error", fail);
    sock.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 5) {
        const type = String.fromCharCode(buf[0]!);
        const len = buf.readInt32BE(1);
        if (buf.length < 1 + len) return;
        const body = buf.subarray(5, 1 + len);
        buf = buf.subarray(1 + len);
        if (type === "E") return fail(new Error(`postgres error: ${body.toString().replace(/\0/g, " ")}`));
        if (type === "R" && body.readInt32BE(0) !== 0) return fail(new Error("postgres asked for a password"));
        if (type === "D") {
          const n = body.readInt16BE(0);
          let off = 2;
          row = [];
          for (let i = 0; i < n; i++) {
            const l = body.readInt32BE(off);
            off += 4;
            row.push(l < 0 ? null : body.subarray(off, off + l).toString());
            off += Math.max(l, 0);
          }
        }
        if (type === "Z") {
          if (!queried) {
            queried = true;
            const q = Buffer.from(`${sql}\0`);
            const h = Buffer.alloc(5);
            h.write("Q", 0);
            h.writeInt32BE(4 + q.length, 1);
            sock.write(Buffer.concat([h, q]));
          } else {
            clearTimeout(timer);
            sock.end(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
            return row ? resolve(row) : reject(new Error("no row returned"));
          }
        }
      }
    });
  });
}

/** Raw RESP round trip: SET then GET, returns the reply text. */
function redisSetGet(url: string, key: string, value: string): Promise<string> {
  const u = new URL(url);
  const cmd = (...a: string[]) => `*${a.length}\r\n${a.map((x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`).join("")}`;
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: u.hostname, port: Number(u.port) });
    let out = "";
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`redis timed out: ${out}`));
    }, 5000);
    sock.once("connect", () => sock.write(cmd("SET", key, value) + cmd("GET", key) + cmd("DEL", key)));
    sock.on("data", (d) => {
      out += d.toString();
      if (/^\+OK\r\n\$\d+\r\n.*\r\n:1\r\n$/s.test(out)) {
        clearTimeout(timer);
        sock.destroy();
        resolve(out);
      }
    });
    sock.on("error", reject);
  });
}

/** Publishes and fetches one message through a server-named exclusive queue with guest/guest. */
async function amqpRoundTrip(url: string): Promise<string | null> {
  const conn = await new AMQPClient(url).connect();
  try {
    const ch = await conn.channel();
    const q = await ch.queueDeclare("", { exclusive: true });
    await ch.basicPublish("", q.name, "hello");
    for (let i = 0; i < 50; i++) {
      const msg = await ch.basicGet(q.name, { noAck: true });
      if (msg) return msg.bodyToString();
      await new Promise((r) => setTimeout(r, 50));
    }
    return null;
  } finally {
    await conn.close();
  }
}

/** Child processes of `pid` (Linux procfs), as bench/chaos.ts finds a postmaster's backends. */
function childrenOf(pid: number): number[] {
  return fs.readdirSync("/proc").flatMap((d) => {
    if (!/^\d+$/.test(d)) return [];
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid ? [Number(d)] : [];
    } catch {
      return [];
    }
  });
}

/** Whether a process with this pid exists at all (a zombie too). */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Polls `ok` every 100 ms until it holds (throws after `timeoutMs`). */
async function until(ok: () => boolean, timeoutMs = 30_000): Promise<void> {
  for (const end = Date.now() + timeoutMs; !ok(); await new Promise((r) => setTimeout(r, 100)))
    if (Date.now() > end) throw new Error("timed out");
}

describe("answers()", () => {
  it("is true for the system servers at their default URLs", async () => {
    expect(await answers(SYSTEM.postgres)).toBe(true);
    expect(await answers(SYSTEM.redis)).toBe(true);
    expect(await answers(SYSTEM.rabbitmq)).toBe(true);
  });

  it("is false for a closed port", async () => {
    const port = await closedPort();
    expect(await answers(`postgres://postgres@127.0.0.1:${port}/postgres`)).toBe(false);
    expect(await answers(`redis://127.0.0.1:${port}`)).toBe(false);
    expect(await answers(`amqp://guest:guest@127.0.0.1:${port}`)).toBe(false);
  });

  it("is false where a different protocol answers", async () => {
    const [a, b, c, d] = await Promise.all([
      answers("postgres://postgres@127.0.0.1:6379/postgres", 1000), // Redis port
      answers("redis://127.0.0.1:5432", 1000), // Postgres port
      answers("amqp://guest:guest@127.0.0.1:6379", 1000), // Redis port
      answers("redis://127.0.0.1:5672", 1000), // RabbitMQ port
    ]);
    expect([a, b, c, d]).toEqual([false, false, false, false]);
  });

  it("is false for an unparseable URL or unknown scheme", async () => {
    expect(await answers("not a url")).toBe(false);
    expect(await answers("http://127.0.0.1:5432")).toBe(false);
  });
});

describe("ensureStack()", () => {
  const tmpDirs: string[] = [];
  const stacks: Stack[] = [];
  afterAll(async () => {
    // Safety net if an assertion failed half-way: never leave servers behind.
    for (const s of stacks) await s.stop().catch(() => {});
    for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it("starts, reuses and stops its own servers when the configured URLs are closed", { timeout: 180_000 }, async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "stack-test-"));
    tmpDirs.push(dataDir);
    const [pgPort, redisPort, rabbitPort] = await Promise.all([closedPort(), closedPort(), closedPort()]);
    const env = {
      LOCAL_POSTGRES_URL: `postgres://postgres@127.0.0.1:${pgPort}/postgres`,
      LOCAL_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      LOCAL_RABBITMQ_URL: `amqp://guest:guest@127.0.0.1:${rabbitPort}`,
    };
    const logs: string[] = [];
    const log = (m: string) => logs.push(m);

    const t0 = Date.now();
    const stack = await ensureStack({ dataDir, env, log });
    stacks.push(stack);
    const startMs = Date.now() - t0;

    expect([...stack.started].sort()).toEqual(["postgres", "rabbitmq", "redis"]);
    for (const url of [stack.postgresUrl, stack.redisUrl, stack.rabbitmqUrl]) {
      expect(url).toMatch(/^[a-z]+:\/\/(.+@)?127\.0\.0\.1:\d+/);
      expect(Object.values(env)).not.toContain(url);
      expect(Object.values(SYSTEM)).not.toContain(url);
      expect(await answers(url)).toBe(true);
    }
    expect(stack.postgresUrl).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
    expect(stack.rabbitmqUrl).toMatch(/^amqp:\/\/guest:guest@127\.0\.0\.1:\d+$/);

    // The servers really work, not just answer.
    const [version, sum] = await pgQuery(stack.postgresUrl, "SELECT current_setting('server_version_num'), 40 + 2");
    expect(Number(version)).toBeGreaterThanOrEqual(150000);
    expect(sum).toBe("42");
    expect(await redisSetGet(stack.redisUrl, "stack-test", "v")).toContain("$1\r\nv\r\n");
    expect(await amqpRoundTrip(stack.rabbitmqUrl)).toBe("hello");

    for (const svc of ["postgres", "redis", "rabbitmq"]) {
      expect(fs.existsSync(path.join(dataDir, svc, "state.json"))).toBe(true);
    }

    // A second call (think: second test worker) reuses them and owns nothing.
    const t1 = Date.now();
    const again = await ensureStack({ dataDir, env, log });
    const reuseMs = Date.now() - t1;
    expect(again.started).toEqual([]);
    expect([again.postgresUrl, again.redisUrl, again.rabbitmqUrl]).toEqual([
      stack.postgresUrl,
      stack.redisUrl,
      stack.rabbitmqUrl,
    ]);
    await again.stop(); // must be a no-op
    expect(await answers(stack.postgresUrl)).toBe(true);
    expect(await answers(stack.redisUrl)).toBe(true);
    expect(await answers(stack.rabbitmqUrl)).toBe(true);

    const t2 = Date.now();
    await stack.stop();
    const stopMs = Date.now() - t2;
    expect(await answers(stack.postgresUrl)).toBe(false);
    expect(await answers(stack.redisUrl)).toBe(false);
    expect(await answers(stack.rabbitmqUrl)).toBe(false);
    for (const svc of ["postgres", "redis", "rabbitmq"]) {
      expect(fs.existsSync(path.join(dataDir, svc, "state.json"))).toBe(false);
    }
    await stack.stop(); // idempotent

    // System servers are untouched.
    expect(await answers(SYSTEM.postgres)).toBe(true);
    expect(await answers(SYSTEM.redis)).toBe(true);
    expect(await answers(SYSTEM.rabbitmq)).toBe(true);

    console.log(`ensureStack: start ${startMs} ms, reuse ${reuseMs} ms, stop ${stopMs} ms\n  ${logs.join("\n  ")}`);
  });

  // bench/chaos.ts SIGKILLs a server and starts it again on its port and data through a second
  // ensureStack. Teardown stopped the first stack's record with `pg_ctl -D` (the restarted
  // Postgres in that data directory) and Redis SHUTDOWN on the port (the restarted Redis), and the
  // second stack then failed on servers already gone: "could not stop pid …: PID file does not exist".
  it("after a kill and a restart on the same port and data, each stack stops exactly what it started", {
    timeout: 180_000,
  }, async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "stack-test-"));
    tmpDirs.push(dataDir);
    const [pgPort, redisPort] = await Promise.all([closedPort(), closedPort()]);
    const env = {
      LOCAL_POSTGRES_URL: `postgres://postgres@127.0.0.1:${pgPort}/postgres`,
      LOCAL_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      LOCAL_RABBITMQ_URL: SYSTEM.rabbitmq, // answers: reused, not started
    };
    const logs: string[] = [];
    const log = (m: string) => logs.push(m);
    const first = await ensureStack({ dataDir, env, log });
    stacks.push(first);
    expect([...first.started].sort()).toEqual(["postgres", "redis"]);

    // SIGKILL as chaos does: the postmaster with its backends, Redis.
    const recorded = (svc: string) =>
      JSON.parse(fs.readFileSync(path.join(dataDir, svc, "state.json"), "utf8")) as { pid: number; port: number };
    const victims = [recorded("postgres").pid, ...childrenOf(recorded("postgres").pid), recorded("redis").pid];
    for (const pid of victims) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {} // a backend that exited meanwhile
    }
    await until(() => victims.every((pid) => !exists(pid))); // reaped (a live pid would hold the data dir)
    const ports = { postgres: recorded("postgres").port, redis: recorded("redis").port };
    const second = await ensureStack({ dataDir, env, log, ports });
    stacks.push(second);
    expect([...second.started].sort()).toEqual(["postgres", "redis"]);
    expect([second.postgresUrl, second.redisUrl]).toEqual([first.postgresUrl, first.redisUrl]);

    await first.stop(); // its servers are gone: nothing to stop, and the restarted ones are not its own
    expect(await answers(second.postgresUrl)).toBe(true);
    expect(await answers(second.redisUrl)).toBe(true);
    expect(fs.existsSync(path.join(dataDir, "postgres", "state.json"))).toBe(true); // describes the second's

    await second.stop();
    expect(await answers(second.postgresUrl)).toBe(false);
    expect(await answers(second.redisUrl)).toBe(false);
    for (const svc of ["postgres", "redis"]) expect(fs.existsSync(path.join(dataDir, svc, "state.json"))).toBe(false);
    expect(logs.filter((l) => /could not stop|PID file/i.test(l))).toEqual([]);
    expect(logs.filter((l) => /had exited already/.test(l))).toHaveLength(2);
    expect(await answers(SYSTEM.rabbitmq)).toBe(true);
  });

  it("starts nothing when the configured URLs answer", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "stack-test-"));
    tmpDirs.push(dataDir);
    const stack = await ensureStack({ dataDir, env: {}, log: () => {} }); // {} = defaults = system servers
    stacks.push(stack);
    expect(stack.started).toEqual([]);
    expect({ pg: stack.postgresUrl, redis: stack.redisUrl, rabbit: stack.rabbitmqUrl }).toEqual({
      pg: SYSTEM.postgres,
      redis: SYSTEM.redis,
      rabbit: SYSTEM.rabbitmq,
    });
    await stack.stop();
    expect(await answers(SYSTEM.postgres)).toBe(true);
    expect(await answers(SYSTEM.redis)).toBe(true);
    expect(await answers(SYSTEM.rabbitmq)).toBe(true);
    expect(fs.readdirSync(dataDir)).toEqual([]); // nothing started => nothing written
  });
});
