import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { withAmqp } from "../../../src/platform/amqp.ts";
import { getConfig } from "../../../src/platform/config.ts";
import { createDb } from "../../../src/platform/db.ts";
import { createRedis } from "../../../src/platform/redis.ts";

const config = () => getConfig(env);

describe("real backends from inside workerd", () => {
  it("runs Postgres transactions: commit keeps, rollback discards", async () => {
    const db = createDb(config());
    try {
      await db.query("create table if not exists it_tx (id text primary key)");
      await db.transaction(async (tx) => {
        await tx.query("insert into it_tx values ($1)", ["kept"]);
      });
      await expect(
        db.transaction(async (tx) => {
          await tx.query("insert into it_tx values ($1)", ["discarded"]);
          throw new Error("boom");
        }),
      ).rejects.toThrow("boom");
      const { rows } = await db.query<{ id: string }>("select id from it_tx order by id");
      expect(rows.map((r) => r.id)).toEqual(["kept"]);
      const { rows: ledger } = await db.query<{ version: number }>(
        "select version from schema_migrations order by version",
      );
      expect(ledger[0]?.version).toBe(1);
    } finally {
      await db.end();
    }
  });

  // Found by `npm run chaos` (Postgres SIGKILLed under team moves): a connection lost inside a
  // transaction surfaced as a raw driver error, i.e. a 500; only pool.connect() was guarded.
  it("turns a connection lost mid-transaction into 503 service_unavailable", async () => {
    const db = createDb(config(), { onError: () => undefined });
    try {
      const err = await db
        .transaction(async (tx) => {
          await tx.query("select pg_terminate_backend(pg_backend_pid())");
          await tx.query("select 1");
        })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "service_unavailable", status: 503, retryAfterSeconds: 1 });
      // A domain error thrown by the callback is not mistaken for an outage.
      const domain = new RangeError("domain");
      await expect(
        db.transaction(async () => {
          throw domain;
        }),
      ).rejects.toBe(domain);
    } finally {
      await db.end();
    }
  });

  it("runs a recursive CTE", async () => {
    const db = createDb(config());
    try {
      const { rows } = await db.query<{ n: number }>(
        "with recursive t(n) as (select 1 union all select n + 1 from t where n < 5) select sum(n)::int as n from t",
      );
      expect(rows[0]?.n).toBe(15);
    } finally {
      await db.end();
    }
  });

  it("talks to Redis through the Upstash adapter under the run's key prefix", async () => {
    const { redis, keys } = createRedis(config());
    const key = keys.key("it", crypto.randomUUID());
    expect(key.startsWith(config().redis.keyPrefix)).toBe(true);
    expect(await redis.set(key, "v1", { ex: 60 })).toBe("OK");
    expect(await redis.get(key)).toBe("v1");
    expect(await redis.pfadd(`${key}:hll`, "a", "b", "a")).toBe(1);
    expect(await redis.pfcount(`${key}:hll`)).toBe(2);
    await redis.del(key, `${key}:hll`);
  });

  it("publishes to and reads from the real RabbitMQ with publisher confirms", async () => {
    const queue = `${config().rabbitmq.queuePrefix}it.${crypto.randomUUID()}`;
    const body = JSON.stringify({ hello: "rabbit", at: Date.now() });
    const got = await withAmqp(config().rabbitmq.url, async (client) => {
      const ch = await client.channel();
      await ch.confirmSelect();
      await ch.queueDeclare(queue, { durable: false, autoDelete: false });
      await ch.basicPublish("", queue, body, { contentType: "application/json", deliveryMode: 2 });
      const msg = await ch.basicGet(queue, { noAck: true });
      await ch.queueDelete(queue);
      return msg?.bodyToString();
    });
    expect(got).toBe(body);
  });
});
