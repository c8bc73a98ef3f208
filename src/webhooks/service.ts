import { getConfig } from "../platform/config.ts";
import type { Platform } from "../platform/platform.ts";
import { objectsByName } from "../platform/platform.ts";
import type { EndpointClient, WriterClient } from "./delivery.ts";
import { WebhookDeliverySystem } from "./delivery.ts";
import type { EventHandler } from "../events/consumers.ts";

/** FNV-1a of a string (stable across runtimes): picks an organization's writer shard. */
export function shardOf(key: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % shards;
}

interface WriterNamespace {
  idFromName(name: string): unknown;
  get(id: unknown): unknown;
}

/**
 * The writer object of an organization (`WEBHOOK_WRITER_SHARDS` shards): every fan-out and attempt
 * write of one organization goes through the same one.
 */
export function writerFor(env: object, organizationId: string): WriterClient {
  const e = env as { WEBHOOK_WRITER?: WriterNamespace };
  if (!e.WEBHOOK_WRITER) throw new Error("WEBHOOK_WRITER Durable Object binding missing");
  const shards = getConfig(env).webhooks.writerShards;
  return e.WEBHOOK_WRITER.get(e.WEBHOOK_WRITER.idFromName(`shard-${shardOf(organizationId, shards)}`)) as WriterClient;
}

/** Builds the webhook service for one invocation (request, batch, cron run). */
export function createWebhookService(platform: Platform): WebhookDeliverySystem {
  return new WebhookDeliverySystem({
    db: platform.db,
    eventBus: platform.events,
    endpoints: objectsByName<EndpointClient>(platform, "WEBHOOK_ENDPOINT"),
    writers: platform.bindings.WEBHOOK_WRITER
      ? (organizationId) => writerFor(platform.bindings, organizationId)
      : undefined,
    config: platform.config.webhooks,
  });
}

/** Fan-out of platform events (Queue `platform-events`) to subscribed webhooks; idempotent per (event, webhook). */
export const webhookFanOut: EventHandler = {
  name: "webhook-fan-out",
  async handle(events, platform) {
    const svc = createWebhookService(platform);
    // Concurrently: the writer batches them into one transaction per organization shard.
    await Promise.all(
      events.map((e) =>
        svc.enqueueEvent({
          eventId: e.id,
          eventType: e.type,
          organizationId: e.organizationid,
          occurredAt: e.time,
          data: e.data,
        }),
      ),
    );
  },
};
