import { env } from "cloudflare:workers";
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import worker from "../../../src/index.ts";
import { withTransaction } from "../../../src/events/bus.ts";
import type { CloudEvent } from "../../../src/events/cloudevent.ts";
import { createEvent } from "../../../src/events/cloudevent.ts";
import { claimEvents } from "../../../src/events/consumers.ts";
import { relayOutbox, relayWithConfig } from "../../../src/events/relay.ts";
import type { RelayedEvent, RelaySinks } from "../../../src/events/relay.ts";
import type { QueueProducer } from "../../../src/platform/queue.ts";
import { createLogger } from "../../../src/platform/logger.ts";
import type { TapQueue } from "../support/backends.ts";
import { config, tapExchange, withDb } from "../support/backends.ts";

const org = () => `org_${crypto.randomUUID().slice(0, 8)}`;
const event = (organizationId: string, type: CloudEvent["type"] = "team.created") =>
  createEvent({ type, organizationId, source: "/tests", data: { n: Math.random() } });

/** A sink pair that records what it was given (Queue bodies are the events' JSON text). */
function recordingSinks(): RelaySinks & { queued: string[]; brokered: RelayedEvent[]; queuedIds(): string[] } {
  const queued: string[] = [];
  const brokered: RelayedEvent[] = [];
  const queue: QueueProducer = {
    send: async (body) => void queued.push(body as string),
    sendBatch: async (msgs) => {
      for (const m of msgs) queued.push(m.body as string);
    },
  };
  return {
    queue,
    publishToBroker: async (events) => void brokered.push(...events),
    queued,
    brokered,
    queuedIds: () => queued.map((b) => (JSON.parse(b) as CloudEvent).id),
  };
}

const pendingIds = (ids: string[]) =>
  withDb(async (db) =>
    (
      await db.query<{ id: string }>("select id from outbox where id = any($1) and published_at is null", [ids])
    ).rows.map((r) => r.id),
  );

let tap: TapQueue;
beforeAll(async () => {
  tap = await tapExchange(config().rabbitmq.exchange);
});
afterAll(() => tap.close());

describe("transactional outbox", () => {
  it("never publishes an event written in a rolled-back transaction", async () => {
    const o = org();
    const e = event(o);
    await withDb(async (db) => {
      await expect(
        withTransaction(db, async (_tx, outbox) => {
          await outbox.publish(e);
          throw new Error("abort");
        }),
      ).rejects.toThrow("abort");
      const { rowCount } = await db.query("select 1 from outbox where id = $1", [e.id]);
      expect(rowCount).toBe(0);
    });
    const sinks = recordingSinks();
    await withDb((db) => relayOutbox(db, sinks));
    expect(sinks.queuedIds()).not.toContain(e.id);
  });

  it("delivers a committed event to the Queue consumer and to a RabbitMQ consumer", async () => {
    const o = org();
    const e = event(o, "member.added");
    await withDb((db) =>
      withTransaction(db, async (tx, outbox) => {
        await tx.query("insert into organizations (id) values ($1)", [o]);
        await outbox.publish(e);
      }),
    );
    const r = await relayWithConfig({ config: config(), queue: env.PLATFORM_EVENTS, logger: createLogger() });
    expect(r.published).toBeGreaterThanOrEqual(1);
    expect(await pendingIds([e.id])).toEqual([]);
    // The real Queue delivers to the Worker's consumer, which archives the event.
    await vi.waitFor(
      async () => {
        const rows = await withDb((db) => db.query("select type, organization_id from events where id = $1", [e.id]));
        expect(rows.rows).toEqual([{ type: "member.added", organization_id: o }]);
      },
      { timeout: 10_000, interval: 50 },
    );
    const seen = await tap.take(1_000, 1_000);
    expect(seen.filter((m) => m.id === e.id)).toHaveLength(1);
    expect(seen.find((m) => m.id === e.id)?.type).toBe("member.added");
  });

  it("re-publishes after a crash between publish and mark, and the consumer applies it once", async () => {
    const o = org();
    const events = [event(o), event(o, "team.updated")];
    await withDb((db) => withTransaction(db, (_tx, outbox) => outbox.publishMany(events)));
    const first = recordingSinks();
    await withDb((db) =>
      relayOutbox(db, first, {
        afterPublish: () => {
          throw new Error("relay crashed before marking");
        },
      }),
    );
    expect(first.brokered.map((x) => x.id)).toEqual(expect.arrayContaining(events.map((x) => x.id)));
    expect(await pendingIds(events.map((x) => x.id))).toHaveLength(2); // still pending: not lost
    await withDb((db) =>
      db.query("update outbox set next_attempt_at = now() where id = any($1)", [events.map((x) => x.id)]),
    );
    const second = recordingSinks();
    await withDb((db) => relayOutbox(db, second));
    expect(second.queuedIds()).toEqual(expect.arrayContaining(events.map((x) => x.id)));
    expect(await pendingIds(events.map((x) => x.id))).toEqual([]);

    // Both deliveries reach the consumer; it dedupes to one effect per event.
    const delivered = [...first.queued, ...second.queued].filter((body) => events.some((e) => body.includes(e.id)));
    expect(delivered).toHaveLength(4);
    const batch = createMessageBatch(
      "platform-events",
      delivered.map((body, i) => ({ id: `m${i}`, timestamp: new Date(), attempts: 1, body })),
    );
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks.sort()).toEqual(["m0", "m1", "m2", "m3"]);
    const { rows } = await withDb((db) =>
      db.query<{ n: number }>("select count(*)::int as n from events where id = any($1)", [events.map((x) => x.id)]),
    );
    expect(rows[0]?.n).toBe(2);
  });

  it("lets two concurrent relays publish every row exactly once", async () => {
    const o = org();
    const events = Array.from({ length: 300 }, () => event(o, "document.updated"));
    await withDb((db) => withTransaction(db, (_tx, outbox) => outbox.publishMany(events)));
    const a = recordingSinks();
    const b = recordingSinks();
    await Promise.all([
      withDb((db) => relayOutbox(db, a, { batchSize: 25 })),
      withDb((db) => relayOutbox(db, b, { batchSize: 25 })),
    ]);
    const ids = new Set(events.map((e) => e.id));
    const fromA = a.brokered.filter((e) => ids.has(e.id)).map((e) => e.id);
    const fromB = b.brokered.filter((e) => ids.has(e.id)).map((e) => e.id);
    expect(fromA.length + fromB.length).toBe(300);
    expect(new Set([...fromA, ...fromB]).size).toBe(300);
  });

  it("keeps rows pending with the error and a backoff when a sink fails", async () => {
    const o = org();
    const e = event(o);
    await withDb((db) => withTransaction(db, (_tx, outbox) => outbox.publish(e)));
    const failing: RelaySinks = {
      ...recordingSinks(),
      publishToBroker: async () => {
        throw new Error("broker down");
      },
    };
    const r = await withDb((db) => relayOutbox(db, failing));
    expect(r.failed).toBeGreaterThanOrEqual(1);
    const { rows } = await withDb((db) =>
      db.query<{ attempts: number; last_error: string; later: boolean }>(
        "select attempts, last_error, next_attempt_at > now() as later from outbox where id = $1",
        [e.id],
      ),
    );
    expect(rows[0]).toEqual({ attempts: 1, last_error: "broker down", later: true });
  });

  it("claims event ids once per consumer, inside the caller's transaction", async () => {
    const ids = [crypto.randomUUID(), crypto.randomUUID()];
    await withDb(async (db) => {
      const first = await db.transaction((tx) => claimEvents(tx, "test-consumer", ids));
      expect([...first].sort()).toEqual([...ids].sort());
      const again = await db.transaction((tx) => claimEvents(tx, "test-consumer", [...ids, "new-id"]));
      expect([...again]).toEqual(["new-id"]);
      await expect(
        db.transaction(async (tx) => {
          await claimEvents(tx, "other-consumer", ids);
          throw new Error("effect failed");
        }),
      ).rejects.toThrow();
      // The failed effect released its claim: the event will be applied on retry.
      expect((await db.transaction((tx) => claimEvents(tx, "other-consumer", ids))).size).toBe(2);
    });
  });
});
