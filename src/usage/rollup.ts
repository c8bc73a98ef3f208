import type { Db } from "../platform/db.ts";
import type { MetricType } from "./metrics.ts";
import { isUsageEventType, sourceEventTypes, usageEventTypes } from "./metrics.ts";

/**
 * Rollup of hour aggregates into day and month buckets by recompute-and-replace: each dirty bucket
 * (marked by ingestion, late events included) is recomputed from its hours and replaces the old
 * value, and its marker is removed in the same transaction. Running twice changes nothing; an event
 * arriving after its bucket was rolled re-marks it and the next run picks it up — never added twice.
 * Markers are taken `FOR UPDATE SKIP LOCKED`, so concurrent runs split the work.
 */

/** Markers handled per transaction. */
const BATCH = 2_000;

/**
 * Rolls up dirty day/month buckets that start before `cutoffTime`.
 * @param metricType - an event type, a derived metric (its source types) or `*` for all
 * @returns buckets rolled up and batches that failed (they stay dirty and are retried next run)
 */
export async function rollupMetrics(
  db: Db,
  metricType: MetricType | "*",
  cutoffTime: Date,
  onError: (err: unknown) => void = () => {},
  maxBatches = 50,
): Promise<{ rolledUp: number; errors: number }> {
  const types =
    metricType === "*"
      ? [...usageEventTypes]
      : isUsageEventType(metricType)
        ? [metricType]
        : sourceEventTypes(metricType);
  let rolledUp = 0;
  let errors = 0;
  if (types.length === 0) return { rolledUp, errors }; // distinct counts are read from exact user sets
  for (const g of ["day", "month"] as const) {
    for (let i = 0; i < maxBatches; i++) {
      try {
        const n = await db.transaction(async (tx) => {
          const { rows } = await tx.query<{ organization_id: string; event_type: string; bucket: Date }>(
            `select organization_id, event_type, bucket from usage_dirty_buckets
             where granularity = $1 and event_type = any($2::text[]) and bucket < $3
             order by organization_id, event_type, bucket limit $4 for update skip locked`,
            [g, types, cutoffTime.toISOString(), BATCH],
          );
          if (rows.length === 0) return 0;
          const picked = JSON.stringify(
            rows.map((r) => ({ o: r.organization_id, t: r.event_type, b: new Date(r.bucket).toISOString() })),
          );
          // Two statements: within one, the insert would still see the rows the delete removes.
          await tx.query(
            `delete from usage_agg_${g} a using jsonb_to_recordset($1::jsonb) as p(o text, t text, b timestamptz)
             where a.organization_id = p.o and a.event_type = p.t and a.bucket = p.b`,
            [picked],
          );
          await tx.query(
            `insert into usage_agg_${g} (organization_id, event_type, resource_type, bucket, quantity, events)
             select h.organization_id, h.event_type, h.resource_type, p.b, sum(h.quantity), sum(h.events)
             from jsonb_to_recordset($1::jsonb) as p(o text, t text, b timestamptz)
             join usage_agg_hour h on h.organization_id = p.o and h.event_type = p.t
               and h.bucket >= p.b and h.bucket < p.b + interval '1 ${g}'
             group by 1, 2, 3, 4`,
            [picked],
          );
          await tx.query(
            `delete from usage_dirty_buckets d using jsonb_to_recordset($1::jsonb) as p(o text, t text, b timestamptz)
             where d.organization_id = p.o and d.event_type = p.t and d.granularity = $2 and d.bucket = p.b`,
            [picked, g],
          );
          return rows.length;
        });
        rolledUp += n;
        if (n < BATCH) break;
      } catch (err) {
        errors += 1;
        onError(err);
        break;
      }
    }
  }
  return { rolledUp, errors };
}
