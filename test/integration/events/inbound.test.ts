import { env } from "cloudflare:workers";
import { runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import type { CloudEvent } from "../../../src/events/cloudevent.ts";
import { createEvent } from "../../../src/events/cloudevent.ts";
import { REASON_HEADER, drainInbound } from "../../../src/events/inbound.ts";
import { declareTopology, topology } from "../../../src/events/rabbit.ts";
import { withAmqp } from "../../../src/platform/amqp.ts";
import { config, withDb } from "../support/backends.ts";

const t = () => topology(config().rabbitmq);
const inboundQueue = () => t().inbound[0]!.queue;

/** Publishes raw bodies to the platform exchange, as another CloudMatrix service would. */
async function publishFromOtherService(messages: { routingKey: string; body: string }[]) {
  await withAmqp(config().rabbitmq.url, async (client) => {
    const ch = await client.channel();
    await declareTopology(ch, t());
    await ch.confirmSelect();
    await Promise.all(
      messages.map((m) =>
        ch.basicPublish(t().exchange, m.routingKey, m.body, {
          deliveryMode: 2,
          contentType: "application/cloudevents+json",
        }),
      ),
    );
  });
}

const docEvent = (): CloudEvent =>
  createEvent({
    type: "document.created",
    organizationId: "org_in",
    source: "/documents",
    subject: "documents/d1",
    data: { userId: "u1", resourceId: "d1", resourceType: "document" },
  });

const drain = (deliver: (events: CloudEvent[]) => Promise<void>) =>
  drainInbound({
    url: config().rabbitmq.url,
    topology: t(),
    queue: inboundQueue(),
    deliver,
    idleMs: 100,
    maxMs: 3_000,
  });

describe("inbound RabbitMQ → usage-events Queue", () => {
  it("hands an event from another service to the usage consumer via the inbound object's alarm", async () => {
    const e = docEvent();
    await publishFromOtherService([{ routingKey: e.type, body: JSON.stringify(e) }]);
    const stub = env.RABBIT_INBOUND.get(env.RABBIT_INBOUND.idFromName(inboundQueue()));
    await stub.kick(inboundQueue());
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await vi.waitFor(
      async () => {
        const { rows } = await withDb((db) =>
          db.query("select event_type, organization_id, user_id, resource_id from usage_log where event_id = $1", [
            e.id,
          ]),
        );
        expect(rows).toEqual([
          { event_type: "document.created", organization_id: "org_in", user_id: "u1", resource_id: "d1" },
        ]);
      },
      { timeout: 10_000, interval: 50 },
    );
  });

  it("does not ack when the hand-off fails: the message comes back", async () => {
    const e = docEvent();
    await publishFromOtherService([{ routingKey: e.type, body: JSON.stringify(e) }]);
    const failed = await drain(async () => {
      throw new Error("queue unavailable");
    });
    expect(failed).toMatchObject({ received: 1, delivered: 0, requeued: 1 });
    const got: CloudEvent[] = [];
    const ok = await drain(async (events) => void got.push(...events));
    expect(ok).toMatchObject({ received: 1, delivered: 1 });
    expect(got.map((x) => x.id)).toEqual([e.id]);
  });

  it("settles a burst chunk by chunk: a failed hand-off requeues exactly that chunk and the rest, past a dead letter", async () => {
    const events = Array.from({ length: 25 }, () => docEvent());
    await publishFromOtherService([
      ...events.slice(0, 5).map((e) => ({ routingKey: e.type, body: JSON.stringify(e) })),
      { routingKey: "document.created", body: "{not json" }, // dead-lettered inside the first chunk
      ...events.slice(5).map((e) => ({ routingKey: e.type, body: JSON.stringify(e) })),
    ]);
    const got: string[] = [];
    let calls = 0;
    const first = await drainInbound({
      url: config().rabbitmq.url,
      topology: t(),
      queue: inboundQueue(),
      idleMs: 100,
      maxMs: 3_000,
      chunkSize: 10,
      deliver: async (chunk) => {
        if (++calls === 2) throw new Error("queue unavailable");
        got.push(...chunk.map((e) => e.id));
      },
    });
    expect(first).toMatchObject({ received: 26, delivered: 10, deadLettered: 1, requeued: 15 });
    const again: string[] = [];
    const second = await drain(async (chunk) => void again.push(...chunk.map((e) => e.id)));
    expect(second).toMatchObject({ received: 15, delivered: 15, deadLettered: 0 });
    // Publish order is arrival order here (one channel), so the chunks are the first 10 and the rest.
    expect(new Set(got)).toEqual(new Set(events.slice(0, 10).map((e) => e.id)));
    expect(new Set(again)).toEqual(new Set(events.slice(10).map((e) => e.id)));
    const third = await drain(async () => undefined);
    expect(third).toMatchObject({ received: 0 });
    await withAmqp(config().rabbitmq.url, async (client) => {
      const ch = await client.channel();
      await ch.queuePurge(t().deadLetterQueue);
    });
  });

  it("dead-letters malformed messages with the reason and keeps the valid ones flowing", async () => {
    const e = docEvent();
    await publishFromOtherService([
      { routingKey: "document.created", body: "{not json" },
      { routingKey: "storage.upload", body: JSON.stringify({ ...docEvent(), type: "storage.exploded" }) },
      // What Postgres cannot store (its id goes to the log and to webhook deliveries): refused here.
      { routingKey: "document.updated", body: JSON.stringify({ ...docEvent(), id: "a\u0000b" }) },
      { routingKey: "document.updated", body: JSON.stringify({ ...docEvent(), data: { title: "\ud800" } }) },
      {
        routingKey: "document.updated",
        body: JSON.stringify({ ...docEvent(), data: {} }).replace(
          '"data":{}',
          `"data":${'{"a":'.repeat(30_000)}1${"}".repeat(30_000)}`,
        ),
      },
      { routingKey: e.type, body: JSON.stringify(e) },
    ]);
    const got: CloudEvent[] = [];
    const r = await drain(async (events) => void got.push(...events));
    expect(r).toMatchObject({ received: 6, delivered: 1, deadLettered: 5 });
    expect(got.map((x) => x.id)).toEqual([e.id]);
    const dead = await withAmqp(config().rabbitmq.url, async (client) => {
      const ch = await client.channel();
      const out: { reason: unknown; routingKey: string }[] = [];
      for (let i = 0; i < 5; i++) {
        const m = await ch.basicGet(t().deadLetterQueue, { noAck: true });
        if (m) out.push({ reason: m.properties.headers?.[REASON_HEADER], routingKey: m.routingKey });
      }
      return out;
    });
    expect(dead).toHaveLength(5);
    expect(dead.map((d) => d.routingKey).sort()).toEqual([
      "document.created",
      "document.updated",
      "document.updated",
      "document.updated",
      "storage.upload",
    ]);
    const reasons = dead.map((d) => String(d.reason)).join(" | ");
    expect(reasons).toMatch(/not JSON/);
    expect(reasons).toMatch(/unknown event type/);
    expect(reasons).toMatch(/nests deeper than 64 levels/);
    expect(reasons).toMatch(/^(?=(.*id: must not contain U\+0000))(?=(.*data\.title: must not contain U\+0000))/);
  });

  it("meters the same CloudEvent id in two organizations as two events", async () => {
    const id = crypto.randomUUID();
    const orgs = [`org_in_${id.slice(0, 8)}_a`, `org_in_${id.slice(0, 8)}_b`];
    const events = orgs.map((organizationId) =>
      createEvent({ id, type: "api.call", organizationId, source: "/api", data: { userId: "u1" } }),
    );
    await publishFromOtherService(events.map((e) => ({ routingKey: e.type, body: JSON.stringify(e) })));
    const stub = env.RABBIT_INBOUND.get(env.RABBIT_INBOUND.idFromName(inboundQueue()));
    await stub.kick(inboundQueue());
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await vi.waitFor(
      async () => {
        const { rows } = await withDb((db) =>
          db.query("select organization_id from usage_log where event_id = $1 order by 1", [id]),
        );
        expect(rows.map((r) => r.organization_id)).toEqual(orgs);
      },
      { timeout: 10_000, interval: 50 },
    );
  });

  it("judges usage events once, when taking them off RabbitMQ: too old is dead-lettered with the reason", async () => {
    const horizonDays = config().usage.lateEventHorizonDays;
    const old = createEvent({
      type: "api.call",
      organizationId: "org_in",
      source: "/api",
      data: { userId: "u1" },
      time: new Date(Date.now() - (horizonDays + 1) * 86_400_000),
    });
    const fresh = createEvent({ type: "api.call", organizationId: "org_in", source: "/api", data: { userId: "u1" } });
    await publishFromOtherService([old, fresh].map((e) => ({ routingKey: e.type, body: JSON.stringify(e) })));
    const stub = env.RABBIT_INBOUND.get(env.RABBIT_INBOUND.idFromName(inboundQueue()));
    await stub.kick(inboundQueue());
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await vi.waitFor(
      async () => {
        const { rows } = await withDb((db) =>
          db.query("select event_id from usage_log where event_id = any($1)", [[old.id, fresh.id]]),
        );
        expect(rows).toEqual([{ event_id: fresh.id }]);
      },
      { timeout: 10_000, interval: 50 },
    );
    const dead = await withAmqp(config().rabbitmq.url, async (client) => {
      const m = await (await client.channel()).basicGet(t().deadLetterQueue, { noAck: true });
      return { reason: String(m?.properties.headers?.[REASON_HEADER]), id: JSON.parse(m?.bodyToString() ?? "{}").id };
    });
    expect(dead).toEqual({ reason: expect.stringContaining("late-event horizon"), id: old.id });
  });

  it("stops a burst at maxMessages and reports that more may wait", async () => {
    const events = Array.from({ length: 30 }, docEvent);
    await publishFromOtherService(events.map((e) => ({ routingKey: e.type, body: JSON.stringify(e) })));
    const got: CloudEvent[] = [];
    const first = await drainInbound({
      url: config().rabbitmq.url,
      topology: t(),
      queue: inboundQueue(),
      deliver: async (x) => void got.push(...x),
      maxMessages: 20,
      idleMs: 200,
    });
    expect(first).toMatchObject({ received: 20, delivered: 20, full: true });
    const second = await drain(async (x) => void got.push(...x));
    expect(second).toMatchObject({ received: 10, full: false });
    expect(new Set(got.map((x) => x.id))).toEqual(new Set(events.map((e) => e.id)));
  });
});
