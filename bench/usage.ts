import { Redis } from "@upstash/redis";
import { connectPg } from "../scripts/lib/pg.ts";
import { signToken } from "../src/platform/auth.ts";
import { parseCloudEvent } from "../src/events/cloudevent.ts";
import { getConfig } from "../src/platform/config.ts";
import { createDb } from "../src/platform/db.ts";
import type { Db, Queryable } from "../src/platform/db.ts";
import { createRedis } from "../src/platform/redis.ts";
import { UsageAnalyticsAggregator } from "../src/usage/aggregator.ts";
import type { OrgUsageClient } from "../src/usage/aggregator.ts";
import { billingPeriod } from "../src/usage/periods.ts";
import { ensureOrganizations, sumsByBucket } from "../src/usage/repo.ts";
import { appendEvents } from "../src/usage/log.ts";
import type { UsageEvent } from "../src/usage/schemas.ts";
import { pgInsertRowsPerSecond } from "./baseline.ts";
import type { BenchConfig, BenchContext, BenchResult } from "./harness.ts";
import { numArg, cpu, cpuDelta } from "./harness.ts";
import { percentile, round, runBounded, summarize, prng } from "./lib.ts";

/**
 * Usage analytics: ingestion throughput and exactness, and query latency as the data grows.
 *
 * 1. Ingest. `--events` N (200,000) events are sent for `--orgs` (50) organizations through
 *    `POST /v1/orgs/{org}/usage/events` in requests of `--batch` (1,000) events, `--concurrency` (8)
 *    requests in flight, with an `internal` token. `--dup-rate` (0.05) of the events sent re-send
 *    an event id already sent: `--dup-in-request` (0.2) of those inside the same request, the rest
 *    in a later request of the same organization (requests go out round by round: every
 *    organization's first request, then every second one …). Timestamps are random within the
 *    last 30 days (out of order; inside the 35-day late-event horizon); nine event types, 200
 *    users and 1,000 resources per organization, integer quantities (exact float sums).
 *    `ingest_events_per_s` = unique events / (first POST → every unique event id is in
 *    `usage_event_ids`), divided by the raw baseline of the same run,
 *    `pgInsertRowsPerSecond(rows = unique count)`. Exactness: the expected per-organization counts,
 *    sums per event type, distinct users and billing-period sums are computed here from what was
 *    sent (deduplicated by (organization, event id)) and compared with Postgres (`usage_event_ids`,
 *    `usage_events`, `usage_agg_minute`, `usage_agg_hour`, `usage_user_days`) and with the HTTP API
 *    (`/usage/metrics` 30-day `granularity=day` totals per event type and derived metric,
 *    `/usage/quota` api_calls / collaborators for the current billing period and the storage /
 *    documents gauges). Every differing value is one mismatch.
 * 2. Query scale. The usage tables are emptied, then filled directly in Postgres (SQL,
 *    `generate_series`, not through the API): `--per-org` (10,000) events per organization over the
 *    last 30 days, raw rows, event ids, minute/hour/day/month aggregates and distinct-user sets
 *    built with `insert … select … group by` exactly as ingestion (and a finished rollup) leaves
 *    them. Small: `--small` (100,000) events in --small / --per-org organizations, written in time
 *    order (organizations interleaved). p95 of `--samples` (50) sequential requests each of a 30-day
 *    hourly `GET …/usage/metrics?metricTypes=api_calls,document.viewed` and of
 *    `GET …/usage/dashboard` for organization `bq_0000`. Big: the same database grows to `--big`
 *    (10,000,000) events with further organizations (bq_0000 untouched: same events, same pages);
 *    the same requests again. Ratio big / small per endpoint. The load is bounded by the run's
 *    `--timeout`: what does not fit is not loaded, and `big_events` says what was measured.
 *
 * Other flags: --seed 1, --wait 600 (s, ingest drain), --load-clients 2, --chunk-orgs 25,
 * --skip-ingest, --skip-query.
 */

export const config: BenchConfig = {
  bindings: { USAGE_INGEST_RATE_LIMIT_PER_MINUTE: "10000000" },
};

type Pg = Awaited<ReturnType<typeof connectPg>>;

const DAY_MS = 86_400_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nowMs = () => performance.timeOrigin + performance.now();

// ─── workload ───────────────────────────────────────────────────────────────────────────────────

/** Event types with their share, resource type and quantity (the same mix in JS and in SQL). */
const MIX = [
  { type: "api.call", weight: 40, rt: "endpoint", max: 5 },
  { type: "document.viewed", weight: 25, rt: "document", max: 1 },
  { type: "document.updated", weight: 10, rt: "document", max: 1 },
  { type: "document.created", weight: 5, rt: "document", max: 1 },
  { type: "document.deleted", weight: 1, rt: "document", max: 1 },
  { type: "storage.upload", weight: 8, rt: "file", max: 1_000_000 },
  { type: "storage.delete", weight: 1, rt: "file", max: 100_000 },
  { type: "collaboration.session_started", weight: 5, rt: "document", max: 1 },
  { type: "presence.heartbeat", weight: 5, rt: "document", max: 1 },
] as const;
const TYPES: string[] = MIX.map((m) => m.type);
const TOTAL_WEIGHT = MIX.reduce((s, m) => s + m.weight, 0);
const USERS_PER_ORG = 200;
const RESOURCES_PER_ORG = 1_000;
const NO_USER_SHARE = 0.05;

/** One event as the API takes it (the organization comes from the path). */
interface SentEvent {
  eventId: string;
  eventType: string;
  userId?: string;
  resourceId: string;
  resourceType: string;
  quantity: number;
  metadata: Record<string, unknown>;
  timestamp: string;
}

interface IngestRequest {
  org: string;
  events: SentEvent[];
}

interface Workload {
  requests: IngestRequest[];
  sent: number;
  orgs: string[];
}

/**
 * Builds the requests: per organization, its share of the events split into requests of `batch`;
 * duplicates are copies of events already placed — in the same request or in an earlier one.
 */
function buildWorkload(o: {
  events: number;
  orgs: number;
  batch: number;
  dupRate: number;
  dupInRequest: number;
  seed: number;
  now: number;
  prefix: string;
}): Workload {
  const rand = prng(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const shuffle = <T>(xs: T[]): T[] => {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  };
  const split = (total: number, parts: number) =>
    Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
  const span = 30 * DAY_MS - 120_000; // newest: 1 minute ago; oldest: 30 days − 1 minute ago
  let seq = 0;
  const fresh = (orgIndex: number): SentEvent => {
    let r = rand() * TOTAL_WEIGHT;
    const m = MIX.find((x) => (r -= x.weight) < 0) ?? MIX[0];
    const e: SentEvent = {
      eventId: `ev-${orgIndex}-${(seq++).toString(36)}-${Math.floor(rand() * 2 ** 32).toString(36)}`,
      eventType: m.type,
      resourceId: `${m.rt}-${Math.floor(rand() * RESOURCES_PER_ORG)}`,
      resourceType: m.rt,
      quantity: m.max === 1 ? 1 : 1 + Math.floor(rand() * m.max),
      metadata: rand() < 0.5 ? { client: "bench", v: 1 } : {},
      timestamp: new Date(o.now - 60_000 - Math.floor(rand() * span)).toISOString(),
    };
    if (rand() >= NO_USER_SHARE) e.userId = `u${Math.floor(rand() * USERS_PER_ORG)}`;
    return e;
  };

  const orgs = Array.from({ length: o.orgs }, (_, i) => `${o.prefix}${String(i).padStart(2, "0")}`);
  const perOrg: IngestRequest[][] = [];
  let sent = 0;
  split(o.events, o.orgs).forEach((size, oi) => {
    const dups = Math.round(size * o.dupRate);
    const nReq = Math.max(1, Math.ceil(size / o.batch));
    const sizes = split(size, nReq);
    const cross = nReq > 1 ? Math.round(dups * (1 - o.dupInRequest)) : 0;
    const crossPer = [0, ...split(cross, nReq - 1)];
    const withinPer = split(dups - cross, nReq);
    const earlier: SentEvent[] = [];
    const reqs: IngestRequest[] = [];
    sizes.forEach((sz, k) => {
      const x = crossPer[k]!;
      const w = withinPer[k]!;
      const uniques = Array.from({ length: Math.max(1, sz - x - w) }, () => fresh(oi));
      const events = [
        ...uniques,
        ...Array.from({ length: w }, () => pick(uniques)),
        ...Array.from({ length: x }, () => pick(earlier)),
      ];
      earlier.push(...uniques);
      sent += events.length;
      reqs.push({ org: orgs[oi]!, events: shuffle(events) });
    });
    perOrg.push(reqs);
  });
  // Round by round, organizations in a shuffled order: an organization's later requests go out later.
  const requests: IngestRequest[] = [];
  const maxReq = Math.max(...perOrg.map((r) => r.length));
  for (let k = 0; k < maxReq; k++)
    for (const oi of shuffle(orgs.map((_, i) => i))) if (perOrg[oi]![k]) requests.push(perOrg[oi]![k]!);
  return { requests, sent, orgs };
}

/** What the service should report, computed from what was sent. */
interface Expected {
  unique: Map<string, number>;
  /** org → event type → { n, q } */
  byType: Map<string, Map<string, { n: number; q: number }>>;
  users: Map<string, number>;
  periodApiCalls: Map<string, number>;
  periodUsers: Map<string, number>;
  storage: Map<string, number>;
  documents: Map<string, number>;
}

function expectedFrom(w: Workload, periodOf: (org: string) => { start: number; end: number }): Expected {
  const seen = new Map<string, Map<string, SentEvent>>();
  for (const org of w.orgs) seen.set(org, new Map());
  for (const r of w.requests)
    for (const e of r.events) if (!seen.get(r.org)!.has(e.eventId)) seen.get(r.org)!.set(e.eventId, e);
  const x: Expected = {
    unique: new Map(),
    byType: new Map(),
    users: new Map(),
    periodApiCalls: new Map(),
    periodUsers: new Map(),
    storage: new Map(),
    documents: new Map(),
  };
  for (const [org, events] of seen) {
    const types = new Map<string, { n: number; q: number }>(TYPES.map((t) => [t, { n: 0, q: 0 }]));
    const users = new Set<string>();
    const periodUsers = new Set<string>();
    const p = periodOf(org);
    let api = 0;
    for (const e of events.values()) {
      const t = types.get(e.eventType)!;
      t.n += 1;
      t.q += e.quantity;
      const at = Date.parse(e.timestamp);
      const inPeriod = at >= p.start && at < p.end;
      if (e.userId) {
        users.add(e.userId);
        if (inPeriod) periodUsers.add(e.userId);
      }
      if (inPeriod && e.eventType === "api.call") api += e.quantity;
    }
    const q = (t: string) => types.get(t)!.q;
    x.unique.set(org, events.size);
    x.byType.set(org, types);
    x.users.set(org, users.size);
    x.periodApiCalls.set(org, api);
    x.periodUsers.set(org, periodUsers.size);
    x.storage.set(org, q("storage.upload") - q("storage.delete"));
    x.documents.set(org, q("document.created") - q("document.deleted"));
  }
  return x;
}

/** Collects differing values (and a few examples for the notes). */
class Mismatches {
  count = 0;
  checked = 0;
  examples: string[] = [];
  check(what: string, expected: number, actual: number | undefined): void {
    this.checked += 1;
    if (actual !== undefined && Number(actual) === expected) return;
    this.count += 1;
    if (this.examples.length < 8) this.examples.push(`${what}: expected ${expected}, got ${actual ?? "nothing"}`);
  }
}

// ─── process CPU (Linux /proc) ──────────────────────────────────────────────────────────────────

// ─── Postgres activity sampler ──────────────────────────────────────────────────────────────────

interface ActivitySummary {
  samples: number;
  /** Share of samples in which a consumer's insertEvents statement was executing. */
  insertActive: number;
  /** … in which another statement of the Worker was executing. */
  otherActive: number;
  /** … in which a Worker session sat in an open transaction between statements. */
  idleInTx: number;
  meanSessions: number;
}

/** Samples pg_stat_activity of this database every `everyMs` until stopped (our own queries excluded). */
function sampleActivity(pg: Pg, everyMs: number, signal: AbortSignal): { stop(): Promise<ActivitySummary> } {
  let stopped = false;
  let n = 0;
  let ins = 0;
  let other = 0;
  let idleTx = 0;
  let sessions = 0;
  const loop = (async () => {
    while (!stopped && !signal.aborted) {
      const { rows } = await pg.query<{ ins: number; other: number; idle_tx: number; conns: number }>(
        `/* bench */ select count(*) filter (where state = 'active' and query like 'with input as%')::int as ins,
           count(*) filter (where state = 'active' and query not like 'with input as%')::int as other,
           count(*) filter (where state like 'idle in transaction%')::int as idle_tx, count(*)::int as conns
         from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()
           and backend_type = 'client backend' and query not like '/* bench */%'`,
      );
      const r = rows[0]!;
      n += 1;
      if (r.ins > 0) ins += 1;
      if (r.other > 0) other += 1;
      if (r.idle_tx > 0) idleTx += 1;
      sessions += r.conns;
      await sleep(everyMs);
    }
  })().catch(() => undefined);
  return {
    async stop() {
      stopped = true;
      await loop;
      const share = (k: number) => (n ? round(k / n, 3) : NaN);
      return {
        samples: n,
        insertActive: share(ins),
        otherActive: share(other),
        idleInTx: share(idleTx),
        meanSessions: n ? round(sessions / n, 2) : NaN,
      };
    },
  };
}

// ─── bulk data in SQL ───────────────────────────────────────────────────────────────────────────

/** CASE expression picking a MIX column from the uniform `r` (same weights as the JS generator). */
function mixCase(value: (m: (typeof MIX)[number]) => string): string {
  let acc = 0;
  const arms = MIX.map((m) => {
    acc += m.weight / TOTAL_WEIGHT;
    return `when r < ${acc.toFixed(6)} then ${value(m)}`;
  });
  return `case ${arms.slice(0, -1).join(" ")} else ${value(MIX[MIX.length - 1]!)} end`;
}

/**
 * Loads organizations [from, to) with `perOrg` events each, spread over the 30 days before `now`,
 * in one transaction: raw rows, event ids, the four aggregate tables and the distinct-user sets,
 * as ingestion plus a finished rollup would leave them. `timeOrder` writes rows in time order
 * (organizations interleaved, as arrival order would); otherwise in key order (faster).
 */
async function loadOrgs(
  pg: Pg,
  from: number,
  to: number,
  perOrg: number,
  now: Date,
  timeOrder: boolean,
): Promise<void> {
  const ord = (timeKey: string, keys: string) => (timeOrder ? `order by ${timeKey}` : `order by ${keys}`);
  const statements = [
    "begin",
    "set local synchronous_commit = off", // bench data only; each chunk is one transaction
    "set local work_mem = '256MB'",
    `create temp table g on commit drop as
     select 'bq_' || lpad(o::text, 4, '0') as o, 'sq-' || o || '-' || i as e,
       ${mixCase((m) => `'${m.type}'`)} as t,
       case when r6 < ${NO_USER_SHARE} then null else 'u' || floor(r3 * ${USERS_PER_ORG})::int end as u,
       ${mixCase((m) => `'${m.rt}-'`)} || floor(r4 * ${RESOURCES_PER_ORG})::int as ri,
       ${mixCase((m) => `'${m.rt}'`)} as rt,
       (${mixCase((m) => (m.max === 1 ? "1" : `1 + floor(r2 * ${m.max})`))})::float8 as q,
       '${now.toISOString()}'::timestamptz - interval '1 minute' - r5 * interval '29 days 23 hours 58 minutes' as at
     from (select o, i, random() r, random() r2, random() r3, random() r4, random() r5, random() r6
           from generate_series(${Math.floor(from)}, ${Math.floor(to) - 1}) o, generate_series(1, ${Math.floor(perOrg)}) i) s`,
    `insert into usage_events (organization_id, event_id, event_type, user_id, resource_id, resource_type, quantity, metadata, occurred_at)
     select o, e, t, u, ri, nullif(rt, ''), q, '{"client":"bench"}'::jsonb, at from g ${ord("at", "o, at")}`,
    `insert into usage_event_ids (organization_id, event_id) select o, e from g ${ord("at", "o, e")}`,
    ...(["minute", "hour", "day", "month"] as const).map(
      (gran) =>
        `insert into usage_agg_${gran} (organization_id, event_type, resource_type, bucket, quantity, events)
         select o, t, rt, date_trunc('${gran}', at, 'UTC'), sum(q), count(*) from g group by 1, 2, 3, 4 ${ord("4", "1, 2, 3, 4")}`,
    ),
    ...(["hour", "day"] as const).map(
      (gran) =>
        `insert into usage_user_${gran}s (organization_id, bucket, user_id)
         select distinct o, date_trunc('${gran}', at, 'UTC'), u from g where u is not null ${ord("2, 1, 3", "1, 2, 3")}`,
    ),
    "commit",
  ];
  try {
    for (const s of statements) await pg.query(s); // CREATE TABLE AS takes no bind parameters: the values above are our own numbers
  } catch (err) {
    await pg.query("rollback").catch(() => undefined);
    throw err;
  }
}

const USAGE_TABLES = [
  "usage_events",
  "usage_event_ids",
  "usage_agg_minute",
  "usage_agg_hour",
  "usage_agg_day",
  "usage_agg_month",
  "usage_user_hours",
  "usage_user_days",
  "usage_dirty_buckets",
];

// ─── the benchmark ──────────────────────────────────────────────────────────────────────────────

export default async function run(ctx: BenchContext): Promise<BenchResult> {
  const a = ctx.args;
  const started = Date.now();
  // The harness's --timeout covers the whole run (about 15 s went to setup before run()).
  const deadline = started + (numArg(a, "timeout", 300) - 25) * 1000;
  const left = () => deadline - Date.now();
  if (numArg(a, "timeout", 300) < 900 && a["skip-ingest"] !== true && a["skip-query"] !== true) {
    ctx.log(
      "usage: the full run (200k events through the API, then 10 M rows in SQL) needs ~10 min on 2 cores: pass --timeout 900 (or more); with less, the big load stops early and says so",
    );
  }
  const figures: Record<string, number> = {};
  const ratios: Record<string, number> = {};
  const notes: string[] = [];
  const targets: Record<string, string> = {};

  const token = await signToken(
    {
      userId: "svc_bench",
      organizationId: "bench",
      scopes: ["internal", "usage:read", "usage:write"],
      ttlSeconds: 4 * 3_600,
    },
    {
      secret: ctx.bindings.AUTH_JWT_SECRET!,
      issuer: ctx.bindings.AUTH_JWT_ISSUER ?? "cloudmatrix",
      audience: ctx.bindings.AUTH_JWT_AUDIENCE ?? "cloudmatrix-edge",
    },
  );
  const auth = { authorization: `Bearer ${token}` };
  const call = async (
    path: string,
    init: RequestInit = {},
    timeoutMs = 30_000,
  ): Promise<{ status: number; body: unknown }> => {
    const res = await ctx.worker.fetch(path, {
      ...init,
      headers: { ...auth, ...(init.headers as Record<string, string>) },
      signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]),
    });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // keep the text
    }
    return { status: res.status, body };
  };
  const getJson = async <T>(path: string): Promise<T> => {
    const r = await call(path);
    if (r.status !== 200) throw new Error(`GET ${path}: HTTP ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    return r.body as T;
  };

  // The run's Redis keys (one "seen" key per event, sketches): many more than the harness's
  // 15-second cleanup expects, so delete them here first (UNLINK, large SCAN pages, bounded).
  ctx.defer(async () => {
    const redis = new Redis({
      url: ctx.bindings.UPSTASH_REDIS_REST_URL!,
      token: ctx.bindings.UPSTASH_REDIS_REST_TOKEN!,
      automaticDeserialization: false,
      enableTelemetry: false,
    });
    let cursor = "0";
    let removed = 0;
    const until = Date.now() + 18_000;
    for (let i = 0; i < 10_000 && Date.now() < until; i++) {
      const [next, keys] = await redis.scan(cursor, { match: `${ctx.redisKeyPrefix}*`, count: 20_000 });
      for (let k = 0; k < keys.length; k += 5_000) removed += await redis.unlink(...keys.slice(k, k + 5_000));
      cursor = String(next);
      if (cursor === "0") break;
    }
    ctx.log(`usage: unlinked ${removed} redis key(s)`);
  });

  const pg = await connectPg(ctx.pgUrl);
  ctx.defer(() => pg.end().catch(() => undefined));

  // ─── 1. ingest ───
  if (a["skip-ingest"] !== true) {
    const shape = {
      events: numArg(a, "events", 200_000),
      orgs: Math.max(1, numArg(a, "orgs", 50)),
      batch: Math.min(1000, Math.max(1, numArg(a, "batch", 1000))),
      concurrency: Math.max(1, numArg(a, "concurrency", 8)),
      dupRate: numArg(a, "dup-rate", 0.05),
      dupInRequest: numArg(a, "dup-in-request", 0.2),
      seed: numArg(a, "seed", 1),
    };
    const w = buildWorkload({ ...shape, now: Date.now(), prefix: "bu_" });

    // Warm-up (not measured): isolate, Postgres sessions, the queue consumer, one organization object.
    ctx.log("ingest: warm-up");
    const warm = buildWorkload({
      ...shape,
      events: 200,
      orgs: 1,
      dupRate: 0,
      seed: shape.seed + 1000,
      now: Date.now(),
      prefix: "bw_",
    });
    for (const r of warm.requests) {
      const res = await call(`/v1/orgs/${r.org}/usage/events`, {
        method: "POST",
        body: JSON.stringify({ events: r.events }),
        headers: { "content-type": "application/json" },
      });
      if (res.status !== 202)
        throw new Error(`warm-up ingest: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
    }
    const countIds = async () =>
      (await pg.query<{ n: number }>("/* bench */ select count(*)::int as n from usage_event_ids")).rows[0]!.n;
    for (let i = 0; i < 300 && !ctx.signal.aborted && (await countIds()) < warm.sent; i++) await sleep(100);
    const base = await countIds();

    const uniqueTotal = new Set(w.requests.flatMap((r) => r.events.map((e) => `${r.org}\u0000${e.eventId}`))).size;
    ctx.log(
      `ingest: ${w.sent} events (${uniqueTotal} unique) in ${w.requests.length} requests for ${w.orgs.length} orgs, concurrency ${shape.concurrency}`,
    );
    let accepted = 0;
    let dupReported = 0;
    let rejected = 0;
    let retries = 0;
    let lastAcceptedAt = 0;
    const samplerPg = await connectPg(ctx.pgUrl);
    ctx.defer(() => samplerPg.end().catch(() => undefined));
    const sampler = sampleActivity(samplerPg, 50, ctx.signal);
    const cpu0 = cpu();
    const t0 = nowMs();
    const posting = runBounded(
      {
        count: w.requests.length,
        concurrency: shape.concurrency,
        timeLimitMs: Math.max(10_000, left() - 60_000),
        signal: ctx.signal,
      },
      async (i) => {
        const r = w.requests[i]!;
        const body = JSON.stringify({ events: r.events });
        for (let attempt = 1; ; attempt++) {
          const res = await call(`/v1/orgs/${r.org}/usage/events`, {
            method: "POST",
            body,
            headers: { "content-type": "application/json" },
          }).catch((err: unknown) => ({ status: 0, body: String(err) }));
          if (res.status === 202) {
            const b = res.body as { accepted: number; duplicates: string[]; rejected: unknown[] };
            accepted += b.accepted;
            dupReported += b.duplicates.length;
            rejected += b.rejected.length;
            lastAcceptedAt = nowMs();
            return;
          }
          if (attempt >= 3 || ctx.signal.aborted)
            throw new Error(`ingest ${r.org}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
          retries += 1; // the API is idempotent by event id: a resend is safe
          await sleep(500 * attempt);
        }
      },
    );
    // Until every unique event id is in Postgres (bounded).
    const waitUntil = Date.now() + Math.min(numArg(a, "wait", 600) * 1000, Math.max(20_000, left() - 75_000));
    let inPg = 0;
    let doneAt = NaN;
    let lastLog = 0;
    let postsDone = false;
    const post = posting.then((r) => {
      postsDone = true;
      return r;
    });
    while (!ctx.signal.aborted && Date.now() < waitUntil) {
      inPg = (await countIds()) - base;
      if (inPg >= uniqueTotal) {
        doneAt = nowMs();
        break;
      }
      if (Date.now() - lastLog > 5_000) {
        lastLog = Date.now();
        ctx.log(
          `ingest: ${inPg}/${uniqueTotal} in postgres after ${((nowMs() - t0) / 1000).toFixed(1)} s${postsDone ? " (all POSTs answered)" : ""}`,
        );
      }
      await sleep(200);
    }
    const posted = await post;
    const cpuIngest = cpuDelta(cpu0, cpu());
    const activity = await sampler.stop();
    const e2eMs = (Number.isFinite(doneAt) ? doneAt : nowMs()) - t0;
    const lost = uniqueTotal - inPg;
    if (lost > 0)
      notes.push(
        `ingest did not complete: ${inPg}/${uniqueTotal} unique events in Postgres after ${round(e2eMs / 1000, 1)} s (bounded wait)`,
      );
    const posts = summarize(posted.latencies);
    const ingestPerS = round((inPg * 1000) / e2eMs, 0);
    ctx.log(
      `ingest: ${inPg} unique events in ${round(e2eMs / 1000, 1)} s = ${ingestPerS}/s; POSTs answered at ${round((w.sent * 1000) / (lastAcceptedAt - t0), 0)} events/s`,
    );

    // Consumer transactions: usage_event_ids.received_at is now() = the start of each consumer transaction.
    const { rows: txns } = await pg.query<{ t: number; n: number }>(
      "/* bench */ select (extract(epoch from received_at) * 1000)::float8 as t, count(*)::int as n from usage_event_ids where organization_id like 'bu\\_%' group by received_at order by received_at",
    );
    const gaps = txns.slice(1).map((x, i) => x.t - txns[i]!.t);

    // ─── exactness ───
    ctx.log("ingest: exactness checks (postgres, then the HTTP API)");
    const { rows: anchors } = await pg.query<{ id: string; billing_anchor: Date }>(
      "/* bench */ select id, billing_anchor from organizations where id like 'bu\\_%'",
    );
    const anchorOf = new Map(anchors.map((r) => [r.id, new Date(r.billing_anchor)]));
    const checkedAt = new Date();
    const periodOf = (org: string) => {
      const p = billingPeriod(
        anchorOf.get(org) ?? new Date(Date.UTC(checkedAt.getUTCFullYear(), checkedAt.getUTCMonth(), 1)),
        checkedAt,
      );
      return { start: p.start.getTime(), end: p.end.getTime() };
    };
    const x = expectedFrom(w, periodOf);
    const mmPg = new Mismatches();
    const { rows: idRows } = await pg.query<{ o: string; n: number }>(
      "/* bench */ select organization_id as o, count(*)::int as n from usage_event_ids where organization_id like 'bu\\_%' group by 1",
    );
    const ids = new Map(idRows.map((r) => [r.o, r.n]));
    const byTypeFrom = async (sql: string) => {
      const m = new Map<string, { n: number; q: number }>();
      for (const r of (await pg.query<{ o: string; t: string; n: number; q: number }>(sql)).rows)
        m.set(`${r.o}|${r.t}`, { n: Number(r.n), q: Number(r.q) });
      return m;
    };
    const tables = {
      usage_events: await byTypeFrom(
        "/* bench */ select organization_id as o, event_type as t, count(*)::int8 as n, sum(quantity)::float8 as q from usage_events where organization_id like 'bu\\_%' group by 1, 2",
      ),
      usage_agg_hour: await byTypeFrom(
        "/* bench */ select organization_id as o, event_type as t, sum(events)::int8 as n, sum(quantity)::float8 as q from usage_agg_hour where organization_id like 'bu\\_%' group by 1, 2",
      ),
      usage_agg_minute: await byTypeFrom(
        "/* bench */ select organization_id as o, event_type as t, sum(events)::int8 as n, sum(quantity)::float8 as q from usage_agg_minute where organization_id like 'bu\\_%' group by 1, 2",
      ),
    };
    const { rows: userRows } = await pg.query<{ o: string; n: number }>(
      "/* bench */ select organization_id as o, count(distinct user_id)::int as n from usage_user_days where organization_id like 'bu\\_%' group by 1",
    );
    const users = new Map(userRows.map((r) => [r.o, r.n]));
    for (const org of w.orgs) {
      mmPg.check(`${org} usage_event_ids`, x.unique.get(org)!, ids.get(org) ?? 0);
      mmPg.check(`${org} distinct users (usage_user_days)`, x.users.get(org)!, users.get(org) ?? 0);
      for (const [t, v] of x.byType.get(org)!) {
        for (const [table, m] of Object.entries(tables)) {
          const got = m.get(`${org}|${t}`) ?? { n: 0, q: 0 };
          mmPg.check(`${org} ${t} ${table} events`, v.n, got.n);
          mmPg.check(`${org} ${t} ${table} quantity`, v.q, got.q);
        }
      }
    }
    // Rows for organizations or types never sent would be extra.
    for (const m of Object.values(tables))
      for (const k of m.keys())
        if (!x.byType.get(k.split("|")[0]!)?.has(k.split("|")[1]!)) mmPg.check(`unexpected ${k}`, 0, 1);

    // The API: the organization objects apply after the Postgres commit, so allow them a few seconds.
    const metricTypes = [...TYPES, "api_calls", "storage", "documents", "collaborators"];
    const mStart = new Date(checkedAt.getTime() - 31 * DAY_MS).toISOString();
    const mEnd = new Date(checkedAt.getTime() + 3_600_000).toISOString();
    let mmApi = new Mismatches();
    let apiAttempts = 0;
    const apiDeadline = Date.now() + 30_000;
    do {
      apiAttempts += 1;
      const mm = new Mismatches();
      const r = await runBounded(
        { count: w.orgs.length, concurrency: 8, timeLimitMs: 60_000, signal: ctx.signal },
        async (i) => {
          const org = w.orgs[i]!;
          const metrics = await getJson<{ totals: Record<string, number> }>(
            `/v1/orgs/${org}/usage/metrics?startTime=${encodeURIComponent(mStart)}&endTime=${encodeURIComponent(mEnd)}&granularity=day&metricTypes=${metricTypes.join(",")}`,
          );
          for (const [t, v] of x.byType.get(org)!) mm.check(`${org} metrics ${t}`, v.q, metrics.totals[t]);
          mm.check(`${org} metrics api_calls`, x.byType.get(org)!.get("api.call")!.q, metrics.totals.api_calls);
          mm.check(`${org} metrics storage`, x.storage.get(org)!, metrics.totals.storage);
          mm.check(`${org} metrics documents`, x.documents.get(org)!, metrics.totals.documents);
          mm.check(`${org} metrics collaborators`, x.users.get(org)!, metrics.totals.collaborators);
          const quota = await getJson<{ periodStart: string; metrics: { metricType: string; used: number }[] }>(
            `/v1/orgs/${org}/usage/quota`,
          );
          const used = (m: string) => quota.metrics.find((q) => q.metricType === m)?.used;
          mm.check(`${org} quota periodStart (ms)`, periodOf(org).start, Date.parse(quota.periodStart));
          mm.check(`${org} quota api_calls`, x.periodApiCalls.get(org)!, used("api_calls"));
          mm.check(`${org} quota collaborators`, x.periodUsers.get(org)!, used("collaborators"));
          mm.check(`${org} quota storage`, x.storage.get(org)!, used("storage"));
          mm.check(`${org} quota documents`, x.documents.get(org)!, used("documents"));
        },
      );
      if (r.failed) for (let i = 0; i < r.failed; i++) mm.check(`API request failed: ${r.errors[0] ?? ""}`, 0, 1);
      mmApi = mm;
      if (mm.count === 0 || Date.now() > apiDeadline || ctx.signal.aborted) break;
      await sleep(1_000);
    } while (!ctx.signal.aborted);
    const periodStart = new Date(periodOf(w.orgs[0]!).start).toISOString();
    ctx.log(
      `ingest: ${mmPg.count} postgres mismatch(es) of ${mmPg.checked}, ${mmApi.count} API mismatch(es) of ${mmApi.checked} (${apiAttempts} attempt(s))`,
    );

    // ─── where the time goes: the consumer's batch path replayed in Node, without the organization object ───
    // Per batch like the Worker's queue handler: parse + validate 100 messages, a fresh pool (the
    // platform is built per invocation), recordEvents = one Postgres transaction + Redis sketches;
    // the organization objects are a no-op stub here (their share is what the Worker spends beyond this).
    ctx.log("ingest: probe — the consumer's batch path in Node (organization object stubbed)");
    const cfg = getConfig(ctx.bindings);
    const { redis, keys } = createRedis(cfg);
    const probe = buildWorkload({
      ...shape,
      events: 3_000,
      orgs: 10,
      batch: 100,
      dupRate: 0,
      seed: shape.seed + 2000,
      now: Date.now(),
      prefix: "bx_",
    });
    const stubOrg = {
      apply: async (_o: string, list: unknown[]) => ({ applied: list.length, crossings: 0 }),
    } as unknown as OrgUsageClient;
    const pr = {
      validate: [] as number[],
      connect: [] as number[],
      txn: [] as number[],
      redis: [] as number[],
      total: [] as number[],
    };
    for (const req of probe.requests.slice(0, 30)) {
      if (ctx.signal.aborted) break;
      const bodies = req.events.map((e) =>
        JSON.stringify({
          specversion: "1.0",
          id: e.eventId,
          type: e.eventType,
          source: "/cloudmatrix-edge/usage-api",
          time: e.timestamp,
          datacontenttype: "application/json",
          organizationid: req.org,
          data: {
            userId: e.userId,
            resourceId: e.resourceId,
            resourceType: e.resourceType,
            quantity: e.quantity,
            metadata: e.metadata,
          },
        }),
      );
      const db = createDb(cfg);
      let txnMs = 0;
      const timedDb: Db = {
        ...db,
        query: db.query,
        end: db.end,
        transaction: async (fn) => {
          const s = nowMs();
          try {
            return await db.transaction(fn);
          } finally {
            txnMs += nowMs() - s;
          }
        },
      };
      const svc = new UsageAnalyticsAggregator({ db: timedDb, redis, keys, orgs: () => stubOrg, config: cfg.usage });
      const s0 = nowMs();
      const valid: UsageEvent[] = [];
      for (const b of bodies) {
        const parsed = parseCloudEvent(JSON.parse(b));
        if (!parsed.ok) throw new Error(`probe: ${parsed.reason}`);
        const ev = parsed.event;
        const d = ev.data as Record<string, unknown>;
        const v = svc.validate({
          eventId: ev.id,
          organizationId: ev.organizationid,
          eventType: ev.type,
          timestamp: ev.time,
          userId: d.userId,
          resourceId: d.resourceId,
          resourceType: d.resourceType,
          quantity: d.quantity ?? 1,
          metadata: d.metadata ?? {},
        });
        if (v.ok) valid.push(v.event);
      }
      const s1 = nowMs();
      await db.query("select 1"); // the pool's first connection, as each queue invocation opens one
      const s2 = nowMs();
      await svc.recordEvents(valid);
      const s3 = nowMs();
      await db.end();
      pr.validate.push(s1 - s0);
      pr.connect.push(s2 - s1);
      pr.txn.push(txnMs);
      pr.redis.push(s3 - s2 - txnMs);
      pr.total.push(s3 - s0);
    }
    const p50 = (xs: number[]) => round(percentile(xs, 50), 2);

    // The consumer's Postgres transaction alone (ensureOrganizations + insertEvents, one org per
    // batch) at the raw baseline's parallelism: the ceiling of this write path if the Queue, the
    // Worker, the organization objects and Redis cost nothing.
    const ceiling = async (batch: number, clients: number, total: number) => {
      const conns = await Promise.all(Array.from({ length: clients }, () => connectPg(ctx.pgUrl)));
      try {
        const wl = buildWorkload({
          ...shape,
          events: total,
          orgs: 50,
          batch,
          dupRate: 0,
          seed: shape.seed + 3000 + batch,
          now: Date.now(),
          prefix: `by${batch}_`,
        });
        const t0c = nowMs();
        const r = await runBounded(
          { count: wl.requests.length, concurrency: clients, timeLimitMs: 60_000, signal: ctx.signal },
          async (i, lane) => {
            const c = conns[lane]!;
            const db = {
              query: (text: string, params?: readonly unknown[]) => c.query(text, params as unknown[]),
            } as unknown as Queryable;
            const req = wl.requests[i]!;
            const events = req.events.map(
              (e) => ({ ...e, organizationId: req.org, timestamp: new Date(e.timestamp) }) as unknown as UsageEvent,
            );
            await c.query("begin");
            try {
              await ensureOrganizations(db, [req.org]);
              await appendEvents(db, events);
              await c.query("commit");
            } catch (err) {
              await c.query("rollback").catch(() => undefined);
              throw err;
            }
          },
        );
        if (r.failed) throw new Error(`ceiling probe: ${r.failed} failed: ${r.errors.join("; ")}`);
        const ms = nowMs() - t0c;
        return { perS: round((wl.sent * 1000) / ms, 0), p50: round(percentile(r.latencies, 50), 2) };
      } finally {
        await Promise.all(conns.map((c) => c.end().catch(() => undefined)));
      }
    };
    ctx.log("ingest: probe — the consumer's Postgres transaction at the baseline's parallelism");
    const ceil500 = await ceiling(500, 4, 50_000);
    const ceil100 = await ceiling(100, 4, 50_000);
    const ceil100x1 = await ceiling(100, 1, 20_000);

    ctx.log(`baseline: pgInsertRowsPerSecond(rows = ${inPg || uniqueTotal})`);
    const raw = await pgInsertRowsPerSecond(ctx.pgUrl, { rows: inPg || uniqueTotal });
    await pg.query("drop table if exists bench_raw");

    const dupSent = w.sent - uniqueTotal;
    const collapsed = w.sent - accepted - dupReported - rejected;
    Object.assign(figures, {
      ingest_events_per_s: ingestPerS,
      raw_insert_rows_per_s: raw.rowsPerSecond,
      mismatches: mmPg.count + mmApi.count,
      mismatches_postgres: mmPg.count,
      mismatches_api: mmApi.count,
      values_checked: mmPg.checked + mmApi.checked,
      events_sent: w.sent,
      events_unique: uniqueTotal,
      events_in_postgres: inPg,
      events_lost: lost,
      duplicates_sent: dupSent,
      duplicates_detected: collapsed + dupReported + (accepted - inPg),
      duplicates_collapsed_in_request: collapsed,
      duplicates_reported_by_api: dupReported,
      duplicates_dropped_by_postgres: accepted - inPg,
      events_rejected: rejected,
      post_retries: retries,
      post_failed: posted.failed,
      requests: w.requests.length,
      end_to_end_s: round(e2eMs / 1000, 2),
      api_accept_events_per_s: round((w.sent * 1000) / (lastAcceptedAt - t0), 0),
      post_p50_ms: posts.p50,
      post_p99_ms: posts.p99,
      consumer_transactions: txns.length,
      consumer_events_per_transaction: txns.length ? round(inPg / txns.length, 1) : NaN,
      consumer_txn_interval_p50_ms: round(percentile(gaps, 50), 1),
      consumer_txn_interval_p95_ms: round(percentile(gaps, 95), 1),
      pg_txn_ceiling_500x4_events_per_s: ceil500.perS,
      pg_txn_ceiling_100x4_events_per_s: ceil100.perS,
      pg_txn_ceiling_100x1_events_per_s: ceil100x1.perS,
      pg_txn_ceiling_500x4_txn_p50_ms: ceil500.p50,
      pg_txn_ceiling_100x1_txn_p50_ms: ceil100x1.p50,
      probe_batch_total_p50_ms: p50(pr.total),
      probe_batch_validate_p50_ms: p50(pr.validate),
      probe_batch_pg_connect_p50_ms: p50(pr.connect),
      probe_batch_pg_txn_p50_ms: p50(pr.txn),
      probe_batch_redis_sketches_p50_ms: p50(pr.redis),
      pg_share_insert_statement_active: activity.insertActive,
      pg_share_worker_idle_in_transaction: activity.idleInTx,
      pg_share_other_statement_active: activity.otherActive,
      pg_mean_worker_sessions: activity.meanSessions,
      cpu_s_workerd: round(cpuIngest.workerd, 1),
      cpu_s_node: round(cpuIngest.node, 1),
      cpu_s_postgres: round(cpuIngest.postgres, 1),
      cpu_s_redis: round(cpuIngest.redis, 1),
      cpu_s_machine: round(cpuIngest.machine, 1),
      raw_insert_rows: raw.rows,
      raw_insert_statement_p50_ms: raw.statementP50,
      api_check_attempts: apiAttempts,
    });
    ratios["ingest_events_per_s / raw_insert_rows_per_s"] = round(ingestPerS / raw.rowsPerSecond, 4);
    ratios["pg_txn_ceiling_500x4_events_per_s / raw_insert_rows_per_s"] = round(ceil500.perS / raw.rowsPerSecond, 4);
    ratios["ingest_events_per_s / pg_txn_ceiling_100x1_events_per_s"] = round(ingestPerS / ceil100x1.perS, 4);
    targets["ingest_events_per_s / raw_insert_rows_per_s"] = ">= 0.5";
    targets.mismatches = "<= 0";
    notes.push(
      `ingest shape: ${w.sent} events sent (${dupSent} re-sent ids: ~${Math.round(shape.dupInRequest * 100)} % inside their request, the rest in a later request of the same org), ${uniqueTotal} unique, ${w.orgs.length} orgs, ${w.requests.length} POSTs of ≤ ${shape.batch} events, concurrency ${shape.concurrency}, internal token, timestamps random in the last 30 days, ${TYPES.length} event types, ${USERS_PER_ORG} users / ${RESOURCES_PER_ORG} resources per org, seed ${shape.seed}`,
      `end to end = first POST → all ${uniqueTotal} unique ids in usage_event_ids (polled every 200 ms); raw baseline = pgInsertRowsPerSecond(rows ${raw.rows}, 500 rows/statement, 4 clients) in the same run`,
      `exactness: ${mmPg.checked} Postgres values (usage_event_ids, usage_events, usage_agg_minute, usage_agg_hour per org × type, distinct users) and ${mmApi.checked} API values (metrics 30-day day totals per type + api_calls/storage/documents/collaborators, quota api_calls/collaborators since ${periodStart}, storage/documents gauges)`,
      `consumer: ${txns.length} Postgres transactions wrote the unique events (${figures.consumer_events_per_transaction} per transaction); consecutive transaction starts ${figures.consumer_txn_interval_p50_ms} ms apart (p50) — the local Queue broker (miniflare) hands one batch at a time to the consumer, so this interval is the per-batch cost; replayed in Node without the organization object a batch takes ${figures.probe_batch_total_p50_ms} ms (p50: validate ${figures.probe_batch_validate_p50_ms}, Postgres connect ${figures.probe_batch_pg_connect_p50_ms}, transaction ${figures.probe_batch_pg_txn_p50_ms}, Redis sketches ${figures.probe_batch_redis_sketches_p50_ms})`,
      `Postgres alone: the consumer's transaction (ensureOrganizations + insertEvents, one org per batch) from Node on warm sessions reaches ${ceil500.perS} events/s with 500-event batches × 4 sessions (the raw baseline's shape), ${ceil100.perS}/s with 100 × 4, ${ceil100x1.perS}/s with 100 × 1 (the local consumer's shape: one batch of ≤ 100 at a time)`,
      `CPU during ingest (${round(e2eMs / 1000, 1)} s wall, ${(cpuIngest.machine / (e2eMs / 1000)).toFixed(2)} cores busy of 2): workerd ${round(cpuIngest.workerd, 1)} s, node (load generator + WebSocket proxy + Upstash adapter) ${round(cpuIngest.node, 1)} s, postgres ${round(cpuIngest.postgres, 1)} s, redis ${round(cpuIngest.redis, 1)} s`,
      ...mmPg.examples.map((e) => `postgres mismatch: ${e}`),
      ...mmApi.examples.map((e) => `API mismatch: ${e}`),
    );
  }

  // ─── 2. query scale ───
  if (a["skip-query"] !== true && !ctx.signal.aborted) {
    const perOrg = Math.max(1, numArg(a, "per-org", 10_000));
    const smallOrgs = Math.max(1, Math.round(numArg(a, "small", 100_000) / perOrg));
    const bigOrgs = Math.max(smallOrgs, Math.round(numArg(a, "big", 10_000_000) / perOrg));
    const samples = Math.max(5, numArg(a, "samples", 50));
    const clients = Math.max(1, numArg(a, "load-clients", 2));
    const chunkOrgs = Math.max(1, numArg(a, "chunk-orgs", 25));
    const org = "bq_0000";
    const now = new Date();
    const qEnd = new Date(Math.ceil(now.getTime() / 3_600_000) * 3_600_000);
    const qStart = new Date(qEnd.getTime() - 30 * DAY_MS);
    const metricsPath = `/v1/orgs/${org}/usage/metrics?startTime=${encodeURIComponent(qStart.toISOString())}&endTime=${encodeURIComponent(qEnd.toISOString())}&granularity=hour&metricTypes=api_calls,document.viewed`;
    const dashboardPath = `/v1/orgs/${org}/usage/dashboard`;
    const probeDb = {
      query: (text: string, params?: readonly unknown[]) => pg.query(text, params as unknown[]),
    } as unknown as Queryable;

    const eventsIn = async () =>
      (await pg.query<{ n: number }>("/* bench */ select count(*)::int as n from usage_event_ids")).rows[0]!.n;
    const settle = async (label: string) => {
      // What autovacuum would do after a bulk load, done now so it does not run during the measurement.
      const s = Date.now();
      for (const t of USAGE_TABLES) await pg.query(`vacuum (analyze) ${t}`);
      await pg.query("checkpoint").catch(() => undefined); // flush dirty pages now (not during the samples)
      ctx.log(`query: ${label} vacuumed and analyzed in ${((Date.now() - s) / 1000).toFixed(1)} s`);
      return Date.now() - s;
    };
    const controlPath = `/v1/orgs/${org}/usage/alerts`;
    const trendsSql = `select event_type,
         coalesce(sum(quantity) filter (where bucket >= $2), 0)::float8 as w0,
         coalesce(sum(quantity) filter (where bucket >= $3 and bucket < $2), 0)::float8 as w1,
         coalesce(sum(quantity) filter (where bucket >= $4), 0)::float8 as m0,
         coalesce(sum(quantity) filter (where bucket < $4), 0)::float8 as m1
       from usage_agg_hour where organization_id = $1 and bucket >= $5 group by 1`;
    const trendsParams = () => {
      const t = Date.now();
      return [org, ...[7, 14, 30, 60].map((d) => new Date(t - d * DAY_MS).toISOString())];
    };
    const measure = async (label: string) => {
      // Interleaved (metrics, dashboard, control, metrics, …) so all three see the same machine.
      // The control, GET …/usage/alerts, takes the same path (auth, platform, a Postgres session,
      // one query) on a table that does not grow: what it gains between sizes is not the data.
      const paths = [metricsPath, dashboardPath, controlPath];
      for (let i = 0; i < 5; i++) for (const p of paths) await getJson(p); // warm-up
      const lat: number[][] = paths.map(() => []);
      let last: unknown;
      const c0 = cpu();
      const s0 = nowMs();
      const r = await runBounded({ count: samples, timeLimitMs: 180_000, signal: ctx.signal }, async () => {
        for (const [k, p] of paths.entries()) {
          const s = nowMs();
          const body = await getJson(p);
          lat[k]!.push(nowMs() - s);
          if (k === 0) last = body;
        }
      });
      if (r.failed) throw new Error(`${label}: ${r.failed} failed: ${r.errors.join("; ")}`);
      const c = cpuDelta(c0, cpu());
      const wallS = (nowMs() - s0) / 1000;
      // The statements behind them, from Node on a warm session (no HTTP, no connection setup).
      const sqlTimes = async (fn: () => Promise<unknown>) => {
        for (let i = 0; i < 3; i++) await fn();
        const t: number[] = [];
        for (let i = 0; i < 20; i++) {
          const s = nowMs();
          await fn();
          t.push(nowMs() - s);
        }
        return t;
      };
      const sqlMetrics = await sqlTimes(() =>
        sumsByBucket(probeDb, {
          org,
          types: ["api.call", "document.viewed"],
          from: qStart,
          to: qEnd,
          granularity: "hour",
          tz: "UTC",
          wholeHourZone: true,
          byResourceType: false,
        }),
      );
      const sqlTrends = await sqlTimes(() => pg.query(trendsSql, trendsParams()));
      const explain = async (sql: string, params: unknown[]) => {
        const { rows } = await pg.query<{ "QUERY PLAN": string }>(
          `explain (analyze, buffers, costs off, timing off, summary off) ${sql}`,
          params,
        );
        const lines = rows.map((x) => x["QUERY PLAN"]);
        const scans = lines
          .filter((l) => /Scan/.test(l))
          .map((l) =>
            l
              .trim()
              .replace(/^->\s*/, "")
              .replace(/\s*\(actual.*$/, ""),
          );
        const buffers =
          lines
            .find((l) => /Buffers:/.test(l))
            ?.trim()
            .replace(/^Buffers:\s*/, "") ?? "";
        return `${scans.join(" + ")} [${buffers}]`;
      };
      const metricsPlan = await explain(
        `select date_trunc('hour', bucket, 'UTC') as bucket, event_type, null::text as dim, sum(quantity)::float8 as quantity
         from usage_agg_hour where organization_id = $1 and event_type = any($2::text[]) and bucket >= $3 and bucket < $4 group by 1, 2, 3`,
        [org, ["api.call", "document.viewed"], qStart.toISOString(), qEnd.toISOString()],
      );
      const trendsPlan = await explain(trendsSql, trendsParams());
      const metricsBody = last as { dataPoints: unknown[]; totals: Record<string, number> };
      return {
        metricsP95: percentile(lat[0]!, 95),
        metricsP50: percentile(lat[0]!, 50),
        dashboardP95: percentile(lat[1]!, 95),
        dashboardP50: percentile(lat[1]!, 50),
        controlP95: percentile(lat[2]!, 95),
        controlP50: percentile(lat[2]!, 50),
        sqlMetricsP50: percentile(sqlMetrics, 50),
        sqlTrendsP50: percentile(sqlTrends, 50),
        // Cores busy with processes that are not this run's (other work on the machine).
        otherCores: Math.max(0, c.machine - c.node - c.workerd - c.postgres - c.redis) / wallS,
        ownCores: (c.node + c.workerd + c.postgres + c.redis) / wallS,
        metricsPlan,
        trendsPlan,
        points: metricsBody.dataPoints.length,
        totals: JSON.stringify(metricsBody.totals),
      };
    };

    ctx.log("query: emptying the usage tables");
    await pg.query(`truncate ${USAGE_TABLES.join(", ")}`);
    ctx.log(`query: small — ${smallOrgs} orgs × ${perOrg} events (SQL)`);
    await loadOrgs(pg, 0, smallOrgs, perOrg, now, true);
    await settle("small");
    const smallEvents = await eventsIn();
    const small = await measure("small");
    ctx.log(
      `query: small (${smallEvents} events): metrics p95 ${round(small.metricsP95, 1)} ms, dashboard p95 ${round(small.dashboardP95, 1)} ms`,
    );

    // Grow: chunks of organizations on `clients` sessions, until the target or the time budget.
    const loadStart = Date.now();
    // Time still needed after the last chunk: one chunk in flight per session, vacuum/analyze
    // (≤ 4 s per million rows here), the samples and the teardown.
    const chunkMs = chunkOrgs * perOrg * 0.04;
    const reserveMs = () => 35_000 + clients * chunkMs + (smallEvents + loaded) * 0.004;
    let nextOrg = smallOrgs;
    let loaded = 0;
    let lastLog = 0;
    let budgetStop = false;
    const loaders = await Promise.all(Array.from({ length: clients }, () => connectPg(ctx.pgUrl)));
    try {
      await Promise.all(
        loaders.map(async (c) => {
          while (nextOrg < bigOrgs && !ctx.signal.aborted) {
            if (left() < reserveMs()) {
              budgetStop = true;
              return;
            }
            const from = nextOrg;
            const to = Math.min(bigOrgs, from + chunkOrgs);
            nextOrg = to;
            await loadOrgs(c, from, to, perOrg, now, false);
            loaded += (to - from) * perOrg;
            if (Date.now() - lastLog > 10_000) {
              lastLog = Date.now();
              const rate = loaded / ((Date.now() - loadStart) / 1000);
              ctx.log(
                `query: big — ${smallEvents + loaded} / ${bigOrgs * perOrg} events (${Math.round(rate)} events/s)`,
              );
            }
          }
        }),
      );
    } finally {
      await Promise.all(loaders.map((c) => c.end().catch(() => undefined)));
    }
    const loadMs = Date.now() - loadStart;
    const vacuumMs = await settle("big");
    const bigEvents = await eventsIn();
    if (budgetStop)
      notes.push(
        `the big load stopped at ${bigEvents} of ${bigOrgs * perOrg} events: the run's --timeout left no more time (raise --timeout, e.g. 900)`,
      );
    const big = await measure("big");
    ctx.log(
      `query: big (${bigEvents} events): metrics p95 ${round(big.metricsP95, 1)} ms, dashboard p95 ${round(big.dashboardP95, 1)} ms`,
    );
    const { rows: sizes } = await pg.query<{ t: string; mb: number; rows: number }>(
      "/* bench */ select c.relname as t, round(pg_total_relation_size(c.oid) / 1048576.0)::int as mb, c.reltuples::int8 as rows from pg_class c where relname = any($1::text[]) or relname like 'usage_events_20%' order by 2 desc",
      [USAGE_TABLES],
    );

    Object.assign(figures, {
      metrics_small_p95_ms: round(small.metricsP95, 2),
      metrics_big_p95_ms: round(big.metricsP95, 2),
      dashboard_small_p95_ms: round(small.dashboardP95, 2),
      dashboard_big_p95_ms: round(big.dashboardP95, 2),
      metrics_small_p50_ms: round(small.metricsP50, 2),
      metrics_big_p50_ms: round(big.metricsP50, 2),
      dashboard_small_p50_ms: round(small.dashboardP50, 2),
      dashboard_big_p50_ms: round(big.dashboardP50, 2),
      control_small_p95_ms: round(small.controlP95, 2),
      control_big_p95_ms: round(big.controlP95, 2),
      control_small_p50_ms: round(small.controlP50, 2),
      control_big_p50_ms: round(big.controlP50, 2),
      other_cpu_cores_small: round(small.otherCores, 2),
      other_cpu_cores_big: round(big.otherCores, 2),
      sql_metrics_small_p50_ms: round(small.sqlMetricsP50, 2),
      sql_metrics_big_p50_ms: round(big.sqlMetricsP50, 2),
      sql_trends_small_p50_ms: round(small.sqlTrendsP50, 2),
      sql_trends_big_p50_ms: round(big.sqlTrendsP50, 2),
      small_events: smallEvents,
      big_events: bigEvents,
      measured_org_events: perOrg,
      metrics_points: big.points,
      measured_org_changed: small.totals === big.totals && small.points === big.points ? 0 : 1,
      bulk_load_events_per_s: round(loaded / (loadMs / 1000), 0),
      bulk_vacuum_s: round(vacuumMs / 1000, 1),
    });
    ratios["metrics_big_p95_ms / metrics_small_p95_ms"] = round(big.metricsP95 / small.metricsP95, 3);
    ratios["dashboard_big_p95_ms / dashboard_small_p95_ms"] = round(big.dashboardP95 / small.dashboardP95, 3);
    ratios["control_big_p95_ms / control_small_p95_ms"] = round(big.controlP95 / small.controlP95, 3);
    ratios["sql_metrics_big_p50_ms / sql_metrics_small_p50_ms"] = round(big.sqlMetricsP50 / small.sqlMetricsP50, 3);
    ratios["sql_trends_big_p50_ms / sql_trends_small_p50_ms"] = round(big.sqlTrendsP50 / small.sqlTrendsP50, 3);
    targets["metrics_big_p95_ms / metrics_small_p95_ms"] = "<= 1.5";
    targets["dashboard_big_p95_ms / dashboard_small_p95_ms"] = "<= 1.5";
    targets.measured_org_changed = "<= 0";
    notes.push(
      `query shape: org ${org}, ${perOrg} events over 30 days in both sizes (loaded once, never touched again); small = ${smallEvents} events in ${smallOrgs} orgs (time order, orgs interleaved); big = ${bigEvents} events in ${Math.round(bigEvents / perOrg)} orgs (added in key order, ${chunkOrgs} orgs per transaction, ${clients} sessions, ${round(loadMs / 1000, 1)} s); vacuum (analyze) + checkpoint after each load; ${samples} sequential rounds of (metrics, dashboard, control) after 5 warm-up rounds`,
      `control = GET ${controlPath} (same auth/platform/Postgres-session path, a table that does not grow); other processes on the machine used ${round(small.otherCores, 2)} cores during the small samples and ${round(big.otherCores, 2)} during the big ones (this run: ${round(small.ownCores, 2)} / ${round(big.ownCores, 2)})`,
      `plans (EXPLAIN ANALYZE, BUFFERS): metrics small ${small.metricsPlan}; big ${big.metricsPlan}; trends small ${small.trendsPlan}; big ${big.trendsPlan}`,
      `metrics = GET ${metricsPath.replace(/startTime=[^&]+&endTime=[^&]+/, "startTime=<30 days before endTime>&endTime=<next full hour>")} (${big.points} data points); dashboard = GET ${dashboardPath}`,
      `sql_* = the statements behind them from Node (sumsByBucket hour; the dashboard's trends query): they isolate Postgres from HTTP, Worker and connection setup`,
      `table sizes at big: ${sizes
        .filter((s) => s.mb > 0)
        .map((s) => `${s.t} ${s.mb} MB`)
        .join(", ")}`,
    );
  }

  figures.bench_s = round((Date.now() - started) / 1000, 1);
  return {
    name: "usage",
    headline: figures.ingest_events_per_s !== undefined ? "ingest_events_per_s" : "metrics_big_p95_ms",
    figures,
    ratios,
    targets,
    notes,
  };
}
