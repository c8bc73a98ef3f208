import { randomUUID } from "node:crypto";
import { connectPg } from "../scripts/lib/pg.ts";
import { createEvent } from "../src/events/cloudevent.ts";
import { declareTopology, eventMessage, topology } from "../src/events/rabbit.ts";
import { withAmqp } from "../src/platform/amqp.ts";
import type { BenchContext, BenchResult } from "./harness.ts";
import { numArg } from "./harness.ts";

/**
 * Event bus throughput.
 * 1. Outbox → RabbitMQ (+ the platform-events Queue), with publisher confirms, as a ratio to a raw
 *    confirmed `basicPublish` loop from the same Worker to the same broker (target ≥ 0.5).
 * 2. Inbound RabbitMQ → usage-events Queue → consumer (archive), events/s end to end, 0 lost.
 * Flags: --events (10000) --inbound (10000).
 */
export default async function run(ctx: BenchContext): Promise<BenchResult> {
  const n = numArg(ctx.args, "events", 10_000);
  const inboundN = numArg(ctx.args, "inbound", 10_000);
  const rabbit = { url: ctx.stack.rabbitmqUrl, ...ctx.rabbitmq };
  const t = topology(rabbit);

  // A tap queue counts what reaches the broker from the relay.
  const tap = `${ctx.rabbitmq.queuePrefix}bench-tap`;
  await withAmqp(rabbit.url, async (client) => {
    const ch = await client.channel();
    await declareTopology(ch, t);
    await ch.queueDeclare(tap, { durable: false });
    await ch.queueBind(tap, t.exchange, "team.#");
  });
  ctx.defer(() => withAmqp(rabbit.url, async (c) => void (await (await c.channel()).queueDelete(tap))));

  ctx.log(`raw baseline: ${n} confirmed basicPublish from the Worker`);
  // Routed to the same tap queue as the relay's events, so the broker does the same work for both.
  const raw = await ctx.worker.json<{ perSecond: number; ms: number }>("/__bench/amqp-publish", {
    n,
    routingKey: "team.raw",
  });
  await withAmqp(rabbit.url, async (c) => void (await (await c.channel()).queuePurge(tap)));

  ctx.log(`filling the outbox with ${n} events`);
  const pg = await connectPg(ctx.pgUrl);
  try {
    const events = Array.from({ length: n }, (_, i) =>
      createEvent({ type: "team.updated", organizationId: `org_${i % 50}`, source: "/bench", data: { i } }),
    );
    for (let i = 0; i < n; i += 2_000) {
      await pg.query(
        `insert into outbox (id, type, organization_id, event)
         select e->>'id', e->>'type', e->>'organizationid', e::json from jsonb_array_elements($1::jsonb) with ordinality x(e, k) order by k`,
        [JSON.stringify(events.slice(i, i + 2_000))],
      );
    }
  } finally {
    await pg.end();
  }
  ctx.log("relaying");
  const relay = await ctx.worker.json<{ published: number; failed: number; perSecond: number; ms: number }>(
    "/__bench/relay",
    {},
  );
  const tapped = await withAmqp(
    rabbit.url,
    async (c) => (await (await c.channel()).queueDeclare(tap, { passive: true })).messageCount,
  );

  ctx.log(`inbound: publishing ${inboundN} events as another service`);
  const inboundEvents = Array.from({ length: inboundN }, (_, i) =>
    createEvent({
      type: "document.viewed",
      organizationId: `org_${i % 50}`,
      source: "/documents",
      id: `in-${randomUUID()}`,
      data: { i },
    }),
  );
  await withAmqp(rabbit.url, async (client) => {
    const ch = await client.channel();
    await ch.confirmSelect();
    for (let i = 0; i < inboundEvents.length; i += 500) {
      await Promise.all(
        inboundEvents.slice(i, i + 500).map((e) => {
          const m = eventMessage(e);
          return ch.basicPublish(t.exchange, e.type, m.body, m.properties);
        }),
      );
    }
  });
  const t0 = performance.now();
  const drained = await ctx.worker.json<{ delivered: number; perSecond: number }>("/__bench/inbound", { burst: 1000 });
  // End to end: until the usage-events consumer archived every event (bounded wait).
  let archived = 0;
  const check = await connectPg(ctx.pgUrl);
  try {
    for (let i = 0; i < 600 && !ctx.signal.aborted; i++) {
      archived = (await check.query<{ n: number }>("select count(*)::int as n from events where id like 'in-%'"))
        .rows[0]!.n;
      if (archived >= inboundN) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await check.end();
  }
  const endToEndMs = performance.now() - t0;

  return {
    name: "bus",
    headline: "outbox_relay_events_per_s",
    figures: {
      outbox_relay_events_per_s: relay.perSecond,
      raw_confirmed_publish_per_s: raw.perSecond,
      relay_published: relay.published,
      relay_failed: relay.failed,
      broker_received: tapped,
      relay_lost: n - tapped,
      inbound_drain_events_per_s: drained.perSecond,
      inbound_end_to_end_events_per_s: Math.round((archived * 1000) / endToEndMs),
      inbound_archived: archived,
      inbound_lost: inboundN - archived,
    },
    ratios: {
      "outbox_relay_events_per_s / raw_confirmed_publish_per_s":
        Math.round((relay.perSecond / raw.perSecond) * 1000) / 1000,
    },
    targets: {
      "outbox_relay_events_per_s / raw_confirmed_publish_per_s": ">= 0.5",
      relay_lost: "<= 0",
      inbound_lost: "<= 0",
    },
    notes: [
      "The relay also hands every event to the platform-events Queue and marks rows in Postgres; the raw loop only publishes.",
      "Inbound end to end = from the first drain until the usage-events consumer archived every event.",
    ],
  };
}
