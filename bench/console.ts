import { gzipSync } from "node:zlib";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { signToken } from "../src/platform/auth.ts";
import type { BenchContext, BenchResult } from "./harness.ts";
import { numArg } from "./harness.ts";
import { percentile, round } from "./lib.ts";

/**
 * The console's page weights and render times with realistic data: 10 endpoints with delivery
 * history, 5,000 usage events over the last day, 40 teams four levels deep. For every page: the
 * JavaScript and total bytes it loads, the server time of its HTML (p50/p99) and Chromium's first
 * contentful paint. Baseline: the same /v1 requests the page makes, sent by a client in parallel —
 * the ratio is what composing and rendering the page costs on top of its data.
 */

export const config = { bindings: { WEBHOOK_ALLOW_LOCAL_HTTP: "true" } };

interface PageSpec {
  name: string;
  path: string;
  /** The API requests the page makes (issued in parallel by the baseline). */
  api: string[];
}

export default async function run(ctx: BenchContext): Promise<BenchResult> {
  const n = numArg(ctx.args, "n", 15);
  const org = `org_bench_console_${Date.now().toString(36)}`;
  const auth = { secret: ctx.bindings.AUTH_JWT_SECRET!, issuer: "cloudmatrix", audience: "cloudmatrix-edge" };
  const admin = await signToken({ userId: "u_admin", organizationId: org, scopes: ["admin"] }, auth);
  const internal = await signToken({ userId: "svc", organizationId: org, scopes: ["internal"] }, auth);
  const call = async <T>(tok: string, method: string, path: string, body?: unknown): Promise<T> => {
    const res = await ctx.worker.fetch(path, {
      method,
      headers: {
        authorization: `Bearer ${tok}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
  const o = `/v1/orgs/${org}`;

  // ── realistic data ──
  await call(internal, "PUT", `${o}/plan`, { planId: "pro" });
  const receiver = await ctx.receiver();
  const hooks: string[] = [];
  for (let i = 0; i < 10; i++) {
    const w = await call<{ id: string }>(admin, "POST", `${o}/webhooks`, { url: receiver.url, events: ["*"] });
    hooks.push(w.id);
  }
  for (let i = 0; i < 30; i++) await call(admin, "POST", `${o}/webhooks/${hooks[i % 3]}/test`);
  ctx.log("console bench: 10 endpoints, 30 test deliveries");
  const now = Date.now();
  for (let b = 0; b < 5; b++) {
    const events = Array.from({ length: 1000 }, (_, i) => ({
      eventId: `e_${b}_${i}`,
      organizationId: org,
      userId: `u_${(b * 1000 + i) % 50}`,
      eventType: i % 5 === 0 ? "document.viewed" : "api.call",
      resourceId: `doc_${i % 100}`,
      resourceType: "document",
      timestamp: new Date(now - ((b * 1000 + i) * 86_400_000) / 5000).toISOString(),
    }));
    await call(admin, "POST", `${o}/usage/events`, events);
  }
  const probe = `${o}/usage/metrics?startTime=${new Date(now - 2 * 86_400_000).toISOString()}&endTime=${new Date(now + 3_600_000).toISOString()}&granularity=day&metricTypes=api_calls,document.viewed`;
  for (let t = Date.now(); Date.now() - t < 120_000; ) {
    const m = await call<{ totals: Record<string, number> }>(admin, "GET", probe);
    if ((m.totals.api_calls ?? 0) + (m.totals["document.viewed"] ?? 0) >= 5000) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  ctx.log("console bench: 5,000 usage events counted");
  const teams: string[] = [];
  for (let i = 0; i < 40; i++) {
    const parentTeamId = i < 4 ? undefined : teams[Math.floor((i - 4) / 3)];
    const t = await call<{ id: string }>(admin, "POST", `${o}/teams`, {
      name: `Team ${i}`,
      visibility: i % 7 === 0 ? "secret" : "public",
      ...(parentTeamId ? { parentTeamId } : {}),
    });
    teams.push(t.id);
    await call(admin, "POST", `${o}/teams/${t.id}/members`, { userId: `u_${i}`, role: "member" });
  }
  ctx.log("console bench: 40 teams");

  // ── sign in (as a browser does) ──
  const login = await ctx.worker.fetch("/console/login");
  const nonce = login.headers
    .getSetCookie()
    .find((c) => c.startsWith("cm_console_login="))!
    .split(/[=;]/)[1]!;
  const signedIn = await ctx.worker.fetch("/console/login", {
    method: "POST",
    redirect: "manual",
    headers: {
      cookie: `cm_console_login=${nonce}`,
      "content-type": "application/x-www-form-urlencoded",
      "sec-fetch-site": "same-origin",
    },
    body: new URLSearchParams({ _csrf: nonce, token: admin }),
  });
  const session = signedIn.headers
    .getSetCookie()
    .find((c) => c.startsWith("cm_console="))!
    .split(";")[0]!;

  const deep = teams[39]!;
  const usageQuery = `startTime=${new Date(Math.ceil(now / 3_600_000) * 3_600_000 - 2 * 86_400_000).toISOString()}&endTime=${new Date(Math.ceil(now / 3_600_000) * 3_600_000).toISOString()}&granularity=hour&metricTypes=api_calls,active_users&timeZone=UTC`;
  const pages: PageSpec[] = [
    {
      name: "webhooks",
      path: "/console/webhooks",
      api: [`${o}/webhooks?limit=100&includeCircuit=true`, "/v1/event-types"],
    },
    {
      name: "webhook",
      path: `/console/webhooks/${hooks[0]}`,
      api: ["", "/circuit", "/health", "/deliveries?limit=25"]
        .map((s) => `${o}/webhooks/${hooks[0]}${s}`)
        .concat("/v1/event-types"),
    },
    { name: "webhook_new", path: "/console/webhooks/new", api: ["/v1/event-types"] },
    {
      name: "webhook_edit",
      path: `/console/webhooks/${hooks[0]}/edit`,
      api: [`${o}/webhooks/${hooks[0]}`, "/v1/event-types"],
    },
    {
      name: "usage",
      path: "/console/usage?metric=api_calls&metric=active_users",
      api: [
        `${o}/usage/metrics?${usageQuery}`,
        `${o}/usage/dashboard`,
        `${o}/usage/alerts`,
        `${o}/usage/reports?limit=20`,
      ],
    },
    { name: "teams", path: "/console/teams", api: [`${o}/teams?limit=200`] },
    {
      name: "team",
      path: `/console/teams/${deep}`,
      api: [
        `${o}/teams/${deep}?includeMembers=true`,
        `${o}/teams/${deep}/hierarchy`,
        `${o}/teams/${deep}/invitations`,
        `${o}/teams?limit=200`,
      ],
    },
    { name: "links", path: "/console/links", api: [] },
  ];

  const figures: Record<string, number> = {};
  const ratios: Record<string, number> = {};
  const targets: Record<string, string> = {};
  let heaviestJs = 0;
  const time = async (f: () => Promise<unknown>) => {
    const t = performance.now();
    await f();
    return performance.now() - t;
  };
  for (const p of pages) {
    const page = () =>
      ctx.worker.fetch(p.path, { headers: { cookie: session } }).then(async (r) => {
        if (r.status !== 200) throw new Error(`${p.path}: ${r.status}`);
        return r.text();
      });
    const html = await page();
    // Weight: the HTML plus every script and stylesheet it references (all from this origin).
    const assets = [...html.matchAll(/<(?:script|link)[^>]+(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    let js = 0;
    let total = Buffer.byteLength(html);
    let gz = gzipSync(html).length;
    for (const a of assets) {
      const body = Buffer.from(await (await ctx.worker.fetch(a)).arrayBuffer());
      if (a.endsWith(".js")) js += body.length;
      total += body.length;
      gz += gzipSync(body).length;
    }
    heaviestJs = Math.max(heaviestJs, js);
    const server: number[] = [];
    const raw: number[] = [];
    for (let i = 0; i < n && !ctx.signal.aborted; i++) {
      server.push(await time(page));
      raw.push(
        await time(() =>
          Promise.all(
            p.api.map((u) =>
              ctx.worker.fetch(u, { headers: { authorization: `Bearer ${admin}` } }).then((r) => r.arrayBuffer()),
            ),
          ),
        ),
      );
    }
    figures[`${p.name}_js_kb`] = round(js / 1024, 1);
    figures[`${p.name}_total_kb`] = round(total / 1024, 1);
    figures[`${p.name}_total_gzip_kb`] = round(gz / 1024, 1);
    figures[`${p.name}_server_p50_ms`] = round(percentile(server, 50), 1);
    figures[`${p.name}_server_p99_ms`] = round(percentile(server, 99), 1);
    if (p.api.length) {
      figures[`${p.name}_api_p50_ms`] = round(percentile(raw, 50), 1);
      ratios[`${p.name}_server_p50 / ${p.name}_api_p50`] = round(percentile(server, 50) / percentile(raw, 50), 2);
    }
  }

  // First contentful paint in Chromium: one tab navigating from page to page, as a user does (a new
  // tab per sample would time the renderer process's start-up too). Warm server, n per page.
  const dir = await mkdtemp(join(tmpdir(), "cm-bench-console-"));
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu"],
  });
  ctx.defer(async () => {
    await browser.close();
    await rm(dir, { recursive: true, force: true });
  });
  const context = await browser.newContext();
  await context.addCookies([
    {
      name: "cm_console",
      value: session.split("=")[1]!,
      url: `${ctx.worker.url}/console`,
      httpOnly: true,
      secure: true,
      sameSite: "Strict",
    },
  ]);
  const tab = await context.newPage();
  await tab.goto(`${ctx.worker.url}/console/links`, { waitUntil: "load" });
  let slowest = 0;
  for (const p of pages) {
    const fcp: number[] = [];
    const ttfb: number[] = [];
    for (let i = 0; i < Math.min(n, 9) && !ctx.signal.aborted; i++) {
      await tab.goto(`${ctx.worker.url}${p.path}`, { waitUntil: "load" });
      const v = await tab.evaluate(
        () =>
          new Promise<[number, number]>((resolve) => {
            const nav = performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming;
            const get = () => performance.getEntriesByName("first-contentful-paint")[0]?.startTime;
            const found = get();
            if (found !== undefined) return resolve([found, nav.responseStart]);
            new PerformanceObserver(() => resolve([get() ?? Number.NaN, nav.responseStart])).observe({
              type: "paint",
              buffered: true,
            });
          }),
      );
      fcp.push(v[0]);
      ttfb.push(v[1]);
    }
    const p50 = percentile(fcp, 50);
    slowest = Math.max(slowest, p50);
    figures[`${p.name}_first_render_p50_ms`] = round(p50, 1);
    figures[`${p.name}_first_byte_p50_ms`] = round(percentile(ttfb, 50), 1);
  }
  figures.heaviest_page_js_kb = round(heaviestJs / 1024, 1);
  figures.slowest_first_render_p50_ms = round(slowest, 1);
  targets.heaviest_page_js_kb = "< 150";
  targets.slowest_first_render_p50_ms = "< 300";
  return {
    name: "console",
    headline: "slowest_first_render_p50_ms",
    figures,
    ratios,
    targets,
    notes: [
      "first render = Chromium's first-contentful-paint from navigation start (server time included), one tab navigating page to page, warm server",
      "page JS: the scripts a page loads (uPlot 50 KB + islands); total includes HTML and CSS; uncompressed unless _gzip",
      `baseline: the page's own /v1 requests, sent in parallel by the client; n = ${n} per page`,
    ],
  };
}
