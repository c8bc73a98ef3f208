import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { DevServer } from "./console-support.ts";
import {
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

/** The page passes axe-core and keyboard-only navigation reaches every form field in order. */
async function checkAccessible(page: Page): Promise<void> {
  expect(await axeViolations(page), `axe-core violations on ${page.url()}`).toEqual([]);
  expect(await keyboardProblems(page), `keyboard navigation on ${page.url()}`).toEqual([]);
}

function expectClean() {
  expect(browser.elsewhere, "requests that left 127.0.0.1").toEqual([]);
  expect(browser.errors, "console errors").toEqual([]);
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

      // Register with the keyboard only: Tab to each field, type, Space for a checkbox, Enter to submit.
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
      await page.waitForURL(/\/console\/webhooks\/[^/]+$/);
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
      await page.keyboard.press("Enter");
      await page.waitForLoadState();
      await expect(page.locator(".flash").first().textContent()).resolves.toMatch(/Test event delivered: HTTP 200/);
      const row = page.locator("tr[data-delivery]", { hasText: "webhook.test" }).first();
      await row.waitFor();
      await expect(row.locator(".badge").textContent()).resolves.toBe("succeeded");
      expect(receiver.received.length).toBe(1);

      // Its attempt, with request and response details.
      await row.getByRole("link", { name: "Attempts" }).click();
      await page.waitForURL(/\/deliveries\//);
      await expect(page.locator("li[data-attempt]").count()).resolves.toBe(1);
      await expect(page.locator("li[data-attempt='1'] h3").textContent()).resolves.toMatch(/succeeded — 200/);
      await checkAccessible(page);

      // Replay it: a second attempt, a second request at the receiver.
      await tabTo(page, 'form[action$="/replay"] button');
      await page.keyboard.press("Enter");
      await page.waitForLoadState();
      await expect(page.locator(".flash").first().textContent()).resolves.toMatch(/Replayed: HTTP 200/);
      await expect(page.locator("li[data-attempt]").count()).resolves.toBe(2);
      expect(receiver.received.length).toBe(2);
      await screenshot(page, "console-webhooks");
      expectClean();
    } finally {
      await page.close();
    }
  });
});
