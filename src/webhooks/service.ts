import type { Platform } from "../platform/platform.ts";
import { objectsByName } from "../platform/platform.ts";
import type { EndpointClient } from "./delivery.ts";
import { WebhookDeliverySystem } from "./delivery.ts";
import type { EventHandler } from "../events/consumers.ts";

/** Builds the webhook service for one invocation (request, batch, cron run). */
export function createWebhookService(platform: Platform): WebhookDeliverySystem {
  return new WebhookDeliverySystem({
    db: platform.db,
    eventBus: platform.events,
    endpoints: objectsByName<EndpointClient>(platform, "WEBHOOK_ENDPOINT"),
    config: platform.config.webhooks,
  });
}

/** Fan-out of platform events (Queue `platform-events`) to subscribed webhooks; idempotent per (event, webhook). */
export const webhookFanOut: EventHandler = {
  name: "webhook-fan-out",
  async handle(events, platform) {
    const svc = createWebhookService(platform);
    for (const e of events) {
      await svc.enqueueEvent({
        eventId: e.id,
        eventType: e.type,
        organizationId: e.organizationid,
        occurredAt: e.time,
        data: e.data,
      });
    }
  },
};
