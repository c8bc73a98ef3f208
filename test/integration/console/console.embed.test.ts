import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { embedSignature } from "../../../src/console/links.tsx";
import { getConfig } from "../../../src/platform/config.ts";
import { api, tokenFor } from "../support/api.ts";
import { ORIGIN, cookie, fetchWorker } from "../support/console.ts";

// Cross-site embedding of scoped links in workerd: the embed sign-in (a frame only, a partitioned
// SameSite=None cookie of its own), which cookie a request is served with, CSRF on embed sessions,
// and what is refused framing. The browser side: test/tooling/console.test.ts.

const newOrg = () => `org_console_${crypto.randomUUID().slice(0, 8)}`;
const PORTAL = "https://portal.example";
type Envelope = { error: { code: string; message: string } };
type Link = { url: string; token: string; expiresAt: string; embedUrl?: string };

const mint = async (org: string, body: unknown): Promise<Link> => {
  const res = await api(`/v1/orgs/${org}/console-links`, { org, scopes: ["admin"], body });
  expect(res.status).toBe(201);
  return (await res.json()) as Link;
};

const webhookCount = async (org: string) =>
  ((await (await api(`/v1/orgs/${org}/webhooks`, { org, scopes: ["admin"] })).json()) as { total: number }).total;

/** Headers of a navigation inside an iframe (what Chromium sends for a frame's own requests). */
const inFrame = { "sec-fetch-dest": "iframe", "sec-fetch-site": "same-origin" };
/** Headers of a top-level navigation. */
const topLevel = { "sec-fetch-dest": "document", "sec-fetch-site": "same-origin" };

/** Path and query of an embed URL (the fragment stays in the browser). */
const embedPath = (link: Link) => {
  const u = new URL(link.embedUrl!);
  return `${u.pathname}${u.search}`;
};

/** The embed bootstrap page as a frame loads it: its nonce (a cookie, and the form's field). */
async function bootstrap(link: Link): Promise<string> {
  const page = await fetchWorker(embedPath(link), { headers: { ...inFrame, "sec-fetch-site": "cross-site" } });
  expect(page.status).toBe(200);
  return cookie(page, "cm_console_embed_login")!.value;
}

/** The frame's sign-in post (the bootstrap submits it with the fragment's token); `field` is the form's nonce. */
async function embedPost(token: string, nonce: string, headers: Record<string, string> = inFrame, field = nonce) {
  return fetchWorker("/console/embed", {
    method: "POST",
    headers: {
      cookie: `cm_console_embed_login=${nonce}`,
      "content-type": "application/x-www-form-urlencoded",
      ...headers,
    },
    body: new URLSearchParams({ _csrf: field, token }),
  });
}

/** Signs a frame in with `link`; returns its cookie header (`cm_console_embed=…`). */
async function embedSignIn(link: Link): Promise<string> {
  const res = await embedPost(link.token, await bootstrap(link));
  expect(res.status).toBe(303);
  return `cm_console_embed=${cookie(res, "cm_console_embed")!.value}`;
}

/** The first-party sign-in, as test/integration/support/console.ts does it. */
async function firstParty(token: string): Promise<string> {
  const page = await fetchWorker("/console/login");
  const nonce = cookie(page, "cm_console_login")!.value;
  const res = await fetchWorker("/console/login", {
    method: "POST",
    headers: { cookie: `cm_console_login=${nonce}`, "content-type": "application/x-www-form-urlencoded", ...topLevel },
    body: new URLSearchParams({ _csrf: nonce, token }),
  });
  expect(res.status).toBe(303);
  return `cm_console=${cookie(res, "cm_console")!.value}`;
}

const csrfIn = async (session: string, headers: Record<string, string>, path = "/console/webhooks") => {
  const html = await (await fetchWorker(path, { headers: { cookie: session, ...headers } })).text();
  return html.match(/<meta name="csrf-token" content="([^"]+)"/)![1]!;
};

const post = (session: string, path: string, body: Record<string, string>, headers: Record<string, string>) =>
  fetchWorker(path, {
    method: "POST",
    headers: { cookie: session, "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams(body),
  });

describe("embedding a scoped link in a cross-site iframe", () => {
  it("mints an embed URL only for a link that names frame ancestors; its token stays in the fragment", async () => {
    const org = newOrg();
    const framed = await mint(org, { sections: ["webhooks"], frameAncestors: [PORTAL, "http://localhost:8080"] });
    const u = new URL(framed.embedUrl!);
    expect(`${u.origin}${u.pathname}`).toBe(`${ORIGIN}/console/embed`);
    expect(u.searchParams.get("frame")).toBe(`${PORTAL} http://localhost:8080`);
    expect(u.search).not.toContain(framed.token);
    expect(u.hash).toBe(`#token=${framed.token}`);
    expect(Number(u.searchParams.get("exp")) * 1000).toBe(Date.parse(framed.expiresAt));
    const plain = await mint(org, { sections: ["webhooks"] });
    expect(plain.embedUrl).toBeUndefined();

    // The console's form shows it next to the link.
    const admin = await firstParty(await tokenFor({ org, scopes: ["admin"] }));
    const csrf = await csrfIn(admin, topLevel, "/console/links");
    const body = { _csrf: csrf, sections: "webhooks", access: "read", ttlMinutes: "5", frameAncestors: PORTAL };
    const page = await (await post(admin, "/console/links", body, topLevel)).text();
    const shown = page.match(/<textarea id="embed-url"[^>]*>([^<]+)<\/textarea>/)?.[1]?.replace(/&amp;/g, "&");
    expect(shown).toMatch(
      /^http:\/\/edge\.test\/console\/embed\?frame=https%3A%2F%2Fportal\.example&exp=\d+&sig=[\w-]+#token=/,
    );
    const withoutFrame = await (await post(admin, "/console/links", { ...body, frameAncestors: "" }, topLevel)).text();
    expect(withoutFrame).not.toContain('id="embed-url"');
  });

  it("serves the bootstrap framable by exactly the link's origins, with a partitioned nonce", async () => {
    const link = await mint(newOrg(), { sections: ["webhooks"], frameAncestors: [PORTAL, "http://localhost:8080"] });
    const page = await fetchWorker(embedPath(link), { headers: { ...inFrame, "sec-fetch-site": "cross-site" } });
    expect(page.status).toBe(200);
    const csp = page.headers.get("content-security-policy")!;
    expect(csp.split("; ").find((d) => d.startsWith("frame-ancestors"))).toBe(
      `frame-ancestors ${PORTAL} http://localhost:8080`,
    );
    expect(page.headers.get("x-frame-options")).toBeNull();
    const nonce = cookie(page, "cm_console_embed_login")!;
    expect(nonce.attrs).toEqual(
      expect.arrayContaining(["httponly", "secure", "samesite=none", "partitioned", "path=/console"]),
    );
    const html = await page.text();
    expect(html).toContain('action="/console/embed"');
    expect(html).toContain(`value="${nonce.value}"`);

    // Opened at the top level it only says where it belongs: no nonce, no form.
    const top = await fetchWorker(embedPath(link), {
      headers: { "sec-fetch-dest": "document", "sec-fetch-site": "none" },
    });
    expect(top.status).toBe(400);
    expect(cookie(top, "cm_console_embed_login")).toBeUndefined();
    const topHtml = await top.text();
    expect(topHtml).toContain(`inside a page of ${PORTAL}, http://localhost:8080`);
    expect(topHtml).not.toContain("<form");
  });

  it("refuses to frame a bootstrap whose origins a link did not sign, and tells the frame when it expired", async () => {
    const link = await mint(newOrg(), { sections: ["webhooks"], frameAncestors: [PORTAL] });
    const u = new URL(link.embedUrl!);
    const tampered = new URL(u);
    tampered.searchParams.set("frame", "https://evil.example");
    const unsigned = new URL(u);
    unsigned.searchParams.delete("sig");
    const wildcard = new URL(u);
    wildcard.searchParams.set("frame", "*");
    for (const t of [tampered, unsigned, wildcard]) {
      const res = await fetchWorker(`${t.pathname}${t.search}`, { headers: inFrame });
      expect(res.status, t.search).toBe(403);
      expect(res.headers.get("content-security-policy"), t.search).toContain("frame-ancestors 'none'");
      expect(res.headers.get("x-frame-options")).toBe("DENY");
      expect(cookie(res, "cm_console_embed_login")).toBeUndefined();
    }
    // Its signed expiry moved: the signature no longer fits.
    const moved = new URL(u);
    moved.searchParams.set("exp", String(Number(u.searchParams.get("exp")) + 3600));
    expect((await fetchWorker(`${moved.pathname}${moved.search}`, { headers: inFrame })).status).toBe(403);

    // Signed but expired: refused too, in a page the portal may frame, so the frame says why.
    const exp = Math.floor(Date.now() / 1000) - 10;
    const sig = await embedSignature(getConfig(env).tokenSecret, [PORTAL], exp);
    const expired = await fetchWorker(
      `/console/embed?${new URLSearchParams({ frame: PORTAL, exp: String(exp), sig })}`,
      { headers: inFrame },
    );
    expect(expired.status).toBe(403);
    expect(expired.headers.get("content-security-policy")).toContain(`frame-ancestors ${PORTAL}`);
    expect(cookie(expired, "cm_console_embed_login")).toBeUndefined();
    const html = await expired.text();
    expect(html).toContain("expired");
    expect(html).not.toContain("<form");
  });

  it("opens an embed session only inside a frame, in a partitioned cookie that never touches the first-party one", async () => {
    const link = await mint(newOrg(), { sections: ["webhooks"], frameAncestors: [PORTAL] });
    const nonce = await bootstrap(link);
    const res = await embedPost(link.token, nonce);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/console/webhooks");
    const session = cookie(res, "cm_console_embed")!;
    expect(session.attrs).toEqual(
      expect.arrayContaining(["httponly", "secure", "samesite=none", "partitioned", "path=/console"]),
    );
    expect(session.attrs.find((a) => a.startsWith("max-age="))).toMatch(/^max-age=\d+$/);
    expect(cookie(res, "cm_console"), "the first-party session is left alone").toBeUndefined();

    // A top-level sign-in through an embed URL would put the partitioned cookie in the console's own
    // partition: refused, as are another site's post and a post without the nonce.
    for (const [why, r] of [
      ["top level", await embedPost(link.token, nonce, topLevel)],
      ["no Sec-Fetch-Dest", await embedPost(link.token, nonce, { "sec-fetch-site": "same-origin" })],
      ["cross-site", await embedPost(link.token, nonce, { ...inFrame, "sec-fetch-site": "cross-site" })],
      ["another nonce", await embedPost(link.token, nonce, inFrame, "forged")],
    ] as const) {
      expect(r.status, why).toBe(403);
      expect(((await r.json()) as Envelope).error.code, why).toBe("forbidden");
      expect(cookie(r, "cm_console_embed"), why).toBeUndefined();
    }
  });

  it("refuses an embed session to a link without frame ancestors, and to an unscoped token", async () => {
    const org = newOrg();
    const framed = await mint(org, { sections: ["webhooks"], frameAncestors: [PORTAL] });
    const plain = await mint(org, { sections: ["webhooks"] });
    const nonce = await bootstrap(framed);
    for (const token of [plain.token, await tokenFor({ org, scopes: ["admin"] })]) {
      const res = await embedPost(token, nonce);
      expect(res.status).toBe(403);
      expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
      expect(cookie(res, "cm_console_embed")).toBeUndefined();
    }
    // Its pages, signed in first-party, are not framable either.
    const session = await firstParty(plain.token);
    const page = await fetchWorker("/console/webhooks", { headers: { cookie: session, ...inFrame } });
    expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(page.headers.get("x-frame-options")).toBe("DENY");
  });

  it("serves a frame with the embed session and a top-level visit never with it", async () => {
    const org = newOrg();
    const link = await mint(org, { sections: ["webhooks"], frameAncestors: [PORTAL] });
    const embed = await embedSignIn(link);
    const admin = await firstParty(await tokenFor({ org, user: "u_admin", scopes: ["admin"] }));
    const both = `${admin}; ${embed}`;

    // In a frame: the link's session (only its section, framable by its origins).
    const framed = await fetchWorker("/console/webhooks", { headers: { cookie: both, ...inFrame } });
    expect(framed.status).toBe(200);
    expect(framed.headers.get("content-security-policy")).toContain(`frame-ancestors ${PORTAL}`);
    const framedHtml = await framed.text();
    expect(framedHtml).toContain("scoped link (read)");
    expect(framedHtml).not.toContain('href="/console/usage"');

    // At the top level: the first-party session, never overridden by the embed cookie…
    const top = await fetchWorker("/console/webhooks", { headers: { cookie: both, ...topLevel } });
    expect(top.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    const topHtml = await top.text();
    expect(topHtml).toContain('href="/console/usage"');
    expect(topHtml).not.toContain("scoped link");
    // …and the embed cookie alone is no session there: pages go to sign-in, actions are 401.
    const alone = await fetchWorker("/console/webhooks", { headers: { cookie: embed, ...topLevel } });
    expect(alone.status).toBe(303);
    expect(alone.headers.get("location")).toBe("/console/login");
    const csrf = await csrfIn(embed, inFrame);
    const action = await post(embed, "/console/logout", { _csrf: csrf }, topLevel);
    expect(action.status).toBe(401);

    // A script's request (no navigation) is the first-party session's unless the page says it is an
    // embed's (live.js sends X-Console-Session: embed from an embed page).
    const fetchOf = (extra: Record<string, string>) =>
      fetchWorker("/console/usage/live", {
        headers: { cookie: both, "sec-fetch-dest": "empty", "sec-fetch-site": "same-origin", ...extra },
      });
    expect((await fetchOf({})).status).toBe(200);
    expect((await fetchOf({ "x-console-session": "embed" })).status).toBe(403);
    expect(framedHtml).toContain('<meta name="console-session" content="embed"/>');
  });

  it("keeps CSRF protection on an embed session's actions, its flash in a partitioned cookie too", async () => {
    const org = newOrg();
    const link = await mint(org, { sections: ["webhooks"], access: "write", frameAncestors: [PORTAL] });
    const embed = await embedSignIn(link);
    const admin = await firstParty(await tokenFor({ org, user: "u_admin", scopes: ["admin"] }));
    const csrf = await csrfIn(embed, inFrame);
    const adminCsrf = await csrfIn(admin, topLevel);
    expect(csrf).not.toBe(adminCsrf);
    const body = { url: "https://example.com/hook", events: "*" };
    for (const [why, r] of [
      ["no token", await post(embed, "/console/webhooks", body, inFrame)],
      [
        "the first-party session's token",
        await post(embed, "/console/webhooks", { ...body, _csrf: adminCsrf }, inFrame),
      ],
      [
        "cross-site",
        await post(
          embed,
          "/console/webhooks",
          { ...body, _csrf: csrf },
          { ...inFrame, "sec-fetch-site": "cross-site" },
        ),
      ],
    ] as const) {
      expect(r.status, why).toBe(403);
    }
    expect(await webhookCount(org)).toBe(0);

    const ok = await post(embed, "/console/webhooks", { ...body, _csrf: csrf }, inFrame);
    expect(ok.status).toBe(303);
    expect(await webhookCount(org)).toBe(1);
    expect(cookie(ok, "cm_console_flash"), "no first-party flash").toBeUndefined();
    const flash = cookie(ok, "cm_console_embed_flash")!;
    expect(flash.attrs).toEqual(expect.arrayContaining(["httponly", "secure", "samesite=none", "partitioned"]));
    const shown = await fetchWorker(ok.headers.get("location")!, {
      headers: { cookie: `${embed}; cm_console_embed_flash=${flash.value}`, ...inFrame },
    });
    expect(await shown.text()).toContain("created");
    expect(cookie(shown, "cm_console_embed_flash")!.attrs).toEqual(
      expect.arrayContaining(["max-age=0", "partitioned", "samesite=none"]),
    );

    // Another section stays refused, even with the right token; the refusal is shown in the frame
    // (the link's origins may frame its session's every answer), not a blank refused frame.
    const teams = await post(embed, "/console/teams", { _csrf: csrf, name: "x", visibility: "public" }, inFrame);
    expect(teams.status).toBe(403);
    const usage = await fetchWorker("/console/usage", { headers: { cookie: embed, ...inFrame } });
    expect(usage.status).toBe(403);
    expect(usage.headers.get("content-security-policy")).toContain(`frame-ancestors ${PORTAL}`);
  });

  it("signs a frame out of its embed session only, and tells it so inside the frame", async () => {
    const org = newOrg();
    const link = await mint(org, { sections: ["webhooks"], frameAncestors: [PORTAL] });
    const embed = await embedSignIn(link);
    const csrf = await csrfIn(embed, inFrame);
    const res = await post(embed, "/console/logout", { _csrf: csrf }, inFrame);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toContain(`frame-ancestors ${PORTAL}`);
    expect(cookie(res, "cm_console_embed")!.attrs).toEqual(expect.arrayContaining(["max-age=0", "partitioned"]));
    expect(cookie(res, "cm_console")).toBeUndefined();
    expect(await res.text()).toContain("signed out");
  });
});
