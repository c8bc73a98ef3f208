import { z } from "@hono/zod-openapi";
import { isMetricType, metricTypes, usageEventTypes } from "./metrics.ts";
import { isTimeZone } from "./periods.ts";
import { storableJson } from "../platform/validation.ts";

/** The seed's usage data models as zod schemas (validation, OpenAPI and types from one place). */

const id = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\w.:@/-]+$/, "letters, digits and _ . : @ / - only");

/** Largest serialised `metadata` per event. */
export const MAX_METADATA_BYTES = 4096;

/** Seed `UsageEvent` (timestamp bounds are checked against the clock by {@link validateUsageEvent}). */
export const usageEventSchema = z
  .object({
    eventId: id,
    organizationId: id,
    userId: id.optional(),
    eventType: z.enum(usageEventTypes),
    resourceId: id.optional(),
    resourceType: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[a-z][a-z0-9_]*$/, "lower_snake_case")
      .optional(),
    quantity: z
      .number()
      .finite()
      .nonnegative()
      .max(1e15)
      .default(1)
      .describe("Amount metered, a decimal summed exactly (ten events of 0.1 total 1)"),
    metadata: z
      .record(z.string(), z.unknown())
      .default({})
      .refine((m) => JSON.stringify(m).length <= MAX_METADATA_BYTES, {
        message: `metadata exceeds ${MAX_METADATA_BYTES} bytes`,
      })
      .refine(storableJson.check, { message: storableJson.message }),
    timestamp: z.coerce.date(),
  })
  .openapi("UsageEvent");
/** A usage event as accepted (input form). */
export type UsageEventInput = z.input<typeof usageEventSchema>;
/** A validated usage event. */
export type UsageEvent = z.infer<typeof usageEventSchema>;

/** Seed `AggregationQuery` (+ `timeZone`). */
export const aggregationQuerySchema = z
  .object({
    startTime: z.coerce.date(),
    endTime: z.coerce.date(),
    granularity: z.enum(["minute", "hour", "day", "month"]),
    metricTypes: z
      .array(z.string().refine(isMetricType, { message: `unknown metric type; known: ${metricTypes.join(", ")}` }))
      .min(1)
      .max(20),
    dimensions: z
      .array(z.enum(["resourceType", "userId", "resourceId"]))
      .max(2)
      .optional(),
    timeZone: z.string().refine(isTimeZone, { message: "unknown IANA time zone" }).default("UTC"),
  })
  .refine((q) => q.startTime < q.endTime, { message: "startTime must be before endTime", path: ["endTime"] })
  .openapi("AggregationQuery");
/** A query (input form). */
export type AggregationQuery = z.input<typeof aggregationQuerySchema>;

/** Seed `MetricDataPoint`. */
export const metricDataPointSchema = z
  .object({
    timestamp: z.string(),
    metricType: z.string(),
    value: z.number(),
    dimensions: z.record(z.string(), z.string()),
  })
  .openapi("MetricDataPoint");
/** One value of one metric in one bucket. */
export type MetricDataPoint = z.infer<typeof metricDataPointSchema>;

/** Seed `AggregatedMetrics`. */
export const aggregatedMetricsSchema = z
  .object({
    organizationId: z.string(),
    startTime: z.string(),
    endTime: z.string(),
    granularity: z.string(),
    timeZone: z.string(),
    dataPoints: z.array(metricDataPointSchema),
    totals: z.record(z.string(), z.number()),
    source: z.string(),
  })
  .openapi("AggregatedMetrics");
/** Query result. */
export type AggregatedMetrics = z.infer<typeof aggregatedMetricsSchema>;

/** Seed `QuotaMetric`. */
export const quotaMetricSchema = z
  .object({
    metricType: z.string(),
    used: z.number(),
    limit: z.number().nullable(),
    percentage: z.number(),
    exceeded: z.boolean(),
    reserved: z.number(),
  })
  .openapi("QuotaMetric");
/** Usage against one limit (`limit: null` = unlimited). */
export type QuotaMetric = z.infer<typeof quotaMetricSchema>;

/** Seed `QuotaStatus`. */
export const quotaStatusSchema = z
  .object({
    organizationId: z.string(),
    plan: z.string(),
    metrics: z.array(quotaMetricSchema),
    periodStart: z.string(),
    periodEnd: z.string(),
  })
  .openapi("QuotaStatus");
/** Quota state of an organization. */
export type QuotaStatus = z.infer<typeof quotaStatusSchema>;

/** Seed `QuotaAlertConfig`. */
export const quotaAlertConfigSchema = z
  .object({
    metricType: z.enum(["api_calls", "storage", "documents", "collaborators"]),
    threshold: z.number().gt(0).max(100),
    notificationChannels: z
      .array(z.enum(["email", "webhook", "in_app"]))
      .min(1)
      .max(3)
      .transform((c) => [...new Set(c)]),
  })
  .openapi("QuotaAlertConfig");
/** An alert subscription (input form). */
export type QuotaAlertConfig = z.input<typeof quotaAlertConfigSchema>;

/** Seed `UsageReport` line item. */
export const lineItemSchema = z
  .object({
    metricType: z.string(),
    quantity: z.number(),
    included: z.number(),
    overage: z.number(),
    unitPrice: z.number(),
    amount: z.number(),
  })
  .openapi("UsageLineItem");
/** One billable line. */
export type LineItem = z.infer<typeof lineItemSchema>;

/** Seed `UsageReport` (+ revision, watermark and the change from the previous revision). */
export const usageReportSchema = z
  .object({
    reportId: z.string(),
    organizationId: z.string(),
    periodStart: z.string(),
    periodEnd: z.string(),
    revision: z.number().int(),
    asOf: z.string(),
    summary: z.record(z.string(), z.unknown()),
    lineItems: z.array(lineItemSchema),
    changes: z
      .array(
        z.object({
          metricType: z.string(),
          previousQuantity: z.number(),
          quantity: z.number(),
          previousAmount: z.number(),
          amount: z.number(),
        }),
      )
      .nullable(),
    generatedAt: z.string(),
  })
  .openapi("UsageReport");
/** A billing report revision. */
export type UsageReport = z.infer<typeof usageReportSchema>;

/** Seed `DashboardData`. */
export const dashboardSchema = z
  .object({
    currentPeriod: z.record(z.string(), z.unknown()),
    trends: z.record(z.string(), z.unknown()),
    topUsers: z.array(z.object({ userId: z.string(), events: z.number() })),
    topDocuments: z.array(z.object({ documentId: z.string(), events: z.number() })),
    realtime: z.object({ activeUsers: z.number().int(), openDocuments: z.number().int(), asOf: z.string() }),
    uniqueUsers: z.object({ today: z.number().int(), week: z.number().int(), month: z.number().int() }),
  })
  .openapi("DashboardData");
/** Dashboard data. */
export type DashboardData = z.infer<typeof dashboardSchema>;

/** What the ingest API answers (202): how many were accepted, known duplicates, rejected ones and why. */
export const ingestResultSchema = z
  .object({
    accepted: z.number().int(),
    duplicates: z.array(z.string()),
    rejected: z.array(
      z.object({
        index: z.number().int(),
        eventId: z.string().optional(),
        issues: z.array(z.object({ path: z.string(), message: z.string() })),
      }),
    ),
  })
  .openapi("IngestResult");
/** Result of `ingestEvents`. */
export type IngestResult = z.infer<typeof ingestResultSchema>;

// ── Operators: notifications and listings (plan schemas live in plans.ts, beside quota.ts) ──────

/** An in-app notification (usage alerts with the `in_app` channel, limits exceeded). */
export const notificationSchema = z
  .object({
    id: z.string(),
    kind: z.string(),
    title: z.string(),
    body: z.record(z.string(), z.unknown()),
    createdAt: z.string(),
    readAt: z.string().nullable(),
  })
  .openapi("Notification");
/** An in-app notification. */
export type Notification = z.infer<typeof notificationSchema>;

/** Page options of the listings (notifications, reports, revisions). */
export const pageOptionsSchema = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(500).optional(),
});
