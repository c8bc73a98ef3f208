import { decimalAdd, decimalMul, decimalSub } from "./decimal.ts";
import type { QuotaMetric } from "./schemas.ts";

/**
 * Quota arithmetic as pure functions; the organization's Durable Object calls them inside its
 * single-threaded turn, which is what makes admission atomic.
 */

/** The metrics plans limit, and whether each is per billing period or an all-time gauge. */
export const quotaMetrics = {
  api_calls: "period",
  storage: "gauge",
  documents: "gauge",
  collaborators: "period",
} as const;

/** A quota-limited metric. */
export type QuotaMetricType = keyof typeof quotaMetrics;

/** A plan as stored in `plans` (limits and allowances per metric; absent = unlimited / none). */
export interface Plan {
  id: string;
  limits: Partial<Record<string, number>>;
  included: Partial<Record<string, number>>;
  prices: Partial<Record<string, number>>;
}

/** Builds the seed's `QuotaMetric`. */
export function quotaMetric(
  metricType: string,
  used: number,
  reserved: number,
  limit: number | undefined,
): QuotaMetric {
  const effective = decimalAdd(used, reserved);
  return {
    metricType,
    used,
    reserved,
    limit: limit ?? null,
    percentage: limit ? Math.min(100, Math.round((effective / limit) * 10_000) / 100) : 0,
    exceeded: limit !== undefined && effective > limit,
  };
}

/** Outcome of an admission check (the seed's `checkQuota` result). */
export interface Admission {
  allowed: boolean;
  remaining: number;
  limit: number;
}

/**
 * Admits `amount` if it fits under the limit counting what is used and already reserved. An
 * unlimited metric always admits (limit reported as Infinity → serialised as -1 by the API).
 */
export function admit(used: number, reserved: number, limit: number | undefined, amount: number): Admission {
  if (limit === undefined)
    return { allowed: true, remaining: Number.POSITIVE_INFINITY, limit: Number.POSITIVE_INFINITY };
  const left = decimalSub(decimalSub(limit, used), reserved);
  if (amount <= left) return { allowed: true, remaining: decimalSub(left, amount), limit };
  return { allowed: false, remaining: Math.max(0, left), limit };
}

/** Thresholds (percent) crossed upwards when usage moved from `before` to `after` of `limit`. */
export function crossedThresholds(
  before: number,
  after: number,
  limit: number | undefined,
  thresholds: readonly number[],
): number[] {
  if (!limit || after <= before) return [];
  // used / limit ≥ t % as used × 100 ≥ t × limit, on the decimals: no division to round.
  const reached = (used: number, t: number) => decimalMul(used, 100) >= decimalMul(t, limit);
  return thresholds.filter((t) => !reached(before, t) && reached(after, t));
}
