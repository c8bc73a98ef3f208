/**
 * Local stand-in for Upstash's Redis REST API, in front of a real redis-server.
 *
 * Used by the tooling tests and by `wrangler dev` so that `@upstash/redis` can
 * talk to a local Redis. Dependency-free: a small RESP2 client over `node:net`
 * and an HTTP front end over `node:http`. Not meant for production (no TLS,
 * a single bearer token, no rate limiting).
 *
 *   node scripts/upstash-adapter.ts --port 8079 --token dev --redis redis://127.0.0.1:6379
 *   UPSTASH_REDIS_REST_URL=http://127.0.0.1:8079 UPSTASH_REDIS_REST_TOKEN=dev
 *
 * Endpoints (all need `Authorization: Bearer <token>` or `?_token=<token>`):
 *   POST /              body `["SET","k","v"]`            -> `{"result": ...}` | 400 `{"error": ...}`
 *   POST /pipeline      body `[["SET","k","v"],["GET","k"]]` -> `[{"result"}|{"error"}, ...]`
 *   POST /multi-exec    same body, run atomically in MULTI/EXEC
 *   GET|POST /set/k/v   command in the path; a POST body is appended as the last argument
 *
 * `Upstash-Encoding: base64` makes every string in a result base64 (raw bytes),
 * which is what `@upstash/redis` asks for by default.
 */
import http from "node:http";
import net from "node:net";
import { timingSafeEqual } from "node:crypto";
import { pathToFileURL } from "node:url";
import type { IncomingMessage, ServerResponse } from "node:http";

/** Options for {@link startUpstashAdapter}. */
export interface UpstashAdapterOptions {
  /** `redis://[user:pass@]host:port[/db]`; default `redis://127.0.0.1:6379`. */
  redisUrl?: string;
  /** Bearer token clients must present (`UPSTASH_REDIS_REST_TOKEN`). Must be non-empty. */
  token: string;
  /** Interface to listen on; default `127.0.0.1`. */
  host?: string;
  /** TCP port to listen on; `0` (the default) picks a free port. */
  port?: number;
  /** Deliberately unsupported: keys are passed to Redis untouched, use unique keys instead. */
  keyPrefix?: never;
}

/** A running adapter, as returned by {@link startUpstashAdapter}. */
export interface UpstashAdapter {
  /** Base URL to hand to `new Redis({ url, token })`, e.g. `http://127.0.0.1:8079`. */
  url: string;
  /** The port actually bound (useful with `port: 0`). */
  port: number;
  /** Stops accepting requests, drops open HTTP connections and closes all Redis connections. */
  close(): Promise<void>;
}

// ───────────────────────────── RESP2 values ─────────────────────────────

/** A `+status` reply; kept apart from bulk strings because "OK" is not base64-encoded at top level. */
class RespStatus {
  readonly value: string;
  constructor(value: string) {
    this.value = value;
  }
}

/** A `-ERR ...` reply. Command errors are values, not exceptions, so pipelines keep going. */
class RespError {
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
}

/** Bulk strings stay Buffers so base64 mode can encode the exact bytes Redis stored. */
type RespValue = Buffer | bigint | null | RespStatus | RespError | RespValue[];

/** Transport-level failure (connect, socket loss, protocol): maps to HTTP 500. */
class RedisConnectionError extends Error {
  override name = "RedisConnectionError";
}

/** A client-side mistake in the HTTP request: maps to HTTP 400 (or `status`). */
class RequestError extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}

const CRLF = Buffer.from("\r\n");

/** Encodes one command as a RESP array of bulk strings (the only form Redis accepts from clients). */
function encodeCommand(args: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    parts.push(Buffer.from(`$${arg.length}\r\n`), arg, CRLF);
  }
  return Buffer.concat(parts);
}

/** Marks the start of an array whose elements arrive as the next `length` replies. */
class ArrayHeader {
  readonly length: number;
  constructor(length: number) {
    this.length = length;
  }
}

const INCOMPLETE = Symbol("incomplete");

/**
 * Incremental RESP2 parser. Arrays are assembled on an explicit stack and fully
 * parsed elements are consumed immediately, so a huge reply split over many TCP
 * chunks is parsed in linear time; while a large bulk string is still arriving,
 * chunks are only queued (not concatenated) until enough bytes are buffered.
 */
class RespParser {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private chunks: Buffer[] = [];
  private buffered = 0; // unread bytes in buf plus everything queued in chunks
  private need = 0; // bytes (from pos) required before parsing can progress
  private stack: { items: RespValue[]; remaining: number }[] = [];
  private readonly onReply: (value: RespValue) => void;

  constructor(onReply: (value: RespValue) => void) {
    this.onReply = onReply;
  }

  /** Feeds raw socket data; calls `onReply` once per complete top-level reply. Throws on protocol errors. */
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered < this.need) return;
    this.buf = Buffer.concat([this.buf.subarray(this.pos), ...this.chunks]);
    this.pos = 0;
    this.chunks = [];
    this.need = 0;
    for (;;) {
      const item = this.parseOne();
      if (item === INCOMPLETE) break;
      if (item instanceof ArrayHeader) {
        this.stack.push({ items: [], remaining: item.length });
        continue;
      }
      let value: RespValue = item;
      for (;;) {
        const top = this.stack[this.stack.length - 1];
        if (top === undefined) {
          this.onReply(value);
          break;
        }
        top.items.push(value);
        if (--top.remaining > 0) break;
        this.stack.pop();
        value = top.items;
      }
    }
    this.buffered = this.buf.length - this.pos;
  }

  private parseOne(): RespValue | ArrayHeader | typeof INCOMPLETE {
    const { buf, pos } = this;
    const lineEnd = buf.indexOf(CRLF, pos);
    if (lineEnd === -1) {
      this.need = buf.length - pos + 1;
      return INCOMPLETE;
    }
    const type = buf[pos];
    const line = buf.toString("utf8", pos + 1, lineEnd);
    const next = lineEnd + 2;
    switch (type) {
      case 0x2b /* + */:
        this.pos = next;
        return new RespStatus(line);
      case 0x2d /* - */:
        this.pos = next;
        return new RespError(line);
      case 0x3a /* : */:
        this.pos = next;
        // BigInt keeps 64-bit replies exact; they are written to JSON digit for digit.
        return BigInt(line);
      case 0x24 /* $ */:
        {
          const len = parseLength(line);
          if (len < 0) {
            this.pos = next;
            return null;
          }
          const end = next + len + 2;
          if (buf.length < end) {
            this.need = end - pos;
            return INCOMPLETE;
          }
          this.pos = end;
          return buf.subarray(next, next + len);
        }
      case 0x2a /* * */:
        {
          const len = parseLength(line);
          this.pos = next;
          if (len < 0) return null;
          if (len === 0) return [];
          return new ArrayHeader(len);
        }
      default:
        throw new RedisConnectionError(`unexpected RESP type byte 0x${(type ?? 0).toString(16)}`);
    }
  }
}

function parseLength(line: string): number {
  const n = Number(line);
  if (!Number.isInteger(n) || n < -1) throw new RedisConnectionError(`bad RESP length ${JSON.stringify(line)}`);
  return n;
}

// ─────────────────────────── Redis connections ───────────────────────────

interface RedisTarget {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db: number;
}

function parseRedisUrl(raw: string): RedisTarget {
  const url = new URL(raw);
  if (url.protocol !== "redis:") throw new Error(`unsupported Redis URL protocol ${url.protocol} (only redis://)`);
  const dbText = url.pathname.replace(/^\//, "");
  const db = dbText === "" ? 0 : Number(dbText);
  if (!Number.isInteger(db) || db < 0) throw new Error(`bad Redis database in URL: ${dbText}`);
  return {
    host: url.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1",
    port: url.port ? Number(url.port) : 6379,
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db,
  };
}

const CONNECT_TIMEOUT_MS = 5_000;

/** One TCP connection; replies are matched to commands in FIFO order, which is what makes pipelining work. */
class RedisConnection {
  private readonly socket: net.Socket;
  private readonly waiters: { resolve: (v: RespValue) => void; reject: (e: Error) => void }[] = [];
  private readonly parser: RespParser;
  /** Set once the socket is unusable; pooled connections check this before reuse. */
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.parser = new RespParser((value) => {
      const waiter = this.waiters.shift();
      // A reply nobody asked for means we lost track of the stream: never reuse it.
      if (waiter === undefined) this.destroy(new RedisConnectionError("unsolicited reply from Redis"));
      else waiter.resolve(value);
    });
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      try {
        this.parser.push(chunk);
      } catch (err) {
        this.destroy(err instanceof Error ? err : new RedisConnectionError(String(err)));
      }
    });
    socket.on("error", (err) => this.destroy(new RedisConnectionError(`redis connection error: ${err.message}`)));
    socket.on("end", () => this.destroy(new RedisConnectionError("redis connection closed by server")));
    socket.on("close", () => this.destroy(new RedisConnectionError("redis connection closed")));
  }

  /** Connects, then authenticates and selects the database from the URL. */
  static connect(target: RedisTarget): Promise<RedisConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: target.host, port: target.port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new RedisConnectionError(`timed out connecting to redis at ${target.host}:${target.port}`));
      }, CONNECT_TIMEOUT_MS);
      const onError = (err: Error) => {
        clearTimeout(timer);
        reject(new RedisConnectionError(`cannot connect to redis at ${target.host}:${target.port}: ${err.message}`));
      };
      socket.once("error", onError);
      socket.once("connect", () => {
        clearTimeout(timer);
        socket.off("error", onError);
        const conn = new RedisConnection(socket);
        const setup: string[][] = [];
        if (target.password !== undefined) {
          setup.push(target.username ? ["AUTH", target.username, target.password] : ["AUTH", target.password]);
        }
        if (target.db !== 0) setup.push(["SELECT", String(target.db)]);
        if (setup.length === 0) return resolve(conn);
        conn.send(setup.map((cmd) => cmd.map((a) => Buffer.from(a)))).then((replies) => {
          const failed = replies.find((r) => r instanceof RespError);
          if (failed instanceof RespError) {
            conn.destroy(new RedisConnectionError(failed.message));
            reject(new RedisConnectionError(`redis handshake failed: ${failed.message}`));
          } else resolve(conn);
        }, reject);
      });
    });
  }

  /** Writes all commands in a single write and resolves with their replies in order. */
  send(commands: readonly (readonly Buffer[])[]): Promise<RespValue[]> {
    if (this.closed) return Promise.reject(new RedisConnectionError("redis connection closed"));
    const replies = commands.map(
      () => new Promise<RespValue>((resolve, reject) => this.waiters.push({ resolve, reject })),
    );
    this.socket.write(Buffer.concat(commands.map(encodeCommand)));
    return Promise.all(replies);
  }

  /** Closes the socket and fails every command still waiting for a reply. Idempotent. */
  destroy(err: Error = new RedisConnectionError("redis connection closed")): void {
    if (!this.closed) {
      this.closed = true;
      this.socket.destroy();
    }
    for (const waiter of this.waiters.splice(0)) waiter.reject(err);
  }
}

/**
 * Hands out connections exclusively: a request (single command, pipeline or
 * MULTI/EXEC) owns its connection until it is done, so transactions and
 * blocking commands never interleave with other requests. Idle connections
 * are kept for reuse; dead ones are dropped, which is how we "reconnect".
 */
class RedisPool {
  private readonly target: RedisTarget;
  private readonly idle: RedisConnection[] = [];
  private readonly busy = new Set<RedisConnection>();
  private readonly queue: { resolve: (c: RedisConnection) => void; reject: (e: Error) => void }[] = [];
  private connecting = 0;
  private closed = false;
  private static readonly MAX_CONNECTIONS = 64;
  private static readonly MAX_IDLE = 8;

  constructor(target: RedisTarget) {
    this.target = target;
  }

  async acquire(): Promise<RedisConnection> {
    if (this.closed) throw new RedisConnectionError("adapter is closing");
    for (let conn = this.idle.pop(); conn !== undefined; conn = this.idle.pop()) {
      if (!conn.closed) {
        this.busy.add(conn);
        return conn;
      }
    }
    // Bounded so a burst of requests cannot exhaust Redis' maxclients; extra requests wait their turn.
    if (this.busy.size + this.connecting >= RedisPool.MAX_CONNECTIONS) {
      return new Promise((resolve, reject) => this.queue.push({ resolve, reject }));
    }
    this.connecting++;
    try {
      const conn = await RedisConnection.connect(this.target);
      if (this.closed) {
        conn.destroy();
        throw new RedisConnectionError("adapter is closing");
      }
      this.busy.add(conn);
      return conn;
    } finally {
      this.connecting--;
    }
  }

  /** Returns a connection; `reusable: false` (state-changing commands, aborted requests) closes it instead. */
  release(conn: RedisConnection, reusable: boolean): void {
    this.busy.delete(conn);
    if (!reusable || conn.closed || this.closed) conn.destroy();
    const waiter = this.queue.shift();
    if (waiter !== undefined) {
      if (!conn.closed) {
        this.busy.add(conn);
        waiter.resolve(conn);
      } else {
        this.acquire().then(waiter.resolve, waiter.reject);
      }
      return;
    }
    if (!conn.closed) {
      if (this.idle.length < RedisPool.MAX_IDLE) this.idle.push(conn);
      else conn.destroy();
    }
  }

  close(): void {
    this.closed = true;
    const err = new RedisConnectionError("adapter is closing");
    for (const waiter of this.queue.splice(0)) waiter.reject(err);
    for (const conn of this.idle.splice(0)) conn.destroy(err);
    for (const conn of this.busy) conn.destroy(err);
    this.busy.clear();
  }
}

// ─────────────────────────── request decoding ───────────────────────────

/** A JSON number with its original source text, so e.g. 2^63-1 reaches Redis digit for digit. */
class JsonNumber {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

/** `context.source` (JSON.parse source text access) is available in Node >= 21. */
function parseJsonBody(body: Buffer): unknown {
  const text = body.toString("utf8");
  try {
    return JSON.parse(text, (_key: string, value: unknown, context?: { source?: string }) =>
      typeof value === "number" ? new JsonNumber(context?.source ?? String(value)) : value,
    );
  } catch (err) {
    throw new RequestError(`ERR failed to parse request body as JSON: ${(err as Error).message}`);
  }
}

/** Commands that would desynchronise our request/reply matching or need a long-lived stream. */
const REJECTED = new Set([
  "SUBSCRIBE",
  "PSUBSCRIBE",
  "SSUBSCRIBE",
  "UNSUBSCRIBE",
  "PUNSUBSCRIBE",
  "SUNSUBSCRIBE",
  "MONITOR",
  "SYNC",
  "PSYNC",
  "HELLO",
]);
/** Commands that leave per-connection state behind: the connection is closed rather than pooled. */
const STATEFUL = new Set(["SELECT", "MULTI", "WATCH", "AUTH", "RESET", "QUIT", "READONLY", "READWRITE", "CLIENT"]);
const HARMLESS_CLIENT_SUBCOMMANDS = new Set(["ID", "INFO", "LIST", "GETNAME"]);
/** Would break the MULTI ... EXEC envelope that /multi-exec builds itself. */
const NOT_IN_TRANSACTION = new Set(["MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"]);

interface Command {
  name: string; // upper-cased command name, for the checks above
  args: Buffer[];
}

/** Validates one JSON command array; numbers and booleans are sent to Redis as their text. */
function toCommand(value: unknown, where: string): Command {
  if (!Array.isArray(value) || value.length === 0) {
    throw new RequestError(`ERR ${where} must be a non-empty JSON array of strings and numbers`);
  }
  const args = value.map((arg: unknown, i: number) => {
    if (typeof arg === "string") return Buffer.from(arg, "utf8");
    if (arg instanceof JsonNumber) return Buffer.from(arg.text);
    if (typeof arg === "boolean") return Buffer.from(String(arg));
    throw new RequestError(`ERR ${where} argument ${i} must be a string or a number`);
  });
  return checkCommand(args);
}

function checkCommand(args: Buffer[]): Command {
  const name = (args[0] ?? Buffer.alloc(0)).toString("utf8").toUpperCase();
  if (name === "") throw new RequestError("ERR empty command name");
  if (REJECTED.has(name) || (name === "CLIENT" && args[1]?.toString().toUpperCase() === "REPLY")) {
    throw new RequestError(`ERR command '${name}' is not supported by the local Upstash adapter`);
  }
  return { name, args };
}

function isStateful(cmd: Command): boolean {
  if (!STATEFUL.has(cmd.name)) return false;
  return !(cmd.name === "CLIENT" && HARMLESS_CLIENT_SUBCOMMANDS.has(String(cmd.args[1] ?? "").toUpperCase()));
}

/** Path form: `/set/k/v` -> ["set","k","v"], segments URL-decoded; a request body becomes the last argument. */
function commandFromPath(pathname: string, body: Buffer): Command {
  const segments = pathname.split("/").slice(1);
  if (segments.length > 1 && segments[segments.length - 1] === "") segments.pop(); // tolerate a trailing slash
  const args = segments.map((segment): Buffer => {
    try {
      return Buffer.from(decodeURIComponent(segment), "utf8");
    } catch {
      throw new RequestError(`ERR malformed URL encoding in path segment ${JSON.stringify(segment)}`);
    }
  });
  if (body.length > 0) args.push(body); // binary-safe: raw bytes, no JSON involved
  return checkCommand(args);
}

// ─────────────────────────── response encoding ───────────────────────────

/**
 * Serialises a reply to JSON text by hand: bigint integers are written exactly,
 * and in base64 mode every string (bulk, status, nested) is the base64 of its
 * raw bytes. The one exception, as on Upstash, is a top-level "OK" status:
 * @upstash/redis special-cases `result === "OK"` and passes it through, while
 * it base64-decodes every other string, including strings inside arrays.
 */
function replyToJson(value: RespValue, base64: boolean, topLevel: boolean): string {
  if (value === null) return "null";
  if (typeof value === "bigint") return value.toString();
  if (Buffer.isBuffer(value)) return JSON.stringify(base64 ? value.toString("base64") : value.toString("utf8"));
  if (Array.isArray(value)) return `[${value.map((v) => replyToJson(v, base64, false)).join(",")}]`;
  // Errors nested in arrays (e.g. a Lua table holding an error) are rendered as their message text.
  const text = value instanceof RespStatus ? value.value : value.message;
  if (base64 && !(topLevel && value instanceof RespStatus && text === "OK")) {
    return JSON.stringify(Buffer.from(text, "utf8").toString("base64"));
  }
  return JSON.stringify(text);
}

/** `{"result": ...}` or `{"error": "..."}` for one command; errors are never base64-encoded. */
function entryToJson(value: RespValue, base64: boolean): string {
  if (value instanceof RespError) return `{"error":${JSON.stringify(value.message)}}`;
  return `{"result":${replyToJson(value, base64, true)}}`;
}

function sendJson(res: ServerResponse, status: number, json: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(json) });
  res.end(json);
}

function errorJson(message: string): string {
  return JSON.stringify({ error: message });
}

// ───────────────────────────── HTTP handling ─────────────────────────────

const MAX_BODY_BYTES = 64 * 1024 * 1024;

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new RequestError("ERR request body too large", 413));
        req.resume(); // drain without buffering so we can still answer
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
    // A client that disconnects mid-body may only emit "close"; settle so the handler can finish.
    req.on("close", () => {
      if (!req.complete) reject(new RequestError("ERR request aborted by client"));
    });
  });
}

function tokenMatches(given: string | null | undefined, expected: Buffer): boolean {
  if (!given) return false;
  const buf = Buffer.from(given, "utf8");
  return buf.length === expected.length && timingSafeEqual(buf, expected);
}

function bearerToken(req: IncomingMessage): string | undefined {
  const match = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? "");
  return match?.[1]?.trim();
}

/** Starts the adapter; resolves once it is listening. */
export async function startUpstashAdapter(opts: UpstashAdapterOptions): Promise<UpstashAdapter> {
  if (!opts.token) throw new Error("startUpstashAdapter: a non-empty token is required");
  const expectedToken = Buffer.from(opts.token, "utf8");
  const pool = new RedisPool(parseRedisUrl(opts.redisUrl ?? "redis://127.0.0.1:6379"));
  const host = opts.host ?? "127.0.0.1";

  /** Runs commands on one exclusively held connection; closes it if the client went away mid-request. */
  async function withConnection<T>(
    res: ServerResponse,
    stateful: boolean,
    run: (conn: RedisConnection) => Promise<T>,
  ): Promise<T> {
    const conn = await pool.acquire();
    // If the HTTP client disconnects (e.g. during a BLPOP), free Redis instead of waiting forever.
    const onClose = () => {
      if (!res.writableFinished) conn.destroy(new RedisConnectionError("HTTP client went away"));
    };
    res.once("close", onClose);
    try {
      return await run(conn);
    } finally {
      res.off("close", onClose);
      pool.release(conn, !stateful);
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Split by hand: WHATWG URL parsing would resolve "." / ".." segments and treat "//x" as a host,
    // both of which would corrupt keys in the path form.
    const rawUrl = req.url ?? "/";
    const queryAt = rawUrl.indexOf("?");
    const rawPath = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
    const query = new URLSearchParams(queryAt === -1 ? "" : rawUrl.slice(queryAt + 1));
    if (!tokenMatches(bearerToken(req) ?? query.get("_token"), expectedToken)) {
      req.resume();
      return sendJson(res, 401, errorJson("Unauthorized"));
    }
    const method = req.method ?? "GET";
    const body = await readBody(req);
    const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";
    const pathname = rawPath.replace(/\/+$/, "") || "/";

    if (pathname === "/pipeline" || pathname === "/multi-exec") {
      if (method !== "POST") throw new RequestError(`ERR ${pathname} only accepts POST`, 405);
      const parsed = parseJsonBody(body);
      if (!Array.isArray(parsed) || parsed.length === 0) {
        throw new RequestError("ERR request body must be a non-empty JSON array of command arrays");
      }
      const commands = parsed.map((c: unknown, i: number) => toCommand(c, `command ${i}`));
      if (pathname === "/pipeline") {
        const replies = await withConnection(res, commands.some(isStateful), (conn) =>
          conn.send(commands.map((c) => c.args)),
        );
        return sendJson(res, 200, `[${replies.map((r) => entryToJson(r, base64)).join(",")}]`);
      }
      const bad = commands.find((c) => NOT_IN_TRANSACTION.has(c.name));
      if (bad) throw new RequestError(`ERR command '${bad.name}' is not allowed in /multi-exec`);
      const replies = await withConnection(res, commands.some(isStateful), (conn) =>
        conn.send([[Buffer.from("MULTI")], ...commands.map((c) => c.args), [Buffer.from("EXEC")]]),
      );
      const exec = replies[replies.length - 1] ?? null;
      if (exec instanceof RespError || exec === null || !Array.isArray(exec)) {
        // EXECABORT: a command was rejected while queueing (syntax/arity); surface the first cause too.
        const cause = replies.slice(1, -1).find((r) => r instanceof RespError);
        const message = exec instanceof RespError ? exec.message : "EXECABORT Transaction aborted";
        return sendJson(res, 400, errorJson(cause instanceof RespError ? `${message} (${cause.message})` : message));
      }
      return sendJson(res, 200, `[${exec.map((r) => entryToJson(r, base64)).join(",")}]`);
    }

    let command: Command;
    if (pathname === "/") {
      if (method !== "POST") throw new RequestError("ERR send the command as a JSON array with POST /", 405);
      command = toCommand(parseJsonBody(body), "request body");
    } else {
      if (method !== "GET" && method !== "POST" && method !== "PUT") {
        throw new RequestError(`ERR method ${method} not allowed`, 405);
      }
      command = commandFromPath(rawPath, body);
    }
    const [reply] = await withConnection(res, isStateful(command), (conn) => conn.send([command.args]));
    if (reply instanceof RespError) return sendJson(res, 400, errorJson(reply.message));
    return sendJson(res, 200, entryToJson(reply ?? null, base64));
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof RequestError) return sendJson(res, err.status, errorJson(err.message));
      if (err instanceof RedisConnectionError) return sendJson(res, 500, errorJson(`ERR ${err.message}`));
      const message = err instanceof Error ? err.message : String(err);
      sendJson(res, 500, errorJson(`ERR internal adapter error: ${message}`));
    });
  });
  // Malformed HTTP must not take the process down; answer and drop the socket.
  server.on("clientError", (_err, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : (opts.port ?? 0);
  const urlHost = host.includes(":") ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive sockets from fetch would otherwise hold close() open.
        server.closeAllConnections();
        pool.close();
      });
      return closing;
    },
  };
}

// ──────────────────────────────── CLI ────────────────────────────────

function cliOption(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i !== -1) return args[i + 1];
  const inline = args.find((a) => a.startsWith(`--${name}=`));
  return inline?.slice(name.length + 3);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const token = cliOption(args, "token") ?? process.env.UPSTASH_REDIS_REST_TOKEN;
  if (!token) {
    console.error(
      "usage: node scripts/upstash-adapter.ts --token <token> [--port 8079] [--host 127.0.0.1] [--redis redis://127.0.0.1:6379]",
    );
    process.exit(2);
  }
  const adapter = await startUpstashAdapter({
    token,
    port: Number(cliOption(args, "port") ?? 8079),
    host: cliOption(args, "host"),
    redisUrl: cliOption(args, "redis") ?? process.env.REDIS_URL,
  });
  console.log(`upstash adapter listening on ${adapter.url} (UPSTASH_REDIS_REST_URL=${adapter.url})`);
  const shutdown = () => {
    adapter.close().then(() => process.exit(0));
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
