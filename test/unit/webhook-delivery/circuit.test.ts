import { describe, expect, it } from "vitest";
import type { CircuitRecord, CircuitSettings } from "../../../src/webhooks/circuit.ts";
import {
  allowedInFlight,
  circuitView,
  closedCircuit,
  cooldownMs,
  recordFailure,
  recordSuccess,
  resetCircuit,
  tick,
} from "../../../src/webhooks/circuit.ts";

const s: CircuitSettings = { failureThreshold: 3, successThreshold: 2, cooldownMs: 60_000, maxCooldownMs: 600_000 };
const fail = (c: CircuitRecord, now = 1_000) => recordFailure(c, s, now);

function openAt(now: number): CircuitRecord {
  let c = closedCircuit;
  for (let i = 0; i < 3; i++) c = fail(c, now).circuit;
  return c;
}

describe("circuit breaker transitions", () => {
  it("stays closed below the failure threshold and counts consecutive failures", () => {
    const a = fail(closedCircuit);
    const b = fail(a.circuit);
    expect(b.circuit).toMatchObject({ state: "closed", failureCount: 2 });
    expect(a.transition).toBeNull();
    expect(b.transition).toBeNull();
  });

  it("closed → open at the threshold, with the cooldown ahead", () => {
    let c = closedCircuit;
    c = fail(c).circuit;
    c = fail(c).circuit;
    const step = fail(c, 5_000);
    expect(step.transition).toEqual({ from: "closed", to: "open", reason: "3 consecutive failures" });
    expect(step.circuit).toMatchObject({ state: "open", openedAt: 5_000, halfOpenAt: 65_000, openCount: 1 });
  });

  it("a success resets the consecutive failure count while closed", () => {
    const c = recordSuccess(fail(fail(closedCircuit).circuit).circuit, s);
    expect(c.circuit.failureCount).toBe(0);
    expect(fail(c.circuit).circuit.state).toBe("closed");
  });

  it("open → half_open only once the cooldown has passed", () => {
    const c = openAt(0);
    expect(tick(c, 59_999).transition).toBeNull();
    const step = tick(c, 60_000);
    expect(step.transition).toEqual({ from: "open", to: "half_open", reason: "cooldown elapsed" });
    expect(step.circuit.state).toBe("half_open");
  });

  it("half_open → closed after the success threshold", () => {
    const half = tick(openAt(0), 60_000).circuit;
    const one = recordSuccess(half, s);
    expect(one.circuit).toMatchObject({ state: "half_open", successCount: 1 });
    expect(one.transition).toBeNull();
    const two = recordSuccess(one.circuit, s);
    expect(two.transition).toEqual({ from: "half_open", to: "closed", reason: "2 consecutive successes" });
    expect(two.circuit).toEqual(closedCircuit);
  });

  it("half_open → open on any failure, with a doubled cooldown", () => {
    const half = tick(openAt(0), 60_000).circuit;
    const step = fail(recordSuccess(half, s).circuit, 70_000);
    expect(step.transition?.to).toBe("open");
    expect(step.circuit).toMatchObject({ state: "open", openCount: 2, halfOpenAt: 70_000 + 120_000, successCount: 0 });
  });

  it("caps the growing cooldown", () => {
    expect([1, 2, 3, 4, 5, 10].map((n) => cooldownMs(n, s))).toEqual([
      60_000, 120_000, 240_000, 480_000, 600_000, 600_000,
    ]);
    expect(cooldownMs(30, { ...s, maxCooldownMs: undefined })).toBe(3_600_000);
  });

  it("a success that was in flight when it opened does not close it", () => {
    const c = openAt(0);
    expect(recordSuccess(c, s)).toEqual({ circuit: c, transition: null });
  });

  it("failures while open only update lastFailure", () => {
    const c = openAt(0);
    const step = fail(c, 9_000);
    expect(step.transition).toBeNull();
    expect(step.circuit).toMatchObject({ state: "open", lastFailureAt: 9_000, halfOpenAt: c.halfOpenAt });
  });

  it("limits in-flight deliveries: all closed, one probe half-open, none open", () => {
    expect(allowedInFlight(closedCircuit, 8)).toBe(8);
    expect(allowedInFlight(tick(openAt(0), 60_000).circuit, 8)).toBe(1);
    expect(allowedInFlight(openAt(0), 8)).toBe(0);
  });

  it("resets by hand from any state, reporting a transition only when it was not closed", () => {
    expect(resetCircuit(openAt(0))).toEqual({
      circuit: closedCircuit,
      transition: { from: "open", to: "closed", reason: "manual reset" },
    });
    expect(resetCircuit(closedCircuit).transition).toBeNull();
    expect(resetCircuit(tick(openAt(0), 60_000).circuit).transition?.from).toBe("half_open");
  });

  it("renders the seed's CircuitState with ISO dates", () => {
    expect(circuitView("wh_1", closedCircuit)).toEqual({
      webhookId: "wh_1",
      state: "closed",
      failureCount: 0,
      successCount: 0,
    });
    const v = circuitView("wh_1", openAt(Date.parse("2026-01-01T00:00:00Z")));
    expect(v).toMatchObject({
      state: "open",
      failureCount: 3,
      openedAt: "2026-01-01T00:00:00.000Z",
      halfOpenAt: "2026-01-01T00:01:00.000Z",
      lastFailure: "2026-01-01T00:00:00.000Z",
    });
  });
});
