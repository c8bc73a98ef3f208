import { describe, expect, it, vi } from "vitest";
import { attemptDelivery, deliveryHeaders } from "../../../src/webhooks/attempt.ts";
import type { Endpoint } from "../../../src/webhooks/attempt.ts";
import { closedCircuit } from "../../../src/webhooks/circuit.ts";
import type { CircuitRecord } from "../../../src/webhooks/circuit.ts";
import { envelope, newDeliveryId } from "../../../src/webhooks/delivery.ts";
import type { AttemptOutcome, Job } from "../../../src/webhooks/queue.ts";
import { backoffMs, classifyStatus, decide, memoryJobStore, parseRetryAfter } from "../../../src/webhooks/queue.ts";
import { patternsFor } from "../../../src/webhooks/repo.ts";
import type { AttemptRecord, RunDeps } from "../../../src/webhooks/runner.ts";
import { nextWake, runDue } from "../../../src/webhooks/runner.ts";
import { customHeadersSchema, eventPatternsSchema, webhookEventSchema } from "../../../src/webhooks/schemas.ts";
import { generateSecret, verify } from "../../../src/webhooks/signing.ts";

const retry = { baseMs: 1_000, capMs: 3_600_000, maxAttempts: 5 };
const job = (i: number, over: Partial<Job> = {}): Job => ({
  deliveryId: `msg_${i}`,
  eventId: `evt_${i}`,
  eventType: "team.created",
  body: `{"id":"msg_${i}"}`,
  attempts: 0,
  scheduleBase: 0,
  dueAt: 0,
  createdAt: i,
  ...over,
});
const ok: AttemptOutcome = { success: true, statusCode: 200, responseTimeMs: 5 };
const bad: AttemptOutcome = {
  success: false,
  statusCode: 500,
  responseTimeMs: 5,
  errorType: "http_5xx",
  error: "HTTP 500",
};

describe("backoff and retry policy", () => {
  it("doubles from the base: 1 s, 2 s, 4 s, 8 s … (no jitter at random = 0.5)", () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffMs(n, retry, () => 0.5))).toEqual([1_000, 2_000, 4_000, 8_000, 16_000]);
  });

  it("caps at one hour", () => {
    expect(backoffMs(30, retry, () => 0.5)).toBe(3_600_000);
  });

  it("keeps jitter within ±20 %", () => {
    expect(backoffMs(3, retry, () => 0)).toBe(3_200);
    expect(backoffMs(3, retry, () => 0.999999)).toBeLessThanOrEqual(4_800);
    for (let i = 0; i < 200; i++) {
      const d = backoffMs(4, retry);
      expect(d).toBeGreaterThanOrEqual(6_400);
      expect(d).toBeLessThanOrEqual(9_600);
    }
  });

  it("parses Retry-After seconds and HTTP dates", () => {
    expect(parseRetryAfter("120", 0)).toBe(120_000);
    expect(parseRetryAfter(new Date(60_000).toUTCString(), 0)).toBe(60_000);
    expect(parseRetryAfter("soon", 0)).toBeNull();
    expect(parseRetryAfter(null, 0)).toBeNull();
  });

  it("classifies statuses", () => {
    expect(classifyStatus(204)).toEqual({ success: true });
    expect(classifyStatus(301).errorType).toBe("http_3xx");
    expect(classifyStatus(404).errorType).toBe("http_4xx");
    expect(classifyStatus(503).errorType).toBe("http_5xx");
    expect(classifyStatus(99).errorType).toBe("invalid_response");
  });

  it("decides: success, retry, exhausted, 410 disables, SSRF fails at once", () => {
    expect(decide(ok, 1, retry, 0)).toEqual({ kind: "succeeded" });
    expect(decide(bad, 1, retry, 0, () => 0.5)).toEqual({ kind: "retry", at: 1_000 });
    expect(decide(bad, 5, retry, 0)).toEqual({ kind: "failed" });
    expect(decide({ ...bad, statusCode: 410 }, 1, retry, 0)).toEqual({ kind: "disable" });
    expect(decide({ success: false, responseTimeMs: 0, errorType: "ssrf_blocked" }, 1, retry, 0)).toEqual({
      kind: "failed",
    });
  });

  it("honours Retry-After on 429/503, clamped to [1 s, cap]", () => {
    expect(decide({ ...bad, statusCode: 429, retryAfterMs: 30_000 }, 1, retry, 0, () => 0.5)).toEqual({
      kind: "retry",
      at: 30_000,
    });
    expect(decide({ ...bad, statusCode: 503, retryAfterMs: 86_400_000 }, 1, retry, 0, () => 0.5)).toEqual({
      kind: "retry",
      at: 3_600_000,
    });
    // A Retry-After shorter than the backoff does not shorten it; on a 500 it is ignored.
    expect(decide({ ...bad, statusCode: 429, retryAfterMs: 0 }, 3, retry, 0, () => 0.5)).toEqual({
      kind: "retry",
      at: 4_000,
    });
    expect(decide({ ...bad, retryAfterMs: 999_000 }, 1, retry, 0, () => 0.5)).toEqual({ kind: "retry", at: 1_000 });
  });
});

describe("job store", () => {
  it("adds idempotently and returns due jobs earliest first", () => {
    const s = memoryJobStore();
    expect(s.add([job(1, { dueAt: 20 }), job(2, { dueAt: 10 })])).toBe(2);
    expect(s.add([job(1)])).toBe(0);
    expect(s.due(15, 10).map((j) => j.deliveryId)).toEqual(["msg_2"]);
    expect(s.nextDue()).toBe(10);
    s.settle([{ job: job(2), attemptNumber: 1, attemptedAt: 0, outcome: bad, decision: { kind: "retry", at: 50 } }]);
    expect(s.due(30, 10).map((j) => j.deliveryId)).toEqual(["msg_1"]);
    expect(s.clear()).toBe(2);
    expect(s.nextDue()).toBeNull();
  });

  it("lets a replay's fresh schedule replace a held job's older one, and only that", () => {
    const s = memoryJobStore();
    s.add([job(1, { attempts: 3, dueAt: 50 })]);
    expect(s.add([job(1, { attempts: 3, dueAt: 0 })])).toBe(0); // a re-hand of the same schedule
    expect(s.get("msg_1")).toMatchObject({ attempts: 3, scheduleBase: 0, dueAt: 50 });
    expect(s.add([job(1, { attempts: 15, scheduleBase: 15, dueAt: 7 })])).toBe(0);
    expect(s.get("msg_1")).toMatchObject({ attempts: 15, scheduleBase: 15, dueAt: 7 });
  });
});

function harness(outcomes: (j: Job) => AttemptOutcome, over: Partial<RunDeps> = {}) {
  let now = 1_000_000;
  let circuit: CircuitRecord = { ...closedCircuit };
  const jobs = memoryJobStore();
  const recorded: AttemptRecord[] = [];

  const transitions: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const deps: RunDeps = {
    jobs,
    circuit: { get: () => circuit, set: (c) => (circuit = c) },
    loadEndpoint: async () => ({ id: "wh", url: "https://example.com/h", secrets: [generateSecret()], headers: {} }),
    attempt: async (j) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await Promise.resolve();
      inFlight--;
      return outcomes(j);
    },
    settled: (r) => void recorded.push(...r),
    onTransition: async (t) => void transitions.push(`${t.from}->${t.to}`),
    onDisable: vi.fn(async () => {}),
    settings: {
      retry,
      circuit: { failureThreshold: 3, successThreshold: 2, cooldownMs: 60_000 },
      concurrency: 4,
      maxRunMs: 10_000,
    },
    now: () => now,
    random: () => 0.5,
    ...over,
  };

  return {
    deps,
    jobs,
    recorded,
    transitions,
    advance: (ms: number) => (now += ms),
    circuit: () => circuit,
    maxInFlight: () => maxInFlight,
  };
}

describe("endpoint runs", () => {
  it("delivers every due job in waves of at most the concurrency", async () => {
    const h = harness(() => ok);
    h.jobs.add(Array.from({ length: 10 }, (_, i) => job(i)));
    const r = await runDue(h.deps);
    expect(r).toMatchObject({ processed: 10, succeeded: 10, failed: 0, nextWakeAt: null });
    expect(h.maxInFlight()).toBe(4);
    expect(h.jobs.size()).toBe(0);
  });

  it("reschedules failures with backoff and reports the next wake-up", async () => {
    const h = harness(() => bad);
    h.jobs.add([job(1)]);
    const r = await runDue(h.deps);
    expect(r.failed).toBe(1);
    expect(h.jobs.get("msg_1")).toMatchObject({ attempts: 1, dueAt: 1_001_000 });
    expect(r.nextWakeAt).toBe(1_001_000);
    expect(h.recorded[0]).toMatchObject({ attemptNumber: 1, decision: { kind: "retry", at: 1_001_000 } });
  });

  it("opens the breaker mid-run and holds the rest", async () => {
    const h = harness(() => bad, {
      settings: {
        retry,
        circuit: { failureThreshold: 3, successThreshold: 2, cooldownMs: 60_000 },
        concurrency: 1,
        maxRunMs: 10_000,
      },
    });
    h.jobs.add(Array.from({ length: 6 }, (_, i) => job(i)));
    const r = await runDue(h.deps);
    expect(r.processed).toBe(3);
    expect(h.transitions).toEqual(["closed->open"]);
    expect(h.jobs.size()).toBe(6);
    expect(r.nextWakeAt).toBe(h.circuit().halfOpenAt);
  });

  it("probes one at a time while half-open and closes after enough successes", async () => {
    const h = harness(() => ok);
    h.deps.circuit.set({
      ...closedCircuit,
      state: "open",
      openedAt: 0,
      halfOpenAt: 1_000,
      openCount: 1,
      failureCount: 3,
    });
    h.jobs.add(Array.from({ length: 5 }, (_, i) => job(i)));
    const r = await runDue(h.deps);
    expect(h.transitions).toEqual(["open->half_open", "half_open->closed"]);
    expect(r.succeeded).toBe(5);
  });

  it("does nothing while open and the cooldown has not passed", async () => {
    const h = harness(() => ok);
    h.deps.circuit.set({ ...closedCircuit, state: "open", openedAt: 0, halfOpenAt: 9_999_999, openCount: 1 });
    h.jobs.add([job(1)]);
    const r = await runDue(h.deps);
    expect(r.processed).toBe(0);
    expect(r.nextWakeAt).toBe(9_999_999);
  });

  it("keeps jobs when settling fails, so they are attempted again (at-least-once)", async () => {
    // Intentional change: Postgres is no longer on this path (results are buffered locally and
    // flushed later, see flush.test.ts); what must hold is that an attempt whose result could not
    // be kept is repeated.
    const h = harness(() => ok);
    h.jobs.settle = () => {
      throw new Error("storage unavailable");
    };
    h.jobs.add([job(1)]);
    await expect(runDue(h.deps)).rejects.toThrow("storage unavailable");
    expect(h.jobs.get("msg_1")).toBeDefined();
    expect(h.jobs.results).toHaveLength(0);
  });

  it("clears the queue when the webhook was deleted, holds it when disabled", async () => {
    const deleted = harness(() => ok, { loadEndpoint: async () => null });
    deleted.jobs.add([job(1)]);
    await runDue(deleted.deps);
    expect(deleted.jobs.size()).toBe(0);
    const disabled = harness(() => ok, { loadEndpoint: async () => "inactive" });
    disabled.jobs.add([job(1)]);
    expect((await runDue(disabled.deps)).processed).toBe(0);
    expect(disabled.jobs.size()).toBe(1);
  });

  it("stops and reports 410 Gone", async () => {
    const h = harness(() => ({ ...bad, statusCode: 410 }), {
      settings: {
        retry,
        circuit: { failureThreshold: 9, successThreshold: 2, cooldownMs: 1 },
        concurrency: 1,
        maxRunMs: 10_000,
      },
    });
    h.jobs.add([job(1), job(2)]);
    const r = await runDue(h.deps);
    expect(r.processed).toBe(1);
    expect(h.deps.onDisable).toHaveBeenCalledExactlyOnceWith({ cause: "gone" });
  });

  it("attempts one chosen job regardless of its due time", async () => {
    const h = harness(() => ok);
    h.jobs.add([job(1, { dueAt: 9e15 }), job(2)]);
    const r = await runDue(h.deps, "msg_1");
    expect(r.records.map((x) => x.job.deliveryId)).toEqual(["msg_1"]);
    expect(h.jobs.get("msg_2")).toBeDefined();
  });

  it("gives up after max attempts", async () => {
    const h = harness(() => bad);
    h.jobs.add([job(1, { attempts: 4 })]);
    await runDue(h.deps);
    expect(h.recorded[0]?.decision).toEqual({ kind: "failed" });
    expect(h.jobs.size()).toBe(0);
  });

  it("gives a replayed delivery a fresh schedule while its attempt numbering continues", async () => {
    const h = harness(() => bad);
    h.jobs.add([job(1, { attempts: 15, scheduleBase: 15 })]);
    await runDue(h.deps);
    // Position 1 of a fresh schedule: the base backoff, not exhausted.
    expect(h.recorded[0]).toMatchObject({ attemptNumber: 16, decision: { kind: "retry", at: 1_001_000 } });
    expect(h.jobs.get("msg_1")).toMatchObject({ attempts: 16, scheduleBase: 15 });
    const last = harness(() => bad);
    last.jobs.add([job(1, { attempts: 19, scheduleBase: 15 })]);
    await runDue(last.deps);
    expect(last.recorded[0]).toMatchObject({ attemptNumber: 20, decision: { kind: "failed" } });
  });
});

describe("wake-ups: a held delivery costs nothing", () => {
  const open: CircuitRecord = {
    ...closedCircuit,
    state: "open",
    failureCount: 5,
    openedAt: 1_000,
    halfOpenAt: 61_000,
    openCount: 1,
  };
  const halfOpen: CircuitRecord = { ...open, state: "half_open" };
  const store = (...dueAts: number[]) => {
    const s = memoryJobStore();
    s.add(dueAts.map((dueAt, i) => job(i, { dueAt })));
    return s;
  };

  it("no jobs: no alarm, whatever the state", () => {
    for (const c of [closedCircuit, open, halfOpen])
      for (const e of ["active", "inactive", "deleted"] as const) expect(nextWake(store(), c, e)).toBeNull();
  });

  it("closed: the earliest job, due or future", () => {
    expect(nextWake(store(5_000, 500), closedCircuit, "active")).toBe(500);
    expect(nextWake(store(90_000), closedCircuit, "active")).toBe(90_000);
  });

  it("open: the half-open time, never earlier, or a job due after it", () => {
    expect(nextWake(store(0, 10), open, "active")).toBe(61_000);
    expect(nextWake(store(200_000), open, "active")).toBe(200_000);
  });

  it("half-open: the earliest job (a probe may go)", () => {
    expect(nextWake(store(3_000, 70_000), halfOpen, "active")).toBe(3_000);
  });

  it("disabled: no alarm, even with due jobs or an open circuit (re-enabling wakes it)", () => {
    for (const c of [closedCircuit, open, halfOpen]) expect(nextWake(store(0, 10), c, "inactive")).toBeNull();
  });

  it("deleted: no alarm", () => {
    expect(nextWake(store(0), closedCircuit, "deleted")).toBeNull();
  });

  it("a run that finds the endpoint disabled holds its jobs and arms nothing", async () => {
    const h = harness(() => ok, { loadEndpoint: async () => "inactive" });
    h.jobs.add([job(1), job(2), job(3)]);
    const r = await runDue(h.deps);
    expect(r).toMatchObject({ processed: 0, nextWakeAt: null });
    expect(h.jobs.size()).toBe(3);
  });

  it("a run that finds the endpoint deleted clears its jobs and arms nothing", async () => {
    const h = harness(() => ok, { loadEndpoint: async () => null });
    h.jobs.add([job(1), job(2, { dueAt: 9e15 })]);
    const r = await runDue(h.deps);
    expect(r.nextWakeAt).toBeNull();
    expect(h.jobs.size()).toBe(0);
  });

  it("a run that gets 410 Gone holds the rest and arms nothing", async () => {
    const h = harness(() => ({ ...bad, statusCode: 410 }), {
      settings: {
        retry,
        circuit: { failureThreshold: 9, successThreshold: 2, cooldownMs: 1 },
        concurrency: 1,
        maxRunMs: 10_000,
      },
    });
    h.jobs.add([job(1), job(2), job(3), job(4)]);
    const r = await runDue(h.deps);
    expect(r).toMatchObject({ processed: 1, nextWakeAt: null });
    expect(h.jobs.size()).toBe(3);
  });

  it("a run while open arms the half-open time, a run while closed the next due job", async () => {
    const h = harness(() => bad);
    h.deps.circuit.set({ ...open, halfOpenAt: 2_000_000 });
    h.jobs.add([job(1)]);
    expect((await runDue(h.deps)).nextWakeAt).toBe(2_000_000);
    const c = harness(() => ok);
    c.jobs.add([job(1), job(2, { dueAt: 5_000_000 })]);
    expect((await runDue(c.deps)).nextWakeAt).toBe(5_000_000);
  });
});

describe("one attempt", () => {
  const endpoint: Endpoint = {
    id: "wh",
    url: "https://hooks.example.com/in",
    secrets: [generateSecret()],
    headers: { "X-Team": "blue" },
  };

  it("POSTs the body with Standard Webhooks headers and no redirect following", async () => {
    const fetchFn = vi.fn(
      async (_url: string | URL | Request, _init?: RequestInit) => new Response("fine", { status: 200 }),
    );
    const out = await attemptDelivery(job(7), endpoint, {
      timeoutMs: 1_000,
      policy: { allowLocalHttp: false },
      fetch: fetchFn as unknown as typeof fetch,
    });
    expect(out).toMatchObject({ success: true, statusCode: 200, responseBody: "fine" });
    const [url, init] = fetchFn.mock.calls[0]!;
    expect(String(url)).toBe("https://hooks.example.com/in");
    expect(init).toMatchObject({ method: "POST", redirect: "manual", body: '{"id":"msg_7"}' });
    const headers = init!.headers as Record<string, string>;
    expect(headers["x-team"] ?? headers["X-Team"]).toBe("blue");
    expect(
      await verify(
        "msg_7",
        Number(headers["webhook-timestamp"]),
        '{"id":"msg_7"}',
        headers["webhook-signature"]!,
        endpoint.secrets[0]!,
      ),
    ).toBe(true);
  });

  it("reports a timeout when nothing answers in time", async () => {
    const hang = (_u: unknown, init?: RequestInit) =>
      new Promise<Response>((_, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal!.reason)));
    const out = await attemptDelivery(job(1), endpoint, {
      timeoutMs: 30,
      policy: { allowLocalHttp: false },
      fetch: hang as typeof fetch,
    });
    expect(out).toMatchObject({ success: false, errorType: "timeout" });
  });

  it("reports connection failures", async () => {
    const out = await attemptDelivery(job(1), endpoint, {
      timeoutMs: 1_000,
      policy: { allowLocalHttp: false },
      fetch: (async () => Promise.reject(new TypeError("ECONNRESET"))) as typeof fetch,
    });
    expect(out).toMatchObject({ success: false, errorType: "connection" });
  });

  it("keeps only the first 16 KiB of the response", async () => {
    const out = await attemptDelivery(job(1), endpoint, {
      timeoutMs: 1_000,
      policy: { allowLocalHttp: false },
      fetch: (async () => new Response("x".repeat(100_000), { status: 500 })) as typeof fetch,
    });
    expect(out.responseBody).toHaveLength(16 * 1024);
    expect(out.errorType).toBe("http_5xx");
  });

  it("refuses a URL that became an SSRF target without sending anything", async () => {
    const fetchFn = vi.fn();
    const out = await attemptDelivery(
      job(1),
      { ...endpoint, url: "https://169.254.169.254/" },
      { timeoutMs: 1_000, policy: { allowLocalHttp: false }, fetch: fetchFn as unknown as typeof fetch },
    );
    expect(out.errorType).toBe("ssrf_blocked");
    expect(fetchFn).not.toHaveBeenCalled();
  });

  it("signs with every live secret during rotation", async () => {
    const two = { ...endpoint, secrets: [generateSecret(), generateSecret()] };
    const h = await deliveryHeaders(job(3), two, 1_700_000_000);
    expect(h["webhook-signature"]!.split(" ")).toHaveLength(2);
  });
});

describe("payloads, ids and matching", () => {
  it("builds the envelope in a fixed key order", () => {
    const body = envelope("msg_1", {
      eventType: "team.created",
      eventId: "evt_1",
      organizationId: "org_1",
      occurredAt: "2026-01-01T00:00:00.000Z",
      data: { a: 1 },
    });
    expect(body).toBe(
      '{"id":"msg_1","type":"team.created","eventId":"evt_1","organizationId":"org_1","occurredAt":"2026-01-01T00:00:00.000Z","data":{"a":1}}',
    );
  });

  it("generates unique 128-bit delivery ids", () => {
    const ids = new Set(Array.from({ length: 1000 }, newDeliveryId));
    expect(ids.size).toBe(1000);
    expect([...ids][0]).toMatch(/^msg_[0-9a-z]{26}$/);
  });

  it("lists every subscription pattern that matches a type", () => {
    expect(patternsFor("usage.quota.exceeded").sort()).toEqual(
      ["*", "usage.*", "usage.quota.*", "usage.quota.exceeded"].sort(),
    );
    expect(patternsFor("team.created").sort()).toEqual(["*", "team.*", "team.created"].sort());
  });

  it("validates subscriptions, custom headers and events", () => {
    expect(eventPatternsSchema.safeParse(["team.*", "team.*", "member.added"]).data).toEqual([
      "team.*",
      "member.added",
    ]);
    expect(eventPatternsSchema.safeParse([]).success).toBe(false);
    expect(eventPatternsSchema.safeParse(["nope.*"]).success).toBe(false);
    expect(customHeadersSchema.safeParse({ Authorization: "Bearer x" }).success).toBe(true);
    expect(customHeadersSchema.safeParse({ "webhook-id": "x" }).success).toBe(false);
    expect(customHeadersSchema.safeParse({ "X-Forwarded-For": "1.2.3.4" }).success).toBe(false);
    expect(customHeadersSchema.safeParse({ "bad name": "x" }).success).toBe(false);
    expect(
      customHeadersSchema.safeParse(Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`h${i}`, "v"]))).success,
    ).toBe(false);
    expect(
      webhookEventSchema.safeParse({
        eventId: "e",
        eventType: "team.*",
        organizationId: "o",
        occurredAt: "2026-01-01T00:00:00Z",
      }).success,
    ).toBe(false);
  });
});
