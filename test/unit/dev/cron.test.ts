import { afterEach, describe, expect, it, vi } from "vitest";
import { cronMatches, firesEveryMinute, parseCron, startCronScheduler } from "../../../scripts/lib/cron.ts";

const at = (iso: string) => new Date(iso);
const matches = (expr: string, iso: string) => cronMatches(parseCron(expr), at(iso));

describe("cron matcher (Cloudflare's 5-field syntax, UTC)", () => {
  it("matches every minute for * * * * *", () => {
    expect(matches("* * * * *", "2026-03-01T00:00:00Z")).toBe(true);
    expect(matches("* * * * *", "2025-12-31T23:59:59Z")).toBe(true);
    expect(firesEveryMinute(parseCron("* * * * *"))).toBe(true);
    expect(firesEveryMinute(parseCron("*/1 0-23 * * *"))).toBe(true);
    expect(firesEveryMinute(parseCron("*/5 * * * *"))).toBe(false);
  });

  it("steps from the field's start: */5 fires at :00, :05 … :55", () => {
    const c = parseCron("*/5 * * * *");
    expect([...c.minutes]).toEqual([0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55]);
    expect(matches("*/5 * * * *", "2026-03-01T10:35:42Z")).toBe(true);
    expect(matches("*/5 * * * *", "2026-03-01T10:36:00Z")).toBe(false);
  });

  it("takes fixed values, lists, ranges, stepped ranges and value/step", () => {
    expect(matches("17 3 * * *", "2026-03-01T03:17:00Z")).toBe(true);
    expect(matches("17 3 * * *", "2026-03-01T04:17:00Z")).toBe(false);
    expect([...parseCron("1,2,10-12 * * * *").minutes]).toEqual([1, 2, 10, 11, 12]);
    expect([...parseCron("0 8-18/5 * * *").hours]).toEqual([8, 13, 18]);
    expect([...parseCron("5/20 * * * *").minutes]).toEqual([5, 25, 45]);
  });

  it("reads the time in UTC, as Cloudflare schedules", () => {
    expect(matches("0 3 * * *", "2026-03-01T03:00:00.000Z")).toBe(true);
    expect(matches("0 3 * * *", "2026-03-01T03:00:00.000+01:00")).toBe(false); // 02:00 UTC
  });

  it("numbers weekdays 1-7 from Sunday and accepts names, case-insensitively", () => {
    // 2026-03-01 is a Sunday.
    expect(matches("0 17 * * 1", "2026-03-01T17:00:00Z")).toBe(true);
    expect(matches("0 17 * * sun", "2026-03-01T17:00:00Z")).toBe(true);
    expect(matches("10 7 * * mon-fri", "2026-03-02T07:10:00Z")).toBe(true); // Monday
    expect(matches("10 7 * * 2-6", "2026-03-07T07:10:00Z")).toBe(false); // Saturday
    expect(matches("0 0 1 jan-MAR *", "2026-02-01T00:00:00Z")).toBe(true);
    expect(matches("0 0 1 aug *", "2026-02-01T00:00:00Z")).toBe(false);
  });

  it("ORs day of month and weekday when both are restricted, ANDs otherwise", () => {
    // 1st of the month or any Monday.
    expect(matches("0 0 1 * 2", "2026-03-01T00:00:00Z")).toBe(true); // Sunday the 1st
    expect(matches("0 0 1 * 2", "2026-03-02T00:00:00Z")).toBe(true); // Monday the 2nd
    expect(matches("0 0 1 * 2", "2026-03-03T00:00:00Z")).toBe(false);
    expect(matches("0 0 1 * *", "2026-03-02T00:00:00Z")).toBe(false);
    expect(matches("0 0 * * 2", "2026-03-01T00:00:00Z")).toBe(false);
  });

  it("refuses what it cannot schedule, naming the field", () => {
    expect(() => parseCron("* * * *")).toThrow(/expected 5 fields/);
    expect(() => parseCron("60 * * * *")).toThrow(/minute "60" is not in 0-59/);
    expect(() => parseCron("* * * * 0")).toThrow(/weekday "0" is not in 1-7/);
    expect(() => parseCron("*/0 * * * *")).toThrow(/step must be at least 1/);
    expect(() => parseCron("10-5 * * * *")).toThrow(/runs backwards/);
    expect(() => parseCron("0 18 * * 6L")).toThrow(/L, W, # or \?/);
    expect(() => parseCron("0 18 * * friL")).toThrow(/L, W, # or \?/);
    expect(() => parseCron("59 23 LW * *")).toThrow(/L, W, # or \?/);
    expect(() => parseCron("0 10 * * MON#2")).toThrow(/L, W, # or \?/);
    expect(() => parseCron("0 0 * * wed")).not.toThrow();
  });
});

describe("cron scheduler", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("fires each cron at every minute it matches, at the minute boundary", async () => {
    vi.useFakeTimers({ now: new Date("2026-03-01T03:13:30Z") });
    const fired: string[] = [];
    const s = startCronScheduler({
      crons: ["* * * * *", "*/5 * * * *", "17 3 * * *"],
      fire: async (expr, time) => void fired.push(`${time.toISOString().slice(11, 16)} ${expr}`),
    });
    await vi.advanceTimersByTimeAsync(29_999);
    expect(fired).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(fired).toEqual(["03:14 * * * * *"]);
    await vi.advanceTimersByTimeAsync(3 * 60_000);
    s.stop();
    expect(fired).toEqual([
      "03:14 * * * * *",
      "03:15 * * * * *",
      "03:15 */5 * * * *",
      "03:16 * * * * *",
      "03:17 * * * * *",
      "03:17 17 3 * * *",
    ]);
  });

  it("fires the every-minute crons at once on request, and nothing after stop()", async () => {
    vi.useFakeTimers({ now: new Date("2026-03-01T03:13:30Z") });
    const fired: string[] = [];
    const s = startCronScheduler({
      crons: ["* * * * *", "*/5 * * * *"],
      fire: async (expr) => void fired.push(expr),
    });
    await s.fireEveryMinuteNow();
    expect(fired).toEqual(["* * * * *"]);
    s.stop();
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(fired).toEqual(["* * * * *"]);
  });

  it("survives a failing firing", async () => {
    vi.useFakeTimers({ now: new Date("2026-03-01T03:13:59Z") });
    let calls = 0;
    const s = startCronScheduler({
      crons: ["* * * * *"],
      fire: async () => {
        calls += 1;
        throw new Error("worker down");
      },
    });
    await vi.advanceTimersByTimeAsync(2 * 60_000);
    s.stop();
    expect(calls).toBe(2);
  });

  it("rejects an invalid expression before scheduling anything", () => {
    expect(() => startCronScheduler({ crons: ["* * * * 8"], fire: async () => {} })).toThrow(/weekday "8"/);
  });
});
