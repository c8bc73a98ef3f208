import { eventKey } from "../events/cloudevent.ts";
import type { Db, Queryable } from "../platform/db.ts";
import type { UsageEvent } from "./schemas.ts";

/**
 * The usage event log and its aggregator. Ingestion is one statement per batch: the batch goes into
 * `usage_log` as one JSON parameter (`json_to_recordset`), deduplicated by its primary key `(organization_id,
 * event_id)`, nothing else on the hot path. The aggregator then folds the log into the aggregates
 * (minute, quarter-hour, hour, per-user day, monthly top users and documents, distinct-user sets,
 * the partitioned raw table, dirty day/month marks) in large grouped chunks, past a watermark. Every read adds the log's tail (the
 * rows past the watermark) in the same statement, so totals are exact the moment the log write
 * commits, however far the aggregator lags.
 *
 * The watermark is a Postgres snapshot (`xmin`, `xmax`, `xip`) rather than a sequence number: a
 * row is folded exactly when its writing transaction (`txid`) is visible in it. Sequence numbers
 * are handed out before commit, so "everything below N" would skip a transaction that commits late;
 * a snapshot lists it as running and folds it next time — and one long transaction anywhere on the
 * server holds nothing back.
 */

/**
 * SQL condition: a log row (alias `l`) is past the watermark, i.e. in the tail. Scalar subqueries,
 * so the planner gets the bound as a parameter and scans only the log's last BRIN ranges.
 */
const PAST = `l.txid >= (select snap_xmin from usage_watermark)
  and (l.txid >= (select snap_xmax from usage_watermark) or l.txid = any((select snap_xip from usage_watermark)::bigint[]))`;

/** What {@link appendEvents} reports. */
export interface AppendedEvents {
  /** Keys (`eventKey`) of the events that were new. */
  fresh: Set<string>;
  /** Every input event's log position (the txid that first recorded it), by key. */
  position: Map<string, number>;
}

/** How {@link appendEvents} spreads a batch over sessions. */
export interface AppendOptions {
  /** Statements in parallel at most (each on its own pooled session); default 4. */
  parallel?: number;
  /** Fewest events a parallel statement gets; default 2,000 (smaller batches are one statement). */
  minChunk?: number;
}

/**
 * Appends a batch to the log (autocommit): new events are inserted, known ones (by organization
 * and id) left alone; reports which were new and every event's log position. One statement per
 * chunk — a large batch is split into up to `parallel` key ranges written at once, the way a client
 * fills a table from several sessions. Rows are written in key order, so concurrent batches take
 * their locks in the same order.
 */
export async function appendEvents(
  db: Queryable,
  events: readonly UsageEvent[],
  options: AppendOptions = {},
): Promise<AppendedEvents> {
  const out: AppendedEvents = { fresh: new Set(), position: new Map() };
  if (events.length === 0) return out;
  // Deduplicated here (a statement cannot insert one key twice, nor may two chunks hold it) and sorted.
  const unique = new Map<string, UsageEvent>();
  for (const e of events) {
    const k = eventKey(e.organizationId, e.eventId);
    if (!unique.has(k)) unique.set(k, e);
  }
  const keys = [...unique.keys()].sort();
  const parts = Math.max(1, Math.min(options.parallel ?? 4, Math.floor(keys.length / (options.minChunk ?? 2_000))));
  const size = Math.ceil(keys.length / parts);
  const chunks = Array.from({ length: parts }, (_, i) =>
    keys.slice(i * size, (i + 1) * size).map((k) => unique.get(k)!),
  );
  const results = await Promise.all(chunks.map((c) => appendChunk(db, c)));
  for (const [i, chunk] of chunks.entries()) {
    const r = results[i]!;
    for (const e of chunk) {
      const k = eventKey(e.organizationId, e.eventId);
      const known = r.known.get(k);
      if (known === undefined) {
        out.fresh.add(k);
        out.position.set(k, r.txid);
      } else out.position.set(k, known);
    }
  }
  return out;
}

/**
 * One statement: inserts the new events and returns the statement's txid (every new row's) and,
 * for the known ones only, the txid that recorded them. A known row can be invisible to the
 * statement (its writer committed while this one waited on the key); those are read once more.
 */
async function appendChunk(
  db: Queryable,
  list: readonly UsageEvent[],
): Promise<{ txid: number; known: Map<string, number> }> {
  // One JSON parameter (serialized natively) rather than nine typed arrays: the driver escaped each
  // array element in JavaScript, the Worker's busiest thread (~10 % of an ingest profile).
  const rows = list.map((e) => ({
    o: e.organizationId,
    e: e.eventId,
    t: e.eventType,
    u: e.userId,
    ri: e.resourceId,
    rt: e.resourceType,
    q: e.quantity,
    m: e.metadata ?? {},
    at: e.timestamp.toISOString(),
  }));
  const { rows: out } = await db.query<{ o: string | null; e: string | null; txid: string | null }>(
    `with input as (
       select * from json_to_recordset($1::json)
         as x(o text, e text, t text, u text, ri text, rt text, q numeric, m jsonb, at timestamptz)
     ), ins as (
       insert into usage_log (organization_id, event_id, event_type, user_id, resource_id, resource_type, quantity,
                              metadata, occurred_at)
       select o, e, t, u, ri, rt, q, m, at from input
       on conflict do nothing
       returning organization_id as o, event_id as e
     )
     select null::text as o, null::text as e, pg_current_xact_id()::text as txid
     union all
     select i.o, i.e, (select l.txid from usage_log l where l.organization_id = i.o and l.event_id = i.e)::text
     from input i left join ins n using (o, e) where n.o is null`,
    [JSON.stringify(rows)],
  );
  const known = new Map<string, number>();
  const unseen: { o: string; e: string }[] = [];
  let txid = 0;
  for (const r of out) {
    if (r.o === null || r.e === null) txid = Number(r.txid);
    else if (r.txid === null) unseen.push({ o: r.o, e: r.e });
    else known.set(eventKey(r.o, r.e), Number(r.txid));
  }
  if (unseen.length > 0) {
    const { rows: late } = await db.query<{ o: string; e: string; txid: string }>(
      `select l.organization_id as o, l.event_id as e, l.txid::text as txid
       from usage_log l join unnest($1::text[], $2::text[]) as k(o, e) on l.organization_id = k.o and l.event_id = k.e`,
      [unseen.map((u) => u.o), unseen.map((u) => u.e)],
    );
    for (const r of late) known.set(eventKey(r.o, r.e), Number(r.txid));
  }
  return { txid, known };
}

/** Outcome of one aggregator run. */
export interface AggregationRun {
  /** Log rows folded into the aggregates. */
  rows: number;
  /** Chunks committed. */
  chunks: number;
  /** The watermark now, as `xmin:xmax:xip,…` (a Postgres snapshot's text form). */
  watermark: string;
  /** Log rows still past it (the tail every read adds), as of the last chunk. */
  tail: number;
}

/**
 * The SQL that folds the rows past the watermark with txid below `$1` into every aggregate, in one
 * statement (sums add up, sets union, dirty day/month marks make the rollup recompute those
 * buckets), then moves the watermark to `$2:$3:$4` (xmin, xmax, xip). The chunk is grouped twice,
 * once by minute and once by user and hour, and every aggregate is rolled up from those two small
 * sets: each group-by of the whole chunk was a sort of every row (nine of them cost more than the
 * rest of the fold; minutes nest in quarters, hours, days and months in UTC, so the sums are the same).
 */
const FOLD = `with chunk as (
    select l.* from usage_log l where ${PAST} and l.txid < $1
  ), raw as (
    insert into usage_events (organization_id, event_id, event_type, user_id, resource_id, resource_type, quantity,
                              metadata, occurred_at, received_at)
    select organization_id, event_id, event_type, user_id, resource_id, resource_type, quantity, metadata,
           occurred_at, received_at
    from chunk order by organization_id, occurred_at, event_id
    on conflict do nothing
  ), minutes as materialized (
    select organization_id as o, event_type as t, coalesce(resource_type, '') as rt,
           date_trunc('minute', occurred_at, 'UTC') as b, sum(quantity) as q, count(*) as n
    from chunk group by 1, 2, 3, 4
  ), minute as (
    insert into usage_agg_minute as a (organization_id, event_type, resource_type, bucket, quantity, events)
    select o, t, rt, b, q, n from minutes order by 1, 2, 3, 4
    on conflict (organization_id, event_type, resource_type, bucket)
    do update set quantity = a.quantity + excluded.quantity, events = a.events + excluded.events
  ), quarter as (
    insert into usage_agg_quarter as a (organization_id, event_type, resource_type, bucket, quantity, events)
    select o, t, rt, date_bin('15 minutes', b, timestamptz '2000-01-01 00:00:00+00'), sum(q), sum(n)
    from minutes group by 1, 2, 3, 4 order by 1, 2, 3, 4
    on conflict (organization_id, event_type, resource_type, bucket)
    do update set quantity = a.quantity + excluded.quantity, events = a.events + excluded.events
  ), hour as (
    insert into usage_agg_hour as a (organization_id, event_type, resource_type, bucket, quantity, events)
    select o, t, rt, date_trunc('hour', b, 'UTC'), sum(q), sum(n)
    from minutes group by 1, 2, 3, 4 order by 1, 2, 3, 4
    on conflict (organization_id, event_type, resource_type, bucket)
    do update set quantity = a.quantity + excluded.quantity, events = a.events + excluded.events
  ), dirty as (
    insert into usage_dirty_buckets as d (organization_id, event_type, granularity, bucket)
    select distinct o, t, g, date_trunc(g, b, 'UTC')
    from minutes cross join (values ('day'), ('month')) as gs(g) order by 1, 2, 3, 4
    on conflict (organization_id, event_type, granularity, bucket) do update set marked_at = now()
  ), users as materialized (
    select organization_id as o, event_type as t, user_id as u, date_trunc('hour', occurred_at, 'UTC') as h,
           sum(quantity) as q, count(*) as n
    from chunk where user_id is not null group by 1, 2, 3, 4
  ), user_day_sums as (
    insert into usage_agg_user_day as a (organization_id, event_type, user_id, bucket, quantity, events)
    select o, t, u, date_trunc('day', h, 'UTC'), sum(q), sum(n) from users group by 1, 2, 3, 4 order by 1, 2, 3, 4
    on conflict (organization_id, event_type, user_id, bucket)
    do update set quantity = a.quantity + excluded.quantity, events = a.events + excluded.events
  ), uh as (
    insert into usage_user_hours (organization_id, bucket, user_id)
    select distinct o, h, u from users order by 1, 2, 3 on conflict do nothing
  ), ud as (
    insert into usage_user_days (organization_id, bucket, user_id)
    select distinct o, date_trunc('day', h, 'UTC'), u from users order by 1, 2, 3 on conflict do nothing
  ), top as (
    insert into usage_agg_top_month as a (organization_id, month, kind, member, events)
    select o, date_trunc('month', h, 'UTC'), 'user', u, sum(n)::bigint from users group by 1, 2, 3, 4
    union all
    select organization_id, date_trunc('month', occurred_at, 'UTC'), 'document', resource_id, count(*)
    from chunk where resource_id is not null and event_type like 'document.%' group by 1, 2, 3, 4
    order by 1, 2, 3, 4
    on conflict (organization_id, month, kind, member) do update set events = a.events + excluded.events
  ), moved as (
    update usage_watermark set snap_xmin = $2, snap_xmax = $3, snap_xip = $4::bigint[]
  )
  select count(*)::int as n from chunk`;

/** A Postgres snapshot (`pg_current_snapshot()`): which transactions had finished when it was taken. */
export interface LogSnapshot {
  /** Every transaction below it had finished. */
  xmin: number;
  /** No transaction from it on had finished. */
  xmax: number;
  /** Transactions in [xmin, xmax) still running then. */
  running: readonly number[];
}

/** Parses a snapshot's text form, `xmin:xmax:xip,xip,…`. */
export function parseSnapshot(text: string): LogSnapshot {
  const [xmin = "0", xmax = "0", xip = ""] = text.split(":");
  return { xmin: Number(xmin), xmax: Number(xmax), running: xip ? xip.split(",").map(Number) : [] };
}

/** A snapshot's text form. */
export const formatSnapshot = (s: LogSnapshot): string => `${s.xmin}:${s.xmax}:${s.running.join(",")}`;

/**
 * Whether the log rows of (committed) transaction `txid` are in the snapshot — Postgres' own rule
 * (`pg_visible_in_snapshot`). With the watermark it says folded or tail; the SQL twin is `PAST`.
 */
export function inSnapshot(txid: number, s: LogSnapshot): boolean {
  if (txid < s.xmin) return true;
  if (txid >= s.xmax) return false;
  return !s.running.includes(txid);
}

/**
 * Where a chunk ends (exclusive txid): after the last transaction sampled, so a chunk holds whole
 * transactions (`lastSampled` null: the sample was not full, everything goes); never below the
 * watermark's `xmax`, so the new watermark still holds everything the old one did; never past the
 * current snapshot's `xmax`, from which on no transaction had finished.
 */
export function chunkEnd(watermark: LogSnapshot, current: LogSnapshot, lastSampled: number | null): number {
  const end = lastSampled === null ? current.xmax : lastSampled + 1;
  return Math.min(Math.max(end, watermark.xmax), current.xmax);
}

/**
 * The watermark after folding, in snapshot `current`, every row past the old one below `end`: the
 * current snapshot cut at `end` (what is at or above it, or was still running, stays in the tail).
 */
export function cutSnapshot(current: LogSnapshot, end: number): LogSnapshot {
  return { xmin: Math.min(current.xmin, end), xmax: end, running: current.running.filter((x) => x < end) };
}

/** Summarizes the log's new BRIN page ranges (both indexes), so tail scans skip everything folded. */
const SUMMARIZE = `select brin_summarize_new_values('usage_log_txid_brin'::regclass),
  brin_summarize_new_values('usage_log_received_brin'::regclass)`;

/** Postgres' serialization failure: under repeatable read, another run moved the watermark first. */
const isSerializationFailure = (err: unknown) => (err as { code?: string } | null)?.code === "40001";

/**
 * Folds the log into the aggregates, up to about `maxRows` rows a chunk and `maxChunks` chunks. One
 * run at a time: the watermark row is locked, and a run that finds it locked returns at once —
 * with `flush` (the rollup, tests) it waits instead, then folds everything committed before the
 * call. A chunk is one repeatable-read transaction — the sample, the fold and the new watermark all
 * in one snapshot, committed together, so a crash folds it again whole.
 */
export async function aggregateLog(
  db: Db,
  opts: { maxRows?: number; maxChunks?: number; flush?: boolean } = {},
): Promise<AggregationRun> {
  const maxRows = opts.maxRows ?? 50_000;
  const maxChunks = opts.maxChunks ?? (opts.flush ? Number.POSITIVE_INFINITY : 20);
  const run: AggregationRun = { rows: 0, chunks: 0, watermark: "", tail: 0 };
  // The BRIN ranges appended since the last run, summarized: else each one matches every tail scan
  // below until VACUUM gets to it (migration 0022). Costs one read of those new pages; best effort
  // (a role that does not own the index may not), never a reason not to fold.
  await db.query(SUMMARIZE).catch(() => undefined);
  for (let i = 0; i < maxChunks; i++) {
    const step = await db
      .transaction(async (tx) => {
        await tx.query("set transaction isolation level repeatable read");
        // A chunk's rows sorted in memory: at the default 4 MB the raw copy's sort spills to disk.
        await tx.query("set local work_mem = '64MB'");
        const { rows } = await tx.query<{ xmin: string; xmax: string; xip: string[]; cur: string }>(
          `select snap_xmin::text as xmin, snap_xmax::text as xmax, snap_xip::text[] as xip, pg_current_snapshot()::text as cur
           from usage_watermark for update${opts.flush ? "" : " skip locked"}`,
        );
        const row = rows[0];
        if (!row) return null;
        const watermark = { xmin: Number(row.xmin), xmax: Number(row.xmax), running: row.xip.map(Number) };
        const current = parseSnapshot(row.cur);
        const { rows: sample } = await tx.query<{ last: string | null; n: number }>(
          `select max(txid)::text as last, count(*)::int as n from (
             select l.txid from usage_log l where ${PAST} limit $1) x`,
          [maxRows],
        );
        const full = sample[0]!.n >= maxRows;
        const end = chunkEnd(watermark, current, full ? Number(sample[0]!.last) : null);
        const next = cutSnapshot(current, end);
        const { rows: f } = await tx.query<{ n: number }>(FOLD, [end, next.xmin, next.xmax, next.running]);
        return { n: f[0]!.n, more: end < current.xmax, watermark: formatSnapshot(next) };
      })
      // Locked by a run that then committed: flushing, go round again (it sees the new watermark).
      .catch((err) => (isSerializationFailure(err) ? ("raced" as const) : Promise.reject(err)));
    if (step === "raced") {
      if (opts.flush) continue;
      break;
    }
    if (!step) break;
    run.rows += step.n;
    run.watermark = step.watermark;
    if (step.n > 0) run.chunks += 1;
    if (!step.more) break;
  }
  const { rows } = await db.query<{ n: number }>(`select count(*)::int as n from usage_log l where ${PAST}`);
  run.tail = rows[0]!.n;
  return run;
}

/**
 * SQL of the log's tail for one organization — the rows every read adds to the aggregates — as a
 * CTE body: `tail as (${tailSql("$1")})`. It must sit in the same statement as the aggregates it
 * completes, so both come from one snapshot.
 */
export const tailSql = (org: string) => `select l.* from usage_log l where l.organization_id = ${org} and ${PAST}`;
