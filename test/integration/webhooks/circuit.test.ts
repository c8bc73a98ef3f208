import { env } from "cloudflare:workers";
import { createExecutionContext, createMessageBatch, getQueueResult, runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../../src/index.ts";
import { createEvent } from "../../../src/events/cloudevent.ts";
import { api } from "../support/api.ts";
import { unreachableDatabaseUrl, withDb } from "../support/backends.ts";
import {
  endpoint,
  failingWebhook,
  newHook,
  newOrg,
  received,
  register,
  script,
  sendEvent,
  timeTravel,
  withEndpointEnv,
} from "../support/webhooks.ts";

const json = async <T = Record<string, unknown>>(res: Response) => (await res.json()) as T;
const circuit = async (org: string, id: string) =>
  json<{ state: string; failureCount: number; successCount: number; halfOpenAt?: string }>(
    await api(`/v1/orgs/${org}/webhooks/${id}/circuit`, { org }),
  );
const statuses = async (webhookId: string) =>
  Object.fromEntries(
    (
      await withDb((db) =>
        db.query<{ status: string; n: number }>(
          "select status, count(*)::int as n from webhook_deliveries where webhook_id = $1 group by status",
          [webhookId],
        ),
      )
    ).rows.map((r) => [r.status, r.n]),
  );

describe("circuit breaker", () => {
  it("walks closed → open → half_open → closed, holding deliveries while open and emitting events", async () => {
    const org = newOrg();
    const { w, hook } = await failingWebhook(org, 8);
    // Five consecutive failures open it; the wave in flight finishes, the rest are held.
    const open = await circuit(org, w.id);
    expect(open.state).toBe("open");
    const attemptsWhenOpened = (await received(hook.name)).requests.length;
    expect(attemptsWhenOpened).toBeGreaterThanOrEqual(5);
    expect(attemptsWhenOpened).toBeLessThanOrEqual(8);
    await endpoint(w.id).drain();
    expect((await received(hook.name)).requests).toHaveLength(attemptsWhenOpened); // held, not sent
    expect((await statuses(w.id)).pending).toBe(8); // …and not dropped

    // Cooldown passes: half-open lets one probe through; it fails → open again with a longer cooldown.
    await timeTravel(w.id, 61_000);
    await endpoint(w.id).drain();
    const reopened = await circuit(org, w.id);
    expect(reopened.state).toBe("open");
    expect(new Date(reopened.halfOpenAt!).getTime() - Date.now()).toBeGreaterThan(100_000); // 2 × 60 s
    expect((await received(hook.name)).requests).toHaveLength(attemptsWhenOpened + 1);

    // Endpoint recovers: the next probes succeed, two successes close it, everything flows.
    await script(hook.name, { otherwise: { status: 200 } });
    await timeTravel(w.id, 3_600_000);
    expect(await runDurableObjectAlarm(endpoint(w.id))).toBe(true);
    expect((await circuit(org, w.id)).state).toBe("closed");
    expect(await statuses(w.id)).toEqual({ succeeded: 8 });

    const { rows } = await withDb((db) =>
      db.query<{ type: string }>(
        "select type from outbox where organization_id = $1 and type like 'webhook.circuit%' order by seq",
        [org],
      ),
    );
    expect(rows.map((r) => r.type)).toEqual([
      "webhook.circuit_opened",
      "webhook.circuit_half_opened",
      "webhook.circuit_opened",
      "webhook.circuit_half_opened",
      "webhook.circuit_closed",
    ]);
  });

  it("closes by hand with resetCircuit and lets held deliveries flow", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { script: Array(5).fill({ status: 502 }), otherwise: { status: 200 } });
    const w = await register(org, hook.url, ["team.*"]);
    for (let i = 0; i < 7; i++) await sendEvent(org);
    await endpoint(w.id).drain();
    expect((await circuit(org, w.id)).state).toBe("open");
    const reset = await json<{ reset: boolean }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}/circuit/reset`, { org, method: "POST" }),
    );
    expect(reset.reset).toBe(true);
    expect((await circuit(org, w.id)).state).toBe("closed");
    await timeTravel(w.id, 3_600_000);
    await endpoint(w.id).drain();
    expect(await statuses(w.id)).toEqual({ succeeded: 7 });
  });

  it("lists endpoints with their breakers in one call when asked (includeCircuit), each as GET …/circuit says", async () => {
    const org = newOrg();
    const failing = newHook();
    await script(failing.name, { otherwise: { status: 500 } });
    const bad = await register(org, failing.url, ["team.*"]);
    const good = await register(org, newHook().url, ["member.*"]);
    for (let i = 0; i < 6; i++) await sendEvent(org);
    await endpoint(bad.id).drain();
    type Listed = { webhooks: { id: string; circuit?: { state: string; failureCount: number } }[] };
    const listed = await json<Listed>(await api(`/v1/orgs/${org}/webhooks?includeCircuit=true`, { org }));
    expect(listed.webhooks.map((w) => [w.id, w.circuit?.state])).toEqual([
      [bad.id, "open"],
      [good.id, "closed"],
    ]);
    expect(listed.webhooks[0]!.circuit).toEqual(await circuit(org, bad.id));
    const plain = await json<Listed>(await api(`/v1/orgs/${org}/webhooks`, { org }));
    expect(plain.webhooks.every((w) => w.circuit === undefined)).toBe(true);
    expect((await api(`/v1/orgs/${org}/webhooks?includeCircuit=yes`, { org })).status).toBe(400);
  });

  // Found in review: the endpoint object's RPC methods crossed no rpcBoundary, so its Postgres
  // outage reached the Worker as a bare Error, a 500.
  it("answers 503 with Retry-After, not 500, when the endpoint object's Postgres is unreachable", async () => {
    const org = newOrg();
    const w = await register(org, newHook().url, ["team.*"]);
    await endpoint(w.id).enqueue(w.id, org, []); // the object learns its webhook
    const reset = () => api(`/v1/orgs/${org}/webhooks/${w.id}/circuit/reset`, { org, method: "POST" });
    const down = await withEndpointEnv(w.id, { DATABASE_URL: unreachableDatabaseUrl }, reset);
    const body = await json<{ error: { code: string; message: string } }>(down);
    expect(down.status, JSON.stringify(body)).toBe(503);
    expect(down.headers.get("retry-after")).toBe("1");
    expect(body.error).toMatchObject({ code: "service_unavailable", message: "database unavailable" });
    // Back up: the same call succeeds.
    expect((await reset()).status).toBe(200);
  });

  // Found by `npm run chaos`: a transition while the object's Postgres was down (its deliveries go
  // on without it) lost its event and left the mirror stale — the API said closed, Postgres open.
  it("publishes a transition made while the object's Postgres is down once it is back: events and mirror", async () => {
    const org = newOrg();
    const { w, hook } = await failingWebhook(org);
    const mirror = async () =>
      (await withDb((db) => db.query<{ s: string }>("select circuit_state as s from webhooks where id = $1", [w.id])))
        .rows[0]?.s;
    const events = async () =>
      (
        await withDb((db) =>
          db.query<{ type: string }>(
            "select type from outbox where organization_id = $1 and type like 'webhook.circuit%' order by seq",
            [org],
          ),
        )
      ).rows.map((r) => r.type);
    expect(await mirror()).toBe("open");

    // The receiver heals and the cooldown passes while the object cannot reach Postgres.
    await script(hook.name, { otherwise: { status: 200 } });
    await timeTravel(w.id, 3_600_000);
    await withEndpointEnv(w.id, { DATABASE_URL: unreachableDatabaseUrl }, () => runDurableObjectAlarm(endpoint(w.id)));
    expect((await circuit(org, w.id)).state).toBe("closed"); // it delivered, probes included
    expect(await mirror()).toBe("open"); // not written yet…
    expect(await events()).toEqual(["webhook.circuit_opened"]);

    // …and a retry is armed: Postgres back, it writes both transitions and the mirror, once.
    expect(await runDurableObjectAlarm(endpoint(w.id))).toBe(true);
    expect(await mirror()).toBe("closed");
    const published = ["webhook.circuit_opened", "webhook.circuit_half_opened", "webhook.circuit_closed"];
    expect(await events()).toEqual(published);
    await endpoint(w.id).drain();
    expect(await events()).toEqual(published);
    expect(await statuses(w.id)).toEqual({ succeeded: 6 });
  });

  it("survives a 40-minute outage simulated through alarms: every event delivered once, none lost", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { otherwise: { mode: "reset" } });
    const w = await register(org, hook.url, ["team.*"]);
    const sent: string[] = [];
    // Events keep arriving during the outage, one per simulated minute.
    for (let minute = 0; minute < 40; minute++) {
      sent.push((await sendEvent(org)).eventId);
      await endpoint(w.id).drain();
      await timeTravel(w.id, 60_000);
      await runDurableObjectAlarm(endpoint(w.id));
    }
    expect(["open", "half_open"]).toContain((await circuit(org, w.id)).state);
    // Held, not failed: the breaker stopped attempts long before retries ran out.
    expect((await statuses(w.id)).failed).toBeUndefined();
    await script(hook.name, { otherwise: { status: 200 } });
    for (let i = 0; i < 6 && (await statuses(w.id)).pending; i++) {
      await timeTravel(w.id, 3_600_000);
      await runDurableObjectAlarm(endpoint(w.id));
    }
    expect(await statuses(w.id)).toEqual({ succeeded: 40 });
    const ok = (await received(hook.name)).requests
      .filter((r) => r.body)
      .map((r) => (JSON.parse(r.body) as { eventId: string }).eventId);
    expect(new Set(ok)).toEqual(new Set(sent));
  });
});

describe("operations", () => {
  it("sends a test event through the real path", async () => {
    const org = newOrg();
    const hook = newHook();
    const w = await register(org, hook.url, ["member.*"]);
    const res = await json<{ success: boolean; statusCode: number; willRetry: boolean; deliveryId: string }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}/test`, { org, method: "POST" }),
    );
    expect(res).toMatchObject({ success: true, statusCode: 200, willRetry: false });
    const body = JSON.parse((await received(hook.name)).requests[0]!.body) as { type: string; id: string };
    expect(body).toMatchObject({ type: "webhook.test", id: res.deliveryId });
  });

  it("retries a failed delivery by hand and recovers failed deliveries in bulk", async () => {
    const org = newOrg();
    const hook = newHook();
    const w = await register(org, hook.url, ["team.*"]);
    const events = [await sendEvent(org), await sendEvent(org), await sendEvent(org)];
    await endpoint(w.id).drain();
    // Mark them exhausted, as if retries had run out.
    await withDb((db) => db.query("update webhook_deliveries set status = 'failed' where webhook_id = $1", [w.id]));
    const [first] = (
      await withDb((db) =>
        db.query<{ id: string }>("select id from webhook_deliveries where event_id = $1", [events[0]!.eventId]),
      )
    ).rows;
    const retried = await json<{ success: boolean; deliveryId: string }>(
      await api(`/v1/orgs/${org}/deliveries/${first!.id}/retry`, { org, method: "POST" }),
    );
    expect(retried).toMatchObject({ success: true, deliveryId: first!.id });
    const recovered = await json<{ requeued: number }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}/recover`, {
        org,
        body: { since: new Date(Date.now() - 60_000).toISOString() },
      }),
    );
    expect(recovered.requeued).toBe(2);
    await endpoint(w.id).drain();
    expect(await statuses(w.id)).toEqual({ succeeded: 3 });
    expect((await received(hook.name)).requests).toHaveLength(6);
    const other = await api(`/v1/orgs/${newOrg()}/deliveries/${first!.id}/retry`, {
      scopes: ["internal"],
      method: "POST",
    });
    expect(other.status).toBe(404);
  });

  it("a replay starts a fresh retry schedule: retried or recovered after exhaustion, a failure retries again", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { otherwise: { status: 500 } });
    const w = await register(org, hook.url, ["team.*"]);
    const sent = await sendEvent(org);
    const row = async (eventId: string) =>
      (
        await withDb((db) =>
          db.query<{ id: string; status: string; attempt_count: number; scheduled_at: Date }>(
            "select id, status, attempt_count, scheduled_at from webhook_deliveries where event_id = $1",
            [eventId],
          ),
        )
      ).rows[0]!;
    const numbers = async (deliveryId: string) =>
      (
        await withDb((db) =>
          db.query<{ n: number }>(
            "select attempt_number as n from webhook_attempts where delivery_id = $1 order by id",
            [deliveryId],
          ),
        )
      ).rows.map((r) => r.n);
    // Exhaust it through the real schedule: every two hours of travel make the next retry (or probe)
    // due — a capped delay is 1 h ± 20 % jitter, so one hour left half of those not yet due, and 20
    // rounds then ran out before the 15th attempt about once in 30 runs.
    await endpoint(w.id).drain();
    for (let i = 0; i < 20 && (await row(sent.eventId)).status === "pending"; i++) {
      await timeTravel(w.id, 2 * 3_600_000);
      await endpoint(w.id).drain();
    }
    const exhausted = await row(sent.eventId);
    expect(exhausted).toMatchObject({ status: "failed", attempt_count: 15 });
    await api(`/v1/orgs/${org}/webhooks/${w.id}/circuit/reset`, { org, method: "POST" });

    const retried = await json<{ success: boolean; statusCode: number; willRetry: boolean; nextRetryAt: string }>(
      await api(`/v1/orgs/${org}/deliveries/${exhausted.id}/retry`, { org, method: "POST" }),
    );
    expect(retried).toMatchObject({ success: false, statusCode: 500, willRetry: true });
    // The first step of a fresh schedule (base 60 s in tests, ±20 %), not the capped 15th.
    const delay = Date.parse(retried.nextRetryAt) - Date.now();
    expect(delay).toBeGreaterThan(60_000 * 0.8 - 5_000);
    expect(delay).toBeLessThan(60_000 * 1.2);
    expect(await row(sent.eventId)).toMatchObject({ status: "pending", attempt_count: 16 });
    await timeTravel(w.id, 3_600_000);
    await endpoint(w.id).drain();
    expect(await row(sent.eventId)).toMatchObject({ status: "pending", attempt_count: 17 });
    expect(await numbers(exhausted.id)).toEqual(Array.from({ length: 17 }, (_, i) => i + 1));

    // recover: an exhausted delivery (marked by hand) gets a fresh schedule too.
    const other = await sendEvent(org);
    const marked = await row(other.eventId);
    await endpoint(w.id).drain();
    await withDb((db) =>
      db.query("update webhook_deliveries set status = 'failed', attempt_count = 15 where id = $1", [marked.id]),
    );
    // The object still holds it mid-schedule (as after a lost hand-back); the replay's schedule wins.
    const recovered = await json<{ requeued: number }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}/recover`, {
        org,
        body: { since: new Date(Date.now() - 60_000).toISOString() },
      }),
    );
    expect(recovered.requeued).toBe(1);
    await endpoint(w.id).drain();
    expect(await row(other.eventId)).toMatchObject({ status: "pending", attempt_count: 16 });
    expect((await numbers(marked.id)).at(-1)).toBe(16);
  });

  it("counts deliveries by their current state and attempts per attempt (resend, recover)", async () => {
    type Stats = {
      totalDeliveries: number;
      successfulDeliveries: number;
      failedDeliveries: number;
      attempts: number;
      averageResponseTimeMs: number;
      lastDeliveryStatus: string | null;
    };
    const org = newOrg();
    const stats = async (id: string) =>
      (await json<{ stats: Stats }>(await api(`/v1/orgs/${org}/webhooks/${id}`, { org }))).stats;
    const meanLatency = async (id: string) => {
      const { rows } = await withDb((db) =>
        db.query<{ ms: number }>("select response_time_ms as ms from webhook_attempts where webhook_id = $1", [id]),
      );
      return Math.round((rows.reduce((n, r) => n + r.ms, 0) / rows.length) * 10) / 10;
    };

    // Delivered, then resent and delivered again: one delivery, two attempts.
    const okHook = newHook();
    await script(okHook.name, { script: [{ delayMs: 30 }, { delayMs: 90 }] });
    const ok = await register(org, okHook.url, ["team.*"]);
    const sent = await sendEvent(org);
    await endpoint(ok.id).drain();
    const [delivery] = (
      await withDb((db) =>
        db.query<{ id: string }>("select id from webhook_deliveries where event_id = $1", [sent.eventId]),
      )
    ).rows;
    const resent = await json<{ success: boolean }>(
      await api(`/v1/orgs/${org}/deliveries/${delivery!.id}/retry`, { org, method: "POST" }),
    );
    expect(resent.success).toBe(true);
    expect(await stats(ok.id)).toMatchObject({
      totalDeliveries: 1,
      successfulDeliveries: 1,
      failedDeliveries: 0,
      attempts: 2,
      averageResponseTimeMs: await meanLatency(ok.id),
      lastDeliveryStatus: "succeeded",
    });

    // Failed (410 Gone fails it at once), recovered, delivered: it moves from failed to succeeded.
    const goneHook = newHook();
    await script(goneHook.name, { script: [{ status: 410 }], otherwise: { status: 200 } });
    const gone = await register(org, goneHook.url, ["member.*"]);
    await sendEvent(org, "member.added");
    await endpoint(gone.id).drain();
    expect(await stats(gone.id)).toMatchObject({ totalDeliveries: 1, successfulDeliveries: 0, failedDeliveries: 1 });
    await api(`/v1/orgs/${org}/webhooks/${gone.id}`, { org, method: "PATCH", body: { active: true } });
    const recovered = await json<{ requeued: number }>(
      await api(`/v1/orgs/${org}/webhooks/${gone.id}/recover`, {
        org,
        body: { since: new Date(Date.now() - 60_000).toISOString() },
      }),
    );
    expect(recovered.requeued).toBe(1);
    await endpoint(gone.id).drain();
    expect(await stats(gone.id)).toMatchObject({
      totalDeliveries: 1,
      successfulDeliveries: 1,
      failedDeliveries: 0,
      attempts: 2,
      lastDeliveryStatus: "succeeded",
    });
  });

  it("deletes a webhook and cancels its pending deliveries", async () => {
    const org = newOrg();
    const hook = newHook();
    await script(hook.name, { otherwise: { status: 500 } });
    const w = await register(org, hook.url, ["team.*"]);
    for (let i = 0; i < 3; i++) await sendEvent(org);
    await endpoint(w.id).drain();
    const res = await json<{ deleted: boolean; cancelledDeliveries: number }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org, method: "DELETE" }),
    );
    expect(res).toEqual({ deleted: true, cancelledDeliveries: 3 });
    expect(await endpoint(w.id).pending()).toBe(0);
    expect((await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org })).status).toBe(404);
  });

  it("fans platform events from the Queue out to subscribed webhooks", async () => {
    const org = newOrg();
    const hook = newHook();
    const w = await register(org, hook.url, ["member.*"]);
    const e = createEvent({ type: "member.added", organizationId: org, source: "/teams", data: { userId: "u9" } });
    const batch = createMessageBatch("platform-events", [
      { id: "m1", timestamp: new Date(), attempts: 1, body: JSON.stringify(e) },
    ]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual(["m1"]);
    await endpoint(w.id).drain();
    const body = JSON.parse((await received(hook.name)).requests[0]!.body) as { eventId: string; data: unknown };
    expect(body).toMatchObject({ eventId: e.id, data: { userId: "u9" } });
  });

  it("re-hands overdue deliveries an endpoint object never got (processQueue sweep)", async () => {
    const org = newOrg();
    const hook = newHook();
    const w = await register(org, hook.url, ["team.*"]);
    // A delivery persisted while the hand-off to the object failed.
    await withDb((db) =>
      db.query(
        `insert into webhook_deliveries (id, webhook_id, organization_id, event_id, event_type, payload, scheduled_at)
         values ($1, $2, $3, $4, 'team.created', $5, now() - interval '5 minutes')`,
        [
          `msg_orphan_${w.id}`,
          w.id,
          org,
          `evt_orphan_${w.id}`,
          JSON.stringify({ id: `msg_orphan_${w.id}`, type: "team.created" }),
        ],
      ),
    );
    const { createWebhookService } = await import("../../../src/webhooks/service.ts");
    const { createPlatform } = await import("../../../src/platform/platform.ts");
    const { createLogger } = await import("../../../src/platform/logger.ts");
    const platform = createPlatform(env, createExecutionContext(), createLogger());
    const r = await createWebhookService(platform).processQueue(100);
    expect(r.succeeded).toBeGreaterThanOrEqual(1);
    expect((await received(hook.name)).requests.map((q) => q.headers["webhook-id"])).toContain(`msg_orphan_${w.id}`);
  });

  it("sweeps only deliveries that can run: open-circuit and disabled endpoints cannot starve a healthy one", async () => {
    const org = newOrg();
    const broken = newHook();
    await script(broken.name, { otherwise: { status: 500 } });
    const open = await register(org, broken.url, ["team.*"]);
    for (let i = 0; i < 5; i++) await sendEvent(org);
    await endpoint(open.id).drain();
    expect((await circuit(org, open.id)).state).toBe("open");
    const disabledHook = newHook();
    const disabled = await register(org, disabledHook.url, ["member.*"]);
    await api(`/v1/orgs/${org}/webhooks/${disabled.id}`, { org, method: "PATCH", body: { active: false } });
    const healthyHook = newHook();
    const healthy = await register(org, healthyHook.url, ["member.*"]);
    // Overdue rows the objects never got: the held ones older than the healthy one, so an
    // oldest-first sweep that does not know the endpoints' state takes them first.
    const seed = (webhookId: string, n: number, age: string) =>
      withDb(async (db) => {
        for (let i = 0; i < n; i++) {
          const id = `msg_sweep_${i}_${webhookId}`;
          await db.query(
            `insert into webhook_deliveries (id, webhook_id, organization_id, event_id, event_type, payload, scheduled_at)
             values ($1, $2, $3, $4, 'team.created', $5, now() - $6::interval)`,
            [id, webhookId, org, `evt_sweep_${i}_${webhookId}`, JSON.stringify({ id, type: "team.created" }), age],
          );
        }
      });
    await seed(open.id, 10, "2 days");
    await seed(disabled.id, 10, "2 days");
    await seed(healthy.id, 1, "1 day");
    const brokenBefore = (await received(broken.name)).requests.length;

    const { createWebhookService } = await import("../../../src/webhooks/service.ts");
    const { createPlatform } = await import("../../../src/platform/platform.ts");
    const { createLogger } = await import("../../../src/platform/logger.ts");
    const platform = createPlatform(env, createExecutionContext(), createLogger());
    const r = await createWebhookService(platform).processQueue(2);
    expect(r.succeeded).toBeGreaterThanOrEqual(1);
    expect((await received(healthyHook.name)).requests.map((q) => q.headers["webhook-id"])).toEqual([
      `msg_sweep_0_${healthy.id}`,
    ]);
    expect((await received(broken.name)).requests).toHaveLength(brokenBefore);
    expect((await received(disabledHook.name)).requests).toHaveLength(0);
    expect(await endpoint(open.id).pending()).toBe(5); // the seeded rows were not handed over
    expect(await endpoint(disabled.id).pending()).toBe(0);

    // The sweep reads the breaker from Postgres: the object mirrors every transition there.
    const mirror = async () =>
      (
        await withDb((db) =>
          db.query<{ circuit_state: string; circuit_half_open_at: Date | null }>(
            "select circuit_state, circuit_half_open_at from webhooks where id = $1",
            [open.id],
          ),
        )
      ).rows[0]!;
    const m = await mirror();
    expect(m.circuit_state).toBe("open");
    expect(new Date(m.circuit_half_open_at!).toISOString()).toBe((await circuit(org, open.id)).halfOpenAt);
    await api(`/v1/orgs/${org}/webhooks/${open.id}/circuit/reset`, { org, method: "POST" });
    expect(await mirror()).toEqual({ circuit_state: "closed", circuit_half_open_at: null });
  });

  it("reports health with latency percentiles", async () => {
    const org = newOrg();
    const hook = newHook();
    // Widely spread latencies (the first answer a 500), so percentile_cont differs from nearest
    // rank, from the maximum and between p95 and p99 by far more than the rounding.
    const delays = [10, 0, 5, 15, 30, 50, 80, 120, 170, 230, 320, 450];
    await script(hook.name, { script: delays.map((delayMs, i) => ({ status: i === 0 ? 500 : 200, delayMs })) });
    const w = await register(org, hook.url, ["team.*"]);
    for (let i = 0; i < delays.length; i++) await sendEvent(org);
    await endpoint(w.id).drain();
    const h = await json<{
      successRate: number;
      averageLatencyMs: number;
      p95LatencyMs: number;
      p99LatencyMs: number;
      deliveriesInPeriod: number;
      errorBreakdown: { type: string }[];
    }>(
      await api(`/v1/orgs/${org}/webhooks/${w.id}/health?from=${new Date(Date.now() - 3_600_000).toISOString()}`, {
        org,
      }),
    );
    expect(h.successRate).toBe(Math.round((11 / 12) * 10_000) / 100);
    expect(h.deliveriesInPeriod).toBe(12);
    expect(h.errorBreakdown.map((e) => e.type)).toEqual(["http_5xx"]);

    // The expected figures, computed here from the recorded attempts (percentile_cont: linear
    // interpolation between the closest ranks).
    const ms = (
      await withDb((db) =>
        db.query<{ ms: number }>("select response_time_ms as ms from webhook_attempts where webhook_id = $1", [w.id]),
      )
    ).rows
      .map((r) => r.ms)
      .sort((a, b) => a - b);
    expect(ms).toHaveLength(12);
    const cont = (p: number) => {
      const pos = p * (ms.length - 1);
      const lo = Math.floor(pos);
      return ms[lo]! + (ms[Math.min(lo + 1, ms.length - 1)]! - ms[lo]!) * (pos - lo);
    };
    const nearestRank = (p: number) => ms[Math.ceil(p * ms.length) - 1]!;
    const r1 = (v: number) => Math.round(v * 10) / 10;
    // The data can tell a wrong percentile from the right one.
    for (const p of [0.95, 0.99]) expect(Math.abs(cont(p) - nearestRank(p))).toBeGreaterThan(2);
    expect(cont(0.99) - cont(0.95)).toBeGreaterThan(2);
    expect(h.averageLatencyMs).toBeCloseTo(r1(ms.reduce((a, b) => a + b, 0) / ms.length), 1);
    expect(h.p95LatencyMs).toBeCloseTo(r1(cont(0.95)), 1);
    expect(h.p99LatencyMs).toBeCloseTo(r1(cont(0.99)), 1);
    const bad = await api(`/v1/orgs/${org}/webhooks/${w.id}/health?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z`, {
      org,
    });
    expect(bad.status).toBe(400);
  });
});
