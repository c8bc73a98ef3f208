import { describe, expect, it } from "vitest";
import { mergePlanTerms, planCreateSchema, planOverridesSchema } from "../../../src/usage/plans.ts";
import { csvField, plainNumber, prefersCsv, reportCsv, reportCsvFilename } from "../../../src/usage/reports.ts";
import type { UsageReport } from "../../../src/usage/schemas.ts";

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

describe("report CSV", () => {
  it("writes plain decimal numbers (no exponent notation)", () => {
    expect(plainNumber(2e-11)).toBe("0.00000000002");
    expect(plainNumber(1.5e-7)).toBe("0.00000015");
    expect(plainNumber(1e21)).toBe("1000000000000000000000");
    expect(plainNumber(1.25e22)).toBe("12500000000000000000000");
    expect(plainNumber(-3e-8)).toBe("-0.00000003");
    expect(plainNumber(0.5)).toBe("0.5");
    expect(plainNumber(42)).toBe("42");
  });

  it("quotes fields per RFC 4180 and defuses spreadsheet formulas", () => {
    expect(csvField("plain")).toBe("plain");
    expect(csvField("a,b")).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField("two\nlines")).toBe('"two\nlines"');
    expect(csvField("cr\rhere")).toBe('"cr\rhere"');
    expect(csvField("=SUM(A1)")).toBe("'=SUM(A1)");
    expect(csvField("+1,2")).toBe(`"'+1,2"`);
    expect(csvField(-1)).toBe("-1");
  });

  const report: UsageReport = {
    reportId: "rpt_1",
    organizationId: "org/with,comma",
    periodStart: "2024-01-01T00:00:00.000Z",
    periodEnd: "2024-02-01T00:00:00.000Z",
    revision: 2,
    asOf: "2024-02-01T00:00:00.000Z",
    summary: { currency: "USD" },
    lineItems: [{ metricType: "api_calls", quantity: 12, included: 10, overage: 2, unitPrice: 0.5, amount: 1 }],
    changes: null,
    generatedAt: "2024-02-01T00:00:00.000Z",
  };

  it("renders a header and one CRLF-terminated row per line item", () => {
    expect(reportCsv(report)).toBe(
      "report_id,organization_id,period_start,period_end,revision,metric_type,quantity,included,overage,unit_price,amount,currency\r\n" +
        'rpt_1,"org/with,comma",2024-01-01T00:00:00.000Z,2024-02-01T00:00:00.000Z,2,api_calls,12,10,2,0.5,1,USD\r\n',
    );
    expect(reportCsv({ ...report, lineItems: [] }).split("\r\n")).toHaveLength(2);
  });

  it("names the download with safe characters only", () => {
    expect(reportCsvFilename(report)).toBe("usage-report_org-with-comma_2024-01-01_r2.csv");
  });

  it("negotiates CSV from Accept, JSON by default", () => {
    expect(prefersCsv(undefined)).toBe(false);
    expect(prefersCsv("*/*")).toBe(false);
    expect(prefersCsv("text/csv")).toBe(true);
    expect(prefersCsv("text/*")).toBe(true);
    expect(prefersCsv("application/json")).toBe(false);
    expect(prefersCsv("application/json, text/csv")).toBe(false);
    expect(prefersCsv("application/json;q=0.5, text/csv")).toBe(true);
    expect(prefersCsv("text/csv;q=0.2, application/json;q=0.9")).toBe(false);
    expect(prefersCsv("text/csv ; q=0, */*")).toBe(false);
  });
});
