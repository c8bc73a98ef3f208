import type { CircuitRecord, CircuitSettings, CircuitTransition } from "./circuit.ts";
import { allowedInFlight, recordFailure, recordSuccess, tick } from "./circuit.ts";
import type { Endpoint } from "./attempt.ts";
import { nextSlotAt, recordStart, slotsFree } from "./pacing.ts";
import type { AttemptOutcome, AttemptRecord, Job, JobStore, RetrySettings } from "./queue.ts";
import { decide, schedulePosition } from "./queue.ts";
import { circuitOf, retryOf } from "./settings.ts";

export type { AttemptRecord } from "./queue.ts";

/**
 * One run of an endpoint's queue (its Durable Object's alarm): advance the breaker, then keep up
 * to the allowed number of attempts in flight — all while closed, one probe while half-open, none
 * while open; one, strictly in sequence order, in ordered mode; no more starts per second than the
 * endpoint's rate limit — starting the next due job as each one ends. Each outcome is settled in
 * the object's storage at once (job rescheduled or removed, result buffered for Postgres), then fed
 * to the breaker and the auto-disable clock. Storage, clock and I/O are injected, so this is
 * tested without workerd.
 */

/** How many jobs a run reads at a time. */
const DUE_READ = 64;

/** Why an endpoint must be disabled. */
export type DisableReason = { cause: "gone" } | { cause: "failing"; since: number };

/** What a run needs. */
export interface RunDeps {
  jobs: JobStore;
  circuit: { get(): CircuitRecord; set(c: CircuitRecord): void };
  /** The endpoint now: null when deleted, "inactive" when disabled (its jobs are held). */
  loadEndpoint(): Promise<Endpoint | null | "inactive">;
  attempt(job: Job, endpoint: Endpoint): Promise<AttemptOutcome>;
  /** After attempts were settled locally: the object flushes them to Postgres in the background. */
  settled?(records: AttemptRecord[]): void;
  /** Breaker state changes (events). */
  onTransition(t: CircuitTransition, circuit: CircuitRecord): Promise<void>;
  /** The endpoint answered 410 Gone, or every attempt failed for the auto-disable period. */
  onDisable(reason: DisableReason): Promise<void>;
  /** Since when every attempt failed (epoch ms; null after a success): the auto-disable clock. */
  failing?: { get(): number | null; set(at: number | null): void };
  /** Start times of recent attempts (the rate limit's window). */
  pacing?: { get(): number[]; set(starts: number[]): void };
  /** Global defaults; an endpoint's own `settings` win. */
  settings: {
    retry: RetrySettings;
    circuit: CircuitSettings;
    concurrency: number;
    maxRunMs: number;
    rateLimitPerSecond?: number;
    disableAfterFailingMs?: number;
  };
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

/** Options of {@link nextWake}. */
export interface WakeOptions {
  /** Ordered mode: only the head of the sequence may go, so its due time decides. */
  ordered?: boolean;
  /** Not before this (epoch ms): the rate limit's next free slot. */
  notBefore?: number | null;
}

/**
 * When to wake next (epoch ms), or null for no alarm. Held jobs must cost nothing: a disabled or
 * deleted endpoint sleeps until something wakes it (re-enabling and `resetCircuit` re-arm through
 * the object's RPC), an open breaker until its half-open time (or a job due after it), a closed or
 * half-open one until the earliest job is due (in ordered mode: the head), a rate-limited one
 * until its next slot.
 */
export function nextWake(
  jobs: JobStore,
  circuit: CircuitRecord,
  endpoint: EndpointState = "active",
  options: WakeOptions = {},
): number | null {
  if (endpoint !== "active" || jobs.size() === 0) return null;
  const due = options.ordered ? (jobs.head()?.dueAt ?? null) : jobs.nextDue();
  if (due === null) return null;
  let at = circuit.state === "open" && circuit.halfOpenAt !== null ? Math.max(circuit.halfOpenAt, due) : due;
  if (options.notBefore != null) at = Math.max(at, options.notBefore);
  return at;
}

/** The settings a run applies: the endpoint's own, else the global defaults. */
function runSettings(deps: RunDeps, endpoint: Endpoint) {
  const s = endpoint.settings;
  return {
    retry: s ? retryOf(s) : deps.settings.retry,
    circuit: s ? circuitOf(s) : deps.settings.circuit,
    concurrency: deps.settings.concurrency,
    maxRunMs: deps.settings.maxRunMs,
    rate: s ? s.rateLimitPerSecond : (deps.settings.rateLimitPerSecond ?? 0),
    ordered: s?.ordered ?? false,
    disableAfterFailingMs: s ? s.disableAfterFailingMs : (deps.settings.disableAfterFailingMs ?? 0),
  };
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
  let ordered = false;
  // Written from the attempts' callbacks (an object, so control-flow narrowing does not hide it).
  const run = {
    stop: false,
    onlyTaken: false,
    failure: undefined as unknown,
    disable: null as DisableReason | null,
    notBefore: null as number | null,
  };

  if (deps.circuit.get().state !== "open" && deps.jobs.size() > 0) {
    const endpoint = await deps.loadEndpoint();
    if (endpoint === null) {
      state = "deleted";
      deps.jobs.clear(); // its deliveries were cancelled in Postgres
    } else if (endpoint === "inactive") {
      state = "inactive";
    } else {
      const s = runSettings(deps, endpoint);
      ordered = s.ordered;
      const inFlight = new Map<string, Promise<void>>();
      // The next 64 jobs by due time (due or not, in flight excluded), read in one query and taken
      // one by one as they fall due. Read again at once when listed jobs changed (`version`); when
      // none of them is due, only if the read was full or jobs were added or rescheduled since —
      // so neither a hand-off mid-run nor an attempt's end costs a read of its own.
      let local: Job[] = [];
      let localVersion = -1;
      let localAdditions = -1;
      let localFull = true;

      const settle = async (job: Job, outcome: AttemptOutcome) => {
        const attemptedAt = deps.now();
        const attemptNumber = job.attempts + 1;
        const record: AttemptRecord = {
          job,
          attemptNumber,
          attemptedAt,
          outcome,
          decision: decide(outcome, schedulePosition(job, attemptNumber), s.retry, attemptedAt, deps.random),
        };
        // Durable first: from here on a crash cannot lose the attempt (the buffer has it).
        deps.jobs.settle([record]);
        deps.settled?.([record]);
        result.records.push(record);
        result.processed += 1;
        if (outcome.success) {
          result.succeeded += 1;
          deps.failing?.set(null);
          await step(deps, (c) => recordSuccess(c, s.circuit));
        } else {
          result.failed += 1;
          const since = deps.failing?.get() ?? null;
          if (since === null) deps.failing?.set(attemptedAt);
          else if (s.disableAfterFailingMs > 0 && attemptedAt - since >= s.disableAfterFailingMs)
            run.disable ??= { cause: "failing", since };
          await step(deps, (c) => recordFailure(c, s.circuit, attemptedAt));
        }
        if (record.decision.kind === "disable") run.disable = { cause: "gone" };
        if (run.disable) run.stop = true;
      };

      const next = (now: number): Job | undefined => {
        if (only) {
          if (run.onlyTaken) return undefined;
          run.onlyTaken = true;
          return deps.jobs.get(only);
        }
        if (ordered) {
          const head = deps.jobs.head();
          return head && head.dueAt <= now && !inFlight.has(head.deliveryId) ? head : undefined;
        }
        const nothingDue = local.length === 0 || local[0]!.dueAt > now;
        if (
          localVersion !== deps.jobs.version() ||
          (nothingDue && (localFull || localAdditions !== deps.jobs.additions()))
        ) {
          localVersion = deps.jobs.version();
          localAdditions = deps.jobs.additions();
          local = deps.jobs.due(Number.MAX_SAFE_INTEGER, DUE_READ, new Set(inFlight.keys()));
          localFull = local.length === DUE_READ;
        }
        return local[0] && local[0].dueAt <= now ? local.shift() : undefined;
      };

      // Fills the free slots; each attempt's end calls it again (a sliding window, not waves).
      const launch = () => {
        while (!run.stop) {
          const now = deps.now();
          if (!only && now - started >= s.maxRunMs) return;
          let allowed = allowedInFlight(deps.circuit.get(), s.concurrency) - inFlight.size;
          if (ordered && !only) allowed = Math.min(allowed, 1 - inFlight.size);
          if (allowed <= 0) return;
          const job = next(now);
          if (!job) return;
          if (s.rate > 0 && !only && deps.pacing) {
            const starts = deps.pacing.get();
            if (slotsFree(starts, now, s.rate) === 0) {
              run.notBefore = nextSlotAt(starts, now, s.rate);
              return;
            }
            deps.pacing.set(recordStart(starts, now, s.rate));
          }
          const id = job.deliveryId;
          const attempt = deps
            .attempt(job, endpoint)
            .then((outcome) => settle(job, outcome))
            .catch((err: unknown) => {
              run.failure ??= err;
              run.stop = true;
            })
            .finally(() => inFlight.delete(id));
          inFlight.set(id, attempt);
        }
      };

      for (;;) {
        launch();
        if (inFlight.size === 0) break;
        await Promise.race(inFlight.values());
      }
      if (run.failure !== undefined) throw run.failure;
      if (run.disable) {
        await deps.onDisable(run.disable);
        state = "inactive";
      }
    }
  }
  result.nextWakeAt = nextWake(deps.jobs, deps.circuit.get(), state, { ordered, notBefore: run.notBefore });
  return result;
}
