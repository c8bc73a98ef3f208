import type { CircuitRecord, CircuitSettings, CircuitTransition } from "./circuit.ts";
import { allowedInFlight, recordFailure, recordSuccess, tick } from "./circuit.ts";
import type { Endpoint } from "./attempt.ts";
import type { AttemptOutcome, Decision, Job, JobStore, RetrySettings } from "./queue.ts";
import { decide, schedulePosition } from "./queue.ts";

/**
 * One run of an endpoint's queue (its Durable Object's alarm): advance the breaker, take due jobs
 * in waves of at most the allowed in-flight count (all while closed, one probe while half-open,
 * none while open), attempt them in parallel, record the outcomes durably, then apply them to the
 * queue and the breaker. Storage, clock and I/O are injected, so this is tested without workerd.
 */

/** One attempt as recorded in Postgres. */
export interface AttemptRecord {
  job: Job;
  /** 1-based number of this attempt in the delivery's whole history (continues across replays). */
  attemptNumber: number;
  attemptedAt: number;
  outcome: AttemptOutcome;
  decision: Decision;
}

/** What a run needs. */
export interface RunDeps {
  jobs: JobStore;
  circuit: { get(): CircuitRecord; set(c: CircuitRecord): void };
  /** The endpoint now: null when deleted, "inactive" when disabled (its jobs are held). */
  loadEndpoint(): Promise<Endpoint | null | "inactive">;
  attempt(job: Job, endpoint: Endpoint): Promise<AttemptOutcome>;
  /** Persists attempts (history, delivery status, stats) before the queue forgets them. */
  record(records: AttemptRecord[]): Promise<void>;
  /** Breaker state changes (events). */
  onTransition(t: CircuitTransition, circuit: CircuitRecord): Promise<void>;
  /** The endpoint answered 410 Gone. */
  onGone(): Promise<void>;
  settings: { retry: RetrySettings; circuit: CircuitSettings; concurrency: number; maxRunMs: number };
  now(): number;
  random?: () => number;
}

/** Outcome of a run. */
export interface RunResult {
  processed: number;
  succeeded: number;
  failed: number;
  /** When the run should happen again (epoch ms; see {@link nextWake}), or null for no alarm. */
  nextWakeAt: number | null;
}

/** Applies breaker steps and reports transitions. */
async function step(
  deps: RunDeps,
  fn: (c: CircuitRecord) => { circuit: CircuitRecord; transition: CircuitTransition | null },
) {
  const { circuit, transition } = fn(deps.circuit.get());
  deps.circuit.set(circuit);
  if (transition) await deps.onTransition(transition, circuit);
}

/**
 * What the endpoint was found to be: `active`, `inactive` (disabled: its jobs are held) or `deleted`.
 * A run that did not load it (breaker open, nothing due) assumes `active`.
 */
export type EndpointState = "active" | "inactive" | "deleted";

/**
 * When to wake next (epoch ms), or null for no alarm. Held jobs must cost nothing: a disabled or
 * deleted endpoint sleeps until something wakes it (re-enabling and `resetCircuit` re-arm through
 * the object's RPC), an open breaker until its half-open time (or a job due after it), a closed or
 * half-open one until the earliest job is due.
 */
export function nextWake(jobs: JobStore, circuit: CircuitRecord, endpoint: EndpointState = "active"): number | null {
  if (endpoint !== "active" || jobs.size() === 0) return null;
  if (circuit.state === "open" && circuit.halfOpenAt !== null) return Math.max(circuit.halfOpenAt, jobs.nextDue() ?? 0);
  return jobs.nextDue();
}

/** Runs due jobs; see the module comment. `only` restricts the run to one delivery (manual attempts). */
export async function runDue(deps: RunDeps, only?: string): Promise<RunResult & { records: AttemptRecord[] }> {
  const result = {
    processed: 0,
    succeeded: 0,
    failed: 0,
    nextWakeAt: null as number | null,
    records: [] as AttemptRecord[],
  };
  const started = deps.now();
  await step(deps, (c) => tick(c, started));
  let state: EndpointState = "active";

  if (deps.circuit.get().state !== "open" && deps.jobs.size() > 0) {
    const endpoint = await deps.loadEndpoint();
    if (endpoint === null) {
      state = "deleted";
      deps.jobs.clear(); // its deliveries were cancelled in Postgres
    } else if (endpoint === "inactive") {
      state = "inactive";
    } else {
      let gone = false;
      while (!gone && deps.now() - started < deps.settings.maxRunMs) {
        const allowed = allowedInFlight(deps.circuit.get(), deps.settings.concurrency);
        if (allowed === 0) break;
        const now = deps.now();
        const wave = only ? [deps.jobs.get(only)].filter((j): j is Job => !!j) : deps.jobs.due(now, allowed);
        if (wave.length === 0) break;
        const outcomes = await Promise.all(wave.map((job) => deps.attempt(job, endpoint)));
        const attemptedAt = deps.now();
        const records = wave.map((job, i): AttemptRecord => {
          const outcome = outcomes[i]!;
          const attemptNumber = job.attempts + 1;
          return {
            job,
            attemptNumber,
            attemptedAt,
            outcome,
            decision: decide(
              outcome,
              schedulePosition(job, attemptNumber),
              deps.settings.retry,
              attemptedAt,
              deps.random,
            ),
          };
        });
        // Durable first: if recording fails, the jobs stay due and are attempted again (at-least-once).
        await deps.record(records);
        for (const r of records) {
          if (r.decision.kind === "retry") deps.jobs.reschedule(r.job.deliveryId, r.decision.at, r.attemptNumber);
          else deps.jobs.remove(r.job.deliveryId);
          result.processed += 1;
          if (r.outcome.success) {
            result.succeeded += 1;
            await step(deps, (c) => recordSuccess(c, deps.settings.circuit));
          } else {
            result.failed += 1;
            await step(deps, (c) => recordFailure(c, deps.settings.circuit, attemptedAt));
          }
          if (r.decision.kind === "disable") gone = true;
        }
        result.records.push(...records);
        if (gone) {
          await deps.onGone();
          state = "inactive";
        }
        if (only) break;
      }
    }
  }
  result.nextWakeAt = nextWake(deps.jobs, deps.circuit.get(), state);
  return result;
}
