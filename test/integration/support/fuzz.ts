import fc from "fast-check";

/**
 * Input generators for the OpenAPI-driven fuzzer (test/integration/platform/fuzz.test.ts, also run
 * with more cases by `npm run chaos`): from an operation of `/openapi.json`, requests whose body,
 * query, path and headers are malformed, oversized, of the wrong type, unicode edge cases or
 * injection strings — usually one bad part inside an otherwise well-formed request, so the bad part
 * reaches the code behind validation instead of being refused for something else first.
 */

/** A JSON Schema node as `@hono/zod-openapi` emits it (OpenAPI 3.1), loosely typed. */
export type JsonSchema = {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  format?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  additionalProperties?: boolean | JsonSchema;
  default?: unknown;
};

/** One parameter of an operation. */
export interface FuzzParam {
  name: string;
  in: "path" | "query" | "header" | "cookie";
  required?: boolean;
  schema?: JsonSchema;
}

/** One operation of the document. */
export interface FuzzOperation {
  method: string;
  /** OpenAPI path template, e.g. `/v1/orgs/{organizationId}/teams/{teamId}`. */
  path: string;
  params: FuzzParam[];
  /** JSON request body schema, if the operation takes one. */
  body?: JsonSchema;
}

/** A generated request. */
export interface FuzzRequest {
  method: string;
  /** Path and query, percent-encoded. */
  url: string;
  headers: Record<string, string>;
  /** Raw body, if any. */
  body?: string;
  /** What was made bad, for the failure report. */
  mutation: string;
}

type OpenApiDoc = {
  paths: Record<
    string,
    Record<string, { parameters?: FuzzParam[]; requestBody?: { content?: Record<string, { schema?: JsonSchema }> } }>
  >;
  components?: { schemas?: Record<string, JsonSchema> };
};

/** Every operation of an OpenAPI document (path-level and operation-level parameters merged). */
export function operationsOf(doc: OpenApiDoc): FuzzOperation[] {
  const ops: FuzzOperation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
      const body = op.requestBody?.content?.["application/json"]?.schema;
      ops.push({ method: method.toUpperCase(), path, params: op.parameters ?? [], ...(body ? { body } : {}) });
    }
  }
  return ops;
}

/** Resolves `$ref`s and flattens `allOf` against the document's components. */
export function resolver(doc: OpenApiDoc): (s: JsonSchema | undefined) => JsonSchema {
  const resolve = (s: JsonSchema | undefined, depth = 0): JsonSchema => {
    if (!s || depth > 20) return {};
    if (s.$ref) return resolve(doc.components?.schemas?.[s.$ref.split("/").pop() ?? ""], depth + 1);
    if (s.allOf) {
      const parts = s.allOf.map((p) => resolve(p, depth + 1));
      return {
        type: "object",
        properties: Object.assign({}, ...parts.map((p) => p.properties ?? {})),
        required: parts.flatMap((p) => p.required ?? []),
      };
    }
    return s;
  };
  return (s) => resolve(s);
}

/** Strings that have broken parsers, databases and templates elsewhere. */
export const NASTY_STRINGS = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "\udfff\ud800",
  "\u202e\u0644\u0627",
  "e\u0301\u0301\u0301",
  "\ufeff",
  "😀👩‍👩‍👧‍👦",
  "\u2028\u2029",
  "'; drop table teams; --",
  "' or '1'='1",
  '" or ""="',
  "1; select pg_sleep(10)",
  "$1",
  "%s%n%x",
  "{{7*7}}",
  "$" + "{7*7}", // a template-injection probe, spelled so it is not one here
  "<script>alert(1)</script>",
  "../../../../etc/passwd",
  "%00",
  "%2e%2e%2f",
  "\\",
  "NaN",
  "Infinity",
  "-1",
  "0x7fffffff",
  "9223372036854775808",
  "1e309",
  "null",
  "true",
  "[]",
  "{}",
  "__proto__",
  "constructor",
  "2026-02-30T25:61:61Z",
  "0000-00-00",
  "275760-09-13T00:00:00.001Z",
  "-271821-04-20T00:00:00Z",
  "1970-01-01T00:00:00Z",
  "Europe/Nowhere",
  "http://169.254.169.254/latest/meta-data",
  "javascript:alert(1)",
];

/** Numbers at the edges of every integer and float type a backend may hold them in. */
export const NASTY_NUMBERS = [
  0,
  -0,
  -1,
  0.5,
  -0.000001,
  2 ** 31,
  2 ** 31 - 1,
  -(2 ** 31),
  2 ** 53,
  2 ** 63,
  -(2 ** 63),
  1e21,
  1e308,
  -1e308,
  Number.MAX_SAFE_INTEGER,
  Number.MIN_SAFE_INTEGER,
  Number.EPSILON,
];

const nastyString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom("a", "é", "😀", "\u0000", "'"), fc.integer({ min: 256, max: 70_000 }))
      .map(([c, n]) => c.repeat(n)),
  },
);

/** Any JSON value, including the nasty ones and deep nesting. */
export const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  nastyString,
  fc.constantFrom(...NASTY_NUMBERS),
  fc.constantFrom(null, true, false, [], {}),
  fc.integer({ min: 2, max: 3000 }).map((depth) => {
    let v: unknown = 1;
    for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
    return v;
  }),
  fc.array(fc.constantFrom(...NASTY_STRINGS), { maxLength: 5 }),
  fc.dictionary(fc.constantFrom(...NASTY_STRINGS.slice(0, 12)), fc.constantFrom(...NASTY_STRINGS), { maxKeys: 4 }),
);

/** A value that fits `schema` closely enough to pass most checks (not guaranteed). */
export function plausible(
  s: JsonSchema,
  resolve: (s: JsonSchema | undefined) => JsonSchema,
  depth = 0,
): fc.Arbitrary<unknown> {
  const schema = resolve(s);
  if (depth > 6) return fc.constant(null);
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum?.length) return fc.constantFrom(...schema.enum);
  const alts = schema.anyOf ?? schema.oneOf;
  if (alts?.length) return fc.oneof(...alts.map((a) => plausible(a, resolve, depth + 1)));
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  switch (type) {
    case "object": {
      const props = schema.properties ?? {};
      const required = new Set(schema.required ?? []);
      const entries = Object.entries(props);
      if (entries.length === 0) return fc.constant({});
      return fc.record(Object.fromEntries(entries.map(([k, v]) => [k, plausible(v, resolve, depth + 1)])), {
        requiredKeys: entries.map(([k]) => k).filter((k) => required.has(k)),
      });
    }
    case "array":
      return fc.array(plausible(schema.items ?? {}, resolve, depth + 1), { maxLength: 3 });
    case "integer":
      return fc.integer({ min: Math.max(schema.minimum ?? 0, -1e6), max: Math.min(schema.maximum ?? 1000, 1e6) });
    case "number":
      return fc.double({
        min: Math.max(schema.minimum ?? 0, -1e6),
        max: Math.min(schema.maximum ?? 1000, 1e6),
        noNaN: true,
      });
    case "boolean":
      return fc.boolean();
    case "string":
      return plausibleString(schema);
    default:
      return fc.oneof(fc.constant("x"), fc.integer(), fc.constant(null));
  }
}

function plausibleString(s: JsonSchema): fc.Arbitrary<string> {
  if (s.format === "date-time")
    return fc.integer({ min: -7 * 864e5, max: 864e5 }).map((d) => new Date(Date.now() + d).toISOString());
  if (s.format === "date") return fc.constant(new Date().toISOString().slice(0, 10));
  if (s.format === "uri" || s.format === "url") return fc.constant("https://example.com/hook");
  if (s.format === "email") return fc.constant("fuzz@example.com");
  if (s.format === "uuid") return fc.uuid();
  const min = s.minLength ?? 1;
  const max = Math.max(min, Math.min(s.maxLength ?? 24, 24));
  return fc.string({
    unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789_"),
    minLength: min,
    maxLength: max,
  });
}

/** Paths into a plausible value, so a mutation can replace one leaf or container. */
function pathsOf(v: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(prefix);
  if (prefix.length > 6) return out;
  if (Array.isArray(v)) for (const [i, x] of v.entries()) pathsOf(x, [...prefix, i], out);
  else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) pathsOf(x, [...prefix, k], out);
  return out;
}

function setAt(root: unknown, path: (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let cur = copy;
  for (const p of path.slice(0, -1)) cur = cur[p] as Record<string | number, unknown>;
  cur[path[path.length - 1]!] = value;
  return copy;
}

/** Values for path parameters: the known fixture ids (so the request reaches the handler) or junk. */
export interface FuzzFixtures {
  /** Organization of the caller's token. */
  organizationId: string;
  /** Known ids by parameter name (`teamId`, `webhookId`…). */
  ids: Record<string, string>;
  /** A valid bearer token for `organizationId`. */
  token: string;
}

const encodeSegment = (v: string) => {
  try {
    return encodeURIComponent(v);
  } catch {
    return encodeURIComponent(v.replace(/[\ud800-\udfff]/g, "?")); // lone surrogates cannot be encoded
  }
};

// Header values must be ByteStrings without CR/LF/NUL, or the client refuses to send them.
// (ASCII only: the runtime would re-encode Latin-1 as UTF-8 and warn about every such value).
const headerSafe = (v: string) => v.replace(/[^\x20-\x7e\t]/g, "").slice(0, 2000);

const HEADER_JUNK = fc.record({
  name: fc.constantFrom(
    "idempotency-key",
    "x-request-id",
    "content-type",
    "authorization",
    "accept",
    "if-none-match",
    "content-encoding",
  ),
  value: fc.oneof(
    nastyString.map(headerSafe),
    fc.constantFrom(
      "Bearer",
      "Bearer ",
      "Basic Zm9vOmJhcg==",
      "application/xml",
      "text/plain; charset=utf-7",
      "gzip",
      "*/*",
    ),
  ),
});

/** Requests for `op`: exactly one part of it is made bad, the rest is plausible. */
export function requestsFor(
  op: FuzzOperation,
  resolve: (s: JsonSchema | undefined) => JsonSchema,
  fixtures: FuzzFixtures,
): fc.Arbitrary<FuzzRequest> {
  const pathParams = op.params.filter((p) => p.in === "path");
  const queryParams = op.params.filter((p) => p.in === "query");
  const body = op.body ? plausible(op.body, resolve) : fc.constant(undefined);
  const pathValues = fc.record(
    Object.fromEntries(
      pathParams.map((p) => [
        p.name,
        p.name === "organizationId"
          ? fc.constant(fixtures.organizationId)
          : fc.oneof(
              { weight: 4, arbitrary: fc.constant(fixtures.ids[p.name] ?? "missing_id") },
              { weight: 1, arbitrary: nastyString },
            ),
      ]),
    ),
  ) as fc.Arbitrary<Record<string, string>>;
  const queryValues = fc.record(
    Object.fromEntries(queryParams.map((p) => [p.name, plausible(p.schema ?? { type: "string" }, resolve)])),
    { requiredKeys: queryParams.filter((p) => p.required).map((p) => p.name) },
  ) as fc.Arbitrary<Record<string, unknown>>;

  type Kind = "body-leaf" | "body-raw" | "body-oversized" | "query" | "path" | "header" | "extra-query";
  const kinds: Kind[] = ["query", "header", "extra-query"];
  if (op.body) kinds.push("body-leaf", "body-leaf", "body-leaf", "body-raw", "body-oversized");
  if (pathParams.some((p) => p.name !== "organizationId")) kinds.push("path");

  return fc
    .record({
      kind: fc.constantFrom(...kinds),
      body,
      path: pathValues,
      query: queryValues,
      junk: anyJson,
      pick: fc.nat(),
      header: HEADER_JUNK,
      raw: fc.oneof(
        fc.constantFrom(
          "",
          "{",
          "[",
          "nul",
          '{"a":',
          "\u0000",
          '{"__proto__":{"admin":true}}',
          "1",
          '"s"',
          "{}{}",
          "\ufeff{}",
        ),
        fc.string({ unit: "binary", maxLength: 200 }),
      ),
    })
    .map(({ kind, body, path, query, junk, pick, header, raw }) => {
      let b: unknown = body;
      let rawBody: string | undefined;
      const q: Record<string, unknown> = { ...query };
      const p: Record<string, string> = { ...path };
      const headers: Record<string, string> = { authorization: `Bearer ${fixtures.token}` };
      let mutation: string = kind;
      switch (kind) {
        case "body-leaf": {
          const paths = pathsOf(b);
          const at = paths[pick % paths.length]!;
          b = setAt(b, at, junk);
          mutation = `body.${at.join(".") || "(root)"}`;
          break;
        }
        case "body-raw":
          rawBody = raw;
          break;
        case "body-oversized":
          rawBody = JSON.stringify({ pad: "x".repeat(1_100_000 + (pick % 1000)) });
          break;
        case "query": {
          const names = queryParams.map((x) => x.name);
          if (names.length === 0) break;
          const name = names[pick % names.length]!;
          q[name] = typeof junk === "string" ? junk : JSON.stringify(junk);
          mutation = `query.${name}`;
          break;
        }
        case "extra-query":
          q[["limit", "cursor", "__proto__", "org", "x"][pick % 5]!] =
            typeof junk === "string" ? junk : JSON.stringify(junk);
          break;
        case "path": {
          const names = pathParams.map((x) => x.name).filter((n) => n !== "organizationId");
          const name = names[pick % names.length]!;
          p[name] = typeof junk === "string" && junk.length > 0 ? junk : String(pick);
          mutation = `path.${name}`;
          break;
        }
        case "header":
          headers[header.name] = header.value;
          mutation = `header.${header.name}`;
          break;
      }
      const url =
        op.path.replace(/\{(\w+)\}/g, (_, name: string) => encodeSegment(String(p[name] ?? "x"))) + queryString(q);
      if (op.body && rawBody === undefined && b !== undefined) rawBody = safeStringify(b);
      if (rawBody !== undefined && !headers["content-type"]) headers["content-type"] = "application/json";
      return {
        method: op.method,
        url,
        headers,
        ...(rawBody !== undefined && op.method !== "GET" ? { body: rawBody } : {}),
        mutation,
      };
    });
}

function queryString(q: Record<string, unknown>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue;
    const s = Array.isArray(v) ? v.join(",") : typeof v === "object" ? JSON.stringify(v) : String(v);
    parts.push(`${encodeSegment(k)}=${encodeSegment(s)}`);
  }
  return parts.length ? `?${parts.join("&")}` : "";
}

function safeStringify(v: unknown): string {
  try {
    return JSON.stringify(v);
  } catch {
    return "{}"; // too deep for the generator's own stack: send something else
  }
}

/** Patterns that must never appear in a response (unless the request itself contained them). */
export const LEAK_PATTERNS: RegExp[] = [
  /\n\s+at [^\n]+:\d+:\d+/, // V8 stack frame
  /\bat (?:async )?[\w.$<>]+ \([^)]*:\d+:\d+\)/,
  /\b(?:select|insert|update|delete)\b[^"]{0,200}\b(?:from|into|set|where)\b/i,
  /syntax error at or near/i,
  /violates (?:not-null|unique|foreign key|check) constraint/i,
  /duplicate key value/i,
  /relation "[^"]+" does not exist/i,
  /invalid input (?:syntax|value) for/i,
  /\bSQLSTATE\b/,
  /\b(?:TypeError|ReferenceError|RangeError|SyntaxError): /,
  /node_modules\//,
  /\/src\/[\w/-]+\.ts/,
];

/** The first leak in `text` that the request did not itself carry, if any. */
export function leakIn(text: string, req: FuzzRequest): string | undefined {
  let sent = `${req.url}\n${req.body ?? ""}\n${Object.values(req.headers).join("\n")}`;
  try {
    sent += `\n${decodeURIComponent(req.url)}`;
  } catch {
    // not decodable: the raw form is enough
  }
  for (const re of LEAK_PATTERNS) {
    const m = re.exec(text);
    if (m && !sent.includes(m[0]) && !sent.toLowerCase().includes(m[0].toLowerCase())) return m[0];
  }
  return undefined;
}
