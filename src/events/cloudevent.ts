import { z } from "zod";
import type { EventType } from "./catalog.ts";
import { isEventType } from "./catalog.ts";
import { MAX_JSON_DEPTH, jsonTooDeep, unstorablePath } from "../platform/validation.ts";

/**
 * Platform events are CloudEvents 1.0 (structured JSON mode) with the extension attribute
 * `organizationid`. The same schema validates what we publish and what we receive.
 */
export const cloudEventSchema = z.object({
  specversion: z.literal("1.0"),
  id: z.string().min(1).max(200),
  type: z.string().refine(isEventType, { message: "unknown event type" }),
  source: z.string().min(1).max(500),
  time: z.iso.datetime({ offset: true }),
  subject: z.string().min(1).max(500).optional(),
  datacontenttype: z.literal("application/json").default("application/json"),
  data: z.record(z.string(), z.unknown()).default({}),
  organizationid: z.string().min(1).max(200),
});

/** A validated platform event. */
export type CloudEvent = Omit<z.infer<typeof cloudEventSchema>, "type"> & { type: EventType };

/**
 * The identity of an event: its organization and its id. Producers choose ids per organization
 * (usage events carry the client's `eventId`), so every deduplication — the Queue consumer, the
 * usage API, RabbitMQ inbound, the organization object, Postgres — keys on both.
 */
export function eventKey(organizationId: string, eventId: string): string {
  return `${organizationId}\u0000${eventId}`;
}

/** Fields of {@link createEvent}. */
export interface NewEvent {
  type: EventType;
  organizationId: string;
  data: Record<string, unknown>;
  /** What the event is about, e.g. `teams/team_1`. */
  subject?: string;
  /** Producer, e.g. `/cloudmatrix-edge/teams`. */
  source: string;
  /** Event id; a deterministic id makes a re-emitted event deduplicate. Default: random UUID. */
  id?: string;
  /** Default: now. */
  time?: Date;
}

/** Builds a CloudEvent. */
export function createEvent(e: NewEvent): CloudEvent {
  return {
    specversion: "1.0",
    id: e.id ?? crypto.randomUUID(),
    type: e.type,
    source: e.source,
    time: (e.time ?? new Date()).toISOString(),
    ...(e.subject ? { subject: e.subject } : {}),
    datacontenttype: "application/json",
    data: e.data,
    organizationid: e.organizationId,
  };
}

/** Outcome of {@link parseCloudEvent}. */
export type ParsedEvent = { ok: true; event: CloudEvent } | { ok: false; reason: string };

/** Validates untrusted input (a queue body, an AMQP message) as a CloudEvent. */
export function parseCloudEvent(input: unknown): ParsedEvent {
  let value = input;
  if (typeof input === "string") {
    // Deeper than any event is: serialising it again (to a Queue, to Postgres) would overflow the stack.
    if (jsonTooDeep(input)) return { ok: false, reason: `body nests deeper than ${MAX_JSON_DEPTH} levels` };
    try {
      value = JSON.parse(input);
    } catch {
      return { ok: false, reason: "body is not JSON" };
    }
  }
  const r = cloudEventSchema.safeParse(value);
  if (!r.success) {
    return { ok: false, reason: r.error.issues.map((i) => `${i.path.join(".") || "event"}: ${i.message}`).join("; ") };
  }
  // Its id, subject and data reach Postgres (the outbox, the usage log, webhook deliveries).
  const at = unstorablePath(r.data);
  if (at !== undefined) return { ok: false, reason: `${at}: must not contain U+0000 or an unpaired surrogate` };
  return { ok: true, event: r.data as CloudEvent };
}
