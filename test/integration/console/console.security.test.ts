import { describe, expect, it } from "vitest";
import { api, tokenFor } from "../support/api.ts";
import { ORIGIN, cookie, csrfOf, fetchWorker, form, signIn } from "../support/console.ts";

// The console's server side in workerd: session cookie flags, CSRF refusals (4xx envelope, nothing
// written), the CSP, and what a scoped (embeddable) link can and cannot reach.

const newOrg = () => `org_console_${crypto.randomUUID().slice(0, 8)}`;
type Envelope = { error: { code: string; message: string } };

const webhookCount = async (org: string) =>
  ((await (await api(`/v1/orgs/${org}/webhooks`, { org, scopes: ["admin"] })).json()) as { total: number }).total;

describe("console session", () => {
  it("keeps the session in an HttpOnly, Secure, SameSite=Strict cookie scoped to /console", async () => {
    const org = newOrg();
    const page = await fetchWorker("/console/login");
    const nonce = cookie(page, "cm_console_login")!;
    expect(nonce.attrs).toEqual(expect.arrayContaining(["httponly", "secure", "samesite=strict", "path=/console"]));
    const res = await fetchWorker("/console/login", {
      method: "POST",
      headers: {
        cookie: `cm_console_login=${nonce.value}`,
        "content-type": "application/x-www-form-urlencoded",
        "sec-fetch-site": "same-origin",
      },
      body: new URLSearchParams({ _csrf: nonce.value, token: await tokenFor({ org, scopes: ["admin"] }) }),
    });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/console/webhooks");
    const session = cookie(res, "cm_console")!;
    expect(session.attrs).toEqual(expect.arrayContaining(["httponly", "secure", "samesite=strict", "path=/console"]));
    expect(session.attrs.find((a) => a.startsWith("max-age="))).toMatch(/^max-age=(3[0-5]\d\d|3600)$/);
  });

  it("refuses a sign-in without its nonce, from another site, or with a bad token", async () => {
    const token = await tokenFor({ scopes: ["admin"] });
    const noNonce = await fetchWorker("/console/login", form("", { _csrf: "x", token }));
    expect(noNonce.status).toBe(403);
    expect(((await noNonce.json()) as Envelope).error.code).toBe("forbidden");
    expect(cookie(noNonce, "cm_console")).toBeUndefined();

    const page = await fetchWorker("/console/login");
    const nonce = cookie(page, "cm_console_login")!.value;
    const crossSite = await fetchWorker(
      "/console/login",
      form(`cm_console_login=${nonce}`, { _csrf: nonce, token }, { "sec-fetch-site": "cross-site" }),
    );
    expect(crossSite.status).toBe(403);
    expect(cookie(crossSite, "cm_console")).toBeUndefined();

    const bad = await fetchWorker(
      "/console/login",
      form(`cm_console_login=${nonce}`, { _csrf: nonce, token: "a.b.c" }),
    );
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("invalid token");
    expect(cookie(bad, "cm_console")).toBeUndefined();
  });

  it("sends unauthenticated pages to sign-in and refuses unauthenticated actions with a 401 envelope", async () => {
    const page = await fetchWorker("/console/webhooks");
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe("/console/login");
    const action = await fetchWorker("/console/webhooks", form("", { _csrf: "x", url: "https://example.com" }));
    expect(action.status).toBe(401);
    expect(((await action.json()) as Envelope).error.code).toBe("unauthorized");
  });

  it("serves every page with a strict CSP and no inline script or style", async () => {
    const session = await signIn(await tokenFor({ org: newOrg(), scopes: ["admin"] }));
    const pages = ["/console/login", "/console/webhooks", "/console/webhooks/new", "/console/usage", "/console/teams"];
    for (const path of [...pages, "/console/links"]) {
      const res = await fetchWorker(path, { headers: { cookie: session } });
      expect(res.status, path).toBe(200);
      const csp = res.headers.get("content-security-policy")!;
      expect(csp, path).toContain("default-src 'none'");
      expect(csp, path).toContain("script-src 'self'");
      expect(csp, path).toContain("style-src 'self'");
      expect(csp, path).toContain("frame-ancestors 'none'");
      expect(csp, path).not.toContain("unsafe");
      expect(res.headers.get("x-frame-options")).toBe("DENY");
      expect(res.headers.get("cache-control")).toBe("no-store");
      const html = await res.text();
      // Scripts only from files; the only script elements without src are non-executing JSON data.
      for (const tag of html.match(/<script[^>]*>/g) ?? [])
        expect(tag, path).toMatch(/src="\/assets\/|type="application\/json"/);
      expect(html, path).not.toMatch(/<style|\sstyle="/);
      // Every asset from this origin: no src or href names another host.
      expect(html, path).not.toMatch(/(src|href)="https?:/);
    }
  });
});

describe("console CSRF", () => {
  it("rejects a mutation without or with a wrong CSRF token with a 403 envelope, and writes nothing", async () => {
    const org = newOrg();
    const session = await signIn(await tokenFor({ org, scopes: ["admin"] }));
    const body = { url: "https://example.com/hook", events: "*" };
    for (const bad of [{}, { _csrf: "forged" }] as Record<string, string>[]) {
      const res = await fetchWorker("/console/webhooks", form(session, { ...body, ...bad }));
      expect(res.status).toBe(403);
      const env = (await res.json()) as Envelope;
      expect(env.error).toMatchObject({ code: "forbidden", message: "CSRF token missing or invalid" });
    }
    // The right token, but sent by another site (a browser says so in Sec-Fetch-Site / Origin).
    const csrf = await csrfOf(session);
    const crossSite = await fetchWorker(
      "/console/webhooks",
      form(session, { ...body, _csrf: csrf }, { "sec-fetch-site": "cross-site" }),
    );
    expect(crossSite.status).toBe(403);
    const foreignOrigin = await fetchWorker("/console/webhooks", {
      ...form(session, { ...body, _csrf: csrf }),
      headers: { cookie: session, "content-type": "application/x-www-form-urlencoded", origin: "https://evil.example" },
    });
    expect(foreignOrigin.status).toBe(403);
    // Another session's token does not fit this session either.
    const otherCsrf = await csrfOf(await signIn(await tokenFor({ org, user: "u_2", scopes: ["admin"] })));
    expect((await fetchWorker("/console/webhooks", form(session, { ...body, _csrf: otherCsrf }))).status).toBe(403);
    expect(await webhookCount(org)).toBe(0);

    const ok = await fetchWorker("/console/webhooks", form(session, { ...body, _csrf: csrf }));
    expect(ok.status).toBe(303);
    expect(ok.headers.get("location")).toMatch(/^\/console\/webhooks\/wh_/);
    expect(await webhookCount(org)).toBe(1);
  });

  it("shows the API's validation error on the form and writes nothing", async () => {
    const org = newOrg();
    const session = await signIn(await tokenFor({ org, scopes: ["admin"] }));
    const csrf = await csrfOf(session);
    const res = await fetchWorker("/console/webhooks", form(session, { _csrf: csrf, url: "ftp://nope", events: "*" }));
    // Rendered again (400), the message next to the field: test/integration/console/console.webhooks.test.ts.
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/<p id="new-url-error" class="field-error">[^<]*https/);
    expect(await webhookCount(org)).toBe(0);
  });
});

describe("scoped console links", () => {
  const mint = async (org: string, body: unknown, scopes = ["admin"]) =>
    api(`/v1/orgs/${org}/console-links`, { org, scopes, body });

  it("mints a short-lived link whose token carries only its sections' scopes", async () => {
    const org = newOrg();
    const res = await mint(org, { sections: ["webhooks"], access: "read", ttlSeconds: 600 });
    expect(res.status).toBe(201);
    const link = (await res.json()) as { url: string; token: string; expiresAt: string; scopes: string[] };
    expect(link.scopes).toEqual(["webhooks:read"]);
    expect(link.url).toBe(`${ORIGIN}/console/login#token=${link.token}`);
    expect(Date.parse(link.expiresAt) - Date.now()).toBeLessThanOrEqual(600_000);
    const me = (await (await api("/v1/me", { token: link.token })).json()) as {
      scopes: string[];
      organizationId: string;
    };
    expect(me).toMatchObject({ scopes: ["webhooks:read"], organizationId: org });
  });

  it("is never stronger than its minter, and validates its input", async () => {
    const org = newOrg();
    const weak = await mint(org, { sections: ["webhooks"], access: "write" }, ["webhooks:read"]);
    expect(weak.status).toBe(403);
    expect(((await weak.json()) as Envelope).error.code).toBe("forbidden");
    for (const body of [
      { sections: [] },
      { sections: ["billing"] },
      { sections: ["usage"], ttlSeconds: 86_400 },
      { sections: ["usage"], frameAncestors: ["https://a.example/path"] },
      { sections: ["usage"], frameAncestors: ["https://a.example; script-src *"] },
    ]) {
      const res = await mint(org, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await res.json()) as Envelope).error.code).toBe("validation_error");
    }
  });

  it("opens only its sections, read-only, in its own organization, framed only by its origins", async () => {
    const org = newOrg();
    const link = (await (
      await mint(org, { sections: ["webhooks"], access: "read", frameAncestors: ["https://portal.example"] })
    ).json()) as { token: string };
    const session = await signIn(link.token);
    const home = await fetchWorker("/console/webhooks", { headers: { cookie: session } });
    expect(home.status).toBe(200);
    expect(home.headers.get("content-security-policy")).toContain("frame-ancestors https://portal.example");
    expect(home.headers.get("x-frame-options")).toBeNull();
    const html = await home.text();
    expect(html).not.toContain('href="/console/usage"');
    expect(html).not.toContain('action="/console/webhooks"');

    for (const path of ["/console/usage", "/console/teams", "/console/links", "/console/usage/live"]) {
      const res = await fetchWorker(path, { headers: { cookie: session } });
      expect(res.status, path).toBe(403);
      expect(((await res.json()) as Envelope).error.code, path).toBe("forbidden");
    }
    const csrf = await csrfOf(session);
    const write = await fetchWorker(
      "/console/webhooks",
      form(session, { _csrf: csrf, url: "https://example.com/hook", events: "*" }),
    );
    expect(write.status).toBe(403);
    expect(await webhookCount(org)).toBe(0);
    // The token itself: another organization is 404, another service's API 403 (the API's own checks).
    expect((await api(`/v1/orgs/${newOrg()}/webhooks`, { token: link.token })).status).toBe(404);
    expect((await api(`/v1/orgs/${org}/usage/dashboard`, { token: link.token })).status).toBe(403);
    expect(
      (await api(`/v1/orgs/${org}/webhooks`, { token: link.token, body: { url: "https://x.example", events: ["*"] } }))
        .status,
    ).toBe(403);
  });

  it("lets a write link act in its section only", async () => {
    const org = newOrg();
    const link = (await (await mint(org, { sections: ["webhooks"], access: "write" })).json()) as { token: string };
    const session = await signIn(link.token);
    const csrf = await csrfOf(session);
    const ok = await fetchWorker(
      "/console/webhooks",
      form(session, { _csrf: csrf, url: "https://example.com/hook", events: "*" }),
    );
    expect(ok.status).toBe(303);
    expect(await webhookCount(org)).toBe(1);
    const teams = await fetchWorker("/console/teams", form(session, { _csrf: csrf, name: "x", visibility: "public" }));
    expect(teams.status).toBe(403);
  });
});

describe("console actions go through the API", () => {
  it("generates a report, lists its revisions and downloads its CSV", async () => {
    const org = newOrg();
    const session = await signIn(await tokenFor({ org, scopes: ["admin"] }));
    const csrf = await csrfOf(session, "/console/usage");
    const start = new Date();
    start.setUTCDate(1);
    const end = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1));
    const day = (d: Date) => d.toISOString().slice(0, 10);
    const res = await fetchWorker(
      "/console/usage/reports",
      form(session, { _csrf: csrf, periodStart: day(start), periodEnd: day(end) }),
    );
    expect(res.status).toBe(303);
    const location = res.headers.get("location")!;
    expect(location).toMatch(/^\/console\/usage\/reports\//);
    const page = await fetchWorker(location, { headers: { cookie: session } });
    expect(await page.text()).toContain("Revision 1");
    const csv = await fetchWorker(`${location}/csv`, { headers: { cookie: session } });
    expect(csv.status).toBe(200);
    expect(csv.headers.get("content-type")).toMatch(/^text\/csv/);
    expect(csv.headers.get("content-disposition")).toMatch(/attachment; filename="usage-report_/);
    expect((await csv.text()).split("\r\n")[0]).toMatch(/^report_id,organization_id,period_start/);
  });

  it("sends, resends and revokes an invitation", async () => {
    const org = newOrg();
    const token = await tokenFor({ org, scopes: ["admin"] });
    const team = (await (await api(`/v1/orgs/${org}/teams`, { token, body: { name: "Ops" } })).json()) as {
      id: string;
    };
    const session = await signIn(token);
    const path = `/console/teams/${team.id}`;
    const csrf = await csrfOf(session, path);
    const sent = await fetchWorker(
      `${path}/invitations`,
      form(session, { _csrf: csrf, email: "new@example.com", role: "member" }),
    );
    expect(sent.status).toBe(303);
    const list = async (status: string) =>
      (
        (await (await api(`/v1/orgs/${org}/teams/${team.id}/invitations?status=${status}`, { token })).json()) as {
          invitations: { id: string; email: string }[];
        }
      ).invitations;
    const [inv] = await list("pending");
    expect(inv?.email).toBe("new@example.com");
    const html = await (await fetchWorker(path, { headers: { cookie: session } })).text();
    expect(html).toContain(`data-invitation="${inv!.id}"`);
    expect((await fetchWorker(`${path}/invitations/${inv!.id}/resend`, form(session, { _csrf: csrf }))).status).toBe(
      303,
    );
    expect((await fetchWorker(`${path}/invitations/${inv!.id}/revoke`, form(session, { _csrf: csrf }))).status).toBe(
      303,
    );
    expect((await list("revoked")).map((i) => i.id)).toEqual([inv!.id]);
  });
});
