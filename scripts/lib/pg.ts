import { Client, neonConfig } from "@neondatabase/serverless";
import ws from "ws";
import { configureNeonForProxy } from "../../src/platform/db.ts";
import type { WsProxy } from "../ws-proxy.ts";
import { startWsProxy } from "../ws-proxy.ts";

/**
 * Postgres from Node scripts through the same driver the Worker uses: local servers through an
 * in-process WebSocket proxy, Neon directly over WSS.
 */

let proxy: Promise<WsProxy> | undefined;

const isLocal = (url: string) => ["127.0.0.1", "localhost", "::1", "[::1]"].includes(new URL(url).hostname);

/** Opens a connected client; `close()` it when done. */
export async function connectPg(url: string): Promise<Client> {
  neonConfig.webSocketConstructor = ws as unknown as typeof WebSocket;
  if (isLocal(url)) {
    proxy ??= startWsProxy();
    configureNeonForProxy((await proxy).address);
  }
  const client = new Client(url);
  client.on("error", () => undefined); // a dropped socket surfaces on the next query instead
  await client.connect();
  return client;
}

/** Runs `fn` with a client and always closes it. */
export async function withPg<T>(url: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await connectPg(url);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Stops the in-process proxy, if one was started (lets a script exit). */
export async function closePgProxy(): Promise<void> {
  const p = proxy;
  proxy = undefined;
  if (p) await (await p).close();
}

/** The same server URL with another database name. */
export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

const ident = (name: string) => {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bad database name ${name}`);
  return `"${name}"`;
};

/** Creates a database unless it exists. */
export async function createDatabase(adminUrl: string, name: string): Promise<void> {
  await withPg(adminUrl, async (c) => {
    const { rowCount } = await c.query("select 1 from pg_database where datname = $1", [name]);
    if (!rowCount)
      await c.query(`create database ${ident(name)}`).catch((err: { code?: string }) => {
        if (err.code !== "42P04") throw err; // created concurrently
      });
  });
}

/** Drops a database, disconnecting its sessions. */
export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withPg(adminUrl, (c) => c.query(`drop database if exists ${ident(name)} with (force)`));
}
