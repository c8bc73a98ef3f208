import { describe, expect, it } from "vitest";
import { decimalAdd, decimalMul, decimalRound, decimalSub, decimalSum } from "../../../src/usage/decimal.ts";
import { admit, crossedThresholds } from "../../../src/usage/quota.ts";
import { batchDeltas, driftOf, reconciled } from "../../../src/usage/counters.ts";
import { valueFromSums } from "../../../src/usage/metrics.ts";

describe("decimal quantities", () => {
  it("adds the decimals that were sent, not their binary approximations", () => {
    expect(decimalSum(Array.from({ length: 10 }, () => 0.1))).toBe(1);
    expect(decimalAdd(0.1, 0.2)).toBe(0.3);
    expect(decimalSub(1, 0.9)).toBe(0.1);
    expect(decimalSum([1e-7, 2e-7, 1e21, -1e21])).toBe(3e-7); // exponent forms, both ways
    expect(decimalSum([-0.1, -0.2])).toBe(-0.3);
    expect(decimalSum([])).toBe(0);
    expect(decimalSum([3, 4, 2 ** 52])).toBe(2 ** 52 + 7); // integers: the plain path
  });

  it("is the nearest double of the exact sum past 15 significant digits", () => {
    // 2^53 + 1 has no double; the exact sum rounds once (to even), not step by step.
    expect(decimalSum([2 ** 53, 1, 1])).toBe(2 ** 53 + 2);
    expect(decimalSum([1.1, 2 ** 53])).toBe(2 ** 53 + 2);
  });

  it("multiplies and rounds on the decimal", () => {
    expect(decimalMul(0.7, 0.1)).toBe(0.07);
    expect(decimalMul(3, 0.1)).toBe(0.3);
    expect(decimalMul(1e15, 1e15)).toBe(1e30);
    expect(decimalRound(1.005, 2)).toBe(1.01);
    expect(decimalRound(-1.005, 2)).toBe(-1.01);
    expect(decimalRound(0.07, 2)).toBe(0.07);
    expect(decimalRound(2.5, 0)).toBe(3);
    expect(() => decimalSum([Number.NaN])).toThrow(RangeError);
  });

  it("keeps the counters, admission and thresholds exact", () => {
    const tenths = Array.from({ length: 10 }, () => ({
      eventType: "api.call",
      quantity: 0.1,
      occurredAt: 5,
      position: 10,
    }));
    const d = batchDeltas(tenths, { start: new Date(0), end: new Date(10) }, { xmin: 1, xmax: 1, running: [] });
    expect(d.sums).toEqual({ "api.call": 1 });
    expect(d.reservations).toEqual({ api_calls: 1 });
    expect(reconciled({ sums: { a: 0.1 }, toEnd: {} }, { periodSums: { a: 0.2 }, allTimeSums: {} }).sums).toEqual({
      a: 0.3,
    });
    expect(driftOf({ a: 0.3 }, { a: decimalAdd(0.1, 0.2) })).toEqual({});
    expect(driftOf({ a: 0.1 }, { a: 0.3 })).toEqual({ a: 0.2 });
    expect(valueFromSums("storage", { "storage.upload": 0.3, "storage.delete": 0.1 })).toBe(0.2);
    expect(admit(0.7, 0.2, 1, 0.1)).toEqual({ allowed: true, remaining: 0, limit: 1 });
    expect(admit(0.7, 0.2, 1, 0.2)).toEqual({ allowed: false, remaining: 0.1, limit: 1 });
    expect(crossedThresholds(0.5, 0.57, 1, [57])).toEqual([57]); // 0.57 × 100 is 57, not 56.99999999999999
    expect(crossedThresholds(0.5, 0.56, 1, [57])).toEqual([]);
  });
});
