import type { EventBus } from "../events/bus.ts";
import { eventKey } from "../events/cloudevent.ts";
import type { Config } from "../platform/config.ts";
import type { Db } from "../platform/db.ts";
import { NotFoundError, RateLimitedError, ValidationError } from "../platform/errors.ts";
import type { QueueProducer } from "../platform/queue.ts";
import { sendTexts } from "../platform/queue.ts";
import { slidingWindow } from "../platform/rate-limit.ts";
import type { Redis, RedisKeys } from "../platform/redis.ts";
import { parseInput } from "../platform/validation.ts";
import type { ValidatedEvent } from "./accept.ts";
import { acceptUsageEvent } from "./accept.ts";
import { encodeUsageBatches } from "./cloudevents.ts";
import type { CounterEvent } from "./counters.ts";
import type { MetricType } from "./metrics.ts";
import { derivedMetrics, isDerivedMetric, sourceEventTypes, valueFromSums } from "./metrics.ts";
import { GAUGE_TYPES } from "./counters.ts";
import type { Granularity } from "./periods.ts";
import { hasWholeHourOffsets } from "./periods.ts";
import type { Admission, QuotaMetricType } from "./quota.ts";
import { quotaMetrics } from "./quota.ts";
import type { AggregationRun } from "./log.ts";
import { aggregateLog, appendEvents, tailSql } from "./log.ts";
import {
  aggregatesExactSince,
  distinctUsers,
  ensureOrganizations,
  exactSums,
  recentlyActiveOrganizations,
  sumsByBucket,
  sumsByRawDimension,
  topMembers,
} from "./repo.ts";
import type { SumRow } from "./repo.ts";
import { effectivePlan } from "./plans.ts";
import type { ReportPage, ReportRow } from "./reports.ts";
import { findReport, listLatestReports, listRevisions, toReport } from "./reports.ts";
import { rollupMetrics as rollup } from "./rollup.ts";
import type { RetentionLimits, RetentionResult } from "./retention.ts";
import { applyRetention } from "./retention.ts";
import type {
  AggregatedMetrics,
  AggregationQuery,
  DashboardData,
  IngestResult,
  LineItem,
  MetricDataPoint,
  QuotaAlertConfig,
  QuotaStatus,
  UsageEvent,
  UsageEventInput,
  UsageReport,
} from "./schemas.ts";
import { aggregationQuerySchema, pageOptionsSchema, quotaAlertConfigSchema } from "./schemas.ts";
import { decimalAdd, decimalMul, decimalRound, decimalSub, decimalSum } from "./decimal.ts";

/** The RPC surface of an organization's Durable Object (`OrgUsage`), as the service uses it. */
export interface OrgUsageClient {
  apply(org: string, events: CounterEvent[]): Promise<{ applied: number; crossings: number }>;
  reconcile(
    org?: string,
    options?: { unlessWithinMs?: number },
  ): Promise<{
    cutoff: number;
    drift: { sums: Record<string, number>; gauges: Record<string, number>; users: number };
  } | null>;
  checkQuota(org: string, metric: QuotaMetricType, amount: number): Promise<Admission>;
  status(org: string): Promise<{
    plan: string;
    periodStart: string;
    periodEnd: string;
    metrics: QuotaStatus["metrics"];
    sums: Record<string, number>;
  }>;
  realtime(): Promise<{ activeUsers: number; openDocuments: number; asOf: string }>;
  invalidate(): Promise<void>;
}

/** Constructor options (the seed's `redis`, `db`, `eventBus`, plus the organization objects). */
export interface UsageAggregatorOptions {
  db: Db;
  redis: Redis;
  keys: RedisKeys;
  eventBus?: EventBus;
  /** The organization object of an organization. */
  orgs: (organizationId: string) => OrgUsageClient;
  config: Config["usage"];
  now?: () => number;
  /** Receives errors that are counted rather than thrown (rollup batches). */
  onError?: (err: unknown) => void;
  /** The `usage-events` Queue the HTTP ingest API hands accepted events to. */
  queue?: QueueProducer;
}

export type { ValidatedEvent };

const groupBy = <T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> => {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
};

const MAX_BUCKETS = 10_000;
const granularityMs = { minute: 60_000, hour: 3_600_000, day: 86_400_000, month: 31 * 86_400_000 } as const;
const iso = (d: Date | string | number) => new Date(d).toISOString();
/** Compares strings by UTF-16 code units (`localeCompare` would be locale-aware, and slower). */
const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const isoWeek = (d: Date) => {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const week = Math.ceil(((t.getTime() - Date.UTC(t.getUTCFullYear(), 0, 1)) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, "0")}`;
};

/**
 * UsageAnalyticsAggregator — collects, aggregates and reports usage (seed Task 1). Postgres holds
 * raw events and exact aggregates; each organization's Durable Object holds the real-time counters
 * and admits quota atomically; Redis holds approximate unique counts, top-N and rate limits.
 */
export class UsageAnalyticsAggregator {
  private readonly db: Db;
  private readonly redis: Redis;
  private readonly keys: RedisKeys;
  private readonly orgs: (organizationId: string) => OrgUsageClient;
  private readonly config: Config["usage"];
  private readonly now: () => number;
  private readonly onError: (err: unknown) => void;
  private readonly queue?: QueueProducer;

  /** @param options - redis, db, eventBus (seed) plus the organization objects and settings */
  constructor(options: UsageAggregatorOptions) {
    this.db = options.db;
    this.redis = options.redis;
    this.keys = options.keys;
    this.orgs = options.orgs;
    this.config = options.config;
    this.now = options.now ?? Date.now;
    this.onError = options.onError ?? (() => {});
    this.queue = options.queue;
  }

  /**
   * Validates one event for acceptance: schema, known type, quantity, metadata size, and a timestamp
   * neither more than 5 minutes ahead nor older than the late-event horizon (see `accept.ts`).
   */
  validate(input: unknown): ValidatedEvent {
    return acceptUsageEvent(input, { now: this.now(), lateEventHorizonDays: this.config.lateEventHorizonDays });
  }

  /**
   * Ingests a batch from the HTTP API (the route validates the envelope and delegates here): rate
   * limit per organization, acceptance of each event, one dedup key `(organizationId, eventId)`
   * within the batch, and the rest handed to the `usage-events` Queue as few batch messages as fit.
   * Accepted events are counted exactly once by the consumer (repeats of an id recorded earlier are
   * dropped there, by the log's key).
   * @param organizationId - the organization of the path; events default to it
   * @param list - raw events as sent
   * @param options - `internal`: the caller may record for other organizations
   * @returns accepted count, ids repeated within the request, rejected events with their issues
   * @throws {RateLimitedError} over `USAGE_INGEST_RATE_LIMIT_PER_MINUTE`; {ValidationError} when nothing is valid
   */
  async ingestEvents(
    organizationId: string,
    list: readonly unknown[],
    options: { internal: boolean },
  ): Promise<IngestResult> {
    if (list.length === 0) throw new ValidationError("no events", [{ path: "events", message: "at least one event" }]);
    const limit = await slidingWindow(
      this.redis,
      this.keys.key("usage", "rl", organizationId),
      this.config.ingestRateLimitPerMinute,
      60_000,
      this.now(),
    );
    if (!limit.allowed) throw new RateLimitedError("usage ingest rate limit exceeded", limit.retryAfterSeconds);
    const valid = new Map<string, UsageEvent>();
    const duplicates: string[] = [];
    const rejected: IngestResult["rejected"] = [];
    const policy = { now: this.now(), lateEventHorizonDays: this.config.lateEventHorizonDays };
    for (const [index, raw] of list.entries()) {
      const v = acceptUsageEvent(raw && typeof raw === "object" ? { organizationId, ...(raw as object) } : raw, policy);
      if (!v.ok) {
        rejected.push({ index, eventId: v.eventId, issues: v.issues });
      } else if (v.event.organizationId !== organizationId && !options.internal) {
        const message = "must be the organization in the path (or use an internal token)";
        rejected.push({ index, eventId: v.event.eventId, issues: [{ path: "organizationId", message }] });
      } else {
        // A duplicate inside the batch is recorded once.
        const key = eventKey(v.event.organizationId, v.event.eventId);
        if (valid.has(key)) duplicates.push(v.event.eventId);
        else valid.set(key, v.event);
      }
    }
    if (valid.size === 0) {
      throw new ValidationError(
        "no valid events",
        rejected.flatMap((r) => r.issues.map((i) => ({ ...i, path: `${r.index}.${i.path}` }))),
      );
    }
    if (!this.queue) throw new Error("USAGE_EVENTS queue binding missing");
    await sendTexts(this.queue, encodeUsageBatches([...valid.values()]));
    return { accepted: valid.size, duplicates, rejected };
  }

  /**
   * Record a usage event for aggregation.
   * @param event - the usage event
   * @returns `recorded: false` when the event id was already recorded for the organization
   * @throws {ValidationError} if event data is invalid
   */
  async recordEvent(event: UsageEventInput): Promise<{ recorded: boolean; eventId: string }> {
    const v = this.validate(event);
    if (!v.ok) throw new ValidationError("invalid usage event", v.issues);
    const fresh = await this.recordEvents([v.event]);
    return { recorded: fresh.has(eventKey(v.event.organizationId, v.event.eventId)), eventId: v.event.eventId };
  }

  /**
   * Records accepted events exactly once (the Queue consumer's batch path): the log first (one
   * statement), then every event goes to its organization's object — known ones included, because a
   * crash between the two steps must still reach the counters, which dedupe by id themselves — and
   * the Redis sketches get the new ones (best effort: dashboards only). Aggregation happens later,
   * from the log ({@link aggregate}); reads are exact before it.
   * @returns the `eventKey`s of the events that were new
   */
  async recordEvents(events: readonly UsageEvent[]): Promise<Set<string>> {
    if (events.length === 0) return new Set();
    const { fresh, position } = await appendEvents(this.db, events);
    // Counters and sketches are independent once the log has the events: update them together.
    await Promise.all([
      ...[...groupBy(events, (e) => e.organizationId)].map(([org, list]) =>
        this.orgs(org).apply(
          org,
          list.map((e) => ({
            eventId: e.eventId,
            eventType: e.eventType,
            userId: e.userId,
            resourceId: e.resourceId,
            quantity: e.quantity,
            occurredAt: e.timestamp.getTime(),
            position: position.get(eventKey(e.organizationId, e.eventId)) ?? 0,
          })),
        ),
      ),
      this.updateSketches(events.filter((e) => fresh.has(eventKey(e.organizationId, e.eventId)))).catch(
        () => undefined,
      ),
    ]);
    return fresh;
  }

  /**
   * Folds the log into the aggregates past the watermark (cron, and kicked after each consumer
   * batch). One runs at a time; the others return at once — or, with `flush`, wait and then fold
   * everything committed before the call.
   * @param opts - rows per chunk, chunks per run, `flush`
   */
  aggregate(opts?: { maxRows?: number; maxChunks?: number; flush?: boolean }): Promise<AggregationRun> {
    return aggregateLog(this.db, opts);
  }

  /**
   * The dashboard's unique-user HyperLogLogs, one PFADD per (organization, day/week/month) per batch
   * (its top users and documents are exact Postgres aggregates, kept by the aggregator).
   */
  private async updateSketches(events: readonly UsageEvent[]): Promise<void> {
    if (events.length === 0) return;
    const day = 86_400;
    const hll = new Map<string, { users: Set<string>; ttl: number }>();
    // A batch spans few (organization, UTC day) pairs: their three keys are built once each.
    const keysOf = new Map<string, { key: string; ttl: number }[]>();
    for (const e of events) {
      if (!e.userId) continue;
      const at = e.timestamp;
      const org = e.organizationId;
      const pair = `${org}\u0000${Math.floor(at.getTime() / 86_400_000)}`;
      let keys = keysOf.get(pair);
      if (!keys) {
        const iso = at.toISOString();
        keys = [
          { key: this.keys.key("usage", "hll", org, "day", iso.slice(0, 10)), ttl: 40 * day },
          { key: this.keys.key("usage", "hll", org, "week", isoWeek(at)), ttl: 70 * day },
          { key: this.keys.key("usage", "hll", org, "month", iso.slice(0, 7)), ttl: 400 * day },
        ];
        keysOf.set(pair, keys);
      }
      for (const { key, ttl } of keys) {
        let h = hll.get(key);
        if (!h) hll.set(key, (h = { users: new Set(), ttl }));
        h.users.add(e.userId);
      }
    }
    if (hll.size === 0) return;
    const p = this.redis.pipeline();
    for (const [k, h] of hll) {
      const [first, ...rest] = [...h.users];
      p.pfadd(k, first!, ...rest);
      p.expire(k, h.ttl);
    }
    await p.exec();
  }

  /**
   * Get aggregated usage metrics for a time range. Sums come from the coarsest exact table
   * (month/day rollups for clean buckets, hours for dirty or zoned ones, minutes for minute
   * buckets); unique counts come from distinct-user sets and are never summed.
   * @param organizationId - organization identifier
   * @param query - startTime, endTime, granularity, metricTypes, dimensions?, timeZone?
   */
  async getAggregatedMetrics(organizationId: string, query: AggregationQuery): Promise<AggregatedMetrics> {
    const q = parseInput(aggregationQuerySchema, query, "aggregation query");
    const metrics = [...new Set(q.metricTypes)] as MetricType[];
    const dims = q.dimensions ?? [];
    if ((q.endTime.getTime() - q.startTime.getTime()) / granularityMs[q.granularity] > MAX_BUCKETS) {
      throw new ValidationError("too many buckets", [
        { path: "granularity", message: `at most ${MAX_BUCKETS} buckets per query; use a coarser granularity` },
      ]);
    }
    if (dims.length > 0 && metrics.some((m) => isDerivedMetric(m) && derivedMetrics[m].kind === "distinct")) {
      throw new ValidationError("dimensions do not apply to unique counts", [
        { path: "dimensions", message: "remove dimensions or the collaborators/active_users metrics" },
      ]);
    }
    if (dims.length > 1)
      throw new ValidationError("one dimension at a time", [
        { path: "dimensions", message: "at most one dimension per query" },
      ]);
    const wholeHourZone = hasWholeHourOffsets(q.timeZone, q.startTime, q.endTime);
    const sumMetrics = metrics.filter((m) => !(isDerivedMetric(m) && derivedMetrics[m].kind === "distinct"));
    const distinct = metrics.filter((m) => isDerivedMetric(m) && derivedMetrics[m].kind === "distinct");
    await this.assertAnswerable(q, wholeHourZone, sumMetrics.length > 0, distinct.length > 0, dims[0]);
    const points: MetricDataPoint[] = [];
    const totals: Record<string, number> = {};
    const sources: string[] = [];
    const dimName = dims[0];

    if (sumMetrics.length > 0) {
      const types = [...new Set(sumMetrics.flatMap(sourceEventTypes))];
      const base = {
        org: organizationId,
        types,
        from: q.startTime,
        to: q.endTime,
        granularity: q.granularity,
        tz: q.timeZone,
      };
      const { rows, source } =
        dimName === "userId" || dimName === "resourceId"
          ? await sumsByRawDimension(this.db, { ...base, column: dimName === "userId" ? "user_id" : "resource_id" })
          : await sumsByBucket(this.db, { ...base, wholeHourZone, byResourceType: dimName === "resourceType" });
      sources.push(source);
      // bucket → dimension value → event type → sum; each bucket's timestamp is formatted once.
      const cells = new Map<number, Map<string, Map<string, number>>>();
      for (const r of rows as SumRow[]) {
        let byDim = cells.get(r.at);
        if (!byDim) cells.set(r.at, (byDim = new Map()));
        const dim = r.dim ?? "";
        let sums = byDim.get(dim);
        if (!sums) byDim.set(dim, (sums = new Map()));
        sums.set(r.event_type, decimalAdd(sums.get(r.event_type) ?? 0, Number(r.quantity)));
      }
      const buckets = [...cells.keys()].sort((a, b) => a - b);
      for (const m of [...sumMetrics].sort(byCodeUnits)) {
        const terms = sourceEventTypes(m);
        let total = 0;
        for (const at of buckets) {
          const timestamp = iso(at);
          for (const [dim, sums] of cells.get(at)!) {
            if (!terms.some((t) => sums.has(t))) continue;
            const value = valueFromSums(m, sums);
            total = decimalAdd(total, value);
            points.push({ timestamp, metricType: m, value, dimensions: dimName ? { [dimName]: dim } : {} });
          }
        }
        totals[m] = total;
      }
    }
    if (distinct.length > 0) {
      const d = await distinctUsers(this.db, {
        org: organizationId,
        from: q.startTime,
        to: q.endTime,
        granularity: q.granularity,
        tz: q.timeZone,
        wholeHourZone,
      });
      sources.push(d.source);
      for (const m of distinct) {
        for (const b of d.perBucket)
          points.push({ timestamp: iso(b.bucket), metricType: m, value: b.users, dimensions: {} });
        totals[m] = d.total;
      }
    }
    // Stable, and nearly linear on points already in (metric, time) runs; ISO-8601 UTC timestamps of
    // one format order by code units as they order in time (no locale-aware comparison needed).
    points.sort((a, b) => byCodeUnits(a.timestamp, b.timestamp) || byCodeUnits(a.metricType, b.metricType));
    return {
      organizationId,
      startTime: iso(q.startTime),
      endTime: iso(q.endTime),
      granularity: q.granularity,
      timeZone: q.timeZone,
      dataPoints: points,
      totals,
      source: sources.join(", "),
    };
  }

  /**
   * Get current quota status for an organization (from its object's exact counters).
   * @param organizationId - organization identifier
   */
  async getQuotaStatus(organizationId: string): Promise<QuotaStatus> {
    const s = await this.orgs(organizationId).status(organizationId);
    return { organizationId, plan: s.plan, metrics: s.metrics, periodStart: s.periodStart, periodEnd: s.periodEnd };
  }

  /**
   * Check if an operation would exceed quota limits — and reserve it when it fits, atomically.
   * @param organizationId - organization identifier
   * @param metricType - api_calls, storage, documents or collaborators
   * @param amount - amount to add
   * @throws {ValidationError} for an unknown metric or a negative amount
   */
  async checkQuota(
    organizationId: string,
    metricType: string,
    amount: number,
  ): Promise<{ allowed: boolean; remaining: number; limit: number }> {
    if (!Object.hasOwn(quotaMetrics, metricType)) {
      throw new ValidationError("unknown quota metric", [
        { path: "metricType", message: `one of ${Object.keys(quotaMetrics).join(", ")}` },
      ]);
    }
    if (!Number.isFinite(amount) || amount < 0)
      throw new ValidationError("invalid amount", [{ path: "amount", message: "a finite number ≥ 0" }]);
    return this.orgs(organizationId).checkQuota(organizationId, metricType as QuotaMetricType, amount);
  }

  /**
   * Perform time-series rollup for a metric: the log is folded into the hour aggregates first (all
   * that was committed before the call), then dirty day/month buckets older than the cutoff are
   * recomputed from hours and replaced (idempotent, late-event safe).
   * @param metricType - metric to roll up (`*` for all)
   * @param cutoffTime - roll up buckets that start before this time
   */
  async rollupMetrics(metricType: MetricType | "*", cutoffTime: Date): Promise<{ rolledUp: number; errors: number }> {
    await aggregateLog(this.db, { flush: true });
    return rollup(this.db, metricType, cutoffTime, (err) => this.onError(err));
  }

  /**
   * Retention (cron): purges minute aggregates, dedup keys and raw events past their horizons in
   * bounded, index-backed steps, drops expired month partitions and creates the next ones.
   * @param limits - rows per delete and deletes per run
   */
  applyRetention(limits?: RetentionLimits): Promise<RetentionResult> {
    return applyRetention(
      this.db,
      { minuteRetentionDays: this.config.minuteRetentionDays, rawRetentionDays: this.config.lateEventHorizonDays + 7 },
      new Date(this.now()),
      limits,
    );
  }

  /**
   * Reconciles the organization objects of every organization that received events recently (cron):
   * covers objects that never heard of a batch (it died after its Postgres write) or lost their
   * state. Objects reconciled within the last few minutes skip it.
   * @param since - organizations with events received since this time
   * @param options - `unlessWithinMs` (default 4 min): skip objects reconciled more recently; `limit` organizations
   * @returns how many objects were reconciled and how many had drift corrected
   */
  async reconcileActiveOrganizations(
    since: Date,
    options: { unlessWithinMs?: number; limit?: number } = {},
  ): Promise<{ reconciled: number; corrected: number }> {
    const { unlessWithinMs = 4 * 60_000, limit = 1_000 } = options;
    const orgs = await recentlyActiveOrganizations(this.db, since, limit);
    let reconciled = 0;
    let corrected = 0;
    // A few at a time: each is a Postgres read in the object.
    for (let i = 0; i < orgs.length; i += 8) {
      const results = await Promise.all(
        orgs.slice(i, i + 8).map((org) => this.orgs(org).reconcile(org, { unlessWithinMs })),
      );
      for (const r of results) {
        if (!r) continue;
        reconciled += 1;
        const d = r.drift;
        if (Object.keys(d.sums).length + Object.keys(d.gauges).length > 0 || d.users !== 0) corrected += 1;
      }
    }
    return { reconciled, corrected };
  }

  /** Quantity of each billable metric in [start, end): sums over hours, gauges at the end, distinct users. */
  /**
   * Quantity of each billable metric in [start, end), exact whatever the ends: sums over the period,
   * gauges at its end, distinct users (see `exactSums`).
   * @throws {ValidationError} when an end inside an hour lies past the raw-event retention
   */
  private async periodQuantities(
    org: string,
    start: Date,
    end: Date,
  ): Promise<{ quantities: Record<string, number>; events: number }> {
    for (const [path, at] of [
      ["periodStart", start],
      ["periodEnd", end],
    ] as const) {
      if (at.getTime() % 3_600_000 !== 0) this.assertRaw(at, path, "a period boundary inside an hour");
    }
    const r = await exactSums(this.db, { org, from: start, to: end, toEndTypes: GAUGE_TYPES });
    return {
      quantities: {
        api_calls: valueFromSums("api_calls", r.sums),
        storage: valueFromSums("storage", r.toEnd),
        documents: valueFromSums("documents", r.toEnd),
        collaborators: r.users,
      },
      events: r.events,
    };
  }

  /**
   * A query the data cannot answer exactly is refused (400 saying why), never answered partially:
   * minutes beyond their retention; 15-minute sums (zones with half- and quarter-hour offsets) or
   * per-user day sums from before those aggregates were complete; anything read from raw events
   * (user/resource breakdowns finer than UTC days, distinct users in such zones or per minute)
   * beyond the raw retention.
   */
  private async assertAnswerable(
    q: { startTime: Date; granularity: Granularity; timeZone: string },
    wholeHourZone: boolean,
    sums: boolean,
    distinct: boolean,
    dim: string | undefined,
  ): Promise<void> {
    // The first bucket starts at the zone's start of the granularity that holds startTime.
    const from = new Date(q.startTime.getTime() - granularityMs[q.granularity]);
    const utcDays = (q.granularity === "day" || q.granularity === "month") && q.timeZone === "UTC";
    if (q.granularity === "minute" && from.getTime() < this.now() - this.config.minuteRetentionDays * 86_400_000) {
      throw new ValidationError("the data cannot answer this exactly", [
        {
          path: "granularity",
          message: `minute buckets are kept ${this.config.minuteRetentionDays} days; use hour or a later start`,
        },
      ]);
    }
    const quarter = sums && !dim && !wholeHourZone && q.granularity !== "minute";
    const perUserDay = sums && dim === "userId" && utcDays;
    if (quarter || perUserDay) {
      const since = await aggregatesExactSince(this.db);
      if (from < since) {
        const what = quarter ? `sums in ${q.timeZone} (15-minute aggregates)` : "per-user day sums";
        throw new ValidationError("the data cannot answer this exactly", [
          { path: "startTime", message: `${what} are complete from ${since.toISOString()}; choose a later start` },
        ]);
      }
    }
    if (sums && (dim === "resourceId" || (dim === "userId" && !utcDays))) {
      this.assertRaw(from, "dimensions", `a ${dim} breakdown${dim === "userId" ? " finer than UTC days" : ""}`);
    }
    if (distinct && (q.granularity === "minute" || !wholeHourZone)) {
      this.assertRaw(from, "metricTypes", `distinct users per ${q.granularity} in ${q.timeZone}`);
    }
  }

  /** Days raw events are kept: the oldest instant a raw-event read is exact from. */
  private rawSince(): number {
    return this.now() - (this.config.lateEventHorizonDays + 7) * 86_400_000;
  }

  /** @throws {ValidationError} (400) unless `at` is inside the raw-event retention, saying why it matters */
  private assertRaw(at: Date, path: string, what: string): void {
    if (at.getTime() >= this.rawSince()) return;
    const days = this.config.lateEventHorizonDays + 7;
    throw new ValidationError("the data cannot answer this exactly", [
      {
        path,
        message: `${what} needs raw events, which are kept ${days} days; choose a later start or a coarser query`,
      },
    ]);
  }

  /**
   * Generate usage report for billing period: line items per metric (quantity, included allowance,
   * overage, unit price, amount). Each generation that sees different data is a new revision that
   * lists what changed; generating again without new data returns the latest revision.
   * @param organizationId - organization identifier
   * @param periodStart - billing period start
   * @param periodEnd - billing period end
   */
  async generateUsageReport(organizationId: string, periodStart: Date, periodEnd: Date): Promise<UsageReport> {
    if (!(periodStart < periodEnd))
      throw new ValidationError("invalid period", [
        { path: "periodEnd", message: "periodEnd must be after periodStart" },
      ]);
    const plan = await effectivePlan(this.db, organizationId);
    const { quantities, events } = await this.periodQuantities(organizationId, periodStart, periodEnd);
    const lineItems: LineItem[] = Object.entries(quantities).map(([metricType, quantity]) => {
      const included = plan.included[metricType] ?? 0;
      const overage = Math.max(0, decimalSub(quantity, included));
      const unitPrice = plan.prices[metricType] ?? 0;
      return {
        metricType,
        quantity,
        included,
        overage,
        unitPrice,
        amount: decimalRound(decimalMul(overage, unitPrice), 2),
      };
    });
    const total = decimalRound(decimalSum(lineItems.map((l) => l.amount)), 2);
    return this.db.transaction(async (tx) => {
      // One writer per (organization, period) at a time, so revisions are numbered without gaps.
      await tx.query("select pg_advisory_xact_lock(hashtext($1))", [
        `usage-report:${organizationId}:${periodStart.toISOString()}:${periodEnd.toISOString()}`,
      ]);
      const prev = (
        await tx.query<ReportRow>(
          "select * from usage_reports where organization_id = $1 and period_start = $2 and period_end = $3 order by revision desc limit 1",
          [organizationId, periodStart.toISOString(), periodEnd.toISOString()],
        )
      ).rows[0];
      const same = (a: LineItem[], b: LineItem[]) =>
        a.length === b.length &&
        a.every((x) =>
          b.some((y) => y.metricType === x.metricType && y.quantity === x.quantity && y.amount === x.amount),
        );
      if (prev && Number(prev.events_counted) === events && same(prev.line_items as LineItem[], lineItems))
        return toReport(prev);
      const changes = prev
        ? lineItems
            .map((l) => {
              const before = (prev.line_items as LineItem[]).find((p) => p.metricType === l.metricType);
              return {
                metricType: l.metricType,
                previousQuantity: before?.quantity ?? 0,
                quantity: l.quantity,
                previousAmount: before?.amount ?? 0,
                amount: l.amount,
              };
            })
            .filter((c) => c.previousQuantity !== c.quantity || c.previousAmount !== c.amount)
        : null;
      const { rows } = await tx.query<ReportRow>(
        `insert into usage_reports (id, organization_id, period_start, period_end, revision, as_of, events_counted, summary, line_items, changes)
         values ($1, $2, $3, $4, $5, now(), $6, $7, $8, $9) returning *`,
        [
          `rpt_${crypto.randomUUID().replace(/-/g, "")}`,
          organizationId,
          periodStart.toISOString(),
          periodEnd.toISOString(),
          (prev?.revision ?? 0) + 1,
          events,
          JSON.stringify({ plan: plan.planId, currency: "USD", totalAmount: total, eventsCounted: events }),
          JSON.stringify(lineItems),
          changes ? JSON.stringify(changes) : null,
        ],
      );
      return toReport(rows[0]!);
    });
  }

  /** A stored report (any revision) of the organization. @throws {NotFoundError} */
  getUsageReport(organizationId: string, reportId: string): Promise<UsageReport> {
    return findReport(this.db, organizationId, reportId);
  }

  /**
   * The organization's reports: the latest revision of each billing period, newest period first.
   * @param options - limit (1–100, default 20), cursor (from `nextCursor`)
   */
  listUsageReports(organizationId: string, options: { limit?: number; cursor?: string } = {}): Promise<ReportPage> {
    return listLatestReports(this.db, organizationId, parseInput(pageOptionsSchema, options, "page options"));
  }

  /**
   * Every revision of a report's period, newest first (each generation that saw changed data).
   * @param reportId - any revision's id
   * @param options - limit (1–100, default 20), cursor (from `nextCursor`)
   * @throws {NotFoundError} for an unknown report or another organization's
   */
  listUsageReportRevisions(
    organizationId: string,
    reportId: string,
    options: { limit?: number; cursor?: string } = {},
  ): Promise<ReportPage> {
    return listRevisions(this.db, organizationId, reportId, parseInput(pageOptionsSchema, options, "page options"));
  }

  /**
   * Get real-time usage dashboard data: the current period (exact), week-over-week and
   * month-over-month trends, top users and documents this month, realtime presence, and
   * approximate unique users (HyperLogLog).
   * @param organizationId - organization identifier
   */
  async getDashboardData(organizationId: string): Promise<DashboardData> {
    const now = new Date(this.now());
    const org = this.orgs(organizationId);
    const month = now.toISOString().slice(0, 7);
    const monthStart = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
    const [status, realtime, trends, topUsers, topDocs, uniques] = await Promise.all([
      org.status(organizationId),
      org.realtime(),
      this.trends(organizationId, now),
      topMembers(this.db, { org: organizationId, month: monthStart, kind: "user", n: 10 }),
      topMembers(this.db, { org: organizationId, month: monthStart, kind: "document", n: 10 }),
      Promise.all([
        this.redis.pfcount(this.keys.key("usage", "hll", organizationId, "day", now.toISOString().slice(0, 10))),
        this.redis.pfcount(this.keys.key("usage", "hll", organizationId, "week", isoWeek(now))),
        this.redis.pfcount(this.keys.key("usage", "hll", organizationId, "month", month)),
      ]),
    ]);
    return {
      currentPeriod: {
        plan: status.plan,
        periodStart: status.periodStart,
        periodEnd: status.periodEnd,
        metrics: status.metrics,
        eventTotals: status.sums,
      },
      trends,
      topUsers: topUsers.map((t) => ({ userId: t.member, events: t.events })),
      topDocuments: topDocs.map((t) => ({ documentId: t.member, events: t.events })),
      realtime,
      uniqueUsers: { today: uniques[0], week: uniques[1], month: uniques[2] },
    };
  }

  /** Week-over-week and month-over-month, over whole hours up to the current one (aggregates + tail). */
  private async trends(org: string, now: Date): Promise<Record<string, unknown>> {
    const t = Math.floor(now.getTime() / 3_600_000) * 3_600_000 + 3_600_000;
    const { rows } = await this.db.query<{ event_type: string; w0: number; w1: number; m0: number; m1: number }>(
      `with tail as (${tailSql("$1")}), hours as (
         select event_type, bucket, quantity from usage_agg_hour where organization_id = $1 and bucket >= $5
         union all
         select event_type, occurred_at, quantity from tail where occurred_at >= $5
       )
       select event_type,
         coalesce(sum(quantity) filter (where bucket >= $2), 0)::float8 as w0,
         coalesce(sum(quantity) filter (where bucket >= $3 and bucket < $2), 0)::float8 as w1,
         coalesce(sum(quantity) filter (where bucket >= $4), 0)::float8 as m0,
         coalesce(sum(quantity) filter (where bucket < $4), 0)::float8 as m1
       from hours group by 1`,
      [
        org,
        iso(new Date(t - 7 * 86_400_000)),
        iso(new Date(t - 14 * 86_400_000)),
        iso(new Date(t - 30 * 86_400_000)),
        iso(new Date(t - 60 * 86_400_000)),
      ],
    );
    const pick = (k: "w0" | "w1" | "m0" | "m1") => new Map(rows.map((r) => [r.event_type, Number(r[k])]));
    const change = (cur: number, prev: number) =>
      prev === 0 ? null : Math.round(((cur - prev) / prev) * 10_000) / 100;
    const out: Record<string, unknown> = {};
    for (const m of [
      "api_calls",
      "documents",
      "storage",
      "document.viewed",
      "collaboration.session_started",
    ] as MetricType[]) {
      const [w0, w1, m0, m1] = (["w0", "w1", "m0", "m1"] as const).map((k) => valueFromSums(m, pick(k)));
      out[m] = {
        weekOverWeek: { current: w0, previous: w1, changePct: change(w0!, w1!) },
        monthOverMonth: { current: m0, previous: m1, changePct: change(m0!, m1!) },
      };
    }
    return out;
  }

  /**
   * Subscribe to quota threshold alerts: an event (and e-mail / in-app notice per channel) fires
   * exactly once per subscription per billing period, when usage crosses the threshold.
   * @param organizationId - organization identifier
   * @param config - metricType, threshold (percent), notificationChannels
   * @param options - who subscribes and the e-mail to notify
   */
  async subscribeToQuotaAlerts(
    organizationId: string,
    config: QuotaAlertConfig,
    options: { createdBy?: string; notifyEmail?: string } = {},
  ): Promise<{ subscriptionId: string }> {
    const alert = parseInput(quotaAlertConfigSchema, config, "alert configuration");
    if (alert.notificationChannels.includes("email") && !options.notifyEmail) {
      throw new ValidationError("no e-mail address to notify", [
        { path: "notificationChannels", message: "the email channel needs an e-mail claim in the token" },
      ]);
    }
    const id = `qas_${crypto.randomUUID().replace(/-/g, "")}`;
    await ensureOrganizations(this.db, [organizationId]);
    await this.db.query(
      "insert into usage_alert_subscriptions (id, organization_id, metric_type, threshold, notification_channels, notify_email, created_by) values ($1, $2, $3, $4, $5, $6, $7)",
      [
        id,
        organizationId,
        alert.metricType,
        alert.threshold,
        alert.notificationChannels,
        options.notifyEmail ?? null,
        options.createdBy ?? null,
      ],
    );
    await this.orgs(organizationId).invalidate();
    return { subscriptionId: id };
  }

  /** Alert subscriptions of an organization. */
  async listQuotaAlerts(organizationId: string) {
    const { rows } = await this.db.query<{
      id: string;
      metric_type: string;
      threshold: number;
      notification_channels: string[];
      created_at: Date;
    }>(
      "select id, metric_type, threshold, notification_channels, created_at from usage_alert_subscriptions where organization_id = $1 and deleted_at is null order by created_at",
      [organizationId],
    );
    return rows.map((r) => ({
      subscriptionId: r.id,
      metricType: r.metric_type,
      threshold: Number(r.threshold),
      notificationChannels: r.notification_channels,
      createdAt: iso(r.created_at),
    }));
  }

  /** Removes an alert subscription. @throws {NotFoundError} */
  async unsubscribeFromQuotaAlerts(organizationId: string, subscriptionId: string): Promise<{ deleted: boolean }> {
    const { rowCount } = await this.db.query(
      "update usage_alert_subscriptions set deleted_at = now() where id = $1 and organization_id = $2 and deleted_at is null",
      [subscriptionId, organizationId],
    );
    if (rowCount === 0) throw new NotFoundError(`subscription ${subscriptionId} not found`);
    await this.orgs(organizationId).invalidate();
    return { deleted: true };
  }
}
