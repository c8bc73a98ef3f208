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

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A string Postgres can store: no U+0000, no unpaired surrogate (jsonb refuses both, text refuses NUL). */
export function storableString(s: string): boolean {
  return !s.includes("\u0000") && !LONE_SURROGATE.test(s);
}

const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, "g");

/** `s` with U+0000 and unpaired surrogates replaced by U+FFFD (text from outside we keep, not judge). */
export function storableText(s: string): string {
  return storableString(s) ? s : s.replaceAll("\u0000", "\uFFFD").replace(LONE_SURROGATES, "\uFFFD");
}

/**
 * A copy of a JSON value Postgres can store: U+0000 and unpaired surrogates (in keys and values)
 * replaced by U+FFFD — for keeping what was refused (dead letters), never for accepting it. Below
 * 64 levels a subtree is kept as its JSON text (escaped, so storable), not walked further.
 */
export function toStorable(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return storableText(value);
  if (value === null || typeof value !== "object") return value;
  if (depth > 64) return JSON.stringify(value);
  if (Array.isArray(value)) return value.map((v) => toStorable(v, depth + 1));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [toStorable(k), toStorable(v, depth + 1)]));
}

/** Why {@link storableString} refused a string. */
const UNSTORABLE = "must not contain U+0000 or an unpaired surrogate";

// Each step of unstorablePath's walk knows its key and its parent's step: a path is built only for
// the one reported. Module-level, not inside the walk: it runs for every ingested event.
type PathStep = { v: unknown; key?: string; up?: PathStep };
const pathOf = (s: PathStep | undefined, key?: string) => {
  const keys = key === undefined ? [] : [key];
  for (let at = s; at?.key !== undefined; at = at.up) keys.push(at.key);
  return keys.reverse().join(".");
};

/**
 * Where in `value` a string (or an object key) Postgres cannot store sits, as a dotted path, or
 * undefined (see {@link storableString}). Such input must be refused as invalid before any query
 * sees it — else the database's error would surface as a 500, or, for events accepted and then
 * queued, fail their batch on every retry. Walked with a stack of its own, so no nesting depth
 * hides a string from it (nor overflows the call stack).
 */
export function unstorablePath(value: unknown): string | undefined {
  const todo: PathStep[] = [{ v: value }];
  for (let step = todo.pop(); step; step = todo.pop()) {
    const v = step.v;
    if (typeof v === "string") {
      if (!storableString(v)) return pathOf(step);
    } else if (v !== null && typeof v === "object") {
      const entries = Object.entries(v);
      // Pushed in reverse: the first field is looked at first (the path reported is the first one).
      for (let i = entries.length - 1; i >= 0; i--) {
        const [k, child] = entries[i]!;
        if (!storableString(k)) return pathOf(step, k);
        todo.push({ v: child, key: k, up: step });
      }
    }
  }
  return undefined;
}

/** How deep request JSON may nest (objects and arrays). */
export const MAX_JSON_DEPTH = 64;

/**
 * Whether JSON text nests objects and arrays deeper than `max`, by one scan of the text (strings
 * skipped): deeper input is refused before anything parses it — serialising it again would
 * overflow the stack (a 500), and no route takes such documents.
 */
export function jsonTooDeep(text: string, max = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      // A string: jump to its closing quote (one not escaped by an odd run of backslashes).
      for (;;) {
        i = text.indexOf('"', i + 1);
        if (i < 0) return false; // unterminated: the parser's invalid_json
        let b = i - 1;
        while (text.charCodeAt(b) === 92) b--;
        if ((i - 1 - b) % 2 === 0) break;
      }
    } else if (c === 123 || c === 91) {
      if (++depth > max) return true;
    } else if (c === 125 || c === 93) depth--;
  }
  return false;
}

/** A zod refinement's message and check for JSON values that go to Postgres (see {@link unstorablePath}). */
export const storableJson = {
  check: (v: unknown) => unstorablePath(v) === undefined,
  message: UNSTORABLE,
};

/**
 * The first field of a request (raw URL and body text) that Postgres cannot store, for
 * {@link unstorablePath}'s reason, or a body nested too deep ({@link jsonTooDeep}): `in` is
 * `param`, `query` or `json`. The body is parsed only when its text can hold such a string at all
 * (a NUL or surrogate escape), so ordinary requests pay two scans of the text.
 */
export function unstorableIssue(url: string, body: string | undefined): FieldIssue | undefined {
  const u = new URL(url);
  if (/%00/.test(u.pathname)) return { path: "", message: UNSTORABLE, code: "invalid_string", in: "param" };
  for (const [k, v] of u.searchParams) {
    if (!storableString(k) || !storableString(v))
      return {
        path: k.replaceAll("\u0000", ""),
        message: UNSTORABLE,
        code: "invalid_string",
        in: "query",
      };
  }
  if (body && jsonTooDeep(body))
    return { path: "", message: `nested deeper than ${MAX_JSON_DEPTH} levels`, code: "too_deep", in: "json" };
  if (body && (body.includes("\u0000") || /\\u(0000|d[89a-f])/i.test(body))) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return undefined; // not JSON: the body validator answers invalid_json
    }
    const at = unstorablePath(parsed);
    if (at !== undefined) return { path: at, message: UNSTORABLE, code: "invalid_string", in: "json" };
  }
  return undefined;
}
