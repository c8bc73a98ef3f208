import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { pathToFileURL } from "node:url";
import { WebSocketServer } from "ws";
import { isStartupMessage, MessageReader, RESET, SessionState, startupPacketLength, TERMINATE } from "./pg-wire.ts";

/**
 * WebSocket-to-TCP proxy for the Neon serverless driver, so Workers (and Node scripts) reach a
 * plain local Postgres the way they reach Neon in production. The driver connects to
 * `ws://<proxy>/v2?address=<host>:<port>` (see `configureNeonForProxy`) and speaks the Postgres
 * wire protocol inside binary frames; we pipe those bytes to a TCP socket and back, and reuse
 * the server sessions clients leave idle (see {@link WsProxyOptions.pool}).
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
  /**
   * Reuse server sessions (default true), as Hyperdrive and Neon's pooler do in production: when a
   * client leaves a session idle (no transaction open, every request answered), the session is
   * reset (`DISCARD ALL`) and the next client with the same startup parameters gets it, instead
   * of Postgres starting a backend — and planning with cold caches — for every Worker request.
   * Only sessions the server let in without a password exchange are reused. `PG_PROXY_POOL=0` in
   * the environment turns it off (one server session per client, as without Hyperdrive).
   */
  pool?: boolean;
  /** How long an idle session is kept for reuse (default 10 s). */
  idleMs?: number;
  /**
   * Most idle sessions kept (default 16): several proxies (tests, `npm run dev`, a benchmark) can
   * share one server, and each one's idle sessions count against its `max_connections` (100).
   */
  maxIdle?: number;
}

/** A running proxy. */
export interface WsProxy {
  /** `host:port`, the value of `DATABASE_WS_PROXY`. */
  address: string;
  port: number;
  /** Sessions open (in use or idle), idle ones, and how many clients got a reused session. */
  stats?(): { open: number; idle: number; reused: number };
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

/** A Postgres server session the proxy holds: a client's, or idle in the pool. */
interface Backend {
  socket: net.Socket;
  /** The StartupMessage it was opened with (user, database, parameters): who may reuse it. */
  key: string;
  state: SessionState;
  reader: MessageReader;
  /** Where server bytes go while a client has it. */
  client?: { send(b: Buffer): void; close(): void };
  idleTimer?: NodeJS.Timeout;
  dead: boolean;
}

/** Starts the proxy. */
export async function startWsProxy(opts: WsProxyOptions = {}): Promise<WsProxy> {
  const allow = opts.allow ?? loopbackOnly;
  const pooling = opts.pool ?? process.env.PG_PROXY_POOL !== "0";
  const idleMs = opts.idleMs ?? 10_000;
  const maxIdle = opts.maxIdle ?? 16;
  const idleCount = () => [...idle.values()].reduce((n, l) => n + l.length, 0);
  const server = createServer((_req, res) => {
    res.writeHead(426, { "content-type": "text/plain" }).end("WebSocket upgrade required\n");
  });
  const wss = new WebSocketServer({ server });
  const sockets = new Set<net.Socket>();
  const idle = new Map<string, Backend[]>();
  const max = opts.maxConnections ?? 40;
  let open = 0;
  let reused = 0;
  const waiting: (() => void)[] = [];
  const release = () => {
    open--;
    waiting.shift()?.();
  };
  const unpark = (b: Backend) => {
    clearTimeout(b.idleTimer);
    const list = idle.get(b.key);
    const i = list?.indexOf(b) ?? -1;
    if (list && i >= 0) list.splice(i, 1);
    if (list?.length === 0) idle.delete(b.key);
  };
  const destroy = (b: Backend) => {
    if (b.dead) return;
    b.dead = true;
    unpark(b);
    sockets.delete(b.socket);
    b.socket.destroy();
    const client = b.client;
    b.client = undefined;
    client?.close();
    release();
  };
  // An idle session closed the polite way (Terminate first), its slot freed at once.
  const retire = (b: Backend) => {
    b.socket.end(TERMINATE);
    destroy(b);
  };
  // A slot for a new session: a free one, an idle session of another client's closed, or wait.
  const acquire = () => {
    if (open < max) return Promise.resolve(void open++);
    const victim = [...idle.values()][0]?.[0];
    if (victim) {
      retire(victim);
      return Promise.resolve(void open++);
    }
    return new Promise<void>((r) =>
      waiting.push(() => {
        open++;
        r();
      }),
    );
  };
  const park = (b: Backend) => {
    // Someone waits for a slot: give it up rather than keep an idle session.
    if (waiting.length > 0 || !pooling || idleCount() >= maxIdle) return retire(b);
    b.idleTimer = setTimeout(() => retire(b), idleMs);
    b.idleTimer.unref?.();
    idle.set(b.key, [...(idle.get(b.key) ?? []), b]);
  };
  // `raw`: not a StartupMessage first (SSL, GSS, a cancel): piped as is, never parsed nor reused.
  const openBackend = (host: string, port: number, key: string, raw: boolean): Backend => {
    const socket = net.connect({ host, port });
    sockets.add(socket);
    socket.setNoDelay(true);
    const state = new SessionState();
    if (raw) state.poolable = false;
    const b: Backend = {
      socket,
      key,
      state,
      dead: false,
      reader: new MessageReader((type, m) => {
        if (state.server(type, m) && state.phase === "reset") {
          if (state.resetOk) park(b);
          else destroy(b);
        }
      }, state.wants),
    };
    socket.on("data", (chunk) => {
      if (state.phase !== "reset" && b.client) b.client.send(chunk);
      if (!raw) b.reader.push(chunk);
    });
    socket.on("close", () => destroy(b));
    socket.on("error", () => destroy(b));
    return b;
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
    const toBuffer = (data: Buffer | ArrayBuffer | Buffer[]) =>
      Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    const peer = {
      send: (b: Buffer) => {
        if (ws.readyState === ws.OPEN) ws.send(b, { binary: true });
      },
      close: () => {
        if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close();
      },
    };
    // Bytes before the session is ready, in order; the first packet decides pooled or piped.
    let first = Buffer.alloc(0);
    let startup: Buffer | undefined;
    const early: Buffer[] = [];
    let backend: Backend | undefined;
    let closed = false;
    const fromClient = new MessageReader(
      (type) => backend?.state.client(type),
      () => false,
    );
    const toServer = (b: Backend, chunk: Buffer) => {
      if (!b.state.poolable) return void b.socket.write(chunk);
      // The client's Terminate ends its use of the session, not the session.
      if (!fromClient.partial && chunk.equals(TERMINATE)) {
        fromClient.push(chunk);
        peer.close(); // as the server would: the client waits for the close
        return;
      }
      fromClient.push(chunk);
      b.socket.write(chunk);
    };
    const attach = (b: Backend) => {
      backend = b;
      b.client = peer;
      for (const c of early.splice(0)) toServer(b, c);
    };
    const detach = () => {
      const b = backend;
      backend = undefined;
      if (!b || b.dead) return;
      b.client = undefined;
      const clean = pooling && b.state.idle && !fromClient.partial && !b.reader.partial;
      if (!clean) return destroy(b);
      b.state.beginReset();
      b.socket.write(RESET);
    };
    const begin = (packet: Buffer) => {
      const key = packet.toString("latin1");
      const pooled = pooling && isStartupMessage(packet) ? idle.get(key)?.[0] : undefined;
      if (pooled) {
        unpark(pooled);
        pooled.state.reuse();
        reused++;
        peer.send(pooled.state.greeting);
        attach(pooled);
        return;
      }
      void acquire().then(() => {
        const b = openBackend(host, port, key, !isStartupMessage(packet));
        if (closed) {
          b.socket.end();
          return destroy(b);
        }
        b.socket.write(packet);
        attach(b);
      });
    };
    ws.on("message", (data: Buffer | ArrayBuffer | Buffer[]) => {
      const chunk = toBuffer(data);
      if (backend) return toServer(backend, chunk);
      if (startup) return void early.push(chunk);
      first = Buffer.concat([first, chunk]);
      const length = startupPacketLength(first);
      if (length === undefined || first.length < length) return;
      startup = first.subarray(0, length);
      if (first.length > length) early.push(first.subarray(length));
      begin(startup);
    });
    const onClose = () => {
      if (closed) return;
      closed = true;
      detach();
    };
    ws.on("close", onClose);
    ws.on("error", onClose);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    address: `${opts.host ?? "127.0.0.1"}:${port}`,
    port,
    stats: () => ({ open, idle: idleCount(), reused }),
    async close() {
      for (const list of idle.values()) for (const b of [...list]) clearTimeout(b.idleTimer);
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
