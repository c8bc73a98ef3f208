import { RabbitInbound } from "../durable-objects/rabbit-inbound.ts";
import { OrgUsage } from "../durable-objects/org-usage.ts";
import { UsageAggregator } from "../durable-objects/usage-aggregator.ts";
import { WebhookEndpoint } from "../durable-objects/webhook-endpoint.ts";
import { WebhookWriter } from "../durable-objects/webhook-writer.ts";
import { app } from "./app.ts";
import { archiveHandler, consumeDeadLetters, consumeEventBatch } from "./events/consumers.ts";
import { kickInbound, purgeEventBookkeeping, sweepOutbox } from "./events/jobs.ts";
import { createLogger } from "./platform/logger.ts";
import { createPlatform, sendQueuedEmails } from "./platform/platform.ts";
import { createTeamService } from "./teams/service.ts";
import { consumeUsageEvents, createUsageService, kickAggregator } from "./usage/service.ts";
import { createWebhookService, webhookFanOut } from "./webhooks/service.ts";
import type { Platform } from "./platform/platform.ts";

export { OrgUsage, RabbitInbound, UsageAggregator, WebhookEndpoint, WebhookWriter };

/** Handles one batch of one Cloudflare Queue; each service registers its consumer here. */
export type QueueConsumer = (
  batch: MessageBatch<unknown>,
  platform: Platform,
  env: CloudflareBindings,
) => Promise<void>;

/** Handles one Cron Trigger firing. */
export type CronJob = (platform: Platform, env: CloudflareBindings) => Promise<void>;

/** Queue consumers by queue name (wrangler.toml `[[queues.consumers]]`). */
export const queueConsumers: Record<string, QueueConsumer> = {
  "platform-events": (batch, p) => consumeEventBatch(batch, [archiveHandler, webhookFanOut], p),
  "usage-events": (batch, p) => consumeUsageEvents(batch, p),
  "platform-events-dlq": consumeDeadLetters,
  "usage-events-dlq": consumeDeadLetters,
};

/** Cron jobs by cron expression (wrangler.toml `[triggers] crons`); every job of the expression runs. */
export const cronJobs: Record<string, CronJob[]> = {
  "* * * * *": [
    (p) => sweepOutbox(p),
    (p, env) => kickInbound(p, (queue) => env.RABBIT_INBOUND.get(env.RABBIT_INBOUND.idFromName(queue))),
    // Usage: consumers kick the aggregator after every batch; this restarts a chain that stopped.
    (p) => kickAggregator(p),
    // E-mails are sent after their transaction commits; this catches retries and anything a crash left.
    async (p) => {
      const r = await sendQueuedEmails(p.config, p.logger, 200);
      if (r.sent || r.captured || r.retrying || r.failed) p.logger.info("e-mail sweep", { ...r });
    },
    async (p) => {
      const r = await createWebhookService(p).processQueue(500);
      if (r.processed) p.logger.info("webhook sweep", r);
    },
  ],
  "*/5 * * * *": [
    async (p) => {
      // Buckets that started before the cutoff are final enough to roll; later events re-dirty them.
      const r = await createUsageService(p).rollupMetrics("*", new Date(Date.now() - 60_000));
      if (r.rolledUp || r.errors) p.logger.info("usage rollup", r);
    },
    async (p) => {
      const r = await createUsageService(p).applyRetention();
      if (r.minuteRows || r.eventIds || r.rawRows || r.partitionsDropped.length)
        p.logger.info("usage retention", { ...r });
    },
    async (p) => {
      // Objects an event never reached (a batch dead-lettered after its Postgres write) heal here.
      const r = await createUsageService(p).reconcileActiveOrganizations(new Date(Date.now() - 20 * 60_000));
      if (r.reconciled) p.logger.info("usage objects reconciled", r);
    },
    async (p) => {
      // Delivery and attempt history older than WEBHOOK_RETENTION_DAYS, in bounded batches.
      const r = await createWebhookService(p).purgeHistory();
      if (r.attempts || r.deliveries) p.logger.info("webhook retention", r);
    },
    async (p) => {
      const expired = await createTeamService(p).expireInvitations();
      if (expired) p.logger.info("invitations expired", { expired });
    },
  ],
  "17 3 * * *": [(p) => purgeEventBookkeeping(p)],
};

export default {
  fetch: app.fetch,

  async queue(batch, env, ctx) {
    const logger = createLogger({ queue: batch.queue, messages: batch.messages.length });
    const consumer = queueConsumers[batch.queue];
    if (!consumer) {
      // Retrying keeps the messages for a deployment that knows the queue instead of dropping them.
      logger.error("no consumer for queue");
      batch.retryAll({ delaySeconds: 60 });
      return;
    }
    const platform = createPlatform(env, ctx, logger);
    try {
      await consumer(batch, platform, env);
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
      const results = await Promise.allSettled(jobs.map((job) => job(platform, env)));
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      for (const f of failed) logger.error("cron job failed", { err: f.reason });
      if (failed.length > 0)
        throw new AggregateError(
          failed.map((f) => f.reason),
          `${failed.length} cron job(s) failed`,
        );
    } finally {
      platform.close();
    }
  },
} satisfies ExportedHandler<CloudflareBindings>;
