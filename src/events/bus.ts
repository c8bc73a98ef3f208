import type { Queryable } from "../platform/db.ts";
import type { CloudEvent } from "./cloudevent.ts";
import { cloudEventSchema } from "./cloudevent.ts";

/**
 * The seed's `eventBus` option of all three services. Publishing writes the events into the
 * transactional outbox; the relay (`relay.ts`) carries them to the Cloudflare Queue and RabbitMQ.
 * So an event is published if and only if the writes around it committed.
 */
export interface EventBus {
  /** Publishes one event (in the surrounding transaction, if the bus belongs to one). */
  publish(event: CloudEvent): Promise<void>;
  /** Publishes several events, in order. */
  publishMany(events: readonly CloudEvent[]): Promise<void>;
}

// Connections that inserted outbox rows; the platform's commit hook relays only after those.
const wroteOutbox = new WeakSet<Queryable>();

/** Whether events were written through `db` (a transaction's connection). */
export function hasOutboxWrites(db: Queryable): boolean {
  return wroteOutbox.has(db);
}

/** Writes events into the `outbox` table through `db` (a pool or a transaction's client). */
export class OutboxEventBus implements EventBus {
  private readonly db: Queryable;
  private readonly onWrite?: () => void;

  /**
   * @param db - where to insert; pass a transaction's client to commit events with the writes
   * @param onWrite - called after rows were inserted outside a transaction (kicks the relay)
   */
  constructor(db: Queryable, onWrite?: () => void) {
    this.db = db;
    this.onWrite = onWrite;
  }

  /** @inheritdoc */
  publish(event: CloudEvent): Promise<void> {
    return this.publishMany([event]);
  }

  /** @inheritdoc */
  async publishMany(events: readonly CloudEvent[]): Promise<void> {
    if (events.length === 0) return;
    // Validate on the way in: a malformed event must fail its producer, not every consumer.
    const valid = events.map((e) => cloudEventSchema.parse(e));
    await this.db.query(
      `insert into outbox (id, type, organization_id, event)
       select e->>'id', e->>'type', e->>'organizationid', e::json from jsonb_array_elements($1::jsonb) with ordinality as x(e, n)
       order by n
       on conflict (id) do nothing`,
      [JSON.stringify(valid)],
    );
    wroteOutbox.add(this.db);
    this.onWrite?.();
  }
}

/** A database that can run a transaction (the platform's {@link Db}). */
export interface Transactional {
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
}

/**
 * Runs `fn` in one transaction together with an outbox bound to it: events published through
 * `outbox` commit or roll back with the writes. The relay is kicked by the platform's commit hook.
 */
export function withTransaction<T>(db: Transactional, fn: (tx: Queryable, outbox: EventBus) => Promise<T>): Promise<T> {
  return db.transaction((tx) => fn(tx, new OutboxEventBus(tx)));
}
