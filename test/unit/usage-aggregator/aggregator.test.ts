import { describe, expect, it, vi } from "vitest";
import type { Db, Queryable } from "../../../src/platform/db.ts";
import type { Redis, RedisKeys } from "../../../src/platform/redis.ts";
import type { OrgUsageClient } from "../../../src/usage/aggregator.ts";
import { UsageAnalyticsAggregator } from "../../../src/usage/aggregator.ts";
import { isMetricType, sourceEventTypes, valueFromSums } from "../../../src/usage/metrics.ts";
import { anchorIn, billingPeriod, hasWholeHourOffsets, tzOffsetMinutes } from "../../../src/usage/periods.ts";
import { admit, crossedThresholds, quotaMetric } from "../../../src/usage/quota.ts";
import { sourceFor } from "../../../src/usage/repo.ts";
import { rollupMetrics } from "../../../src/usage/rollup.ts";
import { cloudEventToUsage, usageToCloudEvent } from "../../../src/usage/service.ts";
import { createEvent } from "../../../src/events/cloudevent.ts";

const NOW = Date.parse("2024-11-28T12:00:00Z");
const config = {
  lateEventHorizonDays: 35,
  ingestRateLimitPerMinute: 600,
  minuteRetentionDays: 7,
  foldIntervalMs: 1000,
};

/** A fake Postgres that reports every event as new, and records statements. */
function fakeDb() {
  const statements: string[] = [];
  const q: Queryable = {
    async query<T>(text: string) {
      statements.push(text);
      if (text.includes("insert into usage_log")) {
        // Everything new: the statement's txid, no known rows.
        return { rows: [{ o: null, e: null, txid: "7" }] as T[], rowCount: 1 };
      }
      return { rows: [] as T[], rowCount: 0 };
    },
  };
  const db: Db = { ...q, transaction: (fn) => fn(q), end: async () => {} };
  return { db, statements };
}

function fakeOrgs() {
  const applied: { org: string; ids: string[] }[] = [];
  const client: OrgUsageClient = {
    apply: async (org, events) => {
      applied.push({ org, ids: events.map((e) => e.eventId) });
      return { applied: events.length, crossings: 0 };
    },
    checkQuota: vi.fn(async () => ({ allowed: true, remaining: 5, limit: 10 })),
    status: async () => ({ plan: "free", periodStart: "", periodEnd: "", metrics: [], sums: {} }),
    realtime: async () => ({ activeUsers: 0, openDocuments: 0, asOf: "" }),
    invalidate: async () => {},
    reconcile: async () => null,
  };
  return { applied, client };
}

function aggregator(over: { db?: Db } = {}) {
  const pipeline = { set: vi.fn(), pfadd: vi.fn(), expire: vi.fn(), zincrby: vi.fn(), exec: vi.fn(async () => []) };
  const redis = { pipeline: () => pipeline, mget: vi.fn(async () => []) } as unknown as Redis;
  const keys: RedisKeys = { key: (...p) => `t:${p.join(":")}` };
  const orgs = fakeOrgs();
  const { db, statements } = fakeDb();
  const agg = new UsageAnalyticsAggregator({
    db: over.db ?? db,
    redis,
    keys,
    orgs: () => orgs.client,
    config,
    now: () => NOW,
  });
  return { agg, orgs, statements, pipeline };
}

const event = (over: Record<string, unknown> = {}) => ({
  eventId: "e1",
  organizationId: "org_1",
  eventType: "api.call",
  userId: "u1",
  timestamp: new Date(NOW - 1000).toISOString(),
  ...over,
});

describe("metrics", () => {
  it("knows event types and derived metrics", () => {
    expect(isMetricType("api.call")).toBe(true);
    expect(isMetricType("collaborators")).toBe(true);
    expect(isMetricType("api.calls")).toBe(false);
    expect(sourceEventTypes("storage")).toEqual(["storage.upload", "storage.delete"]);
    expect(sourceEventTypes("active_users")).toEqual([]);
  });

  it("derives signed sums", () => {
    const sums = {
      "storage.upload": 1000,
      "storage.delete": 300,
      "document.created": 5,
      "document.deleted": 2,
      "api.call": 9,
    };
    expect(valueFromSums("storage", sums)).toBe(700);
    expect(valueFromSums("documents", sums)).toBe(3);
    expect(valueFromSums("api_calls", new Map(Object.entries(sums)))).toBe(9);
    expect(valueFromSums("document.viewed", sums)).toBe(0);
    expect(() => valueFromSums("collaborators", sums)).toThrow(/distinct/);
  });
});

describe("billing periods", () => {
  const anchor31 = new Date("2026-01-31T00:00:00Z");
  it("clamps an anchor on the 31st to short months", () => {
    expect(anchorIn(anchor31, 2026, 1).toISOString()).toBe("2026-02-28T00:00:00.000Z");
    expect(anchorIn(anchor31, 2028, 1).toISOString()).toBe("2028-02-29T00:00:00.000Z");
    expect(anchorIn(anchor31, 2026, 3).toISOString()).toBe("2026-04-30T00:00:00.000Z");
    expect(anchorIn(anchor31, 2030, 12).toISOString()).toBe("2031-01-31T00:00:00.000Z"); // December rolls into the next year
  });

  it("finds the period containing an instant", () => {
    expect(billingPeriod(anchor31, new Date("2026-03-15T00:00:00Z"))).toEqual({
      start: new Date("2026-02-28T00:00:00Z"),
      end: new Date("2026-03-31T00:00:00Z"),
    });
    expect(billingPeriod(anchor31, new Date("2026-03-31T00:00:00Z")).start.toISOString()).toBe(
      "2026-03-31T00:00:00.000Z",
    );
    const mid = new Date("2026-01-15T09:00:00Z");
    expect(billingPeriod(mid, new Date("2024-11-15T08:59:59Z"))).toEqual({
      start: new Date("2024-10-15T09:00:00Z"),
      end: new Date("2024-11-15T09:00:00Z"),
    });
    expect(billingPeriod(mid, new Date("2024-12-31T00:00:00Z")).end.toISOString()).toBe("2025-01-15T09:00:00.000Z");
  });

  it("measures zone offsets across DST and spots half-hour zones", () => {
    expect(tzOffsetMinutes("America/New_York", new Date("2024-10-31T12:00:00Z"))).toBe(-240);
    expect(tzOffsetMinutes("America/New_York", new Date("2024-11-04T12:00:00Z"))).toBe(-300);
    expect(
      hasWholeHourOffsets("Europe/Berlin", new Date("2024-10-20T00:00:00Z"), new Date("2024-11-05T00:00:00Z")),
    ).toBe(true);
    expect(
      hasWholeHourOffsets("Asia/Kolkata", new Date("2024-11-01T00:00:00Z"), new Date("2024-11-02T00:00:00Z")),
    ).toBe(false);
    expect(sourceFor("day", "UTC", true)).toBe("rollup");
    expect(sourceFor("day", "Europe/Berlin", true)).toBe("hour");
    expect(sourceFor("day", "Asia/Kolkata", false)).toBe("quarter");
    expect(sourceFor("hour", "Asia/Kathmandu", false)).toBe("quarter");
    expect(sourceFor("minute", "UTC", true)).toBe("minute");
  });
});

describe("quota arithmetic", () => {
  it("admits up to the limit counting reservations", () => {
    expect(admit(5, 3, 10, 2)).toEqual({ allowed: true, remaining: 0, limit: 10 });
    expect(admit(5, 3, 10, 3)).toEqual({ allowed: false, remaining: 2, limit: 10 });
    expect(admit(12, 0, 10, 0)).toEqual({ allowed: false, remaining: 0, limit: 10 });
    expect(admit(1e9, 0, undefined, 5).allowed).toBe(true);
  });

  it("reports percentage and exceeded", () => {
    expect(quotaMetric("api_calls", 75, 5, 100)).toEqual({
      metricType: "api_calls",
      used: 75,
      reserved: 5,
      limit: 100,
      percentage: 80,
      exceeded: false,
    });
    expect(quotaMetric("storage", 150, 0, 100)).toMatchObject({ percentage: 100, exceeded: true });
    expect(quotaMetric("documents", 3, 0, undefined)).toMatchObject({ limit: null, percentage: 0, exceeded: false });
  });

  it("detects thresholds crossed upwards only, several at once", () => {
    expect(crossedThresholds(40, 95, 100, [50, 80, 100])).toEqual([50, 80]);
    expect(crossedThresholds(95, 100, 100, [50, 80, 100])).toEqual([100]);
    expect(crossedThresholds(90, 85, 100, [80])).toEqual([]);
    expect(crossedThresholds(50, 60, 100, [50])).toEqual([]); // already at 50 % before
    expect(crossedThresholds(0, 10, undefined, [50])).toEqual([]);
  });
});

describe("event validation", () => {
  it("accepts a valid event and defaults quantity to 1", () => {
    const v = aggregator().agg.validate(event());
    expect(v.ok && v.event.quantity).toBe(1);
  });

  it("rejects timestamps more than 5 minutes ahead or older than the horizon", () => {
    const { agg } = aggregator();
    expect(agg.validate(event({ timestamp: new Date(NOW + 6 * 60_000).toISOString() }))).toMatchObject({
      ok: false,
      eventId: "e1",
      issues: [{ path: "timestamp" }],
    });
    expect(agg.validate(event({ timestamp: new Date(NOW + 4 * 60_000).toISOString() })).ok).toBe(true);
    expect(agg.validate(event({ timestamp: new Date(NOW - 36 * 86_400_000).toISOString() }))).toMatchObject({
      ok: false,
      issues: [{ message: expect.stringContaining("horizon") }],
    });
  });

  it("rejects unknown types, negative or infinite quantities, bad ids and large metadata", () => {
    const { agg } = aggregator();
    for (const bad of [
      { eventType: "api.calls" },
      { quantity: -1 },
      { quantity: Infinity },
      { eventId: "has space" },
      { metadata: { x: "y".repeat(5000) } },
      { resourceType: "Document" },
    ]) {
      expect(agg.validate(event(bad)).ok, JSON.stringify(bad)).toBe(false);
    }
  });

  it("throws ValidationError from recordEvent", async () => {
    await expect(aggregator().agg.recordEvent(event({ quantity: -2 }) as never)).rejects.toMatchObject({
      code: "validation_error",
    });
  });
});

describe("recording", () => {
  it("writes Postgres first, then hands every event to its organization's object and updates sketches", async () => {
    const { agg, orgs, statements, pipeline } = aggregator();
    const v = [
      event({ eventId: "a" }),
      event({ eventId: "b", organizationId: "org_2" }),
      event({ eventId: "c", eventType: "document.viewed", resourceId: "d1" }),
    ].map((e) => {
      const r = agg.validate(e);
      if (!r.ok) throw new Error("invalid");
      return r.event;
    });
    const fresh = await agg.recordEvents(v);
    expect(fresh.size).toBe(3);
    expect(statements.filter((s) => s.includes("insert into usage_log"))).toHaveLength(1); // one statement

    expect(orgs.applied.map((a) => [a.org, a.ids])).toEqual([
      ["org_1", ["a", "c"]],
      ["org_2", ["b"]],
    ]);
    // One PFADD per (organization, day/week/month), however many events: two organizations, three keys each.
    expect(pipeline.pfadd).toHaveBeenCalledTimes(6);
    // Top users and documents are Postgres aggregates now: nothing per member in Redis.
    expect(pipeline.zincrby).not.toHaveBeenCalled();
  });

  it("reports recorded:true for a new event", async () => {
    expect(await aggregator().agg.recordEvent(event() as never)).toEqual({ recorded: true, eventId: "e1" });
  });

  it("records nothing for an empty batch", async () => {
    const { agg, statements } = aggregator();
    expect((await agg.recordEvents([])).size).toBe(0);
    expect(statements).toEqual([]);
  });
});

describe("query and quota validation", () => {
  const base = {
    startTime: new Date(NOW - 3_600_000),
    endTime: new Date(NOW),
    granularity: "hour" as const,
    metricTypes: ["api_calls"],
  };
  it("rejects reversed ranges, unknown metrics and zones", async () => {
    const { agg } = aggregator();
    await expect(
      agg.getAggregatedMetrics("o", { ...base, startTime: new Date(NOW), endTime: new Date(NOW - 1) }),
    ).rejects.toMatchObject({ code: "validation_error" });
    await expect(agg.getAggregatedMetrics("o", { ...base, metricTypes: ["bogus"] })).rejects.toMatchObject({
      code: "validation_error",
    });
    await expect(agg.getAggregatedMetrics("o", { ...base, timeZone: "Mars/Olympus" })).rejects.toMatchObject({
      code: "validation_error",
    });
  });

  it("rejects dimensions on unique counts and too many buckets", async () => {
    const { agg } = aggregator();
    await expect(
      agg.getAggregatedMetrics("o", { ...base, metricTypes: ["active_users"], dimensions: ["resourceType"] }),
    ).rejects.toThrow(/unique counts/);
    await expect(
      agg.getAggregatedMetrics("o", { ...base, granularity: "minute", startTime: new Date(NOW - 30 * 86_400_000) }),
    ).rejects.toThrow(/too many buckets/);
  });

  it("validates quota checks before asking the organization object", async () => {
    const { agg, orgs } = aggregator();
    await expect(agg.checkQuota("o", "bananas", 1)).rejects.toMatchObject({ code: "validation_error" });
    await expect(agg.checkQuota("o", "storage", -1)).rejects.toMatchObject({ code: "validation_error" });
    expect(await agg.checkQuota("o", "storage", 1)).toEqual({ allowed: true, remaining: 5, limit: 10 });
    expect(orgs.client.checkQuota).toHaveBeenCalledOnce();
  });

  it("validates alert subscriptions", async () => {
    const { agg } = aggregator();
    await expect(
      agg.subscribeToQuotaAlerts("o", { metricType: "api_calls", threshold: 0, notificationChannels: ["in_app"] }),
    ).rejects.toMatchObject({ code: "validation_error" });
    await expect(
      agg.subscribeToQuotaAlerts("o", { metricType: "api_calls", threshold: 80, notificationChannels: ["email"] }),
    ).rejects.toThrow(/e-mail/);
    await expect(agg.generateUsageReport("o", new Date(NOW), new Date(NOW - 1))).rejects.toMatchObject({
      code: "validation_error",
    });
  });

  it("has nothing to roll up for unique-count metrics", async () => {
    const { db, statements } = fakeDb();
    expect(await rollupMetrics(db, "collaborators", new Date(NOW))).toEqual({ rolledUp: 0, errors: 0 });
    expect(statements).toEqual([]);
  });
});

describe("more edge cases", () => {
  it("skips Redis sketches for duplicates but still hands them to the counters", async () => {
    const statements: string[] = [];
    const q: Queryable = {
      query: async <T>(text: string) => {
        statements.push(text);
        // The log knows the event already (recorded by transaction 3).
        const rows = text.includes("insert into usage_log")
          ? [
              { o: null, e: null, txid: "9" },
              { o: "org_1", e: "e1", txid: "3" },
            ]
          : [];
        return { rows: rows as T[], rowCount: rows.length };
      },
    };
    const { agg, orgs, pipeline } = aggregator({ db: { ...q, transaction: (fn) => fn(q), end: async () => {} } });
    const v = agg.validate(event());
    if (!v.ok) throw new Error("invalid");
    const fresh = await agg.recordEvents([v.event]);
    expect(fresh.size).toBe(0);
    expect(orgs.applied).toHaveLength(1);
    expect(pipeline.exec).not.toHaveBeenCalled();
  });

  it("keeps recording when Redis is down (sketches are best effort)", async () => {
    const { agg, orgs, pipeline } = aggregator();
    pipeline.exec.mockRejectedValueOnce(new Error("redis down"));
    const v = agg.validate(event());
    if (!v.ok) throw new Error("invalid");
    expect((await agg.recordEvents([v.event])).size).toBe(1);
    expect(orgs.applied).toHaveLength(1);
  });

  it("does not record when the counters cannot be reached, so the Queue retries", async () => {
    const { agg, orgs } = aggregator();
    orgs.client.apply = async () => Promise.reject(new Error("object unavailable"));
    const v = agg.validate(event());
    if (!v.ok) throw new Error("invalid");
    await expect(agg.recordEvents([v.event])).rejects.toThrow("object unavailable");
  });
});

describe("event mapping", () => {
  it("maps platform CloudEvents to usage events and back", () => {
    const ce = createEvent({
      type: "storage.upload",
      organizationId: "org_9",
      source: "/storage",
      data: { userId: "u", resourceId: "f1", resourceType: "file", quantity: 2048 },
    });
    const mapped = cloudEventToUsage(ce);
    expect(mapped).toMatchObject({
      eventId: ce.id,
      organizationId: "org_9",
      eventType: "storage.upload",
      timestamp: ce.time,
      quantity: 2048,
      resourceType: "file",
    });
    const agg = new UsageAnalyticsAggregator({
      db: fakeDb().db,
      redis: {} as Redis,
      keys: { key: () => "" },
      orgs: () => fakeOrgs().client,
      config,
      now: () => Date.parse(ce.time),
    });
    const v = agg.validate(mapped);
    expect(v.ok).toBe(true);
    if (v.ok)
      expect(usageToCloudEvent(v.event)).toMatchObject({
        id: ce.id,
        type: "storage.upload",
        organizationid: "org_9",
        data: { quantity: 2048 },
      });
  });

  it("defaults quantity to 1 when the producer sent none", () => {
    const ce = createEvent({ type: "document.viewed", organizationId: "o", source: "/docs", data: {} });
    expect(cloudEventToUsage(ce).quantity).toBe(1);
  });
});
