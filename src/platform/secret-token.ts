/**
 * Tokens that are derived, never stored: `token = base64url(HMAC-SHA256(secret, domain ‖ subject ‖
 * nonce))`. The database keeps the subject (e.g. an invitation id), a random nonce (new on every
 * re-issue, which revokes the previous token) and the token's SHA-256 for lookups; the secret comes
 * from configuration. A database leak therefore reveals no usable token, and the e-mail outbox
 * renders the token only when it sends the message.
 */

// Domain separation: no other HMAC input of ours (JWTs sign "header.payload") starts like this.
const DOMAIN = "cloudmatrix-token/v1\u0000";

const toBase64Url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");

/** A fresh nonce (128 bits, hex). */
export function newNonce(): string {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The token of `subject` and `nonce` under `secret`: 43 base64url characters (256 bits). */
export async function deriveToken(secret: string, subject: string, nonce: string): Promise<string> {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const mac = await crypto.subtle.sign("HMAC", key, enc.encode(`${DOMAIN}${subject}\u0000${nonce}`));
  return toBase64Url(new Uint8Array(mac));
}

/** Hex SHA-256 of a token (what the database stores and looks it up by). */
export async function hashToken(token: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether a string can be a token we issued (43 base64url characters). */
export const looksLikeToken = (t: string) => /^[A-Za-z0-9_-]{43}$/.test(t);
