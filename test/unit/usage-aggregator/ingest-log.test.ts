import { describe, expect, it, vi } from "vitest";
import type { Db, Queryable } from "../../../src/platform/db.ts";
import type { Redis, RedisKeys } from "../../../src/platform/redis.ts";
import type { OrgUsageClient } from "../../../src/usage/aggregator.ts";
import { UsageAnalyticsAggregator } from "../../../src/usage/aggregator.ts";
import { decodeUsageMessage, encodeUsageBatches } from "../../../src/usage/cloudevents.ts";
import type { CounterEvent } from "../../../src/usage/counters.ts";
import { batchDeltas, reconciled } from "../../../src/usage/counters.ts";
import { chunkEnd, cutSnapshot, formatSnapshot, inSnapshot, parseSnapshot } from "../../../src/usage/log.ts";
import { fastUsageEvent, parseUsageEvent } from "../../../src/usage/accept.ts";
import type { UsageEvent } from "../../../src/usage/schemas.ts";
import { usageEventSchema } from "../../../src/usage/schemas.ts";

const NOW = Date.parse("2024-11-28T12:00:00Z");
const period = { start: new Date("2024-11-01T00:00:00Z"), end: new Date("2024-12-01T00:00:00Z") };

const usageEvent = (i: number, over: Partial<UsageEvent> = {}): UsageEvent => ({
  eventId: `e${i}`,
  organizationId: "org_1",
  eventType: "api.call",
  userId: `u${i % 7}`,
  quantity: 1,
  timestamp: new Date(NOW - i * 1000),
  metadata: {},
  ...over,
});

describe("batching for the Queue", () => {
  it("packs a request's batch into few messages of one organization each, every event once and in order", () => {
    const events = Array.from({ length: 5_000 }, (_, i) =>
      usageEvent(i, { organizationId: i % 3 === 0 ? "org_b" : "org_a", metadata: { path: `/v1/docs/${i}` } }),
    );
    const messages = encodeUsageBatches(events);
    expect(messages.length).toBeGreaterThan(2); // 5,000 rows do not fit two messages…
    expect(messages.length).toBeLessThan(20); // …but they are not one message each
    const seen = new Map<string, string[]>();
    for (const m of messages) {
      expect(new TextEncoder().encode(m).length).toBeLessThanOrEqual(128_000);
      const body = JSON.parse(m) as { org: string };
      const decoded = decodeUsageMessage(m)!;
      const ids = seen.get(body.org) ?? [];
      ids.push(...decoded.map((e) => String(e.eventId)));
      seen.set(body.org, ids);
      for (const e of decoded) expect(e.organizationId).toBe(body.org);
    }
    const expected = (org: string) => events.filter((e) => e.organizationId === org).map((e) => e.eventId);
    expect(seen.get("org_a")).toEqual(expected("org_a"));
    expect(seen.get("org_b")).toEqual(expected("org_b"));
  });

  it("measures multi-byte metadata in bytes, so no message passes the 128 KB limit", () => {
    // 3 bytes a character in UTF-8: counted in characters, these messages would be three times too big.
    const events = Array.from({ length: 600 }, (_, i) => usageEvent(i, { metadata: { title: "文書".repeat(100) } }));
    const messages = encodeUsageBatches(events);
    for (const m of messages) expect(new TextEncoder().encode(m).length).toBeLessThanOrEqual(128_000);
    expect(messages.flatMap((m) => decodeUsageMessage(m)!).map((e) => e.eventId)).toEqual(events.map((e) => e.eventId));
  });

  it("decodes what it encoded field for field, and garbage to null", () => {
    const e = usageEvent(1, { resourceId: "doc-1", resourceType: "document", quantity: 2.5, metadata: { a: 1 } });
    const [m] = encodeUsageBatches([e]);
    expect(decodeUsageMessage(m)).toEqual([
      {
        eventId: "e1",
        organizationId: "org_1",
        eventType: "api.call",
        userId: "u1",
        resourceId: "doc-1",
        resourceType: "document",
        quantity: 2.5,
        timestamp: e.timestamp,
        metadata: { a: 1 },
      },
    ]);
    expect(decodeUsageMessage("{not json")).toBeNull();
    expect(decodeUsageMessage({ kind: "usage-batch", org: 5, events: [] })).toBeNull();
  });
});

describe("the aggregator's watermark", () => {
  const snap = parseSnapshot;

  it("ends a chunk after whole transactions, keeps what the old watermark held, never passes the snapshot", () => {
    const wm = snap("100:120:105,110");
    expect(chunkEnd(wm, snap("130:150:130,140"), null)).toBe(150); // a partial sample: everything
    expect(chunkEnd(wm, snap("130:150:130,140"), 135)).toBe(136); // transaction 135 is folded whole
    expect(chunkEnd(wm, snap("130:150:130,140"), 112)).toBe(120); // never below the old xmax
    expect(chunkEnd(wm, snap("120:120:"), null)).toBe(120); // nothing new has finished
  });

  it("moves to the current snapshot cut at the chunk's end: a running transaction stays in the tail", () => {
    const current = snap("130:150:130,140,145");
    expect(formatSnapshot(cutSnapshot(current, 150))).toBe("130:150:130,140,145");
    expect(formatSnapshot(cutSnapshot(current, 142))).toBe("130:142:130,140");
    expect(formatSnapshot(cutSnapshot(snap("130:150:"), 125))).toBe("125:125:");
    // Every transaction is folded exactly once over a run of chunks, whatever commits late:
    // 105 and 110 were running at the first watermark; 110 finishes, 105 is still running.
    const wm = snap("100:120:105,110");
    const next = cutSnapshot(snap("105:160:105,150"), chunkEnd(wm, snap("105:160:105,150"), null));
    const folded = (t: number) => !inSnapshot(t, wm) && inSnapshot(t, next);
    expect([99, 105, 110, 119, 120, 150, 159, 160].filter(folded)).toEqual([110, 120, 159]);
    expect([99, 105, 110, 119, 120, 150, 159, 160].filter((t) => !inSnapshot(t, next))).toEqual([105, 150, 160]);
  });

  it("decides visibility by Postgres' rule at every boundary", () => {
    // Read in 500:510:500,503,507 — below 500 finished; 500 (the oldest running), 503, 507 running;
    // none from 510 on had finished.
    const s = snap("500:510:500,503,507");
    expect(s).toEqual({ xmin: 500, xmax: 510, running: [500, 503, 507] });
    expect([499, 500, 503, 504, 507, 509, 510, 511].map((t) => inSnapshot(t, s))).toEqual([
      true,
      false,
      false,
      true,
      false,
      true,
      false,
      false,
    ]);
    expect(snap("42:42:")).toEqual({ xmin: 42, xmax: 42, running: [] });
  });
});

describe("the organization object's merge of base and applied events", () => {
  const at = (position: number, over: Partial<CounterEvent> = {}): CounterEvent => ({
    eventId: `p${position}`,
    eventType: "api.call",
    quantity: 1,
    occurredAt: NOW,
    position,
    ...over,
  });

  it("leaves to the base exactly the events its snapshot holds, and counts the others itself", () => {
    const snap = parseSnapshot("500:510:500,503,507");
    const d = batchDeltas([at(499), at(500), at(503), at(504), at(510)], period, snap);
    expect(d.sums).toEqual({ "api.call": 3 }); // 500, 503 and 510 are the object's; 499 and 504 the base's
    // Reservations are consumed by every new event, counted by the base or not.
    expect(d.reservations).toEqual({ api_calls: 5 });
    // After a reconciliation in that snapshot the total is the same: 2 in the base + 3 applied.
    expect(
      reconciled({ sums: { "api.call": 2 }, toEnd: {} }, { periodSums: d.sums, allTimeSums: d.sums }).sums,
    ).toEqual({ "api.call": 5 });
  });

  it("keeps events outside the period out of the sums but in the gauges", () => {
    const d = batchDeltas(
      [
        at(10, { eventType: "storage.upload", quantity: 5, occurredAt: period.start.getTime() - 1 }),
        at(11, { occurredAt: period.end.getTime() }),
      ],
      period,
      parseSnapshot("0:0:"),
    );
    expect(d.sums).toEqual({});
    expect(d.gauges).toEqual({ "storage.upload": 5 });
  });
});

/** A fake log: remembers (organization, id) with the txid of the call that first wrote it. */
function fakeLog() {
  const log = new Map<string, number>();
  let txid = 1_000;
  let calls = 0;
  const q: Queryable = {
    async query<T>(text: string, params?: readonly unknown[]) {
      if (!text.includes("insert into usage_log")) return { rows: [] as T[], rowCount: 0 };
      calls += 1;
      txid += 1;
      const input = JSON.parse(String(params?.[0])) as { o: string; e: string }[];
      // The statement's txid first, then the known rows with the txid that recorded them.
      const rows: { o: string | null; e: string | null; txid: string }[] = [{ o: null, e: null, txid: String(txid) }];
      for (const { o, e } of input) {
        const key = `${o}\u0000${e}`;
        if (log.has(key)) rows.push({ o, e, txid: String(log.get(key)) });
        else log.set(key, txid);
      }
      return { rows: rows as T[], rowCount: rows.length };
    },
  };
  const db: Db = { ...q, transaction: (fn) => fn(q), end: async () => {} };
  return { db, statements: () => calls };
}

function recorder(apply: OrgUsageClient["apply"]) {
  const pipeline = { set: vi.fn(), pfadd: vi.fn(), expire: vi.fn(), zincrby: vi.fn(), exec: vi.fn(async () => []) };
  const redis = { pipeline: () => pipeline, mget: vi.fn(async () => []) } as unknown as Redis;
  const keys: RedisKeys = { key: (...p) => `t:${p.join(":")}` };
  const log = fakeLog();
  const client = { apply } as unknown as OrgUsageClient;
  const agg = new UsageAnalyticsAggregator({
    db: log.db,
    redis,
    keys,
    orgs: () => client,
    config: { lateEventHorizonDays: 35, ingestRateLimitPerMinute: 600, minuteRetentionDays: 7, foldIntervalMs: 1000 },
    now: () => NOW,
  });
  return { agg, log, pipeline };
}

describe("recording batches", () => {
  it("writes a batch with one statement and hands duplicates split across batches the first write's position", async () => {
    const applied: { org: string; events: CounterEvent[] }[] = [];
    const { agg, log } = recorder(async (org, events) => {
      applied.push({ org, events });
      return { applied: events.length, crossings: 0 };
    });
    const first = await agg.recordEvents([usageEvent(1), usageEvent(2)]);
    const second = await agg.recordEvents([usageEvent(2), usageEvent(3), usageEvent(3)]);
    expect(log.statements()).toBe(2);
    expect([...first].length).toBe(2);
    expect([...second].length).toBe(1); // e2 was the first batch's
    const positions = applied.flatMap((a) => a.events.map((e) => [e.eventId, e.position]));
    // e2's position is where it was first recorded, in both batches: the object dedupes by id, and a
    // reconciliation that covered the first write counts it in the base, never twice.
    expect(positions).toEqual([
      ["e1", 1001],
      ["e2", 1001],
      ["e2", 1001],
      ["e3", 1002],
      ["e3", 1002],
    ]);
  });

  it("fails a batch whose object update fails half-way, and its retry reaches every object", async () => {
    const calls: string[] = [];
    let failOrg2 = true;
    const { agg, pipeline } = recorder(async (org, events) => {
      calls.push(`${org}:${events.map((e) => e.eventId).join(",")}`);
      if (org === "org_2" && failOrg2) throw new Error("object unavailable");
      return { applied: events.length, crossings: 0 };
    });
    const batch = [usageEvent(1), usageEvent(2, { organizationId: "org_2" })];
    await expect(agg.recordEvents(batch)).rejects.toThrow("object unavailable"); // the Queue retries it
    failOrg2 = false;
    const fresh = await agg.recordEvents(batch);
    expect(fresh.size).toBe(0); // the log had both…
    expect(calls).toEqual(["org_1:e1", "org_2:e2", "org_1:e1", "org_2:e2"]); // …and both objects hear it again
    // Sketches are for new events only: the retry adds nothing to them twice.
    expect(pipeline.exec.mock.calls.length).toBeLessThanOrEqual(1);
  });
});

describe("the fast event check", () => {
  it("accepts only what the schema accepts, and yields exactly what the schema yields", () => {
    const rand = (() => {
      let x = 20241128;
      return () => {
        x = (x * 1103515245 + 12345) % 2 ** 31;
        return x / 2 ** 31;
      };
    })();
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const base = {
      eventId: "ev-1",
      organizationId: "org_1",
      eventType: "document.viewed",
      userId: "u1",
      resourceId: "doc/1",
      resourceType: "document",
      quantity: 2,
      metadata: { a: 1 },
      timestamp: new Date(NOW).toISOString(),
    };
    // Values each field may take: valid, edge and invalid ones.
    const variants: Record<string, unknown[]> = {
      eventId: ["e", "x".repeat(200), "x".repeat(201), "", "a b", "ü", 5, null, undefined, "a:b@c/d.e-f_g"],
      organizationId: ["o", "o o", "", undefined, 7],
      eventType: ["api.call", "storage.upload", "nope", "", undefined, 3],
      userId: ["u", undefined, null, "", "u u", 1],
      resourceId: ["r", undefined, null, "x".repeat(201)],
      resourceType: ["document", "a_b9", "Document", "9a", "", undefined, null, "a".repeat(64), "a".repeat(65)],
      quantity: [0, 1, 2.5, -1, 1e15, 1e15 + 1, Number.NaN, Number.POSITIVE_INFINITY, "3", undefined, null],
      metadata: [
        {},
        { k: "v" },
        { big: "x".repeat(4090) },
        { big: "x".repeat(4100) },
        [],
        null,
        undefined,
        "m",
        new Date(),
      ],
      timestamp: [base.timestamp, NOW, "2024-11-28", "not a date", "", null, undefined, true, new Date(NOW)],
    };
    let accepted = 0;
    for (let i = 0; i < 5_000; i++) {
      const input: Record<string, unknown> = { ...base };
      for (const [k, vs] of Object.entries(variants)) if (rand() < 0.3) input[k] = pick(vs);
      if (rand() < 0.05) input.extra = "ignored";
      const fast = fastUsageEvent(input);
      const oracle = usageEventSchema.safeParse(input);
      if (fast) {
        accepted += 1;
        expect(oracle.success, JSON.stringify(input)).toBe(true);
        expect(fast).toEqual(oracle.data);
      }
      // Whatever the fast check leaves, the schema still decides: the result is the schema's.
      expect(parseUsageEvent(input).ok).toBe(oracle.success);
    }
    expect(accepted).toBeGreaterThan(500);
  });
});
