import { decimalSum } from "./decimal.ts";

/**
 * What can be metered. Every usage event type is a metric (the sum of its quantities), and a few
 * derived metrics combine them. Unique counts are never summed across buckets: they are counted
 * from distinct-user sets.
 */

/** Event types the usage service accepts (other services emit them; see the event catalog). */
export const usageEventTypes = [
  "document.created",
  "document.updated",
  "document.deleted",
  "document.viewed",
  "document.shared",
  "collaboration.session_started",
  "collaboration.session_ended",
  "storage.upload",
  "storage.delete",
  "api.call",
  "presence.joined",
  "presence.left",
  "presence.heartbeat",
] as const;

/** A usage event type. */
export type UsageEventType = (typeof usageEventTypes)[number];

/** A derived metric: a signed sum of event types, or a distinct-user count. */
export type DerivedMetric =
  | { kind: "sum"; terms: readonly (readonly [UsageEventType, 1 | -1])[]; gauge: boolean; description: string }
  | { kind: "distinct"; description: string };

/** The derived metrics (documented in the README). */
export const derivedMetrics = {
  api_calls: {
    kind: "sum",
    terms: [["api.call", 1]],
    gauge: false,
    description: "API calls served (sum of api.call quantities)",
  },
  storage: {
    kind: "sum",
    terms: [
      ["storage.upload", 1],
      ["storage.delete", -1],
    ],
    gauge: true,
    description: "Bytes stored: uploads minus deletes, all time",
  },
  documents: {
    kind: "sum",
    terms: [
      ["document.created", 1],
      ["document.deleted", -1],
    ],
    gauge: true,
    description: "Documents existing: created minus deleted, all time",
  },
  collaborators: { kind: "distinct", description: "Distinct users active in the period (or range)" },
  active_users: { kind: "distinct", description: "Distinct users active in the bucket" },
} as const satisfies Record<string, DerivedMetric>;

/** A derived metric name. */
export type DerivedMetricName = keyof typeof derivedMetrics;

/** Any metric a query or quota may name. */
export type MetricType = UsageEventType | DerivedMetricName;

const eventTypeSet = new Set<string>(usageEventTypes);

/** Whether `name` is a usage event type. */
export const isUsageEventType = (name: string): name is UsageEventType => eventTypeSet.has(name);

/** Whether `name` is a derived metric. */
export const isDerivedMetric = (name: string): name is DerivedMetricName => Object.hasOwn(derivedMetrics, name);

/** Whether `name` is any metric. */
export const isMetricType = (name: string): name is MetricType => isUsageEventType(name) || isDerivedMetric(name);

/** Every metric name. */
export const metricTypes: MetricType[] = [...usageEventTypes, ...(Object.keys(derivedMetrics) as DerivedMetricName[])];

/** The event types a metric is computed from (empty for distinct counts). */
export function sourceEventTypes(metric: MetricType): UsageEventType[] {
  if (isUsageEventType(metric)) return [metric];
  const d: DerivedMetric = derivedMetrics[metric];
  return d.kind === "sum" ? d.terms.map(([t]) => t) : [];
}

/** A metric's value from per-event-type sums. */
export function valueFromSums(metric: MetricType, sums: ReadonlyMap<string, number> | Record<string, number>): number {
  const get = (t: string) => (sums instanceof Map ? sums.get(t) : (sums as Record<string, number>)[t]) ?? 0;
  if (isUsageEventType(metric)) return get(metric);
  const d: DerivedMetric = derivedMetrics[metric];
  if (d.kind !== "sum") throw new Error(`${metric} is a distinct count, not a sum`);
  return decimalSum(d.terms.map(([t, sign]) => sign * get(t)));
}
