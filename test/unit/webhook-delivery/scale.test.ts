import { describe, expect, it, vi } from "vitest";
import { describeEventTypes, eventDefinitions, eventTypes, typesMatching } from "../../../src/events/catalog.ts";
import { createBatcher } from "../../../src/webhooks/batcher.ts";
import { closedCircuit } from "../../../src/webhooks/circuit.ts";
import type { CircuitRecord } from "../../../src/webhooks/circuit.ts";
import { deliveryBody, planDeliveries, targetsOf } from "../../../src/webhooks/fanout.ts";
import type { FanOutRequest, PlanWebhook } from "../../../src/webhooks/fanout.ts";
import { Flusher } from "../../../src/webhooks/flush.ts";
import { nextSlotAt, recordStart, slotsFree } from "../../../src/webhooks/pacing.ts";
import type { AttemptOutcome, AttemptRecord, Job } from "../../../src/webhooks/queue.ts";
import { memoryJobStore } from "../../../src/webhooks/queue.ts";
import type { RunDeps } from "../../../src/webhooks/runner.ts";
import { runDue } from "../../../src/webhooks/runner.ts";
import type { EndpointSettings } from "../../../src/webhooks/settings.ts";
import {
  mergeOverrides,
  resolveSettings,
  settingsOverridesSchema,
  settingsProblems,
} from "../../../src/webhooks/settings.ts";

const ok: AttemptOutcome = { success: true, statusCode: 200, responseTimeMs: 5 };
const bad: AttemptOutcome = { success: false, statusCode: 500, responseTimeMs: 5, errorType: "http_5xx" };
const job = (i: number, over: Partial<Job> = {}): Job => ({
  deliveryId: `msg_${i}`,
  eventId: `evt_${i}`,
  eventType: "team.created",
  body: `{"id":"msg_${i}"}`,
  attempts: 0,
  scheduleBase: 0,
  dueAt: 0,
  createdAt: i,
  sequence: i,
  ...over,
});
const settings: EndpointSettings = {
  maxAttempts: 5,
  backoffBaseMs: 1_000,
  backoffCapMs: 3_600_000,
  timeoutMs: 1_000,
  circuitFailureThreshold: 100,
  circuitSuccessThreshold: 2,
  circuitCooldownMs: 60_000,
  rateLimitPerSecond: 0,
  ordered: false,
  disableAfterFailingMs: 0,
};

/** A run's dependencies over an in-memory store and a clock the test moves. */
function harness(outcome: (j: Job) => AttemptOutcome, own: Partial<EndpointSettings> = {}) {
  let now = 5_000_000;
  let circuit: CircuitRecord = { ...closedCircuit };
  let failingSince: number | null = null;
  let pacing: number[] = [];
  const jobs = memoryJobStore();
  const attempted: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const deps: RunDeps = {
    jobs,
    circuit: { get: () => circuit, set: (c) => (circuit = c) },
    loadEndpoint: async () => ({
      id: "wh",
      url: "https://example.com/h",
      secrets: [],
      headers: {},
      settings: { ...settings, ...own },
    }),
    attempt: async (j) => {
      attempted.push(j.deliveryId);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 0));
      inFlight--;
      return outcome(j);
    },
    onTransition: async () => {},
    onDisable: vi.fn(async () => {}),
    failing: { get: () => failingSince, set: (at) => (failingSince = at) },
    pacing: { get: () => pacing, set: (s) => (pacing = s) },
    settings: {
      retry: { baseMs: 1_000, capMs: 3_600_000, maxAttempts: 5 },
      circuit: { failureThreshold: 100, successThreshold: 2, cooldownMs: 60_000 },
      concurrency: 4,
      maxRunMs: 10_000,
    },
    now: () => now,
    random: () => 0.5,
  };
  return {
    deps,
    jobs,
    attempted,
    advance: (ms: number) => (now += ms),
    now: () => now,
    maxInFlight: () => maxInFlight,
  };
}

describe("batched fan-out: planning and sequence numbers", () => {
  const hooks: PlanWebhook[] = [
    { id: "wh_a", organization_id: "o1", events: ["team.*"], active: true, delivery_seq: "7" },
    { id: "wh_b", organization_id: "o1", events: ["*"], active: false, delivery_seq: "0" },
    { id: "wh_c", organization_id: "o2", events: ["team.*"], active: true, delivery_seq: "41" },
  ];
  const req = (eventId: string, organizationId = "o1", eventType = "team.created"): FanOutRequest => ({
    eventId,
    eventType,
    organizationId,
    occurredAt: "2030-01-01T00:00:00.000Z",
    data: { n: eventId },
  });
  let n = 0;
  const ids = () => `msg_${++n}`;

  it("creates one delivery per matching endpoint for the whole batch, numbered next per endpoint", () => {
    const plan = planDeliveries(
      [req("e1"), req("e2"), req("e3", "o2"), req("e4", "o1", "member.added")],
      hooks,
      [],
      ids,
    );
    const seq = (w: string) => plan.inserts.filter((i) => i.webhook_id === w).map((i) => i.sequence);
    expect(seq("wh_a")).toEqual([8, 9]);
    expect(seq("wh_b")).toEqual([1, 2, 3]); // disabled: recorded held, numbered too
    expect(seq("wh_c")).toEqual([42]);
    expect(plan.inserts.filter((i) => i.webhook_id === "wh_b").every((i) => i.status === "held")).toBe(true);
    expect(plan.counters.sort((a, b) => a.id.localeCompare(b.id))).toEqual([
      { id: "wh_a", seq: 9 },
      { id: "wh_b", seq: 3 },
      { id: "wh_c", seq: 42 },
    ]);
    // Tenancy: another organization's endpoint never gets the event.
    expect(plan.targets[2]!.map((t) => t.webhookId)).toEqual(["wh_c"]);
  });

  it("uses no number for a repeated event (in the batch or seen before): numbers stay gap-free", () => {
    const plan = planDeliveries(
      [req("e1"), req("e1"), req("seen"), req("e2")],
      hooks,
      [{ id: "msg_old", webhook_id: "wh_a", event_id: "seen", status: "succeeded" }],
      ids,
    );
    const a = plan.inserts.filter((i) => i.webhook_id === "wh_a");
    expect(a.map((i) => [i.event_id, i.sequence])).toEqual([
      ["e1", 8],
      ["e2", 9],
    ]);
    expect(plan.targets[0]![0]!.deliveryId).toBe(plan.targets[1]![0]!.deliveryId);
    expect(plan.targets[2]!.find((t) => t.webhookId === "wh_a")).toMatchObject({
      deliveryId: "msg_old",
      status: "succeeded",
    });
  });

  it("numbers concurrent batches one after another: the writer commits them in order, each starting where the last ended", async () => {
    // The writer's group commit: batches run one at a time; each reads the counters the previous one wrote.
    const counters = new Map([["wh_a", 0]]);
    const seen: number[] = [];
    const batcher = createBatcher<FanOutRequest, number[]>(async (reqs) => {
      const plan = planDeliveries(reqs, [{ ...hooks[0]!, delivery_seq: String(counters.get("wh_a")) }], [], ids);
      await new Promise((r) => setTimeout(r, 1)); // the transaction
      for (const c of plan.counters) counters.set(c.id, c.seq);
      seen.push(reqs.length);
      return plan.targets.map((t) => t.map((x) => plan.inserts.find((i) => i.id === x.deliveryId)!.sequence));
    });
    const got = await Promise.all(Array.from({ length: 50 }, (_, i) => batcher.submit(req(`c${i}`))));
    expect(got.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(seen.length).toBeLessThan(50); // batched
    expect(seen.reduce((a, b) => a + b, 0)).toBe(50);
  });

  it("puts the sequence in the body the signature covers, in a fixed key order", () => {
    expect(
      deliveryBody("msg_1", 12, {
        eventType: "team.created",
        eventId: "e",
        organizationId: "o",
        occurredAt: "2030-01-01T00:00:00.000Z",
        data: { a: 1 },
      }),
    ).toBe(
      '{"id":"msg_1","sequence":12,"type":"team.created","eventId":"e","organizationId":"o","occurredAt":"2030-01-01T00:00:00.000Z","data":{"a":1}}',
    );
  });

  it("targets named webhooks (test events) instead of subscriptions, within the organization", () => {
    expect(
      targetsOf({ ...req("t", "o1", "webhook.test"), webhookIds: ["wh_a", "wh_c"] }, hooks).map((w) => w.id),
    ).toEqual(["wh_a"]);
  });
});

describe("group commit (batcher)", () => {
  it("runs a lone item at once and what queued meanwhile as the next batch", async () => {
    const batches: number[][] = [];
    const b = createBatcher<number, number>(async (xs) => {
      batches.push(xs);
      await new Promise((r) => setTimeout(r, 5));
      return xs.map((x) => x * 2);
    });
    const first = b.submit(1);
    await new Promise((r) => setTimeout(r, 1));
    const rest = [b.submit(2), b.submit(3), b.submit(4)];
    expect(await Promise.all([first, ...rest])).toEqual([2, 4, 6, 8]);
    expect(batches).toEqual([[1], [2, 3, 4]]);
  });

  it("fails every item of a failed batch and keeps going", async () => {
    let calls = 0;
    const b = createBatcher<number, number>(async (xs) => {
      if (calls++ === 0) throw new Error("postgres down");
      return xs;
    });
    await expect(b.submit(1)).rejects.toThrow("postgres down");
    expect(await b.submit(2)).toBe(2);
  });
});

describe("buffered attempt results: flush ordering and crashes", () => {
  const record = (i: number, over: Partial<AttemptRecord> = {}): AttemptRecord => ({
    job: job(i),
    attemptNumber: 1,
    attemptedAt: i,
    outcome: ok,
    decision: { kind: "succeeded" },
    ...over,
  });

  it("settles an attempt atomically: the job's fate and the buffered result together", () => {
    const s = memoryJobStore();
    s.add([job(1), job(2)]);
    s.settle([record(1), record(2, { outcome: bad, decision: { kind: "retry", at: 99 } })]);
    expect(s.get("msg_1")).toBeUndefined();
    expect(s.get("msg_2")).toMatchObject({ attempts: 1, dueAt: 99 });
    expect(s.unflushed(10).map((r) => r.record.job.deliveryId)).toEqual(["msg_1", "msg_2"]);
  });

  it("flushes in order, and only acknowledged batches leave the buffer: a failed flush is sent again first", async () => {
    const s = memoryJobStore();
    const sent: string[][] = [];
    let fail = true;
    const f = new Flusher(
      s,
      async (rs) => {
        sent.push(rs.map((r) => r.job.deliveryId));
        if (fail) throw new Error("writer unreachable");
      },
      { batchSize: 2 },
    );
    s.settle([record(1), record(2), record(3)]);
    await expect(f.flush()).rejects.toThrow("writer unreachable");
    expect(s.unflushed(10)).toHaveLength(3); // nothing forgotten
    fail = false;
    await f.flush();
    expect(sent).toEqual([["msg_1", "msg_2"], ["msg_1", "msg_2"], ["msg_3"]]);
    expect(s.unflushed(10)).toHaveLength(0);
  });

  it("a crash between settling and flushing repeats nothing and loses nothing: a new flusher sends the buffer", async () => {
    const s = memoryJobStore();
    s.add([job(1)]);
    s.settle([record(1)]);
    // The object dies here (its flusher with it); storage survives.
    const sent: string[] = [];
    await new Flusher(s, async (rs) => void sent.push(...rs.map((r) => r.job.deliveryId))).flush();
    expect(sent).toEqual(["msg_1"]);
    // A cron sweep re-hands the delivery (Postgres did not know yet): the end mark ignores it.
    expect(s.add([job(1)])).toBe(0);
    expect(s.size()).toBe(0);
    // A replay (attempt count caught up, fresh schedule) is taken.
    expect(s.add([job(1, { attempts: 1, scheduleBase: 1 })])).toBe(1);
  });

  it("a crash before settling repeats the attempt (at-least-once)", async () => {
    const h = harness(() => ok);
    h.jobs.add([job(1)]);
    h.jobs.settle = () => {
      throw new Error("object reset");
    };
    await expect(runDue(h.deps)).rejects.toThrow("object reset");
    expect(h.jobs.get("msg_1")).toBeDefined();
  });

  it("batches results settled while a flush is in flight into the next write", async () => {
    const s = memoryJobStore();
    const sizes: number[] = [];
    let release: () => void = () => {};
    const f = new Flusher(s, async (rs) => {
      sizes.push(rs.length);
      if (sizes.length === 1) await new Promise<void>((r) => (release = r));
    });
    s.settle([record(1)]);
    const p = f.flush();
    await new Promise((r) => setTimeout(r, 1));
    s.settle([record(2), record(3), record(4)]);
    f.kick(); // joins the running flush
    release();
    await p;
    expect(sizes).toEqual([1, 3]);
  });

  it("waits between batches under load, but not when asked to be urgent", async () => {
    const s = memoryJobStore();
    const at: number[] = [];
    const f = new Flusher(
      s,
      async () => {
        at.push(Date.now());
        s.settle([record(at.length + 10)]); // more keeps arriving
        if (at.length >= 3) s.markFlushed(s.unflushed(100).map((r) => r.id));
      },
      { minIntervalMs: 40, batchSize: 1 },
    );
    s.settle([record(1)]);
    const t0 = Date.now();
    const running = f.flush();
    await new Promise((r) => setTimeout(r, 5));
    await f.flush(true); // a reader needs Postgres now: no more pauses
    await running;
    expect(Date.now() - t0).toBeLessThan(40 * 2);
  });
});

/** Counts the reads of the store's due list. */
function countDueReads(h: ReturnType<typeof harness>): { n: number } {
  const reads = { n: 0 };
  const due = h.jobs.due.bind(h.jobs);
  h.jobs.due = (...args) => {
    reads.n++;
    return due(...args);
  };
  return reads;
}

describe("a run's due list", () => {
  it("is read once per 64 jobs, not again on every hand-off that arrives mid-run", async () => {
    const h = harness(() => ok);
    h.jobs.add(Array.from({ length: 100 }, (_, i) => job(i)));
    const reads = countDueReads(h);
    const attempt = h.deps.attempt;
    let handed = 0;
    // Every attempt of the first 20 brings a hand-off of one more job (fan-out while delivering).
    h.deps.attempt = async (j, e) => {
      if (handed < 20) h.jobs.add([job(100 + handed++)]);
      return attempt(j, e);
    };
    const r = await runDue(h.deps);
    expect(r.succeeded).toBe(120);
    expect(new Set(h.attempted).size).toBe(120);
    // 64, then the other 56 (the 20 handed over among them), and no more: re-reading per hand-off
    // and per attempt's end made it 26.
    expect(reads.n).toBe(2);
  });

  it("takes listed jobs as they fall due, and reads again for a retry or a hand-off once nothing listed is due", async () => {
    const h = harness((j) => (j.deliveryId === "msg_1" && j.attempts === 0 ? bad : ok));
    h.jobs.add([job(1), job(2, { dueAt: h.now() + 50 })]);
    const reads = countDueReads(h);
    const attempt = h.deps.attempt;
    h.deps.attempt = async (j, e) => {
      const out = await attempt(j, e);
      h.advance(1_000); // each attempt takes a second
      if (j.deliveryId === "msg_1" && j.attempts === 0) h.jobs.add([job(3)]); // handed over meanwhile
      return out;
    };
    const r = await runDue(h.deps);
    // msg_2 falls due while listed (no read); then msg_3 and msg_1's retry (1 s) come from one read.
    expect(r.records.map((x) => [x.job.deliveryId, x.attemptNumber])).toEqual([
      ["msg_1", 1],
      ["msg_2", 1],
      ["msg_3", 1],
      ["msg_1", 2],
    ]);
    expect(reads.n).toBe(2);
  });

  it("is read again when a replay gave a listed job a new schedule", async () => {
    const h = harness(() => ok);
    h.jobs.add([job(1), job(2, { dueAt: 10 })]);
    const attempt = h.deps.attempt;
    let replayed = false;
    h.deps.attempt = async (j, e) => {
      // While msg_1 is in flight, msg_2 (listed already) is replayed with a later schedule base.
      if (!replayed) {
        replayed = true;
        h.jobs.add([job(2, { attempts: 7, scheduleBase: 7, dueAt: 10 })]);
      }
      return attempt(j, e);
    };
    const r = await runDue(h.deps);
    expect(r.records.map((x) => [x.job.deliveryId, x.attemptNumber])).toEqual([
      ["msg_1", 1],
      ["msg_2", 8],
    ]);
  });
});

describe("rate limit (alarm-driven pacing)", () => {
  it("allows at most `rate` starts in any second", () => {
    let w: number[] = [];
    for (const t of [0, 10, 20]) w = recordStart(w, t, 3);
    expect(slotsFree(w, 500, 3)).toBe(0);
    expect(nextSlotAt(w, 500, 3)).toBe(1_000);
    expect(slotsFree(w, 1_000, 3)).toBe(1);
    expect(slotsFree(w, 1_021, 3)).toBe(3);
    expect(slotsFree([], 0, 0)).toBe(Number.POSITIVE_INFINITY);
  });

  it("starts `rate` deliveries, holds the rest (never dropped) and wakes when the next slot frees", async () => {
    const h = harness(() => ok, { rateLimitPerSecond: 2 });
    h.jobs.add(Array.from({ length: 5 }, (_, i) => job(i)));
    const t0 = h.now();
    const first = await runDue(h.deps);
    expect(first).toMatchObject({ processed: 2, nextWakeAt: t0 + 1_000 });
    expect(h.jobs.size()).toBe(3);
    // Woken early, it does nothing and keeps the same wake-up.
    h.advance(400);
    expect(await runDue(h.deps)).toMatchObject({ processed: 0, nextWakeAt: t0 + 1_000 });
    h.advance(600); // the alarm time
    expect(await runDue(h.deps)).toMatchObject({ processed: 2, nextWakeAt: t0 + 2_000 });
    h.advance(1_000);
    expect(await runDue(h.deps)).toMatchObject({ processed: 1, nextWakeAt: null });
    expect(h.attempted.sort()).toEqual(["msg_0", "msg_1", "msg_2", "msg_3", "msg_4"]);
  });
});

describe("ordered mode", () => {
  it("sends one at a time, strictly by sequence, whatever the due order", async () => {
    const h = harness(() => ok, { ordered: true });
    h.jobs.add([job(3, { sequence: 3 }), job(1, { sequence: 1, dueAt: 10 }), job(2, { sequence: 2 })]);
    await runDue(h.deps);
    expect(h.attempted).toEqual(["msg_1", "msg_2", "msg_3"]);
    expect(h.maxInFlight()).toBe(1);
  });

  it("a failing head blocks this endpoint only, and is retried first; then the rest follow in order", async () => {
    let headFails = true;
    const h = harness((j) => (j.deliveryId === "msg_1" && headFails ? bad : ok), { ordered: true });
    h.jobs.add([job(1), job(2), job(3)]);
    const r = await runDue(h.deps);
    expect(h.attempted).toEqual(["msg_1"]); // nothing overtakes the head
    expect(h.jobs.size()).toBe(3);
    expect(r.nextWakeAt).toBe(h.now() + 1_000); // the head's retry, not the due followers
    // Another endpoint is not affected: its own object runs.
    const other = harness(() => ok, { ordered: true });
    other.jobs.add([job(7)]);
    expect((await runDue(other.deps)).succeeded).toBe(1);

    h.advance(500);
    expect((await runDue(h.deps)).processed).toBe(0);
    headFails = false;
    h.advance(500);
    await runDue(h.deps);
    expect(h.attempted).toEqual(["msg_1", "msg_1", "msg_2", "msg_3"]);
  });

  it("a head that exhausts its retries ends failed and lets the next one go", async () => {
    const h = harness((j) => (j.deliveryId === "msg_1" ? bad : ok), { ordered: true, maxAttempts: 1 });
    h.jobs.add([job(1), job(2)]);
    await runDue(h.deps);
    expect(h.attempted).toEqual(["msg_1", "msg_2"]);
    expect(h.jobs.results.map((r) => r.record.decision.kind)).toEqual(["failed", "succeeded"]);
  });
});

describe("retries, sequence and per-endpoint settings", () => {
  it("a retried delivery keeps its sequence number and id; its attempts are numbered on", async () => {
    const h = harness(() => bad, { maxAttempts: 3 });
    h.jobs.add([job(9, { sequence: 77 })]);
    for (let i = 0; i < 3; i++) {
      await runDue(h.deps);
      h.advance(3_600_000);
    }
    const rs = h.jobs.results.map((r) => r.record);
    expect(rs.map((r) => [r.job.deliveryId, r.job.sequence, r.attemptNumber])).toEqual([
      ["msg_9", 77, 1],
      ["msg_9", 77, 2],
      ["msg_9", 77, 3],
    ]);
    expect(rs.at(-1)!.decision).toEqual({ kind: "failed" }); // the endpoint's maxAttempts, not the global 5
  });

  it("uses the endpoint's own backoff", async () => {
    const h = harness(() => bad, { backoffBaseMs: 250 });
    h.jobs.add([job(1)]);
    expect((await runDue(h.deps)).nextWakeAt).toBe(h.now() + 250);
  });

  it("auto-disables after failing continuously for the endpoint's period, not before", async () => {
    const h = harness(() => bad, {
      disableAfterFailingMs: 86_400_000,
      maxAttempts: 50,
      circuitFailureThreshold: 1_000,
    });
    h.jobs.add([job(1)]);
    await runDue(h.deps);
    h.advance(86_400_000 - 1);
    await runDue(h.deps);
    expect(h.deps.onDisable).not.toHaveBeenCalled();
    h.advance(3_600_000);
    await runDue(h.deps);
    expect(h.deps.onDisable).toHaveBeenCalledExactlyOnceWith({ cause: "failing", since: 5_000_000 });
  });

  it("a success restarts the auto-disable clock", async () => {
    let fail = true;
    const h = harness(() => (fail ? bad : ok), { disableAfterFailingMs: 1_000, maxAttempts: 50 });
    h.jobs.add([job(1), job(2, { dueAt: 9e15 })]);
    await runDue(h.deps);
    fail = false;
    h.advance(3_600_000);
    await runDue(h.deps); // msg_1 succeeds
    fail = true;
    h.jobs.add([job(3)]);
    await runDue(h.deps);
    expect(h.deps.onDisable).not.toHaveBeenCalled();
  });

  it("merges overrides (null resets a key) and checks the combination", () => {
    const defaults = { ...settings };
    const stored = mergeOverrides({ maxAttempts: 3, timeoutMs: 500 }, { maxAttempts: null, ordered: true });
    expect(stored).toEqual({ timeoutMs: 500, ordered: true });
    expect(resolveSettings(defaults, stored)).toMatchObject({ maxAttempts: 5, timeoutMs: 500, ordered: true });
    expect(settingsProblems(resolveSettings(defaults, { backoffBaseMs: 10_000, backoffCapMs: 5_000 }))).toHaveLength(1);
    expect(settingsOverridesSchema.safeParse({ maxAttempts: 0 }).success).toBe(false);
    expect(settingsOverridesSchema.safeParse({ retries: 3 }).success).toBe(false);
    expect(settingsOverridesSchema.safeParse({ rateLimitPerSecond: 10, ordered: false }).success).toBe(true);
  });
});

describe("event-type catalog", () => {
  it("every type has a description, a JSON Schema of data and an example the schema accepts", () => {
    const docs = describeEventTypes();
    expect(docs.map((d) => d.type)).toEqual(eventTypes);
    for (const d of docs) {
      expect(d.description.length, d.type).toBeGreaterThan(5);
      expect(d.schema, d.type).toMatchObject({ type: "object" });
      expect(eventDefinitions[d.type].data.safeParse(d.example).success, d.type).toBe(true);
    }
    // The schema says what a producer must send: team.created needs its teamId.
    expect(eventDefinitions["team.created"].data.safeParse({ name: "x" }).success).toBe(false);
    expect(docs.find((d) => d.type === "team.created")!.schema).toMatchObject({
      required: ["teamId", "name", "parentTeamId"],
    });
  });

  it("expands patterns to the catalog's types", () => {
    expect(typesMatching(["*"])).toEqual(eventTypes);
    expect(typesMatching(["team.created", "usage.*"])).toEqual([
      "team.created",
      "usage.quota.threshold_crossed",
      "usage.quota.exceeded",
    ]);
    expect(typesMatching(["member.*"])).toEqual(["member.added", "member.removed", "member.role_changed"]);
  });
});
