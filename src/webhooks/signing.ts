/**
 * Standard Webhooks v1 signatures (https://www.standardwebhooks.com): the sender signs
 * `${webhook-id}.${webhook-timestamp}.${body}` with HMAC-SHA256 under the base64-decoded part of a
 * `whsec_…` secret and sends `webhook-signature: v1,<base64>` (several space-separated entries
 * while a rotated secret overlaps with its successor).
 *
 * Receivers: copy this file into your receiver. It has no imports and uses only web-standard APIs
 * (WebCrypto, atob/btoa), so it runs unchanged on Node 20+, Deno, Bun, browsers and Workers:
 *
 *   const ok = await verifyWebhook(request.headers, await request.text(), process.env.WEBHOOK_SECRET);
 *
 * Verify the raw body exactly as received: re-serialising parsed JSON changes the bytes.
 */

const SECRET_PREFIX = "whsec_";
const SECRET_BYTES = 32;
const DEFAULT_TOLERANCE_SECONDS = 300;
const MAX_TIMESTAMP_DIGITS = 15; // keeps parsed header values inside Number.MAX_SAFE_INTEGER
// Canonical, padded standard base64 (the library and the spec reject url-safe or unpadded forms).
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const encoder = new TextEncoder();

function encodeBase64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** Strict decode; null instead of throwing so verification can stay total. */
function decodeBase64(text: string): Uint8Array<ArrayBuffer> | null {
  if (!BASE64.test(text)) return null;
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function parseSecret(secret: unknown): Uint8Array<ArrayBuffer> | null {
  if (typeof secret !== "string" || !secret.startsWith(SECRET_PREFIX)) return null;
  const key = decodeBase64(secret.slice(SECRET_PREFIX.length));
  return key !== null && key.length > 0 ? key : null;
}

/** Compares in time that depends only on the lengths, which are public (a v1 HMAC is 32 bytes). */
function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

// A sender signs every delivery of an endpoint with the same one or two secrets: caching the
// imported keys saves an importKey per message. Bounded so many endpoints cannot grow it.
const KEY_CACHE_MAX = 32;
const keyCache = new Map<string, CryptoKey>();

async function hmacKey(secret: string, raw: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  const cached = keyCache.get(secret);
  if (cached) return cached;
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  if (keyCache.size >= KEY_CACHE_MAX) {
    const oldest = keyCache.keys().next().value;
    if (oldest !== undefined) keyCache.delete(oldest);
  }
  keyCache.set(secret, key);
  return key;
}

async function hmac(
  msgId: string,
  timestamp: number,
  body: string,
  secret: string,
  raw: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array> {
  const key = await hmacKey(secret, raw);
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`${msgId}.${timestamp}.${body}`));
  return new Uint8Array(mac);
}

function assertSignable(msgId: string, timestamp: number): void {
  if (typeof msgId !== "string" || msgId === "") throw new TypeError("msgId must be a non-empty string");
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new RangeError("timestamp must be a non-negative integer of unix seconds");
  }
}

/** Generates a secret: "whsec_" + base64 of 32 CSPRNG bytes. */
export function generateSecret(): string {
  return SECRET_PREFIX + encodeBase64(crypto.getRandomValues(new Uint8Array(SECRET_BYTES)));
}

/**
 * Raw key bytes of a "whsec_…" secret (base64 after the prefix); throws on a malformed secret.
 * @param secret - `whsec_` followed by padded standard base64 of at least one byte
 */
export function secretKey(secret: string): Uint8Array<ArrayBuffer> {
  const key = parseSecret(secret);
  if (key === null) throw new TypeError('malformed webhook secret: expected "whsec_" followed by base64');
  return key;
}

/**
 * Signs `${msgId}.${timestamp}.${body}` with HMAC-SHA256; returns "v1,<base64 sig>".
 * @param msgId - the `webhook-id` header value (stable across retries of one message)
 * @param timestamp - the `webhook-timestamp` header value, unix seconds
 * @param body - the exact request body that will be sent
 * @param secret - a `whsec_…` secret; throws if malformed
 */
export async function sign(msgId: string, timestamp: number, body: string, secret: string): Promise<string> {
  assertSignable(msgId, timestamp);
  const raw = secretKey(secret);
  return `v1,${encodeBase64(await hmac(msgId, timestamp, body, secret, raw))}`;
}

/**
 * Signs with several secrets (rotation overlap): "v1,<sigA> v1,<sigB>" (space-separated, order kept).
 * Receivers holding either secret accept the message, so a rotation needs no coordinated switch.
 * @param secrets - at least one `whsec_…` secret; throws if empty or any is malformed
 */
export async function signAll(
  msgId: string,
  timestamp: number,
  body: string,
  secrets: readonly string[],
): Promise<string> {
  if (secrets.length === 0) throw new RangeError("signAll needs at least one secret");
  const parts: string[] = [];
  for (const secret of secrets) parts.push(await sign(msgId, timestamp, body, secret));
  return parts.join(" ");
}

/** Verification options. */
export interface VerifyOptions {
  /** Maximum distance between the timestamp and now, either direction, in seconds (default 300). */
  toleranceSeconds?: number;
  /** Current time in unix seconds (default `Date.now() / 1000`); injectable for tests. */
  now?: number;
}

/**
 * Verifies a signature header value over (msgId, timestamp, body): true if ANY "v1,<sig>" entry of
 * the space-separated list matches (constant-time compare of the decoded bytes); unknown versions
 * ("v2,…", "v1a,…") are ignored; timestamps older OR newer than tolerance are rejected; malformed
 * input returns false, never throws.
 * @param signatureHeader - the `webhook-signature` header value
 * @param secret - a `whsec_…` secret; a malformed one verifies nothing
 */
export async function verify(
  msgId: string,
  timestamp: number,
  body: string,
  signatureHeader: string,
  secret: string,
  opts: VerifyOptions = {},
): Promise<boolean> {
  try {
    if (typeof msgId !== "string" || msgId === "" || typeof body !== "string" || typeof signatureHeader !== "string")
      return false;
    if (!Number.isSafeInteger(timestamp) || timestamp < 0) return false;
    const tolerance = opts.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
    const now = opts.now ?? Math.floor(Date.now() / 1000);
    if (!Number.isFinite(tolerance) || tolerance < 0 || !Number.isFinite(now)) return false;
    // Both directions: a far-future timestamp would otherwise stay replayable for as long.
    if (Math.abs(now - timestamp) > tolerance) return false;
    const raw = parseSecret(secret);
    if (raw === null) return false;
    const expected = await hmac(msgId, timestamp, body, secret, raw);
    for (const entry of signatureHeader.trim().split(/\s+/)) {
      const comma = entry.indexOf(",");
      if (comma < 0 || entry.slice(0, comma) !== "v1") continue;
      const candidate = decodeBase64(entry.slice(comma + 1));
      if (candidate !== null && timingSafeEqual(candidate, expected)) return true;
    }
    return false;
  } catch {
    return false;
  }
}

function headerValue(headers: Headers | Record<string, string | undefined>, name: string): string | undefined {
  if (typeof (headers as Headers).get === "function") return (headers as Headers).get(name) ?? undefined;
  for (const [key, value] of Object.entries(headers as Record<string, string | undefined>)) {
    if (key.toLowerCase() === name && typeof value === "string") return value;
  }
  return undefined;
}

/**
 * Receiver helper: reads `webhook-id`, `webhook-timestamp`, `webhook-signature` from a Headers
 * object or a plain record (case-insensitive), and verifies the raw body. Returns false if any
 * header is missing or the timestamp is not an integer.
 * @param rawBody - the request body exactly as received (`await request.text()`)
 * @param secret - the endpoint's `whsec_…` secret
 */
export async function verifyWebhook(
  headers: Headers | Record<string, string | undefined>,
  rawBody: string,
  secret: string,
  opts: VerifyOptions = {},
): Promise<boolean> {
  try {
    const msgId = headerValue(headers, "webhook-id")?.trim();
    const ts = headerValue(headers, "webhook-timestamp")?.trim();
    const signature = headerValue(headers, "webhook-signature");
    if (!msgId || !ts || !signature) return false;
    if (ts.length > MAX_TIMESTAMP_DIGITS || !/^\d+$/.test(ts)) return false;
    return await verify(msgId, Number(ts), rawBody, signature, secret, opts);
  } catch {
    return false;
  }
}

/** Body and message id of a seed-API payload; null when there is no string id. */
function payloadParts(payload: unknown): { body: string; msgId: string } | null {
  let body: string | undefined;
  let parsed: unknown;
  if (typeof payload === "string") {
    body = payload;
    try {
      parsed = JSON.parse(payload);
    } catch {
      return null;
    }
  } else {
    try {
      body = JSON.stringify(payload); // undefined for undefined/functions; throws on BigInt or cycles
    } catch {
      return null;
    }
    parsed = payload;
  }
  const id = typeof parsed === "object" && parsed !== null ? (parsed as { id?: unknown }).id : undefined;
  return typeof body === "string" && typeof id === "string" && id !== "" ? { body, msgId: id } : null;
}

/**
 * Sign a webhook payload (seed API): the `webhook-signature` header value for body
 * `JSON.stringify(payload)` and message id `payload.id`. A string payload is taken as the raw body
 * and its message id is read from its JSON `id`. Throws if there is no string id.
 * @param payload - payload to sign (an event envelope with an `id`, or its serialised JSON)
 * @param secret - webhook secret (`whsec_…`)
 * @param timestamp - unix timestamp in seconds, sent as `webhook-timestamp`
 * @returns signature string `v1,<base64>`
 */
export async function signPayload(payload: unknown, secret: string, timestamp: number): Promise<string> {
  const parts = payloadParts(payload);
  if (parts === null) throw new TypeError("payload must be JSON with a non-empty string id (the webhook-id)");
  return sign(parts.msgId, timestamp, parts.body, secret);
}

/**
 * Verify a webhook signature (seed API, for documentation/SDK use); same payload conventions as
 * {@link signPayload}. Never throws: a payload without a string id verifies as false.
 * @param payload - received payload (prefer the raw body string: re-serialising may change bytes)
 * @param signature - received `webhook-signature` header value
 * @param secret - webhook secret (`whsec_…`)
 * @param timestamp - received `webhook-timestamp`, unix seconds
 * @param tolerance - max age (and max clock skew into the future) in seconds, default 300
 * @returns whether any v1 signature matches within the tolerance
 */
export async function verifySignature(
  payload: unknown,
  signature: string,
  secret: string,
  timestamp: number,
  tolerance: number = DEFAULT_TOLERANCE_SECONDS,
): Promise<boolean> {
  const parts = payloadParts(payload);
  if (parts === null) return false;
  return verify(parts.msgId, timestamp, parts.body, signature, secret, { toleranceSeconds: tolerance });
}
