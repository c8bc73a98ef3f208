import { env } from "cloudflare:workers";
import { createExecutionContext, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../../src/platform/logger.ts";
import { createPlatform } from "../../../src/platform/platform.ts";
import { createWebhookService } from "../../../src/webhooks/service.ts";
import { api } from "../support/api.ts";
import { withDb } from "../support/backends.ts";
import {
  endpoint,
  newHook,
  newOrg,
  received,
  register,
  script,
  seedDeliveries,
  sendEvent,
  timeTravel,
  verifiedBy,
} from "../support/webhooks.ts";

const json = async <T = Record<string, unknown>>(res: Response) => (await res.json()) as T;
type Envelope = { error: { code: string; details?: { issues?: { path: string }[] } } };
const deliveriesOf = async (webhookId: string) =>
  (
    await withDb((db) =>
      db.query<{ id: string; status: string; sequence: number; event_type: string; attempt_count: number }>(
        "select id, status, sequence::int as sequence, event_type, attempt_count from webhook_deliveries where webhook_id = $1 order by 3",
        [webhookId],
      ),
    )
  ).rows;
const other = { scopes: ["internal", "webhooks:read", "webhooks:write"] };

describe("attempt log", () => {
  it("lists every attempt with headers sent (signature redacted), the response and the error class", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, {
      script: [{ status: 503, headers: { "x-upstream": "busy" }, body: "try later" }],
      otherwise: { status: 200, body: "thanks" },
    });
    const w = await register(org, hook.url, ["team.*"], { headers: { "X-Tenant": "blue" } });
    await sendEvent(org);
    await endpoint(w.id).drain();
    await timeTravel(w.id, 3_600_000);
    await endpoint(w.id).drain();
    const [d] = await deliveriesOf(w.id);
    const res = await api(`/v1/orgs/${org}/deliveries/${d!.id}/attempts`, { org });
    expect(res.status).toBe(200);
    const { attempts } = await json<{
      attempts: {
        attemptNumber: number;
        success: boolean;
        latencyMs: number;
        requestHeaders: Record<string, string>;
        responseStatus: number;
        responseHeaders: Record<string, string>;
        responseBody: string;
        errorType: string | null;
        attemptedAt: string;
      }[];
    }>(res);
    expect(attempts.map((a) => [a.attemptNumber, a.success, a.responseStatus, a.errorType])).toEqual([
      [1, false, 503, "http_5xx"],
      [2, true, 200, null],
    ]);
    const [first, second] = attempts;
    expect(first!.requestHeaders).toMatchObject({
      "webhook-id": d!.id,
      "webhook-sequence": "1",
      "webhook-signature": "[redacted]",
      "X-Tenant": "blue",
    });
    expect(JSON.stringify(first!.requestHeaders)).not.toContain("v1,");
    expect(first!.responseHeaders["x-upstream"]).toBe("busy");
    expect(first!.responseBody).toBe("try later");
    expect(second!.responseBody).toBe("thanks");
    expect(first!.latencyMs).toBeGreaterThanOrEqual(0);
    expect(Date.parse(second!.attemptedAt)).toBeGreaterThanOrEqual(Date.parse(first!.attemptedAt));
    // What the receiver saw carries the real signature, which verifies.
    expect(verifiedBy(w.secret, (await received(hook.name)).requests[1]!)).toBeTruthy();
  });

  // A receiver controls what it answers: a NUL byte in its body (or a header) must not keep the
  // attempt out of Postgres — the flush would fail on every retry and the history never show it.
  it("records an answer holding U+0000 (with U+FFFD in its place) and the delivery as succeeded", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { otherwise: { status: 200, body: "ok\u0000done" } });
    const w = await register(org, hook.url, ["team.*"]);
    await sendEvent(org);
    await endpoint(w.id).drain();
    const [d] = await deliveriesOf(w.id);
    expect(d!.status).toBe("succeeded");
    const { attempts } = await json<{ attempts: { responseBody: string; success: boolean }[] }>(
      await api(`/v1/orgs/${org}/deliveries/${d!.id}/attempts`, { org }),
    );
    expect(attempts).toEqual([expect.objectContaining({ success: true, responseBody: "ok\uFFFDdone" })]);
  });

  it("answers 404 for another organization's delivery and 400 for bad input", async () => {
    const org = newOrg();
    const w = await register(org, newHook().url, ["team.*"]);
    await sendEvent(org);
    await endpoint(w.id).drain();
    const [d] = await deliveriesOf(w.id);
    const foreign = await api(`/v1/orgs/${newOrg()}/deliveries/${d!.id}/attempts`, other);
    expect(foreign.status).toBe(404);
    expect((await json<Envelope>(foreign)).error.code).toBe("not_found");
    expect((await api(`/v1/orgs/${org}/deliveries/msg_nope/attempts`, { org })).status).toBe(404);
    const bad = await api(`/v1/orgs/${org}/deliveries/${d!.id}/attempts?limit=0`, { org });
    expect(bad.status).toBe(400);
    expect((await json<Envelope>(bad)).error.code).toBe("validation_error");
  });
});

describe("event-type catalog", () => {
  it("lists every type with its description, data schema and example", async () => {
    const res = await api("/v1/event-types", { scopes: ["webhooks:read"] });
    expect(res.status).toBe(200);
    const { eventTypes } = await json<{
      eventTypes: { type: string; description: string; schema: { required?: string[] }; example: unknown }[];
    }>(res);
    const created = eventTypes.find((t) => t.type === "team.created")!;
    expect(created.schema.required).toEqual(["teamId", "name", "parentTeamId"]);
    expect(created.example).toMatchObject({ teamId: expect.any(String) });
    expect(eventTypes.map((t) => t.type)).toContain("webhook.disabled");
    expect((await api("/v1/event-types", { scopes: ["usage:read"] })).status).toBe(403);
    expect((await api("/v1/event-types", { token: null })).status).toBe(401);
  });
});

describe("per-endpoint settings", () => {
  it("stores overrides, shows effective values, resets with null; bad settings are a 400 and change nothing", async () => {
    const org = newOrg();
    const w = await register(org, newHook().url, ["team.*"], {
      settings: { maxAttempts: 3, timeoutMs: 500, rateLimitPerSecond: 5, ordered: true },
    });
    const got = await json<{ settings: Record<string, unknown> }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org }),
    );
    expect(got.settings).toMatchObject({ maxAttempts: 3, timeoutMs: 500, rateLimitPerSecond: 5, ordered: true });
    expect(got.settings.backoffCapMs).toBe(3_600_000); // the global default
    const patched = await json<{ settings: Record<string, unknown> }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}`, {
        org,
        method: "PATCH",
        body: { settings: { maxAttempts: null, circuitCooldownMs: 5_000 } },
      }),
    );
    expect(patched.settings).toMatchObject({ maxAttempts: 15, circuitCooldownMs: 5_000, timeoutMs: 500 });

    for (const settings of [{ maxAttempts: 0 }, { retries: 3 }, { backoffBaseMs: 10_000, backoffCapMs: 5_000 }]) {
      const res = await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org, method: "PATCH", body: { settings } });
      expect(res.status, JSON.stringify(settings)).toBe(400);
      expect((await json<Envelope>(res)).error.code).toBe("validation_error");
    }
    const after = await json<{ settings: Record<string, unknown> }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org }),
    );
    expect(after.settings).toEqual(patched.settings);
    const reg = await api(`/v1/orgs/${org}/webhooks`, {
      org,
      body: { url: newHook().url, events: ["*"], settings: { timeoutMs: 5 } },
    });
    expect(reg.status).toBe(400);
    const { rows } = await withDb((db) => db.query("select 1 from webhooks where organization_id = $1", [org]));
    expect(rows).toHaveLength(1);
    const foreign = await api(`/v1/orgs/${newOrg()}/webhooks/${w.id}`, {
      ...other,
      method: "PATCH",
      body: { settings: { maxAttempts: 2 } },
    });
    expect(foreign.status).toBe(404);
  });

  it("honours the endpoint's own attempt limit", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { otherwise: { status: 500 } });
    const w = await register(org, hook.url, ["team.*"], { settings: { maxAttempts: 2 } });
    await sendEvent(org);
    await endpoint(w.id).drain();
    await timeTravel(w.id, 3_600_000);
    await endpoint(w.id).drain();
    expect(await deliveriesOf(w.id)).toEqual([expect.objectContaining({ status: "failed", attempt_count: 2 })]);
  });

  it("paces deliveries to the rate limit: the rest wait for the alarm, none is dropped", async () => {
    const org = newOrg();
    const hook = newHook();
    const w = await register(org, hook.url, ["team.*"], { settings: { rateLimitPerSecond: 2 } });
    for (let i = 0; i < 5; i++) await sendEvent(org, "team.created", { i });
    await endpoint(w.id).drain();
    expect((await received(hook.name)).requests).toHaveLength(2);
    expect(await endpoint(w.id).pending()).toBe(3);
    const alarm = await runInDurableObject(endpoint(w.id), (_i: unknown, s: DurableObjectState) =>
      s.storage.getAlarm(),
    );
    expect(alarm! - Date.now()).toBeLessThanOrEqual(1_000);
    await timeTravel(w.id, 1_000);
    expect(await runDurableObjectAlarm(endpoint(w.id))).toBe(true);
    expect((await received(hook.name)).requests).toHaveLength(4);
    await timeTravel(w.id, 1_000);
    await runDurableObjectAlarm(endpoint(w.id));
    await endpoint(w.id).drain();
    expect((await deliveriesOf(w.id)).map((d) => d.status)).toEqual(Array(5).fill("succeeded"));
  });
});

describe("ordering", () => {
  it("numbers every delivery gap-free per endpoint, in the body and the webhook-sequence header, also under concurrency", async () => {
    const org = newOrg();
    const hook = newHook();
    const a = await register(org, hook.url, ["team.*"]);
    const b = await register(org, newHook().url, ["team.created"]);
    const ids = Array.from({ length: 20 }, () => `evt_${crypto.randomUUID()}`);
    // Concurrent events, each sent twice (a retried POST): no number is used twice or skipped.
    await Promise.all([...ids, ...ids.slice(0, 10)].map((id) => sendEvent(org, "team.created", {}, id)));
    await sendEvent(org, "team.updated"); // only a
    await endpoint(a.id).drain();
    const seqA = (await deliveriesOf(a.id)).map((d) => Number(d.sequence));
    expect(seqA).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    expect((await deliveriesOf(b.id)).map((d) => Number(d.sequence))).toEqual(
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    for (const r of (await received(hook.name)).requests) {
      const body = verifiedBy(a.secret, r) as { sequence: number };
      expect(r.headers["webhook-sequence"]).toBe(String(body.sequence));
    }
  });

  it("ordered mode: one in flight in sequence; a failing head blocks its endpoint only, visibly", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { script: [{ status: 500 }], otherwise: { status: 200 } });
    const w = await register(org, hook.url, ["team.*"], { settings: { ordered: true } });
    const free = newHook();
    const unordered = await register(org, free.url, ["team.*"]);
    for (let i = 0; i < 3; i++) await sendEvent(org, "team.created", { i });
    await endpoint(w.id).drain();
    await endpoint(unordered.id).drain();
    expect((await received(hook.name)).requests).toHaveLength(1); // the head failed; the others wait
    expect((await received(free.name)).requests).toHaveLength(3); // another endpoint is not held up
    const blocked = await json<{ blockedBy: { sequence: number; attempts: number; lastError: string } }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org }),
    );
    expect(blocked.blockedBy).toMatchObject({ sequence: 1, attempts: 1, lastError: "HTTP 500" });
    await timeTravel(w.id, 3_600_000);
    await endpoint(w.id).drain();
    const seqs = (await received(hook.name)).requests.map((r) => r.headers["webhook-sequence"]);
    expect(seqs).toEqual(["1", "1", "2", "3"]);
    expect((await received(hook.name)).maxInFlight).toBe(1);
    const after = await json<{ blockedBy: unknown }>(await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org }));
    expect(after.blockedBy).toBeNull();
  });
});

describe("auto-disable", () => {
  it("disables an endpoint failing for its period: webhook.disabled, an e-mail, held events; re-enable and recover deliver them", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { otherwise: { status: 500 } });
    const w = await register(org, hook.url, ["team.*"], {
      settings: { disableAfterFailingMs: 86_400_000, circuitFailureThreshold: 1_000 },
      notificationEmail: "ops@example.com",
    });
    const since = new Date(Date.now() - 1_000).toISOString();
    await sendEvent(org);
    await endpoint(w.id).drain();
    await timeTravel(w.id, 3_600_000); // one hour of failures: not yet
    await endpoint(w.id).drain();
    expect((await json<{ active: boolean }>(await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org }))).active).toBe(true);
    await timeTravel(w.id, 86_400_000); // a day of failures
    await endpoint(w.id).drain();
    const got = await json<{ active: boolean; disabledReason: string }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org }),
    );
    expect(got.active).toBe(false);
    expect(got.disabledReason).toMatch(/^every attempt failed since /);
    const { rows: events } = await withDb((db) =>
      db.query<{ event: { data: { cause: string } } }>(
        "select event from outbox where organization_id = $1 and type = 'webhook.disabled'",
        [org],
      ),
    );
    expect(events.map((e) => e.event.data.cause)).toEqual(["failing"]);
    const { rows: mails } = await withDb((db) =>
      db.query<{ to_address: string; subject: string }>(
        "select to_address, subject from outbound_emails where organization_id = $1 and kind = 'webhook.disabled'",
        [org],
      ),
    );
    expect(mails).toEqual([{ to_address: "ops@example.com", subject: `Webhook endpoint disabled: ${hook.url}` }]);

    // Events meanwhile are held; re-enable, fix the receiver, recover.
    await sendEvent(org);
    await script(hook.name, { otherwise: { status: 200 } });
    await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org, method: "PATCH", body: { active: true } });
    const recovered = await json<{ requeued: number }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}/recover`, { org, body: { since } }),
    );
    expect(recovered.requeued).toBe(1); // the held one; the first is still pending in its object
    await timeTravel(w.id, 3_600_000);
    await endpoint(w.id).drain();
    expect((await deliveriesOf(w.id)).map((d) => d.status)).toEqual(["succeeded", "succeeded"]);
  });

  it("re-enabling restarts the auto-disable clock: failures before it do not count", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { otherwise: { status: 500 } });
    const w = await register(org, hook.url, ["team.*"], {
      settings: { disableAfterFailingMs: 86_400_000, circuitFailureThreshold: 1_000 },
    });
    await sendEvent(org);
    await endpoint(w.id).drain(); // failing since now
    const patch = (active: boolean) =>
      api(`/v1/orgs/${org}/webhooks/${w.id}`, { org, method: "PATCH", body: { active } });
    await patch(false);
    await patch(true);
    await timeTravel(w.id, 2 * 86_400_000); // the retry is due; the old failure would be two days old
    await endpoint(w.id).drain();
    expect((await json<{ active: boolean }>(await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org }))).active).toBe(true);
    expect((await received(hook.name)).requests.length).toBeGreaterThanOrEqual(2);
  });

  it("without a notification address, tells the e-mail of the token that registered it", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { otherwise: { status: 410 } });
    const res = await api(`/v1/orgs/${org}/webhooks`, {
      org,
      email: "creator@example.com",
      body: { url: hook.url, events: ["team.*"] },
    });
    const w = await json<{ id: string }>(res);
    await sendEvent(org);
    await endpoint(w.id).drain();
    const { rows } = await withDb((db) =>
      db.query<{ to_address: string }>(
        "select to_address from outbound_emails where organization_id = $1 and kind = 'webhook.disabled'",
        [org],
      ),
    );
    expect(rows).toEqual([{ to_address: "creator@example.com" }]);
  });
});

describe("bulk replay", () => {
  it("recovers by range, type and status, each on a fresh schedule; bad input is a 400 and requeues nothing", async () => {
    const org = newOrg();
    const hook = newHook();
    const w = await register(org, hook.url, ["*"]);
    const since = new Date(Date.now() - 1_000).toISOString();
    for (const t of ["team.created", "team.updated", "member.added"]) await sendEvent(org, t);
    await endpoint(w.id).drain();
    await withDb((db) =>
      db.query(
        "update webhook_deliveries set status = 'failed' where webhook_id = $1 and event_type <> 'team.updated'",
        [w.id],
      ),
    );
    const recover = (body: unknown, pathOrg = org) =>
      api(`/v1/orgs/${pathOrg}/webhooks/${w.id}/recover`, pathOrg === org ? { org, body } : { ...other, body });
    for (const body of [
      { since: "yesterday" },
      { since, until: new Date(Date.now() - 86_400_000).toISOString() },
      { since, status: ["pending"] },
      { since, eventTypes: ["nope.*"] },
      { since, extra: 1 },
    ]) {
      const res = await recover(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((await json<Envelope>(res)).error.code).toBe("validation_error");
    }
    expect((await deliveriesOf(w.id)).map((d) => d.status).sort()).toEqual(["failed", "failed", "succeeded"]);
    expect((await recover({ since }, newOrg())).status).toBe(404); // another organization's webhook

    const resend = await json<{ requeued: number }>(await recover({ since, status: ["succeeded"] }));
    expect(resend.requeued).toBe(1); // team.updated, sent again
    const members = await json<{ requeued: number }>(await recover({ since, eventTypes: ["member.*"] }));
    expect(members.requeued).toBe(1);
    const none = await json<{ requeued: number }>(
      await recover({ since: new Date(Date.now() + 60_000).toISOString(), status: ["failed"] }),
    );
    expect(none.requeued).toBe(0);
    await endpoint(w.id).drain();
    const rows = await deliveriesOf(w.id);
    expect(Object.fromEntries(rows.map((d) => [d.event_type, d.status]))).toEqual({
      "team.created": "failed",
      "team.updated": "succeeded",
      "member.added": "succeeded",
    });
    expect(rows.find((d) => d.event_type === "team.updated")!.attempt_count).toBe(2);
  });
});

describe("delivery history filters", () => {
  type Page = {
    deliveries: { id: string; eventType: string; status: string; createdAt: string }[];
    total: number;
    hasMore: boolean;
    nextCursor: string | null;
  };
  async function seeded() {
    const org = newOrg();
    const w = await register(org, newHook().url, ["*"]);
    const all = await seedDeliveries(org, w.id, 12);
    const list = (q: Record<string, string>) =>
      api(`/v1/orgs/${org}/webhooks/${w.id}/deliveries?${new URLSearchParams(q)}`, { org });
    return { org, w, all, list };
  }
  const ids = (p: Page) => p.deliveries.map((d) => d.id);

  it("filters by event type or pattern and by creation time [since, until), newest first, with totals", async () => {
    const { all, list } = await seeded();
    const created = await json<Page>(await list({ eventType: "team.created" }));
    const expected = all.filter((d) => d.eventType === "team.created");
    expect(ids(created)).toEqual(expected.map((d) => d.id));
    expect(created.total).toBe(expected.length);
    const team = await json<Page>(await list({ eventType: "team.*", limit: "100" }));
    expect(ids(team)).toEqual(all.filter((d) => d.eventType.startsWith("team.")).map((d) => d.id));
    expect(ids(await json<Page>(await list({ eventType: "*", limit: "100" })))).toEqual(all.map((d) => d.id));

    // since is inclusive, until exclusive: rows 3..7 bound the window, rows 4..7 are in it.
    const window = await json<Page>(await list({ since: all[7]!.createdAt, until: all[3]!.createdAt }));
    expect(ids(window)).toEqual(all.slice(4, 8).map((d) => d.id));
    expect(window.total).toBe(4);
    const recent = await json<Page>(await list({ since: all[2]!.createdAt }));
    expect(ids(recent)).toEqual(all.slice(0, 3).map((d) => d.id));
  });

  it("pages through a filtered history with the cursor, every match once, in order", async () => {
    const { all, list } = await seeded();
    const filter = { eventType: "team.*", status: "failed", since: all[10]!.createdAt };
    const expected = all
      .slice(0, 11)
      .filter((d) => d.eventType.startsWith("team.") && d.status === "failed")
      .map((d) => d.id);
    expect(expected.length).toBeGreaterThan(2);
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 10; i++) {
      const p: Page = await json<Page>(await list({ ...filter, limit: "2", ...(cursor ? { cursor } : {}) }));
      expect(p.total).toBe(expected.length);
      seen.push(...ids(p));
      cursor = p.nextCursor;
      expect(p.hasMore).toBe(cursor !== null);
      if (!cursor) break;
    }
    expect(seen).toEqual(expected);
  });

  it("documents the filters in the OpenAPI document", async () => {
    const doc = (await (await api("/openapi.json", { token: null })).json()) as {
      paths: Record<string, { get: { parameters: { name: string; in: string; description?: string }[] } }>;
    };
    const params = doc.paths["/v1/orgs/{organizationId}/webhooks/{webhookId}/deliveries"]!.get.parameters;
    const query = Object.fromEntries(params.filter((p) => p.in === "query").map((p) => [p.name, p.description]));
    expect(Object.keys(query).sort()).toEqual(["cursor", "eventType", "limit", "since", "status", "until"]);
    expect(query.eventType).toMatch(/pattern/);
    expect(query.since).toMatch(/at or after/);
    expect(query.until).toMatch(/before/);
  });

  it("refuses bad filters with a 400 envelope naming the parameter", async () => {
    const { all, list } = await seeded();
    const now = all[0]!.createdAt;
    for (const [q, path] of [
      [{ eventType: "nope.created" }, "eventType"],
      [{ eventType: "team.**" }, "eventType"],
      [{ since: "yesterday" }, "since"],
      [{ until: "2000-13-01T00:00:00Z" }, "until"],
      [{ since: now, until: now }, "until"],
    ] as const) {
      const res = await list(q);
      expect(res.status, JSON.stringify(q)).toBe(400);
      const body = await json<Envelope>(res);
      expect(body.error.code).toBe("validation_error");
      expect(body.error.details?.issues?.map((i) => i.path)).toContain(path);
    }
  });
});

describe("health over time and retention", () => {
  it("reports errors by type and latency percentiles per hour", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, {
      script: [{ status: 500 }, { status: 404 }, { mode: "reset" }, { delayMs: 20 }, { delayMs: 40 }],
    });
    const w = await register(org, hook.url, ["team.*"], { settings: { timeoutMs: 1_000 } });
    for (let i = 0; i < 5; i++) {
      await sendEvent(org);
      await endpoint(w.id).drain();
    }
    const h = await json<{
      errorBreakdown: { type: string; count: number }[];
      timeline: {
        hour: string;
        attempts: number;
        succeeded: number;
        p50LatencyMs: number;
        p99LatencyMs: number;
        errors: Record<string, number>;
      }[];
    }>(await api(`/v1/orgs/${org}/webhooks/${w.id}/health`, { org }));
    const attempts = h.timeline.reduce((n, b) => n + b.attempts, 0);
    expect(attempts).toBe(5);
    expect(h.timeline.reduce((n, b) => n + b.succeeded, 0)).toBe(2);
    const sum = (t: string) => h.timeline.reduce((n, b) => n + (b.errors[t] ?? 0), 0);
    expect([sum("http_5xx"), sum("http_4xx"), sum("timeout")]).toEqual([1, 1, 0]);
    expect(sum("connection") + sum("invalid_response")).toBe(1);
    for (const e of h.errorBreakdown) expect(sum(e.type), e.type).toBe(e.count);
    // Each hour's percentiles, computed here from the recorded attempts (percentile_cont: linear
    // interpolation between the closest ranks), not just ordered against each other.
    const recorded = (
      await withDb((db) =>
        db.query<{ at: Date; ms: number }>(
          "select attempted_at as at, response_time_ms as ms from webhook_attempts where webhook_id = $1",
          [w.id],
        ),
      )
    ).rows;
    const cont = (xs: number[], p: number) => {
      const pos = p * (xs.length - 1);
      const lo = Math.floor(pos);
      return xs[lo]! + (xs[Math.min(lo + 1, xs.length - 1)]! - xs[lo]!) * (pos - lo);
    };
    const r1 = (v: number) => Math.round(v * 10) / 10;
    for (const b of h.timeline) {
      expect(new Date(b.hour).getUTCMinutes()).toBe(0);
      const ms = recorded
        .filter((r) => Math.floor(new Date(r.at).getTime() / 3_600_000) * 3_600_000 === Date.parse(b.hour))
        .map((r) => r.ms)
        .sort((x, y) => x - y);
      expect(ms).toHaveLength(b.attempts);
      expect(b.p50LatencyMs).toBeCloseTo(r1(cont(ms, 0.5)), 1);
      expect(b.p99LatencyMs).toBeCloseTo(r1(cont(ms, 0.99)), 1);
    }
    // The two scripted delays make the spread wide enough to tell the percentiles apart.
    expect(Math.max(...recorded.map((r) => r.ms)) - Math.min(...recorded.map((r) => r.ms))).toBeGreaterThan(10);
    const tooLong = await api(
      `/v1/orgs/${org}/webhooks/${w.id}/health?from=${new Date(Date.now() - 100 * 86_400_000).toISOString()}&to=${new Date().toISOString()}`,
      { org },
    );
    expect(tooLong.status).toBe(400);
  });

  it("purges finished deliveries and attempts past the retention period, keeping what is pending or recent", async () => {
    const org = newOrg();
    const w = await register(org, newHook().url, ["team.*"]);
    const old = (id: string, status: string) =>
      withDb(async (db) => {
        await db.query(
          `insert into webhook_deliveries (id, webhook_id, organization_id, event_id, event_type, payload, status, created_at, sequence)
           values ($1, $2, $3, $1, 'team.created', '{}', $4, now() - interval '40 days', null)`,
          [id, w.id, org, status],
        );
        await db.query(
          `insert into webhook_attempts (delivery_id, webhook_id, attempt_number, attempted_at, success, response_time_ms)
           values ($1, $2, 1, now() - interval '40 days', true, 5)`,
          [id, w.id],
        );
      });
    await old(`msg_old_done_${w.id}`, "succeeded");
    await old(`msg_old_pending_${w.id}`, "pending");
    await sendEvent(org);
    await endpoint(w.id).drain();
    const platform = createPlatform(env, createExecutionContext(), createLogger());
    try {
      const svc = createWebhookService(platform);
      // Small batches: the purge works through them, and says when it stopped with more to do.
      const r = await svc.purgeHistory({ batchSize: 1, maxBatches: 1 });
      expect(r).toMatchObject({ attempts: 1, more: true });
      const all = await svc.purgeHistory();
      expect(all.more).toBe(false);
    } finally {
      platform.close();
    }
    const left = await withDb((db) =>
      db.query<{ id: string; attempts: number }>(
        `select d.id, (select count(*)::int from webhook_attempts a where a.delivery_id = d.id) as attempts
         from webhook_deliveries d where d.webhook_id = $1 order by d.created_at`,
        [w.id],
      ),
    );
    expect(left.rows.map((r) => [r.id.startsWith("msg_old") ? r.id.split("_")[2] : "recent", r.attempts])).toEqual([
      ["pending", 0],
      ["recent", 1],
    ]);
  });
});
