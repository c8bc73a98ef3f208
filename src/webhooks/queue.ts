/**
 * The delivery queue of one endpoint: what a pending delivery (job) is, the storage interface the
 * endpoint's Durable Object implements over SQLite, and the retry policy — exponential backoff with
 * jitter, `Retry-After`, and what each outcome means for the delivery. Pure functions only.
 */

/** A pending delivery held by the endpoint object. */
export interface Job {
  /** Delivery id = the `webhook-id` header, stable across retries. */
  deliveryId: string;
  eventId: string;
  eventType: string;
  /** The exact request body (signed as is). */
  body: string;
  /** Attempts made so far, in all (the attempt history's numbering continues across replays). */
  attempts: number;
  /**
   * `attempts` when the current retry schedule started: 0, or the total at the last replay
   * (`retryDelivery`, `recoverFailed`). Backoff and the attempt limit count from here.
   */
  scheduleBase: number;
  /** Epoch ms when the next attempt is due. */
  dueAt: number;
  /** Epoch ms when the delivery was created (enqueue→delivered latency). */
  createdAt: number;
  /** The endpoint's gap-free number of this delivery (`webhook-sequence`); absent on deliveries made before it existed. */
  sequence?: number;
}

/** One attempt, as the endpoint object keeps it until Postgres has it. */
export interface AttemptRecord {
  job: Job;
  /** 1-based number of this attempt in the delivery's whole history (continues across replays). */
  attemptNumber: number;
  attemptedAt: number;
  outcome: AttemptOutcome;
  decision: Decision;
}

/**
 * Job storage of one endpoint (SQLite in the Durable Object; an array in unit tests), with the
 * buffer of attempt results not yet in Postgres.
 */
export interface JobStore {
  /**
   * Adds jobs whose delivery id is not held yet; returns how many were new. A held job with an
   * older schedule (`scheduleBase` lower: the delivery was replayed since) takes the new one. A job
   * whose delivery already ended here with a later attempt (its result maybe not in Postgres yet,
   * so a sweep re-handed it) is ignored.
   */
  add(jobs: readonly Job[]): number;
  /** Due jobs (dueAt ≤ now), earliest first, except those in `exclude` (in flight). */
  due(now: number, limit: number, exclude?: ReadonlySet<string>): Job[];
  /** One job by delivery id. */
  get(deliveryId: string): Job | undefined;
  /** The job next in sequence (lowest `sequence`, then oldest): the head in ordered mode. */
  head(): Job | undefined;
  /**
   * Applies attempts in one local transaction: each decision to its job (rescheduled or removed)
   * and each result into the buffer that is flushed to Postgres. A crash before it repeats the
   * attempts; after it, the buffer still has them.
   */
  settle(records: readonly AttemptRecord[]): void;
  /** Removes every job; returns how many there were. */
  clear(): number;
  /** Earliest dueAt, or null when empty. */
  nextDue(): number | null;
  /** Number of jobs held. */
  size(): number;
  /**
   * Changes when jobs a run may have read changed under it: on `clear`, and when `add` gave a held
   * job a new schedule (the run reads its list again at once).
   */
  version(): number;
  /**
   * Changes when jobs a run has not read may have appeared: `add` stored a new one, `settle`
   * rescheduled one (the run reads them when its list has nothing due left).
   */
  additions(): number;
}

/** Retry settings (config `WEBHOOK_*`). */
export interface RetrySettings {
  baseMs: number;
  capMs: number;
  maxAttempts: number;
  /** ±fraction of jitter (default 0.2). */
  jitter?: number;
}

/**
 * Delay after the n-th failed attempt: base · 2^(n-1) (1 s, 2 s, 4 s … by default), capped, then
 * spread by ±jitter so endpoints recovering from an outage are not hit in lockstep.
 */
export function backoffMs(attempts: number, s: RetrySettings, random: () => number = Math.random): number {
  const raw = Math.min(s.baseMs * 2 ** Math.max(0, attempts - 1), s.capMs);
  const j = s.jitter ?? 0.2;
  return Math.max(0, Math.round(raw * (1 - j + 2 * j * random())));
}

/**
 * Parses `Retry-After` (delta-seconds or an HTTP date) into milliseconds from `now`; null if
 * absent or malformed.
 */
export function parseRetryAfter(value: string | null | undefined, now: number): number | null {
  if (!value) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/** Why an attempt failed, for the health metrics' error breakdown. */
export type ErrorType =
  | "timeout"
  | "connection"
  | "http_3xx"
  | "http_4xx"
  | "http_5xx"
  | "ssrf_blocked"
  | "invalid_response";

/** What one HTTP attempt produced. */
export interface AttemptOutcome {
  success: boolean;
  statusCode?: number;
  responseTimeMs: number;
  /** First 16 KiB of the response body. */
  responseBody?: string;
  /** The request headers sent, signature (and credentials) redacted. */
  requestHeaders?: Record<string, string>;
  /** The response headers (at most 50, values cut at 1 KiB). */
  responseHeaders?: Record<string, string>;
  errorType?: ErrorType;
  error?: string;
  /** The endpoint's `Retry-After`, in ms. */
  retryAfterMs?: number | null;
}

/** Classifies an HTTP status: 2xx success, 3xx (redirects are not followed) and the rest failures. */
export function classifyStatus(status: number): { success: boolean; errorType?: ErrorType } {
  if (status >= 200 && status < 300) return { success: true };
  if (status >= 300 && status < 400) return { success: false, errorType: "http_3xx" };
  if (status >= 400 && status < 500) return { success: false, errorType: "http_4xx" };
  if (status >= 500 && status < 600) return { success: false, errorType: "http_5xx" };
  return { success: false, errorType: "invalid_response" };
}

/** What happens to a delivery after an attempt. */
export type Decision =
  | { kind: "succeeded" }
  | { kind: "retry"; at: number }
  /** Retries exhausted (or the URL is now refused): ends `failed`, recoverable by hand. */
  | { kind: "failed" }
  /** 410 Gone: the endpoint asked to be removed; the webhook is disabled. */
  | { kind: "disable" };

/**
 * Which attempt of the current retry schedule the `attemptNumber`-th attempt of a job is (1-based):
 * a replayed delivery starts over at 1 while its history keeps counting.
 */
export function schedulePosition(job: Pick<Job, "scheduleBase">, attemptNumber: number): number {
  return attemptNumber - job.scheduleBase;
}

/**
 * Decides the delivery's fate after the `attempts`-th attempt of its current schedule (see
 * {@link schedulePosition}). `Retry-After` on 429/503 is honoured but clamped to [1 s, cap] so an
 * endpoint can neither hammer-loop nor park us for a day.
 */
export function decide(
  outcome: AttemptOutcome,
  attempts: number,
  s: RetrySettings,
  now: number,
  random: () => number = Math.random,
): Decision {
  if (outcome.success) return { kind: "succeeded" };
  if (outcome.statusCode === 410) return { kind: "disable" };
  if (outcome.errorType === "ssrf_blocked") return { kind: "failed" };
  if (attempts >= s.maxAttempts) return { kind: "failed" };
  let delay = backoffMs(attempts, s, random);
  if ((outcome.statusCode === 429 || outcome.statusCode === 503) && outcome.retryAfterMs != null) {
    delay = Math.max(delay, Math.min(Math.max(outcome.retryAfterMs, 1_000), s.capMs));
  }
  return { kind: "retry", at: now + delay };
}

/** A buffered attempt result: its place in the buffer and the record. */
export interface BufferedResult<T = AttemptRecord> {
  id: number;
  record: T;
}

/** The flush side of the result buffer. */
export interface ResultBuffer<T = AttemptRecord> {
  /** Results not yet acknowledged by Postgres, oldest first. */
  unflushed(limit: number): BufferedResult<T>[];
  /** Marks results as in Postgres. */
  markFlushed(ids: readonly number[]): void;
}

const sequenceOrder = (a: Job, b: Job) =>
  (a.sequence ?? Number.MAX_SAFE_INTEGER) - (b.sequence ?? Number.MAX_SAFE_INTEGER) || a.createdAt - b.createdAt;

/** An in-memory {@link JobStore} and result buffer (unit tests, and the shape the SQLite one must match). */
export function memoryJobStore(): JobStore & ResultBuffer & { results: (BufferedResult & { flushed: boolean })[] } {
  const jobs = new Map<string, Job>();
  const results: (BufferedResult & { flushed: boolean })[] = [];
  let version = 0;
  let additions = 0;
  const sorted = () => [...jobs.values()].sort((a, b) => a.dueAt - b.dueAt || a.createdAt - b.createdAt);
  const endedAfter = (j: Job) =>
    results.some(
      (r) =>
        r.record.job.deliveryId === j.deliveryId &&
        r.record.decision.kind !== "retry" &&
        r.record.attemptNumber > j.attempts,
    );
  return {
    results,
    add(list) {
      let n = 0;
      for (const j of list) {
        const held = jobs.get(j.deliveryId);
        if (endedAfter(j)) continue;
        if (!held) n++;
        if (held && held.scheduleBase < j.scheduleBase) version++;
        if (!held) additions++;
        if (!held || held.scheduleBase < j.scheduleBase) jobs.set(j.deliveryId, { ...j });
      }
      return n;
    },
    due: (now, limit, exclude) =>
      sorted()
        .filter((j) => j.dueAt <= now && !exclude?.has(j.deliveryId))
        .slice(0, limit),
    get: (id) => jobs.get(id),
    head: () => [...jobs.values()].sort(sequenceOrder)[0],
    settle(records) {
      for (const r of records) {
        results.push({ id: results.length + 1, record: r, flushed: false });
        const j = jobs.get(r.job.deliveryId);
        if (!j) continue;
        if (r.decision.kind === "retry") {
          jobs.set(j.deliveryId, { ...j, dueAt: r.decision.at, attempts: r.attemptNumber });
          additions++;
        } else jobs.delete(j.deliveryId);
      }
    },
    unflushed: (limit) =>
      results
        .filter((r) => !r.flushed)
        .slice(0, limit)
        .map(({ id, record }) => ({ id, record })),
    markFlushed(ids) {
      for (const r of results) if (ids.includes(r.id)) r.flushed = true;
    },
    clear() {
      version++;
      const n = jobs.size;
      jobs.clear();
      return n;
    },
    nextDue: () => sorted()[0]?.dueAt ?? null,
    size: () => jobs.size,
    version: () => version,
    additions: () => additions,
  };
}
