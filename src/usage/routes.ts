import { createRoute, z } from "@hono/zod-openapi";
import { hasScope } from "../platform/auth.ts";
import { createRouter, requireScope } from "../platform/create-app.ts";
import { idempotent } from "../platform/idempotency.ts";
import { authErrors, jsonBody, jsonResponse } from "../platform/openapi.ts";
import { prefersCsv, reportCsv, reportCsvFilename } from "./reports.ts";
import {
  aggregatedMetricsSchema,
  dashboardSchema,
  ingestResultSchema,
  notificationSchema,
  pageOptionsSchema,
  quotaAlertConfigSchema,
  quotaStatusSchema,
  usageReportSchema,
} from "./schemas.ts";
import { createNotificationService, createUsageService } from "./service.ts";

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
    202: jsonResponse(ingestResultSchema, "Accepted for recording"),
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
const reportParams = org.extend({ reportId: z.string().min(1).max(200) });
const reportGetRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/usage/reports/{reportId}",
  tags,
  middleware: [read] as const,
  summary: "A stored report revision; its line items as CSV with `Accept: text/csv` or `?format=csv`",
  request: {
    params: reportParams,
    query: z.object({
      format: z.enum(["json", "csv"]).optional().openapi({ description: "Wins over the Accept header" }),
    }),
  },
  responses: {
    200: {
      description: "The report (JSON), or its line items (CSV, one row per metric, RFC 4180, with a header row)",
      content: {
        "application/json": { schema: usageReportSchema },
        "text/csv": { schema: z.string() },
      },
    },
    ...authErrors,
  },
});
const pageResponse = (description: string) =>
  jsonResponse(
    z.object({ reports: z.array(usageReportSchema), hasMore: z.boolean(), nextCursor: z.string().nullable() }),
    description,
  );
const reportListRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/usage/reports",
  tags,
  middleware: [read] as const,
  summary: "The organization's reports: the latest revision of each billing period, newest period first",
  request: { params: org, query: pageOptionsSchema },
  responses: { 200: pageResponse("A page"), ...authErrors },
});
const reportRevisionsRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/usage/reports/{reportId}/revisions",
  tags,
  middleware: [read] as const,
  summary: "Every revision of a report's period (any revision's id), newest first",
  request: { params: reportParams, query: pageOptionsSchema },
  responses: { 200: pageResponse("A page of revisions"), ...authErrors },
});
const notificationListRoute = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/usage/notifications",
  tags,
  middleware: [read] as const,
  summary: "In-app notifications (usage alerts), newest first",
  request: {
    params: org,
    query: pageOptionsSchema.extend({
      unread: z
        .enum(["true", "false"])
        .transform((v) => v === "true")
        .optional()
        .openapi({ description: "Only unread ones" }),
    }),
  },
  responses: {
    200: jsonResponse(
      z.object({
        notifications: z.array(notificationSchema),
        unreadCount: z.number().int(),
        hasMore: z.boolean(),
        nextCursor: z.string().nullable(),
      }),
      "A page",
    ),
    ...authErrors,
  },
});
const notificationReadRoute = createRoute({
  method: "post",
  path: "/v1/orgs/{organizationId}/usage/notifications/{notificationId}/read",
  tags,
  middleware: [write] as const,
  summary: "Mark a notification read (idempotent: it keeps its first read time)",
  request: { params: org.extend({ notificationId: z.string().min(1).max(20) }) },
  responses: { 200: jsonResponse(notificationSchema, "The notification"), ...authErrors },
});
const notificationReadAllRoute = createRoute({
  method: "post",
  path: "/v1/orgs/{organizationId}/usage/notifications/read-all",
  tags,
  middleware: [write] as const,
  summary: "Mark every unread notification read (up to `upToId`, when given)",
  request: {
    params: org,
    body: {
      required: false,
      content: {
        "application/json": {
          schema: z.strictObject({
            upToId: z
              .string()
              .max(20)
              .optional()
              .openapi({ description: "The newest notification the reader saw; later ones stay unread" }),
          }),
        },
      },
    },
  },
  responses: { 200: jsonResponse(z.object({ marked: z.number().int() }), "How many were marked"), ...authErrors },
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
    const body = c.req.valid("json");
    const list = Array.isArray(body)
      ? body
      : Array.isArray((body as { events?: unknown }).events)
        ? (body as { events: unknown[] }).events
        : [body];
    const internal = hasScope(c.var.principal, "internal");
    const result = await createUsageService(c.var.platform).ingestEvents(c.req.valid("param").organizationId, list, {
      internal,
    });
    return c.json(result, 202);
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
    const report = await createUsageService(c.var.platform).getUsageReport(organizationId, reportId);
    const format = c.req.valid("query").format ?? (prefersCsv(c.req.header("accept")) ? "csv" : "json");
    if (format === "json") return c.json(report, 200);
    return c.body(reportCsv(report), 200, {
      "content-type": "text/csv; charset=utf-8",
      "content-disposition": `attachment; filename="${reportCsvFilename(report)}"`,
      vary: "Accept",
    });
  })
  .openapi(reportListRoute, async (c) =>
    c.json(
      await createUsageService(c.var.platform).listUsageReports(
        c.req.valid("param").organizationId,
        c.req.valid("query"),
      ),
      200,
    ),
  )
  .openapi(reportRevisionsRoute, async (c) => {
    const { organizationId, reportId } = c.req.valid("param");
    return c.json(
      await createUsageService(c.var.platform).listUsageReportRevisions(organizationId, reportId, c.req.valid("query")),
      200,
    );
  })
  .openapi(notificationListRoute, async (c) =>
    c.json(
      await createNotificationService(c.var.platform).list(c.req.valid("param").organizationId, c.req.valid("query")),
      200,
    ),
  )
  .openapi(notificationReadRoute, async (c) => {
    const { organizationId, notificationId } = c.req.valid("param");
    return c.json(await createNotificationService(c.var.platform).markRead(organizationId, notificationId), 200);
  })
  .openapi(notificationReadAllRoute, async (c) =>
    c.json(
      await createNotificationService(c.var.platform).markAllRead(
        c.req.valid("param").organizationId,
        c.req.valid("json") ?? {},
      ),
      200,
    ),
  )
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
