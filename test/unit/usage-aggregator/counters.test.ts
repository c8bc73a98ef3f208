import { describe, expect, it } from "vitest";
import { migrateSqlite } from "../../../src/platform/sqlite-schema.ts";
import { crossings, driftOf, reconciled } from "../../../src/usage/counters.ts";

describe("organization object counters", () => {
  it("reconciles to the base plus what was applied beyond its snapshot, gauges from gauge types only", () => {
    const next = reconciled(
      { sums: { "api.call": 10 }, toEnd: { "storage.upload": 500, "api.call": 99 } },
      {
        periodSums: { "api.call": 2, "document.viewed": 1 },
        allTimeSums: { "storage.upload": 5, "document.viewed": 1 },
      },
    );
    expect(next).toEqual({ sums: { "api.call": 12, "document.viewed": 1 }, gauges: { "storage.upload": 505 } });
  });

  it("reports drift as the non-zero differences only", () => {
    expect(driftOf({ a: 1, b: 2 }, { a: 1, b: 5, c: -1 })).toEqual({ b: 3, c: -1 });
    expect(driftOf({ a: 1 }, { a: 1 })).toEqual({});
  });

  it("keys each crossing once per subscription or metric and period", () => {
    const plan = { id: "p", limits: { api_calls: 10 }, included: {}, prices: {} };
    const subs = [
      { id: "s50", metricType: "api_calls", threshold: 50, notificationChannels: ["in_app"] },
      { id: "s90", metricType: "api_calls", threshold: 90, notificationChannels: ["in_app"] },
      { id: "other", metricType: "storage", threshold: 50, notificationChannels: ["in_app"] },
    ];
    const period = new Date(Date.UTC(2024, 4, 1));
    const zero = { api_calls: 0, storage: 0, documents: 0, collaborators: 0 };
    const found = crossings(zero, { ...zero, api_calls: 11 }, plan, subs, period);
    expect(found.map((c) => c.key)).toEqual([
      `threshold:s50:${period.toISOString()}`,
      `threshold:s90:${period.toISOString()}`,
      `exceeded:api_calls:${period.toISOString()}`,
    ]);
    expect(crossings({ ...zero, api_calls: 6 }, { ...zero, api_calls: 8 }, plan, subs, period)).toEqual([]);
  });
});

describe("Durable Object SQLite schema versions", () => {
  /** A stand-in for ctx.storage that records statements and keeps the version row. */
  const fakeStorage = () => {
    const ran: string[] = [];
    let version: number | undefined;
    return {
      ran,
      storage: {
        sql: {
          exec(query: string, ...bindings: unknown[]) {
            ran.push(query);
            if (query.startsWith("select version"))
              return { toArray: () => (version === undefined ? [] : [{ version }]) };
            if (query.startsWith("insert into _schema")) version = 0;
            if (query.startsWith("update _schema")) version = bindings[0] as number;
            return { toArray: () => [] };
          },
        },
        transactionSync: <T>(fn: () => T) => fn(),
      },
    };
  };

  it("applies each migration once, in order, and only the new ones later", () => {
    const f = fakeStorage();
    expect(migrateSqlite(f.storage, ["create a", "create b"])).toBe(2);
    expect(f.ran.filter((q) => q.startsWith("create ") && !q.includes("_schema"))).toEqual(["create a", "create b"]);
    f.ran.length = 0;
    expect(migrateSqlite(f.storage, ["create a", "create b", "alter c"])).toBe(3);
    expect(f.ran.filter((q) => /^(create|alter) [abc]$/.test(q))).toEqual(["alter c"]);
  });
});
