import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../platform/create-app.ts";
import { createRouter, requireScope } from "../platform/create-app.ts";
import { NotFoundError, ValidationError } from "../platform/errors.ts";
import { idempotent } from "../platform/idempotency.ts";
import { authErrors, jsonBody, jsonResponse } from "../platform/openapi.ts";
import { describeEventTypes } from "../events/catalog.ts";
import {
  attemptListOptionsSchema,
  attemptSchema,
  circuitStateSchema,
  deliveryResultSchema,
  deliverySchema,
  eventDeliveryStatusSchema,
  healthMetricsSchema,
  historyOptionsSchema,
  listedWebhookSchema,
  listOptionsSchema,
  recoverSchema,
  timeRangeSchema,
  webhookEventSchema,
  webhookRegistrationSchema,
  webhookSchema,
  webhookUpdateSchema,
} from "./schemas.ts";
import { createWebhookService } from "./service.ts";

const org = z.object({ organizationId: z.string().min(1).max(200) });
const orgWebhook = org.extend({ webhookId: z.string().min(1).max(200) });
const read = requireScope("webhooks:read");
const write = requireScope("webhooks:write");
const tags = ["webhooks"];

/** Loads the webhook and hides other organizations' webhooks behind a 404. */
async function owned(c: Context<AppEnv>, organizationId: string, webhookId: string) {
  const svc = createWebhookService(c.var.platform);
  const webhook = await svc.getWebhook(webhookId);
  if (!webhook || webhook.organizationId !== organizationId) throw new NotFoundError(`webhook ${webhookId} not found`);
  return { svc, webhook };
}

const registerRoute = createRoute({
  method: "post",
  path: "/v1/orgs/{organizationId}/webhooks",
  tags,
  middleware: [write, idempotent()] as const,
  summary: "Register an endpoint (the response shows its secret)",
  request: {
    params: org,
    body: jsonBody(webhookRegistrationSchema.omit({ organizationId: true, createdBy: true, createdByEmail: true })),
  },
  responses: { 201: jsonResponse(webhookSchema, "Registered"), ...authErrors },
});
const listRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/webhooks",
  tags,
  middleware: [read] as const,
  summary: "List endpoints (with includeCircuit=true, each with its circuit breaker)",
  request: { params: org, query: listOptionsSchema },
  responses: {
    200: jsonResponse(
      z.object({
        webhooks: z.array(listedWebhookSchema),
        total: z.number().int(),
        hasMore: z.boolean(),
        nextCursor: z.string().nullable(),
      }),
      "A page",
    ),
    ...authErrors,
  },
});
const getRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/webhooks/{webhookId}",
  tags,
  middleware: [read] as const,
  summary: "Get an endpoint (secret masked)",
  request: { params: orgWebhook },
  responses: { 200: jsonResponse(webhookSchema, "The endpoint"), ...authErrors },
});
const secretRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/webhooks/{webhookId}/secret",
  tags,
  middleware: [write] as const,
  summary: "Reveal the signing secret (scope webhooks:write)",
  request: { params: orgWebhook },
  responses: {
    200: jsonResponse(z.object({ secret: z.string(), previousSecretExpiresAt: z.string().nullable() }), "The secret"),
    ...authErrors,
  },
});
const updateRoute = createRoute({
  method: "patch",
  path: "/v1/orgs/{organizationId}/webhooks/{webhookId}",
  tags,
  middleware: [write] as const,
  summary: "Update an endpoint (rotateSecret keeps the old secret signing for the overlap)",
  request: { params: orgWebhook, body: jsonBody(webhookUpdateSchema) },
  responses: { 200: jsonResponse(webhookSchema, "Updated"), ...authErrors },
});
const deleteRoute = createRoute({
  method: "delete",
  path: "/v1/orgs/{organizationId}/webhooks/{webhookId}",
  tags,
  middleware: [write] as const,
  summary: "Delete an endpoint and cancel its pending deliveries",
  request: { params: orgWebhook },
  responses: {
    200: jsonResponse(z.object({ deleted: z.boolean(), cancelledDeliveries: z.number().int() }), "Deleted"),
    ...authErrors,
  },
});
const testRoute = createRoute({
  method: "post",
  path: "/v1/orgs/{organizationId}/webhooks/{webhookId}/test",
  tags,
  middleware: [write, idempotent()] as const,
  summary: "Send a webhook.test event now",
  request: { params: orgWebhook },
  responses: { 200: jsonResponse(deliveryResultSchema, "The attempt"), ...authErrors },
});
const historyRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/webhooks/{webhookId}/deliveries",
  tags,
  middleware: [read] as const,
  summary: "Delivery history, newest first",
  request: { params: orgWebhook, query: historyOptionsSchema },
  responses: {
    200: jsonResponse(
      z.object({
        deliveries: z.array(deliverySchema),
        total: z.number().int(),
        hasMore: z.boolean(),
        nextCursor: z.string().nullable(),
      }),
      "A page",
    ),
    ...authErrors,
  },
});
const circuitRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/webhooks/{webhookId}/circuit",
  tags,
  middleware: [read] as const,
  summary: "Circuit breaker state",
  request: { params: orgWebhook },
  responses: { 200: jsonResponse(circuitStateSchema, "The breaker"), ...authErrors },
});
const resetRoute = createRoute({
  method: "post",
  path: "/v1/orgs/{organizationId}/webhooks/{webhookId}/circuit/reset",
  tags,
  middleware: [write] as const,
  summary: "Close the breaker by hand",
  request: { params: orgWebhook },
  responses: { 200: jsonResponse(z.object({ reset: z.boolean() }), "Reset"), ...authErrors },
});
const healthRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/webhooks/{webhookId}/health",
  tags,
  middleware: [read] as const,
  summary: "Success rate, latency percentiles, errors by type",
  request: { params: orgWebhook, query: timeRangeSchema },
  responses: { 200: jsonResponse(healthMetricsSchema, "Health"), ...authErrors },
});
const recoverRoute = createRoute({
  method: "post",
  path: "/v1/orgs/{organizationId}/webhooks/{webhookId}/recover",
  tags,
  middleware: [write, idempotent()] as const,
  summary: "Requeue deliveries (default: failed and held) created in a range, each with a fresh retry schedule",
  request: { params: orgWebhook, body: jsonBody(recoverSchema) },
  responses: { 202: jsonResponse(z.object({ requeued: z.number().int() }), "Requeued"), ...authErrors },
});
const enqueueRoute = createRoute({
  method: "post",
  path: "/v1/orgs/{organizationId}/webhook-events",
  tags,
  middleware: [write, idempotent()] as const,
  summary: "Deliver an event to every matching endpoint",
  request: { params: org, body: jsonBody(webhookEventSchema.partial({ organizationId: true })) },
  responses: {
    202: jsonResponse(z.object({ queued: z.number().int(), webhookIds: z.array(z.string()) }), "Queued"),
    ...authErrors,
  },
});
const eventStatusRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/webhook-events/{eventId}/deliveries",
  tags,
  middleware: [read] as const,
  summary: "Every delivery of an event",
  request: { params: org.extend({ eventId: z.string().min(1).max(200) }) },
  responses: { 200: jsonResponse(eventDeliveryStatusSchema, "Deliveries"), ...authErrors },
});
const retryRoute = createRoute({
  method: "post",
  path: "/v1/orgs/{organizationId}/deliveries/{deliveryId}/retry",
  tags,
  middleware: [write, idempotent()] as const,
  summary: "Retry (or resend) a delivery now",
  request: { params: org.extend({ deliveryId: z.string().min(1).max(200) }) },
  responses: { 200: jsonResponse(deliveryResultSchema, "The attempt"), ...authErrors },
});

const attemptsRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/deliveries/{deliveryId}/attempts",
  tags,
  middleware: [read] as const,
  summary: "Every attempt of a delivery: request headers (signature redacted), response, latency, error class",
  request: { params: org.extend({ deliveryId: z.string().min(1).max(200) }), query: attemptListOptionsSchema },
  responses: {
    200: jsonResponse(z.object({ deliveryId: z.string(), attempts: z.array(attemptSchema) }), "The attempts"),
    ...authErrors,
  },
});

const eventTypeSchema = z
  .object({
    type: z.string(),
    description: z.string(),
    schema: z.record(z.string(), z.unknown()).openapi({ description: "JSON Schema (2020-12) of the event's data" }),
    example: z.record(z.string(), z.unknown()),
  })
  .openapi("EventTypeDescription");
const eventTypesRoute = createRoute({
  method: "get",
  path: "/v1/event-types",
  tags,
  middleware: [read] as const,
  summary: "Every event type the platform emits: description, JSON Schema of data, example",
  responses: { 200: jsonResponse(z.object({ eventTypes: z.array(eventTypeSchema) }), "The catalog"), ...authErrors },
});

/** The organization and webhook of a delivery, or a 404 for another organization's. */
async function ownedDelivery(c: Context<AppEnv>, organizationId: string, deliveryId: string) {
  const svc = createWebhookService(c.var.platform);
  const owner = await svc.findDeliveryOwner(deliveryId);
  if (!owner || owner.organizationId !== organizationId) throw new NotFoundError(`delivery ${deliveryId} not found`);
  return svc;
}

/** The webhook HTTP API (organization-scoped; scopes `webhooks:read` / `webhooks:write`). */
export const webhookRoutes = createRouter()
  .openapi(registerRoute, async (c) => {
    const { organizationId } = c.req.valid("param");
    const webhook = await createWebhookService(c.var.platform).registerWebhook({
      ...c.req.valid("json"),
      organizationId,
      createdBy: c.var.principal.userId,
      ...(c.var.principal.email ? { createdByEmail: c.var.principal.email } : {}),
    });
    return c.json(webhook, 201);
  })
  .openapi(listRoute, async (c) => {
    const q = c.req.valid("query");
    return c.json(await createWebhookService(c.var.platform).listWebhooks(c.req.valid("param").organizationId, q), 200);
  })
  .openapi(getRoute, async (c) => {
    const { organizationId, webhookId } = c.req.valid("param");
    return c.json((await owned(c, organizationId, webhookId)).webhook, 200);
  })
  .openapi(secretRoute, async (c) => {
    const { organizationId, webhookId } = c.req.valid("param");
    const { svc } = await owned(c, organizationId, webhookId);
    return c.json(await svc.getWebhookSecret(webhookId), 200);
  })
  .openapi(updateRoute, async (c) => {
    const { organizationId, webhookId } = c.req.valid("param");
    const { svc } = await owned(c, organizationId, webhookId);
    return c.json(await svc.updateWebhook(webhookId, c.req.valid("json")), 200);
  })
  .openapi(deleteRoute, async (c) => {
    const { organizationId, webhookId } = c.req.valid("param");
    const { svc } = await owned(c, organizationId, webhookId);
    return c.json(await svc.deleteWebhook(webhookId), 200);
  })
  .openapi(testRoute, async (c) => {
    const { organizationId, webhookId } = c.req.valid("param");
    const { svc } = await owned(c, organizationId, webhookId);
    return c.json(await svc.sendTestEvent(webhookId), 200);
  })
  .openapi(historyRoute, async (c) => {
    const { organizationId, webhookId } = c.req.valid("param");
    const { svc } = await owned(c, organizationId, webhookId);
    return c.json(await svc.getDeliveryHistory(webhookId, c.req.valid("query")), 200);
  })
  .openapi(circuitRoute, async (c) => {
    const { organizationId, webhookId } = c.req.valid("param");
    // The tenancy check is the service's: it can answer from the endpoint's object while Postgres is down.
    return c.json(await createWebhookService(c.var.platform).getCircuitState(webhookId, organizationId), 200);
  })
  .openapi(resetRoute, async (c) => {
    const { organizationId, webhookId } = c.req.valid("param");
    const { svc } = await owned(c, organizationId, webhookId);
    return c.json(await svc.resetCircuit(webhookId), 200);
  })
  .openapi(healthRoute, async (c) => {
    const { organizationId, webhookId } = c.req.valid("param");
    const { svc } = await owned(c, organizationId, webhookId);
    return c.json(await svc.getHealthMetrics(webhookId, c.req.valid("query")), 200);
  })
  .openapi(recoverRoute, async (c) => {
    const { organizationId, webhookId } = c.req.valid("param");
    const { svc } = await owned(c, organizationId, webhookId);
    return c.json(await svc.recoverFailed(webhookId, c.req.valid("json")), 202);
  })
  .openapi(enqueueRoute, async (c) => {
    const { organizationId } = c.req.valid("param");
    const body = c.req.valid("json");
    if (body.organizationId !== undefined && body.organizationId !== organizationId) {
      throw new ValidationError("organizationId does not match the path", [
        { path: "organizationId", message: "must equal the organization in the path", in: "json" },
      ]);
    }
    return c.json(await createWebhookService(c.var.platform).enqueueEvent({ ...body, organizationId }), 202);
  })
  .openapi(eventStatusRoute, async (c) => {
    const { organizationId, eventId } = c.req.valid("param");
    return c.json(await createWebhookService(c.var.platform).getEventDeliveryStatus(eventId, { organizationId }), 200);
  })
  .openapi(retryRoute, async (c) => {
    const { organizationId, deliveryId } = c.req.valid("param");
    const svc = await ownedDelivery(c, organizationId, deliveryId);
    return c.json(await svc.retryDelivery(deliveryId), 200);
  })
  .openapi(attemptsRoute, async (c) => {
    const { organizationId, deliveryId } = c.req.valid("param");
    const svc = await ownedDelivery(c, organizationId, deliveryId);
    return c.json({ deliveryId, attempts: await svc.getDeliveryAttempts(deliveryId, c.req.valid("query")) }, 200);
  })
  .openapi(eventTypesRoute, (c) => c.json({ eventTypes: describeEventTypes() }, 200));
