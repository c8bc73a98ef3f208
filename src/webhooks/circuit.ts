/**
 * Per-endpoint circuit breaker as pure functions over a plain record (the endpoint's Durable
 * Object stores the record; these functions decide). closed → open after `failureThreshold`
 * consecutive failures; open → half_open when the cooldown ends (the object's alarm fires then);
 * half_open → closed after `successThreshold` consecutive successes, → open on any failure. Each
 * re-open doubles the cooldown (capped), so a flapping endpoint is probed less and less often.
 */

/** Breaker states (the seed's `CircuitState.state`). */
export type CircuitStatus = "closed" | "open" | "half_open";

/** Breaker settings. */
export interface CircuitSettings {
  failureThreshold: number;
  successThreshold: number;
  cooldownMs: number;
  /** Longest cooldown after repeated opens (default 1 h). */
  maxCooldownMs?: number;
}

/** What the endpoint object persists. Times are epoch milliseconds. */
export interface CircuitRecord {
  state: CircuitStatus;
  /** Consecutive failures (closed) — or the failure that re-opened it (half-open). */
  failureCount: number;
  /** Consecutive successes while half-open. */
  successCount: number;
  lastFailureAt: number | null;
  openedAt: number | null;
  /** When an open circuit lets a probe through. */
  halfOpenAt: number | null;
  /** Opens since the circuit was last closed; grows the cooldown. */
  openCount: number;
}

/** A state change, for events and logs. */
export interface CircuitTransition {
  from: CircuitStatus;
  to: CircuitStatus;
  reason: string;
}

/** Result of feeding one outcome or tick to the breaker. */
export interface CircuitStep {
  circuit: CircuitRecord;
  transition: CircuitTransition | null;
}

/** A fresh, closed breaker. */
export const closedCircuit: CircuitRecord = Object.freeze({
  state: "closed",
  failureCount: 0,
  successCount: 0,
  lastFailureAt: null,
  openedAt: null,
  halfOpenAt: null,
  openCount: 0,
});

/** Cooldown before the n-th consecutive open lets a probe through: cooldown · 2^(n-1), capped. */
export function cooldownMs(openCount: number, s: CircuitSettings): number {
  return Math.min(s.cooldownMs * 2 ** Math.max(0, openCount - 1), s.maxCooldownMs ?? 3_600_000);
}

function open(c: CircuitRecord, s: CircuitSettings, now: number, reason: string): CircuitStep {
  const openCount = c.openCount + 1;
  return {
    circuit: {
      ...c,
      state: "open",
      openedAt: now,
      halfOpenAt: now + cooldownMs(openCount, s),
      openCount,
      successCount: 0,
      lastFailureAt: now,
    },
    transition: { from: c.state, to: "open", reason },
  };
}

/** Feeds a successful delivery. */
export function recordSuccess(c: CircuitRecord, s: CircuitSettings): CircuitStep {
  if (c.state === "half_open") {
    const successCount = c.successCount + 1;
    if (successCount >= s.successThreshold) {
      return {
        circuit: { ...closedCircuit },
        transition: { from: "half_open", to: "closed", reason: `${successCount} consecutive successes` },
      };
    }
    return { circuit: { ...c, successCount }, transition: null };
  }
  // A success that raced an open (in flight when it opened) does not close it: only probes do.
  if (c.state === "open") return { circuit: c, transition: null };
  return { circuit: { ...c, failureCount: 0 }, transition: null };
}

/** Feeds a failed delivery. */
export function recordFailure(c: CircuitRecord, s: CircuitSettings, now: number): CircuitStep {
  if (c.state === "half_open")
    return open({ ...c, failureCount: c.failureCount + 1 }, s, now, "probe failed while half-open");
  if (c.state === "open") return { circuit: { ...c, lastFailureAt: now }, transition: null };
  const failureCount = c.failureCount + 1;
  if (failureCount >= s.failureThreshold)
    return open({ ...c, failureCount }, s, now, `${failureCount} consecutive failures`);
  return { circuit: { ...c, failureCount, lastFailureAt: now }, transition: null };
}

/** Moves an open breaker to half-open once its cooldown has passed. */
export function tick(c: CircuitRecord, now: number): CircuitStep {
  if (c.state === "open" && c.halfOpenAt !== null && now >= c.halfOpenAt) {
    return {
      circuit: { ...c, state: "half_open", successCount: 0 },
      transition: { from: "open", to: "half_open", reason: "cooldown elapsed" },
    };
  }
  return { circuit: c, transition: null };
}

/** How many deliveries may be in flight now: all (closed), one probe (half-open), none (open). */
export function allowedInFlight(c: CircuitRecord, concurrency: number): number {
  return c.state === "closed" ? concurrency : c.state === "half_open" ? 1 : 0;
}

/** Closes the breaker by hand (`resetCircuit`). */
export function resetCircuit(c: CircuitRecord): CircuitStep {
  return {
    circuit: { ...closedCircuit },
    transition: c.state === "closed" ? null : { from: c.state, to: "closed", reason: "manual reset" },
  };
}

/** The seed's `CircuitState` view of a record. */
export interface CircuitState {
  webhookId: string;
  state: CircuitStatus;
  failureCount: number;
  successCount: number;
  lastFailure?: string;
  openedAt?: string;
  halfOpenAt?: string;
}

/** Builds the seed's `CircuitState` (ISO dates) from a record. */
export function circuitView(webhookId: string, c: CircuitRecord): CircuitState {
  const iso = (t: number | null) => (t === null ? undefined : new Date(t).toISOString());
  return {
    webhookId,
    state: c.state,
    failureCount: c.failureCount,
    successCount: c.successCount,
    ...(c.lastFailureAt !== null ? { lastFailure: iso(c.lastFailureAt) } : {}),
    ...(c.state !== "closed" && c.openedAt !== null ? { openedAt: iso(c.openedAt) } : {}),
    ...(c.state !== "closed" && c.halfOpenAt !== null ? { halfOpenAt: iso(c.halfOpenAt) } : {}),
  };
}
