import { DurableObject } from "cloudflare:workers";
import { createEvent } from "../src/events/cloudevent.ts";
import type { EventType } from "../src/events/catalog.ts";
import { createLogger } from "../src/platform/logger.ts";
import { withPlatform } from "../src/platform/platform.ts";
import { migrateSqlite } from "../src/platform/sqlite-schema.ts";
import type { Platform } from "../src/platform/platform.ts";
import { attemptDelivery } from "../src/webhooks/attempt.ts";
import type { Endpoint } from "../src/webhooks/attempt.ts";
import type { CircuitRecord, CircuitState } from "../src/webhooks/circuit.ts";
import { circuitView, closedCircuit, resetCircuit } from "../src/webhooks/circuit.ts";
import type { Job, JobStore } from "../src/webhooks/queue.ts";
import { findWebhook, recordAttempts, recordCircuit } from "../src/webhooks/repo.ts";
import type { AttemptRecord, RunResult } from "../src/webhooks/runner.ts";
import { nextWake, runDue } from "../src/webhooks/runner.ts";

/**
 * One object per webhook endpoint: its pending deliveries (SQLite), its circuit breaker, and one
 * alarm re-armed for the earliest due delivery (or the breaker's half-open time), and none while the
 * endpoint is disabled: held deliveries cost nothing until `enqueue` (re-enabling) or `resetCircuit`
 * wakes it. The policy lives in `src/webhooks/` (runner, queue, circuit); this class is storage,
 * the alarm and RPC.
 */
export class WebhookEndpoint extends DurableObject<CloudflareBindings> {
  private readonly sql: SqlStorage;
  // Runs are serialised: an alarm and a manual attempt must never take the same job twice.
  private running: Promise<unknown> = Promise.resolve();
  // The endpoint's settings, re-read at most every 30 s (and at once after `invalidate`).
  private endpointCache: { at: number; value: Endpoint | null | "inactive" } | undefined;

  constructor(ctx: DurableObjectState, env: CloudflareBindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      migrateSqlite(ctx.storage, MIGRATIONS);
    });
  }

  private get(key: string): string | undefined {
    return this.sql.exec<{ value: string }>("select value from kv where key = ?", key).toArray()[0]?.value;
  }

  private put(key: string, value: string): void {
    this.sql.exec(
      "insert into kv (key, value) values (?, ?) on conflict (key) do update set value = excluded.value",
      key,
      value,
    );
  }

  private readonly jobs: JobStore = {
    add: (list) => {
      let n = 0;
      for (const j of list) {
        const added =
          this.sql.exec(
            "insert into jobs (delivery_id, event_id, event_type, body, attempts, schedule_base, due_at, created_at) values (?, ?, ?, ?, ?, ?, ?, ?) on conflict do nothing",
            j.deliveryId,
            j.eventId,
            j.eventType,
            j.body,
            j.attempts,
            j.scheduleBase,
            j.dueAt,
            j.createdAt,
          ).rowsWritten > 0;
        if (added) n++;
        // Replayed since it was handed over: the new schedule wins.
        else
          this.sql.exec(
            "update jobs set attempts = ?, schedule_base = ?, due_at = ? where delivery_id = ? and schedule_base < ?",
            j.attempts,
            j.scheduleBase,
            j.dueAt,
            j.deliveryId,
            j.scheduleBase,
          );
      }
      return n;
    },
    due: (now, limit) =>
      this.sql
        .exec<JobRow>("select * from jobs where due_at <= ? order by due_at, created_at limit ?", now, limit)
        .toArray()
        .map(toJob),
    get: (id) => this.sql.exec<JobRow>("select * from jobs where delivery_id = ?", id).toArray().map(toJob)[0],
    reschedule: (id, dueAt, attempts) =>
      void this.sql.exec("update jobs set due_at = ?, attempts = ? where delivery_id = ?", dueAt, attempts, id),
    remove: (id) => void this.sql.exec("delete from jobs where delivery_id = ?", id),
    clear: () => this.sql.exec("delete from jobs").rowsWritten,
    nextDue: () => this.sql.exec<{ d: number | null }>("select min(due_at) as d from jobs").one().d,
    size: () => this.sql.exec<{ n: number }>("select count(*) as n from jobs").one().n,
  };

  private circuit(): CircuitRecord {
    const raw = this.get("circuit");
    return raw ? (JSON.parse(raw) as CircuitRecord) : { ...closedCircuit };
  }

  private async rearm(at: number | null): Promise<void> {
    if (at === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(Math.max(at, Date.now()));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.running.then(fn, fn);
    this.running = run.catch(() => undefined);
    return run;
  }

  /** Adds deliveries (idempotent by delivery id) and makes sure the alarm will take them. */
  async enqueue(webhookId: string, organizationId: string, jobs: Job[]): Promise<number> {
    if (this.get("webhookId") !== webhookId) this.put("webhookId", webhookId);
    if (this.get("organizationId") !== organizationId) this.put("organizationId", organizationId);
    const added = this.jobs.add(jobs);
    const current = await this.ctx.storage.getAlarm();
    const wake = nextWake(this.jobs, this.circuit());
    if (wake !== null && (current === null || wake < current)) await this.rearm(wake);
    return added;
  }

  /** Runs due deliveries now (the cron sweep's kick); returns what it did. */
  async drain(): Promise<Omit<RunResult, "nextWakeAt">> {
    const { processed, succeeded, failed } = await this.serial(() => this.run());
    return { processed, succeeded, failed };
  }

  /** Attempts one held delivery now, whatever its due time (manual retry, test event). */
  async attemptNow(deliveryId: string): Promise<{ record?: AttemptRecord; circuit: CircuitState }> {
    const r = await this.serial(() => this.run(deliveryId));
    return {
      record: r.records.find((x) => x.job.deliveryId === deliveryId),
      circuit: circuitView(this.get("webhookId") ?? "", this.circuit()),
    };
  }

  /** The breaker's state (seed `CircuitState`). */
  async circuitState(webhookId: string): Promise<CircuitState> {
    return circuitView(webhookId, this.circuit());
  }

  /** Closes the breaker by hand; held deliveries flow again at once. */
  async resetCircuit(): Promise<{ reset: boolean }> {
    const { circuit, transition } = resetCircuit(this.circuit());
    this.put("circuit", JSON.stringify(circuit));
    const webhookId = this.get("webhookId");
    if (webhookId) {
      await this.withPlatform(async (p) => {
        if (transition) await this.emit(p, "webhook.circuit_closed", { reason: transition.reason });
        // Also without a transition: a mirror left stale by a failed write heals here.
        await recordCircuit(p.db, webhookId, circuit);
      });
    }
    await this.rearm(nextWake(this.jobs, circuit));
    return { reset: transition !== null };
  }

  /** Forgets the cached endpoint settings (after an update, a rotation, a re-activation). */
  async invalidate(): Promise<void> {
    this.endpointCache = undefined;
  }

  /** Drops every held delivery (webhook deleted); returns how many. */
  async cancelAll(): Promise<number> {
    this.endpointCache = undefined;
    const n = this.jobs.clear();
    await this.rearm(null);
    return n;
  }

  /** Deliveries held (pending) by this endpoint. */
  async pending(): Promise<number> {
    return this.jobs.size();
  }

  /** Runs due deliveries and re-arms. A failing run retries in 5 s instead of throwing forever. */
  override async alarm(): Promise<void> {
    try {
      await this.serial(() => this.run());
    } catch (err) {
      createLogger({ component: "webhook-endpoint", webhookId: this.get("webhookId") }).error("endpoint run failed", {
        err,
      });
      await this.rearm(Date.now() + 5_000);
    }
  }

  private withPlatform<T>(fn: (p: Platform) => Promise<T>): Promise<T> {
    return withPlatform(
      this.env,
      this.ctx,
      createLogger({ component: "webhook-endpoint", webhookId: this.get("webhookId") }),
      fn,
    );
  }

  private emit(p: Platform, type: EventType, data: Record<string, unknown>) {
    const webhookId = this.get("webhookId") ?? "";
    return p.events.publish(
      createEvent({
        type,
        organizationId: this.get("organizationId") ?? "",
        source: "/cloudmatrix-edge/webhooks",
        subject: `webhooks/${webhookId}`,
        data: { webhookId, ...data },
      }),
    );
  }

  private async run(only?: string) {
    const webhookId = this.get("webhookId");
    if (!webhookId) return { processed: 0, succeeded: 0, failed: 0, nextWakeAt: null, records: [] };
    return this.withPlatform(async (p) => {
      const w = p.config.webhooks;
      // A pool per run: keeping one across runs (tried) held sessions idle that other endpoints
      // needed, and was slower under the local session cap.
      const db = p.db;
      const result = await runDue(
        {
          jobs: this.jobs,
          circuit: { get: () => this.circuit(), set: (c) => this.put("circuit", JSON.stringify(c)) },
          loadEndpoint: async () => {
            if (this.endpointCache && Date.now() - this.endpointCache.at < 30_000) return this.endpointCache.value;
            const row = await findWebhook(db, webhookId);
            const previousLive =
              row?.previous_secret &&
              row.previous_secret_expires_at &&
              new Date(row.previous_secret_expires_at).getTime() > Date.now();
            const value: Endpoint | null | "inactive" = !row
              ? null
              : !row.active
                ? "inactive"
                : {
                    id: row.id,
                    url: row.url,
                    headers: row.headers,
                    secrets: previousLive ? [row.secret, row.previous_secret!] : [row.secret],
                  };
            this.endpointCache = { at: Date.now(), value };
            return value;
          },
          attempt: (job, endpoint) =>
            attemptDelivery(job, endpoint, { timeoutMs: w.timeoutMs, policy: { allowLocalHttp: w.allowLocalHttp } }),
          record: (records) => recordAttempts(db, webhookId, records),
          onTransition: async (t, c) => {
            const type =
              t.to === "open"
                ? "webhook.circuit_opened"
                : t.to === "half_open"
                  ? "webhook.circuit_half_opened"
                  : "webhook.circuit_closed";
            p.logger.warn("circuit transition", { webhookId, from: t.from, to: t.to, reason: t.reason });
            await this.emit(p, type, {
              from: t.from,
              to: t.to,
              reason: t.reason,
              failureCount: c.failureCount,
              halfOpenAt: c.halfOpenAt ? new Date(c.halfOpenAt).toISOString() : null,
            });
            await recordCircuit(db, webhookId, c);
          },
          onGone: async () => {
            this.endpointCache = undefined;
            await p.db.query(
              "update webhooks set active = false, disabled_reason = $2, updated_at = now() where id = $1",
              [webhookId, "endpoint answered 410 Gone"],
            );
            await this.emit(p, "webhook.disabled", { reason: "endpoint answered 410 Gone" });
          },
          settings: {
            retry: { baseMs: w.backoffBaseMs, capMs: w.backoffCapMs, maxAttempts: w.maxAttempts },
            circuit: w.circuit,
            concurrency: w.concurrency,
            maxRunMs: 25_000,
          },
          now: Date.now,
        },
        only,
      );
      await this.rearm(result.nextWakeAt);
      return result;
    });
  }
}

/**
 * The object's SQLite schema as ordered steps; `kv.schema` holds how many an object has applied, so
 * an existing object gets only the steps it lacks. Append steps, never edit one. Step 1 is what
 * objects had before versioning (hence `if not exists`).
 */
/** The object's SQLite schema, append-only (see `migrateSqlite`); the first is the layout before versions. */
const MIGRATIONS = [
  `create table if not exists jobs (
     delivery_id text primary key, event_id text not null, event_type text not null, body text not null,
     attempts integer not null, due_at integer not null, created_at integer not null);
   create index if not exists jobs_due on jobs (due_at, created_at);
   create table if not exists kv (key text primary key, value text not null);`,
  // The position in the current retry schedule (a replay starts a fresh one).
  "alter table jobs add column schedule_base integer not null default 0",
];

interface JobRow extends Record<string, SqlStorageValue> {
  delivery_id: string;
  event_id: string;
  event_type: string;
  body: string;
  attempts: number;
  schedule_base: number;
  due_at: number;
  created_at: number;
}

const toJob = (r: JobRow): Job => ({
  deliveryId: r.delivery_id,
  eventId: r.event_id,
  eventType: r.event_type,
  body: r.body,
  attempts: r.attempts,
  scheduleBase: r.schedule_base,
  dueAt: r.due_at,
  createdAt: r.created_at,
});
