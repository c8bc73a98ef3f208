import type { CloudEvent } from "../events/cloudevent.ts";
import { parseCloudEvent } from "../events/cloudevent.ts";
import type { UsageEvent } from "./schemas.ts";
import { utf8Length } from "../platform/queue.ts";

/**
 * Usage events travel as CloudEvents (the Queue, RabbitMQ): these map between the two shapes.
 * The CloudEvent `id` is the usage `eventId`, its `organizationid` the organization; together they
 * are the event's identity everywhere (see `eventKey`).
 */

/** Maps a platform CloudEvent to the seed's UsageEvent fields (`id`→`eventId`, `time`→`timestamp` …). */
export function cloudEventToUsage(e: CloudEvent): Record<string, unknown> {
  const d = e.data as Record<string, unknown>;
  return {
    eventId: e.id,
    organizationId: e.organizationid,
    eventType: e.type,
    timestamp: e.time,
    userId: d.userId,
    resourceId: d.resourceId,
    resourceType: d.resourceType,
    quantity: d.quantity ?? 1,
    metadata: d.metadata ?? {},
  };
}

/** Maps a validated UsageEvent to the CloudEvent the HTTP ingest API puts on the Queue. */
export function usageToCloudEvent(e: UsageEvent): CloudEvent {
  return {
    specversion: "1.0",
    id: e.eventId,
    type: e.eventType,
    source: "/cloudmatrix-edge/usage-api",
    time: e.timestamp.toISOString(),
    datacontenttype: "application/json",
    organizationid: e.organizationId,
    data: {
      userId: e.userId,
      resourceId: e.resourceId,
      resourceType: e.resourceType,
      quantity: e.quantity,
      metadata: e.metadata,
    },
  };
}

/**
 * A Queue message carrying many usage events of one organization (the HTTP API and RabbitMQ
 * inbound hand off batches, not single events): `events` rows are
 * `[eventId, eventType, userId, resourceId, resourceType, quantity, timestampMs, metadata]`.
 */
export interface UsageBatchMessage {
  kind: "usage-batch";
  org: string;
  events: [
    string,
    string,
    string | null,
    string | null,
    string | null,
    number,
    number,
    Record<string, unknown> | null,
  ][];
}

// Cloudflare Queues take messages of up to 128 KB; keep a margin for the envelope.
const MESSAGE_BYTES = 110_000;

/** Encodes accepted events as few messages as fit the Queue's size limit, one organization each. */
export function encodeUsageBatches(events: readonly UsageEvent[]): string[] {
  const byOrg = new Map<string, UsageEvent[]>();
  for (const e of events) {
    const list = byOrg.get(e.organizationId);
    if (list) list.push(e);
    else byOrg.set(e.organizationId, [e]);
  }
  const out: string[] = [];
  for (const [org, list] of byOrg) {
    let rows: string[] = [];
    let bytes = 0;
    const flush = () => {
      if (rows.length === 0) return;
      out.push(`{"kind":"usage-batch","org":${JSON.stringify(org)},"events":[${rows.join(",")}]}`);
      rows = [];
      bytes = 0;
    };
    for (const e of list) {
      const meta = e.metadata && Object.keys(e.metadata).length > 0 ? e.metadata : null;
      const row = JSON.stringify([
        e.eventId,
        e.eventType,
        e.userId ?? null,
        e.resourceId ?? null,
        e.resourceType ?? null,
        e.quantity,
        e.timestamp.getTime(),
        meta,
      ]);
      const size = utf8Length(row);
      if (bytes + size > MESSAGE_BYTES) flush();
      rows.push(row);
      bytes += size + 1;
    }
    flush();
  }
  return out;
}

/**
 * Decodes a `usage-events` message: a batch message, or a single CloudEvent (as older producers
 * sent). Returns the events as the seed's UsageEvent fields, still to be checked, or null when the
 * body is neither.
 */
export function decodeUsageMessage(body: unknown): Record<string, unknown>[] | null {
  let value = body;
  if (typeof body === "string") {
    try {
      value = JSON.parse(body);
    } catch {
      return null;
    }
  }
  if (!value || typeof value !== "object") return null;
  const v = value as Partial<UsageBatchMessage>;
  if (v.kind === "usage-batch") {
    if (typeof v.org !== "string" || !Array.isArray(v.events)) return null;
    return v.events.map((r) => ({
      organizationId: v.org,
      eventId: r?.[0],
      eventType: r?.[1],
      ...(r?.[2] != null ? { userId: r[2] } : {}),
      ...(r?.[3] != null ? { resourceId: r[3] } : {}),
      ...(r?.[4] != null ? { resourceType: r[4] } : {}),
      quantity: r?.[5],
      timestamp: typeof r?.[6] === "number" ? new Date(r[6]) : r?.[6],
      metadata: r?.[7] ?? {},
    }));
  }
  const parsed = parseCloudEvent(value);
  return parsed.ok ? [cloudEventToUsage(parsed.event)] : null;
}
