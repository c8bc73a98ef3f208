import { Pool, neonConfig } from "@neondatabase/serverless";
import type { PoolClient, WebSocketConstructor } from "@neondatabase/serverless";
import type { Config } from "./config.ts";
import { ServiceUnavailableError } from "./errors.ts";

/**
 * Postgres access over `@neondatabase/serverless` (Pool/Client over WebSocket, so transactions
 * work). A pool lives inside one request or one queue batch — Workers must not share I/O objects
 * across requests — and is closed with `ctx.waitUntil(db.end())`.
 */

/** Result of a query. */
export interface QueryResult<T> {
  rows: T[];
  rowCount: number;
}

/** How one statement runs. */
export interface QueryOptions {
  /**
   * Runs it as this named prepared statement: parsed and planned once per connection, later calls
   * only bind and execute (Postgres keeps a generic plan after five executions when it costs no
   * more). For hot statements whose planning costs more than their execution; one constant text
   * per name. Neon's pooler (PgBouncer ≥ 1.21) keeps protocol-level prepared statements.
   */
  name?: string;
}

/** Anything that runs parameterised SQL: the pool or a transaction's client. */
export interface Queryable {
  /** Runs `text` with `$1…$n` bound to `params`. */
  query<T = Record<string, unknown>>(
    text: string,
    params?: readonly unknown[],
    options?: QueryOptions,
  ): Promise<QueryResult<T>>;
}

/** A request-scoped database handle. */
export interface Db extends Queryable {
  /**
   * Runs `fn` inside BEGIN … COMMIT on one connection; any throw rolls back and re-throws.
   * @param fn - receives the transaction's connection
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Closes the pool; call through `ctx.waitUntil`. */
  end(): Promise<void>;
}

/** Points the Neon driver at the local WebSocket-to-TCP proxy (dev and tests only). */
export function configureNeonForProxy(proxy: string): void {
  neonConfig.wsProxy = (host, port) => `${proxy}/v2?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineTLS = false;
  neonConfig.pipelineConnect = false;
}

/** `WebSocket.CLOSING`: from it on (then `CLOSED`), nothing sent can arrive. */
const CLOSING = 2;
// Each class once, and never a guarded class guarded again.
const closeSafeOf = new WeakMap<WebSocketConstructor, WebSocketConstructor>();
const closeSafeClasses = new WeakSet<WebSocketConstructor>();

/**
 * `Base` with `send` a no-op once the socket is closing or closed. The driver coalesces writes and
 * sends them from a timer without looking at the socket: when the server side hangs up right
 * behind the handshake — the proxy's connect to an unreachable Postgres refused — the timer sends
 * the startup message on a closed socket, and workerd throws "Can't call WebSocket send() after
 * close()." there, an uncaught exception in the log. The driver has seen the close by then and
 * fails the query (a 503); the bytes could never have arrived.
 */
export function closeSafeWebSocket(Base: WebSocketConstructor): WebSocketConstructor {
  if (closeSafeClasses.has(Base)) return Base;
  let Safe = closeSafeOf.get(Base);
  if (!Safe) {
    Safe = class extends Base {
      override send(data: unknown): void {
        if (this.readyState < CLOSING) super.send(data);
      }
    };
    closeSafeOf.set(Base, Safe);
    closeSafeClasses.add(Safe);
  }
  return Safe;
}

/** Has the driver open its sockets through {@link closeSafeWebSocket} (the configured class, else the runtime's). */
function guardDriverSockets(): void {
  const Base = neonConfig.webSocketConstructor ?? globalThis.WebSocket;
  if (Base) neonConfig.webSocketConstructor = closeSafeWebSocket(Base);
}

const wrap = (client: Pick<PoolClient, "query">): Queryable => ({
  async query<T>(text: string, params?: readonly unknown[], options?: QueryOptions) {
    const values = params as unknown[] | undefined;
    const res = await (options?.name ? client.query({ name: options.name, text, values }) : client.query(text, values));
    return { rows: res.rows as T[], rowCount: res.rowCount ?? 0 };
  },
});

/**
 * Whether an error means the database could not be reached or cannot take us now (as opposed to
 * an error in our SQL): transport failures carry no SQLSTATE; class 08 (connection), 53 (too many
 * connections, out of resources) and 57P0x (shutting down) are the server saying "not now".
 */
export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  if (!(typeof code === "string" && /^[0-9A-Z]{5}$/.test(code))) return true;
  return code.startsWith("08") || code.startsWith("53") || /^57P0/.test(code);
}

/** Hooks of {@link createDb}. */
export interface DbHooks {
  /** Receives background socket errors (closing a pool can raise one). */
  onError?: (err: unknown) => void;
  /** Runs after every committed transaction with its connection (the event bus kicks its relay here). */
  onCommit?: (tx: Queryable) => void;
  /** Close idle connections after this long (default: the driver's 10 s). */
  idleTimeoutMillis?: number;
  /** Most connections of the pool (default 4). */
  max?: number;
}

/**
 * Creates a request-scoped {@link Db}. The pool connects lazily on the first query.
 * @param config - parsed configuration (database URL, optional local proxy)
 * @param hooks - error and commit listeners
 */
export function createDb(config: Pick<Config, "databaseUrl" | "databaseWsProxy">, hooks: DbHooks = {}): Db {
  const { onError, onCommit } = hooks;
  if (config.databaseWsProxy) configureNeonForProxy(config.databaseWsProxy);
  guardDriverSockets();
  const pool = new Pool({
    connectionString: config.databaseUrl,
    max: hooks.max ?? 4,
    ...(hooks.idleTimeoutMillis ? { idleTimeoutMillis: hooks.idleTimeoutMillis } : {}),
  });
  let ended = false;
  // An idle client losing its socket emits 'error' on the pool; unhandled, it would crash the isolate.
  // Closing the pool makes its sockets report a lost connection too: expected, so not reported.
  pool.on("error", (err: unknown) => {
    // The driver also emits events for clients it is closing itself (idle timeout): not failures.
    if (!ended && err instanceof Error) onError?.(err);
  });

  const guard = async <T>(run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (err) {
      if (isConnectionError(err))
        throw new ServiceUnavailableError("database unavailable", { cause: err, retryAfterSeconds: 1 });
      throw err;
    }
  };

  return {
    query: (text, params, options) => guard(() => wrap(pool).query(text, params, options)),
    async transaction(fn) {
      const client = await guard(() => pool.connect());
      // Removed on release: a pooled client is reused, and a listener per transaction would pile up
      // on long-lived pools (a Durable Object's) — a leak the fuzzer's runs surfaced.
      const onClientError = (err: unknown) => {
        if (!ended) onError?.(err);
      };
      client.on("error", onClientError);
      // Queries of the transaction go through the guard too: a server that dies mid-transaction
      // (found by `npm run chaos`, Postgres SIGKILLed under team moves) is a 503, not a 500.
      const raw = wrap(client);
      const tx: Queryable = { query: (text, params, options) => guard(() => raw.query(text, params, options)) };
      try {
        await tx.query("BEGIN");
        const result = await fn(tx);
        await tx.query("COMMIT");
        onCommit?.(tx);
        return result;
      } catch (err) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw err;
      } finally {
        client.off("error", onClientError);
        client.release();
      }
    },
    async end() {
      if (ended) return;
      ended = true;
      await pool.end().catch((err: unknown) => onError?.(err));
    },
  };
}
