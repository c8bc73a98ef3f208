import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { afterAll, describe, expect, inject, it } from "vitest";
import { startLocalEnv } from "../../scripts/lib/local-env.ts";
import { closePgProxy, createDatabase, databaseUrl, dropDatabase, withPg } from "../../scripts/lib/pg.ts";
import { loadMigrations } from "../../scripts/migrate.ts";
import type { Topology } from "../../src/events/rabbit.ts";
import { missingTopology, topology } from "../../src/events/rabbit.ts";
import { withAmqp } from "../../src/platform/amqp.ts";

// Events other services publish are routed only once the inbound queue and its bindings exist, so
// both the operators' setup command and the local environment must declare them up front.

const stack = inject("stack");
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await closePgProxy();
});

const names = () => {
  const id = randomBytes(4).toString("hex");
  return { id, exchange: `cm.setup.${id}.events`, queuePrefix: `cm.setup.${id}.` };
};

async function deleteTopology(t: Topology): Promise<void> {
  await withAmqp(stack.rabbitmqUrl, async (client) => {
    for (const q of [t.deadLetterQueue, ...t.inbound.map((i) => i.queue)])
      await (await client.channel()).queueDelete(q).catch(() => 0);
    for (const x of [t.exchange, t.deadLetterExchange])
      await (await client.channel()).exchangeDelete(x).catch(() => undefined);
  });
}

/** Publishes one `api.call` as another service would; true if the broker routed it to a queue. */
async function routed(t: Topology): Promise<boolean> {
  return withAmqp(stack.rabbitmqUrl, async (client) => {
    const ch = await client.channel();
    let returned = false;
    ch.onReturn = () => void (returned = true);
    await ch.confirmSelect();
    await ch.basicPublish(t.exchange, "api.call", "{}", {}, true);
    return !returned;
  });
}

describe("topology before ready", () => {
  it("npm run setup migrates DATABASE_URL and declares the whole RabbitMQ topology", async () => {
    const n = names();
    const db = `cm_setup_${n.id}`;
    await createDatabase(stack.postgresUrl, db);
    cleanups.push(() => dropDatabase(stack.postgresUrl, db));
    const t = topology({ url: stack.rabbitmqUrl, exchange: n.exchange, queuePrefix: n.queuePrefix });
    cleanups.push(() => deleteTopology(t));

    const env = {
      ...process.env,
      DATABASE_URL: databaseUrl(stack.postgresUrl, db),
      RABBITMQ_URL: stack.rabbitmqUrl,
      RABBITMQ_EXCHANGE: n.exchange,
      RABBITMQ_QUEUE_PREFIX: n.queuePrefix,
    };
    const run = () => promisify(execFile)(process.execPath, ["scripts/setup.ts"], { env, timeout: 120_000 });
    const first = await run();
    expect(first.stdout).toMatch(/setup: done/);

    const versions = await withPg(env.DATABASE_URL, (c) => c.query("select count(*)::int as n from schema_migrations"));
    expect(versions.rows[0]?.n).toBe((await loadMigrations("migrations")).length);
    expect(await withAmqp(stack.rabbitmqUrl, (c) => missingTopology(c, t))).toEqual([]);
    expect(await routed(t)).toBe(true);

    // Idempotent: a second run (every deploy) changes nothing and succeeds.
    expect((await run()).stdout).toMatch(/0 applied, \d+ already applied[\s\S]*setup: done/);
  });

  it("startLocalEnv (npm run dev, tests, benchmarks) declares the topology before it returns", async () => {
    const n = names();
    const env = await startLocalEnv({
      database: `cm_localenv_${n.id}`,
      dropOnClose: true,
      redisKeyPrefix: `cm:localenv:${n.id}:`,
      rabbitmqExchange: n.exchange,
      rabbitmqQueuePrefix: n.queuePrefix,
    });
    cleanups.push(() => env.close());
    const t = topology({ url: env.stack.rabbitmqUrl, exchange: n.exchange, queuePrefix: n.queuePrefix });
    expect(await withAmqp(env.stack.rabbitmqUrl, (c) => missingTopology(c, t))).toEqual([]);
    expect(await routed(t)).toBe(true);
  });

  it("names what is missing, and only that", async () => {
    const n = names();
    const t = topology({ url: stack.rabbitmqUrl, exchange: n.exchange, queuePrefix: n.queuePrefix });
    cleanups.push(() => deleteTopology(t));
    expect(await withAmqp(stack.rabbitmqUrl, (c) => missingTopology(c, t))).toEqual([
      `exchange ${t.exchange} missing`,
      `exchange ${t.deadLetterExchange} missing`,
      `queue ${t.inbound[0]!.queue} missing`,
      `queue ${t.deadLetterQueue} missing`,
    ]);
  });
});
