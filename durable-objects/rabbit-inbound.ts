import { DurableObject } from "cloudflare:workers";
import type { DrainResult } from "../src/events/inbound.ts";
import { drainInbound } from "../src/events/inbound.ts";
import { topology } from "../src/events/rabbit.ts";
import { getConfig } from "../src/platform/config.ts";
import { rpcBoundary } from "../src/platform/errors.ts";
import { createLogger } from "../src/platform/logger.ts";
import { sendTexts } from "../src/platform/queue.ts";
import type { CloudEvent } from "../src/events/cloudevent.ts";
import { acceptUsageEvent } from "../src/usage/accept.ts";
import { cloudEventToUsage, encodeUsageBatches } from "../src/usage/cloudevents.ts";
import type { UsageEvent } from "../src/usage/schemas.ts";

/**
 * One object per inbound RabbitMQ queue (named by the queue): an alarm drains a bounded burst into
 * the `usage-events` Queue and re-arms — at once when the burst was full, else after the poll
 * interval. Holds nothing but the queue name; the cron kicks it in case the alarm chain stopped.
 */
export class RabbitInbound extends DurableObject<CloudflareBindings> {
  /** Remembers which queue this object drains and makes sure an alarm is armed. */
  async kick(queue: string): Promise<void> {
    return rpcBoundary(async () => {
      if ((await this.ctx.storage.get<string>("queue")) !== queue) await this.ctx.storage.put("queue", queue);
      if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now());
    });
  }

  /** Drains one burst now (operators and tests); the alarm keeps its own schedule. */
  async drain(): Promise<DrainResult> {
    return rpcBoundary(() => this.drainBurst());
  }

  private async drainBurst(): Promise<DrainResult> {
    const queue = await this.ctx.storage.get<string>("queue");
    if (!queue) throw new Error("RabbitInbound: kick(queue) first");
    const config = getConfig(this.env);
    const logger = createLogger({ component: "rabbit-inbound", queue });
    // What acceptance made of each event, for the hand-off (not converted and checked twice).
    const accepted = new WeakMap<CloudEvent, UsageEvent>();
    return drainInbound({
      url: config.rabbitmq.url,
      topology: topology(config.rabbitmq),
      queue,
      maxMessages: config.events.inboundBurstMax,
      maxMs: config.events.inboundBurstMs,
      // Acceptance happens here, once: what the usage consumer gets is counted, whatever its age by then.
      accept: (event) => {
        const v = acceptUsageEvent(cloudEventToUsage(event), {
          now: Date.now(),
          lateEventHorizonDays: config.usage.lateEventHorizonDays,
        });
        if (!v.ok) return v.issues.map((i) => `${i.path}: ${i.message}`).join("; ");
        accepted.set(event, v.event);
        return null;
      },
      // Accepted events travel as usage batches: a few Queue messages per burst, not one per event.
      deliver: async (events) => {
        const usage = events.flatMap((e) => accepted.get(e) ?? []);
        await sendTexts(this.env.USAGE_EVENTS, encodeUsageBatches(usage));
      },
      chunkSize: 1_000,
      logger,
    });
  }

  /** Drains a burst and re-arms; never throws, so a broker outage cannot wedge the alarm. */
  override async alarm(): Promise<void> {
    const poll = getConfig(this.env).events.inboundPollMs;
    let next = Date.now() + poll;
    try {
      const result = await this.drainBurst();
      if (result.full) next = Date.now();
    } catch (err) {
      createLogger({ component: "rabbit-inbound" }).error("inbound drain failed", { err });
      next = Date.now() + Math.max(poll, 5_000);
    }
    await this.ctx.storage.setAlarm(next);
  }
}
