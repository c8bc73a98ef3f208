import { verify } from "hono/jwt";
import { z } from "zod";
import type { Principal, Scope } from "../platform/auth.ts";
import { hasScope, verifyToken } from "../platform/auth.ts";
import type { Config } from "../platform/config.ts";
import { deriveToken } from "../platform/secret-token.ts";

/**
 * Console sessions. The session *is* the caller's bearer token, kept in an `HttpOnly`, `Secure`,
 * `SameSite=Strict` cookie scoped to `/console`: the console calls the `/v1` API with it, so every
 * page and action is authorized exactly as a client's request would be, and there is no session
 * store to keep. CSRF tokens are derived from the cookie (HMAC), so they need no storage either.
 */

/** Name of the session cookie. */
export const SESSION_COOKIE = "cm_console";
/** Name of the one-shot flash cookie (the outcome of the last action, shown once). */
export const FLASH_COOKIE = "cm_console_flash";
/** Path both cookies are scoped to: the API never sees them. */
export const COOKIE_PATH = "/console";

/** Console sections; a scoped (embeddable) link names the ones it opens. */
export const sections = ["webhooks", "usage", "teams"] as const;
/** One of {@link sections}. */
export type Section = (typeof sections)[number];

/** The console claim of a scoped link's token: which sections, read or write, which frame ancestors. */
export const consoleClaimSchema = z.object({
  sections: z.array(z.enum(sections)).min(1),
  access: z.enum(["read", "write"]),
  frameAncestors: z.array(z.string()).max(10).default([]),
});
/** The `cmc` claim of a scoped console token. */
export type ConsoleClaim = z.infer<typeof consoleClaimSchema>;

/** A signed-in console user: the token, its principal, and the link's restrictions when scoped. */
export interface ConsoleSession {
  /** The bearer token the console calls the API with. */
  token: string;
  principal: Principal;
  /** Present for scoped (embeddable) links only. */
  scoped?: ConsoleClaim;
  /** Seconds since the epoch when the token expires. */
  exp: number;
}

/**
 * Verifies a token for the console: the same verification as the API's, plus the console claim of
 * scoped links (which the API ignores: its scopes already confine such a token).
 */
export async function openSession(token: string, auth: Config["auth"]): Promise<ConsoleSession> {
  const principal = await verifyToken(token, auth);
  const payload = (await verify(token, auth.secret, { alg: "HS256", iss: auth.issuer, aud: auth.audience })) as {
    exp: number;
    cmc?: unknown;
  };
  const claim = payload.cmc === undefined ? undefined : consoleClaimSchema.parse(payload.cmc);
  return { token, principal, exp: payload.exp, ...(claim ? { scoped: claim } : {}) };
}

/** Whether a session may open a section (unscoped sessions: every section; the API still decides). */
export function allowsSection(session: ConsoleSession, section: Section): boolean {
  return !session.scoped || session.scoped.sections.includes(section);
}

/**
 * Whether the console offers a section (navigation, landing page): the link allows it and the
 * token can read it. Only presentation: the API decides every request on its own.
 */
export function offersSection(session: ConsoleSession, section: Section): boolean {
  return allowsSection(session, section) && hasScope(session.principal, `${section}:read` as Scope);
}

/** The CSRF token bound to a session cookie value (synchronizer token, derived, never stored). */
export function csrfToken(tokenSecret: string, sessionToken: string): Promise<string> {
  return deriveToken(tokenSecret, "console-csrf", sessionToken);
}

/** Constant-time comparison of two strings. */
export function sameString(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Attributes of the session cookie: the browser keeps it from scripts, other sites and plain HTTP. */
export function sessionCookieOptions(maxAgeSeconds: number) {
  return {
    path: COOKIE_PATH,
    httpOnly: true,
    secure: true,
    sameSite: "Strict",
    maxAge: Math.max(0, Math.floor(maxAgeSeconds)),
  } as const;
}
