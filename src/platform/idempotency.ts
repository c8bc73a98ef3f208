import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./create-app.ts";
import { ConflictError, ValidationError } from "./errors.ts";

/**
 * `Idempotency-Key` for mutating POSTs (Stripe's semantics): the first request with a key runs and
 * its response (2xx–4xx) is stored for 24 h; a repeat with the same key and the same request gets
 * that response again (`Idempotent-Replayed: true`); the same key with a different request, or
 * while the first is still running, is a 409. 5xx responses are not stored, so a retry runs again.
 * @param options - `redact`: top-level response fields never stored (secrets such as an invitation
 *   token); a replay answers without them
 */
export function idempotent(options: { redact?: readonly string[] } = {}): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const key = c.req.header("idempotency-key");
    if (key === undefined) return next();
    if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
      throw new ValidationError("invalid Idempotency-Key", [
        { path: "Idempotency-Key", message: "1–255 printable ASCII characters", in: "header" },
      ]);
    }
    const org = c.req.param("organizationId") ?? c.var.principal.organizationId;
    const digest = await crypto.subtle.digest(
      "SHA-256",
      new TextEncoder().encode(`${c.req.method} ${c.req.path}\n${await c.req.text()}`),
    );
    const hash = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    const db = c.var.platform.db;

    // An expired key (older than 24 h) may be reused: clear it first.
    await db.query(
      "delete from idempotency_keys where organization_id = $1 and key = $2 and created_at < now() - interval '24 hours'",
      [org, key],
    );
    const claimed = await db.query(
      "insert into idempotency_keys (organization_id, key, request_hash) values ($1, $2, $3) on conflict do nothing",
      [org, key, hash],
    );
    if (claimed.rowCount === 0) {
      const { rows } = await db.query<{ request_hash: string; status: number | null; response: unknown }>(
        "select request_hash, status, response from idempotency_keys where organization_id = $1 and key = $2",
        [org, key],
      );
      const prior = rows[0];
      if (!prior) throw new ConflictError("Idempotency-Key is being reset; retry");
      if (prior.request_hash !== hash)
        throw new ConflictError("Idempotency-Key was already used with a different request");
      if (prior.status === null) throw new ConflictError("a request with this Idempotency-Key is still in progress");
      return c.json(prior.response as object, prior.status as 200, { "Idempotent-Replayed": "true" });
    }

    try {
      await next();
    } catch (err) {
      await db.query("delete from idempotency_keys where organization_id = $1 and key = $2", [org, key]);
      throw err;
    }
    if (c.res.status >= 500) {
      await db.query("delete from idempotency_keys where organization_id = $1 and key = $2", [org, key]);
      return;
    }
    const text = await c.res.clone().text();
    let body: unknown = null;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    if (body && typeof body === "object" && !Array.isArray(body)) {
      for (const field of options.redact ?? []) delete (body as Record<string, unknown>)[field];
    }
    await db.query("update idempotency_keys set status = $3, response = $4 where organization_id = $1 and key = $2", [
      org,
      key,
      c.res.status,
      JSON.stringify(body),
    ]);
  };
}
