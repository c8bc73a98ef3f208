import type { Platform } from "../platform/platform.ts";
import { relayWithConfig } from "./relay.ts";
import { topology } from "./rabbit.ts";

/** What the cron jobs need beyond the platform: the inbound objects, looked up by queue name. */
export interface InboundKicker {
  kick(queue: string): Promise<void>;
}

/** Cron: relays anything the post-commit kicks left behind (crashes, broker outages). */
export async function sweepOutbox(platform: Platform): Promise<void> {
  const queue = platform.bindings.PLATFORM_EVENTS;
  if (!queue) throw new Error("PLATFORM_EVENTS queue binding missing");
  const r = await relayWithConfig({ config: platform.config, queue, logger: platform.logger });
  if (r.published || r.failed) platform.logger.info("outbox sweep", { ...r });
}

/** Cron: makes sure every inbound queue's drainer has an alarm armed. */
export async function kickInbound(platform: Platform, inbound: (queue: string) => InboundKicker): Promise<void> {
  for (const q of topology(platform.config.rabbitmq).inbound) await inbound(q.queue).kick(q.queue);
}

/** Cron: forgets published outbox rows and processed-event claims after the dedup horizon. */
export async function purgeEventBookkeeping(platform: Platform, retentionDays = 7): Promise<void> {
  await platform.db.query("delete from outbox where published_at < now() - make_interval(days => $1)", [retentionDays]);
  await platform.db.query("delete from processed_events where processed_at < now() - make_interval(days => $1)", [
    retentionDays * 5,
  ]);
}
