import type { AlertCrossing } from "./alerts.ts";
import type { Plan, QuotaMetricType } from "./quota.ts";
import { crossedThresholds, quotaMetrics } from "./quota.ts";
import type { LogSnapshot } from "./log.ts";
import { inSnapshot } from "./log.ts";
import type { IntervalSums } from "./repo.ts";
import { decimalAdd, decimalSub } from "./decimal.ts";

/**
 * The organization object's counter rules as pure functions. Its counters are a base — everything the
 * usage log held in the Postgres snapshot the last reconciliation read — plus the events the object
 * applied itself that were not yet in that snapshot. An event reaches the object only after its log
 * row committed, so the snapshot tells exactly which applied events the base already counts: a
 * reconciliation can replace the base at any time without counting an event twice or losing one
 * in flight, and a lost object or a dead-lettered batch heals at once.
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
  /** Its position in the usage log (the txid that recorded it): in the base's snapshot, the base counts it. */
  position: number;
}

/** Event types whose all-time sums make the gauges (storage, documents). */
export const GAUGE_TYPES = ["storage.upload", "storage.delete", "document.created", "document.deleted"] as const;

/** Sums per event type. */
export type Sums = Record<string, number>;

/** Counters after a reconciliation: the base plus what the object applied that the base's snapshot lacks. */
export function reconciled(
  truth: Pick<IntervalSums, "sums" | "toEnd">,
  recent: { periodSums: Sums; allTimeSums: Sums },
): { sums: Sums; gauges: Sums } {
  const add = (a: Sums, b: Sums) => {
    const out: Sums = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = decimalAdd(out[k] ?? 0, v);
    return out;
  };
  const gauges = add(truth.toEnd, recent.allTimeSums);
  for (const k of Object.keys(gauges)) if (!(GAUGE_TYPES as readonly string[]).includes(k)) delete gauges[k];
  return { sums: add(truth.sums, recent.periodSums), gauges };
}

/** What changed between two sets of sums (non-zero entries only): the drift a reconciliation corrected. */
export function driftOf(before: Sums, after: Sums): Sums {
  const out: Sums = {};
  for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const d = decimalSub(after[k] ?? 0, before[k] ?? 0);
    if (d !== 0) out[k] = d;
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

/** What a batch of newly applied events changes in the counters. */
export interface BatchDeltas {
  /** Period sums per event type (events in the period the base does not already count). */
  sums: Sums;
  /** Gauge sources per event type (events the base does not already count). */
  gauges: Sums;
  /** Users active in the period (a set: joined whatever the base says). */
  users: Set<string>;
  /** Usage that consumes quota reservations, per quota metric. */
  reservations: Record<string, number>;
}

/**
 * The counter changes of events new to the object: an event counts in the sums and gauges only if
 * its log row is not in the base's snapshot (in it, the base counts it already); users and
 * reservations are consumed either way.
 */
export function batchDeltas(
  fresh: readonly Pick<CounterEvent, "eventType" | "userId" | "quantity" | "occurredAt" | "position">[],
  period: { start: Date; end: Date },
  base: LogSnapshot,
): BatchDeltas {
  const d: BatchDeltas = { sums: {}, gauges: {}, users: new Set(), reservations: {} };
  const add = (into: Record<string, number>, k: string, v: number) => {
    into[k] = decimalAdd(into[k] ?? 0, v);
  };
  for (const e of fresh) {
    const inPeriod = e.occurredAt >= period.start.getTime() && e.occurredAt < period.end.getTime();
    if (inPeriod && e.userId) d.users.add(e.userId);
    if (!inSnapshot(e.position, base)) {
      if (inPeriod) add(d.sums, e.eventType, e.quantity);
      if ((GAUGE_TYPES as readonly string[]).includes(e.eventType)) add(d.gauges, e.eventType, e.quantity);
    }
    if (e.eventType === "api.call" && inPeriod) add(d.reservations, "api_calls", e.quantity);
    if (e.eventType === "storage.upload") add(d.reservations, "storage", e.quantity);
    if (e.eventType === "document.created") add(d.reservations, "documents", e.quantity);
  }
  return d;
}
