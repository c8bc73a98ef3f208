import { DurableObject } from "cloudflare:workers";
import type { WebhookEndpoint } from "./webhook-endpoint.ts";
import { getConfig } from "../src/platform/config.ts";
import type { Db } from "../src/platform/db.ts";
import { createDb } from "../src/platform/db.ts";
import { rpcBoundary } from "../src/platform/errors.ts";
import { createLogger } from "../src/platform/logger.ts";
import type { Endpoint } from "../src/webhooks/attempt.ts";
import { createBatcher } from "../src/webhooks/batcher.ts";
import { newDeliveryId } from "../src/webhooks/delivery.ts";
import type { FanOutRequest, FanOutResult, HandOff } from "../src/webhooks/fanout.ts";
import { createDeliveries } from "../src/webhooks/fanout.ts";
import type { AttemptRow } from "../src/webhooks/repo.ts";
import { endpointFromRow, findWebhook, writeAttempts } from "../src/webhooks/repo.ts";
import { defaultSettings } from "../src/webhooks/settings.ts";

/** One request's share of a fan-out batch: its result (and the batch's hand-offs), or its own error. */
type FanOutOutcome = { result: FanOutResult; handedOff: Promise<void> } | { error: unknown };

/**
 * A writer: the webhook service's Postgres hot path, sharded by organization
 * (`WEBHOOK_WRITER_SHARDS`). It keeps one small pool warm across requests — a Worker request may
 * not — and group-commits what concurrent callers send: event fan-out (one transaction creates
 * every matching endpoint's deliveries for all events that queued up, then each endpoint object
 * gets its share in one hand-off) and the attempt results endpoint objects flush. So neither a
 * delivery nor an API request opens a Postgres session of its own.
 */
export class WebhookWriter extends DurableObject<CloudflareBindings> {
  private pool: Db | undefined;
  // Endpoint objects' stubs, kept (a call on a kept stub costs about half a fresh one's); bounded.
  private readonly stubs = new Map<string, DurableObjectStub<WebhookEndpoint>>();

  private endpoint(webhookId: string): DurableObjectStub<WebhookEndpoint> {
    let stub = this.stubs.get(webhookId);
    if (!stub) {
      if (this.stubs.size >= 10_000) this.stubs.delete(this.stubs.keys().next().value!);
      const ns = this.env.WEBHOOK_ENDPOINT;
      stub = ns.get(ns.idFromName(webhookId));
      this.stubs.set(webhookId, stub);
    }
    return stub;
  }
  private readonly log = createLogger({ component: "webhook-writer" });

  private db(): Db {
    // Two sessions: a fan-out and an attempt batch can run side by side.
    this.pool ??= createDb(getConfig(this.env), {
      max: 2,
      idleTimeoutMillis: 10_000,
      onError: (err) => this.log.warn("postgres socket error", { err }),
    });
    return this.pool;
  }

  /** Drops the pool after a failure, so the next batch connects afresh. */
  private async failed<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const pool = this.pool;
      this.pool = undefined;
      void pool?.end().catch(() => undefined);
      throw err;
    }
  }

  private readonly fanOuts = createBatcher<FanOutRequest, FanOutOutcome>(async (requests) => {
    try {
      return await this.fanOutBatch(requests);
    } catch (err) {
      if (requests.length === 1) throw err;
      // One bad event must not fail the others that shared its transaction: each on its own.
      const out: FanOutOutcome[] = [];
      for (const r of requests) {
        try {
          out.push(...(await this.fanOutBatch([r])));
        } catch (e) {
          out.push({ error: e });
        }
      }
      return out;
    }
  }, 500);

  private async fanOutBatch(requests: FanOutRequest[]): Promise<FanOutOutcome[]> {
    const defaults = defaultSettings(getConfig(this.env).webhooks);
    const { results, handOffs } = await this.failed(() =>
      createDeliveries(this.db(), requests, defaults, newDeliveryId),
    );
    // Not awaited here: the next batch's transaction overlaps this batch's hand-offs.
    const handedOff = this.handOff(handOffs);
    return results.map((result) => ({ result, handedOff }));
  }

  private readonly attemptBatches = createBatcher<AttemptRow[], void>(async (batches) => {
    await this.failed(() => writeAttempts(this.db(), batches.flat()));
    return batches.map(() => undefined);
  }, 50);

  /** Each endpoint object gets its share of a batch in one call; a failed hand-off is left to the cron sweep (the rows are durable). */
  private async handOff(handOffs: HandOff[]): Promise<void> {
    let next = 0;
    const lane = async () => {
      while (next < handOffs.length) {
        const h = handOffs[next++]!;
        try {
          await this.endpoint(h.webhookId).enqueue(h.webhookId, h.organizationId, h.jobs, {
            endpoint: h.endpoint,
            readAt: h.readAt,
          });
        } catch (err) {
          this.stubs.delete(h.webhookId); // a broken stub is not reused
          this.log.warn("hand-off failed; the sweep re-hands", { webhookId: h.webhookId, err });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(64, handOffs.length) }, lane));
  }

  /**
   * Creates the deliveries of one event (batched with concurrent callers) and returns once its
   * endpoints were handed them.
   */
  async createDeliveries(request: FanOutRequest): Promise<FanOutResult> {
    // rpcBoundary: a "database unavailable" must reach the caller as a 503, not a bare Error.
    return rpcBoundary(async () => {
      const outcome = await this.fanOuts.submit(request);
      if ("error" in outcome) throw outcome.error;
      await outcome.handedOff;
      return outcome.result;
    });
  }

  /** Writes attempt results (batched with concurrent callers); resolves once committed. */
  async recordAttempts(rows: AttemptRow[]): Promise<void> {
    return rpcBoundary(async () => {
      if (rows.length > 0) await this.attemptBatches.submit(rows);
    });
  }

  /** An endpoint as its object needs it, read through the warm pool. */
  async loadEndpoint(webhookId: string): Promise<Endpoint | null | "inactive"> {
    return rpcBoundary(async () => {
      const row = await this.failed(() => findWebhook(this.db(), webhookId));
      return endpointFromRow(row, defaultSettings(getConfig(this.env).webhooks), Date.now());
    });
  }
}
