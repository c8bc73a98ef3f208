import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BrowserContext, Page } from "playwright-core";
import { chromium } from "playwright-core";
import { LOCAL_JWT_SECRET } from "../../scripts/lib/local-env.ts";
import { closePgProxy, dropDatabase } from "../../scripts/lib/pg.ts";
import { signToken } from "../../src/platform/auth.ts";

/**
 * What the console's browser tests share: a real `scripts/dev.ts` on a free port with throwaway
 * state (or an already running server named by `CONSOLE_TEST_ORIGIN`, for quick local loops), a
 * local webhook receiver, Debian's Chromium through playwright-core, axe-core injected from
 * node_modules, keyboard helpers and screenshots under `test-artifacts/`.
 */

const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** Screenshots land here (git-ignored). */
export const ARTIFACTS = join(REPO_ROOT, "test-artifacts");
const CHROMIUM = "/usr/bin/chromium";
const AXE = readFileSync(join(REPO_ROOT, "node_modules", "axe-core", "axe.min.js"), "utf8");

const freePort = () =>
  new Promise<number>((resolve) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });

/** A running dev server and how to stop it. */
export interface DevServer {
  origin: string;
  stop(): Promise<void>;
  log(): string;
}

/** Starts `scripts/dev.ts` on a free port with its own database, Redis prefix and RabbitMQ names. */
export async function startDevServer(stack: { postgresUrl: string }): Promise<DevServer> {
  if (process.env.CONSOLE_TEST_ORIGIN) {
    return { origin: process.env.CONSOLE_TEST_ORIGIN, stop: async () => {}, log: () => "" };
  }
  const runId = `${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
  const dir = await mkdtemp(join(tmpdir(), "cm-console-"));
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const database = `cm_consoletest_${runId}`;
  const output: string[] = [];
  const dev: ChildProcess = spawn(
    process.execPath,
    [
      "scripts/dev.ts",
      ...["--port", String(port), "--persist-to", join(dir, "state"), "--dev-vars", join(dir, "dev.vars")],
      ...["--database", database, "--redis-prefix", `cm:consoletest:${runId}:`],
      ...["--rabbitmq-exchange", `cm.consoletest.${runId}.events`],
      ...["--rabbitmq-queue-prefix", `cm.consoletest.${runId}.`, "--drop-on-exit"],
    ],
    { cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, FORCE_COLOR: "0" } },
  );
  const exited = new Promise((resolve) => dev.once("exit", resolve));
  dev.stdout!.on("data", (d: Buffer) => output.push(d.toString()));
  dev.stderr!.on("data", (d: Buffer) => output.push(d.toString()));
  const log = () => output.join("").split("\n").slice(-40).join("\n");
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (dev.exitCode !== null) throw new Error(`dev server exited (${dev.exitCode}):\n${log()}`);
    const ok = await fetch(`${origin}/healthz`, { signal: AbortSignal.timeout(2_000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`dev server did not answer:\n${log()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    origin,
    log,
    stop: async () => {
      if (dev.pid && dev.exitCode === null) {
        process.kill(-dev.pid, "SIGINT");
        const t = setTimeout(() => dev.exitCode === null && process.kill(-dev.pid!, "SIGKILL"), 30_000);
        await exited;
        clearTimeout(t);
      }
      await dropDatabase(stack.postgresUrl, database).catch(() => undefined);
      await closePgProxy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A receiver that answers every webhook 200 and counts what it got. */
export async function startReceiver(): Promise<{ url: string; received: string[]; close(): Promise<void> }> {
  const received: string[] = [];
  const server = createHttpServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      received.push(body);
      res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/hook`, received, close: () => new Promise((r) => server.close(() => r())) };
}

/** A dev token (the local secret `npm run dev` uses). */
export function token(org: string, user: string, scopes: string[], email?: string): Promise<string> {
  return signToken(
    { userId: user, organizationId: org, scopes, ...(email ? { email } : {}) },
    { secret: LOCAL_JWT_SECRET, issuer: "cloudmatrix", audience: "cloudmatrix-edge" },
  );
}

/** Calls the API as `tok`; returns the parsed JSON (throws on a non-2xx). */
export async function api<T>(origin: string, tok: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${origin}${path}`, {
    method,
    headers: { authorization: `Bearer ${tok}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} → ${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

/** A Chromium context that refuses every request not for 127.0.0.1, collecting console errors. */
export async function openBrowser(dir: string): Promise<{
  context: BrowserContext;
  newPage(): Promise<Page>;
  errors: string[];
  elsewhere: string[];
  close(): Promise<void>;
}> {
  const profile = await mkdtemp(join(dir, "chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
  });
  const errors: string[] = [];
  const elsewhere: string[] = [];
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === "127.0.0.1" || url.protocol === "data:") return route.continue();
    elsewhere.push(url.href);
    return route.abort();
  });
  const watch = (page: Page) => {
    page.on("console", (m) => m.type() === "error" && errors.push(`${page.url()}: ${m.text()}`));
    page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
    return page;
  };
  for (const p of context.pages()) watch(p);
  return {
    context,
    errors,
    elsewhere,
    newPage: async () => watch(await context.newPage()),
    close: async () => {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** axe-core's violations on the page (WCAG 2 A/AA rules), as `rule: target` strings. */
export async function axeViolations(page: Page): Promise<string[]> {
  // Evaluated over the DevTools protocol: the console's CSP (rightly) refuses an injected <script>.
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(AXE);
  const result = (await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(o: unknown): Promise<unknown> } }).axe;
    return axe.run({ runOnly: { type: "tag", values: ["wcag2a", "wcag2aa"] } });
  })) as { violations: { id: string; nodes: { target: string[] }[] }[] };
  return result.violations.flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(" ")}`));
}

/**
 * Presses Tab until `selector` has the focus (keyboard-only navigation); fails if it never does.
 * Returns how many presses it took.
 */
export async function tabTo(page: Page, selector: string, max = 300): Promise<number> {
  for (let i = 1; i <= max; i++) {
    await page.keyboard.press("Tab");
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return i;
  }
  throw new Error(`Tab never reached ${selector}`);
}

/**
 * Every field of every form on the page is reachable with Tab, in document order, and has a label
 * (its accessible name is not empty). Returns the problems found.
 */
export async function keyboardProblems(page: Page): Promise<string[]> {
  const fields = await page.evaluate(() =>
    Array.from(document.querySelectorAll("form input:not([type=hidden]), form select, form textarea, form button"))
      .filter((el) => !(el as HTMLInputElement).disabled && (el as HTMLElement).offsetParent !== null)
      .map((el, i) => {
        el.setAttribute("data-kb", String(i));
        return i;
      }),
  );
  const problems: string[] = [];
  const seen = new Set<number>();
  // Start from the top of the page: a page may have put the focus elsewhere (an error summary), and
  // blurring keeps that as the point the next Tab starts from; a mark first in <body>, focusable
  // only by script (tabindex -1), moves it back.
  await page.evaluate(() => {
    const start = document.createElement("span");
    start.id = "kb-start";
    start.tabIndex = -1;
    document.body.prepend(start);
    start.focus();
    window.scrollTo(0, 0);
  });
  let last = -1;
  for (let i = 0; i < 2000 && seen.size < fields.length; i++) {
    await page.keyboard.press("Tab");
    const kb = await page.evaluate(() => document.activeElement?.getAttribute("data-kb") ?? null);
    if (kb === null) continue;
    const n = Number(kb);
    // A date input takes one Tab per part (day, month, year…): still the same field.
    if (n === last) continue;
    if (seen.has(n)) break;
    // Radio groups take one Tab stop: the others of the group are reached with the arrow keys.
    if (n < last) problems.push(`focus order: field ${n} after ${last}`);
    seen.add(n);
    last = n;
  }
  const unreached = await page.evaluate(
    (seenList) =>
      Array.from(document.querySelectorAll("[data-kb]"))
        .filter((el) => !seenList.includes(Number(el.getAttribute("data-kb"))))
        .filter((el) => !((el as HTMLInputElement).type === "radio" && !(el as HTMLInputElement).checked))
        .map((el) => el.outerHTML.slice(0, 120)),
    [...seen],
  );
  await page.evaluate(() => document.getElementById("kb-start")?.remove());
  for (const u of unreached) problems.push(`not reachable with Tab: ${u}`);
  return problems;
}

/** Saves a full-page screenshot under test-artifacts/. */
export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}
