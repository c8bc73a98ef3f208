import type { EventHandler } from "../events/consumers.ts";
import { recordDeadLetters } from "../events/consumers.ts";
import type { Platform } from "../platform/platform.ts";
import { objectsByName } from "../platform/platform.ts";
import type { OrgUsageClient, UsageAggregatorOptions } from "./aggregator.ts";
import { UsageAnalyticsAggregator } from "./aggregator.ts";
import { parseUsageEvent } from "./accept.ts";
import { cloudEventToUsage } from "./cloudevents.ts";
import type { UsageEvent } from "./schemas.ts";

export { cloudEventToUsage, usageToCloudEvent } from "./cloudevents.ts";

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
    queue: platform.bindings.USAGE_EVENTS,
    ...overrides,
  });
}

/**
 * The usage-events Queue consumer. Its events were accepted already (HTTP API, RabbitMQ inbound),
 * so only their shape is checked — never their age again: an accepted event is counted. What can
 * never be valid is dead-lettered; the rest is recorded in one batch.
 */
export const usageIngest: EventHandler = {
  name: "usage-ingest",
  async handle(events, platform) {
    const svc = createUsageService(platform);
    const valid: UsageEvent[] = [];
    const invalid: { eventId?: string; reason: string; body: unknown }[] = [];
    for (const e of events) {
      const v = parseUsageEvent(cloudEventToUsage(e));
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
