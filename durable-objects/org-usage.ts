import { DurableObject } from "cloudflare:workers";
import { createLogger } from "../src/platform/logger.ts";
import { withPlatform } from "../src/platform/platform.ts";
import type { Platform } from "../src/platform/platform.ts";
import { fireAlerts } from "../src/usage/alerts.ts";
import type { AlertCrossing } from "../src/usage/alerts.ts";
import { valueFromSums } from "../src/usage/metrics.ts";
import { billingPeriod } from "../src/usage/periods.ts";
import type { Admission, Plan, QuotaMetricType } from "../src/usage/quota.ts";
import { admit, crossedThresholds, quotaMetric, quotaMetrics } from "../src/usage/quota.ts";
import { orgPlan } from "../src/usage/repo.ts";
import type { QuotaMetric } from "../src/usage/schemas.ts";

/** An event as the organization object applies it. */
export interface CounterEvent {
  eventId: string;
  eventType: string;
  userId?: string;
  resourceId?: string;
  quantity: number;
  /** Epoch ms. */
  occurredAt: number;
}

/** What `status()` returns. */
export interface OrgUsageStatus {
  plan: string;
  periodStart: string;
  periodEnd: string;
  metrics: QuotaMetric[];
  sums: Record<string, number>;
}

const GAUGE_TYPES = ["storage.upload", "storage.delete", "document.created", "document.deleted"];
const PLAN_TTL_MS = 60_000;
const RESERVATION_TTL_MS = 5 * 60_000;
const ACTIVE_WINDOW_MS = 5 * 60_000;

/**
 * One object per organization: exact real-time counters for the current billing period (sums per
 * event type, distinct users) and all-time gauges (storage, documents), applied once per event id;
 * atomic quota admission with reservations; realtime presence; threshold alerts. All state lives in
 * SQLite and every method runs in one turn, so concurrent checks cannot overshoot a limit.
 */
export class OrgUsage extends DurableObject<CloudflareBindings> {
  private readonly sql: SqlStorage;
  // Concurrent first calls share one load instead of each opening a database connection.
  private planLoad: Promise<{ plan: Plan; anchor: Date }> | undefined;
  private subsLoad:
    | Promise<{ id: string; metricType: string; threshold: number; notificationChannels: string[] }[]>
    | undefined;

  constructor(ctx: DurableObjectState, env: CloudflareBindings) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`
        create table if not exists applied (event_id text primary key, occurred_at integer not null);
        create index if not exists applied_time on applied (occurred_at);
        create table if not exists sums (event_type text primary key, value real not null);
        create table if not exists gauges (event_type text primary key, value real not null);
        create table if not exists period_users (user_id text primary key);
        create table if not exists seen (user_id text primary key, last_seen integer not null);
        create table if not exists open_docs (doc_id text primary key, sessions integer not null, last_seen integer not null);
        create table if not exists reservations (id text primary key, metric text not null, amount real not null, expires_at integer not null);
        create table if not exists kv (key text primary key, value text not null);`);
    });
  }

  private kv(key: string): string | undefined {
    return this.sql.exec<{ value: string }>("select value from kv where key = ?", key).toArray()[0]?.value;
  }

  private setKv(key: string, value: string): void {
    this.sql.exec(
      "insert into kv (key, value) values (?, ?) on conflict (key) do update set value = excluded.value",
      key,
      value,
    );
  }

  private withPlatform<T>(fn: (p: Platform) => Promise<T>): Promise<T> {
    return withPlatform(this.env, this.ctx, createLogger({ component: "org-usage", org: this.kv("org") }), fn);
  }

  /** The plan and billing anchor, cached for a minute (plans are editable in Postgres). */
  private async plan(org: string, force = false): Promise<{ plan: Plan; anchor: Date }> {
    const cached = this.kv("plan");
    if (cached && !force) {
      const c = JSON.parse(cached) as { plan: Plan; anchor: string; loadedAt: number };
      if (Date.now() - c.loadedAt < PLAN_TTL_MS) return { plan: c.plan, anchor: new Date(c.anchor) };
    }
    this.planLoad ??= this.withPlatform((p) => orgPlan(p.db, org))
      .then((row) => {
        const plan: Plan = { id: row.plan_id, limits: row.limits, included: row.included, prices: row.prices };
        this.setKv(
          "plan",
          JSON.stringify({ plan, anchor: new Date(row.billing_anchor).toISOString(), loadedAt: Date.now() }),
        );
        return { plan, anchor: new Date(row.billing_anchor) };
      })
      .finally(() => (this.planLoad = undefined));
    return this.planLoad;
  }

  /** Rolls the period over when `now` left it: period sums and users start from zero. */
  private period(anchor: Date, now: number): { start: Date; end: Date } {
    const p = billingPeriod(anchor, new Date(now));
    if (this.kv("periodStart") !== p.start.toISOString()) {
      this.sql.exec("delete from sums");
      this.sql.exec("delete from period_users");
      this.setKv("periodStart", p.start.toISOString());
    }
    return p;
  }

  private sums(): Map<string, number> {
    return new Map(
      this.sql
        .exec<{ event_type: string; value: number }>("select event_type, value from sums")
        .toArray()
        .map((r) => [r.event_type, r.value]),
    );
  }

  private gauges(): Map<string, number> {
    return new Map(
      this.sql
        .exec<{ event_type: string; value: number }>("select event_type, value from gauges")
        .toArray()
        .map((r) => [r.event_type, r.value]),
    );
  }

  private used(metric: QuotaMetricType): number {
    if (metric === "collaborators")
      return this.sql.exec<{ n: number }>("select count(*) as n from period_users").one().n;
    if (metric === "api_calls") return valueFromSums("api_calls", this.sums());
    return valueFromSums(metric, this.gauges());
  }

  private reserved(metric: string, now: number): number {
    this.sql.exec("delete from reservations where expires_at <= ?", now);
    return (
      this.sql.exec<{ n: number | null }>("select sum(amount) as n from reservations where metric = ?", metric).one()
        .n ?? 0
    );
  }

  /** Consumes reservations the arriving usage was admitted under, oldest first. */
  private consumeReservations(metric: string, amount: number): void {
    let left = amount;
    for (const r of this.sql
      .exec<{ id: string; amount: number }>(
        "select id, amount from reservations where metric = ? order by expires_at",
        metric,
      )
      .toArray()) {
      if (left <= 0) break;
      const take = Math.min(left, r.amount);
      left -= take;
      if (take >= r.amount) this.sql.exec("delete from reservations where id = ?", r.id);
      else this.sql.exec("update reservations set amount = amount - ? where id = ?", take, r.id);
    }
  }

  /**
   * Applies events once each (by event id): period sums for events inside the current period,
   * gauges for all, distinct period users, presence. Fires threshold alerts for what it crossed.
   * @returns how many events were new to this object
   */
  async apply(org: string, events: CounterEvent[]): Promise<{ applied: number; crossings: number }> {
    if (this.kv("org") !== org) this.setKv("org", org);
    const now = Date.now();
    const { plan, anchor } = await this.plan(org);
    const period = this.period(anchor, now);
    const before = Object.fromEntries(Object.keys(quotaMetrics).map((m) => [m, this.used(m as QuotaMetricType)]));
    let applied = 0;
    for (const e of events) {
      if (
        this.sql.exec(
          "insert into applied (event_id, occurred_at) values (?, ?) on conflict do nothing",
          e.eventId,
          e.occurredAt,
        ).rowsWritten === 0
      )
        continue;
      applied += 1;
      const inPeriod = e.occurredAt >= period.start.getTime() && e.occurredAt < period.end.getTime();
      if (inPeriod) {
        this.sql.exec(
          "insert into sums (event_type, value) values (?, ?) on conflict (event_type) do update set value = value + excluded.value",
          e.eventType,
          e.quantity,
        );
        if (e.userId) this.sql.exec("insert into period_users (user_id) values (?) on conflict do nothing", e.userId);
      }
      if (GAUGE_TYPES.includes(e.eventType)) {
        this.sql.exec(
          "insert into gauges (event_type, value) values (?, ?) on conflict (event_type) do update set value = value + excluded.value",
          e.eventType,
          e.quantity,
        );
      }
      if (e.eventType === "api.call" && inPeriod) this.consumeReservations("api_calls", e.quantity);
      if (e.eventType === "storage.upload") this.consumeReservations("storage", e.quantity);
      if (e.eventType === "document.created") this.consumeReservations("documents", e.quantity);
      this.presence(e, now);
    }
    // Forget dedup keys older than any event still accepted (late horizon 35 d + margin).
    this.sql.exec("delete from applied where occurred_at < ?", now - 45 * 86_400_000);

    const crossings: AlertCrossing[] = [];
    const subs = await this.subscriptions(org);
    for (const metric of Object.keys(quotaMetrics) as QuotaMetricType[]) {
      const after = this.used(metric);
      const limit = plan.limits[metric];
      const mine = subs.filter((s) => s.metricType === metric);
      for (const t of crossedThresholds(
        before[metric]!,
        after,
        limit,
        mine.map((s) => s.threshold),
      )) {
        for (const s of mine.filter((x) => x.threshold === t))
          crossings.push({
            kind: "threshold",
            subscription: s,
            metricType: metric,
            used: after,
            limit: limit!,
            periodStart: period.start,
          });
      }
      if (limit !== undefined && before[metric]! <= limit && after > limit)
        crossings.push({ kind: "exceeded", metricType: metric, used: after, limit, periodStart: period.start });
    }
    if (crossings.length > 0) await this.withPlatform((p) => fireAlerts(p, org, crossings));
    return { applied, crossings: crossings.length };
  }

  private presence(e: CounterEvent, now: number): void {
    if (now - e.occurredAt > ACTIVE_WINDOW_MS) return;
    if (e.userId)
      this.sql.exec(
        "insert into seen (user_id, last_seen) values (?, ?) on conflict (user_id) do update set last_seen = max(last_seen, excluded.last_seen)",
        e.userId,
        e.occurredAt,
      );
    if (!e.resourceId) return;
    if (e.eventType === "presence.joined" || e.eventType === "collaboration.session_started") {
      this.sql.exec(
        "insert into open_docs (doc_id, sessions, last_seen) values (?, 1, ?) on conflict (doc_id) do update set sessions = sessions + 1, last_seen = excluded.last_seen",
        e.resourceId,
        e.occurredAt,
      );
    } else if (e.eventType === "presence.left" || e.eventType === "collaboration.session_ended") {
      this.sql.exec(
        "update open_docs set sessions = sessions - 1, last_seen = ? where doc_id = ?",
        e.occurredAt,
        e.resourceId,
      );
      this.sql.exec("delete from open_docs where sessions <= 0");
    } else if (
      e.eventType === "presence.heartbeat" ||
      e.eventType === "document.viewed" ||
      e.eventType === "document.updated"
    ) {
      this.sql.exec("update open_docs set last_seen = max(last_seen, ?) where doc_id = ?", e.occurredAt, e.resourceId);
    }
  }

  private async subscriptions(
    org: string,
  ): Promise<{ id: string; metricType: string; threshold: number; notificationChannels: string[] }[]> {
    const cached = this.kv("subs");
    if (cached) {
      const c = JSON.parse(cached) as {
        subs: { id: string; metricType: string; threshold: number; notificationChannels: string[] }[];
        loadedAt: number;
      };
      if (Date.now() - c.loadedAt < PLAN_TTL_MS) return c.subs;
    }
    this.subsLoad ??= this.withPlatform(async (p) =>
      (
        await p.db.query<{ id: string; metric_type: string; threshold: number; notification_channels: string[] }>(
          "select id, metric_type, threshold, notification_channels from usage_alert_subscriptions where organization_id = $1 and deleted_at is null",
          [org],
        )
      ).rows.map((r) => ({
        id: r.id,
        metricType: r.metric_type,
        threshold: Number(r.threshold),
        notificationChannels: r.notification_channels,
      })),
    ).finally(() => (this.subsLoad = undefined));
    const subs = await this.subsLoad;
    this.setKv("subs", JSON.stringify({ subs, loadedAt: Date.now() }));
    return subs;
  }

  /** Drops cached plan and subscriptions (after a subscription or plan change). */
  async invalidate(): Promise<void> {
    this.sql.exec("delete from kv where key in ('plan', 'subs')");
  }

  /**
   * Atomic admission: checks `amount` against the limit counting usage and live reservations, and
   * reserves it when allowed (the reservation is consumed by the usage event that follows, or
   * expires after 5 minutes).
   */
  async checkQuota(org: string, metric: QuotaMetricType, amount: number): Promise<Admission> {
    if (this.kv("org") !== org) this.setKv("org", org);
    const now = Date.now();
    const { plan, anchor } = await this.plan(org);
    this.period(anchor, now);
    const decision = admit(this.used(metric), this.reserved(metric, now), plan.limits[metric], amount);
    if (decision.allowed && plan.limits[metric] !== undefined && amount > 0) {
      this.sql.exec(
        "insert into reservations (id, metric, amount, expires_at) values (?, ?, ?, ?)",
        crypto.randomUUID(),
        metric,
        amount,
        now + RESERVATION_TTL_MS,
      );
    }
    return decision;
  }

  /** Current period, plan and every quota metric (seed `QuotaStatus` parts). */
  async status(org: string): Promise<OrgUsageStatus> {
    if (this.kv("org") !== org) this.setKv("org", org);
    const now = Date.now();
    const { plan, anchor } = await this.plan(org);
    const p = this.period(anchor, now);
    return {
      plan: plan.id,
      periodStart: p.start.toISOString(),
      periodEnd: p.end.toISOString(),
      metrics: (Object.keys(quotaMetrics) as QuotaMetricType[]).map((m) =>
        quotaMetric(m, this.used(m), this.reserved(m, now), plan.limits[m]),
      ),
      sums: Object.fromEntries(this.sums()),
    };
  }

  /** Users active in the last 5 minutes and documents open now. */
  async realtime(): Promise<{ activeUsers: number; openDocuments: number; asOf: string }> {
    const now = Date.now();
    this.sql.exec("delete from seen where last_seen < ?", now - ACTIVE_WINDOW_MS);
    // A document nobody touched for 30 minutes is closed even if its "left" event was lost.
    this.sql.exec("delete from open_docs where last_seen < ?", now - 30 * 60_000);
    return {
      activeUsers: this.sql.exec<{ n: number }>("select count(*) as n from seen").one().n,
      openDocuments: this.sql.exec<{ n: number }>("select count(*) as n from open_docs").one().n,
      asOf: new Date(now).toISOString(),
    };
  }
}
