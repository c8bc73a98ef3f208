import { env, exports } from "cloudflare:workers";
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { app } from "../../../src/app.ts";
import { scopes, signToken } from "../../../src/platform/auth.ts";
import { getConfig } from "../../../src/platform/config.ts";

/** Options of {@link tokenFor}. */
export interface TokenOptions {
  org?: string;
  user?: string;
  email?: string;
  scopes?: string[];
}

/** A token for this run's Worker (signed with the test secret). */
export function tokenFor(opts: TokenOptions = {}): Promise<string> {
  return signToken(
    {
      userId: opts.user ?? "u_1",
      organizationId: opts.org ?? "org_1",
      email: opts.email,
      // Every service's read and write scope (not admin or internal).
      scopes: opts.scopes ?? scopes.filter((s) => s.includes(":")),
    },
    getConfig(env).auth,
  );
}

/** Options of {@link api}. */
export interface ApiOptions extends TokenOptions {
  method?: string;
  body?: unknown;
  /** Raw body (sent as is); wins over `body`. */
  raw?: string;
  token?: string | null;
  headers?: Record<string, string>;
}

/** Calls the Worker under test through its default export. */
export async function api(path: string, opts: ApiOptions = {}): Promise<Response> {
  return exports.default.fetch(await request(path, opts));
}

/**
 * Calls the Worker's app with `bindings` as its env — e.g. DATABASE_URL pointing nowhere: an outage
 * of one dependency while the others are up — and waits for its background work (cache fills).
 */
export async function apiWith(bindings: object, path: string, opts: ApiOptions = {}): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await app.fetch(await request(path, opts), bindings, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

async function request(path: string, opts: ApiOptions): Promise<Request> {
  const headers = new Headers(opts.headers);
  const token = opts.token === undefined ? await tokenFor(opts) : opts.token;
  if (token) headers.set("authorization", `Bearer ${token}`);
  let body: string | undefined = opts.raw;
  if (body === undefined && opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined && !headers.has("content-type")) headers.set("content-type", "application/json");
  return new Request(`http://edge.test${path}`, { method: opts.method ?? (body ? "POST" : "GET"), headers, body });
}
