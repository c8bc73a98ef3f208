import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { pathToFileURL } from "node:url";
import { WebSocketServer } from "ws";

/**
 * WebSocket-to-TCP proxy for the Neon serverless driver, so Workers (and Node scripts) reach a
 * plain local Postgres the way they reach Neon in production. The driver connects to
 * `ws://<proxy>/v2?address=<host>:<port>` (see `configureNeonForProxy`) and speaks the Postgres
 * wire protocol inside binary frames; we pipe those bytes to a TCP socket and back.
 */

/** Options of {@link startWsProxy}. */
export interface WsProxyOptions {
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** Listen port (0 = any free port). */
  port?: number;
  /** Only these `host:port` targets may be reached (default: loopback Postgres only). */
  allow?: (host: string, port: number) => boolean;
  /**
   * Most Postgres sessions open at once (default 40, leaving room under Postgres' default 100). Further connections wait for a free slot,
   * like a session-mode pooler in front of Neon: Durable Objects each open their own pool, and a
   * burst of them must queue rather than exhaust the server's max_connections.
   */
  maxConnections?: number;
}

/** A running proxy. */
export interface WsProxy {
  /** `host:port`, the value of `DATABASE_WS_PROXY`. */
  address: string;
  port: number;
  close(): Promise<void>;
}

const loopbackOnly = (host: string) => host === "127.0.0.1" || host === "localhost" || host === "::1";

/** Starts the proxy on a worker thread of its own (benchmarks: see `ws-proxy-thread.ts`). */
export async function startWsProxyInThread(opts: Pick<WsProxyOptions, "port"> = {}): Promise<WsProxy> {
  const { Worker } = await import("node:worker_threads");
  const thread = new Worker(new URL("./ws-proxy-thread.ts", import.meta.url), { workerData: { port: opts.port ?? 0 } });
  const started = await new Promise<{ port: number; address: string }>((resolve, reject) => {
    thread.once("message", resolve);
    thread.once("error", reject);
  });
  return {
    ...started,
    async close() {
      const closed = new Promise((resolve) => thread.once("message", resolve));
      thread.postMessage("close");
      await Promise.race([closed, new Promise((r) => setTimeout(r, 2_000))]);
      await thread.terminate();
    },
  };
}

/** Starts the proxy. */
export async function startWsProxy(opts: WsProxyOptions = {}): Promise<WsProxy> {
  const allow = opts.allow ?? loopbackOnly;
  const server = createServer((_req, res) => {
    res.writeHead(426, { "content-type": "text/plain" }).end("WebSocket upgrade required\n");
  });
  const wss = new WebSocketServer({ server });
  const sockets = new Set<net.Socket>();
  const max = opts.maxConnections ?? 40;
  let open = 0;
  const waiting: (() => void)[] = [];
  const acquire = () =>
    open < max
      ? Promise.resolve(void open++)
      : new Promise<void>((r) =>
          waiting.push(() => {
            open++;
            r();
          }),
        );
  const release = () => {
    open--;
    waiting.shift()?.();
  };

  wss.on("connection", (ws, req) => {
    const target = new URL(req.url ?? "/", "http://proxy").searchParams.get("address") ?? "";
    const sep = target.lastIndexOf(":");
    const host = target.slice(0, sep).replace(/^\[|\]$/g, "");
    const port = Number(target.slice(sep + 1));
    if (sep < 0 || !Number.isInteger(port) || !allow(host, port)) {
      ws.close(1008, "address not allowed");
      return;
    }
    // Frames that arrive while waiting for a slot or for the TCP connect are kept in order.
    const early: Buffer[] = [];
    let tcp: net.Socket | undefined;
    let closed = false;
    const toBuffer = (data: Buffer | ArrayBuffer | Buffer[]) =>
      Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    ws.on("message", (data: Buffer | ArrayBuffer | Buffer[]) =>
      tcp ? tcp.write(toBuffer(data)) : early.push(toBuffer(data)),
    );
    let held = false;
    const closeBoth = () => {
      if (closed) return;
      closed = true;
      if (tcp) {
        sockets.delete(tcp);
        tcp.destroy();
      }
      if (held) release();
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close();
    };
    ws.on("close", closeBoth);
    ws.on("error", closeBoth);
    void acquire().then(() => {
      if (closed) return release(); // the client gave up while waiting
      held = true;
      const socket = net.connect({ host, port });
      tcp = socket;
      sockets.add(socket);
      socket.setNoDelay(true);
      for (const b of early.splice(0)) socket.write(b);
      socket.on("data", (chunk) => {
        if (ws.readyState === ws.OPEN) ws.send(chunk, { binary: true });
      });
      socket.on("close", closeBoth);
      socket.on("error", closeBoth);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    address: `${opts.host ?? "127.0.0.1"}:${port}`,
    port,
    async close() {
      for (const s of sockets) s.destroy();
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.argv[process.argv.indexOf("--port") + 1] || 8790);
  const proxy = await startWsProxy({ port: process.argv.includes("--port") ? port : 8790 });
  console.log(`ws-proxy listening on ${proxy.address}`);
}
