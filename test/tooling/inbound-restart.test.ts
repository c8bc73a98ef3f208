import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, inject, it } from "vitest";
import { ensureStack } from "../../scripts/stack.ts";
import type { Stack } from "../../scripts/stack.ts";
import type { CloudEvent } from "../../src/events/cloudevent.ts";
import { createEvent } from "../../src/events/cloudevent.ts";
import { drainInbound } from "../../src/events/inbound.ts";
import { declareTopology, eventMessage, topology } from "../../src/events/rabbit.ts";
import { withAmqp } from "../../src/platform/amqp.ts";

// The drain logic is the same module the RabbitInbound Durable Object runs; here it runs in Node
// against a RabbitMQ of its own, so the test can kill and restart the broker mid-burst.

const freePort = () =>
  new Promise<number>((resolve) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });

let dataDir: string;
let stack: Stack | undefined;
afterAll(async () => {
  await stack?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe("inbound drain across a RabbitMQ restart", () => {
  it("loses none of 1,000 messages and, after dedup by event id, duplicates none", async () => {
    dataDir = await mkdtemp(join(tmpdir(), "cm-rabbit-restart-"));
    const system = inject("stack");
    const env = {
      LOCAL_POSTGRES_URL: system.postgresUrl,
      LOCAL_REDIS_URL: system.redisUrl,
      LOCAL_RABBITMQ_URL: `amqp://guest:guest@127.0.0.1:${await freePort()}`,
    };
    const start = async () => (stack = await ensureStack({ dataDir, env }));
    let url = (await start()).rabbitmqUrl;
    expect(stack?.started).toEqual(["rabbitmq"]);

    const t = topology({ url, exchange: `restart.${randomUUID()}`, queuePrefix: `restart.${randomUUID()}.` });
    const queue = t.inbound[0]!.queue;
    const events: CloudEvent[] = Array.from({ length: 1000 }, (_, i) =>
      createEvent({ type: "api.call", organizationId: `org_${i % 7}`, source: "/api-gateway", data: { i } }),
    );
    await withAmqp(url, async (client) => {
      const ch = await client.channel();
      await declareTopology(ch, t);
      await ch.confirmSelect();
      await Promise.all(
        events
          .map((e) => eventMessage(e))
          .map((m, i) => ch.basicPublish(t.exchange, events[i]!.type, m.body, m.properties)),
      );
    });

    const seen = new Map<string, number>();
    let killed = false;
    let restarted = false;
    const kill = async () => {
      // SIGKILL of the broker's Erlang VM: no clean shutdown, connections reset mid-burst.
      const state = JSON.parse(await readFile(join(dataDir, "rabbitmq", "state.json"), "utf8")) as { pid: number };
      process.kill(state.pid, "SIGKILL");
      killed = true;
    };

    for (let round = 0; round < 200; round++) {
      try {
        const r = await drainInbound({
          url,
          topology: t,
          queue,
          maxMessages: 100,
          idleMs: 300,
          deliver: async (batch) => {
            for (const e of batch) seen.set(e.id, (seen.get(e.id) ?? 0) + 1);
            // Crash the broker after this hand-off succeeded but before its acks reach the broker.
            if (!killed && seen.size >= 350) await kill();
          },
        });
        if (restarted && r.received === 0 && seen.size >= events.length) break;
      } catch {
        // The burst failed with the broker: restart it once, then keep draining.
        if (killed && !restarted) {
          url = (await start()).rabbitmqUrl;
          restarted = true;
        }
      }
    }

    expect(killed).toBe(true);
    expect(restarted).toBe(true);
    const ids = new Set(events.map((e) => e.id));
    expect([...seen.keys()].every((id) => ids.has(id))).toBe(true);
    expect(seen.size).toBe(1000); // none lost
    const deliveries = [...seen.values()].reduce((a, b) => a + b, 0);
    expect(deliveries).toBeGreaterThan(1000); // the unacked burst really was redelivered…
    expect(new Set(seen.keys()).size).toBe(1000); // …and dedup by id leaves exactly one each
  });
});
