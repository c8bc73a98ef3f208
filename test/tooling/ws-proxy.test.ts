import { Client, neonConfig } from "@neondatabase/serverless";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import type { WsProxy, WsProxyOptions } from "../../scripts/ws-proxy.ts";
import { queryMessage } from "../../scripts/pg-wire.ts";
import { startWsProxy } from "../../scripts/ws-proxy.ts";
import { configureNeonForProxy } from "../../src/platform/db.ts";

const pg = new URL(inject("bindings").DATABASE_URL!);
let proxy: WsProxy;
beforeAll(async () => {
  proxy = await startWsProxy();
});
afterAll(() => proxy.close());

const closeCode = (address: string) =>
  new Promise<number>((resolve) => {
    const ws = new WebSocket(`ws://${proxy.address}/v2?address=${address}`);
    ws.on("close", (code) => resolve(code));
    ws.on("error", () => resolve(-1));
  });

describe("WebSocket-to-TCP proxy", () => {
  it("refuses targets outside loopback", async () => {
    expect(await closeCode("10.0.0.1:5432")).toBe(1008);
    expect(await closeCode("example.com:5432")).toBe(1008);
  });

  it("pipes bytes to a loopback Postgres (SSLRequest answered with N or S)", async () => {
    const ws = new WebSocket(`ws://${proxy.address}/v2?address=${pg.hostname}:${pg.port || 5432}`);
    const reply = await new Promise<string>((resolve, reject) => {
      ws.on("open", () => ws.send(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])));
      ws.on("message", (data: Buffer) => resolve(String.fromCharCode(data[0]!)));
      ws.on("error", reject);
    });
    ws.close();
    expect(["N", "S"]).toContain(reply);
  });

  it("answers plain HTTP with 426", async () => {
    const res = await fetch(`http://${proxy.address}/`);
    expect(res.status).toBe(426);
  });
});

describe("connection cap", () => {
  it("queues sessions beyond maxConnections until one closes", async () => {
    const capped = await startWsProxy({ maxConnections: 1 });
    try {
      const sslRequest = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
      const open = () => {
        const ws = new WebSocket(`ws://${capped.address}/v2?address=${pg.hostname}:${pg.port || 5432}`);
        const reply = new Promise<string>((resolve) =>
          ws.on("message", (d: Buffer) => resolve(String.fromCharCode(d[0]!))),
        );
        ws.on("open", () => ws.send(sslRequest));
        return { ws, reply };
      };
      const first = open();
      expect(["N", "S"]).toContain(await first.reply);
      const second = open();
      const early = await Promise.race([second.reply, new Promise((r) => setTimeout(() => r("waiting"), 300))]);
      expect(early).toBe("waiting");
      first.ws.close();
      expect(["N", "S"]).toContain(await second.reply);
      second.ws.close();
    } finally {
      await capped.close();
    }
  });
});

describe("session reuse (as Hyperdrive and Neon's pooler do)", () => {
  const connect = async (address: string) => {
    neonConfig.webSocketConstructor = WebSocket as unknown as typeof globalThis.WebSocket;
    configureNeonForProxy(address);
    const c = new Client(pg.toString());
    c.on("error", () => undefined);
    await c.connect();
    return c;
  };
  const pid = async (c: Client) => (await c.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]!.pid;
  const settled = () => new Promise((r) => setTimeout(r, 100)); // the proxy's reset after the client left
  /** Runs `fn` with a proxy of its own and a first client on it, with that client's backend pid. */
  const withProxy = async (opts: WsProxyOptions, fn: (p: WsProxy, a: Client, first: number) => Promise<void>) => {
    const p = await startWsProxy(opts);
    try {
      const a = await connect(p.address);
      await fn(p, a, await pid(a));
    } finally {
      await p.close();
    }
  };

  it("hands an idle session to the next client, reset as new: no settings, prepared statements or temporary tables", async () => {
    await withProxy({}, async (p, a, first) => {
      await a.query("set statement_timeout = '1234ms'");
      await a.query({ name: "leftover", text: "select 1 as one" });
      await a.query("create temporary table leftover_t (x int)");
      await a.end();
      await settled();
      expect(p.stats?.()).toMatchObject({ idle: 1 });
      const b = await connect(p.address);
      expect(await pid(b)).toBe(first);
      expect(p.stats?.().reused).toBe(1);
      expect((await b.query("select current_setting('statement_timeout') as s")).rows[0]).toEqual({ s: "0" });
      expect((await b.query("select 1 from pg_prepared_statements")).rowCount).toBe(0);
      expect((await b.query("select to_regclass('pg_temp.leftover_t') as t")).rows[0]).toEqual({ t: null });
      await b.end();
    });
  });

  it("never reuses a session left inside a transaction or mid-request", async () => {
    await withProxy({}, async (p, a, first) => {
      await a.query("begin");
      await a.query("select 1");
      await a.end(); // leaves with the transaction open
      await settled();
      expect(p.stats?.()).toMatchObject({ idle: 0, open: 0 });
      const b = await connect(p.address);
      expect(await pid(b)).not.toBe(first);
      await b.end();
      await settled();
      expect(p.stats?.()).toMatchObject({ idle: 1, reused: 0 });
      // A client gone while its statement runs: that session is not reused either (nor kept).
      const raw = new WebSocket(`ws://${p.address}/v2?address=${pg.hostname}:${pg.port || 5432}`);
      const params = Buffer.from(`user\0${decodeURIComponent(pg.username)}\0database\0${pg.pathname.slice(1)}\0\0`);
      const startup = Buffer.alloc(8 + params.length);
      startup.writeInt32BE(startup.length, 0);
      startup.writeInt32BE(196_608, 4);
      params.copy(startup, 8);
      const query = queryMessage("select pg_sleep(5)");
      await new Promise<void>((resolve, reject) => {
        raw.on("open", () => raw.send(startup));
        raw.on("message", (d: Buffer) => d.includes(Buffer.from([0x5a, 0, 0, 0, 5, 0x49])) && resolve()); // ReadyForQuery idle
        raw.on("error", reject);
      });
      expect(p.stats?.()).toMatchObject({ open: 2, idle: 1 }); // other startup parameters: a session of its own
      raw.send(query);
      await settled();
      raw.close();
      await settled();
      expect(p.stats?.()).toMatchObject({ open: 1, idle: 1, reused: 0 }); // closed, not parked
    });
  });

  it("can be turned off: every client gets a session of its own", async () => {
    await withProxy({ pool: false }, async (p, a, first) => {
      await a.end();
      await settled();
      const b = await connect(p.address);
      expect(await pid(b)).not.toBe(first);
      await b.end();
      expect(p.stats?.().reused).toBe(0);
    });
  });
});
