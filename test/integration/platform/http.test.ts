import { createRoute, z } from "@hono/zod-openapi";
import { env } from "cloudflare:workers";
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { app } from "../../../src/app.ts";
import { ensureTopology } from "../../../src/events/rabbit.ts";
import { withAmqp } from "../../../src/platform/amqp.ts";
import { assertScope } from "../../../src/platform/auth.ts";
import { getConfig } from "../../../src/platform/config.ts";
import { DOCS_ASSETS } from "../../../src/platform/docs-assets.ts";
import { createApp, createRouter } from "../../../src/platform/create-app.ts";
import { jsonBody } from "../../../src/platform/openapi.ts";
import { api, tokenFor } from "../support/api.ts";
import { withDb } from "../support/backends.ts";

// A throwaway app on the real shell, to exercise the conventions every service route inherits.
const echo = createRoute({
  method: "post",
  path: "/v1/orgs/{organizationId}/echo",
  request: {
    params: z.object({ organizationId: z.string() }),
    body: jsonBody(z.object({ url: z.url(), count: z.number().int().min(1) })),
  },
  responses: { 200: { description: "echo" } },
});
const testApp = createApp();
testApp.route(
  "/",
  createRouter().openapi(echo, (c) => {
    assertScope(c.var.principal, "webhooks:write");
    return c.json(c.req.valid("json"), 200);
  }),
);

async function call(
  path: string,
  init: RequestInit,
  bindings: object = env,
  target: { request: typeof testApp.request } = testApp,
) {
  const ctx = createExecutionContext();
  const res = await target.request(path, init, bindings, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

const post = async (body: string, token?: string, extra: Record<string, string> = {}) =>
  call("/v1/orgs/org_1/echo", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token ?? (await tokenFor())}`, ...extra },
    body,
  });

describe("HTTP conventions", () => {
  it("answers /healthz", async () => {
    const res = await api("/healthz", { token: null });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  it("reports every real dependency ready on /readyz", async () => {
    const res = await api("/readyz", { token: null });
    const body = (await res.json()) as { status: string; checks: Record<string, { ok: boolean }> };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(Object.keys(body.checks).sort()).toEqual(["outbox", "postgres", "rabbitmq", "redis", "topology"]);
    expect(Object.values(body.checks).every((c) => c.ok)).toBe(true);
  });

  it("answers 503 naming what is down", async () => {
    const broken = { ...env, RABBITMQ_URL: "amqp://guest:guest@127.0.0.1:1", UPSTASH_REDIS_REST_TOKEN: "wrong" };
    const res = await call("/readyz", {}, broken, app);
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("5"); // found by npm run chaos: a 503 without it
    const body = (await res.json()) as {
      error: { code: string; message: string; details: { checks: Record<string, { ok: boolean }> } };
    };
    expect(body.error.code).toBe("service_unavailable");
    expect(body.error.message).toMatch(/rabbitmq/);
    expect(body.error.message).toMatch(/redis/);
    expect(body.error.details.checks.postgres?.ok).toBe(true);
  });

  it("answers 503 naming a missing RabbitMQ inbound queue, and 200 once the topology is declared again", async () => {
    // Names of this run, one level down, so deleting the queue cannot disturb the inbound tests.
    const run = getConfig(env).rabbitmq;
    const rabbit = { ...run, queuePrefix: `${run.queuePrefix}readyz.${crypto.randomUUID()}.` };
    const bindings = { ...env, RABBITMQ_QUEUE_PREFIX: rabbit.queuePrefix };
    const t = await ensureTopology(rabbit);
    const inbound = t.inbound[0]!.queue;
    const deleteQueues = () =>
      withAmqp(rabbit.url, async (client) => {
        for (const q of [inbound, t.deadLetterQueue]) await (await client.channel()).queueDelete(q).catch(() => 0);
      });
    type Ready = { error?: { message: string; details: { checks: Record<string, { ok: boolean; error?: string }> } } };
    try {
      const before = await call("/readyz", {}, bindings, app);
      expect(before.status, await before.clone().text()).toBe(200);

      await withAmqp(rabbit.url, async (client) => void (await (await client.channel()).queueDelete(inbound)));
      const missing = await call("/readyz", {}, bindings, app);
      const body = (await missing.json()) as Ready;
      expect(missing.status, JSON.stringify(body)).toBe(503);
      expect(body.error?.message).toMatch(/topology/);
      expect(body.error?.details.checks.topology?.ok).toBe(false);
      expect(body.error?.details.checks.topology?.error).toContain(`queue ${inbound} missing`);
      expect(body.error?.details.checks.rabbitmq?.ok).toBe(true);

      await ensureTopology(rabbit);
      const after = await call("/readyz", {}, bindings, app);
      expect(after.status, await after.clone().text()).toBe(200);
    } finally {
      await deleteQueues();
    }
  });

  it("serves /docs under a self-only CSP, referencing only same-origin assets that exist", async () => {
    const res = await api("/docs", { token: null });
    expect(res.status).toBe(200);
    const csp = res.headers.get("content-security-policy") ?? "";
    const directives = Object.fromEntries(
      csp.split(";").map((d) => {
        const [name, ...sources] = d.trim().split(/\s+/);
        return [name, sources];
      }),
    );
    expect(directives["default-src"]).toEqual(["'self'"]);
    expect(directives["script-src"]).toEqual(["'self'"]); // no inline script, no eval
    expect(directives["connect-src"]).toEqual(["'self'"]);
    expect(directives["font-src"]).toEqual(["'self'"]);
    expect(directives["frame-ancestors"]).toEqual(["'none'"]);
    expect(csp).not.toMatch(/https?:|\*|unsafe-eval/);

    const html = await res.text();
    expect(html).not.toMatch(/https?:|\/\/[a-z0-9]/i); // no URL of another origin, protocol-relative included
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attrs, body] of scripts) {
      expect(attrs).toMatch(/\bsrc="/);
      expect(body).toBe("");
    }
    const refs = [...html.matchAll(/\b(?:src|href)="([^"]*)"/g)].map((m) => m[1]!);
    for (const ref of refs) expect(ref, ref).toMatch(/^(\/(?!\/)|data:)/);
    for (const path of refs.filter((r) => r.startsWith("/"))) {
      // The asset server answers these before the Worker (wrangler.toml run_worker_first).
      const asset = await env.ASSETS.fetch(new Request(`http://edge.test${path}`));
      expect(asset.status, path).toBe(200);
      expect(asset.headers.get("content-type"), path).toMatch(/javascript/);
      await asset.body?.cancel();
    }
  });

  it("serves the OpenAPI 3.1 document and the reference page", async () => {
    const doc = (await (await api("/openapi.json", { token: null })).json()) as {
      openapi: string;
      paths: Record<string, unknown>;
      components: { securitySchemes: object };
    };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        "/readyz",
        "/v1/me",
        "/v1/orgs/{organizationId}/me",
        "/v1/orgs/{organizationId}/webhooks",
        "/v1/orgs/{organizationId}/usage/events",
        "/v1/orgs/{organizationId}/teams/{teamId}/permissions/check",
        "/v1/invitations/accept",
      ]),
    );
    expect(doc.components.securitySchemes).toHaveProperty("bearerAuth");
    const docs = await api("/docs", { token: null });
    expect(docs.headers.get("content-type")).toMatch(/text\/html/);
    expect(await docs.text()).toContain(`<script src="${DOCS_ASSETS.init}">`);
    // The page's start-up script (an asset) points Scalar at this origin's document.
    const init = await (await env.ASSETS.fetch(new Request(`http://edge.test${DOCS_ASSETS.init}`))).text();
    expect(init).toContain(`"url":"/openapi.json"`);
  });

  it("answers unknown routes with a 404 envelope carrying the request id", async () => {
    const res = await api("/nope", { token: null, headers: { "x-request-id": "req-abc" } });
    expect(res.status).toBe(404);
    expect(res.headers.get("x-request-id")).toBe("req-abc");
    expect(await res.json()).toEqual({
      error: { code: "not_found", message: "no route for GET /nope", requestId: "req-abc" },
    });
  });

  it("generates a request id when none (or a malformed one) is sent", async () => {
    const res = await api("/healthz", { token: null, headers: { "x-request-id": "bad id with spaces" } });
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("turns malformed JSON into 400 invalid_json", async () => {
    const res = await post("{not json");
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_json");
  });

  it("turns schema violations into 400 validation_error with field paths", async () => {
    const res = await post(JSON.stringify({ url: "nope", count: 0 }));
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as {
      error: { code: string; details: { issues: { path: string; in: string }[] } };
    };
    expect(error.code).toBe("validation_error");
    expect(error.details.issues.map((i) => i.path).sort()).toEqual(["count", "url"]);
    expect(error.details.issues[0]?.in).toBe("json");
  });

  it("accepts a valid body", async () => {
    const res = await post(JSON.stringify({ url: "https://example.com/", count: 2 }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ url: "https://example.com/", count: 2 });
  });

  it("rejects bodies over the limit with 413", async () => {
    const res = await post(JSON.stringify({ url: "https://example.com/", count: 1, pad: "x".repeat(1_100_000) }));
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("payload_too_large");
  });

  it("fails with a configuration_error naming the variable when a secret is missing", async () => {
    const res = await call(
      "/v1/me",
      { headers: { authorization: `Bearer ${await tokenFor()}` } },
      { ...env, AUTH_JWT_SECRET: "" },
    );
    expect(res.status).toBe(500);
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe("configuration_error");
    expect(error.message).toMatch(/AUTH_JWT_SECRET/);
  });

  it("answers 403 when the token lacks the route's scope", async () => {
    const res = await post(
      JSON.stringify({ url: "https://example.com/", count: 1 }),
      await tokenFor({ scopes: ["webhooks:read"] }),
    );
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/webhooks:write/);
  });

  // Found by the fuzzer (fuzz.test.ts): a body under a media type the route does not declare was a 500.
  it("answers 415 unsupported_media_type for a body the route does not take", async () => {
    const res = await post(JSON.stringify({ url: "https://example.com/", count: 1 }), undefined, {
      "content-type": "text/plain; charset=utf-7",
    });
    expect(res.status).toBe(415);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unsupported_media_type");
  });

  // Found by the fuzzer: Postgres text cannot hold U+0000, so a NUL in a path segment, a query
  // value or a JSON string reached the database and came back as a 500. Refused up front now.
  it("refuses U+0000 in path, query and body with 400 validation_error, writing nothing", async () => {
    const org = `nul_${crypto.randomUUID().slice(0, 8)}`;
    const teams = () =>
      withDb(async (db) => Number((await db.query<{ n: string }>("select count(*) as n from teams")).rows[0]!.n));
    const before = await teams();
    const scopes = ["teams:read", "teams:write"];
    const cases = [
      { res: await api(`/v1/orgs/${org}/teams/a%00b`, { org, scopes }), in: "param" },
      { res: await api(`/v1/orgs/${org}/teams?cursor=%00`, { org, scopes }), in: "query" },
      { res: await api(`/v1/orgs/${org}/teams`, { org, scopes, raw: '{"name":"a\\u0000b"}' }), in: "json" },
    ];
    for (const c of cases) {
      expect(c.res.status).toBe(400);
      const { error } = (await c.res.json()) as { error: { code: string; details: { issues: { in: string }[] } } };
      expect(error.code).toBe("validation_error");
      expect(error.details.issues[0]!.in).toBe(c.in);
    }
    // An escaped backslash before "u0000" is an ordinary string, not a NUL.
    const ok = await api(`/v1/orgs/${org}/teams`, { org, scopes, raw: '{"name":"a\\\\u0000b"}' });
    expect(ok.status).not.toBe(500);
    expect(await teams()).toBe(before + (ok.status === 201 ? 1 : 0));
  });

  // Redis down (the Redis fault of `npm run chaos`): every Redis-backed write answered 500.
  it("answers 503 with Retry-After, not 500, when Redis is unreachable", async () => {
    const noRedis = { ...env, UPSTASH_REDIS_REST_URL: "http://127.0.0.1:1" };
    const org = `nored_${crypto.randomUUID().slice(0, 8)}`;
    const token = await tokenFor({ org, scopes: ["usage:write"] });
    const res = await call(
      `/v1/orgs/${org}/usage/events`,
      {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ eventId: "e1", eventType: "api.call", timestamp: new Date().toISOString() }),
      },
      noRedis,
      app,
    );
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("1");
    const { error } = (await res.json()) as { error: { code: string; message: string } };
    expect(error).toMatchObject({ code: "service_unavailable", message: "redis unavailable" });
  });
});
