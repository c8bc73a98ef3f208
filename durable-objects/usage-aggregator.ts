import { DurableObject } from "cloudflare:workers";
import { getConfig } from "../src/platform/config.ts";
import { createDb } from "../src/platform/db.ts";
import { createLogger } from "../src/platform/logger.ts";
import { aggregateLog } from "../src/usage/log.ts";

/** A fold run this long (or longer) hands over to the next alarm, so kicks are never starved. */
const MAX_CHUNKS_PER_ALARM = 10;
const RETRY_MS = 5_000;
/** Tail size worth a warning: reads stay exact but scan it. */
const BEHIND_ROWS = 500_000;

/**
 * The one usage aggregator (a single object, by name): folds the usage log into the aggregates on
 * its alarm, so no HTTP request or Queue batch ever waits for aggregation. Queue consumers kick it
 * after each batch and the minute cron kicks it in case a chain stopped; a kick while it runs
 * makes it run once more. It holds no state: the watermark lives in Postgres.
 */
export class UsageAggregator extends DurableObject<CloudflareBindings> {
  /** Makes sure a run is due now (a run in progress is followed by one more). */
  async kick(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now());
  }

  /** Folds up to a bounded number of chunks; re-arms at once while the log has more. */
  override async alarm(): Promise<void> {
    const config = getConfig(this.env);
    const logger = createLogger({ component: "usage-aggregator" });
    const db = createDb(config, { onError: (err) => logger.warn("aggregator socket error", { err }) });
    try {
      const run = await aggregateLog(db, { maxChunks: MAX_CHUNKS_PER_ALARM });
      if (run.tail > BEHIND_ROWS) logger.warn("usage aggregator behind", { ...run });
      if (run.rows > 0 && run.tail > 0) await this.kick();
    } catch (err) {
      logger.error("usage aggregation failed", { err });
      await this.ctx.storage.setAlarm(Date.now() + RETRY_MS);
    } finally {
      await db.end();
    }
  }
}
