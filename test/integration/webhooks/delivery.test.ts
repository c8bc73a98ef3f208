import { env } from "cloudflare:workers";
import {
  createExecutionContext,
  evictDurableObject,
  runDurableObjectAlarm,
  runInDurableObject,
  waitOnExecutionContext,
} from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { app } from "../../../src/app.ts";
import type { Job, JobStore } from "../../../src/webhooks/queue.ts";
import { api, tokenFor } from "../support/api.ts";
import { withDb } from "../support/backends.ts";
import {
  endpoint,
  newHook,
  newOrg,
  received,
  register,
  script,
  sendEvent,
  timeTravel,
  verifiedBy,
} from "../support/webhooks.ts";

const json = async <T = Record<string, unknown>>(res: Response) => (await res.json()) as T;

describe("registration and management", () => {
  it("registers with a whsec_ secret shown once, masked afterwards, revealed on request", async () => {
    const org = newOrg();
    const w = await register(org, newHook().url, ["team.*", "member.added"], {
      description: "ops",
      headers: { "X-Env": "test" },
    });
    expect(w.secret).toMatch(/^whsec_[A-Za-z0-9+/]{40,}={0,2}$/);
    const got = await json<{
      secret: string;
      events: string[];
      headers: Record<string, string>;
      stats: { totalDeliveries: number };
    }>(await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org }));
    expect(got.secret).not.toBe(w.secret);
    expect(got.secret).toContain("****");
    expect(got).toMatchObject({
      events: ["team.*", "member.added"],
      headers: { "X-Env": "test" },
      stats: { totalDeliveries: 0 },
    });
    const secret = await json<{ secret: string }>(await api(`/v1/orgs/${org}/webhooks/${w.id}/secret`, { org }));
    expect(secret.secret).toBe(w.secret);
  });

  it("rejects SSRF targets and plain http when local http is off, with nothing written", async () => {
    const org = newOrg();
    const strict = { ...env, WEBHOOK_ALLOW_LOCAL_HTTP: "false" };
    const token = await tokenFor({ org });
    for (const url of [
      "http://127.0.0.1:9/x",
      "https://127.0.0.1/x",
      "https://10.1.2.3/",
      "https://169.254.169.254/latest",
      "https://[::ffff:127.0.0.1]/",
      "https://user:pw@example.com/",
      "ftp://example.com/",
    ]) {
      const ctx = createExecutionContext();
      const res = await app.request(
        `/v1/orgs/${org}/webhooks`,
        {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ url, events: ["*"] }),
        },
        strict,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      expect(res.status, url).toBe(400);
      expect((await json<{ error: { code: string } }>(res)).error.code).toBe("validation_error");
    }
    const { rows } = await withDb((db) => db.query("select 1 from webhooks where organization_id = $1", [org]));
    expect(rows).toHaveLength(0);
  });

  it("rejects unknown event types and reserved headers", async () => {
    const org = newOrg();
    const bad = await api(`/v1/orgs/${org}/webhooks`, { org, body: { url: newHook().url, events: ["team.exploded"] } });
    expect(bad.status).toBe(400);
    const hdr = await api(`/v1/orgs/${org}/webhooks`, {
      org,
      body: { url: newHook().url, events: ["*"], headers: { "Webhook-Signature": "x" } },
    });
    expect(hdr.status).toBe(400);
    expect(JSON.stringify(await hdr.json())).toContain("cannot be overridden");
  });

  it("lists with cursor pagination, totals and the active filter; hides other orgs", async () => {
    const org = newOrg();
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await register(org, newHook().url)).id);
    await api(`/v1/orgs/${org}/webhooks/${ids[4]}`, { org, method: "PATCH", body: { active: false } });
    const p1 = await json<{ webhooks: { id: string }[]; total: number; hasMore: boolean; nextCursor: string }>(
      await api(`/v1/orgs/${org}/webhooks?limit=2`, { org }),
    );
    expect(p1).toMatchObject({ total: 5, hasMore: true });
    const p2 = await json<{ webhooks: { id: string }[] }>(
      await api(`/v1/orgs/${org}/webhooks?limit=10&cursor=${encodeURIComponent(p1.nextCursor)}`, { org }),
    );
    expect([...p1.webhooks, ...p2.webhooks].map((w) => w.id)).toEqual(ids);
    const active = await json<{ total: number }>(await api(`/v1/orgs/${org}/webhooks?active=true`, { org }));
    expect(active.total).toBe(4);
    const other = await api(`/v1/orgs/${newOrg()}/webhooks/${ids[0]}`, { scopes: ["internal", "webhooks:read"] });
    expect(other.status).toBe(404);
  });

  it("replays an Idempotency-Key with the same body and refuses it with another body", async () => {
    const org = newOrg();
    const body = { url: newHook().url, events: ["*"] };
    const headers = { "idempotency-key": `k-${crypto.randomUUID()}` };
    const a = await api(`/v1/orgs/${org}/webhooks`, { org, body, headers });
    const b = await api(`/v1/orgs/${org}/webhooks`, { org, body, headers });
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(b.headers.get("idempotent-replayed")).toBe("true");
    expect((await json<{ id: string }>(b)).id).toBe((await json<{ id: string }>(a)).id);
    const c = await api(`/v1/orgs/${org}/webhooks`, { org, body: { ...body, description: "other" }, headers });
    expect(c.status).toBe(409);
  });
});

describe("delivery", () => {
  it("delivers a signed Standard Webhooks request end to end and records it everywhere", async () => {
    const org = newOrg();
    const hook = newHook();
    const w = await register(org, hook.url, ["team.*"], { headers: { "X-Tenant": org } });
    const sent = await sendEvent(org, "team.created", { teamId: "t1" });
    expect(sent).toMatchObject({ queued: 1, webhookIds: [w.id] });
    await endpoint(w.id).drain();
    const { requests } = await received(hook.name);
    expect(requests).toHaveLength(1);
    const req = requests[0]!;
    const payload = verifiedBy(w.secret, req) as {
      id: string;
      type: string;
      eventId: string;
      organizationId: string;
      data: unknown;
    };
    expect(payload).toMatchObject({
      type: "team.created",
      eventId: sent.eventId,
      organizationId: org,
      data: { teamId: "t1" },
    });
    expect(req.headers["webhook-id"]).toBe(payload.id);
    expect(req.headers["x-tenant"]).toBe(org);
    expect(req.headers["content-type"]).toBe("application/json");

    const status = await json<{ deliveries: { status: string; attemptNumber: number; responseStatus: number }[] }>(
      await api(`/v1/orgs/${org}/webhook-events/${sent.eventId}/deliveries`, { org }),
    );
    expect(status.deliveries).toEqual([
      expect.objectContaining({ status: "succeeded", attemptNumber: 1, responseStatus: 200 }),
    ]);
    const history = await json<{ deliveries: { id: string }[]; total: number }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}/deliveries?status=succeeded`, { org }),
    );
    expect(history.total).toBe(1);
    const got = await json<{
      stats: { totalDeliveries: number; successfulDeliveries: number; lastDeliveryStatus: string };
    }>(await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org }));
    expect(got.stats).toMatchObject({ totalDeliveries: 1, successfulDeliveries: 1, lastDeliveryStatus: "succeeded" });
  });

  it("does not deliver events the webhook is not subscribed to, nor to inactive webhooks", async () => {
    const org = newOrg();
    const a = await register(org, newHook().url, ["member.*"]);
    const b = await register(org, newHook().url, ["*"]);
    await api(`/v1/orgs/${org}/webhooks/${b.id}`, { org, method: "PATCH", body: { active: false } });
    const sent = await sendEvent(org, "team.updated");
    expect(sent.queued).toBe(0);
    const member = await sendEvent(org, "member.added");
    expect(member.webhookIds).toEqual([a.id]);
  });

  it("records events for a disabled webhook as held; re-enabling and recover deliver them", async () => {
    const org = newOrg();
    const hook = newHook();
    const w = await register(org, hook.url, ["team.*"]);
    await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org, method: "PATCH", body: { active: false } });
    const since = new Date(Date.now() - 1_000).toISOString();
    const sent = [];
    for (let i = 0; i < 3; i++) sent.push(await sendEvent(org, "team.created", { n: i }));
    expect(sent.map((e) => e.queued)).toEqual([0, 0, 0]);

    const history = await json<{ deliveries: { status: string; eventId: string }[]; total: number }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}/deliveries?status=held`, { org }),
    );
    expect(history.total).toBe(3);
    expect(history.deliveries.map((d) => d.eventId).sort()).toEqual(sent.map((e) => e.eventId).sort());
    const status = await json<{ deliveries: { status: string }[]; summary: Record<string, { status: string }> }>(
      await api(`/v1/orgs/${org}/webhook-events/${sent[0]!.eventId}/deliveries`, { org }),
    );
    expect(status.deliveries).toEqual([expect.objectContaining({ status: "held", attemptNumber: 0 })]);
    expect(status.summary[w.id]).toEqual({ status: "held", attempts: 0 });

    // Re-enabling alone does not send what was held (Svix semantics): recover does.
    await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org, method: "PATCH", body: { active: true } });
    await endpoint(w.id).drain();
    expect((await received(hook.name)).requests).toHaveLength(0);
    const recovered = await json<{ requeued: number }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}/recover`, { org, body: { since } }),
    );
    expect(recovered.requeued).toBe(3);
    await endpoint(w.id).drain();
    const got = (await received(hook.name)).requests.map((r) => verifiedBy(w.secret, r) as { eventId: string });
    expect(got.map((p) => p.eventId).sort()).toEqual(sent.map((e) => e.eventId).sort());
    const after = await json<{ total: number }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}/deliveries?status=succeeded`, { org }),
    );
    expect(after.total).toBe(3);
  });

  it("is idempotent on eventId: one delivery per webhook, same webhook-id", async () => {
    const org = newOrg();
    const hook = newHook();
    const w = await register(org, hook.url);
    const eventId = `evt_${crypto.randomUUID()}`;
    await sendEvent(org, "team.created", {}, eventId);
    await sendEvent(org, "team.created", {}, eventId);
    await endpoint(w.id).drain();
    const { rows } = await withDb((db) => db.query("select id from webhook_deliveries where event_id = $1", [eventId]));
    expect(rows).toHaveLength(1);
    expect((await received(hook.name)).requests).toHaveLength(1);
  });

  it("retries with backoff through the alarm until the endpoint answers, keeping the webhook-id", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { script: [{ status: 500 }, { status: 503 }], otherwise: { status: 204 } });
    const w = await register(org, hook.url);
    const sent = await sendEvent(org);
    // The hand-off starts the first attempt at once; drain waits for it (and its write to Postgres).
    await endpoint(w.id).drain();
    const { rows } = await withDb((db) =>
      db.query<{ status: string; scheduled_at: Date; attempt_count: number }>(
        "select status, scheduled_at, attempt_count from webhook_deliveries where event_id = $1",
        [sent.eventId],
      ),
    );
    const delay = new Date(rows[0]!.scheduled_at).getTime() - Date.now();
    expect(rows[0]).toMatchObject({ status: "pending", attempt_count: 1 });
    expect(delay).toBeGreaterThan(60_000 * 0.8 - 5_000); // base 60 s in tests, ±20 % jitter
    expect(delay).toBeLessThan(60_000 * 1.2);
    for (let i = 0; i < 2; i++) {
      await timeTravel(w.id, 3_600_000);
      expect(await runDurableObjectAlarm(endpoint(w.id))).toBe(true);
    }
    const reqs = (await received(hook.name)).requests;
    expect(reqs.map((r) => r.headers["webhook-id"])).toEqual(Array(3).fill(reqs[0]!.headers["webhook-id"]));
    const after = await withDb((db) =>
      db.query<{ status: string; attempt_count: number }>(
        "select status, attempt_count from webhook_deliveries where event_id = $1",
        [sent.eventId],
      ),
    );
    expect(after.rows[0]).toEqual({ status: "succeeded", attempt_count: 3 });
  });

  it("honours Retry-After on 429", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { script: [{ status: 429, headers: { "retry-after": "7200" } }] });
    const w = await register(org, hook.url);
    const sent = await sendEvent(org);
    await endpoint(w.id).drain();
    const { rows } = await withDb((db) =>
      db.query<{ scheduled_at: Date }>("select scheduled_at from webhook_deliveries where event_id = $1", [
        sent.eventId,
      ]),
    );
    // Clamped to the 1 h cap.
    expect(new Date(rows[0]!.scheduled_at).getTime() - Date.now()).toBeGreaterThan(3_500_000);
  });

  it("classifies timeouts, resets, redirects and garbage as failures with their types", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, {
      script: [
        { delayMs: 2_500 },
        { mode: "reset" },
        { status: 302, headers: { location: "https://example.com/" } },
        { mode: "garbage" },
      ],
    });
    const w = await register(org, hook.url);
    await endpoint(w.id).drain(); // nothing yet
    for (let i = 0; i < 4; i++) {
      await sendEvent(org);
      await endpoint(w.id).drain();
    }
    const health = await json<{
      successRate: number;
      errorBreakdown: { type: string; count: number }[];
      deliveriesInPeriod: number;
    }>(await api(`/v1/orgs/${org}/webhooks/${w.id}/health`, { org }));
    const types = Object.fromEntries(health.errorBreakdown.map((e) => [e.type, e.count]));
    expect(types).toMatchObject({ timeout: 1, http_3xx: 1 });
    expect((types.connection ?? 0) + (types.invalid_response ?? 0)).toBeGreaterThanOrEqual(2);
    expect(health.successRate).toBe(0);
    expect(health.deliveriesInPeriod).toBe(4);
  });

  it("treats a 2xx with a body slower than the timeout as delivered", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { script: [{ mode: "slow-body" }] });
    const w = await register(org, hook.url);
    const sent = await sendEvent(org);
    await endpoint(w.id).drain();
    const { rows } = await withDb((db) =>
      db.query<{ status: string }>("select status from webhook_deliveries where event_id = $1", [sent.eventId]),
    );
    expect(rows[0]?.status).toBe("succeeded");
  });

  it("disables the webhook on 410 Gone and emits webhook.disabled", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { otherwise: { status: 410 } });
    const w = await register(org, hook.url);
    await sendEvent(org);
    await endpoint(w.id).drain();
    const got = await json<{ active: boolean; disabledReason: string }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org }),
    );
    expect(got).toMatchObject({ active: false, disabledReason: "endpoint answered 410 Gone" });
    const { rows } = await withDb((db) =>
      db.query("select 1 from outbox where type = 'webhook.disabled' and organization_id = $1", [org]),
    );
    expect(rows).toHaveLength(1);
  });

  it("sleeps once disabled by 410 Gone: no alarm while deliveries are held, delivered after re-enabling", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { otherwise: { status: 410 } });
    const w = await register(org, hook.url, ["team.*"]);
    // Seven deliveries handed over at once (events sent one by one would race the object's own alarm):
    // the first wave of four is answered 410, the other three are held.
    const jobs = await withDb(async (db) => {
      const out: Job[] = [];
      for (let i = 0; i < 7; i++) {
        const deliveryId = `msg_gone_${i}_${w.id}`;
        const eventId = `evt_gone_${i}_${w.id}`;
        const body = JSON.stringify({ id: deliveryId, type: "team.created" });
        await db.query(
          `insert into webhook_deliveries (id, webhook_id, organization_id, event_id, event_type, payload)
           values ($1, $2, $3, $4, 'team.created', $5)`,
          [deliveryId, w.id, org, eventId, body],
        );
        const now = Date.now();
        out.push({
          deliveryId,
          eventId,
          eventType: "team.created",
          body,
          attempts: 0,
          scheduleBase: 0,
          dueAt: now,
          createdAt: now + i,
        });
      }
      return out;
    });
    await endpoint(w.id).enqueue(w.id, org, jobs);
    await endpoint(w.id).drain();
    const pendingIds = async () =>
      (
        await withDb((db) =>
          db.query<{ id: string }>("select id from webhook_deliveries where webhook_id = $1 and status = 'pending'", [
            w.id,
          ]),
        )
      ).rows.map((r) => r.id);
    const held = await pendingIds();
    expect(held).toHaveLength(3);
    expect(await endpoint(w.id).pending()).toBe(3);
    const alarm = () =>
      runInDurableObject(endpoint(w.id), (_i: unknown, state: DurableObjectState) => state.storage.getAlarm());
    expect(await alarm()).toBeNull();
    // Nothing wakes it behind our back: a kick finds nothing to do and still arms nothing.
    await endpoint(w.id).drain();
    expect(await alarm()).toBeNull();
    expect((await received(hook.name)).requests).toHaveLength(4);

    await script(hook.name, { otherwise: { status: 200 } });
    const patched = await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org, method: "PATCH", body: { active: true } });
    expect(patched.status).toBe(200);
    // Re-enabling re-arms the alarm (for now, so it may already be running: drain waits for it).
    await endpoint(w.id).drain();
    const delivered = (await received(hook.name)).requests
      .slice(4)
      .map((r) => verifiedBy(w.secret, r) as { id: string });
    expect(delivered.map((p) => p.id).sort()).toEqual([...held].sort());
    expect(await pendingIds()).toEqual([]);
    expect(await alarm()).toBeNull();
  });

  it("signs with both secrets during a rotation overlap", async () => {
    const org = newOrg();
    const hook = newHook();
    const w = await register(org, hook.url);
    const rotated = await json<{ secret: string }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org, method: "PATCH", body: { rotateSecret: true } }),
    );
    expect(rotated.secret).not.toBe(w.secret);
    await sendEvent(org);
    await endpoint(w.id).drain();
    const req = (await received(hook.name)).requests[0]!;
    expect(req.headers["webhook-signature"]!.split(" ")).toHaveLength(2);
    expect(verifiedBy(w.secret, req)).toBeTruthy();
    expect(verifiedBy(rotated.secret, req)).toBeTruthy();
  });

  it("delivers to one endpoint with bounded concurrency, each event once", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { otherwise: { status: 200, delayMs: 50 } });
    const w = await register(org, hook.url);
    await Promise.all(Array.from({ length: 24 }, () => sendEvent(org)));
    await endpoint(w.id).drain();
    const r = await received(hook.name);
    expect(r.requests).toHaveLength(24);
    expect(new Set(r.requests.map((q) => q.headers["webhook-id"])).size).toBe(24);
    expect(r.maxInFlight).toBeLessThanOrEqual(4);
    expect(r.maxInFlight).toBeGreaterThan(1);
  });

  it("migrates an endpoint object's SQLite from the layout before schema versions", async () => {
    const org = newOrg();
    const hook = newHook();
    const w = await register(org, hook.url, ["team.*"]);
    // A delivery persisted but never handed over (an alarm of its own would race the rebuild below).
    const id = `msg_legacy_${w.id}`;
    const d = { id, eventId: `evt_legacy_${w.id}`, payload: JSON.stringify({ id, type: "team.created" }) };
    await withDb((db) =>
      db.query(
        `insert into webhook_deliveries (id, webhook_id, organization_id, event_id, event_type, payload)
         values ($1, $2, $3, $4, 'team.created', $5)`,
        [d.id, w.id, org, d.eventId, d.payload],
      ),
    );
    await endpoint(w.id).enqueue(w.id, org, []); // the object exists, with its webhook id
    // Rebuild what an object created before versioning has: jobs without schedule_base, no version.
    await runInDurableObject(endpoint(w.id), async (_i: unknown, state: DurableObjectState) => {
      const sql = state.storage.sql;
      sql.exec("drop table jobs");
      sql.exec("drop table results");
      sql.exec("drop table _schema");
      sql.exec(`create table jobs (
        delivery_id text primary key, event_id text not null, event_type text not null, body text not null,
        attempts integer not null, due_at integer not null, created_at integer not null)`);
      sql.exec("insert into jobs values (?, ?, 'team.created', ?, 0, 0, 0)", d.id, d.eventId, d.payload);
    });
    await evictDurableObject(endpoint(w.id));
    const columns = await runInDurableObject(endpoint(w.id), async (_i: unknown, state: DurableObjectState) => ({
      names: state.storage.sql
        .exec<{ name: string }>("select name from pragma_table_info('jobs')")
        .toArray()
        .map((c) => c.name),
      schema: state.storage.sql.exec<{ version: number }>("select version from _schema").one().version,
    }));
    expect(columns.names).toContain("schedule_base");
    expect(columns.names).toContain("sequence");
    expect(columns.schema).toBe(4);
    expect(await endpoint(w.id).drain()).toMatchObject({ processed: 1, succeeded: 1 });
    expect((await received(hook.name)).requests.map((r) => r.headers["webhook-id"])).toEqual([d.id]);
  });

  it("keeps jobs in its SQLite as the in-memory store does: idempotent, replays win, stale re-hands ignored", async () => {
    const org = newOrg();
    const w = await register(org, newHook().url, ["team.*"]);
    await endpoint(w.id).enqueue(w.id, org, []); // the object exists; no alarm armed (no jobs)
    const job = (i: number, over: Partial<Job> = {}): Job => ({
      deliveryId: `msg_store_${i}_${w.id}`,
      eventId: `evt_store_${i}`,
      eventType: "team.created",
      body: JSON.stringify({ id: i, text: 'quote " and ünïcode' }),
      attempts: 0,
      scheduleBase: 0,
      dueAt: 1_000 + i,
      createdAt: i,
      sequence: i,
      ...over,
    });
    const outcome = { success: false, statusCode: 500, responseTimeMs: 1, errorType: "http_5xx" } as const;
    const seen = await runInDurableObject(endpoint(w.id), async (instance: unknown) => {
      const store = (instance as { jobs: JobStore }).jobs;
      const v0 = store.version();
      const added = [store.add([job(1), job(2), job(3, { sequence: undefined })]), store.add([job(1), job(2)])];
      const afterAdds = store.version();
      // A replay (higher scheduleBase) replaces the held schedule; an older one does not.
      store.add([job(2, { attempts: 4, scheduleBase: 4, dueAt: 5 })]);
      const afterReplay = store.version();
      store.add([job(2, { attempts: 1, scheduleBase: 1, dueAt: 9_999 })]);
      // Job 3 ends here (terminal attempt 1); a re-hand of its first attempt is stale and ignored.
      store.settle([{ job: job(3), attemptNumber: 1, attemptedAt: 0, outcome, decision: { kind: "failed" } }]);
      const staleAdded = store.add([job(3)]);
      // Job 1's attempt 1 fails and is retried: it stays, rescheduled (after the due list is read).
      const due = store.due(10_000, 10).map((j) => [j.deliveryId, j.attempts, j.scheduleBase, j.dueAt]);
      const additions = store.additions();
      store.settle([
        { job: job(1), attemptNumber: 1, attemptedAt: 0, outcome, decision: { kind: "retry", at: 77_777 } },
      ]);
      return {
        retried: store.get(job(1).deliveryId),
        additionsBumped: store.additions() - additions,
        added,
        staleAdded,
        bumps: [afterAdds - v0, afterReplay - afterAdds],
        due,
        three: store.get(job(3).deliveryId),
        size: store.size(),
      };
    });
    expect(seen.added).toEqual([3, 0]);
    expect(seen.bumps).toEqual([0, 1]); // new jobs leave a run's list valid; a replaced schedule does not
    expect(seen.due).toEqual([
      [job(2).deliveryId, 4, 4, 5],
      [job(1).deliveryId, 0, 0, 1_001],
    ]);
    expect(seen.retried).toEqual(job(1, { attempts: 1, dueAt: 77_777 }));
    expect(seen.additionsBumped).toBe(1);
    expect(seen.three).toBeUndefined();
    expect(seen.staleAdded).toBe(0);
    expect(seen.size).toBe(2);
  });

  it("loses nothing when the endpoint object is evicted mid-backlog", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { script: Array(10).fill({ status: 500 }), otherwise: { status: 200 } });
    const w = await register(org, hook.url, ["team.*"]);
    await Promise.all(Array.from({ length: 10 }, () => sendEvent(org)));
    await endpoint(w.id).drain(); // ten failures: the circuit opens after five, the rest wait
    await evictDurableObject(endpoint(w.id));
    for (let i = 0; i < 6; i++) {
      await timeTravel(w.id, 3_600_000);
      await endpoint(w.id).drain();
    }
    const ids = new Set((await received(hook.name)).requests.map((q) => q.headers["webhook-id"]));
    expect(ids.size).toBe(10);
    const { rows } = await withDb((db) =>
      db.query<{ n: number }>(
        "select count(*)::int as n from webhook_deliveries where webhook_id = $1 and status = 'succeeded'",
        [w.id],
      ),
    );
    expect(rows[0]?.n).toBe(10);
  });
});
