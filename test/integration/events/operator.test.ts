import { env } from "cloudflare:workers";
import {
  createExecutionContext,
  createMessageBatch,
  createScheduledController,
  getQueueResult,
  waitOnExecutionContext,
} from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../../src/index.ts";
import { withTransaction } from "../../../src/events/bus.ts";
import { createEvent } from "../../../src/events/cloudevent.ts";
import { createLogger } from "../../../src/platform/logger.ts";
import { createPlatform } from "../../../src/platform/platform.ts";
import { api } from "../support/api.ts";
import { withDb } from "../support/backends.ts";

const event = () => createEvent({ type: "invitation.sent", organizationId: "org_op", source: "/tests", data: {} });

describe("event bus operations", () => {
  it("relays right after the commit of a platform transaction", async () => {
    const e = event();
    const ctx = createExecutionContext();
    const platform = createPlatform(env, ctx, createLogger());
    await withTransaction(platform.db, (_tx, outbox) => outbox.publish(e));
    platform.close();
    await waitOnExecutionContext(ctx);
    const { rows } = await withDb((db) =>
      db.query<{ published: boolean }>("select published_at is not null as published from outbox where id = $1", [
        e.id,
      ]),
    );
    expect(rows).toEqual([{ published: true }]);
  });

  it("does not relay after a transaction that wrote no events", async () => {
    const ctx = createExecutionContext();
    const platform = createPlatform(env, ctx, createLogger());
    const e = event();
    // Written outside the platform, so only a relay kicked by the commit below could publish it.
    await withDb((db) => withTransaction(db, (_tx, outbox) => outbox.publish(e)));
    await platform.db.transaction(async (tx) => void (await tx.query("select 1")));
    platform.close();
    await waitOnExecutionContext(ctx);
    const { rows } = await withDb((db) =>
      db.query<{ pending: boolean }>("select published_at is null as pending from outbox where id = $1", [e.id]),
    );
    expect(rows).toEqual([{ pending: true }]);
  });

  it("shows outbox counts and lag to internal tokens only", async () => {
    const denied = await api("/v1/internal/events/outbox", { scopes: ["admin"] });
    expect(denied.status).toBe(403);
    const res = await api("/v1/internal/events/outbox?status=pending&limit=5", { scopes: ["internal"] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      stats: { pending: number; oldestPendingAgeSeconds: number | null };
      rows: { id: string }[];
    };
    expect(body.stats.pending).toBeGreaterThanOrEqual(1);
    expect(body.stats.oldestPendingAgeSeconds).not.toBeNull();
    expect(body.rows.length).toBeGreaterThanOrEqual(1);
    const bad = await api("/v1/internal/events/outbox?status=weird", { scopes: ["internal"] });
    expect(bad.status).toBe(400);
  });

  it("records messages whose retries are exhausted from the dead-letter queue", async () => {
    const e = event();
    const batch = createMessageBatch("platform-events-dlq", [
      { id: "dl-1", timestamp: new Date(), attempts: 9, body: e },
    ]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env, ctx);
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual(["dl-1"]);
    const res = await api("/v1/internal/events/dead-letters?limit=10", { scopes: ["internal"] });
    const body = (await res.json()) as {
      deadLetters: { eventId: string; reason: string; source: string; attempts: number }[];
    };
    expect(body.deadLetters.find((d) => d.eventId === e.id)).toMatchObject({
      reason: "retries exhausted",
      source: "platform-events-dlq",
      attempts: 9,
    });
  });

  it("runs the cron sweep, which publishes what the post-commit kick left behind", async () => {
    const e = event();
    await withDb((db) => withTransaction(db, (_tx, outbox) => outbox.publish(e)));
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "* * * * *", scheduledTime: new Date() }), env, ctx);
    await waitOnExecutionContext(ctx);
    const { rows } = await withDb((db) =>
      db.query<{ published: boolean }>("select published_at is not null as published from outbox where id = $1", [
        e.id,
      ]),
    );
    expect(rows).toEqual([{ published: true }]);
  });
});
