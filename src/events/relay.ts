import type { Config } from "../platform/config.ts";
import type { Db } from "../platform/db.ts";
import { createDb } from "../platform/db.ts";
import type { Logger } from "../platform/logger.ts";
import type { QueueProducer } from "../platform/queue.ts";
import { sendTexts } from "../platform/queue.ts";
import type { BrokerPublisher } from "./rabbit.ts";
import { openPublisher } from "./rabbit.ts";

/**
 * The outbox relay: takes pending rows in creation order under `FOR UPDATE SKIP LOCKED` (so two
 * relays never take the same row), hands them to the Cloudflare Queue and to RabbitMQ (with
 * publisher confirms), and marks them published in the same transaction. A crash between
 * publishing and marking rolls the lock back and the rows go out again: at-least-once, and every
 * consumer dedupes by event id.
 */

/**
 * An outbox row as relayed: the event's JSON text is passed through untouched (no parse and
 * re-serialise per event), with the attributes a broker message needs beside it.
 */
export interface RelayedEvent {
  id: string;
  type: string;
  /** The CloudEvent, serialised. */
  body: string;
}

/** Where relayed events go. */
export interface RelaySinks {
  /** The `platform-events` Queue. */
  queue: QueueProducer;
  /** Publishes to RabbitMQ and resolves only when the broker confirmed all of them. */
  publishToBroker(events: readonly RelayedEvent[]): Promise<void>;
}

/** Options of {@link relayOutbox}. */
export interface RelayOptions {
  /** Rows per transaction (default 1000). */
  batchSize?: number;
  /** Stop after this many batches (default 50), so one invocation stays bounded. */
  maxBatches?: number;
  /** Batches in flight at once (default 1). */
  lanes?: number;
  logger?: Logger;
  /** Test hook: runs after both sinks accepted a batch and before it is marked (simulate a crash by throwing). */
  afterPublish?: (events: readonly RelayedEvent[]) => Promise<void> | void;
  /** Clock for backoff of failed rows. */
  now?: () => number;
}

/** Outcome of one relay run. */
export interface RelayResult {
  published: number;
  failed: number;
  batches: number;
}

/** Backoff of a row whose publication failed `attempts` times: 1 s, 2 s, 4 s … capped at 5 min. */
export function relayBackoffMs(attempts: number): number {
  return Math.min(1000 * 2 ** Math.max(0, attempts - 1), 300_000);
}

/**
 * Publishes pending outbox rows; safe to run concurrently with other relays. Each batch is claimed
 * and marked in one statement inside a transaction that commits only after both sinks accepted the
 * batch — a failure or crash in between rolls the mark back. `lanes` batches are in flight at once:
 * each batch is in creation order, consecutive batches may interleave.
 */
export async function relayOutbox(db: Db, sinks: RelaySinks, opts: RelayOptions = {}): Promise<RelayResult> {
  const batchSize = opts.batchSize ?? 1000;
  const maxBatches = opts.maxBatches ?? 50;
  const result: RelayResult = { published: 0, failed: 0, batches: 0 };
  let stop = false;

  const lane = async () => {
    while (!stop && result.batches < maxBatches) {
      result.batches += 1;
      let taken: (RelayedEvent & { seq: string; attempts: number })[] = [];
      try {
        const n = await db.transaction(async (tx) => {
          // Losing this commit in a crash only means publishing the batch again (at-least-once,
          // consumers dedupe), so the mark need not wait for its WAL flush.
          await tx.query("set local synchronous_commit = off");
          const { rows } = await tx.query<RelayedEvent & { seq: string; attempts: number }>(
            `update outbox o set published_at = now(), attempts = o.attempts + 1, last_error = null
             from (select seq from outbox
                   where published_at is null and next_attempt_at <= now()
                   order by seq limit $1 for update skip locked) pick
             where o.seq = pick.seq
             returning o.seq, o.attempts - 1 as attempts, o.id, o.type, o.event::text as body`,
            [batchSize],
          );
          taken = rows.sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
          if (rows.length === 0) return 0;
          // Both sinks in parallel: the batch stays locked until both accepted it anyway. The Queue
          // gets the JSON text; consumers parse it (parseCloudEvent takes strings and objects).
          await Promise.all([
            sendTexts(
              sinks.queue,
              taken.map((r) => r.body),
            ),
            sinks.publishToBroker(taken),
          ]);
          await opts.afterPublish?.(taken);
          return rows.length;
        });
        if (n === 0) stop = true;
        result.published += n;
      } catch (err) {
        stop = true;
        result.failed += taken.length;
        opts.logger?.error("outbox relay failed", { err, events: taken.length, firstSeq: taken[0]?.seq });
        if (taken.length > 0) {
          // Recorded outside the rolled-back transaction so operators see why rows are stuck.
          const attempts = Math.max(...taken.map((r) => r.attempts)) + 1;
          await db
            .query(
              `update outbox set attempts = attempts + 1, last_error = $2,
                 next_attempt_at = now() + ($3::int * interval '1 millisecond')
               where seq = any($1::bigint[]) and published_at is null`,
              [
                taken.map((r) => r.seq),
                String((err as Error)?.message ?? err).slice(0, 1000),
                relayBackoffMs(attempts),
              ],
            )
            .catch((e: unknown) => opts.logger?.error("outbox relay bookkeeping failed", { err: e }));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.lanes ?? 1) }, lane));
  return result;
}

/** Counts and lag of the outbox, for `/readyz` and the operator view. */
export interface OutboxStats {
  pending: number;
  failing: number;
  published: number;
  oldestPendingAgeSeconds: number | null;
}

/** Reads {@link OutboxStats}. */
export async function outboxStats(db: Pick<Db, "query">): Promise<OutboxStats> {
  const { rows } = await db.query<{ pending: number; failing: number; published: number; age: number | null }>(
    `select count(*) filter (where published_at is null)::int as pending,
            count(*) filter (where published_at is null and attempts > 0)::int as failing,
            count(*) filter (where published_at is not null)::int as published,
            extract(epoch from now() - min(created_at) filter (where published_at is null))::float8 as age
     from outbox`,
  );
  const r = rows[0]!;
  return {
    pending: r.pending,
    failing: r.failing,
    published: r.published,
    oldestPendingAgeSeconds: r.age === null ? null : Math.round(r.age),
  };
}

/** What {@link relayWithConfig} needs: configuration, the Queue binding and a logger. */
export interface RelayContext {
  config: Pick<Config, "databaseUrl" | "databaseWsProxy" | "rabbitmq" | "events">;
  queue: QueueProducer;
  logger: Logger;
}

/**
 * One relay run with its own pool (so its commits do not re-trigger the commit hook) and one
 * RabbitMQ connection opened on first use.
 */
export async function relayWithConfig(
  ctx: RelayContext,
  opts: Omit<RelayOptions, "logger"> = {},
): Promise<RelayResult> {
  const db = createDb(ctx.config, { onError: (err) => ctx.logger.warn("relay socket error", { err }) });
  let publisher: Promise<BrokerPublisher> | undefined;
  try {
    return await relayOutbox(
      db,
      {
        queue: ctx.queue,
        publishToBroker: async (events) => (await (publisher ??= openPublisher(ctx.config.rabbitmq))).publish(events),
      },
      { lanes: ctx.config.events.relayLanes, ...opts, logger: ctx.logger },
    );
  } finally {
    if (publisher) await (await publisher.catch(() => undefined))?.close();
    await db.end();
  }
}
