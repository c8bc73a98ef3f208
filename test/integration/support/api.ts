import { env, exports } from "cloudflare:workers";
import { signToken } from "../../../src/platform/auth.ts";
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
      scopes: opts.scopes ?? [
        "usage:read",
        "usage:write",
        "teams:read",
        "teams:write",
        "webhooks:read",
        "webhooks:write",
      ],
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
  const headers = new Headers(opts.headers);
  const token = opts.token === undefined ? await tokenFor(opts) : opts.token;
  if (token) headers.set("authorization", `Bearer ${token}`);
  let body: string | undefined = opts.raw;
  if (body === undefined && opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined && !headers.has("content-type")) headers.set("content-type", "application/json");
  return exports.default.fetch(
    new Request(`http://edge.test${path}`, { method: opts.method ?? (body ? "POST" : "GET"), headers, body }),
  );
}
