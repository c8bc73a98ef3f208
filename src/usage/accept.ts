import type { FieldIssue } from "../platform/errors.ts";
import { unstorablePath, zodIssuesOf } from "../platform/validation.ts";
import { usageEventTypes } from "./metrics.ts";
import type { UsageEvent } from "./schemas.ts";
import { MAX_METADATA_BYTES, usageEventSchema } from "./schemas.ts";

/**
 * Acceptance of usage events — the one place their timestamps are judged against the clock. An
 * event is accepted (HTTP 202, or taken off RabbitMQ) only if its timestamp is neither more than
 * five minutes ahead nor older than the late-event horizon; once accepted it is counted, whatever
 * time it is when the aggregator gets to it, so later steps only check its shape.
 */

/** Outcome of checking one incoming event. */
export type ValidatedEvent = { ok: true; event: UsageEvent } | { ok: false; eventId?: string; issues: FieldIssue[] };

/** What acceptance needs: a clock and the horizon. */
export interface AcceptancePolicy {
  now: number;
  lateEventHorizonDays: number;
}

/** Accepted clock skew: events up to this far in the future are fine. */
export const FUTURE_SKEW_MS = 5 * 60_000;

const idOf = (input: unknown) =>
  typeof (input as { eventId?: unknown })?.eventId === "string" ? (input as { eventId: string }).eventId : undefined;

const ID = /^[\w.:@/-]{1,200}$/;
const RESOURCE_TYPE = /^[a-z][a-z0-9_]{0,63}$/;
const EVENT_TYPES: ReadonlySet<string> = new Set(usageEventTypes);
const optionalId = (v: unknown) => v === undefined || (typeof v === "string" && ID.test(v));
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && [Object.prototype, null].includes(Object.getPrototypeOf(v));

/**
 * The schema's rules for the common, valid event, without zod's per-field machinery (ingestion
 * parses every event, twice: at acceptance and in the consumer). Sound by construction and by test
 * (`usageEventSchema` is the oracle): it returns what the schema returns, or null — and then the
 * schema decides and explains.
 */
export function fastUsageEvent(input: unknown): UsageEvent | null {
  if (!isPlainObject(input)) return null;
  const { eventId, organizationId, userId, eventType, resourceId, resourceType, quantity, metadata, timestamp } = input;
  if (typeof eventId !== "string" || !ID.test(eventId)) return null;
  if (typeof organizationId !== "string" || !ID.test(organizationId)) return null;
  if (!optionalId(userId) || !optionalId(resourceId)) return null;
  if (typeof eventType !== "string" || !EVENT_TYPES.has(eventType)) return null;
  if (resourceType !== undefined && (typeof resourceType !== "string" || !RESOURCE_TYPE.test(resourceType)))
    return null;
  const q = quantity === undefined ? 1 : quantity;
  if (typeof q !== "number" || !Number.isFinite(q) || q < 0 || q > 1e15) return null;
  const meta = metadata === undefined ? {} : metadata;
  if (!isPlainObject(meta) || JSON.stringify(meta).length > MAX_METADATA_BYTES) return null;
  if (unstorablePath(meta) !== undefined) return null;
  if (timestamp === undefined) return null;
  const at = new Date(timestamp as string);
  if (Number.isNaN(at.getTime())) return null;
  const event: UsageEvent = {
    eventId,
    organizationId,
    eventType: eventType as UsageEvent["eventType"],
    quantity: q,
    metadata: { ...meta },
    timestamp: at,
  };
  if (userId !== undefined) event.userId = userId as string;
  if (resourceId !== undefined) event.resourceId = resourceId as string;
  if (resourceType !== undefined) event.resourceType = resourceType;
  return event;
}

/** Checks an event's shape only (schema, types, sizes): for events that were accepted already. */
export function parseUsageEvent(input: unknown): ValidatedEvent {
  const fast = fastUsageEvent(input);
  if (fast) return { ok: true, event: fast };
  const r = usageEventSchema.safeParse(input);
  return r.success ? { ok: true, event: r.data } : { ok: false, eventId: idOf(input), issues: zodIssuesOf(r.error) };
}

/** Checks an event for acceptance: its shape, and its timestamp against the clock and the horizon. */
export function acceptUsageEvent(input: unknown, policy: AcceptancePolicy): ValidatedEvent {
  const v = parseUsageEvent(input);
  if (!v.ok) return v;
  const t = v.event.timestamp.getTime();
  const eventId = v.event.eventId;
  if (t > policy.now + FUTURE_SKEW_MS) {
    return {
      ok: false,
      eventId,
      issues: [{ path: "timestamp", message: "more than 5 minutes in the future", code: "too_big" }],
    };
  }
  if (t < policy.now - policy.lateEventHorizonDays * 86_400_000) {
    const message = `older than the late-event horizon (${policy.lateEventHorizonDays} days)`;
    return { ok: false, eventId, issues: [{ path: "timestamp", message, code: "too_small" }] };
  }
  return v;
}
