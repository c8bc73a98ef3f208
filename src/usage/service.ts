import type { CloudEvent } from "../events/cloudevent.ts";
import type { EventHandler } from "../events/consumers.ts";
import { recordDeadLetters } from "../events/consumers.ts";
import type { Platform } from "../platform/platform.ts";
import { objectsByName } from "../platform/platform.ts";
import type { OrgUsageClient, UsageAggregatorOptions } from "./aggregator.ts";
import { UsageAnalyticsAggregator } from "./aggregator.ts";
import type { UsageEvent } from "./schemas.ts";

/**
 * Builds the usage service for one invocation.
 * @param overrides - e.g. `now`, a clock for jobs and tests that must not depend on today's date
 */
export function createUsageService(
  platform: Platform,
  overrides: Partial<Pick<UsageAggregatorOptions, "now">> = {},
): UsageAnalyticsAggregator {
  return new UsageAnalyticsAggregator({
    db: platform.db,
    redis: platform.redis,
    keys: platform.keys,
    eventBus: platform.events,
    orgs: objectsByName<OrgUsageClient>(platform, "ORG_USAGE"),
    config: platform.config.usage,
    onError: (err) => platform.logger.error("usage rollup batch failed", { err }),
    ...overrides,
  });
}

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

/** The usage-events Queue consumer: validates, dead-letters what can never be valid, records the rest in one batch. */
export const usageIngest: EventHandler = {
  name: "usage-ingest",
  async handle(events, platform) {
    const svc = createUsageService(platform);
    const valid: UsageEvent[] = [];
    const invalid: { eventId?: string; reason: string; body: unknown }[] = [];
    for (const e of events) {
      const v = svc.validate(cloudEventToUsage(e));
      if (v.ok) valid.push(v.event);
      else invalid.push({ eventId: e.id, reason: v.issues.map((i) => `${i.path}: ${i.message}`).join("; "), body: e });
    }
    if (invalid.length > 0) {
      await recordDeadLetters(platform.db, "usage-events", invalid);
      platform.logger.warn("usage events rejected", { count: invalid.length });
    }
    await svc.recordEvents(valid);
  },
};

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
