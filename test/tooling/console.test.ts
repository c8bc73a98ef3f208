import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Frame, Page, Route } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { DevServer } from "./console-support.ts";
import {
  ARTIFACTS,
  api,
  axeViolations,
  keyboardProblems,
  openBrowser,
  screenshot,
  startDevServer,
  startReceiver,
  tabTo,
  token,
} from "./console-support.ts";

// The console (/console) in Debian's Chromium against a real dev server: the browser flows,
// each with a screenshot under test-artifacts/, no console error, no request leaving 127.0.0.1,
// axe-core clean, and every form usable from the keyboard alone.

const stack = inject("stack");
const runId = `${Date.now().toString(36)}${randomBytes(2).toString("hex")}`;
const org = `org_console_${runId}`;
let server: DevServer;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let browser: Awaited<ReturnType<typeof openBrowser>>;
let dir: string;
let adminToken: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cm-console-browser-"));
  [server, receiver] = await Promise.all([startDevServer(stack), startReceiver()]);
  browser = await openBrowser(dir);
  adminToken = await token(org, "u_admin", ["admin"], "admin@example.com");
}, 200_000);

afterAll(async () => {
  // Observed, not asserted (a shared machine's timings vary): README "Console" quotes bench/console.ts.
  await mkdir(ARTIFACTS, { recursive: true });
  await writeFile(join(ARTIFACTS, "console-weights.json"), `${JSON.stringify(weights, null, 2)}\n`);
  await browser?.close();
  await receiver?.close();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

/** Signs `page` in through a console link, as `npm run token` prints it. */
async function signIn(page: Page, tok: string): Promise<void> {
  await page.goto(`${server.origin}/console/login#token=${tok}`);
  await page.waitForURL(/\/console\/(webhooks|usage|teams)/);
}

/** JavaScript bytes and first contentful paint of every page checked, written to test-artifacts/. */
const weights: Record<string, { jsBytes: number; firstContentfulPaintMs: number | null }> = {};

/** The page's JS stays within the budget (150 KB, decoded); records it with the page's first paint. */
async function checkWeight(page: Page): Promise<void> {
  const m = await page.evaluate(() => ({
    js: performance
      .getEntriesByType("resource")
      .filter((r) => (r as PerformanceResourceTiming).initiatorType === "script")
      .reduce((n, r) => n + (r as PerformanceResourceTiming).decodedBodySize, 0),
    fcp: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null,
  }));
  const path = new URL(page.url()).pathname.replace(/\/(wh|team|msg)_[^/]+/g, "/:id");
  weights[path] = { jsBytes: m.js, firstContentfulPaintMs: m.fcp === null ? null : Math.round(m.fcp) };
  expect(m.js, `JS of ${path}`).toBeLessThan(150 * 1024);
}

/** The page passes axe-core and keyboard-only navigation reaches every form field in order. */
async function checkAccessible(page: Page): Promise<void> {
  await checkWeight(page);
  expect(await axeViolations(page), `axe-core violations on ${page.url()}`).toEqual([]);
  expect(await keyboardProblems(page), `keyboard navigation on ${page.url()}`).toEqual([]);
}

/**
 * Presses `key` and waits for the page it leads to (a form post and its redirect). Waiting for the
 * load state alone can resolve on the page still showing, before the new one commits.
 */
async function pressAndLoad(page: Page, key: string): Promise<void> {
  const navigated = page.waitForEvent("framenavigated", (f) => f === page.mainFrame());
  await page.keyboard.press(key);
  await navigated;
  await page.waitForLoadState();
}

function expectClean() {
  expect(browser.elsewhere, "requests that left 127.0.0.1").toEqual([]);
  expect(browser.errors, "console errors").toEqual([]);
}

/**
 * The customer's portal: a page on another *site* than the console that iframes `?src=`, with a
 * form aimed at that frame (the embedding page forging a post with the frame's cookie). The console
 * is at http://127.0.0.1, the portal at http://localhost: different sites (an IP address and a host
 * name), and Chromium treats both as secure contexts (loopback is "potentially trustworthy"), so
 * `Secure` cookies are kept over plain http on both and the frame's partitioned cookie is keyed to
 * http://localhost.
 */
async function startPortal(consoleOrigin: string): Promise<{ origin: string; close(): Promise<void> }> {
  const attr = (v: string) => v.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
  const server = createServer((req, res) => {
    const src = new URL(req.url ?? "/", "http://localhost").searchParams.get("src") ?? "about:blank";
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Customer portal</title><link rel="icon" href="data:,"></head>
<body><h1>Customer portal</h1>
<iframe name="console" title="Webhooks" src="${attr(src)}" width="1200" height="760"></iframe>
<form id="forge" method="post" action="${attr(consoleOrigin)}/console/webhooks" target="console">
<input type="hidden" name="url" value="https://forged.example/hook"><input type="hidden" name="events" value="*">
</form></body></html>`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as { port: number };
  return {
    origin: `http://localhost:${port}`,
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

describe("console in a real browser", () => {
  it("signs in, registers an endpoint, sends a test event, shows its attempt and replays it", async () => {
    const page = await browser.newPage();
    try {
      // The sign-in form itself, before using the link.
      await page.goto(`${server.origin}/console/login`);
      await checkAccessible(page);
      await signIn(page, adminToken);
      expect(new URL(page.url()).pathname).toBe("/console/webhooks");
      const cookie = (await browser.context.cookies(`${server.origin}/console/webhooks`)).find(
        (c) => c.name === "cm_console",
      );
      expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: "Strict", path: "/console" });
      await checkAccessible(page);

      // Register with the keyboard only: the link to the form, then Tab to each field, type, Space
      // for a checkbox, Enter to submit.
      await tabTo(page, 'a[href="/console/webhooks/new"]');
      await pressAndLoad(page, "Enter");
      expect(new URL(page.url()).pathname).toBe("/console/webhooks/new");
      await checkAccessible(page);
      await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
      await tabTo(page, "#new-url");
      await page.keyboard.type(receiver.url);
      await page.keyboard.press("Tab");
      await page.keyboard.type("console test endpoint");
      await tabTo(page, 'input[name=events][value="team.created"]');
      await page.keyboard.press("Space");
      await tabTo(page, "#new-headers");
      await page.keyboard.type("X-Console: yes");
      await tabTo(page, 'form[aria-label="Add an endpoint"] button[type=submit]');
      await page.keyboard.press("Enter");
      await page.waitForURL(/\/console\/webhooks\/wh_[^/]+$/);
      await page.getByText("Endpoint ").first().waitFor();
      await expect(page.locator(".flash.ok").first().textContent()).resolves.toContain("created");
      await checkAccessible(page);

      const webhookId = decodeURIComponent(new URL(page.url()).pathname.split("/").pop()!);
      const stored = await api<{ url: string; events: string[]; headers: Record<string, string> }>(
        server.origin,
        adminToken,
        "GET",
        `/v1/orgs/${org}/webhooks/${webhookId}`,
      );
      expect(stored).toMatchObject({ url: receiver.url, events: ["team.created"], headers: { "X-Console": "yes" } });

      // Send a test event: it is delivered, and the log shows it.
      await tabTo(page, 'form[action$="/test"] button');
      await pressAndLoad(page, "Enter");
      await expect(page.locator(".flash").first().textContent()).resolves.toMatch(/Test event delivered: HTTP 200/);
      const row = page.locator("tr[data-delivery]", { hasText: "webhook.test" }).first();
      await row.waitFor();
      await expect(row.locator(".badge").textContent()).resolves.toBe("succeeded");
      expect(receiver.received.length).toBe(1);

      // The log filtered by the API, from the keyboard: by type (a select takes typed text), then a
      // status nothing has.
      await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
      await tabTo(page, "#f-type");
      await page.keyboard.type("webhook.test");
      await tabTo(page, 'form[aria-label="Filter deliveries"] button[type=submit]');
      await pressAndLoad(page, "Enter");
      expect(new URL(page.url()).searchParams.get("eventType")).toBe("webhook.test");
      await expect(page.locator("tr[data-delivery]").count()).resolves.toBe(1);
      const failed = new URL(page.url());
      failed.searchParams.set("status", "failed");
      await page.goto(failed.href);
      await expect(page.getByText("No deliveries match.").count()).resolves.toBe(1);
      await page.goBack();
      await checkAccessible(page);

      // Its attempt, with request and response details.
      await row.getByRole("link", { name: "Attempts" }).click();
      await page.waitForURL(/\/deliveries\//);
      await expect(page.locator("li[data-attempt]").count()).resolves.toBe(1);
      await expect(page.locator("li[data-attempt='1'] h3").textContent()).resolves.toMatch(/succeeded — 200/);
      await checkAccessible(page);

      // Replay it: a second attempt, a second request at the receiver.
      await tabTo(page, 'form[action$="/replay"] button');
      await pressAndLoad(page, "Enter");
      await expect(page.locator(".flash").first().textContent()).resolves.toMatch(/Replayed: HTTP 200/);
      await expect(page.locator("li[data-attempt]").count()).resolves.toBe(2);
      expect(receiver.received.length).toBe(2);
      await screenshot(page, "console-webhooks");
      expectClean();
    } finally {
      await page.close();
    }
  });

  it("edits per-endpoint settings from the keyboard; the API's refusal is announced next to its field", async () => {
    type Settings = { settings: Record<string, unknown> };
    const w = await api<{ id: string } & Settings>(server.origin, adminToken, "POST", `/v1/orgs/${org}/webhooks`, {
      url: receiver.url,
      events: ["*"],
    });
    const page = await browser.newPage();
    try {
      await signIn(page, adminToken);
      await page.goto(`${server.origin}/console/webhooks/${w.id}`);
      await tabTo(page, `a[href$="/${w.id}/edit"]`);
      await pressAndLoad(page, "Enter");
      expect(new URL(page.url()).pathname).toBe(`/console/webhooks/${w.id}/edit`);
      await checkAccessible(page);
      /** Tab to a field, replace its text, as a keyboard user does. */
      const retype = async (selector: string, text: string) => {
        await tabTo(page, selector);
        await page.keyboard.press("ControlOrMeta+A");
        await page.keyboard.type(text);
      };
      await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
      await retype("#edit-maxAttempts", "0");
      await retype("#edit-circuitCooldownMs", "30000");
      await tabTo(page, "#edit-ordered");
      await page.keyboard.press("Space");
      await retype("#edit-disableAfterFailingMs", "3600000");
      // Enter in a field submits its form; the API refuses maxAttempts 0 with a 400 envelope.
      await pressAndLoad(page, "Enter");
      await expect(page.locator("#edit-maxAttempts-error").textContent()).resolves.toMatch(/>=\s?1/);
      expect(await page.locator("#edit-maxAttempts").getAttribute("aria-invalid")).toBe("true");
      expect(await page.locator("#edit-maxAttempts").getAttribute("aria-describedby")).toContain(
        "edit-maxAttempts-error",
      );
      // The summary has the focus (announced as an alert); what was typed is still there.
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("edit-errors");
      expect(await page.locator("#edit-circuitCooldownMs").inputValue()).toBe("30000");
      expect(await page.locator("#edit-ordered").isChecked()).toBe(true);
      await checkAccessible(page);
      await screenshot(page, "console-webhook-settings-refused");
      // The refusal is a 400 page, which Chromium reports in its console: expected here, and only here.
      const refused = browser.errors.filter((e) => /\/edit: Failed to load resource: .* 400/.test(e));
      expect(refused).toHaveLength(1);
      browser.errors.splice(browser.errors.indexOf(refused[0]!), 1);
      const stored = () => api<Settings>(server.origin, adminToken, "GET", `/v1/orgs/${org}/webhooks/${w.id}`);
      expect((await stored()).settings, "nothing written").toEqual(w.settings);

      // Corrected from the keyboard: saved through the API, every change and nothing else.
      await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
      await retype("#edit-maxAttempts", "4");
      await pressAndLoad(page, "Enter");
      await expect(page.locator("#edit-h ~ .flash.ok").textContent()).resolves.toContain("Endpoint saved.");
      expect((await stored()).settings).toEqual({
        ...w.settings,
        maxAttempts: 4,
        circuitCooldownMs: 30_000,
        ordered: true,
        disableAfterFailingMs: 3_600_000,
      });
      expectClean();
    } finally {
      await page.close();
    }
  });

  it("draws the usage chart with exactly the API's data points for the same query, and refreshes live counts", async () => {
    const now = Date.now();
    const events = Array.from({ length: 30 }, (_, i) => ({
      eventId: `ev_${runId}_${i}`,
      organizationId: org,
      userId: `u_${i % 4}`,
      eventType: "api.call",
      resourceId: `doc_${i % 3}`,
      timestamp: new Date(now - i * 6 * 60_000).toISOString(),
    }));
    const ingest = await api<{ accepted: number }>(
      server.origin,
      adminToken,
      "POST",
      `/v1/orgs/${org}/usage/events`,
      events,
    );
    expect(ingest.accepted).toBe(30);
    const probe = new URLSearchParams({
      startTime: new Date(now - 86_400_000).toISOString(),
      endTime: new Date(now + 3_600_000).toISOString(),
      granularity: "hour",
      metricTypes: "api_calls",
    });
    // Ingest is asynchronous (a Queue): wait until the API counts all 30.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const m = await api<{ totals: Record<string, number> }>(
        server.origin,
        adminToken,
        "GET",
        `/v1/orgs/${org}/usage/metrics?${probe}`,
      );
      if (m.totals.api_calls === 30) break;
      if (Date.now() > deadline) throw new Error(`usage not counted: ${JSON.stringify(m.totals)}`);
      await new Promise((r) => setTimeout(r, 250));
    }

    const page = await browser.newPage();
    try {
      await signIn(page, adminToken);
      await page.goto(`${server.origin}/console/usage?metric=api_calls&granularity=hour&tz=Europe/Paris&refresh=1000`);
      await page.waitForFunction(
        () => (window as unknown as { cmCharts?: Record<string, unknown> }).cmCharts?.["chart-api_calls"],
      );
      const query = await page.locator("#series-query").getAttribute("data-query");
      expect(query).toContain("timeZone=Europe%2FParis");
      const fromApi = await api<{ dataPoints: { timestamp: string; metricType: string; value: number }[] }>(
        server.origin,
        adminToken,
        "GET",
        `/v1/orgs/${org}/usage/metrics?${query}`,
      );
      const expected = fromApi.dataPoints
        .filter((p) => p.metricType === "api_calls")
        .map((p) => [Math.floor(Date.parse(p.timestamp) / 1000), p.value]);
      const drawn = await page.evaluate(() => {
        const u = (window as unknown as { cmCharts: Record<string, { data: number[][] }> }).cmCharts[
          "chart-api_calls"
        ]!;
        return u.data[0]!.map((x, i) => [x, u.data[1]![i]!]);
      });
      expect(expected.reduce((n, [, v]) => n + v!, 0)).toBe(30);
      expect(drawn).toEqual(expected);

      // Real-time counts refresh in place (the island polls; no reload).
      const navigations: string[] = [];
      page.on("framenavigated", (f) => f === page.mainFrame() && navigations.push(f.url()));
      await page.waitForFunction(
        () => document.querySelector("[data-live-src]")?.hasAttribute("data-refreshed"),
        undefined,
        {
          timeout: 15_000,
        },
      );
      expect(navigations).toEqual([]);
      await expect(page.locator("[data-live=activeUsers]").textContent()).resolves.toMatch(/^\d+$/);
      await expect(page.locator(".quota[data-metric=api_calls]").count()).resolves.toBe(1);
      await checkAccessible(page);
      await screenshot(page, "console-usage");
      expectClean();
    } finally {
      await page.close();
    }
  });

  it("shows a cycle error next to the move form when a team is moved under its own descendant, and changes nothing", async () => {
    const mk = (name: string, parentTeamId?: string) =>
      api<{ id: string }>(server.origin, adminToken, "POST", `/v1/orgs/${org}/teams`, {
        name,
        visibility: "public",
        ...(parentTeamId ? { parentTeamId } : {}),
      });
    const a = await mk(`Alpha ${runId}`);
    const b = await mk(`Beta ${runId}`, a.id);
    const c = await mk(`Gamma ${runId}`, b.id);
    const page = await browser.newPage();
    try {
      await signIn(page, adminToken);
      await page.goto(`${server.origin}/console/teams`);
      await expect(
        page.locator(`li[data-team="${a.id}"] li[data-team="${b.id}"] li[data-team="${c.id}"]`).count(),
      ).resolves.toBe(1);
      await checkAccessible(page);
      await page.goto(`${server.origin}/console/teams/${a.id}`);
      await checkAccessible(page);
      // Keyboard only: focus the select, type the option's name, Tab to the button, Enter.
      await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
      await tabTo(page, "#move-parent");
      await page.keyboard.type(`Gamma ${runId}`);
      expect(await page.locator("#move-parent").inputValue()).toBe(c.id);
      await tabTo(page, 'form[action$="/move"] button[type=submit]');
      await pressAndLoad(page, "Enter");
      const error = page.locator("#move-error");
      await expect(error.textContent()).resolves.toMatch(/cycle/);
      expect(await page.locator("#move-parent").getAttribute("aria-describedby")).toBe("move-error");
      const after = await api<{ parentTeamId?: string }>(
        server.origin,
        adminToken,
        "GET",
        `/v1/orgs/${org}/teams/${a.id}`,
      );
      expect(after.parentTeamId).toBeUndefined();
      const gamma = await api<{ parentTeamId?: string }>(
        server.origin,
        adminToken,
        "GET",
        `/v1/orgs/${org}/teams/${c.id}`,
      );
      expect(gamma.parentTeamId).toBe(b.id);
      await screenshot(page, "console-teams-cycle");

      // "Why can this user do that here?": on the grandchild, u_lead's owner role comes from Alpha.
      await api(server.origin, adminToken, "POST", `/v1/orgs/${org}/teams/${a.id}/members`, {
        userId: "u_lead",
        role: "owner",
      });
      await page.goto(`${server.origin}/console/teams/${c.id}`);
      await tabTo(page, "#perm-user");
      await page.keyboard.type("u_lead");
      await page.keyboard.press("Enter");
      await page.waitForURL(/who=u_lead/);
      await expect(page.locator('tr[data-permission="team.move"]').textContent()).resolves.toContain(
        `inherited: owner of Alpha ${runId}`,
      );
      await expect(page.locator('tr[data-member="u_lead"][data-inherited="true"]').textContent()).resolves.toContain(
        `inherited from Alpha ${runId}`,
      );
      await checkAccessible(page);
      expectClean();
    } finally {
      await page.close();
    }
  });

  it("never shows a secret team to a non-member", async () => {
    // Another organization: the free plan allows 3 teams, which the cycle test used.
    const org2 = `${org}_s`;
    const owner = await token(org2, "u_owner", ["teams:read", "teams:write"]);
    const mk = (name: string, visibility: string) =>
      api<{ id: string }>(server.origin, owner, "POST", `/v1/orgs/${org2}/teams`, { name, visibility });
    const open = await mk(`Open ${runId}`, "public");
    const secret = await mk(`Hush ${runId}`, "secret");
    const outsider = await token(org2, "u_outsider", ["teams:read", "teams:write"]);
    const page = await browser.newPage();
    try {
      // The member (its creator) sees it…
      await signIn(page, owner);
      await page.goto(`${server.origin}/console/teams`);
      await expect(page.locator(`li[data-team="${secret.id}"]`).count()).resolves.toBe(1);
      // …the outsider does not: not in the tree, not in any picker, not by its address.
      await signIn(page, outsider);
      await page.goto(`${server.origin}/console/teams`);
      await expect(page.locator(`li[data-team="${open.id}"]`).count()).resolves.toBe(1);
      const html = await page.content();
      expect(html).not.toContain(secret.id);
      expect(html).not.toContain(`Hush ${runId}`);
      await page.goto(`${server.origin}/console/teams/${open.id}`);
      expect(await page.content()).not.toContain(secret.id);
      const direct = await page.request.get(`${server.origin}/console/teams/${secret.id}`);
      expect(direct.status()).toBe(404);
      expect(await direct.text()).not.toContain(`Hush ${runId}`);
      await page.goto(`${server.origin}/console/teams`);
      await screenshot(page, "console-teams-secret");
      expectClean();
    } finally {
      await page.close();
    }
  });

  it("mints an embeddable link that opens only its section, read-only, and only its organization", async () => {
    const page = await browser.newPage();
    try {
      await signIn(page, adminToken);
      await page.goto(`${server.origin}/console/links`);
      await checkAccessible(page);
      await tabTo(page, 'form[action="/console/links"] button[type=submit]');
      await pressAndLoad(page, "Enter");
      const url = await page.locator("#link-url").inputValue();
      expect(url).toMatch(/\/console\/login#token=/);
      const linkToken = url.split("#token=")[1]!;

      await browser.context.clearCookies();
      await page.goto(url);
      await page.waitForURL(/\/console\/webhooks$/);
      await expect(page.locator("header nav a").allTextContents()).resolves.toEqual(["Webhooks"]);
      await expect(page.locator('a[href="/console/webhooks/new"]').count()).resolves.toBe(0);
      expect((await page.request.get(`${server.origin}/console/webhooks/new`)).status()).toBe(403);
      await screenshot(page, "console-embed");

      // Other sections, minting, and writes are refused; so is another organization, by the API itself.
      for (const path of ["/console/usage", "/console/teams", "/console/links"]) {
        const res = await page.request.get(`${server.origin}${path}`, { maxRedirects: 0 });
        expect(res.status(), path).toBe(403);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe("forbidden");
      }
      const csrf = await page.locator("meta[name=csrf-token]").getAttribute("content");
      const write = await page.request.post(`${server.origin}/console/webhooks`, {
        form: { _csrf: csrf!, url: receiver.url, events: "*" },
        maxRedirects: 0,
      });
      expect(write.status()).toBe(403);
      const other = await fetch(`${server.origin}/v1/orgs/org_other_${runId}/webhooks`, {
        headers: { authorization: `Bearer ${linkToken}` },
      });
      expect(other.status).toBe(404);
      const usage = await fetch(`${server.origin}/v1/orgs/${org}/usage/dashboard`, {
        headers: { authorization: `Bearer ${linkToken}` },
      });
      expect(usage.status).toBe(403);
      expectClean();
    } finally {
      await page.close();
    }
  });

  it("embeds a write link in a cross-site iframe: its section only, a partitioned session of its own, framed only where it says", async () => {
    const portal = await startPortal(server.origin);
    // The portal is the one host besides 127.0.0.1 this test lets the browser reach.
    const allowPortal = (url: URL) => url.origin === portal.origin;
    const pass = (route: Route) => route.continue();
    await browser.context.route(allowPortal, pass);
    const page = await browser.newPage();
    const top = await browser.newPage();
    /** The portal showing `src` in its frame; resolves with the frame once it has loaded. */
    const portalWith = async (src: string): Promise<Frame> => {
      await page.goto(`${portal.origin}/?${new URLSearchParams({ src })}`);
      return page.frame({ name: "console" })!;
    };
    type Link = { url: string; token: string; embedUrl?: string };
    const mintLink = (body: unknown) =>
      api<Link>(server.origin, adminToken, "POST", `/v1/orgs/${org}/console-links`, body);
    try {
      // Signed in first-party at the top level first: the embed must not replace that session.
      await signIn(top, adminToken);
      // Without URLs: a URL filter leaves partitioned cookies out.
      const consoleCookies = async () =>
        (await browser.context.cookies()).filter((c) => c.domain === new URL(server.origin).hostname);
      const firstParty = (await consoleCookies()).find((c) => c.name === "cm_console")!;
      // Input goes to the tab in front (a background tab's frame would not get the clicks).
      await page.bringToFront();

      const link = await mintLink({ sections: ["webhooks"], access: "write", frameAncestors: [portal.origin] });
      const frame = await portalWith(link.embedUrl!);
      await frame.waitForURL(`${server.origin}/console/webhooks`);
      await expect(frame.locator("header nav a").allTextContents()).resolves.toEqual(["Webhooks"]);
      await expect(frame.locator("header .who").textContent()).resolves.toContain("scoped link (write)");

      // Its session: a partitioned SameSite=None cookie under the portal's site; the first-party one untouched.
      const cookies = await consoleCookies();
      expect(cookies.find((c) => c.name === "cm_console_embed")).toMatchObject({
        httpOnly: true,
        secure: true,
        sameSite: "None",
        path: "/console",
        partitionKey: "http://localhost",
      });
      expect(cookies.find((c) => c.name === "cm_console")).toMatchObject({
        value: firstParty.value,
        sameSite: "Strict",
      });

      // A write inside the frame: the endpoint form, its CSRF token the embed session's own.
      await frame.locator('a[href="/console/webhooks/new"]').click();
      await frame.waitForURL(/\/console\/webhooks\/new$/);
      const csrf = await frame.locator("meta[name=csrf-token]").getAttribute("content");
      await expect(frame.locator('form[aria-label="Add an endpoint"] input[name=_csrf]').inputValue()).resolves.toBe(
        csrf,
      );
      expect(csrf).not.toBe(await top.locator("meta[name=csrf-token]").getAttribute("content"));
      await frame.locator("#new-url").fill(receiver.url);
      await frame.locator('input[name=events][value="team.created"]').check();
      await frame.locator('form[aria-label="Add an endpoint"] button[type=submit]').click();
      await frame.waitForURL(/\/console\/webhooks\/wh_[^/]+$/);
      await expect(frame.locator(".flash.ok").first().textContent()).resolves.toContain("created");
      const webhookId = decodeURIComponent(new URL(frame.url()).pathname.split("/").pop()!);
      const stored = await api<{ url: string }>(
        server.origin,
        adminToken,
        "GET",
        `/v1/orgs/${org}/webhooks/${webhookId}`,
      );
      expect(stored.url).toBe(receiver.url);
      await screenshot(page, "console-embed-cross-site");

      // The portal forging a post into its frame (the frame's cookie goes along: SameSite=None) is
      // refused by the same-origin check, and it has no CSRF token anyway: nothing written.
      const count = async () =>
        (await api<{ total: number }>(server.origin, adminToken, "GET", `/v1/orgs/${org}/webhooks`)).total;
      const before = await count();
      const forged = page.waitForResponse(
        (r) => r.request().method() === "POST" && r.url().endsWith("/console/webhooks"),
      );
      await page.locator("#forge").evaluate((f) => (f as HTMLFormElement).submit());
      expect((await forged).status()).toBe(403);
      // The forged post navigates the frame (target=console): let that navigation land before the
      // next one, or the browser interrupts one with the other.
      await frame.waitForURL(/\/console\/webhooks$/);
      expect(await count()).toBe(before);

      // Another section: 403, shown in the frame.
      const usage = await frame.goto(`${server.origin}/console/usage`);
      expect(usage!.status()).toBe(403);
      await expect(frame.locator("body").textContent()).resolves.toContain("does not open usage");

      // The same link without frameAncestors: refused framing (CSP frame-ancestors 'none'), as is its
      // token slipped into the first link's embed URL (the sign-in post refuses it, framed by nobody).
      const plain = await mintLink({ sections: ["webhooks"], access: "write" });
      expect(plain.embedUrl).toBeUndefined();
      const embedCookie = async () => (await consoleCookies()).find((c) => c.name === "cm_console_embed")?.value;
      const signedIn = await embedCookie();
      for (const src of [plain.url, link.embedUrl!.replace(/#token=.*$/, `#token=${plain.token}`)]) {
        const refused = page.waitForEvent("console", (m) => /frame-ancestors 'none'/.test(m.text()));
        const f = await portalWith(src);
        await refused;
        expect(f.url(), src).not.toMatch(/\/console\/webhooks/);
      }
      expect(await embedCookie(), "the failed sign-in left the frame's session alone").toBe(signedIn);

      // At the top level: still the first-party session (every section, minting)…
      await top.goto(`${server.origin}/console/webhooks`);
      await expect(top.locator("header nav a").allTextContents()).resolves.toContain("Embeddable links");
      // …and without it, the embed cookie (the portal's partition) is never sent there: sign-in.
      await browser.context.clearCookies({ name: "cm_console" });
      await top.goto(`${server.origin}/console/webhooks`);
      expect(new URL(top.url()).pathname).toBe("/console/login");

      // Expected in the browser's console, and only these: the 403s (the forged post, the usage
      // section, the refused sign-in; Chromium may report one twice) and the two refused frames.
      const refusedFrames = browser.errors.filter((e) => /violates .* "frame-ancestors 'none'"/.test(e));
      expect(refusedFrames).toHaveLength(2);
      const others = browser.errors.filter((e) => !refusedFrames.includes(e));
      expect(others.length).toBeGreaterThanOrEqual(3);
      for (const e of others) expect(e).toMatch(/Failed to load resource: the server responded with a status of 403/);
      browser.errors.splice(0, browser.errors.length);
      expectClean();
    } finally {
      await page.close();
      await top.close();
      await browser.context.unroute(allowPortal, pass);
      await portal.close();
    }
  });
});
