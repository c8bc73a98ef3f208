import type { ZodError, ZodType, output } from "zod";
import type { FieldIssue } from "./errors.ts";
import { ValidationError } from "./errors.ts";

/** Turns a zod error into field issues with dotted paths (`where` = json, query, param…). */
export function zodIssuesOf(error: ZodError, where?: string): FieldIssue[] {
  return error.issues.map((i) => ({
    path: i.path.map(String).join("."),
    message: i.message,
    code: i.code,
    ...(where ? { in: where } : {}),
  }));
}

/**
 * Validates a service input with its zod schema: the parsed value, or a {@link ValidationError}
 * ("invalid <what>") listing every field — the one way services reject bad input.
 */
export function parseInput<S extends ZodType>(schema: S, value: unknown, what: string): output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new ValidationError(`invalid ${what}`, zodIssuesOf(r.error));
  return r.data;
}

/**
 * Where in `value` a string (or an object key) holds U+0000, as a dotted path, or undefined.
 * Postgres `text`/`jsonb` cannot store NUL, so such input must be refused as invalid before any
 * query sees it — else the database's "invalid byte sequence" would surface as a 500.
 */
export function nulPath(value: unknown, path: (string | number)[] = [], depth = 0): string | undefined {
  if (typeof value === "string") return value.includes("\u0000") ? path.join(".") : undefined;
  if (value === null || typeof value !== "object" || depth > 64) return undefined;
  for (const [k, v] of Object.entries(value)) {
    const at = [...path, k];
    if (k.includes("\u0000")) return at.join(".");
    const found = nulPath(v, at, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * The first field of a request (raw URL and body text) that holds U+0000, for {@link nulPath}'s
 * reason: `in` is `param`, `query` or `json`. The body is parsed only when its text can hold a NUL
 * at all, so ordinary requests pay one regular-expression scan.
 */
export function nulIssue(url: string, body: string | undefined): FieldIssue | undefined {
  const u = new URL(url);
  if (/%00/.test(u.pathname))
    return { path: "", message: "must not contain U+0000", code: "invalid_string", in: "param" };
  for (const [k, v] of u.searchParams) {
    if (k.includes("\u0000") || v.includes("\u0000"))
      return {
        path: k.replaceAll("\u0000", ""),
        message: "must not contain U+0000",
        code: "invalid_string",
        in: "query",
      };
  }
  if (body && (body.includes("\u0000") || /\\u0000/i.test(body))) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return undefined; // not JSON: the body validator answers invalid_json
    }
    const at = nulPath(parsed);
    if (at !== undefined) return { path: at, message: "must not contain U+0000", code: "invalid_string", in: "json" };
  }
  return undefined;
}
