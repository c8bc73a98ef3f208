import { describe, expect, it } from "vitest";
import { mergePlanTerms, planCreateSchema, planOverridesSchema } from "../../../src/usage/plans.ts";

describe("plan terms", () => {
  const plan = {
    limits: { api_calls: 100, documents: 10 },
    included: { api_calls: 50 },
    prices: { api_calls: 0.01, storage: 1e-11 },
  };

  it("merges overrides key by key; a null limit is unlimited; lists what is overridden", () => {
    expect(
      mergePlanTerms(plan, {
        limits: { documents: null, teams: 3 },
        included: { storage: 5 },
        prices: { api_calls: 0.02 },
      }),
    ).toEqual({
      limits: { api_calls: 100, teams: 3 },
      included: { api_calls: 50, storage: 5 },
      prices: { api_calls: 0.02, storage: 1e-11 },
      overridden: ["limits.documents", "limits.teams", "included.storage", "prices.api_calls"],
    });
  });

  it("leaves the plan as it is without overrides and never mutates it", () => {
    const copy = structuredClone(plan);
    expect(mergePlanTerms(plan, { limits: {}, included: {}, prices: {} })).toEqual({ ...plan, overridden: [] });
    mergePlanTerms(plan, { limits: { api_calls: null }, included: {}, prices: {} });
    expect(plan).toEqual(copy);
  });

  it("accepts only known metrics and non-negative finite numbers", () => {
    expect(planCreateSchema.safeParse({ id: "p", name: "P", limits: { teams: 2, api_calls: 0 } }).success).toBe(true);
    const bad = planCreateSchema.safeParse({ id: "p", name: "P", limits: { api_calls: 1, mystery: 2 } });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]).toMatchObject({ code: "unrecognized_keys", keys: ["mystery"], path: ["limits"] });
    for (const v of [-1, Number.POSITIVE_INFINITY, Number.NaN, "1", 1e16]) {
      expect(planCreateSchema.safeParse({ id: "p", name: "P", prices: { api_calls: v } }).success, String(v)).toBe(
        false,
      );
    }
    // Only limits may be null (= unlimited) in overrides.
    expect(planOverridesSchema.safeParse({ limits: { api_calls: null } }).success).toBe(true);
    expect(planOverridesSchema.safeParse({ prices: { api_calls: null } }).success).toBe(false);
  });
});
