import type { Queryable } from "../platform/db.ts";
import type { Platform } from "../platform/platform.ts";
import { toStorable } from "../platform/validation.ts";
import type { CloudEvent } from "./cloudevent.ts";
import { eventKey, parseCloudEvent } from "./cloudevent.ts";

/**
 * Queue consumers for CloudEvents. Every handler must be idempotent by event id (a natural unique
 * key, or {@link claimEvents} in the transaction of its effect): Queues deliver at least once and
 * the outbox relay may publish twice after a crash.
 */

/** A Cloudflare Queue message, as far as consumers use it (kept structural for Deno and fakes). */
export interface QueueMessage {
  readonly id: string;
  readonly body: unknown;
  readonly attempts: number;
  ack(): void;
  retry(options?: { delaySeconds?: number }): void;
}

/** A batch of one queue. */
export interface QueueBatch {
  readonly queue: string;
  readonly messages: readonly QueueMessage[];
}

/** One consumer of events; `name` identifies it in `processed_events` and logs. */
export interface EventHandler {
  readonly name: string;
  /** Applies the events (already validated, unique by organization and id within the call). Throws to have them retried. */
  handle(events: readonly CloudEvent[], platform: Platform): Promise<void>;
}

/** Delay before the n-th retry of a message: 5 s, 10 s, 20 s … capped at 15 min. */
export function retryDelaySeconds(attempts: number): number {
  return Math.min(5 * 2 ** Math.max(0, attempts - 1), 900);
}

/**
 * Claims event ids for `consumer` inside the caller's transaction; returns the ids not processed
 * before. The claim commits or rolls back with the effect, so an event is applied exactly once.
 */
export async function claimEvents(tx: Queryable, consumer: string, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const { rows } = await tx.query<{ event_id: string }>(
    `insert into processed_events (consumer, event_id)
     select $1, unnest($2::text[]) on conflict do nothing returning event_id`,
    [consumer, ids],
  );
  return new Set(rows.map((r) => r.event_id));
}

/** Records messages nobody could process, for operators (`GET /v1/internal/events/dead-letters`). */
export async function recordDeadLetters(
  db: Queryable,
  source: string,
  letters: readonly { messageId?: string; eventId?: string; reason: string; body: unknown; attempts?: number }[],
): Promise<void> {
  if (letters.length === 0) return;
  await db.query(
    `insert into dead_letters (source, message_id, event_id, reason, body, attempts)
     select $1, l->>'messageId', l->>'eventId', l->>'reason', l->'body', (l->>'attempts')::int
     from jsonb_array_elements($2::jsonb) as l`,
    // What was refused for holding what Postgres cannot store is kept with it replaced (U+FFFD).
    [source, JSON.stringify(toStorable(letters.map((l) => ({ ...l, body: l.body ?? null }))))],
  );
}

/**
 * Consumes one batch: invalid bodies are dead-lettered at once (retrying cannot fix them), valid
 * events go to every handler; if the batch fails, each event is retried alone so one poison event
 * cannot hold back the others, and failing ones are retried with backoff (then the Queue's DLQ).
 */
export async function consumeEventBatch(
  batch: QueueBatch,
  handlers: readonly EventHandler[],
  platform: Platform,
): Promise<void> {
  const byKey = new Map<string, { event: CloudEvent; messages: QueueMessage[] }>();
  const invalid: { msg: QueueMessage; reason: string }[] = [];
  for (const msg of batch.messages) {
    const parsed = parseCloudEvent(msg.body);
    if (!parsed.ok) {
      invalid.push({ msg, reason: parsed.reason });
      continue;
    }
    // Same event twice in one batch: apply once, ack both. Ids are unique per organization only.
    const key = eventKey(parsed.event.organizationid, parsed.event.id);
    const entry = byKey.get(key);
    if (entry) entry.messages.push(msg);
    else byKey.set(key, { event: parsed.event, messages: [msg] });
  }

  if (invalid.length > 0) {
    await recordDeadLetters(
      platform.db,
      batch.queue,
      invalid.map(({ msg, reason }) => ({ messageId: msg.id, reason, body: msg.body, attempts: msg.attempts })),
    );
    for (const { msg } of invalid) msg.ack();
    platform.logger.warn("invalid events dead-lettered", { queue: batch.queue, count: invalid.length });
  }

  const entries = [...byKey.values()];
  const run = (events: CloudEvent[]) =>
    handlers.reduce((p, h) => p.then(() => h.handle(events, platform)), Promise.resolve());
  try {
    if (entries.length > 0) await run(entries.map((e) => e.event));
    for (const e of entries) for (const m of e.messages) m.ack();
  } catch (batchErr) {
    if (entries.length === 1) platform.logger.error("event handling failed", { queue: batch.queue, err: batchErr });
    for (const e of entries) {
      try {
        if (entries.length > 1) await run([e.event]);
        else throw batchErr;
        for (const m of e.messages) m.ack();
      } catch (err) {
        if (entries.length > 1)
          platform.logger.error("event handling failed", { queue: batch.queue, eventId: e.event.id, err });
        for (const m of e.messages) m.retry({ delaySeconds: retryDelaySeconds(m.attempts) });
      }
    }
  }
}

/** Consumer of a dead-letter queue: keeps each message in `dead_letters` with its history, then acks. */
export async function consumeDeadLetters(batch: QueueBatch, platform: Platform): Promise<void> {
  await recordDeadLetters(
    platform.db,
    batch.queue,
    batch.messages.map((m) => {
      const parsed = parseCloudEvent(m.body);
      return {
        messageId: m.id,
        eventId: parsed.ok ? parsed.event.id : undefined,
        reason: "retries exhausted",
        body: m.body,
        attempts: m.attempts,
      };
    }),
  );
  for (const m of batch.messages) m.ack();
  platform.logger.error("messages dead-lettered", { queue: batch.queue, count: batch.messages.length });
}

/** Archives every event in `events` (idempotent on the event id). */
export const archiveHandler: EventHandler = {
  name: "archive",
  async handle(events, platform) {
    await platform.db.query(
      `insert into events (id, type, source, organization_id, subject, time, data)
       select e->>'id', e->>'type', e->>'source', e->>'organizationid', e->>'subject', (e->>'time')::timestamptz, coalesce(e->'data', '{}'::jsonb)
       from jsonb_array_elements($1::jsonb) as e
       on conflict (id) do nothing`,
      [JSON.stringify(events)],
    );
  },
};
