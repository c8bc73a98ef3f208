import { createRoute, z } from "@hono/zod-openapi";
import { createRouter, requireScope } from "../platform/create-app.ts";
import { authErrors, errorEnvelopeSchema, jsonBody, jsonResponse } from "../platform/openapi.ts";
import { pageOptionsSchema } from "./schemas.ts";
import {
  effectivePlanSchema,
  planAssignmentSchema,
  planCreateSchema,
  planOverridesSchema,
  planSchema,
  planUpdateSchema,
} from "./plans.ts";
import { createPlanService } from "./service.ts";

/**
 * Plans for operators (scope `internal`: other CloudMatrix services, billing back office) and an
 * organization's view of its own effective plan (scope `admin`). Validation here, logic in
 * `PlanService` (plans.ts).
 */

const internal = requireScope("internal");
const admin = requireScope("admin");
const tags = ["plans"];
const org = z.object({ organizationId: z.string().min(1).max(200) });
const planParam = z.object({ planId: z.string().min(1).max(64) });
const conflict = (description: string) => ({
  409: { description, content: { "application/json": { schema: errorEnvelopeSchema } } },
});
const unavailable = {
  503: {
    description: "Saved, but an organization object could not be refreshed: repeat the request",
    content: { "application/json": { schema: errorEnvelopeSchema } },
  },
};

const createPlanRoute = createRoute({
  method: "post",
  path: "/v1/internal/plans",
  tags,
  middleware: [internal] as const,
  summary: "Create a plan: limits, included allowances and unit prices per metric (scope `internal`)",
  request: { body: jsonBody(planCreateSchema) },
  responses: { 201: jsonResponse(planSchema, "Created"), ...conflict("A plan with this id exists"), ...authErrors },
});
const listPlansRoute = createRoute({
  method: "get",
  path: "/v1/internal/plans",
  tags,
  middleware: [internal] as const,
  summary: "List plans, oldest first (scope `internal`)",
  request: { query: pageOptionsSchema },
  responses: {
    200: jsonResponse(
      z.object({ plans: z.array(planSchema), hasMore: z.boolean(), nextCursor: z.string().nullable() }),
      "A page",
    ),
    ...authErrors,
  },
});
const getPlanRoute = createRoute({
  method: "get",
  path: "/v1/internal/plans/{planId}",
  tags,
  middleware: [internal] as const,
  summary: "A plan (scope `internal`)",
  request: { params: planParam },
  responses: { 200: jsonResponse(planSchema, "The plan"), ...authErrors },
});
const updatePlanRoute = createRoute({
  method: "patch",
  path: "/v1/internal/plans/{planId}",
  tags,
  middleware: [internal] as const,
  summary:
    "Change a plan's name or terms; each field sent replaces the stored one, for every organization on the plan at once (scope `internal`)",
  request: { params: planParam, body: jsonBody(planUpdateSchema) },
  responses: { 200: jsonResponse(planSchema, "The plan"), ...unavailable, ...authErrors },
});
const deletePlanRoute = createRoute({
  method: "delete",
  path: "/v1/internal/plans/{planId}",
  tags,
  middleware: [internal] as const,
  summary: "Delete a plan no organization is on (scope `internal`)",
  request: { params: planParam },
  responses: {
    200: jsonResponse(z.object({ deleted: z.literal(true) }), "Deleted"),
    ...conflict("Organizations are on this plan (`details.organizations`), or it is the default plan"),
    ...authErrors,
  },
});
const getOrgPlanRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/plan",
  tags,
  middleware: [admin] as const,
  summary:
    "The organization's effective plan: its plan with its overrides merged, and which terms are overridden (scope `admin`)",
  request: { params: org },
  responses: { 200: jsonResponse(effectivePlanSchema, "Effective plan"), ...authErrors },
});
const assignPlanRoute = createRoute({
  method: "put",
  path: "/v1/orgs/{organizationId}/plan",
  tags,
  middleware: [internal] as const,
  summary:
    "Put the organization on a plan, optionally moving its billing anchor; effective immediately (scope `internal`)",
  request: { params: org, body: jsonBody(planAssignmentSchema) },
  responses: { 200: jsonResponse(effectivePlanSchema, "Effective plan"), ...unavailable, ...authErrors },
});
const putOverridesRoute = createRoute({
  method: "put",
  path: "/v1/orgs/{organizationId}/plan/overrides",
  tags,
  middleware: [internal] as const,
  summary: "Replace the organization's overrides of its plan's terms; effective immediately (scope `internal`)",
  request: { params: org, body: jsonBody(planOverridesSchema) },
  responses: { 200: jsonResponse(effectivePlanSchema, "Effective plan"), ...unavailable, ...authErrors },
});
const deleteOverridesRoute = createRoute({
  method: "delete",
  path: "/v1/orgs/{organizationId}/plan/overrides",
  tags,
  middleware: [internal] as const,
  summary: "Remove the organization's overrides: its plan's terms apply again (scope `internal`)",
  request: { params: org },
  responses: { 200: jsonResponse(effectivePlanSchema, "Effective plan"), ...unavailable, ...authErrors },
});

/** The plan API (operators: `internal`; an organization's own effective plan: `admin`). */
export const planRoutes = createRouter()
  .openapi(createPlanRoute, async (c) =>
    c.json(await createPlanService(c.var.platform).createPlan(c.req.valid("json")), 201),
  )
  .openapi(listPlansRoute, async (c) =>
    c.json(await createPlanService(c.var.platform).listPlans(c.req.valid("query")), 200),
  )
  .openapi(getPlanRoute, async (c) =>
    c.json(await createPlanService(c.var.platform).getPlan(c.req.valid("param").planId), 200),
  )
  .openapi(updatePlanRoute, async (c) =>
    c.json(await createPlanService(c.var.platform).updatePlan(c.req.valid("param").planId, c.req.valid("json")), 200),
  )
  .openapi(deletePlanRoute, async (c) =>
    c.json(await createPlanService(c.var.platform).deletePlan(c.req.valid("param").planId), 200),
  )
  .openapi(getOrgPlanRoute, async (c) =>
    c.json(await createPlanService(c.var.platform).getEffectivePlan(c.req.valid("param").organizationId), 200),
  )
  .openapi(assignPlanRoute, async (c) =>
    c.json(
      await createPlanService(c.var.platform).assignPlan(c.req.valid("param").organizationId, c.req.valid("json")),
      200,
    ),
  )
  .openapi(putOverridesRoute, async (c) =>
    c.json(
      await createPlanService(c.var.platform).setOverrides(
        c.req.valid("param").organizationId,
        c.req.valid("json"),
        c.var.principal.userId,
      ),
      200,
    ),
  )
  .openapi(deleteOverridesRoute, async (c) =>
    c.json(
      await createPlanService(c.var.platform).setOverrides(
        c.req.valid("param").organizationId,
        {},
        c.var.principal.userId,
      ),
      200,
    ),
  );
