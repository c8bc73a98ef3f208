import { app } from "./app.ts";
import { createLogger } from "./platform/logger.ts";
import { createPlatform } from "./platform/platform.ts";
import type { Platform } from "./platform/platform.ts";

/** Handles one batch of one Cloudflare Queue; each service registers its consumer here. */
export type QueueConsumer = (batch: MessageBatch<unknown>, platform: Platform) => Promise<void>;

/** Handles one Cron Trigger firing. */
export type CronJob = (controller: ScheduledController, platform: Platform) => Promise<void>;

/** Queue consumers by queue name (wrangler.toml `[[queues.consumers]]`). */
export const queueConsumers: Record<string, QueueConsumer> = {};

/** Cron jobs by cron expression (wrangler.toml `[triggers] crons`); every job of the expression runs. */
export const cronJobs: Record<string, CronJob[]> = {};

export default {
  fetch: app.fetch,

  async queue(batch, env, ctx) {
    const logger = createLogger({ queue: batch.queue, messages: batch.messages.length });
    const consumer = queueConsumers[batch.queue] ?? queueConsumers[batch.queue.replace(/-dlq$/, "")];
    if (!consumer) {
      // Retrying keeps the messages for a deployment that knows the queue instead of dropping them.
      logger.error("no consumer for queue");
      batch.retryAll({ delaySeconds: 60 });
      return;
    }
    const platform = createPlatform(env, ctx, logger);
    try {
      await consumer(batch, platform);
    } finally {
      platform.close();
    }
  },

  async scheduled(controller, env, ctx) {
    const logger = createLogger({ cron: controller.cron });
    const platform = createPlatform(env, ctx, logger);
    try {
      const jobs = cronJobs[controller.cron] ?? [];
      // One failing job must not starve the others; report all failures together.
      const results = await Promise.allSettled(jobs.map((job) => job(controller, platform)));
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      for (const f of failed) logger.error("cron job failed", { err: f.reason });
      if (failed.length > 0) throw new AggregateError(failed.map((f) => f.reason), `${failed.length} cron job(s) failed`);
    } finally {
      platform.close();
    }
  },
} satisfies ExportedHandler<CloudflareBindings>;
