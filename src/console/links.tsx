/** @jsxImportSource hono/jsx */
import { createRoute, z } from "@hono/zod-openapi";
import { Hono } from "hono";
import { sign } from "hono/jwt";
import type { Principal, Scope } from "../platform/auth.ts";
import { hasScope } from "../platform/auth.ts";
import { createRouter } from "../platform/create-app.ts";
import { ForbiddenError } from "../platform/errors.ts";
import { authErrors, jsonBody, jsonResponse } from "../platform/openapi.ts";
import { deriveToken } from "../platform/secret-token.ts";
import { orgPath } from "./api.ts";
import type { ConsoleEnv } from "./kit.ts";
import { act, pageContext, readForm, render } from "./kit.ts";
import type { PageContext } from "./layout.tsx";
import { Form, FlashMessage, Layout, fmtTime } from "./layout.tsx";
import type { ConsoleClaim } from "./session.ts";
import { sections } from "./session.ts";

/**
 * Scoped console links (Svix's magic links, without its cloud): an organization mints a
 * short-lived token that opens only some console sections, read-only or read-write, for its own
 * customers or an iframe. The token is an ordinary platform JWT whose scopes are only those
 * sections' — so the API itself confines it — plus a console claim the console enforces too.
 *
 * A link naming `frameAncestors` also gets an `embedUrl` for a cross-site iframe:
 * `/console/embed?frame=<origins>&exp=<expiry>&sig=<HMAC>#token=<token>`. The token stays in the
 * fragment, which never reaches a server; the origins and expiry are signed so that the bootstrap
 * page (which must answer before it can read the token) is framable by exactly the link's origins.
 */

const MAX_TTL_SECONDS = 3600;

/** An origin a link may be framed by: `scheme://host[:port]`, no path, nothing that ends a CSP source. */
export const ORIGIN_PATTERN = /^https?:\/\/[^/\s;,']+$/;

/** Body of `POST /v1/orgs/{org}/console-links`. */
export const consoleLinkRequestSchema = z
  .object({
    sections: z
      .array(z.enum(sections))
      .min(1)
      .max(3)
      .transform((s) => [...new Set(s)]),
    access: z.enum(["read", "write"]).default("read"),
    ttlSeconds: z.number().int().min(60).max(MAX_TTL_SECONDS).default(900),
    frameAncestors: z
      .array(z.url().regex(ORIGIN_PATTERN, "an origin: scheme://host[:port], no path"))
      .max(10)
      .default([])
      .openapi({ description: "origins allowed to embed the console in an iframe (CSP frame-ancestors)" }),
  })
  .strict()
  .openapi("ConsoleLinkRequest");
/** A link request (input form). */
export type ConsoleLinkRequest = z.input<typeof consoleLinkRequestSchema>;

/** A minted link. */
export const consoleLinkSchema = z
  .object({
    url: z.string().openapi({ description: "opens the console signed in; the token is in the fragment" }),
    embedUrl: z.string().optional().openapi({
      description: "with frameAncestors only: the URL for an iframe on those origins, cross-site included",
    }),
    token: z.string(),
    expiresAt: z.string(),
    scopes: z.array(z.string()),
    sections: z.array(z.enum(sections)),
    access: z.enum(["read", "write"]),
  })
  .openapi("ConsoleLink");
/** A minted link. */
export type ConsoleLink = z.infer<typeof consoleLinkSchema>;

/** The API scopes a scoped link carries: the sections' read scopes, and write ones for write access. */
export function linkScopes(claim: Pick<ConsoleClaim, "sections" | "access">): Scope[] {
  return claim.sections.flatMap((s) => [`${s}:read`, ...(claim.access === "write" ? [`${s}:write`] : [])] as Scope[]);
}

/**
 * The signature of an embed URL's frame origins and expiry (HMAC under `TOKEN_SECRET`), so the
 * bootstrap page frames only for origins a link was minted with, and only until it expires.
 */
export function embedSignature(tokenSecret: string, frameAncestors: readonly string[], exp: number): Promise<string> {
  return deriveToken(tokenSecret, "console-embed-frame", `${exp} ${frameAncestors.join(" ")}`);
}

/** The `embedUrl` of a minted link that names frame ancestors (else undefined). */
export async function embedUrlOf(
  link: Pick<ConsoleLink, "token" | "expiresAt">,
  frameAncestors: readonly string[],
  tokenSecret: string,
  origin: string,
): Promise<string | undefined> {
  if (!frameAncestors.length) return undefined;
  const exp = Math.floor(Date.parse(link.expiresAt) / 1000);
  const sig = await embedSignature(tokenSecret, frameAncestors, exp);
  const query = new URLSearchParams({ frame: frameAncestors.join(" "), exp: String(exp), sig });
  return `${origin}/console/embed?${query}#token=${link.token}`;
}

/**
 * Mints a scoped link for `principal`: never stronger than the minter (each scope must be held)
 * and never outliving the minter's own token.
 * @throws {ForbiddenError} when the minter lacks a scope the link would carry
 */
export async function mintConsoleLink(opts: {
  principal: Principal;
  minterExp: number;
  request: z.infer<typeof consoleLinkRequestSchema>;
  auth: { secret: string; issuer: string; audience: string };
  origin: string;
  now?: number;
}): Promise<ConsoleLink> {
  const { principal, request } = opts;
  const scopes = linkScopes(request);
  for (const s of scopes) if (!hasScope(principal, s)) throw new ForbiddenError(`token lacks scope ${s} to grant it`);
  const iat = Math.floor((opts.now ?? Date.now()) / 1000);
  const exp = Math.min(iat + request.ttlSeconds, opts.minterExp);
  const claim: ConsoleClaim = {
    sections: request.sections,
    access: request.access,
    frameAncestors: request.frameAncestors,
  };
  const token = await sign(
    {
      sub: principal.userId,
      org: principal.organizationId,
      scope: scopes.join(" "),
      cmc: claim,
      iss: opts.auth.issuer,
      aud: opts.auth.audience,
      iat,
      exp,
    },
    opts.auth.secret,
    "HS256",
  );
  return {
    url: `${opts.origin}/console/login#token=${token}`,
    token,
    expiresAt: new Date(exp * 1000).toISOString(),
    scopes,
    sections: request.sections,
    access: request.access,
  };
}

const mintRoute = createRoute({
  method: "post",
  path: "/v1/orgs/{organizationId}/console-links",
  tags: ["console"],
  summary: "Mint a short-lived console link scoped to some sections (read or write), e.g. for an iframe",
  request: {
    params: z.object({ organizationId: z.string().min(1).max(200) }),
    body: jsonBody(consoleLinkRequestSchema),
  },
  responses: { 201: jsonResponse(consoleLinkSchema, "The link"), ...authErrors },
});

/** `POST /v1/orgs/{org}/console-links`. */
export const consoleLinkRoutes = createRouter().openapi(mintRoute, async (c) => {
  const auth = c.var.platform.config.auth;
  // The minter's own expiry, read from its (already verified) token.
  const raw = c.req.header("authorization")!.replace(/^Bearer\s+/i, "");
  const payload = JSON.parse(atob(raw.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/"))) as { exp: number };
  const request = c.req.valid("json");
  const origin = new URL(c.req.url).origin;
  const link = await mintConsoleLink({ principal: c.var.principal, minterExp: payload.exp, request, auth, origin });
  const embedUrl = await embedUrlOf(link, request.frameAncestors, c.var.platform.config.tokenSecret, origin);
  return c.json({ ...link, ...(embedUrl ? { embedUrl } : {}) }, 201);
});

function LinksPage(props: { ctx: PageContext; link?: ConsoleLink }) {
  const { ctx, link } = props;
  return (
    <Layout ctx={ctx} title="Embeddable console links">
      <p>
        A link signs its holder in to only the sections you pick, read-only or read-write, for at most an hour — for
        your own customers, or an iframe on the origins you list.
      </p>
      <FlashMessage flash={ctx.flash} field="mint" />
      {link ? (
        <section aria-labelledby="link-h">
          <h2 id="link-h">Your link</h2>
          <p>
            Expires {fmtTime(link.expiresAt)}; scopes <code>{link.scopes.join(" ")}</code>.
          </p>
          <label for="link-url">Link</label>
          <textarea id="link-url" readonly rows={4}>
            {link.url}
          </textarea>
          {link.embedUrl ? (
            <>
              <label for="embed-url">Embed URL (the src of an iframe on the origins you listed, any site)</label>
              <textarea id="embed-url" readonly rows={5}>
                {link.embedUrl}
              </textarea>
            </>
          ) : null}
        </section>
      ) : null}
      <Form ctx={ctx} action="/console/links" label="Mint a link">
        <fieldset>
          <legend>Sections</legend>
          {sections.map((s) => (
            <label class="check">
              <input type="checkbox" name="sections" value={s} checked={s === "webhooks"} /> {s}
            </label>
          ))}
        </fieldset>
        <fieldset>
          <legend>Access</legend>
          <label class="check">
            <input type="radio" name="access" value="read" checked /> read only
          </label>
          <label class="check">
            <input type="radio" name="access" value="write" /> read and write
          </label>
        </fieldset>
        <label for="ttl">Lifetime (minutes, 1–60)</label>
        <input id="ttl" name="ttlMinutes" inputmode="numeric" value="15" />
        <label for="frames">Origins that may embed it (one per line, e.g. https://app.example.com)</label>
        <textarea id="frames" name="frameAncestors" rows={2} />
        <button type="submit">Mint link</button>
      </Form>
    </Layout>
  );
}

const mintForm = z.object({
  _csrf: z.string(),
  sections: z.union([z.enum(sections), z.array(z.enum(sections))]).transform((v) => (Array.isArray(v) ? v : [v])),
  access: z.enum(["read", "write"]),
  ttlMinutes: z.coerce.number().int().min(1).max(60),
  frameAncestors: z.string().max(4000).default(""),
});

/** The console page that mints links (through the API route above). */
export const linkPages = new Hono<ConsoleEnv>()
  .get("/", (c) => render(c, <LinksPage ctx={pageContext(c, "links")} />))
  .post("/", async (c) => {
    const f = await readForm(c, mintForm);
    const body = {
      sections: f.sections,
      access: f.access,
      ttlSeconds: f.ttlMinutes * 60,
      frameAncestors: f.frameAncestors.split(/\s+/).filter(Boolean),
    };
    const path = `${orgPath(c.var.session.principal.organizationId)}/console-links`;
    const minted = await c.var.api.send<ConsoleLink>("POST", path, body).catch((err: unknown) => err);
    // A refusal goes back to the form; a link is rendered once, never put in a cookie or a URL.
    if (!(minted as ConsoleLink).url) return act(c, "/console/links", () => Promise.reject(minted), "mint");
    const ctx = { ...pageContext(c, "links"), flash: { kind: "ok", message: "Link minted.", field: "mint" } as const };
    return render(c, <LinksPage ctx={ctx} link={minted as ConsoleLink} />);
  });
