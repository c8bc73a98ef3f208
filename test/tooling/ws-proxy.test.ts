import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import type { WsProxy } from "../../scripts/ws-proxy.ts";
import { startWsProxy } from "../../scripts/ws-proxy.ts";

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
