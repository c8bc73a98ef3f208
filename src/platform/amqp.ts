import { AMQPClient } from "@cloudamqp/amqp-client";

/**
 * RabbitMQ connection over `@cloudamqp/amqp-client`'s TCP client, which runs inside workerd with
 * `nodejs_compat`. A connection belongs to one request, batch or alarm; open late, close early.
 */

/** The client type, re-exported so services depend on this module only. */
export type { AMQPClient };

/**
 * Opens a connection.
 * @param url - `amqp://user:pass@host:port[/vhost]`
 */
export async function connectAmqp(url: string): Promise<AMQPClient> {
  const client = new AMQPClient(url);
  await client.connect();
  return client;
}

/** Runs `fn` with a fresh connection and always closes it afterwards. */
export async function withAmqp<T>(url: string, fn: (client: AMQPClient) => Promise<T>): Promise<T> {
  const client = await connectAmqp(url);
  try {
    return await fn(client);
  } finally {
    await client.close().catch(() => undefined);
  }
}
