import { env } from "cloudflare:workers";
import type { AMQPChannel, AMQPClient } from "@cloudamqp/amqp-client";
import { connectAmqp } from "../../../src/platform/amqp.ts";
import { getConfig } from "../../../src/platform/config.ts";
import type { Db } from "../../../src/platform/db.ts";
import { createDb } from "../../../src/platform/db.ts";

/** This run's configuration (per-run database, Redis prefix and RabbitMQ names). */
export const config = () => getConfig(env);

/** A Postgres URL nobody listens on (port 1): what a database outage looks like to a client. */
export const unreachableDatabaseUrl = "postgres://nobody:x@127.0.0.1:1/none";

/** The Worker's bindings with Postgres unreachable (Redis and RabbitMQ up). */
export const withoutPostgres = () => ({ ...env, DATABASE_URL: unreachableDatabaseUrl });

/** Runs `fn` with a fresh request-scoped Db and closes it. */
export async function withDb<T>(fn: (db: Db) => Promise<T>): Promise<T> {
  const db = createDb(config());
  try {
    return await fn(db);
  } finally {
    await db.end();
  }
}

/** A RabbitMQ test consumer: a private queue bound to this run's exchange. */
export interface TapQueue {
  /** Messages received so far, as parsed JSON bodies (waits up to `timeoutMs` for `count`). */
  take(count: number, timeoutMs?: number): Promise<{ id: string; type: string; [k: string]: unknown }[]>;
  close(): Promise<void>;
}

/** Binds a fresh queue to `exchange` with `bindingKey` and collects what arrives. */
export async function tapExchange(exchange: string, bindingKey = "#"): Promise<TapQueue> {
  const client: AMQPClient = await connectAmqp(config().rabbitmq.url);
  const ch: AMQPChannel = await client.channel();
  await ch.exchangeDeclare(exchange, "topic", { durable: true });
  const { name } = await ch.queueDeclare(`${config().rabbitmq.queuePrefix}tap.${crypto.randomUUID()}`, {
    durable: false,
    autoDelete: false,
  });
  await ch.queueBind(name, exchange, bindingKey);
  const got: { id: string; type: string }[] = [];
  return {
    async take(count, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      while (got.length < count && Date.now() < deadline) {
        const msg = await ch.basicGet(name, { noAck: true });
        if (msg) got.push(JSON.parse(msg.bodyToString() ?? "null"));
        else await new Promise((r) => setTimeout(r, 20)); // polling a real broker, bounded by the deadline
      }
      return got;
    },
    async close() {
      await ch.queueDelete(name).catch(() => undefined);
      await client.close().catch(() => undefined);
    },
  };
}
