import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { HtmlEscapedString } from "hono/utils/html";
import type { ClientErrorStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import type { AppEnv } from "../platform/create-app.ts";
import { ValidationError } from "../platform/errors.ts";
import { zodIssuesOf } from "../platform/validation.ts";
import type { Api } from "./api.ts";
import { ApiError } from "./api.ts";
import type { Flash, PageContext } from "./layout.tsx";
import type { ConsoleSession, Section } from "./session.ts";
import { EMBED_FLASH_COOKIE, FLASH_COOKIE, sessionCookieOptions } from "./session.ts";

/**
 * Hono environment of console routes: the app's, plus the session, its API client and CSRF token;
 * `frameAncestors` is set by a page that may be framed before there is a session (the embed page).
 */
export type ConsoleEnv = {
  Bindings: AppEnv["Bindings"];
  Variables: AppEnv["Variables"] & {
    session: ConsoleSession;
    api: Api;
    csrf: string;
    frameAncestors?: readonly string[];
  };
};

/** A console request context. */
export type ConsoleContext = Context<ConsoleEnv>;

/**
 * Content-Security-Policy of every console page: scripts and styles from this origin's files only
 * (no inline script or style at all), requests to this origin only, no plugins, no `<base>`;
 * framing only by the ancestors a scoped link names (else none).
 */
export function consoleCsp(frameAncestors: readonly string[] = []): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "object-src 'none'",
    `frame-ancestors ${frameAncestors.length ? frameAncestors.join(" ") : "'none'"}`,
  ].join("; ");
}

/** The flash cookie of the request's session: an embed session's is partitioned, like its session. */
const flashCookie = (c: ConsoleContext) => {
  const embedded = c.var.session?.embedded === true;
  return { name: embedded ? EMBED_FLASH_COOKIE : FLASH_COOKIE, options: sessionCookieOptions(60, embedded) };
};

/** The page context of a console request (reads, and clears, the flash cookie). */
export function pageContext(c: ConsoleContext, section: PageContext["section"]): PageContext {
  let flash: Flash | undefined;
  const { name, options } = flashCookie(c);
  const raw = getCookie(c, name);
  if (raw) {
    try {
      flash = JSON.parse(raw) as Flash;
    } catch {
      flash = undefined;
    }
    // Deleted with the attributes it was set with (a partitioned cookie is deleted only as such).
    deleteCookie(c, name, options);
  }
  return { session: c.var.session, csrf: c.var.csrf, section, ...(flash ? { flash } : {}) };
}

/** Renders a page (doctype + JSX). */
export async function render(
  c: ConsoleContext,
  node: HtmlEscapedString | Promise<HtmlEscapedString>,
  status: 200 | ClientErrorStatusCode = 200,
) {
  c.header("cache-control", "no-store");
  return c.html(`<!doctype html>${await node}`, status);
}

/** Redirects after an action (303: the browser follows with a GET), leaving a flash message. */
export function redirectWith(c: ConsoleContext, location: string, flash: Flash) {
  // setCookie percent-encodes the value (and getCookie decodes it).
  const { name, options } = flashCookie(c);
  setCookie(c, name, JSON.stringify(flash), options);
  return c.redirect(location, 303);
}

/** Parses a submitted form with a zod schema (400 `validation_error` envelope otherwise). */
export async function readForm<T extends z.ZodType>(c: ConsoleContext, schema: T): Promise<z.infer<T>> {
  const body = await c.req.parseBody({ all: true });
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new ValidationError("form validation failed", zodIssuesOf(parsed.error, "form"));
  return parsed.data;
}

/**
 * Runs an action and redirects back with its outcome: the API's error (code and message) is shown
 * on the page it came from, next to `field` when given; anything else propagates.
 */
export async function act(
  c: ConsoleContext,
  back: string,
  fn: () => Promise<{ message: string; location?: string }>,
  field?: string,
) {
  try {
    const { message, location } = await fn();
    // Landing elsewhere (e.g. the new endpoint's page), the message is the page's, not a form's.
    return redirectWith(c, location ?? back, { kind: "ok", message, ...(field && !location ? { field } : {}) });
  } catch (err) {
    if (err instanceof ApiError || err instanceof ValidationError) {
      const code = err instanceof ApiError ? err.code : err.code;
      const detail =
        err instanceof ValidationError
          ? (err.details as { issues?: { path: string; message: string }[] } | undefined)?.issues
              ?.map((i) => `${i.path}: ${i.message}`)
              .join("; ")
          : undefined;
      return redirectWith(c, back, {
        kind: "error",
        code,
        message: detail ? `${err.message} (${detail})` : err.message,
        ...(field ? { field } : {}),
      });
    }
    throw err;
  }
}

/** The console section a path belongs to. */
export function sectionOf(path: string): Section | undefined {
  const m = path.match(/^\/console\/(webhooks|usage|teams)(\/|$)/);
  return m?.[1] as Section | undefined;
}
