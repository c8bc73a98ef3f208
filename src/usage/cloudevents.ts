import type { CloudEvent } from "../events/cloudevent.ts";
import type { UsageEvent } from "./schemas.ts";

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
