import { eventKey } from "../events/cloudevent.ts";
import type { Queryable } from "../platform/db.ts";
import type { Granularity } from "./periods.ts";
import type { UsageEvent } from "./schemas.ts";

/** Postgres access of the usage service. */

/**
 * Records events exactly once in one statement: claims each (organization, event id) in
 * `usage_event_ids`, and only for the claimed ones inserts the raw row, adds to the minute and
 * hour aggregates, adds the user to the distinct-user sets and marks day/month buckets dirty.
 * Rows are written in key order so concurrent batches lock in the same order (no deadlocks).
 * @returns the {@link eventKey}s of the events that were new, and when Postgres received each event
 *   (its first arrival, epoch ms): the organization object's reconciliation keys on it
 */
export async function insertEvents(db: Queryable, events: readonly UsageEvent[]): Promise<InsertedEvents> {
  if (events.length === 0) return { fresh: new Set(), receivedAt: new Map() };
  const input = events.map((e) => ({
    o: e.organizationId,
    e: e.eventId,
    t: e.eventType,
    u: e.userId ?? null,
    ri: e.resourceId ?? null,
    rt: e.resourceType ?? "",
    q: e.quantity,
    m: e.metadata,
    at: e.timestamp.toISOString(),
  }));
  const { rows } = await db.query<{ o: string; e: string; fresh: boolean; received_ms: number }>(
    `with input as (
       select distinct on (o, e) * from jsonb_to_recordset($1::jsonb)
         as x(o text, e text, t text, u text, ri text, rt text, q float8, m jsonb, at timestamptz)
       order by o, e
     ), claimed as (
       insert into usage_event_ids (organization_id, event_id) select o, e from input order by o, e
       on conflict do nothing returning organization_id as o, event_id as e, received_at
     ), known as (
       -- Events claimed by earlier batches: their first arrival (claims in flight elsewhere read as now).
       select organization_id as o, event_id as e, received_at from usage_event_ids
       where (organization_id, event_id) in (select o, e from input)
     ), fresh as (
       select i.* from input i join claimed c using (o, e)
     ), raw as (
       insert into usage_events (organization_id, event_id, event_type, user_id, resource_id, resource_type, quantity, metadata, occurred_at)
       select o, e, t, u, ri, nullif(rt, ''), q, m, at from fresh
     ), minute as (
       insert into usage_agg_minute as a (organization_id, event_type, resource_type, bucket, quantity, events)
       select o, t, rt, date_trunc('minute', at, 'UTC'), sum(q), count(*) from fresh group by 1, 2, 3, 4 order by 1, 2, 3, 4
       on conflict (organization_id, event_type, resource_type, bucket)
       do update set quantity = a.quantity + excluded.quantity, events = a.events + excluded.events
     ), hour as (
       insert into usage_agg_hour as a (organization_id, event_type, resource_type, bucket, quantity, events)
       select o, t, rt, date_trunc('hour', at, 'UTC'), sum(q), count(*) from fresh group by 1, 2, 3, 4 order by 1, 2, 3, 4
       on conflict (organization_id, event_type, resource_type, bucket)
       do update set quantity = a.quantity + excluded.quantity, events = a.events + excluded.events
     ), uh as (
       insert into usage_user_hours (organization_id, bucket, user_id)
       select distinct o, date_trunc('hour', at, 'UTC'), u from fresh where u is not null order by 1, 2, 3 on conflict do nothing
     ), ud as (
       insert into usage_user_days (organization_id, bucket, user_id)
       select distinct o, date_trunc('day', at, 'UTC'), u from fresh where u is not null order by 1, 2, 3 on conflict do nothing
     ), dirty as (
       insert into usage_dirty_buckets as d (organization_id, event_type, granularity, bucket)
       select distinct o, t, g, date_trunc(g, at, 'UTC') from fresh cross join (values ('day'), ('month')) as gs(g) order by 1, 2, 3, 4
       on conflict (organization_id, event_type, granularity, bucket) do update set marked_at = now()
     )
     select i.o, i.e, c.o is not null as fresh,
       (extract(epoch from coalesce(c.received_at, k.received_at, now())) * 1000)::float8 as received_ms
     from input i left join claimed c using (o, e) left join known k using (o, e)`,
    [JSON.stringify(input)],
  );
  const out: InsertedEvents = { fresh: new Set(), receivedAt: new Map() };
  for (const r of rows) {
    const key = eventKey(r.o, r.e);
    if (r.fresh) out.fresh.add(key);
    out.receivedAt.set(key, Number(r.received_ms));
  }
  return out;
}

/** What {@link insertEvents} reports. */
export interface InsertedEvents {
  /** Keys of the events that were new. */
  fresh: Set<string>;
  /** Every input event's first arrival in Postgres (epoch ms), by key. */
  receivedAt: Map<string, number>;
}

/** Creates the organization with the default plan if it is new (usage arrives before anything else). */
export async function ensureOrganizations(db: Queryable, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.query("insert into organizations (id) select unnest($1::text[]) order by 1 on conflict do nothing", [
    [...new Set(ids)].sort(),
  ]);
}

/** An organization's plan and billing anchor. */
export interface OrgPlanRow {
  plan_id: string;
  billing_anchor: Date;
  limits: Record<string, number>;
  included: Record<string, number>;
  prices: Record<string, number>;
}

/** Reads the plan of an organization (creating the organization on the free plan if unknown). */
export async function orgPlan(db: Queryable, org: string): Promise<OrgPlanRow> {
  await ensureOrganizations(db, [org]);
  const { rows } = await db.query<OrgPlanRow>(
    "select o.plan_id, o.billing_anchor, p.limits, p.included, p.prices from organizations o join plans p on p.id = o.plan_id where o.id = $1",
    [org],
  );
  return rows[0]!;
}

/** One aggregated row before metric derivation. */
export interface SumRow {
  bucket: Date;
  event_type: string;
  dim: string | null;
  quantity: number;
}

/** Which table answers a (granularity, time zone) pair, and how buckets are computed from it. */
export function sourceFor(granularity: Granularity, wholeHourZone: boolean): "minute" | "hour" | "day" | "month" {
  if (granularity === "minute") return "minute";
  if (granularity === "hour") return wholeHourZone ? "hour" : "minute";
  return wholeHourZone ? "hour" : "minute";
}

/**
 * Sums per bucket and event type from the coarsest table that answers exactly:
 * UTC day/month buckets come from the rolled-up tables for clean buckets and from the hour table
 * for buckets dirtied since their rollup; other zones bucket the hour (or minute) table in SQL,
 * which follows daylight-saving changes.
 */
export async function sumsByBucket(
  db: Queryable,
  q: {
    org: string;
    types: string[];
    from: Date;
    to: Date;
    granularity: Granularity;
    tz: string;
    wholeHourZone: boolean;
    byResourceType: boolean;
  },
): Promise<{ rows: SumRow[]; source: string }> {
  const dim = q.byResourceType ? "resource_type" : "null::text";
  const params = [q.org, q.types, q.from.toISOString(), q.to.toISOString(), q.granularity, q.tz];
  if ((q.granularity === "day" || q.granularity === "month") && q.tz === "UTC") {
    const table = q.granularity === "day" ? "usage_agg_day" : "usage_agg_month";
    const { rows } = await db.query<SumRow>(
      `select a.bucket, a.event_type, ${dim.replace("resource_type", "a.resource_type")} as dim, sum(a.quantity)::float8 as quantity
       from ${table} a
       where a.organization_id = $1 and a.event_type = any($2::text[]) and a.bucket >= date_trunc($5, $3::timestamptz, $6) and a.bucket < $4
         and not exists (select 1 from usage_dirty_buckets d where d.organization_id = a.organization_id and d.event_type = a.event_type
                         and d.granularity = $5 and d.bucket = a.bucket)
       group by 1, 2, 3
       union all
       select date_trunc($5, h.bucket, $6), h.event_type, ${dim.replace("resource_type", "h.resource_type")}, sum(h.quantity)::float8
       from usage_agg_hour h
       join usage_dirty_buckets d on d.organization_id = h.organization_id and d.event_type = h.event_type
         and d.granularity = $5 and d.bucket = date_trunc($5, h.bucket, 'UTC')
       where h.organization_id = $1 and h.event_type = any($2::text[]) and h.bucket >= date_trunc($5, $3::timestamptz, $6) and h.bucket < $4
       group by 1, 2, 3`,
      params,
    );
    return { rows: merge(rows), source: `${table}+usage_agg_hour(dirty)` };
  }
  const table = sourceFor(q.granularity, q.wholeHourZone) === "hour" ? "usage_agg_hour" : "usage_agg_minute";
  const { rows } = await db.query<SumRow>(
    `select date_trunc($5, bucket, $6) as bucket, event_type, ${dim} as dim, sum(quantity)::float8 as quantity
     from ${table} where organization_id = $1 and event_type = any($2::text[]) and bucket >= date_trunc($5, $3::timestamptz, $6) and bucket < $4
     group by 1, 2, 3`,
    params,
  );
  return { rows, source: table };
}

// Clean and dirty parts never overlap per bucket, but one bucket may have both a clean resource
// type and a dirty one: add them up.
function merge(rows: SumRow[]): SumRow[] {
  const out = new Map<string, SumRow>();
  for (const r of rows) {
    const key = `${new Date(r.bucket).toISOString()}|${r.event_type}|${r.dim}`;
    const prev = out.get(key);
    if (prev) prev.quantity += r.quantity;
    else out.set(key, { ...r });
  }
  return [...out.values()];
}

/** Sums by a raw-event dimension (userId / resourceId): scanned from the raw events. */
export async function sumsByRawDimension(
  db: Queryable,
  q: {
    org: string;
    types: string[];
    from: Date;
    to: Date;
    granularity: Granularity;
    tz: string;
    column: "user_id" | "resource_id";
  },
) {
  const { rows } = await db.query<SumRow>(
    `select date_trunc($5, occurred_at, $6) as bucket, event_type, coalesce(${q.column}, '') as dim, sum(quantity)::float8 as quantity
     from usage_events where organization_id = $1 and event_type = any($2::text[]) and occurred_at >= date_trunc($5, $3::timestamptz, $6) and occurred_at < $4
     group by 1, 2, 3`,
    [q.org, q.types, q.from.toISOString(), q.to.toISOString(), q.granularity, q.tz],
  );
  return { rows, source: "usage_events" };
}

/**
 * Distinct users per bucket and over the whole range, from the smallest exact source: user-days
 * for UTC days and months, user-hours otherwise (raw events for minutes).
 */
export async function distinctUsers(
  db: Queryable,
  q: { org: string; from: Date; to: Date; granularity: Granularity; tz: string; wholeHourZone: boolean },
) {
  const source =
    q.granularity === "minute" || !q.wholeHourZone
      ? { table: "usage_events", time: "occurred_at", extra: "and user_id is not null" }
      : (q.granularity === "day" || q.granularity === "month") && q.tz === "UTC"
        ? { table: "usage_user_days", time: "bucket", extra: "" }
        : { table: "usage_user_hours", time: "bucket", extra: "" };
  const params = [q.org, q.from.toISOString(), q.to.toISOString(), q.granularity, q.tz];
  const where = `organization_id = $1 and ${source.time} >= date_trunc($4, $2::timestamptz, $5) and ${source.time} < $3 ${source.extra}`;
  const [perBucket, total] = await Promise.all([
    db.query<{ bucket: Date; users: number }>(
      `select date_trunc($4, ${source.time}, $5) as bucket, count(distinct user_id)::int as users from ${source.table} where ${where} group by 1`,
      params,
    ),
    db.query<{ users: number }>(
      `select count(distinct user_id)::int as users from ${source.table} where ${where}`,
      params,
    ),
  ]);
  return { perBucket: perBucket.rows, total: total.rows[0]?.users ?? 0, source: source.table };
}

/** Range of a granularity's buckets for the rollup. */
export const granularities: readonly ("day" | "month")[] = ["day", "month"];

/** Aggregation tables by granularity. */
export const aggTable: Record<Granularity, string> = {
  minute: "usage_agg_minute",
  hour: "usage_agg_hour",
  day: "usage_agg_day",
  month: "usage_agg_month",
};

/** The exact counters of an organization as Postgres knows them, for reconciling its object. */
export interface UsageTruth {
  /** Epoch ms (Postgres clock): the totals below count the events received before it. */
  cutoff: number;
  /** Quantity per event type of events that occurred in the period. */
  periodSums: Record<string, number>;
  /** Quantity per event type over all time (the gauges' sources). */
  allTimeSums: Record<string, number>;
  /** Distinct users active in the period (whatever their arrival time: a set is never double-counted). */
  periodUsers: number;
}

/**
 * Reads {@link UsageTruth}: whole hours of the period from the exact hour aggregates, a partial
 * first hour (periods need not start on the hour) from raw events, minus the tail received at or
 * after `cutoff = now() - settle` (through the arrival-time index). Ingest transactions are bounded
 * by a statement timeout far below `settle`, so everything received before the cutoff is committed.
 * @param gaugeTypes - event types whose all-time sums are needed
 */
export async function usageTruth(
  db: Queryable,
  org: string,
  period: { start: Date; end: Date },
  gaugeTypes: readonly string[],
  settleMs: number,
): Promise<UsageTruth> {
  const { rows } = await db.query<{ kind: string; event_type: string | null; q: number; cutoff: Date }>(
    `with c as (
       select now() - ($5::int * interval '1 millisecond') as cutoff,
              date_trunc('hour', $2::timestamptz) + case when date_trunc('hour', $2::timestamptz) = $2::timestamptz
                then interval '0' else interval '1 hour' end as whole_from
     ), period as (
       select event_type, quantity as q from usage_agg_hour, c
       where organization_id = $1 and bucket >= c.whole_from and bucket < $3
       union all
       select event_type, quantity from usage_events, c
       where organization_id = $1 and occurred_at >= $2 and occurred_at < least(c.whole_from, $3)
       union all
       select event_type, -quantity from usage_events, c
       where organization_id = $1 and received_at >= c.cutoff and occurred_at >= $2 and occurred_at < $3
     ), all_time as (
       select event_type, quantity as q from usage_agg_hour where organization_id = $1 and event_type = any($4::text[])
       union all
       select event_type, -quantity from usage_events, c
       where organization_id = $1 and received_at >= c.cutoff and event_type = any($4::text[])
     ), users as (
       select user_id from usage_user_hours, c where organization_id = $1 and bucket >= c.whole_from and bucket < $3
       union
       select user_id from usage_events, c
       where organization_id = $1 and occurred_at >= $2 and occurred_at < least(c.whole_from, $3) and user_id is not null
     )
     select 'period' as kind, event_type, sum(q)::float8 as q, (select cutoff from c) as cutoff from period group by 2
     union all
     select 'all_time', event_type, sum(q)::float8, (select cutoff from c) from all_time group by 2
     union all
     select 'users', null, count(*)::float8, (select cutoff from c) from users
     union all
     select 'cutoff', null, 0, (select cutoff from c)`,
    [org, period.start.toISOString(), period.end.toISOString(), gaugeTypes, settleMs],
  );
  const truth: UsageTruth = { cutoff: 0, periodSums: {}, allTimeSums: {}, periodUsers: 0 };
  for (const r of rows) {
    truth.cutoff = new Date(r.cutoff).getTime();
    if (r.kind === "period" && r.event_type) truth.periodSums[r.event_type] = Number(r.q);
    else if (r.kind === "all_time" && r.event_type) truth.allTimeSums[r.event_type] = Number(r.q);
    else if (r.kind === "users") truth.periodUsers = Number(r.q);
  }
  return truth;
}

/** Distinct users active in the period (to repair an organization object's user set). */
export async function periodUserIds(db: Queryable, org: string, period: { start: Date; end: Date }): Promise<string[]> {
  const { rows } = await db.query<{ user_id: string }>(
    `select user_id from usage_user_hours
     where organization_id = $1 and bucket >= date_trunc('hour', $2::timestamptz) and bucket < $3
       and (bucket >= $2 or exists (select 1 from usage_events e where e.organization_id = $1 and e.user_id = usage_user_hours.user_id
                                    and e.occurred_at >= $2 and e.occurred_at < bucket + interval '1 hour'))
     group by 1`,
    [org, period.start.toISOString(), period.end.toISOString()],
  );
  return rows.map((r) => r.user_id);
}

/** Organizations with events received since `since` (the reconciliation cron's work list). */
export async function recentlyActiveOrganizations(db: Queryable, since: Date, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ organization_id: string }>(
    "select distinct organization_id from usage_event_ids where received_at >= $1 limit $2",
    [since.toISOString(), limit],
  );
  return rows.map((r) => r.organization_id);
}
