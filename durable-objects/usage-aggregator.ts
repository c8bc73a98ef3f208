import { DurableObject } from "cloudflare:workers";
import { getConfig } from "../src/platform/config.ts";
import { createDb } from "../src/platform/db.ts";
import { rpcBoundary } from "../src/platform/errors.ts";
import { createLogger } from "../src/platform/logger.ts";
import { aggregateLog } from "../src/usage/log.ts";

/** A fold run this long hands over to the next alarm (re-armed at once), so it never runs unbounded. */
const MAX_CHUNKS_PER_ALARM = 10;
const RETRY_MS = 5_000;
/** Tail size worth a warning: reads stay exact but scan it. */
const BEHIND_ROWS = 500_000;

/**
 * The one usage aggregator (a single object, by name): folds the usage log into the aggregates on
 * its alarm, so no HTTP request or Queue batch ever waits for aggregation. Queue consumers kick it
 * after each batch and the minute cron kicks it in case a chain stopped. A kick arms the alarm
 * `USAGE_FOLD_INTERVAL_MS` ahead unless one is armed, so under load the log is folded about once an
 * interval in large chunks: the aggregates' upserts grow with the distinct (organization, bucket,
 * type) keys of a chunk, not with its rows, so a fold per batch would redo them for every batch.
 * Reads add the tail, so totals are exact whatever the interval. It holds no state: the watermark
 * lives in Postgres.
 */
export class UsageAggregator extends DurableObject<CloudflareBindings> {
  /** Makes sure a run is due within the fold interval (an armed alarm stays as it is). */
  async kick(): Promise<void> {
    return rpcBoundary(async () => {
      if ((await this.ctx.storage.getAlarm()) === null) await this.arm(getConfig(this.env).usage.foldIntervalMs);
    });
  }

  /**
   * Folds up to a bounded number of chunks; re-arms at once when it stopped with chunks left, and an
   * interval ahead when the tail still holds rows (arrived meanwhile, or of transactions running).
   */
  override async alarm(): Promise<void> {
    const config = getConfig(this.env);
    const logger = createLogger({ component: "usage-aggregator" });
    const db = createDb(config, { onError: (err) => logger.warn("aggregator socket error", { err }) });
    try {
      const run = await aggregateLog(db, { maxChunks: MAX_CHUNKS_PER_ALARM });
      if (run.tail > BEHIND_ROWS) logger.warn("usage aggregator behind", { ...run });
      if (run.chunks >= MAX_CHUNKS_PER_ALARM) await this.arm(0);
      else if (run.tail > 0) await this.arm(config.usage.foldIntervalMs);
    } catch (err) {
      logger.error("usage aggregation failed", { err });
      await this.arm(RETRY_MS);
    } finally {
      await db.end();
    }
  }

  private arm(inMs: number): Promise<void> {
    return this.ctx.storage.setAlarm(Date.now() + inMs);
  }
}
