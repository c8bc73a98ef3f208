import type { AMQPMessage } from "@cloudamqp/amqp-client";
import { connectAmqp } from "../platform/amqp.ts";
import type { Logger } from "../platform/logger.ts";
import type { CloudEvent } from "./cloudevent.ts";
import { parseCloudEvent } from "./cloudevent.ts";
import type { Topology } from "./rabbit.ts";
import { declareTopology } from "./rabbit.ts";

/**
 * Inbound from RabbitMQ, built for workerd where nothing may hold a connection open forever: a
 * bounded burst consumes up to `maxMessages` or `maxMs`, hands the valid events off (to the
 * `usage-events` Queue), and only then acks them. A failed hand-off nacks them back onto the
 * queue; a broken connection leaves them unacked, and RabbitMQ redelivers them. Messages that fail
 * validation are republished to the dead-letter exchange with the reason and acked.
 */

/** Options of {@link drainInbound}. */
export interface DrainOptions {
  /** Broker URL. */
  url: string;
  /** Exchanges and queues (declared idempotently each burst). */
  topology: Topology;
  /** The inbound queue to drain. */
  queue: string;
  /** Hands valid events off; must throw if they were not accepted. Called in chunks. */
  deliver(events: CloudEvent[]): Promise<void>;
  /**
   * Acceptance beyond the CloudEvents schema (e.g. the usage late-event horizon): returns why an
   * event is refused, or null. Judged here, once, when the message is taken off the queue;
   * refused messages are dead-lettered with the reason like malformed ones.
   */
  accept?: (event: CloudEvent) => string | null;
  /** Largest burst (also the prefetch window); default 500. */
  maxMessages?: number;
  /** Longest burst in ms; default 5,000. */
  maxMs?: number;
  /** End the burst after this long without a new message; default 150 ms. */
  idleMs?: number;
  /** Events per `deliver` call; default 100 (one Queue sendBatch). */
  chunkSize?: number;
  logger?: Logger;
}

/** Outcome of one burst. */
export interface DrainResult {
  received: number;
  delivered: number;
  deadLettered: number;
  requeued: number;
  /** The burst stopped at `maxMessages`: more are probably waiting. */
  full: boolean;
}

/** Header carrying why a message was dead-lettered. */
export const REASON_HEADER = "x-cloudmatrix-reason";

/** Consumes one bounded burst. */
export async function drainInbound(opts: DrainOptions): Promise<DrainResult> {
  const max = opts.maxMessages ?? 500;
  const maxMs = opts.maxMs ?? 5_000;
  const idleMs = opts.idleMs ?? 150;
  const chunkSize = opts.chunkSize ?? 100;
  const result: DrainResult = { received: 0, delivered: 0, deadLettered: 0, requeued: 0, full: false };

  const client = await connectAmqp(opts.url);
  // A broker that dies mid-burst must fail the burst, not hang it: a write on a reset socket may
  // never settle, so every broker operation races the connection's error callback.
  let lose: (err: unknown) => void = () => {};
  const lost = new Promise<never>((_, reject) => (lose = reject));
  lost.catch(() => undefined);
  client.onerror = (err) => lose(err);
  const watchdog = setTimeout(() => lose(new Error(`inbound burst exceeded ${maxMs + 15_000} ms`)), maxMs + 15_000);
  const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, lost]);
  try {
    const ch = await guard(client.channel());
    await guard(declareTopology(ch, opts.topology));
    await guard(ch.prefetch(max));
    await guard(ch.confirmSelect());

    const messages: AMQPMessage[] = [];
    let wake: () => void = () => {};
    const started = Date.now();
    let lastArrival = started;
    const consumer = await guard(
      ch.basicConsume(opts.queue, { noAck: false }, (msg) => {
        messages.push(msg);
        lastArrival = Date.now();
        if (messages.length >= max) wake();
      }),
    );
    // Wait until the burst is full, the queue went quiet for idleMs, or maxMs passed.
    for (;;) {
      const until = Math.min(started + maxMs, lastArrival + idleMs);
      const now = Date.now();
      if (messages.length >= max || now >= until) break;
      await guard(
        new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, until - now);
        }),
      );
    }
    await guard(consumer.cancel());

    const burst = messages.slice(0, max);
    // Anything that slipped in after the window stays unacked and is requeued when we close.
    result.received = burst.length;
    result.full = burst.length >= max;

    const valid: { msg: AMQPMessage; event: CloudEvent }[] = [];
    for (const msg of burst) {
      const parsed = parseCloudEvent(msg.bodyToString() ?? "");
      const refusal = parsed.ok ? (opts.accept?.(parsed.event) ?? null) : parsed.reason;
      if (refusal === null) {
        if (parsed.ok) valid.push({ msg, event: parsed.event });
        continue;
      }
      await guard(
        ch.basicPublish(opts.topology.deadLetterExchange, msg.routingKey, msg.body, {
          ...msg.properties,
          headers: {
            ...msg.properties.headers,
            [REASON_HEADER]: refusal.slice(0, 1000),
            "x-original-queue": opts.queue,
          },
        }),
      );
      await guard(msg.ack());
      result.deadLettered += 1;
      opts.logger?.warn("inbound message dead-lettered", {
        queue: opts.queue,
        routingKey: msg.routingKey,
        reason: refusal,
      });
    }

    for (let i = 0; i < valid.length; i += chunkSize) {
      const chunk = valid.slice(i, i + chunkSize);
      try {
        await guard(opts.deliver(chunk.map((v) => v.event)));
      } catch (err) {
        // Requeue this chunk and everything after it: nothing unaccepted may be acked.
        const rest = valid.slice(i);
        // Delivery tags ascend and everything before `rest` is settled: one frame requeues it all.
        await guard(rest[rest.length - 1]!.msg.nack(true, true));
        result.requeued += rest.length;
        opts.logger?.error("inbound hand-off failed; requeued", { queue: opts.queue, requeued: rest.length, err });
        break;
      }
      // One frame acks the chunk (`multiple`: every outstanding tag up to its last). Tags ascend
      // with arrival; what precedes the chunk is acked already (earlier chunks, dead letters), and
      // what arrived after the burst has higher tags and stays unacked, to be requeued on close.
      await guard(chunk[chunk.length - 1]!.msg.ack(true));
      result.delivered += chunk.length;
    }
    return result;
  } finally {
    clearTimeout(watchdog);
    await Promise.race([client.close(), lost]).catch(() => undefined);
  }
}
