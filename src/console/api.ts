import type { ExecutionContext } from "hono";

/**
 * The console's only way to read or change anything: a request to the app's own `/v1` routes with
 * the session's bearer token, handed straight to the app (no network hop). Authentication,
 * scopes, tenancy, validation and the services are therefore exactly those a client meets.
 */

/** Hands a request to the Worker's own app (`app.fetch`). */
export type AppFetch = (req: Request, env: CloudflareBindings, ctx: ExecutionContext) => Response | Promise<Response>;

/** A non-2xx answer of the API, carrying its error envelope. */
export class ApiError extends Error {
  /** HTTP status of the answer. */
  readonly status: number;
  /** The envelope's machine-readable code (`cycle`, `forbidden`, …). */
  readonly code: string;
  /** The envelope's details, if any. */
  readonly details: unknown;

  /** Builds the error from an answer's status and envelope. */
  constructor(status: number, code: string, message: string, details?: unknown) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** A small client of the app's API, bound to one console request and its session token. */
export interface Api {
  /** GET a JSON resource. @throws {ApiError} on a non-2xx answer */
  get<T>(path: string, query?: Record<string, string | undefined>): Promise<T>;
  /** POST/PATCH/PUT/DELETE with an optional JSON body. @throws {ApiError} on a non-2xx answer */
  send<T>(method: "POST" | "PATCH" | "PUT" | "DELETE", path: string, body?: unknown): Promise<T>;
  /** The raw answer (downloads such as CSV). */
  raw(path: string, query?: Record<string, string | undefined>): Promise<Response>;
}

/** Builds the {@link Api} for one console request. */
export function createApi(opts: {
  fetch: AppFetch;
  env: CloudflareBindings;
  ctx: ExecutionContext;
  origin: string;
  token: string;
  requestId: string;
}): Api {
  const call = async (method: string, path: string, query?: Record<string, string | undefined>, body?: unknown) => {
    const url = new URL(path, opts.origin);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== "") url.searchParams.set(k, v);
    const headers: Record<string, string> = {
      authorization: `Bearer ${opts.token}`,
      "x-request-id": opts.requestId,
    };
    if (body !== undefined) headers["content-type"] = "application/json";
    const req = new Request(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return opts.fetch(req, opts.env, opts.ctx);
  };
  const json = async <T>(res: Response): Promise<T> => {
    const text = await res.text();
    const data = text ? (JSON.parse(text) as unknown) : undefined;
    if (!res.ok) {
      const e = (data as { error?: { code?: string; message?: string; details?: unknown } } | undefined)?.error;
      throw new ApiError(res.status, e?.code ?? "internal_error", e?.message ?? `HTTP ${res.status}`, e?.details);
    }
    return data as T;
  };
  return {
    get: async (path, query) => json(await call("GET", path, query)),
    send: async (method, path, body) => json(await call(method, path, undefined, body)),
    raw: (path, query) => call("GET", path, query),
  };
}

/** `/v1/orgs/{org}` of an organization, with the id escaped. */
export const orgPath = (organizationId: string) => `/v1/orgs/${encodeURIComponent(organizationId)}`;
