import { env } from "cloudflare:workers";
import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  runDurableObjectAlarm,
  runInDurableObject,
  waitOnExecutionContext,
} from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { app } from "../../../src/app.ts";
import worker from "../../../src/index.ts";
import { appendEvents, tailSql } from "../../../src/usage/log.ts";
import { encodeUsageBatches, usageToCloudEvent } from "../../../src/usage/service.ts";
import { api, tokenFor } from "../support/api.ts";
import { config, withDb } from "../support/backends.ts";
import { ev, newOrg, orgObject, usage, valid, validAt } from "./support.ts";

const count = (org: string) =>
  withDb(
    async (db) =>
      (await db.query<{ n: number }>("select count(*)::int as n from usage_log where organization_id = $1", [org]))
        .rows[0]!.n,
  );
const apiCalls = async (org: string) => (await orgObject(org).status(org)).sums["api.call"] ?? 0;

describe("ingestion", () => {
  it("records an event once: the second time it is a known duplicate", async () => {
    const org = newOrg();
    const e = ev(org, { quantity: 3 });
    expect(await usage().recordEvent(e)).toEqual({ recorded: true, eventId: e.eventId });
    expect(await usage().recordEvent(e)).toEqual({ recorded: false, eventId: e.eventId });
    expect(await count(org)).toBe(1);
    expect(await apiCalls(org)).toBe(3);
  });

  it("rejects invalid events with per-field reasons and writes nothing", async () => {
    const org = newOrg();
    const svc = usage();
    for (const bad of [
      ev(org, { eventType: "document.exploded" as "api.call" }),
      ev(org, { quantity: -1 }),
      ev(org, { quantity: Number.POSITIVE_INFINITY }),
      ev(org, { timestamp: new Date(Date.now() + 10 * 60_000) }),
      ev(org, { timestamp: new Date(Date.now() - 40 * 86_400_000) }),
      ev(org, { metadata: { blob: "x".repeat(5000) } }),
    ]) {
      await expect(svc.recordEvent(bad)).rejects.toMatchObject({ code: "validation_error" });
    }
    expect(await count(org)).toBe(0);
  });

  it("accepts a mixed HTTP batch: valid ones go through the Queue, the rest are reported", async () => {
    const org = newOrg();
    const good = [ev(org), ev(org, { eventType: "document.created", resourceId: "d1", resourceType: "document" })];
    const res = await api(`/v1/orgs/${org}/usage/events`, {
      org,
      body: { events: [...good, { ...ev(org), quantity: -5 }, good[0]] },
    });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { accepted: number; rejected: { index: number; issues: { path: string }[] }[] };
    expect(body.accepted).toBe(2); // the in-batch duplicate is sent once
    expect(body.rejected).toEqual([
      expect.objectContaining({ index: 2, issues: [expect.objectContaining({ path: "quantity" })] }),
    ]);
    await vi.waitFor(async () => expect(await count(org)).toBe(2), { timeout: 10_000, interval: 50 });
  });

  it("counts the same event id in two organizations separately in one HTTP batch (internal token)", async () => {
    const [a, b] = [newOrg(), newOrg()];
    const ids = Array.from({ length: 5 }, () => crypto.randomUUID());
    const events = ids.flatMap((eventId) => [ev(a, { eventId }), ev(b, { eventId, quantity: 2 })]);
    const res = await api(`/v1/orgs/${a}/usage/events`, {
      org: a,
      scopes: ["usage:read", "usage:write", "internal"],
      body: { events },
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ accepted: 10, duplicates: [], rejected: [] });
    await vi.waitFor(async () => expect([await count(a), await count(b)]).toEqual([5, 5]), {
      timeout: 10_000,
      interval: 50,
    });
    expect([await apiCalls(a), await apiCalls(b)]).toEqual([5, 10]);
  });

  it("refuses a batch with no valid event, and events for another organization", async () => {
    const org = newOrg();
    const res = await api(`/v1/orgs/${org}/usage/events`, { org, body: [{ eventId: "x" }] });
    expect(res.status).toBe(400);
    const other = await api(`/v1/orgs/${org}/usage/events`, { org, body: ev("someone_else") });
    expect(other.status).toBe(400);
  });

  it("applies a redelivered Queue batch once", async () => {
    const org = newOrg();
    const events = Array.from({ length: 20 }, () => ev(org, { quantity: 2 }));
    const bodies = events.map((e) => JSON.stringify(usageToCloudEvent(valid(e))));
    for (let round = 0; round < 2; round++) {
      const batch = createMessageBatch(
        "usage-events",
        bodies.map((body, i) => ({ id: `m${round}-${i}`, timestamp: new Date(), attempts: round + 1, body })),
      );
      const ctx = createExecutionContext();
      await worker.queue(batch, env, ctx);
      await waitOnExecutionContext(ctx);
      expect((await getQueueResult(batch, ctx)).explicitAcks).toHaveLength(20);
    }
    expect(await count(org)).toBe(20);
    expect(await apiCalls(org)).toBe(40);
  });

  it("counts the same event ids in two organizations separately within one Queue batch", async () => {
    const [orgA, orgB] = [newOrg(), newOrg()];
    const ids = Array.from({ length: 50 }, (_, i) => `shared-${i}-${crypto.randomUUID().slice(0, 6)}`);
    const bodies = [orgA, orgB].flatMap((org) =>
      ids.map((eventId) => JSON.stringify(usageToCloudEvent(valid(ev(org, { eventId }))))),
    );
    const batch = createMessageBatch(
      "usage-events",
      bodies.map((body, i) => ({ id: `m-${i}`, timestamp: new Date(), attempts: 1, body })),
    );
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    await waitOnExecutionContext(ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toHaveLength(100);
    expect([await count(orgA), await count(orgB)]).toEqual([50, 50]);
    expect([await apiCalls(orgA), await apiCalls(orgB)]).toEqual([50, 50]);
  });

  it("judges the late-event horizon once, at acceptance: an accepted event is counted when consumed later", async () => {
    const org = newOrg();
    const horizonDays = config().usage.lateEventHorizonDays;
    // Accepted a minute before the horizon would have refused it, consumed when it is past it.
    const acceptedAt = Date.now() - 2 * 60_000;
    const e = validAt({ now: () => acceptedAt })(
      ev(org, { timestamp: new Date(acceptedAt - horizonDays * 86_400_000 + 60_000), quantity: 4 }),
    );
    const batch = createMessageBatch("usage-events", [
      { id: "late-1", timestamp: new Date(), attempts: 1, body: JSON.stringify(usageToCloudEvent(e)) },
    ]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    await waitOnExecutionContext(ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual(["late-1"]);
    expect(await count(org)).toBe(1);
    const dead = await withDb((db) =>
      db.query("select 1 from dead_letters where event_id = $1", [e.eventId]).then((r) => r.rowCount),
    );
    expect(dead).toBe(0);
  });

  // Postgres stores neither U+0000 nor an unpaired surrogate in jsonb: such an event accepted would
  // fail its whole consumer batch on every retry, and the good events sharing its message with it.
  it("refuses metadata Postgres cannot store (U+0000, an unpaired surrogate) over HTTP, writing nothing", async () => {
    const org = newOrg();
    for (const raw of ['"a\\u0000b"', '"\\ud800"', '"x\\udc00y"']) {
      const body = `{"events":[${JSON.stringify(ev(org))},${JSON.stringify(ev(org)).replace(/}$/, `,"metadata":{"note":${raw}}}`)}]}`;
      const res = await app.request(
        `/v1/orgs/${org}/usage/events`,
        {
          method: "POST",
          body,
          headers: { authorization: `Bearer ${await tokenFor({ org })}`, "content-type": "application/json" },
        },
        env,
      );
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({
        error: {
          code: "validation_error",
          details: { issues: [expect.objectContaining({ path: "events.1.metadata.note", in: "json" })] },
        },
      });
    }
    // A well-formed pair is fine.
    const pair = await api(`/v1/orgs/${org}/usage/events`, {
      org,
      body: { events: [ev(org, { metadata: { e: "🎉" } })] },
    });
    expect(pair.status).toBe(202);
    await vi.waitFor(async () => expect(await count(org)).toBe(1), { timeout: 10_000, interval: 50 });
  });

  it("refuses JSON nested deeper than 64 levels with a 400 on any route, not a 500", async () => {
    const org = newOrg();
    const token = await tokenFor({ org, scopes: ["usage:write", "webhooks:write", "teams:write"] });
    const deep = `${'{"a":'.repeat(20_000)}1${"}".repeat(20_000)}`;
    for (const [path, body] of [
      [`/v1/orgs/${org}/usage/events`, `{"events":[${JSON.stringify(ev(org)).replace(/}$/, `,"metadata":${deep}}`)}]}`],
      [`/v1/orgs/${org}/webhook-events`, `{"eventType":"team.created","eventId":"e1","data":${deep}}`],
      [`/v1/orgs/${org}/usage/events`, `{"events":${"[".repeat(65)}${"]".repeat(65)}}`],
    ] as const) {
      const res = await app.request(
        path,
        { method: "POST", body, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" } },
        env,
      );
      expect([path, res.status]).toEqual([path, 400]);
      expect(await res.json()).toMatchObject({ error: { code: "validation_error" } });
    }
    expect(await count(org)).toBe(0);
  });

  it("dead-letters a queued event Postgres cannot store and counts the good ones of the same message", async () => {
    const org = newOrg();
    const good = [valid(ev(org, { quantity: 2 })), valid(ev(org, { quantity: 3 }))];
    const bad = [
      { ...valid(ev(org)), metadata: { note: "a\u0000b" } },
      { ...valid(ev(org)), metadata: { "k\ud800": 1 } },
    ];
    const bodies = encodeUsageBatches([good[0]!, ...bad, good[1]!]);
    const batch = createMessageBatch(
      "usage-events",
      bodies.map((body, i) => ({ id: `nul-${i}`, timestamp: new Date(), attempts: 1, body })),
    );
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    await waitOnExecutionContext(ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toHaveLength(bodies.length);
    expect(await count(org)).toBe(2);
    expect(await apiCalls(org)).toBe(5);
    const dead = await withDb((db) =>
      db
        .query<{ event_id: string }>("select event_id from dead_letters where event_id = any($1::text[])", [
          bad.map((b) => b.eventId),
        ])
        .then((r) => r.rows.map((x) => x.event_id).sort()),
    );
    expect(dead).toEqual(bad.map((b) => b.eventId).sort());
  });

  it("counts concurrent recordings of the same and different events exactly", async () => {
    const org = newOrg();
    const shared = Array.from({ length: 30 }, () => ev(org));
    const sharedValid = shared.map(valid);
    // Five concurrent batches: the same 30 events (some batches also start one later) plus one unique each.
    await Promise.all([...Array(5)].map((_, i) => usage().recordEvents([...sharedValid.slice(i % 2), valid(ev(org))])));
    expect(await count(org)).toBe(30 + 5);
    expect(await apiCalls(org)).toBe(35);
  });

  it("reaches the counters after a crash between the Postgres write and the object update", async () => {
    const org = newOrg();
    const svc = usage();
    const events = [ev(org, { quantity: 5 }), ev(org, { quantity: 7 })].map(valid);
    expect(await apiCalls(org)).toBe(0); // the object exists (a fresh one would rebuild from Postgres)
    await withDb((db) => appendEvents(db, events)); // the "crash": Postgres has them, the object does not
    expect(await apiCalls(org)).toBe(0);
    const fresh = await svc.recordEvents(events); // the Queue redelivers
    expect(fresh.size).toBe(0); // nothing new in Postgres…
    expect(await apiCalls(org)).toBe(12); // …and the counters caught up, once
    await svc.recordEvents(events);
    expect(await apiCalls(org)).toBe(12);
  });

  it("hands folding to the aggregator object: a consumer batch never waits for it, its alarm folds the log", async () => {
    const org = newOrg();
    const events = Array.from({ length: 30 }, () => valid(ev(org, { quantity: 3 })));
    const aggregator = env.USAGE_AGGREGATOR.get(env.USAGE_AGGREGATOR.idFromName("usage"));
    const batch = createMessageBatch("usage-events", [
      { id: "fold-1", timestamp: new Date(), attempts: 1, body: encodeUsageBatches(events)[0]! },
    ]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    await waitOnExecutionContext(ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual(["fold-1"]);
    // The consumer kicked the object; its alarm (run here, or already on its own) folds the log.
    await runDurableObjectAlarm(aggregator);
    const folded = await withDb(async (db) => {
      const { rows } = await db.query<{ tail: number; hour: number }>(
        `select (select count(*)::int from (${tailSql("$1")}) t) as tail,
                (select coalesce(sum(events), 0)::int from usage_agg_hour where organization_id = $1) as hour`,
        [org],
      );
      return rows[0]!;
    });
    expect(folded).toEqual({ tail: 0, hour: 30 });
  });

  it("arms a fold one interval after a kick, and a kick while one is armed leaves it", async () => {
    // An object of its own (same log, same code): the shared one's alarm belongs to other tests.
    const ns = env.USAGE_AGGREGATOR;
    const aggregator = ns.get(ns.idFromName(`arming-${crypto.randomUUID()}`));
    const alarm = () => runInDurableObject(aggregator, (_, state) => state.storage.getAlarm());
    const before = Date.now();
    expect(await alarm()).toBeNull();
    await aggregator.kick();
    const armed = await alarm();
    expect(armed).toBeGreaterThanOrEqual(before + config().usage.foldIntervalMs);
    expect(armed).toBeLessThanOrEqual(Date.now() + config().usage.foldIntervalMs);
    await aggregator.kick();
    expect(await alarm()).toBe(armed);
  });

  it("rate-limits the ingest API with a sliding window and Retry-After", async () => {
    const org = newOrg();
    const strict = { ...env, USAGE_INGEST_RATE_LIMIT_PER_MINUTE: "2" };
    const token = await tokenFor({ org });
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 3; i++) {
      const ctx = createExecutionContext();
      const res = await app.request(
        `/v1/orgs/${org}/usage/events`,
        {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify(ev(org)),
        },
        strict,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      statuses.push(res.status);
      if (res.status === 429) retryAfter = res.headers.get("retry-after");
    }
    expect(statuses).toEqual([202, 202, 429]);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  });
});
