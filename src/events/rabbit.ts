import type { AMQPChannel } from "@cloudamqp/amqp-client";
import type { AMQPClient } from "../platform/amqp.ts";
import { connectAmqp, withAmqp } from "../platform/amqp.ts";
import type { Config } from "../platform/config.ts";
import type { CloudEvent } from "./cloudevent.ts";

/**
 * RabbitMQ topology and publishing. The platform's events travel on one durable topic exchange
 * (routing key = event type); this project's inbound queue binds the types it meters, and
 * messages it cannot use go to a dead-letter exchange with the reason in a header.
 */

/** Names of everything this project declares on the broker. */
export interface Topology {
  exchange: string;
  deadLetterExchange: string;
  deadLetterQueue: string;
  /** Inbound queues and the routing keys bound to each. */
  inbound: { queue: string; bindings: string[] }[];
}

/** Routing keys of the events other CloudMatrix services publish for usage metering. */
export const USAGE_BINDINGS = ["document.#", "collaboration.#", "storage.#", "presence.#", "api.#"];

/** Derives the topology from configuration (tests get per-run names through the same settings). */
export function topology(rabbit: Config["rabbitmq"]): Topology {
  return {
    exchange: rabbit.exchange,
    deadLetterExchange: `${rabbit.exchange}.dlx`,
    deadLetterQueue: `${rabbit.queuePrefix}dead-letter`,
    inbound: [{ queue: `${rabbit.queuePrefix}usage-inbound`, bindings: USAGE_BINDINGS }],
  };
}

/** Declares exchanges, queues and bindings (idempotent; cheap enough to run per connection). */
export async function declareTopology(ch: AMQPChannel, t: Topology): Promise<void> {
  await ch.exchangeDeclare(t.exchange, "topic", { durable: true });
  await ch.exchangeDeclare(t.deadLetterExchange, "topic", { durable: true });
  await ch.queueDeclare(t.deadLetterQueue, { durable: true });
  await ch.queueBind(t.deadLetterQueue, t.deadLetterExchange, "#");
  for (const q of t.inbound) {
    await ch.queueDeclare(q.queue, { durable: true });
    for (const key of q.bindings) await ch.queueBind(q.queue, t.exchange, key);
  }
}

/**
 * Declares the whole topology on its own connection: what `npm run setup` (deploys) and the local
 * environment (`npm run dev`, tests) run before the service may report ready, so events other
 * services publish from the first moment are routed to the inbound queue instead of dropped.
 */
export async function ensureTopology(rabbit: Config["rabbitmq"]): Promise<Topology> {
  const t = topology(rabbit);
  await withAmqp(rabbit.url, async (client) => declareTopology(await client.channel(), t));
  return t;
}

/**
 * What of the topology is missing on the broker, e.g. `["queue cloudmatrix-edge.usage-inbound
 * missing"]`, by passive declares. The broker closes a channel whose passive declare fails, so each
 * check gets a channel of its own. Bindings cannot be checked passively in AMQP 0-9-1; they are
 * declared together with their queue, so a present queue has them unless someone removed them.
 */
export async function missingTopology(client: AMQPClient, t: Topology): Promise<string[]> {
  const checks: { what: string; declare: (ch: AMQPChannel) => Promise<unknown> }[] = [
    ...[t.exchange, t.deadLetterExchange].map((x) => ({
      what: `exchange ${x}`,
      declare: (ch: AMQPChannel) => ch.exchangeDeclare(x, "topic", { passive: true }),
    })),
    ...[...t.inbound.map((i) => i.queue), t.deadLetterQueue].map((q) => ({
      what: `queue ${q}`,
      declare: (ch: AMQPChannel) => ch.queueDeclare(q, { passive: true }),
    })),
  ];
  const results = await Promise.all(
    checks.map(async ({ what, declare }) => {
      const ch = await client.channel();
      try {
        await declare(ch);
        await ch.close().catch(() => undefined);
        return undefined;
      } catch (err) {
        // 404 NOT_FOUND is the answer "missing"; anything else (a lost connection) is a failed probe.
        if (err instanceof Error && /\(404\)$/.test(err.message)) return `${what} missing`;
        throw err;
      }
    }),
  );
  return results.filter((r): r is string => r !== undefined);
}

/** Properties of a persistent structured-mode CloudEvents message. */
export function messageProperties(event: { id: string; type: string }) {
  return {
    contentType: "application/cloudevents+json",
    deliveryMode: 2 as const,
    messageId: event.id,
    type: event.type,
  };
}

/** Serialises an event as a persistent structured-mode CloudEvents message. */
export function eventMessage(event: CloudEvent) {
  return { body: JSON.stringify(event), properties: messageProperties(event) };
}

/** A confirm-mode channel on the platform exchange, kept for one relay run. */
export interface BrokerPublisher {
  /** Publishes in order; resolves once the broker confirmed every event. */
  publish(events: readonly { id: string; type: string; body: string }[]): Promise<void>;
  close(): Promise<void>;
}

/** Connects, declares the exchange and enables publisher confirms. */
export async function openPublisher(rabbit: Pick<Config["rabbitmq"], "url" | "exchange">): Promise<BrokerPublisher> {
  const client = await connectAmqp(rabbit.url);
  try {
    const ch = await client.channel();
    await ch.confirmSelect();
    await ch.exchangeDeclare(rabbit.exchange, "topic", { durable: true });
    return {
      async publish(events) {
        // Publishing without awaiting each confirm keeps the pipe full; one channel keeps the order.
        await Promise.all(events.map((e) => ch.basicPublish(rabbit.exchange, e.type, e.body, messageProperties(e))));
      },
      close: () => client.close().catch(() => undefined),
    };
  } catch (err) {
    await client.close().catch(() => undefined);
    throw err;
  }
}
