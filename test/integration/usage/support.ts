import { env } from "cloudflare:workers";
import { createExecutionContext } from "cloudflare:test";
import { createLogger } from "../../../src/platform/logger.ts";
import { createPlatform } from "../../../src/platform/platform.ts";
import { createUsageService } from "../../../src/usage/service.ts";
import type { UsageEventInput } from "../../../src/usage/schemas.ts";
import { tzOffsetMinutes } from "../../../src/usage/periods.ts";
import { api } from "../support/api.ts";

/**
 * The usage service on a fresh platform (one per call, like a request); `now` injects a clock,
 * `pgOptions` sets session settings of its Postgres connections (`-c name=value`).
 */
export function usage(opts: { now?: () => number; pgOptions?: string } = {}) {
  const bindings = opts.pgOptions ? { ...env, DATABASE_URL: withPgOptions(env.DATABASE_URL, opts.pgOptions) } : env;
  const platform = createPlatform(bindings, createExecutionContext(), createLogger({ test: "usage" }));
  return createUsageService(platform, opts);
}

const withPgOptions = (url: string, options: string) => {
  const u = new URL(url);
  u.searchParams.set("options", options);
  return u.toString();
};

/** The organization object. */
export const orgObject = (org: string) => env.ORG_USAGE.get(env.ORG_USAGE.idFromName(org));

/**
 * Has the organization object hand the alerts it claimed to Postgres now, as its alarm does on its
 * own (maybe already: a hand-off is idempotent); resolves with how many it handed off.
 */
export const deliverAlerts = (org: string) => orgObject(org).deliverAlerts();

/** A unique organization. */
export const newOrg = () => `uorg_${crypto.randomUUID().slice(0, 8)}`;

let n = 0;
/** An event (defaults: api.call, quantity 1, now). */
export function ev(org: string, over: Partial<UsageEventInput> = {}): UsageEventInput {
  return {
    eventId: `e_${Date.now().toString(36)}_${n++}_${crypto.randomUUID().slice(0, 6)}`,
    organizationId: org,
    eventType: "api.call",
    userId: "u1",
    quantity: 1,
    metadata: {},
    timestamp: new Date(),
    ...over,
  };
}

/**
 * Puts the organization on a custom plan with these limits/allowances/prices, through the operator
 * API (scope `internal`): the plan is created or replaced, then assigned — effective at once.
 */
export async function setPlan(
  org: string,
  limits: Record<string, number>,
  included: Record<string, number> = {},
  prices: Record<string, number> = {},
) {
  const planId = `plan_${org}`;
  const terms = { limits, included, prices };
  const ok = async (res: Response, what: string) => {
    if (!res.ok) throw new Error(`${what}: ${res.status} ${await res.text()}`);
  };
  const created = await api("/v1/internal/plans", {
    scopes: ["internal"],
    body: { id: planId, name: planId, ...terms },
  });
  if (created.status === 409) {
    await ok(
      await api(`/v1/internal/plans/${planId}`, { scopes: ["internal"], method: "PATCH", body: terms }),
      "update plan",
    );
  } else await ok(created, "create plan");
  await ok(await api(`/v1/orgs/${org}/plan`, { scopes: ["internal"], method: "PUT", body: { planId } }), "assign plan");
}

/** An hour-aligned time `hoursAgo` hours before the current hour, plus `minutes`. */
export function hoursAgo(h: number, minutes = 0): Date {
  const d = new Date();
  d.setUTCMinutes(0, 0, 0);
  return new Date(d.getTime() - h * 3_600_000 + minutes * 60_000);
}

/** Validates an event and returns it (throws if invalid): the shape `recordEvents` takes. */
export function valid(e: UsageEventInput) {
  return validAt({})(e);
}

/** {@link valid} against a service with the clock `now`. */
export function validAt(clock: { now?: () => number }) {
  return (e: UsageEventInput) => {
    const v = usage(clock).validate(e);
    if (!v.ok) throw new Error(`invalid test event: ${JSON.stringify(v.issues)}`);
    return v.event;
  };
}

/**
 * The most recent daylight-saving change of `timeZone` before `before` where clocks went back
 * (the local day has 25 hours), found with Intl — so tests never pin a calendar date.
 * @returns the instant of the change and the UTC offsets (minutes) before and after it
 */
export function lastFallBack(timeZone: string, before: Date): { at: Date; offsetBefore: number; offsetAfter: number } {
  const hour = 3_600_000;
  let t = Math.floor(before.getTime() / hour) * hour;
  for (let i = 0; i < 2 * 366 * 24; i++, t -= hour) {
    const after = tzOffsetMinutes(timeZone, new Date(t));
    const prior = tzOffsetMinutes(timeZone, new Date(t - hour));
    if (after >= prior) continue;
    // The change happened within (t - 1 h, t]: narrow it to the minute.
    let lo = t - hour;
    let hi = t;
    while (hi - lo > 60_000) {
      const mid = lo + Math.floor((hi - lo) / 120_000) * 60_000;
      if (tzOffsetMinutes(timeZone, new Date(mid)) === prior) lo = mid;
      else hi = mid;
    }
    return { at: new Date(hi), offsetBefore: prior, offsetAfter: after };
  }
  throw new Error(`${timeZone} had no daylight-saving change in two years before ${before.toISOString()}`);
}

/** The instant of local midnight starting the day `days` after the local date of `at` in a zone of fixed `offset` minutes. */
export function localMidnight(timeZone: string, at: Date, days: number, offset: number): Date {
  const [y, m, d] = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" })
    .format(at)
    .split("-")
    .map(Number) as [number, number, number];
  return new Date(Date.UTC(y, m - 1, d + days) - offset * 60_000);
}
