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
 *
 * A scoped link signed in inside a cross-site iframe (an *embed* session) gets a cookie of its own,
 * `SameSite=None; Partitioned` (CHIPS): browsers send no `Strict` cookie to a cross-site frame, and
 * a partitioned cookie is stored per top-level site, so it works where third-party cookies are
 * blocked and never serves the console opened at the top level (see {@link sessionTokenOf}).
 */

/** Name of the session cookie. */
export const SESSION_COOKIE = "cm_console";
/** Name of the one-shot flash cookie (the outcome of the last action, shown once). */
export const FLASH_COOKIE = "cm_console_flash";
/** Path every console cookie is scoped to: the API never sees them. */
export const COOKIE_PATH = "/console";
/** Name of an embed session's cookie: another name, so it can never replace the first-party one. */
export const EMBED_SESSION_COOKIE = "cm_console_embed";
/** Name of an embed session's flash cookie. */
export const EMBED_FLASH_COOKIE = "cm_console_embed_flash";
/** Name of the embed sign-in's double-submit nonce cookie. */
export const EMBED_NONCE_COOKIE = "cm_console_embed_login";
/** Header a console script sends from an embed session's page (a fetch says nothing of its frame). */
export const EMBED_SESSION_HEADER = "x-console-session";

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
  /** Set for an embed session (signed in inside a frame, in the partitioned cookie). */
  embedded?: true;
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

/**
 * Attributes of a console cookie: the browser keeps it from scripts, other sites and plain HTTP.
 * An embed session's (`embedded`) is `SameSite=None`, or a cross-site frame would never get it back,
 * and `Partitioned`, so the browser keeps it under the embedding site only.
 */
export function sessionCookieOptions(maxAgeSeconds: number, embedded = false) {
  const maxAge = Math.max(0, Math.floor(maxAgeSeconds));
  return embedded
    ? ({ path: COOKIE_PATH, httpOnly: true, secure: true, sameSite: "None", partitioned: true, maxAge } as const)
    : ({ path: COOKIE_PATH, httpOnly: true, secure: true, sameSite: "Strict", maxAge } as const);
}

/** Whether a request is a frame's navigation (`Sec-Fetch-Dest: iframe`, or `frame` of a frameset). */
export function isFrameNavigation(req: Request): boolean {
  const dest = req.headers.get("sec-fetch-dest");
  return dest === "iframe" || dest === "frame";
}

/**
 * Which session cookie a request is served with. A top-level navigation (and any request not said
 * to come from an embed) uses the first-party cookie only, so an embed cookie — which the browser
 * sends to the top level too when the embedding page was same-site — never stands in for, or
 * overrides, the first-party session. A frame's navigation uses its embed cookie when it has one; a
 * script's request uses it when its page says so ({@link EMBED_SESSION_HEADER}).
 */
export function sessionTokenOf(
  req: Request,
  cookies: { first?: string | undefined; embed?: string | undefined },
): { token: string; embedded: boolean } | undefined {
  const framed = isFrameNavigation(req);
  const fromEmbedPage = !framed && req.headers.get(EMBED_SESSION_HEADER) === "embed";
  if ((framed || fromEmbedPage) && cookies.embed) return { token: cookies.embed, embedded: true };
  // An embed page's script never falls back to the first-party session. A frame without an embed
  // cookie may be a same-site page framing the first-party session: its pages then carry
  // `frame-ancestors 'none'` (or its own link's list), and the browser refuses or allows the frame.
  if (fromEmbedPage || !cookies.first) return undefined;
  return { token: cookies.first, embedded: false };
}
