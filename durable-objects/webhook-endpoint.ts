import { DurableObject } from "cloudflare:workers";
import { createEvent } from "../src/events/cloudevent.ts";
import type { CloudEvent } from "../src/events/cloudevent.ts";
import type { EventType } from "../src/events/catalog.ts";
import { withTransaction } from "../src/events/bus.ts";
import { rpcBoundary } from "../src/platform/errors.ts";
import { createLogger } from "../src/platform/logger.ts";
import { withPlatform } from "../src/platform/platform.ts";
import { migrateSqlite } from "../src/platform/sqlite-schema.ts";
import type { Platform } from "../src/platform/platform.ts";
import { attemptDelivery } from "../src/webhooks/attempt.ts";
import type { Endpoint } from "../src/webhooks/attempt.ts";
import type { CircuitRecord, CircuitState } from "../src/webhooks/circuit.ts";
import { circuitView, closedCircuit, resetCircuit } from "../src/webhooks/circuit.ts";
import type { CircuitReading } from "../src/webhooks/delivery.ts";
import { disableReasonText, disableWebhook } from "../src/webhooks/disable.ts";
import type { EndpointSnapshot } from "../src/webhooks/fanout.ts";
import { Flusher } from "../src/webhooks/flush.ts";
import type { AttemptRecord, BufferedResult, Job, JobStore, ResultBuffer } from "../src/webhooks/queue.ts";
import type { AttemptRow } from "../src/webhooks/repo.ts";
import { attemptRow, recordCircuit } from "../src/webhooks/repo.ts";
import type { RunResult } from "../src/webhooks/runner.ts";
import { nextWake, runDue } from "../src/webhooks/runner.ts";
import { writerFor } from "../src/webhooks/service.ts";
import { defaultSettings } from "../src/webhooks/settings.ts";

/** Breaker transitions kept for Postgres at most (the latest win; the mirror takes the current state anyway). */
const MAX_PENDING_TRANSITIONS = 100;

/** How long a flushed result is kept as a mark that its delivery ended here (see `JobStore.add`). */
const DONE_MARK_MS = 10 * 60_000;

/**
 * One object per webhook endpoint: its pending deliveries (SQLite), the buffer of attempt results
 * on their way to Postgres, its circuit breaker, rate-limit window and auto-disable clock, and one
 * alarm re-armed for the earliest due delivery (or the breaker's half-open time, the rate limit's
 * next slot, a failed flush's retry), and none while the endpoint is disabled: held deliveries
 * cost nothing until `enqueue` (re-enabling) or `resetCircuit` wakes it. The policy lives in
 * `src/webhooks/` (runner, queue, circuit, pacing, flush); this class is storage, the alarm and RPC.
 * Every RPC method runs inside `rpcBoundary`, so its 503s (Postgres, the writer) reach the caller as 503s.
 */
export class WebhookEndpoint extends DurableObject<CloudflareBindings> {
  private readonly sql: SqlStorage;
  // Runs are serialised: an alarm and a manual attempt must never take the same job twice.
  private running: Promise<unknown> = Promise.resolve();
  // The endpoint's settings: from the last hand-off or read, for at most 30 s (none after `invalidate`).
  private endpointCache: { at: number; value: Endpoint | null | "inactive" } | undefined;
  private readonly flusher: Flusher<AttemptRow>;
  // A run requested by `enqueue` that has not started yet (one is enough for any number of kicks).
  private kicked = false;

  constructor(ctx: DurableObjectState, env: CloudflareBindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      migrateSqlite(ctx.storage, MIGRATIONS);
    });
    // Under load, at most five writes a second per endpoint: fewer, larger batches.
    this.flusher = new Flusher(
      this.buffer,
      (rows) =>
        this.writer()
          .recordAttempts(rows)
          .catch((err: unknown) => {
            this.writerStub = undefined; // a broken stub is not reused
            throw err;
          }),
      { minIntervalMs: 200 },
    );
  }

  // kv read through a write-through cache: the hot path reads the breaker and clocks per attempt.
  private readonly kv = new Map<string, string | undefined>();

  private get(key: string): string | undefined {
    if (!this.kv.has(key))
      this.kv.set(key, this.sql.exec<{ value: string }>("select value from kv where key = ?", key).toArray()[0]?.value);
    return this.kv.get(key);
  }

  private put(key: string, value: string | null): void {
    if (this.get(key) === (value ?? undefined)) return;
    this.kv.set(key, value ?? undefined);
    if (value === null) this.sql.exec("delete from kv where key = ?", key);
    else
      this.sql.exec(
        "insert into kv (key, value) values (?, ?) on conflict (key) do update set value = excluded.value",
        key,
        value,
      );
  }

  // The writer's stub, kept: a call on a kept stub costs about half a fresh one's.
  private writerStub: { org: string; stub: ReturnType<typeof writerFor> } | undefined;

  private writer() {
    const org = this.get("organizationId") ?? "";
    if (this.writerStub?.org !== org) this.writerStub = { org, stub: writerFor(this.env, org) };
    return this.writerStub.stub;
  }

  private jobsVersion = 0;
  private jobsAdded = 0;

  private readonly jobs: JobStore = {
    // One statement per hand-off, whatever its size (one per job cost a SQLite call each), and a
    // second only for jobs held already (a sweep's re-hand, a replay).
    add: (list) => {
      if (list.length === 0) return 0;
      const rows = (jobs: readonly Job[]) =>
        JSON.stringify(
          jobs.map((j) => [
            j.deliveryId,
            j.eventId,
            j.eventType,
            j.body,
            j.attempts,
            j.scheduleBase,
            j.dueAt,
            j.createdAt,
            j.sequence ?? null,
          ]),
        );
      // Ended here with a later attempt (its result maybe not in Postgres yet): a stale re-hand.
      const live = `not exists (select 1 from results r
        where r.delivery_id = j.value->>0 and r.terminal = 1 and r.attempt_number > j.value->>4)`;
      const added = new Set(
        this.sql
          .exec<{ delivery_id: string }>(
            `insert into jobs (delivery_id, event_id, event_type, body, attempts, schedule_base, due_at, created_at, sequence)
             select j.value->>0, j.value->>1, j.value->>2, j.value->>3, j.value->>4, j.value->>5, j.value->>6,
               j.value->>7, j.value->>8
             from json_each(?) j where ${live}
             on conflict do nothing returning delivery_id`,
            rows(list),
          )
          .toArray()
          .map((r) => r.delivery_id),
      );
      const rest = list.filter((j) => !added.has(j.deliveryId));
      if (rest.length > 0) {
        // Replayed since it was handed over: the new schedule wins (a run's due list is stale then).
        const replaced = this.sql
          .exec(
            `update jobs set attempts = j.value->>4, schedule_base = j.value->>5, due_at = j.value->>6
             from json_each(?) j
             where jobs.delivery_id = j.value->>0 and jobs.schedule_base < j.value->>5 and ${live}
             returning jobs.delivery_id`,
            rows(rest),
          )
          .toArray().length;
        if (replaced > 0) this.jobsVersion++;
      }
      if (added.size > 0) this.jobsAdded++;
      return added.size;
    },
    due: (now, limit, exclude) =>
      this.sql
        .exec<JobRow>(
          exclude?.size
            ? "select * from jobs where due_at <= ? and delivery_id not in (select value from json_each(?)) order by due_at, created_at limit ?"
            : "select * from jobs where due_at <= ? and ? is null order by due_at, created_at limit ?",
          now,
          exclude?.size ? JSON.stringify([...exclude]) : null,
          limit,
        )
        .toArray()
        .map(toJob),
    get: (id) => this.sql.exec<JobRow>("select * from jobs where delivery_id = ?", id).toArray().map(toJob)[0],
    head: () =>
      this.sql
        .exec<JobRow>("select * from jobs order by sequence is null, sequence, created_at limit 1")
        .toArray()
        .map(toJob)[0],
    settle: (records) => {
      const webhookId = this.get("webhookId") ?? "";
      // One statement per attempt: the result row, whose trigger (`results_settle`) reschedules or
      // removes the job in the same statement — the job's fate and its result, or neither.
      const one = (r: AttemptRecord) => {
        const retry = r.decision.kind === "retry";
        this.sql.exec(
          "insert into results (delivery_id, attempt_number, terminal, row, settled_at, next_due_at) values (?, ?, ?, ?, ?, ?)",
          r.job.deliveryId,
          r.attemptNumber,
          retry ? 0 : 1,
          JSON.stringify(attemptRow(webhookId, r)),
          r.attemptedAt,
          r.decision.kind === "retry" ? r.decision.at : null,
        );
        if (retry) this.jobsAdded++;
      };
      if (records.length === 1) one(records[0]!);
      else this.ctx.storage.transactionSync(() => records.forEach(one));
    },
    clear: () => {
      this.jobsVersion++;
      return this.sql.exec("delete from jobs").rowsWritten;
    },
    version: () => this.jobsVersion,
    additions: () => this.jobsAdded,
    nextDue: () => this.sql.exec<{ d: number | null }>("select min(due_at) as d from jobs").one().d,
    size: () => this.sql.exec<{ n: number }>("select count(*) as n from jobs").one().n,
  };

  private readonly buffer: ResultBuffer<AttemptRow> = {
    unflushed: (limit) =>
      this.sql
        .exec<{ id: number; row: string }>(
          "select id, row from results where flushed_at is null order by id limit ?",
          limit,
        )
        .toArray()
        .map((r): BufferedResult<AttemptRow> => ({ id: r.id, record: JSON.parse(r.row) as AttemptRow })),
    markFlushed: (ids) => {
      const now = Date.now();
      // Kept a while, without the bulky row, as the mark that the delivery ended here.
      this.sql.exec(
        "update results set flushed_at = ?, row = '' where id in (select value from json_each(?))",
        now,
        JSON.stringify(ids),
      );
      if (now - this.purgedAt > 60_000) {
        this.purgedAt = now;
        this.sql.exec("delete from results where flushed_at < ?", now - DONE_MARK_MS);
      }
    },
  };
  private purgedAt = 0;

  private unflushedCount(): number {
    return this.sql.exec<{ n: number }>("select count(*) as n from results where flushed_at is null").one().n;
  }

  private parsedCircuit: { raw: string | undefined; value: CircuitRecord } | undefined;

  private circuit(): CircuitRecord {
    const raw = this.get("circuit");
    if (this.parsedCircuit?.raw !== raw || !this.parsedCircuit)
      this.parsedCircuit = { raw, value: raw ? (JSON.parse(raw) as CircuitRecord) : { ...closedCircuit } };
    return this.parsedCircuit.value;
  }

  private ordered(): boolean {
    const e = this.endpointCache?.value;
    return typeof e === "object" && e !== null && !!e.settings?.ordered;
  }

  // The alarm as this object last set it (only it sets it); undefined until read once.
  private alarmAt: number | null | undefined;

  private async rearm(at: number | null): Promise<void> {
    if (at === null) {
      if (this.alarmAt !== null) await this.ctx.storage.deleteAlarm();
      this.alarmAt = null;
    } else {
      const t = Math.max(at, Date.now());
      if (this.alarmAt !== t) await this.ctx.storage.setAlarm(t);
      this.alarmAt = t;
    }
  }

  /** Arms the alarm for `at` unless it is armed earlier already. */
  private async armBy(at: number): Promise<void> {
    if (this.alarmAt === undefined) this.alarmAt = await this.ctx.storage.getAlarm();
    if (this.alarmAt === null || this.alarmAt > at) {
      await this.ctx.storage.setAlarm(at);
      this.alarmAt = at;
    }
  }

  /** Flushes buffered results; a failure leaves them buffered and arms a retry in 5 s. */
  private async flushOrRetry(urgent = true): Promise<void> {
    try {
      await this.flusher.flush(urgent);
    } catch (err) {
      await this.armBy(Date.now() + 5_000);
      throw err;
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.running.then(fn, fn);
    this.running = run.catch(() => undefined);
    return run;
  }

  /**
   * Adds deliveries (idempotent by delivery id) and starts a run for those due now (`run: false`:
   * leave them to the caller's `drain`), arming the alarm for later ones. A `snapshot` of the
   * endpoint read with them (fan-out) saves reading it again, unless the object was invalidated
   * after it was read.
   */
  async enqueue(
    webhookId: string,
    organizationId: string,
    jobs: Job[],
    snapshot?: EndpointSnapshot,
    options: { run?: boolean } = {},
  ): Promise<number> {
    return rpcBoundary(() => this.enqueueJobs(webhookId, organizationId, jobs, snapshot, options));
  }

  private async enqueueJobs(
    webhookId: string,
    organizationId: string,
    jobs: Job[],
    snapshot: EndpointSnapshot | undefined,
    options: { run?: boolean },
  ): Promise<number> {
    if (this.get("webhookId") !== webhookId) this.put("webhookId", webhookId);
    if (this.get("organizationId") !== organizationId) this.put("organizationId", organizationId);
    // Every hand-off comes from a read of the live webhook: a delete that began and did not end
    // (its transaction failed) is over, and the object vouches for the organization again.
    if (this.get("deletion") === "started") this.put("deletion", null);
    if (snapshot && snapshot.readAt > Number(this.get("invalidatedAt") ?? 0))
      this.endpointCache = { at: snapshot.readAt, value: snapshot.endpoint };
    const added = this.jobs.add(jobs);
    const wake = nextWake(this.jobs, this.circuit(), "active", { ordered: this.ordered() });
    const now = Date.now();
    // Due now: run at once rather than through an alarm (whose scheduling latency would be the
    // delivery's). Should the object die first, its jobs are in storage and their Postgres rows
    // pending: the cron sweep re-hands and drains them.
    if (wake !== null && wake <= now && options.run !== false) this.kickRun();
    else if (wake !== null) await this.armBy(wake);
    return added;
  }

  /** Starts a run and then a flush in the background, unless one is already waiting to start. */
  private kickRun(): void {
    if (this.kicked) return;
    this.kicked = true;
    this.serial(() => {
      this.kicked = false;
      return this.run();
    })
      .then(() => this.flushOrRetry(false))
      .catch((err: unknown) => {
        createLogger({ component: "webhook-endpoint", webhookId: this.get("webhookId") }).error("endpoint run failed", {
          err,
        });
        return this.armBy(Date.now() + 5_000);
      })
      .catch(() => undefined);
  }

  /** Runs due deliveries now (the cron sweep's kick) and flushes their results; returns what it did. */
  async drain(): Promise<Omit<RunResult, "nextWakeAt">> {
    return rpcBoundary(async () => {
      const { processed, succeeded, failed } = await this.serial(() => this.run());
      await this.flushOrRetry();
      return { processed, succeeded, failed };
    });
  }

  /** Writes every buffered attempt result to Postgres now (before the service reads or replays deliveries). */
  async flush(): Promise<void> {
    return rpcBoundary(() => this.flushOrRetry());
  }

  /**
   * Attempts one delivery now, whatever its due time (manual retry, test event) — `job` adds it
   * first if it is not held yet; its result is in Postgres on return.
   */
  async attemptNow(deliveryId: string, job?: Job): Promise<{ record?: AttemptRecord; circuit: CircuitState }> {
    return rpcBoundary(async () => {
      if (job) this.jobs.add([job]);
      const r = await this.serial(() => this.run(deliveryId));
      await this.flushOrRetry();
      return {
        record: r.records.find((x) => x.job.deliveryId === deliveryId),
        circuit: circuitView(this.get("webhookId") ?? "", this.circuit()),
      };
    });
  }

  /**
   * The breaker's state (seed `CircuitState`) with what the object knows of its webhook: the
   * organization a hand-off told it — none before the first one, nor while a delete is under way —
   * and whether it was deleted. Enough for a circuit read, tenancy included, without Postgres.
   */
  async readCircuit(webhookId: string): Promise<CircuitReading> {
    return rpcBoundary(async () => {
      const deletion = this.get("deletion");
      return {
        circuit: circuitView(webhookId, this.circuit()),
        organizationId: deletion ? null : (this.get("organizationId") ?? null),
        deleted: deletion === "done",
      };
    });
  }

  /**
   * Closes the breaker by hand; held deliveries flow again at once. Its event and the mirror are
   * written before it returns; should Postgres fail, the reset stands, they wait in the object
   * (retried as any transition's) and the caller gets the 503.
   */
  async resetCircuit(): Promise<{ reset: boolean }> {
    return rpcBoundary(async () => {
      const { circuit, transition } = resetCircuit(this.circuit());
      this.put("circuit", JSON.stringify(circuit));
      if (transition) this.recordTransition("webhook.circuit_closed", { reason: transition.reason });
      // Also without a transition: a mirror left stale by a failed write heals here.
      this.put("mirrorStale", "1");
      await this.rearm(nextWake(this.jobs, circuit, "active", { ordered: this.ordered() }));
      if (this.get("webhookId")) await this.withPlatform((p) => this.publishTransitions(p, { throwOnFailure: true }));
      return { reset: transition !== null };
    });
  }

  // When a failed write of transitions may be tried again (memory only: a new instance tries at once).
  private transitionsRetryAt = 0;

  /** Breaker transitions whose events are not in Postgres yet, oldest first. */
  private pendingTransitions(): CloudEvent[] {
    return JSON.parse(this.get("transitions") ?? "[]") as CloudEvent[];
  }

  /**
   * Records a breaker transition's event in the object's storage, beside the breaker itself: a
   * transition while Postgres is down (deliveries go on without it) is published once it is back,
   * never lost. Its id is deterministic, so a retry after an unknown outcome adds no duplicate.
   */
  private recordTransition(type: EventType, data: Record<string, unknown>): void {
    const webhookId = this.get("webhookId") ?? "";
    const seq = Number(this.get("transitionSeq") ?? 0) + 1;
    this.put("transitionSeq", String(seq));
    const event = createEvent({
      id: `${webhookId}.circuit.${seq}`,
      type,
      organizationId: this.get("organizationId") ?? "",
      source: "/cloudmatrix-edge/webhooks",
      subject: `webhooks/${webhookId}`,
      data: { webhookId, ...data },
    });
    // Bounded: an endpoint flapping through a long outage keeps its latest transitions.
    this.put("transitions", JSON.stringify([...this.pendingTransitions(), event].slice(-MAX_PENDING_TRANSITIONS)));
    this.put("mirrorStale", "1");
  }

  /**
   * Writes the pending transitions' events and the breaker's current state (the mirror the cron
   * sweep reads) to Postgres in one transaction. A failure keeps them and arms a retry in 5 s
   * (each run tries first, too); it is logged, and thrown only if asked: a run goes on delivering.
   */
  private async publishTransitions(p: Platform, opts: { throwOnFailure?: boolean } = {}): Promise<void> {
    const webhookId = this.get("webhookId");
    const events = this.pendingTransitions();
    if (!webhookId || (events.length === 0 && !this.get("mirrorStale"))) return;
    // After a failure, runs wait for the retry rather than each paying a connection attempt.
    if (!opts.throwOnFailure && Date.now() < this.transitionsRetryAt) return;
    try {
      await withTransaction(p.db, async (tx, outbox) => {
        await outbox.publishMany(events);
        await recordCircuit(tx, webhookId, this.circuit());
      });
    } catch (err) {
      p.logger.warn("circuit transition not in Postgres yet; retrying in 5 s", { err, pending: events.length });
      this.transitionsRetryAt = Date.now() + 5_000;
      await this.armBy(this.transitionsRetryAt);
      if (opts.throwOnFailure) throw err;
      return;
    }
    // Only what was written: a transition recorded meanwhile stays pending, and so does the mirror.
    const written = new Set(events.map((e) => e.id));
    const left = this.pendingTransitions().filter((e) => !written.has(e.id));
    this.put("transitions", left.length ? JSON.stringify(left) : null);
    if (left.length === 0) this.put("mirrorStale", null);
  }

  /**
   * Forgets the cached endpoint settings (after an update, a rotation, a re-activation). A
   * re-activation also restarts the auto-disable clock: failures before it do not count.
   * `deleting` (a delete's first step, before its transaction): the object stops vouching for the
   * webhook's organization until `cancelAll` ends it or a hand-off shows it still exists, so a
   * delete that commits but never reaches `cancelAll` cannot leave a read answered from here.
   */
  async invalidate(options: { reactivated?: boolean; deleting?: boolean } = {}): Promise<void> {
    return rpcBoundary(async () => {
      this.endpointCache = undefined;
      this.put("invalidatedAt", String(Date.now()));
      if (options.reactivated) this.put("failingSince", null);
      if (options.deleting && this.get("deletion") !== "done") this.put("deletion", "started");
    });
  }

  /** Drops every held delivery (webhook deleted, for good); returns how many. */
  async cancelAll(): Promise<number> {
    return rpcBoundary(async () => {
      this.endpointCache = undefined;
      this.put("deletion", "done");
      const n = this.jobs.clear();
      await this.rearm(null);
      return n;
    });
  }

  /** Drops the in-memory copies of stored state (kv, alarm time): for tests that edit storage directly. */
  reloadState(): void {
    this.kv.clear();
    this.parsedCircuit = undefined;
    this.alarmAt = undefined;
  }

  /** Deliveries held (pending) by this endpoint. */
  async pending(): Promise<number> {
    return rpcBoundary(async () => this.jobs.size());
  }

  /** Attempt results settled here but not yet in Postgres. */
  async unflushed(): Promise<number> {
    return rpcBoundary(async () => this.unflushedCount());
  }

  /** Runs due deliveries, flushes their results and re-arms. A failing run or flush retries in 5 s. */
  override async alarm(): Promise<void> {
    this.alarmAt = null; // a fired alarm is no longer set
    this.transitionsRetryAt = 0; // it may be the retry of a failed transition write
    const log = () => createLogger({ component: "webhook-endpoint", webhookId: this.get("webhookId") });
    try {
      await this.serial(() => this.run());
    } catch (err) {
      log().error("endpoint run failed", { err });
      await this.ctx.storage.setAlarm(Date.now() + 5_000);
    }
    try {
      await this.flushOrRetry(false);
    } catch (err) {
      log().warn("flushing attempt results failed; retrying in 5 s", { err });
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

  private async run(only?: string) {
    const webhookId = this.get("webhookId");
    if (!webhookId) return { processed: 0, succeeded: 0, failed: 0, nextWakeAt: null, records: [] };
    // Should the object die before it flushed what it settled, the results wait in storage and
    // their deliveries stay pending in Postgres: the cron sweep hands them over (ignored: they
    // ended here) and drains the object, which flushes.
    // The platform opens Postgres only if a run needs it (breaker transitions, disabling): the hot
    // path reads endpoints and writes results through the writer object.
    return this.withPlatform(async (p) => {
      // Transitions an outage kept from Postgres go first (a no-op, without Postgres, if none).
      await this.publishTransitions(p);
      const w = p.config.webhooks;
      const defaults = defaultSettings(w);
      const result = await runDue(
        {
          jobs: this.jobs,
          circuit: { get: () => this.circuit(), set: (c) => this.put("circuit", JSON.stringify(c)) },
          loadEndpoint: async () => {
            if (this.endpointCache && Date.now() - this.endpointCache.at < 30_000) return this.endpointCache.value;
            const value = await this.writer().loadEndpoint(webhookId);
            this.endpointCache = { at: Date.now(), value };
            return value;
          },
          attempt: (job, endpoint) =>
            attemptDelivery(job, endpoint, {
              timeoutMs: endpoint.settings?.timeoutMs ?? w.timeoutMs,
              policy: { allowLocalHttp: w.allowLocalHttp },
            }),
          settled: () => this.flusher.kick(),
          onTransition: async (t, c) => {
            const type =
              t.to === "open"
                ? "webhook.circuit_opened"
                : t.to === "half_open"
                  ? "webhook.circuit_half_opened"
                  : "webhook.circuit_closed";
            p.logger.warn("circuit transition", { webhookId, from: t.from, to: t.to, reason: t.reason });
            this.recordTransition(type, {
              from: t.from,
              to: t.to,
              reason: t.reason,
              failureCount: c.failureCount,
              halfOpenAt: c.halfOpenAt ? new Date(c.halfOpenAt).toISOString() : null,
            });
            await this.publishTransitions(p);
          },
          onDisable: async (reason) => {
            this.endpointCache = undefined;
            p.logger.warn("endpoint disabled", { webhookId, reason: disableReasonText(reason) });
            await withTransaction(p.db, (tx, outbox) => disableWebhook(tx, outbox, webhookId, reason));
            this.put("failingSince", null);
          },
          failing: {
            get: () => (this.get("failingSince") ? Number(this.get("failingSince")) : null),
            set: (at) => this.put("failingSince", at === null ? null : String(at)),
          },
          pacing: {
            get: () => JSON.parse(this.get("pacing") ?? "[]") as number[],
            set: (starts) => this.put("pacing", JSON.stringify(starts)),
          },
          settings: {
            retry: { baseMs: defaults.backoffBaseMs, capMs: defaults.backoffCapMs, maxAttempts: defaults.maxAttempts },
            circuit: w.circuit,
            concurrency: w.concurrency,
            maxRunMs: 25_000,
            rateLimitPerSecond: defaults.rateLimitPerSecond,
            disableAfterFailingMs: defaults.disableAfterFailingMs,
          },
          now: Date.now,
        },
        only,
      );
      await this.rearm(result.nextWakeAt);
      if (this.get("mirrorStale")) await this.armBy(Math.max(this.transitionsRetryAt, Date.now() + 1_000)); // the retry outlives the re-arm
      return result;
    });
  }
}

/** The object's SQLite schema, append-only (see `migrateSqlite`); the first is the layout before versions. */
const MIGRATIONS = [
  `create table if not exists jobs (
     delivery_id text primary key, event_id text not null, event_type text not null, body text not null,
     attempts integer not null, due_at integer not null, created_at integer not null);
   create index if not exists jobs_due on jobs (due_at, created_at);
   create table if not exists kv (key text primary key, value text not null);`,
  // The position in the current retry schedule (a replay starts a fresh one).
  "alter table jobs add column schedule_base integer not null default 0",
  // The endpoint's sequence number (ordered mode, `webhook-sequence`); attempt results on their way
  // to Postgres (flushed_at null), then kept briefly as marks that a delivery ended here.
  `alter table jobs add column sequence integer;
   create index jobs_sequence on jobs (sequence, created_at);
   create table results (
     id integer primary key autoincrement, delivery_id text not null, attempt_number integer not null,
     terminal integer not null, row text not null, settled_at integer not null, flushed_at integer);
   create index results_unflushed on results (id) where flushed_at is null;
   create index results_delivery on results (delivery_id, attempt_number);`,
  // Settling an attempt is one statement: its result's insert moves the job on.
  `alter table results add column next_due_at integer;
   create trigger results_settle after insert on results begin
     delete from jobs where delivery_id = new.delivery_id and new.terminal = 1;
     update jobs set due_at = new.next_due_at, attempts = new.attempt_number
       where delivery_id = new.delivery_id and new.terminal = 0;
   end;`,
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
  sequence: number | null;
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
  ...(r.sequence !== null ? { sequence: r.sequence } : {}),
});
