import { z } from "@hono/zod-openapi";
import { isKnownPattern } from "../events/catalog.ts";
import { effectiveSettingsSchema, settingsOverridesSchema } from "./settings.ts";

/**
 * The seed's webhook data models as zod schemas: one definition gives request validation, the
 * OpenAPI document and the TypeScript types used by the service, the routes and the Durable Object.
 */

const id = z.string().min(1).max(200);

/** Header names the platform sets itself; custom headers may not override them. */
export const RESERVED_HEADERS = [
  "webhook-id",
  "webhook-timestamp",
  "webhook-signature",
  "host",
  "content-length",
  "content-type",
  "transfer-encoding",
  "connection",
  "user-agent",
];
const RESERVED_PREFIXES = ["webhook-", "cf-", "x-forwarded-", "x-real-ip", "proxy-"];

/** Custom headers: ≤ 20, token names, printable values ≤ 1 KiB, ≤ 8 KiB in all, none reserved. */
export const customHeadersSchema = z
  .record(
    z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/, "not a valid header name"),
    z
      .string()
      .max(1024)
      .regex(/^[\t\x20-\x7e]*$/, "must be printable ASCII"),
  )
  .superRefine((h, ctx) => {
    const names = Object.keys(h);
    if (names.length > 20) ctx.addIssue({ code: "custom", message: "at most 20 custom headers" });
    if (names.reduce((n, k) => n + k.length + (h[k]?.length ?? 0), 0) > 8192)
      ctx.addIssue({ code: "custom", message: "custom headers exceed 8 KiB" });
    for (const name of names) {
      const lower = name.toLowerCase();
      if (RESERVED_HEADERS.includes(lower) || RESERVED_PREFIXES.some((p) => lower.startsWith(p))) {
        ctx.addIssue({
          code: "custom",
          path: [name],
          message: `header ${name} is set by the platform and cannot be overridden`,
        });
      }
    }
  });

/** Event type subscriptions: known types or wildcards (`*`, `team.*`). */
export const eventPatternsSchema = z
  .array(z.string().refine(isKnownPattern, { message: "unknown event type or pattern" }))
  .min(1)
  .max(100)
  .transform((list) => [...new Set(list)]);

/** Seed `WebhookRegistration`. */
export const webhookRegistrationSchema = z
  .object({
    organizationId: id,
    url: z.string().min(1).max(2048),
    events: eventPatternsSchema,
    description: z.string().max(1000).default(""),
    headers: customHeadersSchema.default({}),
    settings: settingsOverridesSchema.optional().openapi({ description: "per-endpoint delivery settings" }),
    notificationEmail: z.email().max(320).optional().openapi({
      description: "who is told when the endpoint is disabled automatically (default: the registering token's e-mail)",
    }),
    createdBy: id,
    /** The registering token's e-mail (set by the route, not the body). */
    createdByEmail: z.email().max(320).optional(),
  })
  .openapi("WebhookRegistration");
/** Input of `registerWebhook`. */
export type WebhookRegistration = z.input<typeof webhookRegistrationSchema>;

/** Seed `WebhookUpdate`. */
export const webhookUpdateSchema = z
  .object({
    url: z.string().min(1).max(2048).optional(),
    events: eventPatternsSchema.optional(),
    active: z.boolean().optional(),
    description: z.string().max(1000).optional(),
    headers: customHeadersSchema.optional(),
    rotateSecret: z.boolean().optional(),
    settings: settingsOverridesSchema.optional().openapi({ description: "overrides to change; null resets a key" }),
    notificationEmail: z.email().max(320).nullable().optional(),
  })
  .strict()
  .openapi("WebhookUpdate");
/** Input of `updateWebhook`. */
export type WebhookUpdate = z.input<typeof webhookUpdateSchema>;

/**
 * Seed `WebhookStats`. Deliveries are counted by their current state, attempts per attempt: a
 * resend adds an attempt, not a delivery; a failed delivery recovered to success moves from
 * `failedDeliveries` to `successfulDeliveries`.
 */
export const webhookStatsSchema = z
  .object({
    totalDeliveries: z.number().int().openapi({ description: "deliveries attempted at least once" }),
    successfulDeliveries: z.number().int().openapi({ description: "deliveries whose current status is succeeded" }),
    failedDeliveries: z.number().int().openapi({ description: "deliveries whose current status is failed" }),
    attempts: z.number().int().openapi({ description: "attempts in all (retries and resends included)" }),
    averageResponseTimeMs: z.number().openapi({ description: "mean response time per attempt" }),
    lastDeliveryAt: z.string().nullable(),
    lastDeliveryStatus: z.string().nullable(),
  })
  .openapi("WebhookStats");
/** Delivery statistics of a webhook. */
export type WebhookStats = z.infer<typeof webhookStatsSchema>;

/** Seed `Webhook` (the secret is masked except on creation and `GET …/secret`). */
export const webhookSchema = z
  .object({
    id: z.string(),
    organizationId: z.string(),
    url: z.string(),
    events: z.array(z.string()),
    secret: z.string(),
    active: z.boolean(),
    disabledReason: z.string().nullable(),
    description: z.string(),
    headers: z.record(z.string(), z.string()),
    settings: effectiveSettingsSchema,
    notificationEmail: z.string().nullable(),
    lastSequence: z.number().int().openapi({ description: "the sequence number of its latest delivery" }),
    blockedBy: z
      .object({
        deliveryId: z.string(),
        sequence: z.number().int().nullable(),
        attempts: z.number().int(),
        lastError: z.string().nullable(),
        nextAttemptAt: z.string(),
      })
      .nullable()
      .optional()
      .openapi({ description: "ordered mode: the failing head every later delivery waits for" }),
    createdBy: z.string(),
    createdAt: z.string(),
    updatedAt: z.string(),
    stats: webhookStatsSchema,
  })
  .openapi("Webhook");
/** A registered endpoint. */
export type Webhook = z.infer<typeof webhookSchema>;

/** Seed `WebhookEvent`. */
export const webhookEventSchema = z
  .object({
    eventId: id,
    eventType: z.string().refine((t) => isKnownPattern(t) && !t.includes("*"), { message: "unknown event type" }),
    organizationId: id,
    data: z.record(z.string(), z.unknown()).default({}),
    occurredAt: z.iso.datetime({ offset: true }),
  })
  .openapi("WebhookEvent");
/** An event to deliver. */
export type WebhookEvent = z.input<typeof webhookEventSchema>;

/**
 * Delivery statuses: `pending` (queued in its endpoint object, retrying), `in_progress` (in the
 * model, not written), `succeeded`, `failed` (retries exhausted, or the URL refused), `cancelled`
 * (webhook deleted), `held` (the event arrived while the webhook was disabled: recorded, not sent;
 * `recover` sends it).
 */
export const deliveryStatuses = ["pending", "in_progress", "succeeded", "failed", "cancelled", "held"] as const;

/** Seed `Delivery`. */
export const deliverySchema = z
  .object({
    id: z.string(),
    webhookId: z.string(),
    eventId: z.string(),
    eventType: z.string(),
    status: z.enum(deliveryStatuses).openapi({ description: "held: arrived while the webhook was disabled" }),
    sequence: z.number().int().optional().openapi({ description: "the endpoint's gap-free number (webhook-sequence)" }),
    attemptNumber: z.number().int(),
    scheduledAt: z.string(),
    attemptedAt: z.string().optional(),
    responseStatus: z.number().int().optional(),
    responseTimeMs: z.number().int().optional(),
    errorMessage: z.string().optional(),
    createdAt: z.string(),
  })
  .openapi("Delivery");
/** One delivery of one event to one webhook. */
export type Delivery = z.infer<typeof deliverySchema>;

/** Seed `DeliveryResult`. */
export const deliveryResultSchema = z
  .object({
    deliveryId: z.string(),
    success: z.boolean(),
    statusCode: z.number().int().optional(),
    responseTimeMs: z.number(),
    error: z.string().optional(),
    willRetry: z.boolean(),
    nextRetryAt: z.string().optional(),
  })
  .openapi("DeliveryResult");
/** Outcome of one attempt. */
export type DeliveryResult = z.infer<typeof deliveryResultSchema>;

/** Seed `EventDeliveryStatus`. */
export const eventDeliveryStatusSchema = z
  .object({
    eventId: z.string(),
    deliveries: z.array(deliverySchema),
    summary: z.record(z.string(), z.object({ status: z.enum(deliveryStatuses), attempts: z.number().int() })),
  })
  .openapi("EventDeliveryStatus");
/** Every delivery of one event. */
export type EventDeliveryStatus = z.infer<typeof eventDeliveryStatusSchema>;

/** Seed `CircuitState`. */
export const circuitStateSchema = z
  .object({
    webhookId: z.string(),
    state: z.enum(["closed", "open", "half_open"]),
    failureCount: z.number().int(),
    successCount: z.number().int(),
    lastFailure: z.string().optional(),
    openedAt: z.string().optional(),
    halfOpenAt: z.string().optional(),
  })
  .openapi("CircuitState");

/** An endpoint as the list shows it: with its breaker when asked (`includeCircuit=true`). */
export const listedWebhookSchema = webhookSchema
  .extend({ circuit: circuitStateSchema.optional().openapi({ description: "with includeCircuit=true" }) })
  .openapi("ListedWebhook");
/** An endpoint of a list. */
export type ListedWebhook = z.infer<typeof listedWebhookSchema>;

/** Error classes of attempts (the health timeline's columns). */
export const errorTypes = [
  "timeout",
  "connection",
  "http_3xx",
  "http_4xx",
  "http_5xx",
  "ssrf_blocked",
  "invalid_response",
] as const;

/** One hour of a webhook's attempts. */
export const healthBucketSchema = z
  .object({
    hour: z.string().openapi({ description: "start of the hour (UTC)" }),
    attempts: z.number().int(),
    succeeded: z.number().int(),
    p50LatencyMs: z.number(),
    p95LatencyMs: z.number(),
    p99LatencyMs: z.number(),
    errors: z.object(
      Object.fromEntries(errorTypes.map((t) => [t, z.number().int()])) as Record<
        (typeof errorTypes)[number],
        z.ZodNumber
      >,
    ),
  })
  .openapi("WebhookHealthBucket");

/** Seed `WebhookHealthMetrics`, plus an hourly timeline (errors by type, latency percentiles). */
export const healthMetricsSchema = z
  .object({
    successRate: z.number(),
    averageLatencyMs: z.number(),
    p95LatencyMs: z.number(),
    p99LatencyMs: z.number(),
    deliveriesInPeriod: z.number().int(),
    errorBreakdown: z.array(
      z.object({ type: z.string(), count: z.number().int(), lastMessage: z.string().nullable() }),
    ),
    timeline: z.array(healthBucketSchema).openapi({ description: "hours with attempts, oldest first" }),
  })
  .openapi("WebhookHealthMetrics");
/** Health of a webhook over a time range. */
export type WebhookHealthMetrics = z.infer<typeof healthMetricsSchema>;

/** Options of `listWebhooks`. */
export const listOptionsSchema = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
  active: z
    .enum(["true", "false"])
    .transform((v) => v === "true")
    .optional(),
  includeCircuit: z
    .enum(["true", "false"])
    .transform((v) => v === "true")
    .optional()
    .openapi({ description: "each endpoint with its circuit breaker (as `GET …/circuit` answers)" }),
});

/** Options of `getDeliveryHistory`: a page (cursor) of the deliveries that match every filter given. */
export const historyOptionsSchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(20),
    cursor: z.string().max(200).optional(),
    status: z.enum(deliveryStatuses).optional(),
    eventType: z
      .string()
      .max(200)
      .refine(isKnownPattern, { message: "unknown event type or pattern" })
      .optional()
      .openapi({ description: "an event type or a pattern (`team.*`)" }),
    since: z.iso.datetime({ offset: true }).optional().openapi({ description: "created at or after" }),
    until: z.iso.datetime({ offset: true }).optional().openapi({ description: "created before" }),
  })
  .refine((o) => !o.since || !o.until || Date.parse(o.since) < Date.parse(o.until), {
    message: "since must be before until",
    path: ["until"],
  });

/** Time range of `getHealthMetrics` (default: the last 24 h; at most 90 days: the timeline is hourly). */
export const timeRangeSchema = z
  .object({ from: z.iso.datetime({ offset: true }).optional(), to: z.iso.datetime({ offset: true }).optional() })
  .refine((r) => !r.from || !r.to || Date.parse(r.from) < Date.parse(r.to), { message: "from must be before to" })
  .refine((r) => !r.from || !r.to || Date.parse(r.to) - Date.parse(r.from) <= 90 * 86_400_000, {
    message: "the range may span at most 90 days",
  });

/** Statuses `recover` can take back. */
export const recoverableStatuses = ["failed", "held", "succeeded"] as const;

/** Body of `recover`: which deliveries to send again, each on a fresh retry schedule. */
export const recoverSchema = z
  .object({
    since: z.iso.datetime({ offset: true }).openapi({ description: "deliveries created at or after" }),
    until: z.iso.datetime({ offset: true }).optional().openapi({ description: "…and before (default: now)" }),
    eventTypes: eventPatternsSchema.optional().openapi({ description: "types or patterns (default: all)" }),
    status: z
      .array(z.enum(recoverableStatuses))
      .min(1)
      .optional()
      .openapi({ description: "default [failed, held]; succeeded resends" }),
  })
  .strict()
  .refine((r) => !r.until || Date.parse(r.since) < Date.parse(r.until), {
    message: "since must be before until",
    path: ["until"],
  })
  .openapi("RecoverRequest");
/** Input of `recoverFailed`'s filter. */
export type RecoverFilter = z.infer<typeof recoverSchema>;

/** One attempt of a delivery, as the attempt log shows it. */
export const attemptSchema = z
  .object({
    attemptNumber: z.number().int(),
    attemptedAt: z.string(),
    success: z.boolean(),
    latencyMs: z.number().int(),
    requestHeaders: z.record(z.string(), z.string()).openapi({ description: "as sent; signature redacted" }),
    responseStatus: z.number().int().nullable(),
    responseHeaders: z.record(z.string(), z.string()),
    responseBody: z.string().nullable().openapi({ description: "the first 16 KiB" }),
    errorType: z.enum(errorTypes).nullable(),
    errorMessage: z.string().nullable(),
  })
  .openapi("DeliveryAttempt");
/** One attempt of a delivery. */
export type DeliveryAttempt = z.infer<typeof attemptSchema>;

/** Options of the attempt log. */
export const attemptListOptionsSchema = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(50),
});
