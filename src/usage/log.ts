import { eventKey } from "../events/cloudevent.ts";
import type { Db, Queryable } from "../platform/db.ts";
import type { UsageEvent } from "./schemas.ts";

/**
 * The usage event log and its aggregator. Ingestion is one statement per batch: the batch goes into
 * `usage_log` as typed arrays (`unnest`), deduplicated by its primary key `(organization_id,
 * event_id)`, nothing else on the hot path. The aggregator then folds the log into the aggregates
 * (minute, quarter-hour, hour, per-user day, distinct-user sets, the partitioned raw table, dirty
 * day/month marks) in large grouped chunks, past a watermark: a log row belongs to the aggregates
 * once its writing transaction (`txid`) is below the watermark. Every read adds the log's tail
 * (rows at or above the watermark) in the same statement, so totals are exact the moment the log
 * write commits, however far the aggregator lags.
 *
 * Why the watermark is a transaction id: a row's txid is below the oldest running transaction
 * (`pg_snapshot_xmin`) only once its transaction has finished, so advancing the watermark to at most
 * that point can never step over a commit still to come — the gap that sequence numbers leave.
 */

/** What {@link appendEvents} reports. */
export interface AppendedEvents {
  /** Keys (`eventKey`) of the events that were new. */
  fresh: Set<string>;
  /** Every input event's log position (the txid that first recorded it), by key. */
  position: Map<string, number>;
}

/**
 * Appends a batch to the log in one statement (autocommit): new events are inserted, known ones
 * (by organization and id) left alone; reports which were new and every event's log position.
 * Rows are written in key order so concurrent batches take their locks in the same order.
 */
export async function appendEvents(db: Queryable, events: readonly UsageEvent[]): Promise<AppendedEvents> {
  const out: AppendedEvents = { fresh: new Set(), position: new Map() };
  if (events.length === 0) return out;
  // Deduplicated here (the statement cannot insert one key twice) and sorted for the lock order.
  const unique = new Map<string, UsageEvent>();
  for (const e of events) {
    const k = eventKey(e.organizationId, e.eventId);
    if (!unique.has(k)) unique.set(k, e);
  }
  const list = [...unique.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, e]) => e);
  const col = <T>(f: (e: UsageEvent) => T) => list.map(f);
  const { rows } = await db.query<{ o: string; e: string; fresh: boolean; txid: string }>(
    `with input as (
       select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[],
                            $8::jsonb[], $9::timestamptz[])
         as x(o, e, t, u, ri, rt, q, m, at)
     ), ins as (
       insert into usage_log (organization_id, event_id, event_type, user_id, resource_id, resource_type, quantity,
                              metadata, occurred_at)
       select o, e, t, u, ri, rt, q, m, at from input
       on conflict do nothing
       returning organization_id as o, event_id as e, txid
     )
     select i.o, i.e, n.o is not null as fresh,
       coalesce(n.txid, (select l.txid from usage_log l where l.organization_id = i.o and l.event_id = i.e),
                pg_current_xact_id()::text::bigint)::text as txid
     from input i left join ins n using (o, e)`,
    [
      col((e) => e.organizationId),
      col((e) => e.eventId),
      col((e) => e.eventType),
      col((e) => e.userId ?? null),
      col((e) => e.resourceId ?? null),
      col((e) => e.resourceType ?? null),
      col((e) => e.quantity),
      col((e) => JSON.stringify(e.metadata ?? {})),
      col((e) => e.timestamp.toISOString()),
    ],
  );
  for (const r of rows) {
    const k = eventKey(r.o, r.e);
    if (r.fresh) out.fresh.add(k);
    out.position.set(k, Number(r.txid));
  }
  return out;
}

/** Outcome of one aggregator run. */
export interface AggregationRun {
  /** Log rows folded into the aggregates. */
  rows: number;
  /** Chunks committed. */
  chunks: number;
  /** The watermark now. */
  watermark: number;
  /** Log rows still past it (the tail every read adds), as of the last chunk. */
  tail: number;
}

/**
 * The SQL that folds the log rows with `$1 <= txid < $2` into every aggregate, in one statement.
 * Sums add up, sets union, dirty day/month marks make the rollup recompute those buckets.
 */
const FOLD = `with chunk as (
    select * from usage_log where txid >= $1 and txid < $2
  ), raw as (
    insert into usage_events (organization_id, event_id, event_type, user_id, resource_id, resource_type, quantity,
                              metadata, occurred_at, received_at)
    select organization_id, event_id, event_type, user_id, resource_id, resource_type, quantity, metadata,
           occurred_at, received_at
    from chunk order by organization_id, occurred_at, event_id
    on conflict do nothing
  ), minute as (
    insert into usage_agg_minute as a (organization_id, event_type, resource_type, bucket, quantity, events)
    select organization_id, event_type, coalesce(resource_type, ''), date_trunc('minute', occurred_at, 'UTC'),
           sum(quantity), count(*)
    from chunk group by 1, 2, 3, 4 order by 1, 2, 3, 4
    on conflict (organization_id, event_type, resource_type, bucket)
    do update set quantity = a.quantity + excluded.quantity, events = a.events + excluded.events
  ), quarter as (
    insert into usage_agg_quarter as a (organization_id, event_type, resource_type, bucket, quantity, events)
    select organization_id, event_type, coalesce(resource_type, ''),
           date_bin('15 minutes', occurred_at, timestamptz '2000-01-01 00:00:00+00'), sum(quantity), count(*)
    from chunk group by 1, 2, 3, 4 order by 1, 2, 3, 4
    on conflict (organization_id, event_type, resource_type, bucket)
    do update set quantity = a.quantity + excluded.quantity, events = a.events + excluded.events
  ), hour as (
    insert into usage_agg_hour as a (organization_id, event_type, resource_type, bucket, quantity, events)
    select organization_id, event_type, coalesce(resource_type, ''), date_trunc('hour', occurred_at, 'UTC'),
           sum(quantity), count(*)
    from chunk group by 1, 2, 3, 4 order by 1, 2, 3, 4
    on conflict (organization_id, event_type, resource_type, bucket)
    do update set quantity = a.quantity + excluded.quantity, events = a.events + excluded.events
  ), user_day_sums as (
    insert into usage_agg_user_day as a (organization_id, event_type, user_id, bucket, quantity, events)
    select organization_id, event_type, user_id, date_trunc('day', occurred_at, 'UTC'), sum(quantity), count(*)
    from chunk where user_id is not null group by 1, 2, 3, 4 order by 1, 2, 3, 4
    on conflict (organization_id, event_type, user_id, bucket)
    do update set quantity = a.quantity + excluded.quantity, events = a.events + excluded.events
  ), uh as (
    insert into usage_user_hours (organization_id, bucket, user_id)
    select distinct organization_id, date_trunc('hour', occurred_at, 'UTC'), user_id from chunk
    where user_id is not null order by 1, 2, 3 on conflict do nothing
  ), ud as (
    insert into usage_user_days (organization_id, bucket, user_id)
    select distinct organization_id, date_trunc('day', occurred_at, 'UTC'), user_id from chunk
    where user_id is not null order by 1, 2, 3 on conflict do nothing
  ), dirty as (
    insert into usage_dirty_buckets as d (organization_id, event_type, granularity, bucket)
    select distinct organization_id, event_type, g, date_trunc(g, occurred_at, 'UTC')
    from chunk cross join (values ('day'), ('month')) as gs(g) order by 1, 2, 3, 4
    on conflict (organization_id, event_type, granularity, bucket) do update set marked_at = now()
  )
  select count(*)::int as n from chunk`;

/**
 * Folds the log into the aggregates, up to `maxRows` per chunk and `maxChunks` chunks. One run at a
 * time: the watermark row is locked, and a run that finds it locked returns at once. A chunk is one
 * transaction: the fold and the new watermark commit together, so a crash folds it again whole.
 *
 * `flush` (the rollup, tests) instead waits for a running aggregator and then folds everything
 * committed before the call, waiting (up to `flushTimeoutMs`, default 5 s) for transactions that
 * were still open then: the watermark cannot pass them.
 */
export async function aggregateLog(
  db: Db,
  opts: { maxRows?: number; maxChunks?: number; flush?: boolean; flushTimeoutMs?: number } = {},
): Promise<AggregationRun> {
  const maxRows = opts.maxRows ?? 50_000;
  const maxChunks = opts.maxChunks ?? (opts.flush ? Number.POSITIVE_INFINITY : 20);
  const run: AggregationRun = { rows: 0, chunks: 0, watermark: 0, tail: 0 };
  // Every transaction that committed before this call has a txid below the snapshot's xmax.
  const target = opts.flush
    ? Number((await db.query<{ x: string }>("select pg_snapshot_xmax(pg_current_snapshot())::text as x")).rows[0]!.x)
    : 0;
  const deadline = Date.now() + (opts.flushTimeoutMs ?? 5_000);
  for (let i = 0; i < maxChunks; i++) {
    const step = await db.transaction(async (tx) => {
      const { rows } = await tx.query<{ wm: string }>(
        `select txid::text as wm from usage_watermark for update${opts.flush ? "" : " skip locked"}`,
      );
      if (!rows[0]) return { folded: 0, upto: -1, more: false };
      const wm = Number(rows[0].wm);
      // A statement of its own: its snapshot is taken once the lock is held.
      const { rows: x } = await tx.query<{ xmin: string }>(
        "select pg_snapshot_xmin(pg_current_snapshot())::text as xmin",
      );
      const xmin = Number(x[0]!.xmin);
      if (xmin <= wm) return { folded: 0, upto: wm, more: false };
      // About maxRows rows, whole transactions only: the log is appended in txid order, so the
      // first maxRows rows found past the watermark (BRIN) end near the chunk's upper txid.
      const { rows: b } = await tx.query<{ last: string | null }>(
        `select max(txid)::text as last from (
           select txid from usage_log where txid >= $1 and txid < $2 limit $3) s`,
        [wm, xmin, maxRows],
      );
      const upto = b[0]?.last ? Math.min(Number(b[0].last) + 1, xmin) : xmin;
      const { rows: f } = await tx.query<{ n: number }>(FOLD, [wm, upto]);
      await tx.query("update usage_watermark set txid = $1", [upto]);
      return { folded: f[0]!.n, upto, more: upto < xmin };
    });
    run.rows += step.folded;
    if (step.upto >= 0) run.watermark = step.upto;
    if (step.folded > 0) run.chunks += 1;
    if (step.more) continue;
    // Flushing and held back by a transaction older than the call: let it finish.
    if (!opts.flush || step.upto < 0 || step.upto >= target || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const { rows } = await db.query<{ n: number }>(
    "select count(*)::int as n from usage_log where txid >= (select txid from usage_watermark)",
  );
  run.tail = rows[0]!.n;
  return run;
}

/**
 * SQL of the log's tail for one organization — the rows every read adds to the aggregates — as a
 * CTE body: `tail as (${tailSql("$1")})`. It must sit in the same statement as the aggregates it
 * completes, so both come from one snapshot.
 */
export const tailSql = (org: string) =>
  `select * from usage_log where organization_id = ${org} and txid >= (select txid from usage_watermark)`;
