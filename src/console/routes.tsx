/** @jsxImportSource hono/jsx */
import { Hono } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { z } from "zod";
import { getConfig } from "../platform/config.ts";
import type { AppEnv } from "../platform/create-app.ts";
import { handleError } from "../platform/create-app.ts";
import { ForbiddenError, UnauthorizedError } from "../platform/errors.ts";
import type { AppFetch } from "./api.ts";
import { ApiError, createApi } from "./api.ts";
import type { ConsoleEnv } from "./kit.ts";
import { consoleCsp, readForm, render, sectionOf } from "./kit.ts";
import { EmbedPage, LoginPage } from "./layout.tsx";
import { embedSignature, linkPages, ORIGIN_PATTERN } from "./links.tsx";
import type { ConsoleSession } from "./session.ts";
import {
  allowsSection,
  COOKIE_PATH,
  csrfToken,
  EMBED_NONCE_COOKIE,
  EMBED_SESSION_COOKIE,
  isFrameNavigation,
  offersSection,
  openSession,
  SESSION_COOKIE,
  sameString,
  sections,
  sessionCookieOptions,
  sessionTokenOf,
} from "./session.ts";
import { teamPages } from "./teams.tsx";
import { usagePages } from "./usage.tsx";
import { webhookPages } from "./webhooks.tsx";

/** Cookie of the sign-in form's double-submit CSRF nonce (there is no session to bind to yet). */
const LOGIN_NONCE_COOKIE = "cm_console_login";

const loginForm = z.object({ _csrf: z.string().min(1).max(200), token: z.string().trim().min(1).max(8192) });

/** Query of an embed URL: the link's frame origins (space-separated), its expiry and their signature. */
const embedQuery = z.object({
  frame: z.string().min(1).max(4000),
  exp: z.coerce.number().int().positive(),
  sig: z.string().min(1).max(100),
});

/** The frame origins of an embed URL's query when its signature holds (else undefined). */
async function signedFrame(query: Record<string, string>, tokenSecret: string) {
  const q = embedQuery.safeParse(query);
  if (!q.success) return undefined;
  const frame = q.data.frame.split(" ").filter(Boolean);
  if (!frame.length || frame.length > 10 || !frame.every((o) => ORIGIN_PATTERN.test(o))) return undefined;
  const expected = await embedSignature(tokenSecret, frame, q.data.exp);
  return sameString(q.data.sig, expected) ? { frame, exp: q.data.exp } : undefined;
}

/** Where a session lands after sign-in: the console's first section it may open. */
const home = (s: ConsoleSession) => `/console/${sections.find((x) => offersSection(s, x)) ?? "webhooks"}`;

/**
 * Same-origin check for mutations, before the CSRF token is even looked at. Browsers send
 * `Sec-Fetch-Site` on every request: only `same-origin` passes. Without it (older clients, scripts),
 * an `Origin` must name this host. (`req.url` is not compared: a proxy, like wrangler dev's, may
 * rewrite its host.)
 */
function sameOrigin(req: Request): boolean {
  const site = req.headers.get("sec-fetch-site");
  if (site) return site === "same-origin";
  const origin = req.headers.get("origin");
  if (!origin || origin === "null") return origin === null;
  const host = new URL(origin).host;
  return host === req.headers.get("host") || host === new URL(req.url).host;
}

/** A refusal of the console itself (403 envelope). */
const forbidden = (message: string) => new ForbiddenError(message);

/**
 * The console at `/console`: server-rendered pages (Hono JSX) whose every read and action is a call
 * to the app's own `/v1` API (`appFetch`) with the session's token.
 */
export function consoleRoutes(appFetch: AppFetch) {
  const app = new Hono<ConsoleEnv>();

  // Security headers on everything the console answers, errors included.
  app.use("/console/*", async (c, next) => {
    await next();
    // Framable only by a scoped link's own origins (the embed page's are signed); else by nobody.
    const frame = c.var.frameAncestors ?? c.var.session?.scoped?.frameAncestors ?? [];
    c.res.headers.set("content-security-policy", consoleCsp(frame));
    c.res.headers.set("x-content-type-options", "nosniff");
    c.res.headers.set("referrer-policy", "no-referrer");
    if (!frame.length) c.res.headers.set("x-frame-options", "DENY");
  });

  app.get("/console/login", (c) => {
    const nonce = crypto.randomUUID();
    setCookie(c, LOGIN_NONCE_COOKIE, nonce, sessionCookieOptions(600));
    return render(c, <LoginPage csrf={nonce} />);
  });

  app.post("/console/login", async (c) => {
    if (!sameOrigin(c.req.raw)) throw forbidden("cross-site sign-in refused");
    const f = await readForm(c, loginForm);
    const nonce = getCookie(c, LOGIN_NONCE_COOKIE);
    if (!nonce || !sameString(nonce, f._csrf)) throw forbidden("CSRF token missing or invalid");
    let session: ConsoleSession;
    try {
      session = await openSession(f.token, getConfig(c.env).auth);
    } catch (err) {
      if (!(err instanceof UnauthorizedError) && !(err instanceof z.ZodError)) throw err;
      const fresh = crypto.randomUUID();
      setCookie(c, LOGIN_NONCE_COOKIE, fresh, sessionCookieOptions(600));
      return render(
        c,
        <LoginPage csrf={fresh} error={err instanceof UnauthorizedError ? err.message : "invalid console link"} />,
        400,
      );
    }
    deleteCookie(c, LOGIN_NONCE_COOKIE, { path: COOKIE_PATH, secure: true });
    setCookie(c, SESSION_COOKIE, f.token, sessionCookieOptions(session.exp - Date.now() / 1000));
    return c.redirect(home(session), 303);
  });

  // The embed URL's page, in the frame: framable by the link's signed origins before the token (in
  // the fragment) is known; it posts the token with a nonce, as the sign-in form does.
  app.get("/console/embed", async (c) => {
    const signed = await signedFrame(c.req.query(), getConfig(c.env).tokenSecret);
    if (!signed) throw forbidden("this embed link is not signed for these origins");
    c.set("frameAncestors", signed.frame);
    if (signed.exp <= Date.now() / 1000)
      return render(c, <EmbedPage error="This console link has expired: ask for a new one." />, 403);
    if (!isFrameNavigation(c.req.raw)) {
      const message = `This link opens the console inside a page of ${signed.frame.join(", ")}.`;
      return render(c, <EmbedPage error={message} />, 400);
    }
    const nonce = crypto.randomUUID();
    setCookie(c, EMBED_NONCE_COOKIE, nonce, sessionCookieOptions(600, true));
    return render(c, <EmbedPage csrf={nonce} />);
  });

  app.post("/console/embed", async (c) => {
    if (!sameOrigin(c.req.raw)) throw forbidden("cross-site sign-in refused");
    // Only a frame: at the top level the partitioned cookie would be the console's own site's, sent
    // to every visit there (and a top-level visit has the ordinary sign-in).
    if (!isFrameNavigation(c.req.raw)) throw forbidden("an embed session opens only inside a frame");
    const f = await readForm(c, loginForm);
    const nonce = getCookie(c, EMBED_NONCE_COOKIE);
    if (!nonce || !sameString(nonce, f._csrf)) throw forbidden("CSRF token missing or invalid");
    const session = await openSession(f.token, getConfig(c.env).auth).catch((err: unknown) => {
      throw err instanceof z.ZodError ? new UnauthorizedError("invalid console link") : err;
    });
    if (!session.scoped?.frameAncestors.length) throw forbidden("this console link names no origins to embed it");
    deleteCookie(c, EMBED_NONCE_COOKIE, sessionCookieOptions(0, true));
    // Its own cookie: the first-party session, if any, is left as it is.
    setCookie(c, EMBED_SESSION_COOKIE, f.token, sessionCookieOptions(session.exp - Date.now() / 1000, true));
    return c.redirect(home(session), 303);
  });

  // Every other console route needs a session; mutations need its CSRF token.
  const guarded = new Hono<ConsoleEnv>();
  guarded.use("*", async (c, next) => {
    const picked = sessionTokenOf(c.req.raw, {
      first: getCookie(c, SESSION_COOKIE),
      embed: getCookie(c, EMBED_SESSION_COOKIE),
    });
    const token = picked?.token;
    const config = getConfig(c.env);
    let session: ConsoleSession | undefined;
    if (token) session = await openSession(token, config.auth).catch(() => undefined);
    if (session && picked?.embedded) {
      // Only a link with frame ancestors ever gets this cookie; anything else in it is no session.
      session = session.scoped?.frameAncestors.length ? { ...session, embedded: true } : undefined;
    }
    if (!session) {
      if (c.req.method === "GET") return c.redirect("/console/login", 303);
      throw new UnauthorizedError("console session missing or expired");
    }
    // A refusal below is framable by the link's origins, like its pages: the frame shows why.
    c.set("frameAncestors", session.scoped?.frameAncestors ?? []);
    const csrf = await csrfToken(config.tokenSecret, token!);
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      if (!sameOrigin(c.req.raw)) throw forbidden("cross-site request refused");
      const sent =
        c.req.header("x-csrf-token") ??
        (c.req.header("content-type")?.startsWith("application/x-www-form-urlencoded") ||
        c.req.header("content-type")?.startsWith("multipart/form-data")
          ? String([(await c.req.parseBody({ all: true }))._csrf].flat()[0] ?? "")
          : "");
      if (!sameString(sent, csrf)) throw forbidden("CSRF token missing or invalid");
    }
    const section = sectionOf(c.req.path);
    if (section && !allowsSection(session, section)) throw forbidden(`this console link does not open ${section}`);
    if (c.req.path.startsWith("/console/links") && session.scoped) throw forbidden("a scoped link cannot mint links");
    if (session.scoped?.access === "read" && c.req.method === "POST" && c.req.path !== "/console/logout")
      throw forbidden("this console link is read-only");
    c.set("session", session);
    c.set("csrf", csrf);
    c.set(
      "api",
      createApi({
        fetch: appFetch,
        env: c.env,
        ctx: c.executionCtx,
        origin: new URL(c.req.url).origin,
        token: token!,
        requestId: c.var.requestId,
      }),
    );
    await next();
  });
  guarded.get("/", (c) => c.redirect(home(c.var.session), 303));
  guarded.post("/logout", (c) => {
    if (c.var.session.embedded) {
      // The sign-in page may not be framed: say it here, in a page the link's origins may frame.
      deleteCookie(c, EMBED_SESSION_COOKIE, sessionCookieOptions(0, true));
      return render(c, <EmbedPage message="You are signed out of the console." />);
    }
    deleteCookie(c, SESSION_COOKIE, { path: COOKIE_PATH, secure: true });
    return c.redirect("/console/login", 303);
  });
  guarded.route("/webhooks", webhookPages);
  guarded.route("/usage", usagePages);
  guarded.route("/teams", teamPages);
  guarded.route("/links", linkPages);

  app.route("/console", guarded);

  // The API's refusals (403 of a scope, 404 of another organization) keep their status and envelope.
  app.onError((err, c) => {
    if (err instanceof ApiError) {
      return c.json({ error: { code: err.code, message: err.message, requestId: c.var.requestId } }, err.status as 400);
    }
    return handleError(err, c as unknown as Parameters<typeof handleError>[1]);
  });
  return app as unknown as Hono<AppEnv>;
}
