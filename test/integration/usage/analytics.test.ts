import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { api } from "../support/api.ts";
import { withDb } from "../support/backends.ts";
import { ORG_USAGE_MIGRATIONS } from "../../../durable-objects/org-usage.ts";
import { migrateSqlite } from "../../../src/platform/sqlite-schema.ts";
import { appendEvents, tailSql } from "../../../src/usage/log.ts";
import { purges } from "../../../src/usage/retention.ts";
import {
  deliverAlerts,
  ev,
  hoursAgo,
  lastFallBack,
  localMidnight,
  newOrg,
  orgObject,
  setPlan,
  usage,
  valid,
  validAt,
} from "./support.ts";

const record = (events: ReturnType<typeof ev>[]) => usage().recordEvents(events.map(valid));
const point = (
  m: { dataPoints: { timestamp: string; metricType: string; value: number }[] },
  metric: string,
  ts: string,
) => m.dataPoints.find((p) => p.metricType === metric && p.timestamp === ts)?.value;

describe("queries", () => {
  it("aggregates hourly sums, derived metrics and unique users (never summed)", async () => {
    const org = newOrg();
    const h2 = hoursAgo(2);
    const h1 = hoursAgo(1);
    await record([
      ev(org, { timestamp: new Date(h2.getTime() + 60_000), userId: "ana", quantity: 2 }),
      ev(org, { timestamp: new Date(h2.getTime() + 120_000), userId: "bo" }),
      ev(org, { timestamp: new Date(h1.getTime() + 60_000), userId: "ana" }),
      ev(org, {
        eventType: "storage.upload",
        timestamp: new Date(h1.getTime() + 90_000),
        quantity: 1000,
        userId: "ana",
      }),
      ev(org, {
        eventType: "storage.delete",
        timestamp: new Date(h1.getTime() + 95_000),
        quantity: 400,
        userId: "ana",
      }),
    ]);
    const m = await usage().getAggregatedMetrics(org, {
      startTime: hoursAgo(3),
      endTime: new Date(),
      granularity: "hour",
      metricTypes: ["api_calls", "api.call", "storage", "active_users"],
    });
    expect(point(m, "api_calls", h2.toISOString())).toBe(3);
    expect(point(m, "api.call", h1.toISOString())).toBe(1);
    expect(point(m, "storage", h1.toISOString())).toBe(600);
    expect(point(m, "active_users", h2.toISOString())).toBe(2);
    expect(point(m, "active_users", h1.toISOString())).toBe(1);
    expect(m.totals).toEqual({ api_calls: 4, "api.call": 4, storage: 600, active_users: 2 });
  });

  it("returns nothing for an empty range, and rejects bad queries", async () => {
    const org = newOrg();
    const m = await usage().getAggregatedMetrics(org, {
      startTime: hoursAgo(5),
      endTime: hoursAgo(4),
      granularity: "hour",
      metricTypes: ["api_calls", "collaborators"],
    });
    expect(m.dataPoints).toEqual([]);
    expect(m.totals).toEqual({ api_calls: 0, collaborators: 0 });
    const bad = await api(
      `/v1/orgs/${org}/usage/metrics?startTime=${hoursAgo(1).toISOString()}&endTime=${hoursAgo(2).toISOString()}&granularity=hour&metricTypes=nope`,
      { org },
    );
    expect(bad.status).toBe(400);
    const tooMany = await api(
      `/v1/orgs/${org}/usage/metrics?startTime=${hoursAgo(24 * 300).toISOString()}&endTime=${hoursAgo(0).toISOString()}&granularity=minute&metricTypes=api_calls`,
      { org },
    );
    expect(tooMany.status).toBe(400);
  });

  it("breaks sums down by resource type and by user", async () => {
    const org = newOrg();
    const t = hoursAgo(1, 5);
    await record([
      ev(org, { eventType: "document.viewed", resourceType: "document", resourceId: "d1", timestamp: t }),
      ev(org, { eventType: "document.viewed", resourceType: "spreadsheet", resourceId: "s1", timestamp: t }),
      ev(org, {
        eventType: "document.viewed",
        resourceType: "document",
        resourceId: "d2",
        timestamp: t,
        userId: "zed",
      }),
    ]);
    const byType = await usage().getAggregatedMetrics(org, {
      startTime: hoursAgo(2),
      endTime: new Date(),
      granularity: "day",
      metricTypes: ["document.viewed"],
      dimensions: ["resourceType"],
    });
    expect(Object.fromEntries(byType.dataPoints.map((p) => [p.dimensions.resourceType, p.value]))).toEqual({
      document: 2,
      spreadsheet: 1,
    });
    const byUser = await usage().getAggregatedMetrics(org, {
      startTime: hoursAgo(2),
      endTime: new Date(),
      granularity: "hour",
      metricTypes: ["document.viewed"],
      dimensions: ["userId"],
    });
    expect(Object.fromEntries(byUser.dataPoints.map((p) => [p.dimensions.userId, p.value]))).toEqual({ u1: 2, zed: 1 });
  });

  it("buckets days in a time zone across the last DST change (America/New_York, found with Intl)", async () => {
    const org = newOrg();
    const zone = "America/New_York";
    const change = lastFallBack(zone, new Date());
    // The service's clock is set just after the change, so the events are inside its late-event horizon.
    const clock = { now: () => change.at.getTime() + 2 * 86_400_000 };
    const prevDay = localMidnight(zone, change.at, -1, change.offsetBefore);
    const day = localMidnight(zone, change.at, 0, change.offsetBefore);
    const nextDay = localMidnight(zone, change.at, 1, change.offsetAfter);
    const end = localMidnight(zone, change.at, 2, change.offsetAfter);
    expect(nextDay.getTime() - day.getTime()).toBe(25 * 3_600_000); // the day clocks went back
    const at = (d: Date, minutes: number) => new Date(d.getTime() + minutes * 60_000);
    await usage(clock).recordEvents(
      [
        ev(org, { timestamp: at(day, -30) }), // 23:30 the evening before
        ev(org, { timestamp: at(day, 30) }), // 00:30 on the day of the change
        ev(org, { timestamp: at(nextDay, -30) }), // 23:30 on that day, its 25th hour
        ev(org, { timestamp: at(nextDay, 30) }), // 00:30 the day after
      ].map(validAt(clock)),
    );
    const m = await usage(clock).getAggregatedMetrics(org, {
      startTime: prevDay,
      endTime: end,
      granularity: "day",
      metricTypes: ["api.call"],
      timeZone: zone,
    });
    expect(m.dataPoints.map((p) => [p.timestamp, p.value])).toEqual([
      [prevDay.toISOString(), 1],
      [day.toISOString(), 2],
      [nextDay.toISOString(), 1],
    ]);
    expect(m.source).toBe("usage_agg_hour+usage_log(tail)");
  });

  it("buckets half- and quarter-hour zones completely past the minute retention, and refuses what it cannot answer", async () => {
    const org = newOrg();
    const DAY = 86_400_000;
    const day0 = Math.floor(Date.now() / DAY) * DAY - 9 * DAY; // a UTC midnight older than the minute retention
    // 18:20 UTC is 23:50 in Kolkata (+5:30) but 00:05 next day in Kathmandu (+5:45); 18:40 is past
    // midnight in both; 05:00 two days on is the same local day in both.
    const at = [
      day0 + 18 * 3_600_000 + 20 * 60_000,
      day0 + 18 * 3_600_000 + 40 * 60_000,
      day0 + 2 * DAY + 5 * 3_600_000,
    ];
    await record(at.map((t, i) => ev(org, { timestamp: new Date(t), quantity: 10 ** i })));
    const query = (timeZone: string) =>
      usage().getAggregatedMetrics(org, {
        startTime: new Date(day0 - DAY),
        endTime: new Date(day0 + 4 * DAY),
        granularity: "day",
        metricTypes: ["api.call"],
        timeZone,
      });
    // Expected buckets: each event's local midnight (fixed offsets: neither zone has DST).
    const expected = (offsetMinutes: number) => {
      const sums = new Map<string, number>();
      at.forEach((t, i) => {
        const off = offsetMinutes * 60_000;
        const midnight = new Date(Math.floor((t + off) / DAY) * DAY - off).toISOString();
        sums.set(midnight, (sums.get(midnight) ?? 0) + 10 ** i);
      });
      return [...sums].sort(([a], [b]) => a.localeCompare(b));
    };
    const restore = await withDb(async (db) => {
      const { rows } = await db.query<{ since: Date }>("select exact_since as since from usage_watermark");
      return rows[0]!.since;
    });
    try {
      // The 15-minute aggregates are complete only from `exact_since`: before it, a 400 that says so.
      await withDb((db) => db.query("update usage_watermark set exact_since = $1", [new Date(day0).toISOString()]));
      await expect(query("Asia/Kolkata")).rejects.toThrow(/cannot answer this exactly/);
      await withDb((db) =>
        db.query("update usage_watermark set exact_since = least(exact_since, $1)", [
          new Date(day0 - 2 * DAY).toISOString(),
        ]),
      );
      for (const flush of [false, true]) {
        if (flush) await usage().aggregate({ flush: true }); // from the tail, then from the aggregates
        for (const [zone, offset] of [
          ["Asia/Kolkata", 330],
          ["Asia/Kathmandu", 345],
        ] as const) {
          const m = await query(zone);
          expect(
            m.dataPoints.map((p) => [p.timestamp, p.value]),
            `${zone} flushed=${flush}`,
          ).toEqual(expected(offset));
          expect(m.source).toContain("usage_agg_quarter");
        }
      }
      expect(expected(330)).not.toEqual(expected(345)); // the case tells the two zones apart
      // A breakdown by resource needs raw events, kept for the horizon + 7 days: older is a 400 saying so.
      await expect(
        usage().getAggregatedMetrics(org, {
          startTime: new Date(Date.now() - 60 * DAY),
          endTime: new Date(),
          granularity: "day",
          metricTypes: ["api.call"],
          dimensions: ["resourceId"],
        }),
      ).rejects.toThrow(/cannot answer this exactly/);
    } finally {
      await withDb((db) => db.query("update usage_watermark set exact_since = $1", [restore.toISOString()]));
    }
  });
});

describe("rollups", () => {
  it("is exact before and after rollup, idempotent, and picks up late events", async () => {
    const org = newOrg();
    const day = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate() - 3));
    const at = (h: number) => new Date(day.getTime() + h * 3_600_000);
    await record([
      ev(org, { timestamp: at(1), quantity: 5 }),
      ev(org, { timestamp: at(23), quantity: 1 }),
      ev(org, { timestamp: at(25), quantity: 2 }),
    ]);
    const q = {
      startTime: day,
      endTime: new Date(day.getTime() + 2 * 86_400_000),
      granularity: "day" as const,
      metricTypes: ["api_calls"],
    };
    const before = await usage().getAggregatedMetrics(org, q);
    expect(before.dataPoints.map((p) => p.value)).toEqual([6, 2]);
    const first = await usage().rollupMetrics("api_calls", new Date());
    expect(first.errors).toBe(0);
    expect(first.rolledUp).toBeGreaterThanOrEqual(2);
    const again = await usage().rollupMetrics("api_calls", new Date());
    expect(again.rolledUp).toBe(0);
    const { rows } = await withDb((db) =>
      db.query<{ quantity: number }>("select quantity from usage_agg_day where organization_id = $1 order by bucket", [
        org,
      ]),
    );
    expect(rows.map((r) => Number(r.quantity))).toEqual([6, 2]);
    expect((await usage().getAggregatedMetrics(org, q)).dataPoints.map((p) => p.value)).toEqual([6, 2]);

    // A late event for the rolled-up day: visible at once (dirty bucket read from hours)…
    await record([ev(org, { timestamp: at(12), quantity: 10 })]);
    expect((await usage().getAggregatedMetrics(org, q)).dataPoints.map((p) => p.value)).toEqual([16, 2]);
    // …and folded into the day table by the next run, replacing — not adding twice.
    expect(await usage().rollupMetrics("*", new Date())).toMatchObject({ errors: 0 });
    expect(await usage().rollupMetrics("*", new Date())).toEqual({ rolledUp: 0, errors: 0 });
    const after = await withDb((db) =>
      db.query<{ quantity: number }>("select quantity from usage_agg_day where organization_id = $1 order by bucket", [
        org,
      ]),
    );
    expect(after.rows.map((r) => Number(r.quantity))).toEqual([16, 2]);
    const month = await usage().getAggregatedMetrics(org, {
      ...q,
      granularity: "month",
      startTime: new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), 1)),
    });
    expect(month.totals.api_calls).toBe(18);
  });
});

describe("the usage log", () => {
  it("reads an organization's tail as an index range, not its whole history, never in parallel nor JIT-compiled", async () => {
    const org = newOrg();
    await usage().aggregate({ flush: true }); // the log's tail is what arrives from here on
    const plan = await withDb(async (db) => {
      // A history, all of it folded (txid 0 is below any watermark), among 40 other organizations'
      // histories, and a short tail: through the primary key a tail read visits the whole history.
      await db.query(
        `insert into usage_log (organization_id, event_id, event_type, quantity, occurred_at, txid)
         select case when i % 41 = 0 then $1 else $1 || '-other-' || (i % 41) end, 'h' || i, 'api.call', 1,
                now() - i * interval '1 second', 0
         from generate_series(1, 200000) i`,
        [org],
      );
      await appendEvents(db, [valid(ev(org))]);
      await db.query("analyze usage_log");
      // The planner guesses a third of the history for the tail; at 10 M events that cost bought
      // ~2 s of JIT compilation for a read of milliseconds. The database's sessions run without it.
      expect((await db.query<{ jit: string }>("show jit")).rows[0]!.jit).toBe("off");
      const { rows } = await db.query<{ "QUERY PLAN": unknown }>(
        `explain (analyze, format json) select count(*) from (${tailSql("$1")}) t`,
        [org],
      );
      return JSON.stringify(rows[0]!["QUERY PLAN"]);
    });
    expect(plan).toContain('"Index Name":"usage_log_org_txid"');
    expect(plan).not.toContain('"Index Name":"usage_log_pkey"'); // the organization's whole history
    expect(plan).not.toContain("Gather");
  });

  it("summarizes the log's new page ranges before it folds, so tail scans skip what is folded", async () => {
    const org = newOrg();
    // ~400 pages of history (txid 0: folded), appended after the last summary: 25 and more BRIN ranges.
    await withDb((db) =>
      db.query(
        `insert into usage_log (organization_id, event_id, event_type, quantity, metadata, occurred_at, txid)
         select $1, 'b' || i, 'api.call', 1, '{"pad": "${"x".repeat(40)}"}', now(), 0 from generate_series(1, 30000) i`,
        [org],
      ),
    );
    await usage().aggregate({ flush: true });
    // What is left to summarize: at most the ranges other tests filled meanwhile.
    const left = await withDb(async (db) => {
      const { rows } = await db.query<{ n: number }>(
        "select brin_summarize_new_values('usage_log_txid_brin'::regclass)::int as n",
      );
      return rows[0]!.n;
    });
    expect(left).toBeLessThan(10);
  });

  const hourTotals = async (org: string) =>
    (
      await usage().getAggregatedMetrics(org, {
        startTime: hoursAgo(4),
        endTime: hoursAgo(-1),
        granularity: "hour",
        metricTypes: ["api.call"],
      })
    ).dataPoints.map((p) => [p.timestamp, p.value]);
  const folded = (org: string) =>
    withDb(async (db) => {
      const { rows } = await db.query<{ hour: number; raw: number; tail: number }>(
        `select (select coalesce(sum(events), 0)::int from usage_agg_hour where organization_id = $1) as hour,
                (select count(*)::int from usage_events where organization_id = $1) as raw,
                (select count(*)::int from (${tailSql("$1")}) t) as tail`,
        [org],
      );
      return rows[0]!;
    });

  it("answers exactly from the log before it is aggregated, after, and once when a fold fails half-way", async () => {
    const org = newOrg();
    await withDb((db) =>
      appendEvents(db, [
        ...Array.from({ length: 3 }, () => valid(ev(org, { timestamp: hoursAgo(2, 10) }))),
        ...Array.from({ length: 2 }, () => valid(ev(org, { timestamp: hoursAgo(0, 1) }))),
      ]),
    );
    const expected = [
      [hoursAgo(2).toISOString(), 3],
      [hoursAgo(0).toISOString(), 2],
    ];
    expect(await hourTotals(org)).toEqual(expected); // the log alone (or whatever is folded): exact
    // The fold of this organization's rows fails mid-statement: the whole chunk rolls back. Only
    // in this test's sessions (`cm.fold_fault`): a fold run meanwhile by another test's aggregator
    // object must not meet the fault.
    const fn = `fail_fold_${org}`;
    await withDb(async (db) => {
      await db.query(
        `create function ${fn}() returns trigger language plpgsql as $$
         begin
           if current_setting('cm.fold_fault', true) = 'on' then raise exception 'fold refused'; end if;
           return new;
         end $$`,
      );
      await db.query(
        `create trigger ${fn} before insert on usage_agg_hour for each row
         when (new.organization_id = '${org}') execute function ${fn}()`,
      );
    });
    try {
      await expect(usage({ pgOptions: "-c cm.fold_fault=on" }).aggregate({ flush: true })).rejects.toThrow(
        /fold refused/,
      );
      expect(await folded(org)).toEqual({ hour: 0, raw: 0, tail: 5 }); // nothing half-written
      expect(await hourTotals(org)).toEqual(expected);
    } finally {
      await withDb((db) => db.query(`drop trigger ${fn} on usage_agg_hour; drop function ${fn}()`));
    }
    await usage().aggregate({ flush: true });
    expect(await folded(org)).toEqual({ hour: 5, raw: 5, tail: 0 });
    expect(await hourTotals(org)).toEqual(expected); // folded once, not added to the tail
  });

  it("counts late events for an hour already aggregated, and never an aggregated event's duplicate", async () => {
    const org = newOrg();
    const first = valid(ev(org, { timestamp: hoursAgo(3, 5), quantity: 4 }));
    await usage().recordEvents([first]);
    await usage().aggregate({ flush: true });
    expect(await folded(org)).toMatchObject({ hour: 1, tail: 0 });
    const late = valid(ev(org, { timestamp: hoursAgo(3, 50), quantity: 6 }));
    const fresh = await usage().recordEvents([first, late]);
    expect(fresh.size).toBe(1);
    const at3 = hoursAgo(3).toISOString();
    expect(await hourTotals(org)).toEqual([[at3, 10]]); // aggregate 4 + tail 6
    await usage().aggregate({ flush: true });
    expect(await hourTotals(org)).toEqual([[at3, 10]]);
    expect(await folded(org)).toEqual({ hour: 2, raw: 2, tail: 0 });
    expect((await orgObject(org).status(org)).sums["api.call"]).toBe(10);
  });

  it("breaks a day down by user across the per-user aggregate and the log's tail: one point per user and day", async () => {
    const DAY = 86_400_000;
    const org = newOrg();
    const viewed = (userId: string, quantity: number) =>
      valid(ev(org, { eventType: "document.viewed", userId, quantity }));
    const folded1 = [viewed("u1", 4), viewed("u2", 1)];
    await usage().recordEvents(folded1);
    await usage().aggregate({ flush: true });
    expect(await folded(org)).toMatchObject({ tail: 0 });
    const inTail = [viewed("u1", 6), viewed("u3", 0.5), viewed("u3", 0.25)];
    await usage().recordEvents(inTail);
    expect(await folded(org)).toMatchObject({ tail: 3 });
    // Expected from the events' own UTC days (a run at midnight puts them in two).
    const expected = new Map<string, number>();
    for (const e of [...folded1, ...inTail]) {
      const key = `${new Date(Math.floor(e.timestamp.getTime() / DAY) * DAY).toISOString()}|${e.userId}`;
      expected.set(key, (expected.get(key) ?? 0) + e.quantity);
    }
    const restore = await withDb(async (db) => {
      const { rows } = await db.query<{ since: Date }>("select exact_since as since from usage_watermark");
      return rows[0]!.since;
    });
    try {
      // Per-user day sums are complete from `exact_since` (the test database's creation): earlier for this read.
      await withDb((db) =>
        db.query("update usage_watermark set exact_since = least(exact_since, $1)", [
          new Date(Date.now() - 3 * DAY).toISOString(),
        ]),
      );
      const m = await usage().getAggregatedMetrics(org, {
        startTime: new Date(Date.now() - DAY),
        endTime: hoursAgo(-1),
        granularity: "day",
        metricTypes: ["document.viewed"],
        dimensions: ["userId"],
      });
      expect(m.source).toContain("usage_agg_user_day");
      const got = m.dataPoints.map((p) => `${p.timestamp}|${p.dimensions.userId}`);
      expect(new Set(got).size).toBe(got.length); // the aggregate's u1 and the tail's u1 are one point
      expect(Object.fromEntries(m.dataPoints.map((p) => [`${p.timestamp}|${p.dimensions.userId}`, p.value]))).toEqual(
        Object.fromEntries(expected),
      );
      expect(got).toEqual([...got].sort()); // in time order
      expect(m.totals["document.viewed"]).toBe(11.75);
    } finally {
      await withDb((db) => db.query("update usage_watermark set exact_since = $1", [restore.toISOString()]));
    }
  });

  it("folds every aggregate exactly as the same grouping of the log would, at every bucket's edge", async () => {
    const org = newOrg();
    // Edges from the clock: the start of this UTC month, hour and quarter-hour, and a millisecond before each.
    const now = new Date();
    const month = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
    const hour = Math.floor(now.getTime() / 3_600_000) * 3_600_000 - 3_600_000;
    const quarter = hour + 45 * 60_000;
    const at = [month - 1, month, month + 59_999, hour - 1, hour, quarter - 1, quarter, quarter + 30_000];
    const users = ["ana", "bo", undefined];
    const types = ["document.viewed", "api.call", "storage.upload"] as const;
    const events = at.flatMap((t, i) =>
      Array.from({ length: 3 }, (_, j) =>
        valid(
          ev(org, {
            eventType: types[(i + j) % 3],
            userId: users[(i * 3 + j) % 3],
            resourceId: `doc-${j}`,
            resourceType: "document",
            quantity: 0.5 + i + j,
            timestamp: new Date(t),
          }),
        ),
      ),
    );
    await withDb((db) => appendEvents(db, events));
    await usage().aggregate({ flush: true });
    const log = `from usage_log where organization_id = $1`;
    const pairs: Record<string, [folded: string, expected: string]> = {
      minute: [
        `select event_type, resource_type, bucket, quantity::text, events from usage_agg_minute where organization_id = $1`,
        `select event_type, coalesce(resource_type, ''), date_trunc('minute', occurred_at, 'UTC'), sum(quantity)::text, count(*) ${log} group by 1, 2, 3`,
      ],
      quarter: [
        `select event_type, resource_type, bucket, quantity::text, events from usage_agg_quarter where organization_id = $1`,
        `select event_type, coalesce(resource_type, ''), date_bin('15 minutes', occurred_at, timestamptz '2000-01-01 00:00:00+00'), sum(quantity)::text, count(*) ${log} group by 1, 2, 3`,
      ],
      hour: [
        `select event_type, resource_type, bucket, quantity::text, events from usage_agg_hour where organization_id = $1`,
        `select event_type, coalesce(resource_type, ''), date_trunc('hour', occurred_at, 'UTC'), sum(quantity)::text, count(*) ${log} group by 1, 2, 3`,
      ],
      userDay: [
        `select event_type, user_id, bucket, quantity::text, events from usage_agg_user_day where organization_id = $1`,
        `select event_type, user_id, date_trunc('day', occurred_at, 'UTC'), sum(quantity)::text, count(*) ${log} and user_id is not null group by 1, 2, 3`,
      ],
      userHours: [
        `select bucket, user_id from usage_user_hours where organization_id = $1`,
        `select distinct date_trunc('hour', occurred_at, 'UTC'), user_id ${log} and user_id is not null`,
      ],
      userDays: [
        `select bucket, user_id from usage_user_days where organization_id = $1`,
        `select distinct date_trunc('day', occurred_at, 'UTC'), user_id ${log} and user_id is not null`,
      ],
      top: [
        `select month, kind, member, events from usage_agg_top_month where organization_id = $1`,
        `select date_trunc('month', occurred_at, 'UTC'), 'user', user_id, count(*) ${log} and user_id is not null group by 1, 2, 3
         union all select date_trunc('month', occurred_at, 'UTC'), 'document', resource_id, count(*) ${log}
           and event_type like 'document.%' group by 1, 2, 3`,
      ],
      dirty: [
        `select event_type, granularity, bucket from usage_dirty_buckets where organization_id = $1`,
        `select distinct event_type, g, date_trunc(g, occurred_at, 'UTC')
         from usage_log cross join (values ('day'), ('month')) v(g) where organization_id = $1`,
      ],
    };
    const sorted = (rows: unknown[]) => rows.map((r) => JSON.stringify(Object.values(r as object))).sort();
    await withDb(async (db) => {
      for (const [name, [folded, expected]] of Object.entries(pairs)) {
        const got = sorted((await db.query(folded, [org])).rows);
        expect(got.length, name).toBeGreaterThan(0);
        expect(got, name).toEqual(sorted((await db.query(expected, [org])).rows));
      }
    });
    // The month's edge did split the events (whatever today's date).
    expect(new Set(at.map((t) => new Date(t).getUTCMonth())).size).toBe(2);
  });

  it("ranks top users and documents exactly across aggregated events and the log's tail", async () => {
    const org = newOrg();
    const viewed = (userId: string, resourceId: string) =>
      ev(org, { userId, eventType: "document.viewed", resourceId });
    await record([
      ...Array.from({ length: 4 }, () => viewed("ana", "doc-a")),
      viewed("bo", "doc-b"),
      viewed("bo", "doc-b"),
    ]);
    await usage().aggregate({ flush: true });
    // In the tail only: bo overtakes ana (2 folded + 3 new), cy appears; doc-b overtakes doc-a.
    await record([...Array.from({ length: 3 }, () => viewed("bo", "doc-b")), viewed("cy", "doc-c")]);
    const d = (await usage().getDashboardData(org)) as {
      topUsers: { userId: string; events: number }[];
      topDocuments: { documentId: string; events: number }[];
    };
    expect(d.topUsers).toEqual([
      { userId: "bo", events: 5 },
      { userId: "ana", events: 4 },
      { userId: "cy", events: 1 },
    ]);
    expect(d.topDocuments.map((t) => [t.documentId, t.events])).toEqual([
      ["doc-b", 5],
      ["doc-a", 4],
      ["doc-c", 1],
    ]);
    await usage().aggregate({ flush: true });
    expect((await usage().getDashboardData(org)).topUsers).toEqual(d.topUsers);
  });

  it("bills a period that does not start on the hour exactly, to the millisecond", async () => {
    const org = newOrg();
    await setPlan(org, {}, { api_calls: 0 }, { api_calls: 1 });
    // A billing anchor 50 hours ago at :37:12.345 — the period starts there, not at the hour.
    const anchor = new Date(hoursAgo(50, 37).getTime() + 12_345);
    await withDb((db) => db.query("update organizations set billing_anchor = $2 where id = $1", [org, anchor]));
    await orgObject(org).invalidate();
    const ms = (d: number) => new Date(anchor.getTime() + d);
    await record([
      ev(org, { timestamp: ms(-1), quantity: 100 }), // a millisecond before: the previous period
      ev(org, { timestamp: ms(0), quantity: 1 }),
      ev(org, { timestamp: ms(20 * 60_000), quantity: 2 }), // later in the anchor's hour
      ev(org, { timestamp: ms(3 * 3_600_000), quantity: 4 }), // whole hours after
    ]);
    await usage().aggregate({ flush: true });
    const report = await usage().generateUsageReport(org, anchor, hoursAgo(-1));
    expect(report.lineItems.find((l) => l.metricType === "api_calls")).toMatchObject({ quantity: 7, amount: 7 });
    const quota = await usage().getQuotaStatus(org);
    expect(quota.metrics.find((m) => m.metricType === "api_calls")).toMatchObject({ used: 7 });
    // The object's reconciliation reads the same exact edges.
    const r = await orgObject(org).reconcile(org);
    expect(r?.drift).toEqual({ sums: {}, gauges: {}, users: 0 });
  });
  it("sums fractional quantities decimal-exactly: the log, the aggregates, the object, alerts and bills", async () => {
    const org = newOrg();
    await setPlan(org, { api_calls: 1 }, { api_calls: 0.3 }, { api_calls: 0.1 });
    await usage().subscribeToQuotaAlerts(org, {
      metricType: "api_calls",
      threshold: 100,
      notificationChannels: ["in_app"],
    });
    // Ten tenths: binary floating point sums them to 0.9999999999999999, under the limit and the 100 % alert.
    await record(Array.from({ length: 10 }, (_, i) => ev(org, { quantity: 0.1, timestamp: hoursAgo(1, i) })));
    const totals = async () =>
      (
        await usage().getAggregatedMetrics(org, {
          startTime: hoursAgo(3),
          endTime: new Date(),
          granularity: "hour",
          metricTypes: ["api.call"],
        })
      ).totals["api.call"];
    expect(await totals()).toBe(1); // from the log's tail
    await usage().aggregate({ flush: true });
    expect(await totals()).toBe(1); // from the aggregates
    const quota = await usage().getQuotaStatus(org);
    expect(quota.metrics.find((m) => m.metricType === "api_calls")).toMatchObject({ used: 1, percentage: 100 });
    expect(await usage().checkQuota(org, "api_calls", 0.1)).toEqual({ allowed: false, remaining: 0, limit: 1 });
    await deliverAlerts(org);
    const alerts = await withDb((db) =>
      db.query<{ type: string }>("select type from outbox where organization_id = $1 and type like 'usage.%'", [org]),
    );
    expect(alerts.rows.map((r) => r.type)).toEqual(["usage.quota.threshold_crossed"]);
    const report = await usage().generateUsageReport(org, hoursAgo(48), hoursAgo(-1));
    expect(report.lineItems.find((l) => l.metricType === "api_calls")).toMatchObject({
      quantity: 1,
      included: 0.3,
      overage: 0.7,
      amount: 0.07,
    });
    // Reconciled from Postgres' exact sums, the object agrees to the last digit.
    expect((await orgObject(org).reconcile(org))?.drift).toEqual({ sums: {}, gauges: {}, users: 0 });
    expect((await orgObject(org).status(org)).sums["api.call"]).toBe(1);
  });
});

describe("quotas and alerts", () => {
  it("admits exactly up to the limit under 150 concurrent checks", async () => {
    const org = newOrg();
    await setPlan(org, { api_calls: 100 });
    const results = await Promise.all(Array.from({ length: 150 }, () => usage().checkQuota(org, "api_calls", 1)));
    expect(results.filter((r) => r.allowed)).toHaveLength(100);
    const last = results.filter((r) => !r.allowed)[0]!;
    expect(last).toEqual({ allowed: false, remaining: 0, limit: 100 });
    const status = await usage().getQuotaStatus(org);
    expect(status.metrics.find((m) => m.metricType === "api_calls")).toMatchObject({
      used: 0,
      reserved: 100,
      percentage: 100,
    });
  });

  it("consumes reservations with the usage that follows, so nothing is counted twice", async () => {
    const org = newOrg();
    await setPlan(org, { api_calls: 10 });
    for (let i = 0; i < 4; i++) expect((await usage().checkQuota(org, "api_calls", 1)).allowed).toBe(true);
    await record(Array.from({ length: 4 }, () => ev(org)));
    const m = (await usage().getQuotaStatus(org)).metrics.find((x) => x.metricType === "api_calls")!;
    expect(m).toMatchObject({ used: 4, reserved: 0, limit: 10, percentage: 40, exceeded: false });
    expect(await usage().checkQuota(org, "api_calls", 7)).toEqual({ allowed: false, remaining: 6, limit: 10 });
  });

  it("fires a threshold alert exactly once per period, then the exceeded event", async () => {
    const org = newOrg();
    await setPlan(org, { api_calls: 10 });
    const { subscriptionId } = await usage().subscribeToQuotaAlerts(
      org,
      { metricType: "api_calls", threshold: 50, notificationChannels: ["in_app", "webhook", "email"] },
      { notifyEmail: "ops@example.com" },
    );
    const batch = Array.from({ length: 6 }, () => ev(org));
    await record(batch);
    await record(batch); // redelivered
    await record([ev(org), ev(org)]);
    await record(Array.from({ length: 3 }, () => ev(org)));
    await deliverAlerts(org);
    const events = await withDb((db) =>
      db.query<{ type: string; event: { data: { threshold?: number; subscriptionId?: string } } }>(
        "select type, event from outbox where organization_id = $1 and type like 'usage.%' order by seq",
        [org],
      ),
    );
    expect(events.rows.map((r) => r.type)).toEqual(["usage.quota.threshold_crossed", "usage.quota.exceeded"]);
    expect(events.rows[0]!.event.data).toMatchObject({ subscriptionId, threshold: 50 });
    const notes = await withDb((db) =>
      db.query<{ kind: string }>("select kind from notifications where organization_id = $1 order by id", [org]),
    );
    expect(notes.rows.map((r) => r.kind)).toEqual(["usage.quota.threshold_crossed", "usage.quota.exceeded"]);
    const mail = await withDb((db) =>
      db.query<{ to_address: string; status: string }>(
        "select to_address, status from outbound_emails where organization_id = $1",
        [org],
      ),
    );
    expect(mail.rows).toEqual([{ to_address: "ops@example.com", status: "captured" }]);
  });

  it("records a batch that crosses a threshold without waiting for the alert's hand-off to Postgres", async () => {
    const org = newOrg();
    await setPlan(org, { api_calls: 10 });
    await usage().subscribeToQuotaAlerts(org, {
      metricType: "api_calls",
      threshold: 50,
      notificationChannels: ["in_app"],
    });
    const outcome = await withDb((db) =>
      db.transaction(async (tx) => {
        // Every alert hand-off waits on this lock until the transaction ends.
        await tx.query("lock table usage_alerts_fired in exclusive mode");
        const guard = new Promise((resolve) => setTimeout(() => resolve("waited for the hand-off"), 10_000));
        return Promise.race([record(Array.from({ length: 6 }, () => ev(org))).then(() => "recorded"), guard]);
      }),
    );
    expect(outcome).toBe("recorded");
    expect((await usage().getQuotaStatus(org)).metrics.find((m) => m.metricType === "api_calls")?.used).toBe(6);
    await deliverAlerts(org);
    const fired = await withDb((db) =>
      db.query<{ type: string }>("select type from outbox where organization_id = $1 and type like 'usage.%'", [org]),
    );
    expect(fired.rows.map((r) => r.type)).toEqual(["usage.quota.threshold_crossed"]);
  });

  it("never loses a threshold alert when handing it to Postgres fails: the object's alarm retries it", async () => {
    const org = newOrg();
    await setPlan(org, { api_calls: 10 });
    const { subscriptionId } = await usage().subscribeToQuotaAlerts(org, {
      metricType: "api_calls",
      threshold: 50,
      notificationChannels: ["in_app"],
    });
    // Postgres refuses this subscription's alert claim (an outage of exactly that step).
    const fn = `fail_${subscriptionId}`;
    await withDb(async (db) => {
      await db.query(
        `create function ${fn}() returns trigger language plpgsql as $$ begin raise exception 'down'; end $$`,
      );
      await db.query(
        `create trigger ${fn} before insert on usage_alerts_fired for each row when (new.subscription_id = '${subscriptionId}') execute function ${fn}()`,
      );
    });
    const batch = Array.from({ length: 6 }, () => ev(org));
    await record(batch); // the counters move and claim the alert; the batch never waits for its hand-off
    const fired = () =>
      withDb((db) =>
        db.query<{ type: string }>("select type from outbox where organization_id = $1 and type like 'usage.%'", [org]),
      ).then((r) => r.rows.map((x) => x.type));
    expect(await deliverAlerts(org)).toBe(0); // refused: kept (the alarm retries)
    expect(await fired()).toEqual([]);
    await withDb(async (db) => {
      await db.query(`drop trigger ${fn} on usage_alerts_fired`);
      await db.query(`drop function ${fn}()`);
    });
    await record(batch); // a redelivery meanwhile: counted and claimed once, whatever arrives twice
    await deliverAlerts(org); // (or the alarm did, meanwhile)
    await deliverAlerts(org);
    expect(await fired()).toEqual(["usage.quota.threshold_crossed"]); // handed off once
    expect((await usage().getQuotaStatus(org)).metrics.find((m) => m.metricType === "api_calls")?.used).toBe(6);
  });

  it("manages alert subscriptions over HTTP", async () => {
    const org = newOrg();
    const created = await api(`/v1/orgs/${org}/usage/alerts`, {
      org,
      body: { metricType: "storage", threshold: 80, notificationChannels: ["in_app"] },
    });
    expect(created.status).toBe(201);
    const { subscriptionId } = (await created.json()) as { subscriptionId: string };
    const list = (await (await api(`/v1/orgs/${org}/usage/alerts`, { org })).json()) as {
      subscriptions: { subscriptionId: string }[];
    };
    expect(list.subscriptions.map((s) => s.subscriptionId)).toEqual([subscriptionId]);
    expect((await api(`/v1/orgs/${org}/usage/alerts/${subscriptionId}`, { org, method: "DELETE" })).status).toBe(200);
    expect((await api(`/v1/orgs/${org}/usage/alerts/${subscriptionId}`, { org, method: "DELETE" })).status).toBe(404);
    expect(
      (
        await api(`/v1/orgs/${org}/usage/alerts`, {
          org,
          body: { metricType: "storage", threshold: 180, notificationChannels: ["in_app"] },
        })
      ).status,
    ).toBe(400);
  });
});

describe("reconciliation of the organization objects", () => {
  const used = async (org: string, metric: string) =>
    (await usage().getQuotaStatus(org)).metrics.find((m) => m.metricType === metric)?.used;

  it("takes a batch into a new object without waiting on Postgres; its alarm and every read apply it once", async () => {
    const org = newOrg();
    const events = Array.from({ length: 4 }, () => valid(ev(org, { quantity: 3, userId: "ana" })));
    const { position } = await withDb((db) => appendEvents(db, events));
    const counterEvents = events.map((e) => ({
      eventId: e.eventId,
      eventType: e.eventType,
      userId: e.userId,
      quantity: e.quantity,
      occurredAt: e.timestamp.getTime(),
      position: position.get(`${org}\u0000${e.eventId}`)!,
    }));
    expect(counterEvents.every((e) => e.position > 0)).toBe(true);
    const object = orgObject(org);
    const outcome = await withDb((db) =>
      db.transaction(async (tx) => {
        // A new object must reconcile with the log first, and every read of the log's watermark waits on this lock.
        await tx.query("lock table usage_watermark in access exclusive mode");
        const guard = new Promise((resolve) => setTimeout(() => resolve("waited for Postgres"), 10_000));
        return Promise.race([object.apply(org, counterEvents), guard]);
      }),
    );
    expect(outcome).toEqual({ applied: 0, crossings: 0 }); // kept for the alarm
    // The alarm applies it (run here, and maybe already on its own); a redelivery counts nothing twice.
    await runInDurableObject(object, (o: { alarm(): Promise<void> }) => o.alarm());
    await object.apply(org, counterEvents);
    await runInDurableObject(object, (_o: unknown, state: DurableObjectState) => {
      const sql = state.storage.sql;
      expect(sql.exec("select count(*) as n from deferred_batches").one().n).toBe(0);
      expect(sql.exec("select value from sums where event_type = 'api.call'").one().value).toBe(12);
    });
    expect(await used(org, "api_calls")).toBe(12);
    expect(await used(org, "collaborators")).toBe(1);
    // A batch deferred behind a stale plan is applied by the next read, before it answers.
    await object.invalidate();
    const more = valid(ev(org, { quantity: 5 }));
    const p2 = (await withDb((db) => appendEvents(db, [more]))).position;
    const deferred = await object.apply(org, [
      {
        eventId: more.eventId,
        eventType: more.eventType,
        userId: more.userId,
        quantity: 5,
        occurredAt: more.timestamp.getTime(),
        position: p2.get(`${org}\u0000${more.eventId}`)!,
      },
    ]);
    expect(deferred.applied).toBe(0);
    expect(await used(org, "api_calls")).toBe(17);
    expect((await object.reconcile(org))?.drift).toEqual({ sums: {}, gauges: {}, users: 0 });
  });

  it("keeps every applied event's dedup key when its SQLite schema is upgraded", async () => {
    await runInDurableObject(orgObject(newOrg()), (_o: unknown, state: DurableObjectState) => {
      const sql = state.storage.sql;
      // Back to the schema before the applied events were clustered on their id, with events in it.
      const clustered = ORG_USAGE_MIGRATIONS.findIndex((m) => m.includes("applied_by_id"));
      expect(clustered).toBeGreaterThan(0);
      for (const { name } of sql
        .exec<{ name: string }>(
          "select name from sqlite_master where type = 'table' and name <> '_schema' and name not like 'sqlite%' and name not like '\\_cf%' escape '\\'",
        )
        .toArray())
        sql.exec(`drop table ${name}`);
      sql.exec("delete from _schema");
      expect(migrateSqlite(state.storage, ORG_USAGE_MIGRATIONS.slice(0, clustered))).toBe(clustered);
      sql.exec(
        `insert into applied (event_id, occurred_at, position, event_type, quantity)
         values ('e1', 1000, 7, 'api.call', 1.5), ('e2', 2000, 8, 'storage.upload', 300)`,
      );
      expect(migrateSqlite(state.storage, ORG_USAGE_MIGRATIONS)).toBe(ORG_USAGE_MIGRATIONS.length);
      expect(sql.exec("select * from applied order by event_id").toArray()).toEqual([
        { event_id: "e1", occurred_at: 1000, position: 7, event_type: "api.call", quantity: 1.5 },
        { event_id: "e2", occurred_at: 2000, position: 8, event_type: "storage.upload", quantity: 300 },
      ]);
      // Still one row per id, and found by position (reconciliation's reads).
      expect(() => sql.exec("insert into applied values ('e1', 1, 1, 'api.call', 1)")).toThrow(/UNIQUE|constraint/i);
      const plan = sql
        .exec<{ detail: string }>("explain query plan select event_id from applied where position < 8")
        .toArray();
      expect(plan.map((r) => r.detail).join(" ")).toContain("applied_position");
    });
  });

  it("heals counters that missed a batch dead-lettered after its Postgres write (cron sweep)", async () => {
    const org = newOrg();
    await record(Array.from({ length: 10 }, () => ev(org)));
    expect(await used(org, "api_calls")).toBe(10);
    const lost = Array.from({ length: 5 }, () => ev(org, { quantity: 2, userId: "late-user" })).map(valid);
    await withDb((db) => appendEvents(db, lost)); // in Postgres, never reached the object
    expect(await used(org, "api_calls")).toBe(10);
    const r = await usage().reconcileActiveOrganizations(new Date(Date.now() - 30 * 60_000), { unlessWithinMs: 0 });
    expect(r.reconciled).toBeGreaterThanOrEqual(1);
    expect(await used(org, "api_calls")).toBe(20);
    expect(await used(org, "collaborators")).toBe(2);
    // A later redelivery of the lost batch is known to the base: nothing is counted twice.
    await usage().recordEvents(lost);
    expect(await used(org, "api_calls")).toBe(20);
  });

  it("rebuilds a lost object from Postgres before it answers", async () => {
    const org = newOrg();
    await record([
      ev(org, { quantity: 3 }),
      ev(org, { eventType: "storage.upload", quantity: 1000, userId: "ana" }),
      ev(org, { eventType: "document.created", quantity: 2 }),
    ]);
    await runInDurableObject(orgObject(org), async (_o: unknown, state: DurableObjectState) => {
      for (const t of ["applied", "sums", "gauges", "period_users", "kv"]) state.storage.sql.exec(`delete from ${t}`);
    });
    expect(await used(org, "api_calls")).toBe(3);
    expect(await used(org, "storage")).toBe(1000);
    expect(await used(org, "documents")).toBe(2);
    expect(await used(org, "collaborators")).toBe(2);
  });

  it("reports no drift and counts nothing twice for events still in flight", async () => {
    const org = newOrg();
    const batch = Array.from({ length: 4 }, () => ev(org, { quantity: 5 }));
    await record(batch);
    const r = await orgObject(org).reconcile(org);
    expect(r?.drift).toEqual({ sums: {}, gauges: {}, users: 0 });
    await record(batch);
    expect(await used(org, "api_calls")).toBe(20);
    expect((await orgObject(org).reconcile(org))?.drift).toEqual({ sums: {}, gauges: {}, users: 0 });
    expect(await used(org, "api_calls")).toBe(20);
  });
});

describe("retention", () => {
  const days = (n: number) => new Date(Date.now() - n * 86_400_000);

  it("purges minute aggregates in bounded batches and keeps recent ones", async () => {
    const org = newOrg();
    await withDb((db) =>
      db.query(
        `insert into usage_agg_minute (organization_id, event_type, resource_type, bucket, quantity, events)
         select $1, 'api.call', '', $2::timestamptz - g * interval '1 minute', 1, 1 from generate_series(1, 250) g
         union all select $1, 'api.call', '', date_trunc('minute', now()), 1, 1`,
        [org, days(8).toISOString()],
      ),
    );
    const left = () =>
      withDb(
        async (db) =>
          (
            await db.query<{ n: number }>(
              "select count(*)::int as n from usage_agg_minute where organization_id = $1",
              [org],
            )
          ).rows[0]!.n,
      );
    const once = await usage().applyRetention({ batchSize: 100, maxBatches: 1 });
    expect(once.minuteRows).toBe(100);
    await usage().applyRetention();
    expect(await left()).toBe(1);
  });

  it("finds what it purges through a time index", async () => {
    for (const p of Object.values(purges)) {
      const plan = await withDb((db) =>
        db.transaction(async (tx) => {
          await tx.query("set local enable_seqscan = off");
          const { rows } = await tx.query<{ "QUERY PLAN": unknown }>(`explain (format json) ${p.sql}`, [
            new Date().toISOString(),
            10,
          ]);
          return JSON.stringify(rows[0]!["QUERY PLAN"]);
        }),
      );
      expect(
        p.index.some((name) => plan.includes(`"Index Name":"${name}"`)),
        plan,
      ).toBe(true);
    }
  });

  it("drops whole months of raw events past the horizon instead of deleting rows", async () => {
    const org = newOrg();
    const old = days(100);
    const month = `usage_events_${old.toISOString().slice(0, 7).replace("-", "_")}`;
    await withDb(async (db) => {
      // An earlier retention run may have dropped that month already: bring it back for this test.
      await db.query("select usage_ensure_partitions(date_trunc('month', $1::timestamptz)::date, 1)", [
        old.toISOString(),
      ]);
      await db.query(
        `insert into usage_events (organization_id, event_id, event_type, quantity, occurred_at)
         values ($1, 'old', 'api.call', 1, $2), ($1, 'new', 'api.call', 1, now())`,
        [org, old.toISOString()],
      );
    });
    const r = await usage().applyRetention();
    expect(r.partitionsDropped).toContain(month);
    const { rows } = await withDb((db) =>
      db.query<{ event_id: string; gone: boolean }>(
        "select event_id, to_regclass($2) is null as gone from usage_events where organization_id = $1",
        [org, month],
      ),
    );
    expect(rows).toEqual([{ event_id: "new", gone: true }]);
  });
});

describe("reports and dashboard", () => {
  it("bills overage per line item and revises visibly after late events", async () => {
    const org = newOrg();
    await setPlan(org, {}, { api_calls: 10 }, { api_calls: 0.5 });
    const start = hoursAgo(48);
    const end = hoursAgo(-1);
    await record(Array.from({ length: 14 }, () => ev(org, { timestamp: hoursAgo(3) })));
    const r1 = await usage().generateUsageReport(org, start, end);
    expect(r1.revision).toBe(1);
    expect(r1.lineItems.find((l) => l.metricType === "api_calls")).toEqual({
      metricType: "api_calls",
      quantity: 14,
      included: 10,
      overage: 4,
      unitPrice: 0.5,
      amount: 2,
    });
    expect(r1.summary).toMatchObject({ totalAmount: 2, currency: "USD", eventsCounted: 14 });
    const same = await usage().generateUsageReport(org, start, end);
    expect(same.reportId).toBe(r1.reportId);
    await record([ev(org, { timestamp: hoursAgo(30), quantity: 2 })]); // late
    const r2 = await usage().generateUsageReport(org, start, end);
    expect(r2.revision).toBe(2);
    expect(r2.changes).toEqual([
      { metricType: "api_calls", previousQuantity: 14, quantity: 16, previousAmount: 2, amount: 3 },
    ]);
    const got = await api(`/v1/orgs/${org}/usage/reports/${r1.reportId}`, { org });
    expect(((await got.json()) as { revision: number }).revision).toBe(1);
  });

  it("serves a dashboard with exact period totals, trends, top-N, realtime and unique users", async () => {
    const org = newOrg();
    await record([
      ev(org, { userId: "ana", eventType: "document.viewed", resourceId: "doc-a" }),
      ev(org, { userId: "ana", eventType: "document.viewed", resourceId: "doc-a" }),
      ev(org, { userId: "ana", eventType: "document.updated", resourceId: "doc-a" }),
      ev(org, { userId: "bo", eventType: "document.viewed", resourceId: "doc-b" }),
      ev(org, { userId: "bo", eventType: "presence.joined", resourceId: "doc-b" }),
      ev(org, { userId: "cy" }),
    ]);
    const res = await api(`/v1/orgs/${org}/usage/dashboard`, { org, scopes: ["usage:read"] });
    expect(res.status).toBe(200);
    const d = (await res.json()) as {
      topUsers: { userId: string; events: number }[];
      topDocuments: { documentId: string; events: number }[];
      realtime: { activeUsers: number; openDocuments: number };
      uniqueUsers: { today: number; month: number };
      currentPeriod: { eventTotals: Record<string, number> };
      trends: Record<string, { weekOverWeek: { current: number } }>;
    };
    expect(d.topUsers[0]).toEqual({ userId: "ana", events: 3 });
    expect(d.topDocuments[0]).toEqual({ documentId: "doc-a", events: 3 });
    expect(d.realtime).toMatchObject({ activeUsers: 3, openDocuments: 1 });
    expect(d.uniqueUsers).toMatchObject({ today: 3, month: 3 });
    expect(d.currentPeriod.eventTotals["document.viewed"]).toBe(3);
    expect(d.trends.api_calls?.weekOverWeek.current).toBe(1);
    expect(await orgObject(org).realtime()).toMatchObject({ activeUsers: 3 });
  });
});
