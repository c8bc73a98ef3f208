import type { Queryable } from "../platform/db.ts";
import type { Granularity } from "./periods.ts";
import { tailSql } from "./log.ts";

/** Postgres access of the usage service. */

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
  /**
   * The bucket's start in epoch milliseconds: a number rather than a timestamp, because a query
   * answers up to ~18,000 rows over a few hundred distinct buckets, and parsing a timestamp per row
   * (then formatting it again) was a fifth of the Worker's time for such an answer.
   */
  at: number;
  event_type: string;
  dim: string | null;
  quantity: number;
}

/** A timestamptz expression as epoch milliseconds (`float8`: exact for whole milliseconds). */
const EPOCH_MS = (col: string) => `(extract(epoch from ${col}) * 1000)::float8`;

/** The rows of an organization's event types in `[$3 truncated to the bucket, $4)` (`alias.col`: the time). */
const range = (alias: string, col: string) =>
  `${alias}.organization_id = $1 and ${alias}.event_type = any($2::text[])
   and ${alias}.${col} >= date_trunc($5, $3::timestamptz, $6) and ${alias}.${col} < $4`;

/** The parameters `$1…$6` of {@link range} and {@link sumsPlusTail}. */
const sumParams = (q: { org: string; types: string[]; from: Date; to: Date; granularity: Granularity; tz: string }) => [
  q.org,
  q.types,
  q.from.toISOString(),
  q.to.toISOString(),
  q.granularity,
  q.tz,
];

/**
 * Sums per (bucket, event type, dimension) of an aggregate's rows (`aggregate` selects bucket,
 * event_type, dim, quantity) and of the log's tail, in one statement (one snapshot). The two are
 * grouped apart, and a key both have comes back twice for the caller to add: the planner cannot
 * know the watermark and sizes the tail at a third of the organization's log, so one grouping over
 * both planned a spilling hash table as the organization grew (4 partitions, on disk, at 10 M events
 * for an 18,000-row answer).
 */
function sumsPlusTail(aggregate: string, tailDim: string): string {
  return `with tail as (${tailSql("$1")})
    select ${EPOCH_MS("bucket")} as at, event_type, dim, sum(quantity)::float8 as quantity
    from (${aggregate}) s group by 1, 2, 3
    union all
    select ${EPOCH_MS("date_trunc($5, l.occurred_at, $6)")}, l.event_type, ${tailDim}, sum(l.quantity)::float8
    from tail l where ${range("l", "occurred_at")} group by 1, 2, 3`;
}

/** An aggregate table that answers buckets exactly. */
export type SumSource = "minute" | "quarter" | "hour" | "rollup";

/**
 * Which table answers (granularity, zone) exactly: minutes from the minute table; UTC days and
 * months from the rollups (with dirty buckets from hours); zones whose offsets are whole hours from
 * the hour table; others (Asia/Kolkata, Asia/Kathmandu …) from the 15-minute table, since every
 * zone's offset is a multiple of 15 minutes.
 */
export function sourceFor(granularity: Granularity, tz: string, wholeHourZone: boolean): SumSource {
  if (granularity === "minute") return "minute";
  if ((granularity === "day" || granularity === "month") && tz === "UTC") return "rollup";
  return wholeHourZone ? "hour" : "quarter";
}

const tables: Record<Exclude<SumSource, "rollup">, string> = {
  minute: "usage_agg_minute",
  quarter: "usage_agg_quarter",
  hour: "usage_agg_hour",
};

/**
 * Sums per bucket and event type: the aggregate table that answers exactly ({@link sourceFor}),
 * plus the log's tail, in one statement (one snapshot). Buckets in a zone are `date_trunc(…, tz)`,
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
  const source = sourceFor(q.granularity, q.tz, q.wholeHourZone);
  const dim = (alias: string) => (q.byResourceType ? `coalesce(${alias}.resource_type, '')` : "null::text");
  const aggregate =
    source === "rollup"
      ? `select a.bucket, a.event_type, ${dim("a")} as dim, a.quantity
         from usage_agg_${q.granularity} a
         where ${range("a", "bucket")}
           and not exists (select 1 from usage_dirty_buckets d where d.organization_id = a.organization_id
                           and d.event_type = a.event_type and d.granularity = $5 and d.bucket = a.bucket)
         union all
         select date_trunc($5, h.bucket, $6), h.event_type, ${dim("h")}, h.quantity
         from usage_agg_hour h
         join usage_dirty_buckets d on d.organization_id = h.organization_id and d.event_type = h.event_type
           and d.granularity = $5 and d.bucket = date_trunc($5, h.bucket, 'UTC')
         where ${range("h", "bucket")}`
      : `select date_trunc($5, a.bucket, $6) as bucket, a.event_type, ${dim("a")} as dim, a.quantity
         from ${tables[source]} a where ${range("a", "bucket")}`;
  const { rows } = await db.query<SumRow>(sumsPlusTail(aggregate, dim("l")), sumParams(q));
  const names = { rollup: `usage_agg_${q.granularity}+usage_agg_hour(dirty)`, ...tables };
  return { rows, source: `${names[source]}+usage_log(tail)` };
}

/**
 * Sums by user or resource. Per-user sums of UTC days and months come from the per-user day table
 * (kept as long as the hour table); everything else from the raw events, which the caller must only
 * ask for inside the raw retention. Plus the log's tail.
 */
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
  const perUserDay = q.column === "user_id" && (q.granularity === "day" || q.granularity === "month") && q.tz === "UTC";
  const aggregate = perUserDay
    ? `select date_trunc($5, a.bucket, $6) as bucket, a.event_type, a.user_id as dim, a.quantity
       from usage_agg_user_day a where ${range("a", "bucket")}`
    : `select date_trunc($5, e.occurred_at, $6) as bucket, e.event_type, coalesce(e.${q.column}, '') as dim, e.quantity
       from usage_events e where ${range("e", "occurred_at")}`;
  const { rows } = await db.query<SumRow>(sumsPlusTail(aggregate, `coalesce(l.${q.column}, '')`), sumParams(q));
  return { rows, source: `${perUserDay ? "usage_agg_user_day" : "usage_events"}+usage_log(tail)` };
}

/**
 * Distinct users per bucket and over the whole range, never summed: user-days for UTC days and
 * months, user-hours for zones with whole-hour offsets, raw events otherwise (minutes, other
 * zones: the caller keeps those inside the raw retention); the tail's users join the same sets.
 */
export async function distinctUsers(
  db: Queryable,
  q: { org: string; from: Date; to: Date; granularity: Granularity; tz: string; wholeHourZone: boolean },
) {
  const source =
    q.granularity === "minute" || !q.wholeHourZone
      ? { table: "usage_events", time: "occurred_at" }
      : (q.granularity === "day" || q.granularity === "month") && q.tz === "UTC"
        ? { table: "usage_user_days", time: "bucket" }
        : { table: "usage_user_hours", time: "bucket" };
  const { rows } = await db.query<{ bucket: Date | null; users: number }>(
    `with tail as (${tailSql("$1")}), seen as (
       select ${source.time} as at, user_id from ${source.table}
       where organization_id = $1 and user_id is not null
         and ${source.time} >= date_trunc($4, $2::timestamptz, $5) and ${source.time} < $3
       union all
       select occurred_at, user_id from tail
       where user_id is not null and occurred_at >= date_trunc($4, $2::timestamptz, $5) and occurred_at < $3
     )
     select date_trunc($4, at, $5) as bucket, count(distinct user_id)::int as users from seen group by 1
     union all
     select null, count(distinct user_id)::int from seen`,
    [q.org, q.from.toISOString(), q.to.toISOString(), q.granularity, q.tz],
  );
  return {
    perBucket: rows.filter((r) => r.bucket !== null) as { bucket: Date; users: number }[],
    total: rows.find((r) => r.bucket === null)?.users ?? 0,
    source: `${source.table}+usage_log(tail)`,
  };
}

/** Exact sums over any interval, however its ends fall (see {@link exactSums}). */
export interface IntervalSums {
  /** Quantity per event type of events that occurred in [from, to). */
  sums: Record<string, number>;
  /** Quantity per event type of events that occurred before `to`, all time (gauges). */
  toEnd: Record<string, number>;
  /** Events counted in [from, to). */
  events: number;
  /** Distinct users active in [from, to). */
  users: number;
  /**
   * The Postgres snapshot the answer was read in (`pg_current_snapshot()` as text): it counts
   * exactly the log rows of the transactions that had finished by then (see `inSnapshot`).
   */
  snapshot: string;
}

/**
 * Exact sums over [from, to) whatever the ends (billing periods need not start on the hour): whole
 * hours from the hour aggregates, the partial first and last hour from the raw events (the caller
 * keeps unaligned ends inside the raw retention), plus the log's tail — one statement, one snapshot,
 * which it returns: the organization objects reconcile to exactly that and add what they applied
 * that it lacks.
 */
export async function exactSums(
  db: Queryable,
  q: { org: string; from: Date; to: Date; toEndTypes: readonly string[] },
): Promise<IntervalSums> {
  const { rows } = await db.query<{ kind: string; event_type: string | null; q: number; n: number; snap: string }>(
    `with b as (
       select $2::timestamptz as f, $3::timestamptz as t,
              date_trunc('hour', $2::timestamptz)
                + case when date_trunc('hour', $2::timestamptz) = $2::timestamptz then interval '0' else interval '1 hour' end
                as hf,
              date_trunc('hour', $3::timestamptz) as ht
     ), tail as (${tailSql("$1")}), inside as (
       select h.event_type, h.quantity as q, h.events as n from usage_agg_hour h, b
       where h.organization_id = $1 and h.bucket >= b.hf and h.bucket < b.ht
       union all
       select e.event_type, e.quantity, 1 from usage_events e, b
       where e.organization_id = $1 and ((e.occurred_at >= b.f and e.occurred_at < least(b.hf, b.t))
          or (e.occurred_at >= greatest(b.ht, b.hf) and e.occurred_at < b.t))
       union all
       select l.event_type, l.quantity, 1 from tail l, b where l.occurred_at >= b.f and l.occurred_at < b.t
     ), to_end as (
       select h.event_type, h.quantity as q from usage_agg_hour h, b
       where h.organization_id = $1 and h.event_type = any($4::text[]) and h.bucket < b.ht
       union all
       select e.event_type, e.quantity from usage_events e, b
       where e.organization_id = $1 and e.event_type = any($4::text[]) and e.occurred_at >= b.ht and e.occurred_at < b.t
       union all
       select l.event_type, l.quantity from tail l, b where l.event_type = any($4::text[]) and l.occurred_at < b.t
     ), users as (
       select u.user_id from usage_user_hours u, b where u.organization_id = $1 and u.bucket >= b.hf and u.bucket < b.ht
       union
       select e.user_id from usage_events e, b
       where e.organization_id = $1 and e.user_id is not null
         and ((e.occurred_at >= b.f and e.occurred_at < least(b.hf, b.t))
           or (e.occurred_at >= greatest(b.ht, b.hf) and e.occurred_at < b.t))
       union
       select l.user_id from tail l, b where l.user_id is not null and l.occurred_at >= b.f and l.occurred_at < b.t
     ), s as (select pg_current_snapshot()::text as snap)
     select 'inside' as kind, event_type, sum(q)::float8 as q, sum(n)::int8 as n, (select snap from s) as snap
     from inside group by 2
     union all
     select 'to_end', event_type, sum(q)::float8, 0, (select snap from s) from to_end group by 2
     union all
     select 'users', null, 0, (select count(*) from users), (select snap from s)`,
    [q.org, q.from.toISOString(), q.to.toISOString(), q.toEndTypes],
  );
  const out: IntervalSums = { sums: {}, toEnd: {}, events: 0, users: 0, snapshot: "" };
  for (const r of rows) {
    out.snapshot = r.snap;
    if (r.kind === "inside" && r.event_type) {
      out.sums[r.event_type] = Number(r.q);
      out.events += Number(r.n);
    } else if (r.kind === "to_end" && r.event_type) out.toEnd[r.event_type] = Number(r.q);
    else if (r.kind === "users") out.users = Number(r.n);
  }
  return out;
}

/** Distinct users active in [from, to), the log's tail included (to repair an organization object's user set). */
export async function periodUserIds(db: Queryable, org: string, period: { start: Date; end: Date }): Promise<string[]> {
  const { rows } = await db.query<{ user_id: string }>(
    `with b as (
       select $2::timestamptz as f, $3::timestamptz as t,
              date_trunc('hour', $2::timestamptz)
                + case when date_trunc('hour', $2::timestamptz) = $2::timestamptz then interval '0' else interval '1 hour' end
                as hf,
              date_trunc('hour', $3::timestamptz) as ht
     )
     select u.user_id from usage_user_hours u, b where u.organization_id = $1 and u.bucket >= b.hf and u.bucket < b.ht
     union
     select e.user_id from usage_events e, b
     where e.organization_id = $1 and e.user_id is not null
       and ((e.occurred_at >= b.f and e.occurred_at < least(b.hf, b.t)) or (e.occurred_at >= greatest(b.ht, b.hf) and e.occurred_at < b.t))
     union
     select l.user_id from (${tailSql("$1")}) l, b where l.user_id is not null and l.occurred_at >= b.f and l.occurred_at < b.t`,
    [org, period.start.toISOString(), period.end.toISOString()],
  );
  return rows.map((r) => r.user_id);
}

/**
 * The `n` users or documents with the most events in the UTC month starting at `month`, exact: the
 * monthly counts plus the log's tail. Candidates are the top `n` of the counts and every member the
 * tail touches — a member outside both cannot rank higher than the `n`-th, whose count only grows.
 */
export async function topMembers(
  db: Queryable,
  q: { org: string; month: Date; kind: "user" | "document"; n: number },
): Promise<{ member: string; events: number }[]> {
  const { rows } = await db.query<{ member: string; total: string }>(
    `with tail as (${tailSql("$1")}),
     tail_counts as (
       select case when $3 = 'user' then user_id else resource_id end as member, count(*) as n from tail
       where occurred_at >= $2 and occurred_at < $2::timestamptz + interval '1 month'
         and ($3 = 'user' or event_type like 'document.%')
       group by 1
     ), cand as (
       select member from (
         select member from usage_agg_top_month where organization_id = $1 and month = $2 and kind = $3
         order by events desc limit $4) t
       union select member from tail_counts where member is not null
     )
     select c.member, coalesce(a.events, 0) + coalesce(tc.n, 0) as total
     from cand c
     left join usage_agg_top_month a on a.organization_id = $1 and a.month = $2 and a.kind = $3 and a.member = c.member
     left join tail_counts tc on tc.member = c.member
     order by total desc, c.member limit $4`,
    [q.org, q.month.toISOString(), q.kind, q.n],
  );
  return rows.map((r) => ({ member: r.member, events: Number(r.total) }));
}

/** Organizations with events received since `since` (the reconciliation cron's work list). */
export async function recentlyActiveOrganizations(db: Queryable, since: Date, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ organization_id: string }>(
    "select distinct organization_id from usage_log where received_at >= $1 limit $2",
    [since.toISOString(), limit],
  );
  return rows.map((r) => r.organization_id);
}

/** Aggregation tables by granularity. */
export const aggTable: Record<Granularity, string> = {
  minute: "usage_agg_minute",
  hour: "usage_agg_hour",
  day: "usage_agg_day",
  month: "usage_agg_month",
};

/** From when the 15-minute and per-user day aggregates are complete (`usage_watermark.exact_since`). */
export async function aggregatesExactSince(db: Queryable): Promise<Date> {
  const { rows } = await db.query<{ since: Date }>("select exact_since as since from usage_watermark");
  return new Date(rows[0]?.since ?? 0);
}
