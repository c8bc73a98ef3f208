import type { IncomingMessage } from "node:http";
import { connectPg } from "../scripts/lib/pg.ts";
import { signToken } from "../src/platform/auth.ts";
import { verifyWebhook } from "../src/webhooks/signing.ts";
import type { BenchConfig, BenchContext, BenchResult, Cpu, ReceiverReply } from "./harness.ts";
import { numArg, cpu, cpuDelta } from "./harness.ts";
import { percentile, round, runBounded } from "./lib.ts";

/**
 * Webhook delivery throughput and reliability (the issue's "webhooks" benchmark), in two shapes,
 * each against a raw baseline measured right before it in the same run.
 *
 * Every endpoint is a path `/<run>/<index>` on one local receiver that verifies each request's
 * Standard Webhooks signature against that endpoint's secret and counts 2xx answers per
 * (event, endpoint) pair and per `webhook-id`.
 *
 * 1. Many events to few endpoints: `--endpoints` E (10) in E / `--per-org` organizations (10 each),
 *    all subscribed to `team.updated`; `--events` N (300) go round-robin to the organizations through
 *    `POST /v1/orgs/{org}/webhook-events` (`--enqueue-concurrency` 16): N × per-org deliveries.
 *    Raw baseline (before the pipeline and again after it; the higher counts): the same number of
 *    signed POSTs from inside the Worker (`/__bench/signed-fetch`),
 *    same envelope, same endpoints' paths on the same receiver, concurrency min(256, E × WEBHOOK_CONCURRENCY).
 *    Pipeline: API → writer object (batched fan-out) → endpoint objects → signed POST → results
 *    buffered and flushed; deliveries/s from the first event POST to the last first-time delivery,
 *    enqueue→delivered p50/p99, lost, duplicates, and a profile (Postgres timestamps and sessions,
 *    CPU per delivery by process).
 *    Calibration: the same POSTs to an organization without webhooks, and plain object calls.
 * 2. One event to many endpoints: `--fan-endpoints` F (1000) in one organization; one event to
 *    fresh endpoint objects (cold), then one more (warm); raw baseline: F signed POSTs to the same
 *    paths at min(256, F × WEBHOOK_CONCURRENCY).
 * 2b. Delivery alone (`--engine-events`, default 0 = skipped): deliveries seeded into Postgres as
 *    overdue rows, handed over by one cron sweep (`/__bench/webhook-sweep`).
 * 3. Failure run (fresh organizations and endpoints of shape 1, `--fail-events` = N): `--fail-rate`
 *    (0.3) of receiver answers fail (a third each: 500, hang past the timeout then reset, immediate
 *    reset); waits until everything was delivered, reports lost, duplicates, retry amplification
 *    (attempts ÷ deliveries) and time to drain.
 *
 * Flags: --events 300 --endpoints 10 --per-org 10 --fan-endpoints 1000 --fail-rate 0.3
 *        --fail-events 300 --engine-events 0 --enqueue-concurrency 16 --wait 150 (s, per run)
 *        --data-bytes 256.
 */

const TIMEOUT_MS = 2_000;
/** The raw baseline's request timeout (`/__bench/signed-fetch` default). */
const RAW_TIMEOUT_MS = 10_000;
const CONCURRENCY = 8;

export const config: BenchConfig = {
  // The receiver shares this process's main thread with the load generator; Postgres traffic does not.
  wsProxyThread: true,
  bindings: {
    WEBHOOK_ALLOW_LOCAL_HTTP: "true",
    WEBHOOK_BACKOFF_BASE_MS: "100",
    WEBHOOK_BACKOFF_CAP_MS: "2000",
    // High enough that the failure run measures retries, not the breaker (it would open at once).
    WEBHOOK_CIRCUIT_FAILURE_THRESHOLD: "1000",
    WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
    WEBHOOK_CONCURRENCY: String(CONCURRENCY),
  },
};

const EVENT_TYPE = "team.updated";
const nowMs = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls the receiver's tally until `expected` (event, endpoint) pairs arrived; true if it gave up. */
async function waitForPairs(
  ctx: BenchContext,
  run: { pairs: { size: number } },
  expected: number,
  deadline: number,
): Promise<boolean> {
  while (run.pairs.size < expected) {
    if (ctx.signal.aborted || nowMs() > deadline) return true;
    await sleep(50);
  }
  return false;
}

/** CPU seconds so far: this Node process, its workerd descendants, the whole machine (busy). */

/** What the receiver saw for one run (one path prefix). */
interface RunStats {
  prefix: string;
  secrets: string[];
  /** Endpoint index → webhook id. */
  webhookIds: string[];
  /** Endpoint index → organization index. */
  orgOf: number[];
  failRate: number;
  /** Requests seen, in arrival order (drives the deterministic failure choice). */
  requests: number;
  invalidSignatures: number;
  failed: { status500: number; hang: number; reset: number };
  ok2xx: number;
  /** `${seq}:${endpoint}` → 2xx answers. */
  pairs: Map<string, number>;
  /** webhook-id → 2xx answers. */
  ids: Map<string, number>;
  /** Distinct webhook-ids answered 2xx per pair, beyond the first (two delivery rows for one pair). */
  extraIdsPerPair: number;
  pairIds: Map<string, string>;
  /** Delivered pairs whose endpoint is not in the event's organization (misrouted). */
  misrouted: number;
  /** enqueue→delivered (ms) of each pair's first 2xx. */
  latencies: number[];
  /** webhook-id → receive time of its first 2xx (epoch ms). */
  receivedAt: Map<string, number>;
  /** seq → the bench's POST time (epoch ms). */
  sentAt: Map<number, number>;
  firstDeliveryAt: number;
  lastDeliveryAt: number;
  /** Requests in flight at the receiver (and the maximum seen). */
  inFlight: number;
  maxInFlight: number;
}

function newRun(prefix: string, failRate: number): RunStats {
  return {
    prefix,
    secrets: [],
    webhookIds: [],
    orgOf: [],
    failRate,
    requests: 0,
    invalidSignatures: 0,
    failed: { status500: 0, hang: 0, reset: 0 },
    ok2xx: 0,
    pairs: new Map(),
    ids: new Map(),
    extraIdsPerPair: 0,
    pairIds: new Map(),
    misrouted: 0,
    latencies: [],
    receivedAt: new Map(),
    sentAt: new Map(),
    firstDeliveryAt: Infinity,
    lastDeliveryAt: 0,
    inFlight: 0,
    maxInFlight: 0,
  };
}

/** Deterministic uniform [0, 1) from a counter (golden-ratio multiply, then murmur3's fmix32). */
function unit(n: number): number {
  let z = Math.imul(n, 0x9e3779b1) ^ 0x5bd1e995;
  z ^= z >>> 16;
  z = Math.imul(z, 0x85ebca6b);
  z ^= z >>> 13;
  z = Math.imul(z, 0xc2b2ae35);
  z ^= z >>> 16;
  return (z >>> 0) / 2 ** 32;
}

function headerRecord(req: IncomingMessage): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(req.headers)) out[k] = Array.isArray(v) ? v.join(", ") : v;
  return out;
}

/** Signs a bearer token for one organization with the Worker's own secret. */
function tokenFor(ctx: BenchContext, org: string): Promise<string> {
  return signToken(
    { userId: "u_bench", organizationId: org, scopes: ["webhooks:read", "webhooks:write"], ttlSeconds: 3_600 },
    {
      secret: ctx.bindings.AUTH_JWT_SECRET!,
      issuer: ctx.bindings.AUTH_JWT_ISSUER ?? "cloudmatrix",
      audience: ctx.bindings.AUTH_JWT_AUDIENCE ?? "cloudmatrix-edge",
    },
  );
}

interface Shape {
  events: number;
  endpoints: number;
  perOrg: number;
  orgs: number;
  dataBytes: number;
  enqueueConcurrency: number;
}

/** Registers the run's endpoints through the API; fills `run.secrets` / `run.orgOf`. */
async function registerEndpoints(
  ctx: BenchContext,
  receiverUrl: string,
  run: RunStats,
  shape: Shape,
  tokens: string[],
  settings?: Record<string, unknown>,
): Promise<void> {
  const r = await runBounded(
    { count: shape.endpoints, concurrency: 8, timeLimitMs: 60_000, signal: ctx.signal },
    async (idx) => {
      const org = Math.floor(idx / shape.perOrg);
      const res = await ctx.worker.fetch(`/v1/orgs/${run.prefix}org${org}/webhooks`, {
        method: "POST",
        headers: { authorization: `Bearer ${tokens[org]}`, "content-type": "application/json" },
        body: JSON.stringify({
          url: `${receiverUrl}/${run.prefix}/${idx}`,
          events: [EVENT_TYPE],
          description: `bench ${run.prefix} ${idx}`,
          ...(settings ? { settings } : {}),
        }),
      });
      const text = await res.text();
      if (res.status !== 201) throw new Error(`register ${idx}: HTTP ${res.status} ${text.slice(0, 300)}`);
      const w = JSON.parse(text) as { id: string; secret: string };
      run.secrets[idx] = w.secret;
      run.webhookIds[idx] = w.id;
      run.orgOf[idx] = org;
    },
  );
  if (r.failed > 0 || r.stoppedEarly) throw new Error(`registering endpoints failed: ${r.errors.join("; ")}`);
}

/** Expected deliveries: every event to every endpoint of its organization. */
function expectedPairs(run: RunStats, shape: Shape, events: number, firstSeq = 0): number {
  const perOrgCount = new Map<number, number>();
  for (const o of run.orgOf) perOrgCount.set(o, (perOrgCount.get(o) ?? 0) + 1);
  let n = 0;
  for (let seq = firstSeq; seq < firstSeq + events; seq++) n += perOrgCount.get(seq % shape.orgs) ?? 0;
  return n;
}

interface PipelineRun {
  expected: number;
  /** Event POSTs answered other than 202 and sent again. */
  enqueueRetries: number;
  firstPostAt: number;
  enqueueMs: number;
  enqueueFailed: number;
  enqueueLatencies: number[];
  drainedAt: number;
  timedOut: boolean;
  errors: string[];
}

/** POSTs `events` events (bounded concurrency) and waits until every pair arrived or `waitMs` passed. */
async function runPipeline(
  ctx: BenchContext,
  run: RunStats,
  shape: Shape,
  tokens: string[],
  events: number,
  waitMs: number,
  firstSeq = 0,
): Promise<PipelineRun> {
  const expected = expectedPairs(run, shape, events, firstSeq);
  const before = run.pairs.size;
  const pad = "x".repeat(shape.dataBytes);
  const errors: string[] = [];
  let enqueueFailed = 0;
  let enqueueRetries = 0;
  const firstPostAt = nowMs();
  const r = await runBounded(
    { count: events, concurrency: shape.enqueueConcurrency, timeLimitMs: waitMs, signal: ctx.signal },
    async (i) => {
      const seq = firstSeq + i;
      const org = seq % shape.orgs;
      const body = JSON.stringify({
        eventId: `${run.prefix}-evt-${seq}`,
        eventType: EVENT_TYPE,
        occurredAt: new Date().toISOString(),
        data: { seq, sentAt: nowMs(), pad },
      });
      // Idempotent on eventId, so a failed POST is simply sent again (sentAt stays the first try's).
      for (let attempt = 1; ; attempt++) {
        const res = await ctx.worker.fetch(`/v1/orgs/${run.prefix}org${org}/webhook-events`, {
          method: "POST",
          headers: { authorization: `Bearer ${tokens[org]}`, "content-type": "application/json" },
          body,
        });
        const text = await res.text();
        if (res.status === 202) return;
        if (errors.length < 5) errors.push(`event ${seq}: HTTP ${res.status} ${text.slice(0, 200)}`);
        if (attempt >= 6) {
          enqueueFailed++;
          throw new Error(`event ${seq}: HTTP ${res.status}`);
        }
        enqueueRetries++;
        await sleep(250 * attempt);
      }
    },
  );
  const enqueueMs = nowMs() - firstPostAt;
  const deadline = firstPostAt + waitMs;
  const timedOut = await waitForPairs(ctx, run, before + expected, deadline);
  return {
    expected,
    enqueueRetries,
    firstPostAt,
    enqueueMs,
    enqueueFailed: enqueueFailed + (events - r.ok - r.failed),
    enqueueLatencies: r.latencies,
    drainedAt: nowMs(),
    timedOut,
    errors,
  };
}

/**
 * Delivery alone: seeds the deliveries of `events` events straight into Postgres (overdue, as the
 * cron sweep finds them after a lost hand-off), then runs the sweep (`/__bench/webhook-sweep` →
 * processQueue: hand-off to the endpoint objects + drain) and waits for the receiver. No API, no
 * per-event request: what the Durable Object / alarm / fetch / record path sustains by itself.
 */
async function runEngine(
  ctx: BenchContext,
  pg: Awaited<ReturnType<typeof connectPg>>,
  run: RunStats,
  shape: Shape,
  events: number,
  waitMs: number,
) {
  const expected = expectedPairs(run, shape, events);
  const pad = "x".repeat(shape.dataBytes);
  const byOrg = new Map<number, number[]>();
  for (const [idx, o] of run.orgOf.entries()) byOrg.set(o, [...(byOrg.get(o) ?? []), idx]);
  const rows: { id: string; webhook_id: string; organization_id: string; event_id: string; payload: string }[] = [];
  const occurredAt = new Date().toISOString();
  for (let seq = 0; seq < events; seq++) {
    const org = seq % shape.orgs;
    const organizationId = `${run.prefix}org${org}`;
    const eventId = `${run.prefix}-evt-${seq}`;
    for (const idx of byOrg.get(org) ?? []) {
      const id = `msg_${run.prefix}${seq}x${idx}`;
      rows.push({
        id,
        webhook_id: run.webhookIds[idx]!,
        organization_id: organizationId,
        event_id: eventId,
        payload: JSON.stringify({ id, type: EVENT_TYPE, eventId, organizationId, occurredAt, data: { seq, pad } }),
      });
    }
  }
  for (let i = 0; i < rows.length; i += 2_000) {
    await pg.query(
      `insert into webhook_deliveries (id, webhook_id, organization_id, event_id, event_type, payload, scheduled_at)
       select x.id, x.webhook_id, x.organization_id, x.event_id, $2, x.payload, now() - interval '1 minute'
       from jsonb_to_recordset($1::jsonb) as x(id text, webhook_id text, organization_id text, event_id text, payload text)`,
      [JSON.stringify(rows.slice(i, i + 2_000)), EVENT_TYPE],
    );
  }
  const t0 = nowMs();
  const sweep = ctx.worker.json<{ processed: number; succeeded: number; failed: number; ms: number }>(
    "/__bench/webhook-sweep",
    { batchSize: rows.length },
  );
  sweep.catch(() => undefined);
  const deadline = t0 + waitMs;
  const timedOut = await waitForPairs(ctx, run, expected, deadline);
  const s = await sweep;
  return { expected, t0, timedOut, sweep: s };
}

/** Where a run's time went, from Postgres rows (written by the pipeline) and the receiver's clock. */
async function breakdown(pg: Awaited<ReturnType<typeof connectPg>>, run: RunStats) {
  const { rows } = await pg.query<{ id: string; event_id: string; created_ms: number; attempts: number }>(
    `select d.id, d.event_id, extract(epoch from d.created_at) * 1000 as created_ms, d.attempt_count as attempts
     from webhook_deliveries d where d.organization_id like $1`,
    [`${run.prefix}org%`],
  );
  const apiMs: number[] = [];
  const toReceiver: number[] = [];
  for (const r of rows) {
    const seq = Number(r.event_id.slice(r.event_id.lastIndexOf("-") + 1));
    const sent = run.sentAt.get(seq);
    const recv = run.receivedAt.get(r.id);
    if (sent !== undefined) apiMs.push(Number(r.created_ms) - sent);
    if (recv !== undefined) toReceiver.push(recv - Number(r.created_ms));
  }
  const waves = await pg.query<{ attempts: number; waves: number; runs: number }>(
    `select count(*)::int as attempts, count(distinct (a.webhook_id, a.attempted_at))::int as waves
     from webhook_attempts a join webhook_deliveries d on d.id = a.delivery_id where d.organization_id like $1`,
    [`${run.prefix}org%`],
  );
  const w = waves.rows[0]!;
  return {
    rows: rows.length,
    sentToRowP50: round(percentile(apiMs, 50), 1),
    sentToRowP99: round(percentile(apiMs, 99), 1),
    rowToReceiverP50: round(percentile(toReceiver, 50), 1),
    rowToReceiverP99: round(percentile(toReceiver, 99), 1),
    attempts: w.attempts,
    waves: w.waves,
    meanWave: w.waves ? round(w.attempts / w.waves, 2) : 0,
  };
}

const pgSessions = async (pg: Awaited<ReturnType<typeof connectPg>>) =>
  Number(
    (
      await pg.query<{ n: string }>(
        "select sessions::text as n from pg_stat_database where datname = current_database()",
      )
    ).rows[0]?.n ?? 0,
  );

export default async function run(ctx: BenchContext): Promise<BenchResult> {
  const events = Math.floor(numArg(ctx.args, "events", 300));
  const endpoints = Math.floor(numArg(ctx.args, "endpoints", 10));
  const perOrg = Math.max(1, Math.floor(numArg(ctx.args, "per-org", 10)));
  const fanEndpoints = Math.floor(numArg(ctx.args, "fan-endpoints", 1_000));
  const failRate = numArg(ctx.args, "fail-rate", 0.3);
  const failEvents = Math.floor(numArg(ctx.args, "fail-events", events));
  const waitMs = numArg(ctx.args, "wait", 150) * 1000;
  if (endpoints < 1 || events < 1) throw new Error("--events and --endpoints must be at least 1");
  if (failRate >= 1) throw new Error("--fail-rate must be below 1");
  const shape: Shape = {
    events,
    endpoints,
    perOrg,
    orgs: Math.ceil(endpoints / perOrg),
    dataBytes: Math.floor(numArg(ctx.args, "data-bytes", 256)),
    enqueueConcurrency: Math.max(1, Math.floor(numArg(ctx.args, "enqueue-concurrency", 16))),
  };
  const fanShape: Shape = { ...shape, events: 1, endpoints: fanEndpoints, perOrg: fanEndpoints, orgs: 1 };
  const timeoutMs = Number(ctx.bindings.WEBHOOK_TIMEOUT_MS ?? TIMEOUT_MS);
  const perEndpoint = Number(ctx.bindings.WEBHOOK_CONCURRENCY ?? CONCURRENCY);
  const hangMs = timeoutMs + 1_000;

  // ─── the receiver: verifies every signature, counts per pair and webhook-id, injects failures ───
  const runs = new Map<string, RunStats>();
  const receiver = await ctx.receiver(async (req, raw): Promise<ReceiverReply | undefined> => {
    const at = nowMs();
    const m = /^\/([a-z]+)\/(\d+)$/.exec(req.url ?? "");
    const run = m ? runs.get(m[1]!) : undefined;
    const idx = m ? Number(m[2]) : -1;
    const secret = run?.secrets[idx];
    if (!run || secret === undefined) return { status: 404 };
    const n = ++run.requests; // arrival order: decides this request's fate, whatever awaits follow
    run.inFlight++;
    if (run.inFlight > run.maxInFlight) run.maxInFlight = run.inFlight;
    try {
      const body = raw.toString("utf8");
      if (!(await verifyWebhook(headerRecord(req), body, secret))) {
        run.invalidSignatures++;
        return { status: 401 };
      }
      if (run.failRate > 0) {
        const u = unit(n);
        if (u < run.failRate) {
          const kind = Math.floor((u / run.failRate) * 3);
          if (kind === 0) {
            run.failed.status500++;
            return { status: 500, body: "injected failure" };
          }
          if (kind === 1) {
            run.failed.hang++;
            await sleep(hangMs); // past the sender's timeout; then drop the connection
          } else run.failed.reset++;
          req.socket.destroy();
          return;
        }
      }
      const msgId = String(req.headers["webhook-id"]);
      const env = JSON.parse(body) as { data?: { seq?: number; sentAt?: number } };
      const seq = env.data?.seq ?? -1;
      const key = `${seq}:${idx}`;
      run.ok2xx++;
      run.ids.set(msgId, (run.ids.get(msgId) ?? 0) + 1);
      const seen = run.pairs.get(key) ?? 0;
      run.pairs.set(key, seen + 1);
      if (seen === 0) {
        run.pairIds.set(key, msgId);
        if (seq % shape.orgs !== run.orgOf[idx]) run.misrouted++;
        run.receivedAt.set(msgId, at);
        if (typeof env.data?.sentAt === "number") {
          run.latencies.push(at - env.data.sentAt);
          run.sentAt.set(seq, env.data.sentAt);
        }
        if (at < run.firstDeliveryAt) run.firstDeliveryAt = at;
        if (at > run.lastDeliveryAt) run.lastDeliveryAt = at;
      } else if (run.pairIds.get(key) !== msgId) run.extraIdsPerPair++;
      return { status: 204 };
    } finally {
      run.inFlight--;
    }
  });

  // Post-run analysis only (the waits poll the receiver, not Postgres).
  const pg = await connectPg(ctx.pgUrl);
  ctx.defer(() => pg.end());

  /** The raw baseline: `n` signed POSTs from the Worker to the run's endpoints (same receiver, same verification). */
  const rawBaseline = async (run: RunStats, n: number, concurrency: number) => {
    const c0 = cpu();
    const r = await ctx.worker.json<{
      ms: number;
      ok: number;
      failed: number;
      p50: number;
      p99: number;
      rps: number;
      errors: string[];
    }>("/__bench/signed-fetch", {
      targets: run.secrets.map((secret, idx) => ({ url: `${receiver.url}/${run.prefix}/${idx}`, secret })),
      n,
      concurrency,
      data: { pad: "x".repeat(shape.dataBytes) },
      eventType: EVENT_TYPE,
      organizationId: "rawbaseline",
      timeoutMs: RAW_TIMEOUT_MS,
    });
    if (r.failed > 0) ctx.log(`raw baseline ${run.prefix}: ${r.failed} failed (${r.errors.join("; ")})`);
    return { ...r, cpu: cpuDelta(c0, cpu()) };
  };
  /** The raw baseline once more, with fresh ids (run `prefix`), to the endpoints of `of`. */
  const rawBaselineAgain = (prefix: string, of: RunStats, n: number, concurrency: number) => {
    const again = newRun(prefix, 0);
    again.secrets = of.secrets;
    again.orgOf = of.orgOf;
    runs.set(prefix, again);
    return rawBaseline(again, n, concurrency);
  };
  const pct = (xs: number[], q: number) => round(percentile(xs, q), 1);
  const perDelivery = (cpuS: number, n: number) => (n > 0 ? round((cpuS * 1000) / n, 3) : 0);
  const dupIds = (r: RunStats) => [...r.ids.values()].reduce((n, c) => n + (c - 1), 0);
  const dupPairs = (r: RunStats) => [...r.pairs.values()].reduce((n, c) => n + (c - 1), 0);

  // ─── 1. many events to few endpoints: endpoints, raw baseline, pipeline ───
  const main = newRun("e", 0);
  runs.set("e", main);
  const mainTokens = await Promise.all(Array.from({ length: shape.orgs }, (_, o) => tokenFor(ctx, `eorg${o}`)));
  ctx.log(`registering ${endpoints} endpoints in ${shape.orgs} organizations`);
  // The delivery timeout of the success shapes is the raw baseline's (10 s): on a loaded machine a
  // shorter one turns slow answers into retries the baseline never makes. The failure run keeps 2 s.
  await registerEndpoints(ctx, receiver.url, main, shape, mainTokens, { timeoutMs: RAW_TIMEOUT_MS });
  const expectedMain = expectedPairs(main, shape, events);

  const raw = newRun("r", 0);
  raw.secrets = main.secrets;
  raw.orgOf = main.orgOf;
  runs.set("r", raw);
  const rawConcurrency = Math.min(256, endpoints * perEndpoint);
  ctx.log(`raw baseline: ${expectedMain} signed POSTs from the Worker, concurrency ${rawConcurrency}`);
  const rawResult = await rawBaseline(raw, expectedMain, rawConcurrency);
  const rawCpu = rawResult.cpu;

  ctx.log(`pipeline: ${events} events → ${expectedMain} deliveries (enqueue concurrency ${shape.enqueueConcurrency})`);
  const sessions0 = await pgSessions(pg);
  const cpu0 = cpu();
  const p = await runPipeline(ctx, main, shape, mainTokens, events, waitMs);
  const used = cpuDelta(cpu0, cpu());
  const delivered = main.pairs.size;
  const spanMs = main.lastDeliveryAt - p.firstPostAt;
  const pipelinePerS = delivered > 0 && spanMs > 0 ? (delivered * 1000) / spanMs : 0;
  ctx.log(
    `pipeline: ${delivered}/${p.expected} delivered in ${(spanMs / 1000).toFixed(1)} s (${Math.round(pipelinePerS)}/s, raw ${Math.round(rawResult.rps)}/s)${p.timedOut ? " — TIMED OUT" : ""}`,
  );
  await sleep(500); // let the last sessions end before counting them
  const sessions = (await pgSessions(pg)) - sessions0;
  const b = await breakdown(pg, main);
  // The baseline again after the pipeline (fresh ids): the higher of the two is the one divided by,
  // so a slow first baseline cannot flatter the ratio.
  const rawSecond = await rawBaselineAgain("t", main, expectedMain, rawConcurrency);
  const rawPerS = Math.max(rawResult.rps, rawSecond.rps);
  ctx.log(`raw baseline again: ${Math.round(rawSecond.rps)}/s (first ${Math.round(rawResult.rps)}/s)`);

  // ─── calibration: what every event POST and every object call costs, whatever the pipeline does ───
  // The same number of event POSTs at the same concurrency to an organization without webhooks
  // (auth, validation, the writer's round trip, nothing to deliver), and plain Durable Object calls.
  const zToken = await tokenFor(ctx, "zorg0");
  ctx.log(`calibration: ${events} event POSTs to an organization without webhooks`);
  const apiC0 = cpu();
  const apiT0 = nowMs();
  const apiOnly = await runBounded(
    { count: events, concurrency: shape.enqueueConcurrency, timeLimitMs: waitMs, signal: ctx.signal },
    async (i) => {
      const res = await ctx.worker.fetch("/v1/orgs/zorg0/webhook-events", {
        method: "POST",
        headers: { authorization: `Bearer ${zToken}`, "content-type": "application/json" },
        body: JSON.stringify({
          eventId: `z-${i}`,
          eventType: EVENT_TYPE,
          occurredAt: new Date().toISOString(),
          data: {},
        }),
      });
      await res.text();
      if (res.status !== 202) throw new Error(`HTTP ${res.status}`);
    },
  );
  const apiMs = nowMs() - apiT0;
  const apiCpu = cpuDelta(apiC0, cpu());
  const rpcC0 = cpu();
  const rpc = await ctx.worker.json<{ n: number; ms: number }>("/__bench/do-rpc", {
    webhookIds: main.webhookIds,
    n: 1_000,
  });
  const rpcCpu = cpuDelta(rpcC0, cpu());
  const calibration = {
    api_only_events_per_s: Math.round((apiOnly.ok * 1000) / apiMs),
    api_only_workerd_cpu_ms_per_event: perDelivery(apiCpu.workerd, apiOnly.ok),
    api_only_node_cpu_ms_per_event: perDelivery(apiCpu.node, apiOnly.ok),
    api_only_machine_cpu_ms_per_event: perDelivery(apiCpu.machine, apiOnly.ok),
    do_rpc_workerd_cpu_ms: perDelivery(rpcCpu.workerd, rpc.n),
    do_rpc_wall_ms: round(rpc.ms / rpc.n, 3),
  };
  ctx.log(
    `calibration: ${calibration.api_only_events_per_s} event POSTs/s with nothing to deliver (${calibration.api_only_machine_cpu_ms_per_event} ms machine CPU each); a Durable Object call ${calibration.do_rpc_workerd_cpu_ms} ms workerd CPU`,
  );

  // ─── 2. one event to many endpoints (cold objects, then the same endpoints warm) ───
  const fan = newRun("n", 0);
  runs.set("n", fan);
  let fanFigures: Record<string, number> = {};
  let fanRatios: Record<string, number> = {};
  if (fanEndpoints > 0) {
    const fanToken = [await tokenFor(ctx, "norg0")];
    ctx.log(`fan-out: registering ${fanEndpoints} endpoints in one organization`);
    await registerEndpoints(ctx, receiver.url, fan, fanShape, fanToken, { timeoutMs: RAW_TIMEOUT_MS });
    const fanRaw = newRun("q", 0);
    fanRaw.secrets = fan.secrets;
    fanRaw.orgOf = fan.orgOf;
    runs.set("q", fanRaw);
    const fanConcurrency = Math.min(256, fanEndpoints * perEndpoint);
    const fr = await rawBaseline(fanRaw, fanEndpoints, fanConcurrency);
    const s0 = await pgSessions(pg);
    const c0 = cpu();
    ctx.log(`fan-out: one event to ${fanEndpoints} fresh endpoint objects (cold)`);
    const cold = await runPipeline(ctx, fan, fanShape, fanToken, 1, waitMs, 0);
    const coldCpu = cpuDelta(c0, cpu());
    const coldDelivered = fan.pairs.size;
    const coldSpan = fan.lastDeliveryAt - cold.firstPostAt;
    const coldLatencies = [...fan.latencies];
    await sleep(500);
    const coldSessions = (await pgSessions(pg)) - s0;
    const warm = await runPipeline(ctx, fan, fanShape, fanToken, 1, waitMs, 1);
    const warmDelivered = fan.pairs.size - coldDelivered;
    const warmSpan = fan.lastDeliveryAt - warm.firstPostAt;
    const warmLatencies = fan.latencies.slice(coldLatencies.length);
    const coldPerS = coldSpan > 0 ? (coldDelivered * 1000) / coldSpan : 0;
    const warmPerS = warmSpan > 0 ? (warmDelivered * 1000) / warmSpan : 0;
    const fr2 = await rawBaselineAgain("u", fan, fanEndpoints, fanConcurrency);
    const fanRawPerS = Math.max(fr.rps, fr2.rps);
    ctx.log(
      `fan-out: cold ${coldDelivered}/${cold.expected} in ${(coldSpan / 1000).toFixed(2)} s, warm ${warmDelivered}/${warm.expected} in ${(warmSpan / 1000).toFixed(2)} s, raw ${Math.round(fr.rps)}/s, again ${Math.round(fr2.rps)}/s`,
    );
    fanFigures = {
      fan_endpoints: fanEndpoints,
      fan_raw_signed_fetch_per_s: Math.round(fanRawPerS),
      fan_raw_signed_fetch_per_s_first: Math.round(fr.rps),
      fan_raw_signed_fetch_per_s_second: Math.round(fr2.rps),
      fan_raw_signed_fetch_concurrency: fanConcurrency,
      fan_raw_signed_fetch_failed: fr.failed + fr2.failed,
      fan_cold_expected: cold.expected,
      fan_cold_delivered: coldDelivered,
      fan_cold_lost: cold.expected - coldDelivered,
      fan_cold_deliveries_per_s: Math.round(coldPerS),
      fan_cold_span_s: round(coldSpan / 1000, 3),
      fan_cold_enqueue_to_delivered_p50_ms: pct(coldLatencies, 50),
      fan_cold_enqueue_to_delivered_p99_ms: pct(coldLatencies, 99),
      fan_cold_api_enqueue_ms: round(cold.enqueueLatencies[0] ?? 0, 1),
      fan_cold_pg_sessions: coldSessions,
      fan_cold_machine_cpu_ms_per_delivery: perDelivery(coldCpu.machine, coldDelivered),
      fan_cold_workerd_cpu_ms_per_delivery: perDelivery(coldCpu.workerd, coldDelivered),
      fan_warm_expected: warm.expected,
      fan_warm_delivered: warmDelivered,
      fan_warm_lost: warm.expected - warmDelivered,
      fan_warm_deliveries_per_s: Math.round(warmPerS),
      fan_warm_span_s: round(warmSpan / 1000, 3),
      fan_warm_enqueue_to_delivered_p50_ms: pct(warmLatencies, 50),
      fan_warm_enqueue_to_delivered_p99_ms: pct(warmLatencies, 99),
      fan_receiver_max_in_flight: fan.maxInFlight,
      fan_attempts: fan.requests,
      fan_duplicates: dupIds(fan),
      fan_duplicate_pairs: dupPairs(fan),
    };
    fanRatios =
      fanRawPerS > 0
        ? {
            "fan_cold_deliveries_per_s / fan_raw_signed_fetch_per_s": round(coldPerS / fanRawPerS, 3),
            "fan_warm_deliveries_per_s / fan_raw_signed_fetch_per_s": round(warmPerS / fanRawPerS, 3),
          }
        : {};
  }

  // ─── 2b. delivery alone (seeded rows + the cron sweep), fresh organizations and endpoints ───
  const engineEvents = Math.floor(numArg(ctx.args, "engine-events", 0));
  const engine = newRun("s", 0);
  runs.set("s", engine);
  let e: Awaited<ReturnType<typeof runEngine>> | undefined;
  let eCpu: Cpu | undefined;
  let eSessions = 0;
  let eb: Awaited<ReturnType<typeof breakdown>> | undefined;
  if (engineEvents > 0) {
    ctx.log(`delivery alone: registering ${endpoints} endpoints, seeding ${engineEvents} events' deliveries, sweeping`);
    await registerEndpoints(
      ctx,
      receiver.url,
      engine,
      shape,
      await Promise.all(Array.from({ length: shape.orgs }, (_, o) => tokenFor(ctx, `sorg${o}`))),
    );
    const s0 = await pgSessions(pg);
    const c0 = cpu();
    e = await runEngine(ctx, pg, engine, shape, engineEvents, waitMs);
    eCpu = cpuDelta(c0, cpu());
    await sleep(500);
    eSessions = (await pgSessions(pg)) - s0;
    eb = await breakdown(pg, engine);
    ctx.log(
      `delivery alone: ${engine.pairs.size}/${e.expected} in ${((engine.lastDeliveryAt - e.t0) / 1000).toFixed(1)} s${e.timedOut ? " — TIMED OUT" : ""}`,
    );
  }

  // ─── 3. the failure run: fresh organizations and endpoints, shape 1 ───
  const fail = newRun("f", failRate);
  runs.set("f", fail);
  let f: PipelineRun | undefined;
  if (failEvents > 0) {
    const failTokens = await Promise.all(Array.from({ length: shape.orgs }, (_, o) => tokenFor(ctx, `forg${o}`)));
    ctx.log(`failure run: registering ${endpoints} endpoints`);
    await registerEndpoints(ctx, receiver.url, fail, shape, failTokens);
    ctx.log(
      `failure run: ${failEvents} events, ${Math.round(failRate * 100)} % of answers fail (500 / hang ${hangMs} ms / reset)`,
    );
    f = await runPipeline(ctx, fail, shape, failTokens, failEvents, waitMs);
    ctx.log(
      `failure run: ${fail.pairs.size}/${f.expected} delivered in ${((fail.lastDeliveryAt - f.firstPostAt) / 1000).toFixed(1)} s${f.timedOut ? " — TIMED OUT" : ""}`,
    );
  }
  const failDelivered = fail.pairs.size;
  const drainMs = f && failDelivered > 0 ? fail.lastDeliveryAt - f.firstPostAt : 0;
  // Recorded attempts are flushed in batches: give the last ones a moment before counting rows.
  await sleep(1_500);
  const fb = f ? await breakdown(pg, fail) : undefined;

  const ratio = rawPerS > 0 ? round(pipelinePerS / rawPerS, 3) : 0;
  const figures: Record<string, number> = {
    pipeline_deliveries_per_s: Math.round(pipelinePerS),
    raw_signed_fetch_per_s: Math.round(rawPerS),
    raw_signed_fetch_per_s_first: Math.round(rawResult.rps),
    raw_signed_fetch_per_s_second: Math.round(rawSecond.rps),
    raw_signed_fetch_ok: rawResult.ok,
    raw_signed_fetch_failed: rawResult.failed + rawSecond.failed,
    raw_signed_fetch_concurrency: rawConcurrency,
    events,
    endpoints,
    per_org: perOrg,
    orgs: shape.orgs,
    expected_deliveries: p.expected,
    delivered,
    lost: p.expected - delivered,
    duplicates: dupIds(main),
    duplicate_pairs: dupPairs(main),
    invalid_signatures:
      main.invalidSignatures +
      raw.invalidSignatures +
      fan.invalidSignatures +
      (runs.get("q")?.invalidSignatures ?? 0) +
      engine.invalidSignatures +
      fail.invalidSignatures,
    misrouted: main.misrouted + fan.misrouted + engine.misrouted + fail.misrouted,
    enqueue_to_delivered_p50_ms: pct(main.latencies, 50),
    enqueue_to_delivered_p99_ms: pct(main.latencies, 99),
    enqueue_to_delivered_max_ms: round(Math.max(...main.latencies, 0), 1),
    pipeline_span_s: round(spanMs / 1000, 2),
    // where the time goes (profile)
    api_enqueue_events_per_s: Math.round((events * 1000) / p.enqueueMs),
    api_enqueue_p50_ms: pct(p.enqueueLatencies, 50),
    api_enqueue_p99_ms: pct(p.enqueueLatencies, 99),
    api_enqueue_failed: p.enqueueFailed,
    api_enqueue_retries: p.enqueueRetries,
    sent_to_pg_row_p50_ms: b.sentToRowP50,
    sent_to_pg_row_p99_ms: b.sentToRowP99,
    pg_row_to_receiver_p50_ms: b.rowToReceiverP50,
    pg_row_to_receiver_p99_ms: b.rowToReceiverP99,
    attempts_per_wave: b.meanWave,
    pg_sessions: sessions,
    pg_sessions_per_delivery: delivered ? round(sessions / delivered, 3) : 0,
    receiver_max_in_flight: main.maxInFlight,
    workerd_cpu_ms_per_delivery: perDelivery(used.workerd, delivered),
    node_cpu_ms_per_delivery: perDelivery(used.node, delivered),
    postgres_cpu_ms_per_delivery: perDelivery(used.postgres, delivered),
    machine_cpu_ms_per_delivery: perDelivery(used.machine, delivered),
    machine_cpu_busy_cores: spanMs > 0 ? round((used.machine / (p.drainedAt - p.firstPostAt)) * 1000, 2) : 0,
    raw_workerd_cpu_ms_per_delivery: perDelivery(rawCpu.workerd, rawResult.ok),
    raw_node_cpu_ms_per_delivery: perDelivery(rawCpu.node, rawResult.ok),
    raw_postgres_cpu_ms_per_delivery: perDelivery(rawCpu.postgres, rawResult.ok),
    raw_machine_cpu_ms_per_delivery: perDelivery(rawCpu.machine, rawResult.ok),
    ...calibration,
    ...fanFigures,
  };
  if (e && eCpu && eb) {
    const n = engine.pairs.size;
    const ms = engine.lastDeliveryAt - e.t0;
    Object.assign(figures, {
      engine_deliveries_per_s: n > 0 && ms > 0 ? Math.round((n * 1000) / ms) : 0,
      engine_expected_deliveries: e.expected,
      engine_delivered: n,
      engine_lost: e.expected - n,
      engine_duplicates: dupIds(engine),
      engine_attempts_per_wave: eb.meanWave,
      engine_pg_sessions_per_delivery: n ? round(eSessions / n, 3) : 0,
      engine_workerd_cpu_ms_per_delivery: perDelivery(eCpu.workerd, n),
      engine_node_cpu_ms_per_delivery: perDelivery(eCpu.node, n),
      engine_postgres_cpu_ms_per_delivery: perDelivery(eCpu.postgres, n),
      engine_machine_cpu_ms_per_delivery: perDelivery(eCpu.machine, n),
    });
  }
  if (f) {
    Object.assign(figures, {
      fail_rate: failRate,
      fail_events: failEvents,
      fail_expected_deliveries: f.expected,
      fail_delivered: failDelivered,
      fail_lost: f.expected - failDelivered,
      fail_duplicates: dupIds(fail),
      fail_duplicate_pairs: dupPairs(fail),
      fail_attempts: fail.requests,
      fail_attempts_per_delivery: failDelivered > 0 ? round(fail.requests / failDelivered, 3) : 0,
      fail_attempts_recorded: fb?.attempts ?? 0,
      fail_injected_500: fail.failed.status500,
      fail_injected_hang: fail.failed.hang,
      fail_injected_reset: fail.failed.reset,
      fail_drain_s: round(drainMs / 1000, 2),
      fail_deliveries_per_s: drainMs > 0 ? Math.round((failDelivered * 1000) / drainMs) : 0,
      fail_enqueue_to_delivered_p50_ms: pct(fail.latencies, 50),
      fail_enqueue_to_delivered_p99_ms: pct(fail.latencies, 99),
      fail_api_enqueue_failed: f.enqueueFailed,
      fail_api_enqueue_retries: f.enqueueRetries,
    });
  }
  return {
    name: "webhooks",
    headline: "pipeline_deliveries_per_s",
    figures,
    ratios: {
      "pipeline_deliveries_per_s / raw_signed_fetch_per_s": ratio,
      ...fanRatios,
      ...(figures.engine_deliveries_per_s !== undefined && rawPerS > 0
        ? {
            "engine_deliveries_per_s / raw_signed_fetch_per_s": round(figures.engine_deliveries_per_s / rawPerS, 3),
          }
        : {}),
      ...(f && failDelivered > 0 ? { "fail_attempts / fail_delivered": round(fail.requests / failDelivered, 3) } : {}),
    },
    targets: {
      "pipeline_deliveries_per_s / raw_signed_fetch_per_s": ">= 0.5",
      ...(fanEndpoints > 0
        ? {
            "fan_cold_deliveries_per_s / fan_raw_signed_fetch_per_s": ">= 0.5",
            "fan_warm_deliveries_per_s / fan_raw_signed_fetch_per_s": ">= 0.5",
            fan_cold_lost: "<= 0",
            fan_warm_lost: "<= 0",
          }
        : {}),
      lost: "<= 0",
      invalid_signatures: "<= 0",
      misrouted: "<= 0",
      ...(figures.engine_lost !== undefined ? { engine_lost: "<= 0" } : {}),
      ...(f ? { fail_lost: "<= 0" } : {}),
    },
    notes: [
      `shape 1 (many events to few endpoints): ${endpoints} endpoints in ${shape.orgs} organization(s) of ${perOrg}; ${events} events round-robin over the organizations, each delivered to the ${perOrg} endpoints of its organization = ${p.expected} deliveries`,
      `shape 2 (one event to many endpoints): ${fanEndpoints} endpoints in one organization; one event (cold: the endpoint objects do not exist yet), then a second one (warm); deliveries/s = endpoints / (last first-time delivery − the event POST)`,
      `Worker settings: WEBHOOK_CONCURRENCY ${perEndpoint} per endpoint, timeout ${RAW_TIMEOUT_MS} ms in shapes 1 and 2 (per-endpoint setting, = the raw baseline's) and ${timeoutMs} ms in the failure run, backoff 100 ms base / 2 s cap, breaker failure threshold 1000 (so the failure run measures retries, not the breaker); no breaker-on variant`,
      `pipeline = POST /v1/orgs/{org}/webhook-events from Node (concurrency ${shape.enqueueConcurrency}, through wrangler's dev proxy) → writer object (batched fan-out transaction) → endpoint Durable Objects → alarm → signed POST → result buffered in the object, flushed in batches through the writer; deliveries/s = unique deliveries / (last first-time delivery − first event POST)`,
      `raw baselines = /__bench/signed-fetch: the same number of POSTs as the shape's deliveries from one Worker request, to the same endpoints' paths on the same verifying receiver, each with a fresh id, the same envelope (${shape.dataBytes}-byte pad) and headers, signed with signAll, concurrency min(256, endpoints × WEBHOOK_CONCURRENCY) = ${rawConcurrency} (shape 1) / ${Math.min(256, fanEndpoints * perEndpoint)} (shape 2); measured right before its pipeline run and again right after it (fresh ids), the higher of the two divided by (*_first, *_second: each)`,
      "the receiver (node:http, main thread) verifies every request with verifyWebhook against the endpoint's secret; enqueue→delivered = receive time − data.sentAt (the bench's POST time), first 2xx per (event, endpoint)",
      `calibration: api_only_* = ${events} event POSTs at concurrency ${shape.enqueueConcurrency} to an organization without webhooks (the request path through wrangler's dev proxy, auth, validation, the writer's round trip; nothing delivered); do_rpc_* = 1,000 sequential calls of a trivial endpoint-object method from one Worker request (each hand-off and each flush pays one); all processes share the 2 cores, workerd runs every object on one JS thread`,
      "duplicates = 2xx answers beyond the first per webhook-id (at-least-once retries); duplicate_pairs counts per (event, endpoint), also across ids",
      "profile: sent_to_pg_row = webhook_deliveries.created_at − sentAt (API + auth + writer batch up to the insert); pg_row_to_receiver = receive − created_at (hand-off, alarm, signing, fetch); attempts_per_wave = webhook_attempts / distinct (webhook, attempted_at); pg_sessions = pg_stat_database.sessions opened during the run; *_cpu_ms_per_delivery from /proc (workerd = the Worker and its Durable Objects; node = this process: wrangler's proxy, the Postgres WebSocket proxy, the receiver; postgres = server and backends, exited ones included; machine = every busy CPU on the host, other work included)",
      ...(e
        ? [
            `delivery alone (engine_*): ${e.expected} deliveries seeded into webhook_deliveries as overdue rows for fresh endpoints, then one /__bench/webhook-sweep (processQueue: hand-off to the endpoint objects + drain, then alarms); engine_deliveries_per_s = deliveries / (last delivery − sweep start)`,
          ]
        : ["delivery alone (engine) skipped: --engine-events N runs it"]),
      ...(f
        ? [
            `failure run: fresh organizations/endpoints of shape 1; ${Math.round(failRate * 100)} % of answers fail by a deterministic hash of the request counter, a third each: 500, hang ${hangMs} ms (past the ${timeoutMs} ms timeout) then reset, immediate socket reset; a failed answer is not a delivery; fail_attempts = requests the receiver saw (retry amplification = fail_attempts / fail_delivered), fail_attempts_recorded = webhook_attempts rows`,
          ]
        : ["failure run skipped (--fail-events 0)"]),
      ...(p.timedOut || f?.timedOut
        ? [`TIMED OUT waiting (--wait ${waitMs / 1000} s): main ${p.timedOut}, failure ${f?.timedOut ?? false}`]
        : []),
      ...p.errors.map((e) => `event POST answered (then retried): ${e}`),
      ...(f?.errors ?? []).map((e) => `failure run: event POST answered (then retried): ${e}`),
      ...(rawResult.errors.length ? [`raw baseline errors: ${rawResult.errors.join("; ")}`] : []),
    ],
  };
}
