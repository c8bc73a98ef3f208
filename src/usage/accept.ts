import type { FieldIssue } from "../platform/errors.ts";
import { zodIssuesOf } from "../platform/validation.ts";
import type { UsageEvent } from "./schemas.ts";
import { usageEventSchema } from "./schemas.ts";

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

/** Checks an event's shape only (schema, types, sizes): for events that were accepted already. */
export function parseUsageEvent(input: unknown): ValidatedEvent {
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
