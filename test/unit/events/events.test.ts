import { describe, expect, it, vi } from "vitest";
import { OutboxEventBus, hasOutboxWrites } from "../../../src/events/bus.ts";
import { eventTypes, isKnownPattern, matchesEventType } from "../../../src/events/catalog.ts";
import type { CloudEvent } from "../../../src/events/cloudevent.ts";
import { createEvent, parseCloudEvent } from "../../../src/events/cloudevent.ts";
import type { EventHandler, QueueMessage } from "../../../src/events/consumers.ts";
import { consumeEventBatch, retryDelaySeconds } from "../../../src/events/consumers.ts";
import { relayBackoffMs } from "../../../src/events/relay.ts";
import { chunkForQueue } from "../../../src/platform/queue.ts";
import { eventMessage, topology } from "../../../src/events/rabbit.ts";
import type { Queryable } from "../../../src/platform/db.ts";
import type { Platform } from "../../../src/platform/platform.ts";
import { createLogger } from "../../../src/platform/logger.ts";

const ev = (over: Partial<CloudEvent> = {}): CloudEvent => ({
  ...createEvent({ type: "team.created", organizationId: "org_1", source: "/t", data: { a: 1 } }),
  ...over,
});

describe("event catalog", () => {
  it("matches wildcards at any depth and exact types", () => {
    expect(matchesEventType("*", "team.created")).toBe(true);
    expect(matchesEventType("team.*", "team.created")).toBe(true);
    expect(matchesEventType("usage.*", "usage.quota.exceeded")).toBe(true);
    expect(matchesEventType("team.*", "teams.created")).toBe(false);
    expect(matchesEventType("team.created", "team.created")).toBe(true);
    expect(matchesEventType("team.created", "team.updated")).toBe(false);
  });

  it("accepts only patterns that match a known type", () => {
    expect(isKnownPattern("*")).toBe(true);
    expect(isKnownPattern("member.*")).toBe(true);
    expect(isKnownPattern("usage.quota.*")).toBe(true);
    expect(isKnownPattern("document.created")).toBe(true);
    expect(isKnownPattern("documnet.*")).toBe(false);
    expect(isKnownPattern("team.nope")).toBe(false);
    expect(isKnownPattern("team.**")).toBe(false);
  });

  it("covers every family the services need", () => {
    for (const family of [
      "document.",
      "collaboration.",
      "storage.",
      "presence.",
      "api.",
      "team.",
      "member.",
      "invitation.",
      "usage.",
      "webhook.",
    ]) {
      expect(eventTypes.some((t) => t.startsWith(family))).toBe(true);
    }
  });
});

describe("CloudEvents", () => {
  it("creates spec-shaped events", () => {
    const e = createEvent({
      type: "member.added",
      organizationId: "org_9",
      source: "/teams",
      subject: "teams/t1",
      data: { userId: "u" },
    });
    expect(e).toMatchObject({
      specversion: "1.0",
      type: "member.added",
      source: "/teams",
      subject: "teams/t1",
      datacontenttype: "application/json",
      organizationid: "org_9",
    });
    expect(parseCloudEvent(e)).toEqual({ ok: true, event: e });
  });

  it("parses JSON strings and reports every problem", () => {
    expect(parseCloudEvent(JSON.stringify(ev())).ok).toBe(true);
    expect(parseCloudEvent("{oops")).toEqual({ ok: false, reason: "body is not JSON" });
    const bad = parseCloudEvent({ ...ev(), specversion: "0.3", type: "team.exploded", organizationid: "" });
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.reason).toMatch(/specversion/);
      expect(bad.reason).toMatch(/unknown event type/);
      expect(bad.reason).toMatch(/organizationid/);
    }
  });

  it("serialises persistent AMQP messages keyed by id", () => {
    const e = ev();
    const m = eventMessage(e);
    expect(JSON.parse(m.body)).toEqual(e);
    expect(m.properties).toMatchObject({
      deliveryMode: 2,
      messageId: e.id,
      contentType: "application/cloudevents+json",
    });
  });

  it("derives per-deployment broker names from configuration", () => {
    const t = topology({ url: "amqp://x", exchange: "ex", queuePrefix: "p." });
    expect(t).toMatchObject({ exchange: "ex", deadLetterExchange: "ex.dlx", deadLetterQueue: "p.dead-letter" });
    expect(t.inbound[0]).toEqual({
      queue: "p.usage-inbound",
      bindings: ["document.#", "collaboration.#", "storage.#", "presence.#", "api.#"],
    });
  });
});

describe("outbox bus", () => {
  it("inserts validated events in order and marks the connection", async () => {
    const calls: { text: string; params?: readonly unknown[] }[] = [];
    const db: Queryable = {
      query: async (text, params) => {
        calls.push({ text, params });
        return { rows: [], rowCount: 0 };
      },
    };
    const kick = vi.fn();
    const bus = new OutboxEventBus(db, kick);
    const events = [ev(), ev({ type: "team.updated" })];
    await bus.publishMany(events);
    expect(calls).toHaveLength(1);
    expect(JSON.parse(String(calls[0]!.params![0])).map((e: CloudEvent) => e.id)).toEqual(events.map((e) => e.id));
    expect(kick).toHaveBeenCalledOnce();
    expect(hasOutboxWrites(db)).toBe(true);
  });

  it("rejects an invalid event before writing anything", async () => {
    const query = vi.fn();
    const bus = new OutboxEventBus({ query } as unknown as Queryable);
    await expect(bus.publish({ ...ev(), type: "nope" } as unknown as CloudEvent)).rejects.toThrow();
    expect(query).not.toHaveBeenCalled();
  });

  it("writes nothing for an empty list", async () => {
    const query = vi.fn();
    await new OutboxEventBus({ query } as unknown as Queryable).publishMany([]);
    expect(query).not.toHaveBeenCalled();
  });
});

describe("relay helpers", () => {
  it("chunks by the Queue's 100-message limit", () => {
    const chunks = chunkForQueue(Array.from({ length: 250 }, (_, i) => i));
    expect(chunks.map((c) => c.length)).toEqual([100, 100, 50]);
  });

  it("chunks by size before count", () => {
    const big = "x".repeat(100_000);
    expect(chunkForQueue([big, big, big]).map((c) => c.length)).toEqual([2, 1]);
  });

  it("backs off exponentially with a cap", () => {
    expect([1, 2, 3, 4].map(relayBackoffMs)).toEqual([1000, 2000, 4000, 8000]);
    expect(relayBackoffMs(30)).toBe(300_000);
    expect([1, 2, 3].map(retryDelaySeconds)).toEqual([5, 10, 20]);
    expect(retryDelaySeconds(20)).toBe(900);
  });
});

describe("consumeEventBatch", () => {
  const fakePlatform = (queries: string[] = []) =>
    ({
      db: {
        query: async (t: string) => {
          queries.push(t);
          return { rows: [], rowCount: 0 };
        },
      },
      logger: createLogger({ test: true }),
    }) as unknown as Platform;
  const msg = (id: string, body: unknown, attempts = 1) => {
    const m = {
      id,
      body,
      attempts,
      acked: false,
      retried: undefined as number | undefined,
      ack: () => void (m.acked = true),
      retry: (o?: { delaySeconds?: number }) => void (m.retried = o?.delaySeconds),
    };
    return m satisfies QueueMessage;
  };

  it("applies a duplicate within a batch once and acks both copies", async () => {
    const e = ev();
    const seen: string[] = [];
    const handler: EventHandler = { name: "h", handle: async (events) => void seen.push(...events.map((x) => x.id)) };
    const a = msg("a", e);
    const b = msg("b", e);
    await consumeEventBatch({ queue: "q", messages: [a, b] }, [handler], fakePlatform());
    expect(seen).toEqual([e.id]);
    expect(a.acked && b.acked).toBe(true);
  });

  it("keys duplicates on (organization, id): the same id in two organizations is two events", async () => {
    const a = { ...ev(), id: "shared-id", organizationid: "org_a" };
    const b = { ...a, organizationid: "org_b" };
    const seen: string[] = [];
    const handler: EventHandler = {
      name: "h",
      handle: async (events) => void seen.push(...events.map((x) => `${x.organizationid}/${x.id}`)),
    };
    const messages = [msg("1", a), msg("2", b), msg("3", a)];
    await consumeEventBatch({ queue: "q", messages }, [handler], fakePlatform());
    expect(seen.sort()).toEqual(["org_a/shared-id", "org_b/shared-id"]);
    expect(messages.every((m) => m.acked)).toBe(true);
  });

  it("dead-letters invalid bodies at once instead of retrying them", async () => {
    const queries: string[] = [];
    const bad = msg("bad", { hello: "world" });
    const handle = vi.fn(async () => {});
    await consumeEventBatch({ queue: "q", messages: [bad] }, [{ name: "h", handle }], fakePlatform(queries));
    expect(bad.acked).toBe(true);
    expect(queries.some((q) => q.includes("dead_letters"))).toBe(true);
    expect(handle).not.toHaveBeenCalled();
  });

  it("isolates a poison event: the others are acked, it is retried with backoff", async () => {
    const good = ev();
    const poison = ev();
    const handler: EventHandler = {
      name: "h",
      handle: async (events) => {
        if (events.some((e) => e.id === poison.id)) throw new Error("cannot apply");
      },
    };
    const g = msg("g", good);
    const p = msg("p", poison, 3);
    await consumeEventBatch({ queue: "q", messages: [g, p] }, [handler], fakePlatform());
    expect(g.acked).toBe(true);
    expect(p.acked).toBe(false);
    expect(p.retried).toBe(20);
  });

  it("runs every handler in order", async () => {
    const order: string[] = [];
    const h = (name: string): EventHandler => ({ name, handle: async () => void order.push(name) });
    await consumeEventBatch({ queue: "q", messages: [msg("m", ev())] }, [h("first"), h("second")], fakePlatform());
    expect(order).toEqual(["first", "second"]);
  });
});
