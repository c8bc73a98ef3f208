import { z } from "@hono/zod-openapi";
import { withTransaction } from "../events/bus.ts";
import type { EventBus } from "../events/bus.ts";
import { createEvent } from "../events/cloudevent.ts";
import { decodeCursor, encodeCursor } from "../platform/cursor.ts";
import type { Db, Queryable } from "../platform/db.ts";
import { ConflictError, NotFoundError, ServiceUnavailableError, ValidationError } from "../platform/errors.ts";
import { parseInput } from "../platform/validation.ts";
import { billingPeriod } from "./periods.ts";
import type { QuotaMetricType } from "./quota.ts";
import { quotaMetrics } from "./quota.ts";
import { ensureOrganizations, orgPlan } from "./repo.ts";
import { pageOptionsSchema } from "./schemas.ts";

/**
 * Plans and what an organization is actually limited and billed by: its plan with its own
 * overrides merged in, key by key. {@link effectivePlan} is the one way anything reads a plan — the
 * organization object's quota, reports, the teams' limits — and {@link PlanService} is the operator
 * API that changes plans, assignments and overrides (and refreshes the organization objects).
 */

// ── Schemas ─────────────────────────────────────────────────────────────────────────────────────

/** Metrics a plan may limit: the quota metrics plus `teams` (the team count, enforced by teams). */
export const planLimitMetrics = [...(Object.keys(quotaMetrics) as QuotaMetricType[]), "teams"] as const;
/** Metrics a plan bills: the line items of a usage report (their included allowances and unit prices). */
export const billableMetrics = Object.keys(quotaMetrics) as QuotaMetricType[];

/** Largest limit, allowance or price accepted (jsonb numbers stay exact as doubles). */
const MAX_TERM = 1e15;
// JSON has no Infinity or NaN, and zod's number rejects them anyway: finite by construction.
const term = z.number().nonnegative().max(MAX_TERM);

// A strict object per metric map: an unknown metric is a 400 whose issue has zod's code
// `unrecognized_keys` and names the key, and the OpenAPI document lists the known metrics.
const metricMap = <V extends z.ZodType>(keys: readonly string[], value: V) =>
  z.strictObject(Object.fromEntries(keys.map((k) => [k, value.optional()])) as Record<string, z.ZodOptional<V>>);

const limitsInput = metricMap(planLimitMetrics, term).openapi({
  description: "Maximum per billing period (gauges: at any time); absent = unlimited",
});
const includedInput = metricMap(billableMetrics, term).openapi({
  description: "Allowance per billing period billed at no charge; absent = 0",
});
const pricesInput = metricMap(billableMetrics, term).openapi({ description: "Overage unit price in USD; absent = 0" });

const planIdSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][\w.-]*$/, "letters, digits and _ . - only, starting with a letter or digit");
const planName = z.string().trim().min(1).max(200);

/** Body of `POST /v1/internal/plans`. */
export const planCreateSchema = z
  .strictObject({
    id: planIdSchema,
    name: planName,
    limits: limitsInput.default({}),
    included: includedInput.default({}),
    prices: pricesInput.default({}),
  })
  .openapi("PlanCreate");
/** A new plan (input form). */
export type PlanCreate = z.input<typeof planCreateSchema>;

/** Body of `PATCH /v1/internal/plans/{planId}`: each field sent replaces the stored one. */
export const planUpdateSchema = z
  .strictObject({
    name: planName.optional(),
    limits: limitsInput.optional(),
    included: includedInput.optional(),
    prices: pricesInput.optional(),
  })
  .refine((p) => Object.keys(p).length > 0, { message: "send at least one of name, limits, included, prices" })
  .openapi("PlanUpdate");
/** A plan change (input form). */
export type PlanUpdate = z.input<typeof planUpdateSchema>;

/** Body of `PUT /v1/orgs/{organizationId}/plan`. */
export const planAssignmentSchema = z
  .strictObject({
    planId: planIdSchema,
    billingAnchor: z.iso.datetime({ offset: true }).optional().openapi({
      description: "Billing periods start on this instant's day of month and time (UTC); unchanged when absent",
    }),
  })
  .openapi("PlanAssignment");
/** A plan assignment (input form). */
export type PlanAssignment = z.input<typeof planAssignmentSchema>;

/** Body of `PUT /v1/orgs/{organizationId}/plan/overrides`: replaces the organization's overrides. */
export const planOverridesSchema = z
  .strictObject({
    limits: metricMap(planLimitMetrics, term.nullable())
      .default({})
      .openapi({ description: "Limits that replace the plan's; null = unlimited whatever the plan says" }),
    included: includedInput.default({}),
    prices: pricesInput.default({}),
  })
  .openapi("PlanOverrides");
/** Overrides (input form). */
export type PlanOverridesInput = z.input<typeof planOverridesSchema>;

const numbers = z.record(z.string(), z.number());

/** A plan as stored. */
export const planSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    limits: numbers,
    included: numbers,
    prices: numbers,
    organizations: z.number().int().openapi({ description: "Organizations assigned this plan" }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Plan");
/** A plan. */
export type PlanView = z.infer<typeof planSchema>;

/** What an organization is limited and billed by: its plan with its overrides merged in. */
export const effectivePlanSchema = z
  .object({
    organizationId: z.string(),
    planId: z.string(),
    planName: z.string(),
    billingAnchor: z.string(),
    currentPeriod: z.object({ start: z.string(), end: z.string() }),
    limits: numbers.openapi({ description: "Effective limits (absent = unlimited)" }),
    included: numbers,
    prices: numbers,
    plan: z.object({ limits: numbers, included: numbers, prices: numbers }).openapi({
      description: "The plan's own terms",
    }),
    overrides: z.object({ limits: z.record(z.string(), z.number().nullable()), included: numbers, prices: numbers }),
    overridden: z.array(z.string()).openapi({
      description: "Terms an override sets (they win over the plan's), e.g. `limits.api_calls`",
    }),
  })
  .openapi("EffectivePlan");
/** The effective plan of an organization. */
export type EffectivePlanView = z.infer<typeof effectivePlanSchema>;

// ── Merging and the one loader ──────────────────────────────────────────────────────────────────

/** A plan's terms per metric: limits (absent = unlimited), included allowances and unit prices (absent = 0). */
export interface PlanTerms {
  limits: Record<string, number>;
  included: Record<string, number>;
  prices: Record<string, number>;
}

/** An organization's overrides; a `null` limit means unlimited whatever the plan says. */
export interface PlanOverrides {
  limits: Record<string, number | null>;
  included: Record<string, number>;
  prices: Record<string, number>;
}

const noOverrides = (): PlanOverrides => ({ limits: {}, included: {}, prices: {} });

/**
 * Merges overrides over a plan's terms, key by key (pure).
 * @returns the effective terms and the overridden keys as `limits.api_calls`, `prices.storage` …
 */
export function mergePlanTerms(plan: PlanTerms, overrides: PlanOverrides): PlanTerms & { overridden: string[] } {
  const limits: Record<string, number> = { ...plan.limits };
  for (const [k, v] of Object.entries(overrides.limits)) {
    if (v === null) delete limits[k];
    else limits[k] = v;
  }
  return {
    limits,
    included: { ...plan.included, ...overrides.included },
    prices: { ...plan.prices, ...overrides.prices },
    overridden: (["limits", "included", "prices"] as const).flatMap((part) =>
      Object.keys(overrides[part])
        .sort()
        .map((k) => `${part}.${k}`),
    ),
  };
}

/** The effective plan of an organization: the merged terms, with the plan and the overrides they came from. */
export interface EffectivePlan extends PlanTerms {
  planId: string;
  planName: string;
  billingAnchor: Date;
  /** The plan's own terms. */
  plan: PlanTerms;
  overrides: PlanOverrides;
  /** Keys an override sets (see {@link mergePlanTerms}). */
  overridden: string[];
}

/**
 * The one reader of plans: the organization's plan and billing anchor (`orgPlan`, which puts an
 * unknown organization on the default plan) with its overrides merged in. Works on a pool or
 * inside a transaction (teams read it under their locks).
 */
export async function effectivePlan(db: Queryable, org: string): Promise<EffectivePlan> {
  const row = await orgPlan(db, org);
  const { rows } = await db.query<{ name: string | null } & Partial<PlanOverrides>>(
    `select (select name from plans where id = $2) as name, o.limits, o.included, o.prices
     from (select 1) one left join organization_plan_overrides o on o.organization_id = $1`,
    [org, row.plan_id],
  );
  const r = rows[0];
  const plan: PlanTerms = { limits: row.limits ?? {}, included: row.included ?? {}, prices: row.prices ?? {} };
  const overrides: PlanOverrides = {
    limits: r?.limits ?? {},
    included: r?.included ?? {},
    prices: r?.prices ?? {},
  };
  return {
    planId: row.plan_id,
    planName: r?.name ?? row.plan_id,
    billingAnchor: new Date(row.billing_anchor),
    plan,
    overrides,
    ...mergePlanTerms(plan, overrides),
  };
}

// ── The operator service ────────────────────────────────────────────────────────────────────────

/** New organizations get this plan (`organizations.plan_id` default, migration 0001): it cannot be deleted. */
export const DEFAULT_PLAN_ID = "free";

/** The part of an organization's object a plan change needs: dropping its cached plan. */
export interface PlanCacheClient {
  invalidate(): Promise<void>;
}

/** Constructor options of {@link PlanService}. */
export interface PlanServiceOptions {
  db: Db;
  /** The organization object of an organization (its plan cache). */
  orgs: (organizationId: string) => PlanCacheClient;
  now?: () => number;
}

interface PlanRow extends PlanTerms {
  id: string;
  name: string;
  organizations: number;
  created_at: Date;
  created_at_text: string;
  updated_at: Date;
}

const PLAN_COLUMNS = `p.id, p.name, p.limits, p.included, p.prices, p.created_at, p.created_at::text as created_at_text,
  p.updated_at, (select count(*)::int from organizations o where o.plan_id = p.id) as organizations`;
const iso = (d: Date | string) => new Date(d).toISOString();
// Organization objects refreshed at once after a plan change (each is one RPC).
const INVALIDATE_CONCURRENCY = 16;

const toPlan = (r: PlanRow): PlanView => ({
  id: r.id,
  name: r.name,
  limits: r.limits,
  included: r.included,
  prices: r.prices,
  organizations: r.organizations,
  createdAt: iso(r.created_at),
  updatedAt: iso(r.updated_at),
});

/**
 * Plans, assignments and per-organization overrides for operators (scope `internal`), and the
 * organization's own view of its effective plan. Every change commits with an
 * `organization.plan.changed` event per organization it affects (outbox, same transaction) and then
 * drops those organizations' cached plans, so the next quota check already sees the new terms.
 */
export class PlanService {
  private readonly db: Db;
  private readonly orgs: (organizationId: string) => PlanCacheClient;
  private readonly now: () => number;

  /** @param options - db, the organization objects, a clock */
  constructor(options: PlanServiceOptions) {
    this.db = options.db;
    this.orgs = options.orgs;
    this.now = options.now ?? Date.now;
  }

  /**
   * Creates a plan.
   * @throws {ValidationError} for unknown metrics, negative or non-numeric terms; {ConflictError} if the id exists
   */
  async createPlan(input: PlanCreate): Promise<PlanView> {
    const p = parseInput(planCreateSchema, input, "plan");
    const { rows } = await this.db.query<PlanRow>(
      `with ins as (
         insert into plans (id, name, limits, included, prices) values ($1, $2, $3, $4, $5)
         on conflict (id) do nothing returning *)
       select ${PLAN_COLUMNS} from ins p`,
      [p.id, p.name, JSON.stringify(p.limits), JSON.stringify(p.included), JSON.stringify(p.prices)],
    );
    if (!rows[0]) throw new ConflictError(`plan ${p.id} already exists`, { details: { planId: p.id } });
    return toPlan(rows[0]);
  }

  /** A plan. @throws {NotFoundError} */
  async getPlan(planId: string): Promise<PlanView> {
    const { rows } = await this.db.query<PlanRow>(`select ${PLAN_COLUMNS} from plans p where p.id = $1`, [planId]);
    if (!rows[0]) throw new NotFoundError(`plan ${planId} not found`);
    return toPlan(rows[0]);
  }

  /**
   * Plans, oldest first.
   * @param options - limit (1–100, default 20), cursor (from `nextCursor`)
   */
  async listPlans(
    options: { limit?: number; cursor?: string } = {},
  ): Promise<{ plans: PlanView[]; hasMore: boolean; nextCursor: string | null }> {
    const o = parseInput(pageOptionsSchema, options, "page options");
    const after = decodeCursor(o.cursor);
    const { rows } = await this.db.query<PlanRow>(
      `select ${PLAN_COLUMNS} from plans p
       where $1::timestamptz is null or (p.created_at, p.id) > ($1::timestamptz, $2)
       order by p.created_at, p.id limit $3`,
      [after?.createdAt ?? null, after?.id ?? null, o.limit + 1],
    );
    const page = rows.slice(0, o.limit);
    const last = page[page.length - 1];
    const hasMore = rows.length > o.limit;
    return {
      plans: page.map(toPlan),
      hasMore,
      nextCursor: hasMore && last ? encodeCursor(last.created_at_text, last.id) : null,
    };
  }

  /**
   * Changes a plan's name or terms (each field sent replaces the stored one) for every organization
   * on it: one `organization.plan.changed` event each, and their objects refreshed before returning.
   * @throws {ValidationError} for bad terms; {NotFoundError} for an unknown plan
   */
  async updatePlan(planId: string, patch: PlanUpdate): Promise<PlanView> {
    const p = parseInput(planUpdateSchema, patch, "plan update");
    const json = (v: unknown) => (v === undefined ? null : JSON.stringify(v));
    const { plan, affected } = await withTransaction(this.db, async (tx, outbox) => {
      const { rows } = await tx.query<PlanRow>(
        `with upd as (
           update plans set name = coalesce($2, name), limits = coalesce($3::jsonb, limits),
             included = coalesce($4::jsonb, included), prices = coalesce($5::jsonb, prices), updated_at = now()
           where id = $1 returning *)
         select ${PLAN_COLUMNS} from upd p`,
        [planId, p.name ?? null, json(p.limits), json(p.included), json(p.prices)],
      );
      const row = rows[0];
      if (!row) throw new NotFoundError(`plan ${planId} not found`);
      // Every organization on the plan, with its overrides, as of this transaction (assignments
      // to or from the plan wait for it: the plan row is locked by the update).
      const orgs = await tx.query<{ id: string; billing_anchor: Date } & Partial<PlanOverrides>>(
        `select o.id, o.billing_anchor, v.limits, v.included, v.prices from organizations o
         left join organization_plan_overrides v on v.organization_id = o.id where o.plan_id = $1 order by o.id`,
        [planId],
      );
      const terms: PlanTerms = { limits: row.limits, included: row.included, prices: row.prices };
      await outbox.publishMany(
        orgs.rows.map((o) => {
          const overrides = { ...noOverrides(), ...stripNulls(o) };
          return planChangedEvent(o.id, "plan_updated", {
            planId,
            previousPlanId: planId,
            billingAnchor: iso(o.billing_anchor),
            ...mergePlanTerms(terms, overrides),
          });
        }),
      );
      return { plan: toPlan(row), affected: orgs.rows.map((o) => o.id) };
    });
    await this.refresh(affected);
    return plan;
  }

  /**
   * Deletes a plan nobody is on.
   * @throws {NotFoundError} for an unknown plan; {ConflictError} while organizations are assigned it, or for the default plan
   */
  async deletePlan(planId: string): Promise<{ deleted: true }> {
    if (planId === DEFAULT_PLAN_ID) {
      throw new ConflictError(`plan ${planId} is the default plan of new organizations and cannot be deleted`);
    }
    const assigned = async () =>
      (await this.db.query<{ n: number }>("select count(*)::int as n from organizations where plan_id = $1", [planId]))
        .rows[0]?.n ?? 0;
    let deleted: number;
    try {
      ({ rowCount: deleted } = await this.db.query(
        "delete from plans p where p.id = $1 and not exists (select 1 from organizations o where o.plan_id = p.id)",
        [planId],
      ));
    } catch (err) {
      // An assignment committed between the check and the delete: the foreign key refuses it.
      if ((err as { code?: string }).code !== "23503") throw err;
      deleted = 0;
    }
    if (deleted > 0) return { deleted: true };
    await this.getPlan(planId); // 404 when it never existed
    const organizations = await assigned();
    throw new ConflictError(`plan ${planId} is assigned to ${organizations} organization(s); move them first`, {
      details: { planId, organizations },
    });
  }

  /** The organization's effective plan (plan + overrides) and its current billing period. */
  async getEffectivePlan(organizationId: string): Promise<EffectivePlanView> {
    return this.view(organizationId, await effectivePlan(this.db, organizationId));
  }

  /**
   * Puts an organization on a plan (creating the organization if it is new), optionally moving its
   * billing anchor; effective for its quota checks when this returns.
   * @throws {ValidationError} for an unknown plan (issue code `unknown_plan`) or a malformed anchor
   */
  async assignPlan(organizationId: string, assignment: PlanAssignment): Promise<EffectivePlanView> {
    const a = parseInput(planAssignmentSchema, assignment, "plan assignment");
    return this.changeOrganization(organizationId, "plan_assigned", async (tx) => {
      // The plan row is locked until commit, so it cannot be deleted under the assignment.
      const plan = await tx.query("select 1 from plans where id = $1 for share", [a.planId]);
      if (plan.rowCount === 0) {
        throw new ValidationError("unknown plan", [
          { path: "planId", message: `no plan ${a.planId}`, code: "unknown_plan", in: "json" },
        ]);
      }
      await tx.query(
        "update organizations set plan_id = $2, billing_anchor = coalesce($3::timestamptz, billing_anchor), updated_at = now() where id = $1",
        [organizationId, a.planId, a.billingAnchor ?? null],
      );
    });
  }

  /**
   * Replaces the organization's overrides (an empty document removes them).
   * @param updatedBy - who changed them (the token's subject), kept with the row
   * @throws {ValidationError} for unknown metrics or bad numbers
   */
  async setOverrides(
    organizationId: string,
    overrides: PlanOverridesInput,
    updatedBy?: string,
  ): Promise<EffectivePlanView> {
    const o = parseInput(planOverridesSchema, overrides, "plan overrides");
    const empty = Object.keys(o.limits).length + Object.keys(o.included).length + Object.keys(o.prices).length === 0;
    return this.changeOrganization(organizationId, "overrides_changed", async (tx) => {
      if (empty) {
        await tx.query("delete from organization_plan_overrides where organization_id = $1", [organizationId]);
        return;
      }
      await tx.query(
        `insert into organization_plan_overrides (organization_id, limits, included, prices, updated_by) values ($1, $2, $3, $4, $5)
         on conflict (organization_id) do update set limits = excluded.limits, included = excluded.included,
           prices = excluded.prices, updated_by = excluded.updated_by, updated_at = now()`,
        [
          organizationId,
          JSON.stringify(o.limits),
          JSON.stringify(o.included),
          JSON.stringify(o.prices),
          updatedBy ?? null,
        ],
      );
    });
  }

  /**
   * One organization's change in one transaction: the organization row locked (so concurrent
   * changes apply in order and each event names the plan it replaced), the write, the event with
   * the resulting effective terms; then the object's cached plan is dropped.
   */
  private async changeOrganization(
    org: string,
    reason: PlanChangeReason,
    write: (tx: Queryable) => Promise<void>,
  ): Promise<EffectivePlanView> {
    const effective = await withTransaction(this.db, async (tx, outbox: EventBus) => {
      await ensureOrganizations(tx, [org]);
      const before = await tx.query<{ plan_id: string }>("select plan_id from organizations where id = $1 for update", [
        org,
      ]);
      await write(tx);
      const e = await effectivePlan(tx, org);
      await outbox.publish(
        planChangedEvent(org, reason, {
          planId: e.planId,
          previousPlanId: before.rows[0]?.plan_id ?? e.planId,
          billingAnchor: iso(e.billingAnchor),
          limits: e.limits,
          included: e.included,
          prices: e.prices,
          overridden: e.overridden,
        }),
      );
      return e;
    });
    await this.refresh([org]);
    return this.view(org, effective);
  }

  /**
   * Drops the cached plan of each organization's object. The change is committed by then; if an
   * object cannot be reached the caller gets a 503 and repeating the (idempotent) request refreshes it.
   */
  private async refresh(orgs: readonly string[]): Promise<void> {
    for (let i = 0; i < orgs.length; i += INVALIDATE_CONCURRENCY) {
      const results = await Promise.allSettled(
        orgs.slice(i, i + INVALIDATE_CONCURRENCY).map((org) => this.orgs(org).invalidate()),
      );
      const failed = results.find((r) => r.status === "rejected");
      if (failed) {
        throw new ServiceUnavailableError(
          "the change is saved, but an organization's quota cache was not refreshed; repeat the request",
          {
            cause: (failed as PromiseRejectedResult).reason,
            details: { saved: true },
          },
        );
      }
    }
  }

  private view(organizationId: string, e: EffectivePlan): EffectivePlanView {
    const period = billingPeriod(e.billingAnchor, new Date(this.now()));
    return {
      organizationId,
      planId: e.planId,
      planName: e.planName,
      billingAnchor: iso(e.billingAnchor),
      currentPeriod: { start: iso(period.start), end: iso(period.end) },
      limits: e.limits,
      included: e.included,
      prices: e.prices,
      plan: e.plan,
      overrides: e.overrides,
      overridden: e.overridden,
    };
  }
}

/** Why an organization's effective plan changed (`data.reason` of `organization.plan.changed`). */
export type PlanChangeReason = "plan_assigned" | "overrides_changed" | "plan_updated";

const stripNulls = (o: Partial<PlanOverrides>): Partial<PlanOverrides> =>
  Object.fromEntries(Object.entries({ limits: o.limits, included: o.included, prices: o.prices }).filter(([, v]) => v));

function planChangedEvent(
  org: string,
  reason: PlanChangeReason,
  data: PlanTerms & { planId: string; previousPlanId: string; billingAnchor: string; overridden: string[] },
) {
  return createEvent({
    type: "organization.plan.changed",
    organizationId: org,
    source: "/cloudmatrix-edge/usage",
    subject: `organizations/${org}/plan`,
    data: { reason, ...data },
  });
}
