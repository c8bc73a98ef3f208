import type { Db } from "../platform/db.ts";

/**
 * Retention of the usage tables, bounded and index-backed so it costs the same every run whatever
 * the tables' size: minute aggregates and the event log (the dedup keys) are deleted in batches chosen
 * through a time index; raw events go a whole month at a time by dropping their partition (no row scan at all),
 * and only the default partition is purged by rows. Quarter-hour, hour, day, month and per-user day aggregates are kept.
 */

/** How long each kind of row is kept. */
export interface RetentionSettings {
  /** Minute aggregates older than this are purged (the hour table keeps the exact sums). */
  minuteRetentionDays: number;
  /** Raw events and log rows (dedup keys) older than this are purged (dedup matters within the late-event horizon only). */
  rawRetentionDays: number;
}

/** Per-run bounds. */
export interface RetentionLimits {
  /** Rows per delete (default 5,000). */
  batchSize?: number;
  /** Deletes per table and run (default 20): a backlog drains over several runs. */
  maxBatches?: number;
}

/** What one run removed. */
export interface RetentionResult {
  minuteRows: number;
  eventIds: number;
  rawRows: number;
  partitionsDropped: string[];
  partitionsCreated: number;
}

/**
 * The bounded purges: each deletes at most `$2` rows older than `$1`, found through one of the
 * table's time-ordered indexes (exported so tests can check the plan uses one).
 */
export const purges = {
  minute: {
    index: ["usage_agg_minute_time_idx"],
    sql: `delete from usage_agg_minute where ctid = any(array(
            select ctid from usage_agg_minute where bucket < $1 order by bucket limit $2))`,
  },
  // The log's rows are its dedup keys: purged by arrival, and only once aggregated (below the
  // watermark's xmin). Unordered: the BRIN bitmap yields old page ranges first and the limit stops early.
  // `txid + 0`: the watermark bound is a filter, never an index condition — as one it could walk the
  // whole (organization_id, txid) index instead of the old page ranges.
  eventIds: {
    index: ["usage_log_received_brin"],
    sql: `delete from usage_log where ctid = any(array(
            select ctid from usage_log where received_at < $1
              and txid + 0 < (select snap_xmin from usage_watermark) limit $2))`,
  },
  rawDefault: {
    index: ["usage_events_default_time_idx"],
    sql: `delete from usage_events_default where ctid = any(array(
            select ctid from usage_events_default where occurred_at < $1 order by occurred_at limit $2))`,
  },
} as const;

async function purgeInBatches(db: Db, sql: string, before: Date, limits: Required<RetentionLimits>): Promise<number> {
  let total = 0;
  for (let i = 0; i < limits.maxBatches; i++) {
    const { rowCount } = await db.query(sql, [before.toISOString(), limits.batchSize]);
    total += rowCount;
    if (rowCount < limits.batchSize) break;
  }
  return total;
}

/** Month partitions (`usage_events_YYYY_MM`) that end at or before `before`. */
async function expiredPartitions(db: Db, before: Date): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    `select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
     where i.inhparent = 'usage_events'::regclass and c.relname ~ '^usage_events_\\d{4}_\\d{2}$'
       and (to_date(substr(c.relname, 14), 'YYYY_MM') + interval '1 month') <= $1::timestamptz
     order by 1`,
    [before.toISOString()],
  );
  return rows.map((r) => r.name);
}

/**
 * Runs retention once: bounded purges, expired month partitions dropped (waiting at most 2 s for
 * the lock, else next run), and month partitions made sure to exist ahead.
 */
export async function applyRetention(
  db: Db,
  settings: RetentionSettings,
  now: Date,
  limits: RetentionLimits = {},
): Promise<RetentionResult> {
  const l = { batchSize: limits.batchSize ?? 5_000, maxBatches: limits.maxBatches ?? 20 };
  const minuteBefore = new Date(now.getTime() - settings.minuteRetentionDays * 86_400_000);
  const rawBefore = new Date(now.getTime() - settings.rawRetentionDays * 86_400_000);
  const result: RetentionResult = {
    minuteRows: await purgeInBatches(db, purges.minute.sql, minuteBefore, l),
    eventIds: await purgeInBatches(db, purges.eventIds.sql, rawBefore, l),
    rawRows: await purgeInBatches(db, purges.rawDefault.sql, rawBefore, l),
    partitionsDropped: [],
    partitionsCreated: 0,
  };
  for (const name of await expiredPartitions(db, rawBefore)) {
    const dropped = await db
      .transaction(async (tx) => {
        await tx.query("set local lock_timeout = '2s'");
        await tx.query(`drop table if exists ${name}`);
        return true;
      })
      .catch(() => false);
    if (dropped) result.partitionsDropped.push(name);
  }
  const { rows } = await db.query<{ n: number }>(
    "select usage_ensure_partitions((date_trunc('month', $1::timestamptz) - interval '1 month')::date, 5) as n",
    [now.toISOString()],
  );
  result.partitionsCreated = rows[0]?.n ?? 0;
  return result;
}
