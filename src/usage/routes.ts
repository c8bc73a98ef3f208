import { createRoute, z } from "@hono/zod-openapi";
import { hasScope } from "../platform/auth.ts";
import { createRouter, requireScope } from "../platform/create-app.ts";
import { RateLimitedError, ValidationError } from "../platform/errors.ts";
import type { FieldIssue } from "../platform/errors.ts";
import { idempotent } from "../platform/idempotency.ts";
import { authErrors, jsonBody, jsonResponse } from "../platform/openapi.ts";
import { chunkForQueue } from "../events/relay.ts";
import { slidingWindow } from "../platform/rate-limit.ts";
import type { UsageEvent } from "./schemas.ts";
import {
  aggregatedMetricsSchema,
  dashboardSchema,
  quotaAlertConfigSchema,
  quotaStatusSchema,
  usageReportSchema,
} from "./schemas.ts";
import { createUsageService, usageToCloudEvent } from "./service.ts";

const org = z.object({ organizationId: z.string().min(1).max(200) });
const read = requireScope("usage:read");
const write = requireScope("usage:write");
const tags = ["usage"];
const MAX_BATCH = 1000;

const ingestBody = z.union([
  z.array(z.unknown()).max(MAX_BATCH),
  z.object({ events: z.array(z.unknown()).max(MAX_BATCH) }),
  z.record(z.string(), z.unknown()),
]);
const ingestResult = z.object({
  accepted: z.number().int(),
  duplicates: z.array(z.string()),
  rejected: z.array(
    z.object({
      index: z.number().int(),
      eventId: z.string().optional(),
      issues: z.array(z.object({ path: z.string(), message: z.string() })),
    }),
  ),
});
const csv = (max: number) =>
  z
    .string()
    .transform((s) =>
      s
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.string()).max(max));

const ingestRoute = createRoute({
  method: "post",
  path: "/v1/orgs/{organizationId}/usage/events",
  tags,
  middleware: [write] as const,
  summary: "Record one usage event or a batch of up to 1,000 (valid ones are accepted, the rest reported)",
  request: {
    params: org,
    body: jsonBody(ingestBody.openapi({ description: "A UsageEvent, an array of them, or {events:[…]}" })),
  },
  responses: {
    202: jsonResponse(ingestResult, "Accepted for recording"),
    429: { description: "Rate limited (Retry-After)" },
    ...authErrors,
  },
});
const metricsRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/usage/metrics",
  tags,
  middleware: [read] as const,
  summary: "Aggregated metrics over a time range",
  request: {
    params: org,
    query: z.object({
      startTime: z.string(),
      endTime: z.string(),
      granularity: z.string(),
      metricTypes: csv(20),
      dimensions: csv(2).optional(),
      timeZone: z.string().optional(),
    }),
  },
  responses: { 200: jsonResponse(aggregatedMetricsSchema, "Metrics"), ...authErrors },
});
const quotaRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/usage/quota",
  tags,
  middleware: [read] as const,
  summary: "Quota status for the current billing period",
  request: { params: org },
  responses: { 200: jsonResponse(quotaStatusSchema, "Quota status"), ...authErrors },
});
const checkRoute = createRoute({
  method: "post",
  path: "/v1/orgs/{organizationId}/usage/quota/check",
  tags,
  middleware: [write] as const,
  summary: "Atomically check and reserve quota",
  request: { params: org, body: jsonBody(z.object({ metricType: z.string(), amount: z.number() })) },
  responses: {
    200: jsonResponse(
      z.object({ allowed: z.boolean(), remaining: z.number().nullable(), limit: z.number().nullable() }),
      "Decision (null = unlimited)",
    ),
    ...authErrors,
  },
});
const reportCreateRoute = createRoute({
  method: "post",
  path: "/v1/orgs/{organizationId}/usage/reports",
  tags,
  middleware: [write, idempotent()] as const,
  summary: "Generate a billing report (a new revision when data changed)",
  request: {
    params: org,
    body: jsonBody(
      z.object({ periodStart: z.iso.datetime({ offset: true }), periodEnd: z.iso.datetime({ offset: true }) }),
    ),
  },
  responses: { 201: jsonResponse(usageReportSchema, "The report"), ...authErrors },
});
const reportGetRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/usage/reports/{reportId}",
  tags,
  middleware: [read] as const,
  summary: "A stored report revision",
  request: { params: org.extend({ reportId: z.string().min(1).max(200) }) },
  responses: { 200: jsonResponse(usageReportSchema, "The report"), ...authErrors },
});
const dashboardRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/usage/dashboard",
  tags,
  middleware: [read] as const,
  summary: "Dashboard data",
  request: { params: org },
  responses: { 200: jsonResponse(dashboardSchema, "Dashboard"), ...authErrors },
});
const subscriptionSchema = z.object({
  subscriptionId: z.string(),
  metricType: z.string(),
  threshold: z.number(),
  notificationChannels: z.array(z.string()),
  createdAt: z.string(),
});
const alertCreateRoute = createRoute({
  method: "post",
  path: "/v1/orgs/{organizationId}/usage/alerts",
  tags,
  middleware: [write, idempotent()] as const,
  summary: "Subscribe to a quota threshold alert",
  request: { params: org, body: jsonBody(quotaAlertConfigSchema) },
  responses: { 201: jsonResponse(z.object({ subscriptionId: z.string() }), "Subscribed"), ...authErrors },
});
const alertListRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/usage/alerts",
  tags,
  middleware: [read] as const,
  summary: "Alert subscriptions",
  request: { params: org },
  responses: {
    200: jsonResponse(z.object({ subscriptions: z.array(subscriptionSchema) }), "Subscriptions"),
    ...authErrors,
  },
});
const alertDeleteRoute = createRoute({
  method: "delete",
  path: "/v1/orgs/{organizationId}/usage/alerts/{subscriptionId}",
  tags,
  middleware: [write] as const,
  summary: "Unsubscribe",
  request: { params: org.extend({ subscriptionId: z.string().min(1).max(200) }) },
  responses: { 200: jsonResponse(z.object({ deleted: z.boolean() }), "Deleted"), ...authErrors },
});

const finite = (n: number) => (Number.isFinite(n) ? n : null);

/** The usage HTTP API (scopes `usage:read` / `usage:write`). */
export const usageRoutes = createRouter()
  .openapi(ingestRoute, async (c) => {
    const { organizationId } = c.req.valid("param");
    const p = c.var.platform;
    const limit = await slidingWindow(
      p.redis,
      p.keys.key("usage", "rl", organizationId),
      p.config.usage.ingestRateLimitPerMinute,
      60_000,
    );
    if (!limit.allowed) throw new RateLimitedError("usage ingest rate limit exceeded", limit.retryAfterSeconds);
    const body = c.req.valid("json");
    const list = Array.isArray(body)
      ? body
      : Array.isArray((body as { events?: unknown }).events)
        ? (body as { events: unknown[] }).events
        : [body];
    if (list.length === 0) throw new ValidationError("no events", [{ path: "events", message: "at least one event" }]);
    const svc = createUsageService(p);
    const internal = hasScope(c.var.principal, "internal");
    const valid: UsageEvent[] = [];
    const rejected: { index: number; eventId?: string; issues: FieldIssue[] }[] = [];
    const seen = new Set<string>();
    for (const [index, raw] of list.entries()) {
      const input = raw && typeof raw === "object" ? { organizationId, ...(raw as object) } : raw;
      const v = svc.validate(input);
      if (!v.ok) {
        rejected.push({ index, eventId: v.eventId, issues: v.issues });
        continue;
      }
      if (v.event.organizationId !== organizationId && !internal) {
        rejected.push({
          index,
          eventId: v.event.eventId,
          issues: [
            { path: "organizationId", message: "must be the organization in the path (or use an internal token)" },
          ],
        });
        continue;
      }
      const key = `${v.event.organizationId}\u0000${v.event.eventId}`;
      if (!seen.has(key)) valid.push(v.event); // a duplicate inside the batch is recorded once
      seen.add(key);
    }
    if (valid.length === 0 && rejected.length > 0)
      throw new ValidationError(
        "no valid events",
        rejected.flatMap((r) => r.issues.map((i) => ({ ...i, path: `${r.index}.${i.path}` }))),
      );
    // Known duplicates (recorded and confirmed in Redis) are skipped; an unknown id always goes on.
    const dupes = new Set<string>();
    for (const o of new Set(valid.map((e) => e.organizationId))) {
      for (const id of await svc
        .knownDuplicates(
          o,
          valid.filter((e) => e.organizationId === o).map((e) => e.eventId),
        )
        .catch(() => new Set<string>()))
        dupes.add(`${o}\u0000${id}`);
    }
    const fresh = valid.filter((e) => !dupes.has(`${e.organizationId}\u0000${e.eventId}`));
    const queue = p.bindings.USAGE_EVENTS;
    if (!queue) throw new Error("USAGE_EVENTS queue binding missing");
    const messages = fresh.map((e) => JSON.stringify(usageToCloudEvent(e)));
    await Promise.all(
      chunkForQueue(messages, (m) => m.length).map((chunk) =>
        queue.sendBatch(chunk.map((body) => ({ body, contentType: "text" as const }))),
      ),
    );
    return c.json({ accepted: fresh.length, duplicates: [...dupes].map((k) => k.split("\u0000")[1]!), rejected }, 202);
  })
  .openapi(metricsRoute, async (c) => {
    const q = c.req.valid("query");
    const result = await createUsageService(c.var.platform).getAggregatedMetrics(c.req.valid("param").organizationId, {
      startTime: q.startTime,
      endTime: q.endTime,
      granularity: q.granularity as "hour",
      metricTypes: q.metricTypes,
      dimensions: q.dimensions as ("resourceType" | "userId" | "resourceId")[] | undefined,
      timeZone: q.timeZone,
    });
    return c.json(result, 200);
  })
  .openapi(quotaRoute, async (c) =>
    c.json(await createUsageService(c.var.platform).getQuotaStatus(c.req.valid("param").organizationId), 200),
  )
  .openapi(checkRoute, async (c) => {
    const { metricType, amount } = c.req.valid("json");
    const r = await createUsageService(c.var.platform).checkQuota(
      c.req.valid("param").organizationId,
      metricType,
      amount,
    );
    return c.json({ allowed: r.allowed, remaining: finite(r.remaining), limit: finite(r.limit) }, 200);
  })
  .openapi(reportCreateRoute, async (c) => {
    const b = c.req.valid("json");
    return c.json(
      await createUsageService(c.var.platform).generateUsageReport(
        c.req.valid("param").organizationId,
        new Date(b.periodStart),
        new Date(b.periodEnd),
      ),
      201,
    );
  })
  .openapi(reportGetRoute, async (c) => {
    const { organizationId, reportId } = c.req.valid("param");
    return c.json(await createUsageService(c.var.platform).getUsageReport(organizationId, reportId), 200);
  })
  .openapi(dashboardRoute, async (c) =>
    c.json(await createUsageService(c.var.platform).getDashboardData(c.req.valid("param").organizationId), 200),
  )
  .openapi(alertCreateRoute, async (c) => {
    const sub = await createUsageService(c.var.platform).subscribeToQuotaAlerts(
      c.req.valid("param").organizationId,
      c.req.valid("json"),
      {
        createdBy: c.var.principal.userId,
        notifyEmail: c.var.principal.email,
      },
    );
    return c.json(sub, 201);
  })
  .openapi(alertListRoute, async (c) =>
    c.json(
      { subscriptions: await createUsageService(c.var.platform).listQuotaAlerts(c.req.valid("param").organizationId) },
      200,
    ),
  )
  .openapi(alertDeleteRoute, async (c) => {
    const { organizationId, subscriptionId } = c.req.valid("param");
    return c.json(
      await createUsageService(c.var.platform).unsubscribeFromQuotaAlerts(organizationId, subscriptionId),
      200,
    );
  });
