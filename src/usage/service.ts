import type { QueueBatch, QueueMessage } from "../events/consumers.ts";
import { recordDeadLetters, retryDelaySeconds } from "../events/consumers.ts";
import type { Platform } from "../platform/platform.ts";
import { objectsByName } from "../platform/platform.ts";
import type { OrgUsageClient, UsageAggregatorOptions } from "./aggregator.ts";
import { UsageAnalyticsAggregator } from "./aggregator.ts";
import { parseUsageEvent } from "./accept.ts";
import { decodeUsageMessage } from "./cloudevents.ts";
import { NotificationService } from "./notifications.ts";
import type { PlanCacheClient } from "./plans.ts";
import { PlanService } from "./plans.ts";
import type { UsageEvent } from "./schemas.ts";

export { cloudEventToUsage, encodeUsageBatches, usageToCloudEvent } from "./cloudevents.ts";

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
 * Builds the plan operator service for one invocation (plans, assignments, overrides; it refreshes
 * the organization objects it affects).
 */
export function createPlanService(platform: Platform, overrides: { now?: () => number } = {}): PlanService {
  return new PlanService({
    db: platform.db,
    orgs: objectsByName<PlanCacheClient>(platform, "ORG_USAGE"),
    ...overrides,
  });
}

/** Builds the in-app notification service for one invocation. */
export function createNotificationService(platform: Platform): NotificationService {
  return new NotificationService(platform.db);
}

/**
 * The usage-events Queue consumer. Its events were accepted already (HTTP API, RabbitMQ inbound),
 * so only their shape is checked — never their age again: an accepted event is counted. A message
 * carries one event (a CloudEvent) or many (a usage batch); whatever can never be valid is
 * dead-lettered and acked, the rest of the whole Queue batch is recorded with one log statement.
 * If that fails, each message is recorded alone so one bad message cannot hold back the others,
 * and what still fails is retried with backoff (then the Queue's dead-letter queue).
 */
export async function consumeUsageEvents(batch: QueueBatch, platform: Platform): Promise<void> {
  const svc = createUsageService(platform);
  const decoded: { msg: QueueMessage; events: UsageEvent[] }[] = [];
  const dead: { messageId?: string; eventId?: string; reason: string; body: unknown; attempts?: number }[] = [];
  for (const msg of batch.messages) {
    const inputs = decodeUsageMessage(msg.body);
    if (!inputs) {
      dead.push({
        messageId: msg.id,
        reason: "not a usage event or usage batch",
        body: msg.body,
        attempts: msg.attempts,
      });
      continue;
    }
    const events: UsageEvent[] = [];
    for (const input of inputs) {
      const v = parseUsageEvent(input);
      if (v.ok) events.push(v.event);
      else {
        const reason = v.issues.map((i) => `${i.path}: ${i.message}`).join("; ");
        dead.push({ messageId: msg.id, eventId: v.eventId, reason, body: input, attempts: msg.attempts });
      }
    }
    decoded.push({ msg, events });
  }
  if (dead.length > 0) {
    await recordDeadLetters(platform.db, batch.queue, dead);
    platform.logger.warn("usage events rejected", { count: dead.length });
  }
  for (const msg of batch.messages) if (!decoded.some((d) => d.msg === msg)) msg.ack();
  try {
    await svc.recordEvents(decoded.flatMap((d) => d.events));
    for (const d of decoded) d.msg.ack();
  } catch (batchErr) {
    platform.logger.error("usage batch failed; recording message by message", { err: batchErr });
    for (const d of decoded) {
      try {
        await svc.recordEvents(d.events);
        d.msg.ack();
      } catch (err) {
        platform.logger.error("usage message failed", { messageId: d.msg.id, err });
        d.msg.retry({ delaySeconds: retryDelaySeconds(d.msg.attempts) });
      }
    }
  }
  // Folding happens elsewhere: this batch (and the Queue's next one) never waits for it.
  await kickAggregator(platform).catch((err) => platform.logger.warn("usage aggregator not kicked", { err }));
}

/** The usage aggregator object, as the service calls it. */
export interface UsageAggregatorClient {
  kick(): Promise<void>;
}

/**
 * Has the one aggregator object fold the log soon (after each consumer batch, and from the cron):
 * a cheap call that returns at once — the fold runs on the object's alarm, not in the caller.
 */
export function kickAggregator(platform: Platform): Promise<void> {
  return objectsByName<UsageAggregatorClient>(platform, "USAGE_AGGREGATOR")("usage").kick();
}
