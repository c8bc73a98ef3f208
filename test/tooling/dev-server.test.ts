import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { LOCAL_JWT_SECRET } from "../../scripts/lib/local-env.ts";
import { closePgProxy, dropDatabase, withPg } from "../../scripts/lib/pg.ts";
import { createEvent } from "../../src/events/cloudevent.ts";
import { eventMessage, topology } from "../../src/events/rabbit.ts";
import { withAmqp } from "../../src/platform/amqp.ts";
import { signToken } from "../../src/platform/auth.ts";

// The "done when": a fresh `npm run dev` meters RabbitMQ events with nobody touching
// /__scheduled, and its API reference renders without internet. One real dev server (scripts/dev.ts
// on a free port, with throwaway wrangler state, database, Redis prefix and RabbitMQ names) serves
// every test in this file; the last one stops it the way Ctrl-C does.

const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** Screenshots land here (git-ignored). */
const ARTIFACTS = join(REPO_ROOT, "test-artifacts");
const CHROMIUM = "/usr/bin/chromium";
const EVENTS = 50;
const stack = inject("stack");
const runId = `${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
const names = {
  database: `cm_devtest_${runId}`,
  redisPrefix: `cm:devtest:${runId}:`,
  exchange: `cm.devtest.${runId}.events`,
  queuePrefix: `cm.devtest.${runId}.`,
};
const org = `org_dev_${runId}`;

const freePort = () =>
  new Promise<number>((resolve) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });

let dev: ChildProcess;
let exited: Promise<number | null>;
let origin: string;
let dir: string;
const output: string[] = [];
const tail = () => output.join("").split("\n").slice(-60).join("\n");

/** Polls until `probe` returns a value (not undefined) or the deadline passes; fails with the dev log. */
async function until<T>(what: string | (() => string), ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const name = () => (typeof what === "string" ? what : what());
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    if (dev.exitCode !== null)
      throw new Error(`dev server exited (${dev.exitCode}) while waiting for ${name()}:\n${tail()}`);
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`no ${name()} after ${ms} ms (last error: ${String(last)}):\n${tail()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Living (not zombie) processes of a process group; reaping orphans is up to PID 1, and may lag. */
function groupMembers(pgid: number): string[] {
  const out: string[] = [];
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // "pid (comm) state ppid pgrp …": comm may contain spaces, so split after its closing paren.
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pgrp) === pgid && state !== "Z") out.push(`${pid} ${stat.slice(0, stat.lastIndexOf(")") + 1)}`);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
const groupAlive = (pgid: number) => groupMembers(pgid).length > 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cm-dev-"));
  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  // Its own process group, so the test can send Ctrl-C's SIGINT to dev.ts and wrangler together.
  dev = spawn(
    process.execPath,
    [
      "scripts/dev.ts",
      ...["--port", String(port), "--persist-to", join(dir, "state"), "--dev-vars", join(dir, "dev.vars")],
      ...["--database", names.database, "--redis-prefix", names.redisPrefix],
      ...["--rabbitmq-exchange", names.exchange, "--rabbitmq-queue-prefix", names.queuePrefix, "--drop-on-exit"],
    ],
    { cwd: REPO_ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, FORCE_COLOR: "0" } },
  );
  exited = new Promise((resolve) => dev.once("exit", (code) => resolve(code)));
  dev.stdout!.on("data", (d: Buffer) => output.push(d.toString()));
  dev.stderr!.on("data", (d: Buffer) => output.push(d.toString()));
  await until("answer on /healthz", 180_000, async () =>
    (await fetch(`${origin}/healthz`, { signal: AbortSignal.timeout(2_000) })).ok ? true : undefined,
  );
}, 200_000);

afterAll(async () => {
  // Normally the last test stopped it; if a test failed first, stop it now, by force if need be.
  if (dev?.pid && groupAlive(dev.pid)) {
    process.kill(-dev.pid, "SIGINT");
    const stopped = await Promise.race([exited, new Promise((r) => setTimeout(() => r("timeout"), 30_000))]);
    if (stopped === "timeout" && groupAlive(dev.pid)) process.kill(-dev.pid, "SIGKILL");
  }
  // --drop-on-exit removed these already unless the server died hard; never leave them behind.
  await dropDatabase(stack.postgresUrl, names.database).catch(() => undefined);
  const t = topology({ url: stack.rabbitmqUrl, exchange: names.exchange, queuePrefix: names.queuePrefix });
  await withAmqp(stack.rabbitmqUrl, async (c) => {
    for (const q of [t.deadLetterQueue, ...t.inbound.map((i) => i.queue)])
      await (await c.channel()).queueDelete(q).catch(() => 0);
    for (const x of [t.exchange, t.deadLetterExchange]) await (await c.channel()).exchangeDelete(x).catch(() => 0);
  }).catch(() => undefined);
  await closePgProxy();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 60_000);

describe("npm run dev behaves like production", () => {
  it("meters 50 CloudEvents published on RabbitMQ the moment it answers, with nobody calling /__scheduled", async () => {
    // Right away, as another CloudMatrix service would: declare the exchange it publishes to, and
    // publish mandatory so an event no queue is bound for comes back instead of vanishing.
    const events = Array.from({ length: EVENTS }, (_, i) =>
      createEvent({
        type: "api.call",
        organizationId: org,
        source: "/api-gateway",
        subject: `requests/${i}`,
        data: { userId: `u_${i % 5}`, quantity: 1 },
      }),
    );
    const unroutable = await withAmqp(stack.rabbitmqUrl, async (client) => {
      const ch = await client.channel();
      let returned = 0;
      ch.onReturn = () => void (returned += 1);
      await ch.exchangeDeclare(names.exchange, "topic", { durable: true });
      await ch.confirmSelect();
      await Promise.all(
        events.map((e) => {
          const m = eventMessage(e);
          return ch.basicPublish(names.exchange, e.type, m.body, m.properties, true);
        }),
      );
      return returned;
    });
    expect(unroutable, `${unroutable} of ${EVENTS} events had no queue bound on ${names.exchange}`).toBe(0);

    const token = await signToken(
      { userId: "u_0", organizationId: org, scopes: ["usage:read"] },
      { secret: LOCAL_JWT_SECRET, issuer: "cloudmatrix", audience: "cloudmatrix-edge" },
    );
    const hour = 3_600_000;
    const query = new URLSearchParams({
      startTime: new Date(Date.now() - hour).toISOString(),
      endTime: new Date(Date.now() + hour).toISOString(),
      granularity: "hour",
      metricTypes: "api_calls",
    });
    let seen: number | undefined;
    await until(
      () => `totals.api_calls = ${EVENTS} (last seen ${seen})`,
      90_000,
      async () => {
        const res = await fetch(`${origin}/v1/orgs/${org}/usage/metrics?${query}`, {
          headers: { authorization: `Bearer ${token}` },
        });
        if (!res.ok) throw new Error(`metrics ${res.status}: ${await res.text()}`);
        seen = ((await res.json()) as { totals: Record<string, number> }).totals.api_calls;
        return seen === EVENTS ? seen : undefined;
      },
    );
    const log = output.join("");
    expect(log).toMatch(
      /cron schedule \(wrangler\.toml, UTC\): "\* \* \* \* \*"[^\n]*"\*\/5 \* \* \* \*"[^\n]*"17 3 \* \* \*"/,
    );
    expect(log).toMatch(/cron "\* \* \* \* \*" \(\d\d:\d\d UTC\) fired: 200/);
  });

  it("renders the API reference in Chromium from this server alone: no other host, no console error", async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(
        `${CHROMIUM} is missing: install Debian's browser (apt-get install -y chromium), as .ci/run does`,
      );
    const profile = await mkdtemp(join(dir, "chromium-"));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    try {
      const elsewhere: string[] = [];
      const errors: string[] = [];
      // Every request of every page and worker passes here; anything not for this server is refused.
      await context.route("**/*", (route) => {
        const url = new URL(route.request().url());
        if (url.hostname === "127.0.0.1" || url.protocol === "data:") return route.continue();
        elsewhere.push(url.href);
        return route.abort();
      });
      const page = context.pages()[0] ?? (await context.newPage());
      page.on("console", (m) => {
        if (m.type() === "error") errors.push(m.text());
      });
      page.on("pageerror", (e) => errors.push(e.message));
      const res = await page.goto(`${origin}/docs`, { waitUntil: "networkidle" });
      expect(res?.status()).toBe(200);
      // A blank page is usually a refused asset: say which before waiting for the render.
      expect(elsewhere, "requests that left 127.0.0.1").toEqual([]);

      // Scalar rendered: its app root, the document's title as a heading, and the sidebar's tags.
      try {
        await page.locator(".scalar-api-reference").first().waitFor({ state: "visible", timeout: 30_000 });
        await page.locator("h1", { hasText: "CloudMatrix Edge API" }).first().waitFor({ state: "visible" });
        await page.getByText("webhooks", { exact: true }).first().waitFor({ state: "visible" });
      } finally {
        await mkdir(ARTIFACTS, { recursive: true });
        await page.screenshot({ path: join(ARTIFACTS, "docs.png") });
      }

      expect(elsewhere, "requests that left 127.0.0.1").toEqual([]);
      expect(errors, "console errors").toEqual([]);
    } finally {
      await context.close();
    }
  });

  it("stops cleanly on Ctrl-C, removing its throwaway data", async () => {
    process.kill(-dev.pid!, "SIGINT");
    const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r("still running"), 60_000))]);
    expect(code, tail()).toBe(0);
    expect(output.join("")).toMatch(/\[dev\] stopped/);
    expect(groupMembers(dev.pid!), "wrangler or workerd outlived dev.ts").toEqual([]);
    await expect(fetch(`${origin}/healthz`)).rejects.toThrow();
    const { rows } = await withPg(stack.postgresUrl, (c) =>
      c.query("select 1 from pg_database where datname = $1", [names.database]),
    );
    expect(rows).toEqual([]);
  });
});
