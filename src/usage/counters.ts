import type { AlertCrossing } from "./alerts.ts";
import type { Plan, QuotaMetricType } from "./quota.ts";
import { crossedThresholds, quotaMetrics } from "./quota.ts";
import type { UsageTruth } from "./repo.ts";

/**
 * The organization object's counter rules as pure functions. Its counters are a base — Postgres'
 * exact totals of the events received before a cutoff, taken at the last reconciliation — plus the
 * events it applied itself that were received at or after that cutoff. So a reconciliation can
 * replace the base at any time without counting an event twice or losing one that is in flight,
 * and a lost object or a dead-lettered batch heals at the next reconciliation.
 */

/** An event as the organization object applies it. */
export interface CounterEvent {
  eventId: string;
  eventType: string;
  userId?: string;
  resourceId?: string;
  quantity: number;
  /** Epoch ms. */
  occurredAt: number;
  /** When Postgres first received it (epoch ms, Postgres clock): decides whether the base covers it. */
  receivedAt: number;
}

/** Event types whose all-time sums make the gauges (storage, documents). */
export const GAUGE_TYPES = ["storage.upload", "storage.delete", "document.created", "document.deleted"] as const;

/** How long after its arrival an event is settled (its ingest transaction has surely ended). */
export const SETTLE_MS = 5 * 60_000;

/** Sums per event type. */
export type Sums = Record<string, number>;

/** Counters after a reconciliation: the base plus what was applied since the cutoff. */
export function reconciled(
  truth: Pick<UsageTruth, "periodSums" | "allTimeSums">,
  recent: { periodSums: Sums; allTimeSums: Sums },
): { sums: Sums; gauges: Sums } {
  const add = (a: Sums, b: Sums) => {
    const out: Sums = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  const gauges = add(truth.allTimeSums, recent.allTimeSums);
  for (const k of Object.keys(gauges)) if (!(GAUGE_TYPES as readonly string[]).includes(k)) delete gauges[k];
  return { sums: add(truth.periodSums, recent.periodSums), gauges };
}

/** What changed between two sets of sums (non-zero entries only): the drift a reconciliation corrected. */
export function driftOf(before: Sums, after: Sums): Sums {
  const out: Sums = {};
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const d = (after[k] ?? 0) - (before[k] ?? 0);
    if (Math.abs(d) > 1e-9) out[k] = d;
  }
  return out;
}

/** An alert subscription as the object caches it. */
export interface AlertSubscription {
  id: string;
  metricType: string;
  threshold: number;
  notificationChannels: string[];
}

/** A crossing with the key that makes it happen once per subscription (or metric) and period. */
export type KeyedCrossing = AlertCrossing & { key: string };

/**
 * Thresholds and limits crossed upwards when usage moved from `before` to `after`, each keyed
 * once per subscription (threshold alerts) or metric (exceeded) and billing period.
 */
export function crossings(
  before: Record<QuotaMetricType, number>,
  after: Record<QuotaMetricType, number>,
  plan: Plan,
  subscriptions: readonly AlertSubscription[],
  periodStart: Date,
): KeyedCrossing[] {
  const out: KeyedCrossing[] = [];
  const period = periodStart.toISOString();
  for (const metric of Object.keys(quotaMetrics) as QuotaMetricType[]) {
    const limit = plan.limits[metric];
    const mine = subscriptions.filter((s) => s.metricType === metric);
    const crossed = crossedThresholds(
      before[metric],
      after[metric],
      limit,
      mine.map((s) => s.threshold),
    );
    for (const s of mine.filter((x) => crossed.includes(x.threshold))) {
      out.push({
        key: `threshold:${s.id}:${period}`,
        kind: "threshold",
        subscription: s,
        metricType: metric,
        used: after[metric],
        limit: limit!,
        periodStart,
      });
    }
    if (limit !== undefined && before[metric] <= limit && after[metric] > limit) {
      out.push({
        key: `exceeded:${metric}:${period}`,
        kind: "exceeded",
        metricType: metric,
        used: after[metric],
        limit,
        periodStart,
      });
    }
  }
  return out;
}
