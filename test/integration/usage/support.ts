import { env } from "cloudflare:workers";
import { createExecutionContext } from "cloudflare:test";
import { createLogger } from "../../../src/platform/logger.ts";
import { createPlatform } from "../../../src/platform/platform.ts";
import { createUsageService } from "../../../src/usage/service.ts";
import type { UsageEventInput } from "../../../src/usage/schemas.ts";
import { withDb } from "../support/backends.ts";

/** The usage service on a fresh platform (one per call, like a request). */
export function usage() {
  const platform = createPlatform(env, createExecutionContext(), createLogger({ test: "usage" }));
  return createUsageService(platform);
}

/** The organization object. */
export const orgObject = (org: string) => env.ORG_USAGE.get(env.ORG_USAGE.idFromName(org));

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

/** Puts the organization on a custom plan with these limits/allowances/prices. */
export async function setPlan(
  org: string,
  limits: Record<string, number>,
  included: Record<string, number> = {},
  prices: Record<string, number> = {},
) {
  const planId = `plan_${org}`;
  await withDb(async (db) => {
    await db.query(
      "insert into plans (id, name, limits, included, prices) values ($1, $1, $2, $3, $4) on conflict (id) do update set limits = excluded.limits, included = excluded.included, prices = excluded.prices",
      [planId, JSON.stringify(limits), JSON.stringify(included), JSON.stringify(prices)],
    );
    await db.query(
      "insert into organizations (id, plan_id) values ($1, $2) on conflict (id) do update set plan_id = excluded.plan_id",
      [org, planId],
    );
  });
  await orgObject(org).invalidate();
}

/** An hour-aligned time `hoursAgo` hours before the current hour, plus `minutes`. */
export function hoursAgo(h: number, minutes = 0): Date {
  const d = new Date();
  d.setUTCMinutes(0, 0, 0);
  return new Date(d.getTime() - h * 3_600_000 + minutes * 60_000);
}

/** Validates an event and returns it (throws if invalid): the shape `recordEvents` takes. */
export function valid(e: UsageEventInput) {
  const v = usage().validate(e);
  if (!v.ok) throw new Error(`invalid test event: ${JSON.stringify(v.issues)}`);
  return v.event;
}
