import { describe, expect, it } from "vitest";
import { api } from "../support/api.ts";
import type { ApiOptions } from "../support/api.ts";
import { withDb } from "../support/backends.ts";
import { billingPeriod } from "../../../src/usage/periods.ts";
import { deliverAlerts, ev, hoursAgo, newOrg, setPlan, usage, valid } from "./support.ts";

/** Operator and billing APIs: plans, assignments, overrides, notifications, report listings and CSV. */

const INTERNAL = ["internal"];
const newPlanId = () => `p_${crypto.randomUUID().slice(0, 8)}`;
const record = (events: ReturnType<typeof ev>[]) => usage().recordEvents(events.map(valid));

/** Calls the API and returns the parsed JSON body, failing the test on another status. */
async function call<T = Record<string, unknown>>(path: string, status: number, opts: ApiOptions = {}): Promise<T> {
  const res = await api(path, opts);
  const text = await res.text();
  if (res.status !== status)
    throw new Error(`${opts.method ?? "GET"} ${path}: expected ${status}, got ${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

interface Envelope {
  error: {
    code: string;
    message: string;
    details?: { issues?: { path: string; code?: string }[]; [k: string]: unknown };
  };
}

interface Plan {
  id: string;
  name: string;
  limits: Record<string, number>;
  included: Record<string, number>;
  prices: Record<string, number>;
  organizations: number;
}

interface Effective {
  organizationId: string;
  planId: string;
  planName: string;
  billingAnchor: string;
  currentPeriod: { start: string; end: string };
  limits: Record<string, number>;
  included: Record<string, number>;
  prices: Record<string, number>;
  plan: { limits: Record<string, number>; included: Record<string, number>; prices: Record<string, number> };
  overrides: {
    limits: Record<string, number | null>;
    included: Record<string, number>;
    prices: Record<string, number>;
  };
  overridden: string[];
}

const createPlan = (id: string, terms: Record<string, unknown> = {}) =>
  call<Plan>("/v1/internal/plans", 201, { scopes: INTERNAL, body: { id, name: `Plan ${id}`, ...terms } });
const assign = (org: string, body: Record<string, unknown>) =>
  call<Effective>(`/v1/orgs/${org}/plan`, 200, { scopes: INTERNAL, method: "PUT", body });
const putOverrides = (org: string, body: Record<string, unknown>) =>
  call<Effective>(`/v1/orgs/${org}/plan/overrides`, 200, { scopes: INTERNAL, method: "PUT", body });
const check = (org: string, amount: number) =>
  call<{ allowed: boolean; remaining: number | null; limit: number | null }>(`/v1/orgs/${org}/usage/quota/check`, 200, {
    org,
    scopes: ["usage:write"],
    body: { metricType: "api_calls", amount },
  });

const planRow = (id: string) =>
  withDb(
    async (db) =>
      (await db.query<{ name: string; limits: unknown }>("select name, limits from plans where id = $1", [id])).rows[0],
  );
const orgRow = (org: string) =>
  withDb(
    async (db) =>
      (
        await db.query<{ plan_id: string; billing_anchor: Date }>(
          "select plan_id, billing_anchor from organizations where id = $1",
          [org],
        )
      ).rows[0],
  );
const overrideRow = (org: string) =>
  withDb(
    async (db) =>
      (await db.query("select * from organization_plan_overrides where organization_id = $1", [org])).rows[0],
  );
const planEvents = (org: string) =>
  withDb(async (db) =>
    (
      await db.query<{ event: { data: Record<string, unknown> } }>(
        "select event from outbox where organization_id = $1 and type = 'organization.plan.changed' order by seq",
        [org],
      )
    ).rows.map((r) => r.event.data),
  );

/** Sends a bad request and returns its error envelope after checking the status. */
async function rejected(path: string, status: number, opts: ApiOptions): Promise<Envelope["error"]> {
  const res = await api(path, opts);
  const body = (await res.json()) as Envelope;
  expect(res.status, JSON.stringify(body)).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  return body.error;
}

describe("plans API (scope internal)", () => {
  it("creates, gets, lists with a cursor, updates and deletes a plan", async () => {
    const id = newPlanId();
    const created = await createPlan(id, {
      limits: { api_calls: 1000, teams: 4 },
      included: { api_calls: 500 },
      prices: { api_calls: 0.002, storage: 0.00000000002 },
    });
    expect(created).toMatchObject({
      id,
      name: `Plan ${id}`,
      limits: { api_calls: 1000, teams: 4 },
      included: { api_calls: 500 },
      prices: { api_calls: 0.002, storage: 0.00000000002 },
      organizations: 0,
    });
    expect(await call<Plan>(`/v1/internal/plans/${id}`, 200, { scopes: INTERNAL })).toEqual(created);

    // Walk every page (2 a page): each plan once, the new one among them, oldest first.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { plans: Plan[]; hasMore: boolean; nextCursor: string | null } = await call(
        `/v1/internal/plans?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
        200,
        { scopes: INTERNAL },
      );
      expect(page.plans.length).toBeLessThanOrEqual(2);
      seen.push(...page.plans.map((p) => p.id));
      cursor = page.nextCursor;
      expect(page.hasMore).toBe(cursor !== null);
    } while (cursor);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(expect.arrayContaining([id, "free", "pro", "enterprise"]));

    const updated = await call<Plan>(`/v1/internal/plans/${id}`, 200, {
      scopes: INTERNAL,
      method: "PATCH",
      body: { name: "Renamed", limits: { api_calls: 2000 } },
    });
    // A field sent replaces the stored one; the others stay.
    expect(updated).toMatchObject({
      name: "Renamed",
      limits: { api_calls: 2000 },
      included: { api_calls: 500 },
      prices: { api_calls: 0.002 },
    });
    expect(await call(`/v1/internal/plans/${id}`, 200, { scopes: INTERNAL, method: "DELETE" })).toEqual({
      deleted: true,
    });
    expect((await rejected(`/v1/internal/plans/${id}`, 404, { scopes: INTERNAL })).code).toBe("not_found");
    expect(await planRow(id)).toBeUndefined();
  });

  it("rejects bad plan input with a 400 envelope naming the field, and writes nothing", async () => {
    const id = newPlanId();
    const post = (body: unknown) => rejected("/v1/internal/plans", 400, { scopes: INTERNAL, body });
    const unknownMetric = await post({ id, name: "x", limits: { api_calls: 10, bogus_metric: 5 } });
    expect(unknownMetric.code).toBe("validation_error");
    expect(unknownMetric.details?.issues).toEqual([
      expect.objectContaining({ path: "limits", code: "unrecognized_keys", in: "json" }),
    ]);
    expect(unknownMetric.message).toBeTruthy();
    // `teams` can be limited but is not billed: no allowance or price for it.
    expect((await post({ id, name: "x", prices: { teams: 1 } })).details?.issues?.[0]).toMatchObject({
      path: "prices",
      code: "unrecognized_keys",
    });
    expect((await post({ id, name: "x", limits: { api_calls: -1 } })).details?.issues?.[0]).toMatchObject({
      path: "limits.api_calls",
      code: "too_small",
    });
    expect((await post({ id, name: "x", included: { storage: "lots" } })).details?.issues?.[0]).toMatchObject({
      path: "included.storage",
      code: "invalid_type",
    });
    expect((await post({ id, name: "x", limits: { api_calls: 1e300 } })).details?.issues?.[0]).toMatchObject({
      path: "limits.api_calls",
      code: "too_big",
    });
    expect((await post({ id, name: "x", limit: { api_calls: 1 } })).details?.issues?.[0]?.code).toBe(
      "unrecognized_keys",
    );
    expect((await post({ id: "no spaces", name: "x" })).details?.issues?.[0]?.path).toBe("id");
    expect((await post({ id })).details?.issues?.[0]?.path).toBe("name");
    expect((await rejected("/v1/internal/plans", 400, { scopes: INTERNAL, raw: '{"id":"x",' })).code).toBe(
      "invalid_json",
    );
    expect(await planRow(id)).toBeUndefined();

    await createPlan(id, { limits: { api_calls: 10 } });
    const patch = (body: unknown) =>
      rejected(`/v1/internal/plans/${id}`, 400, { scopes: INTERNAL, method: "PATCH", body });
    expect((await patch({ limits: { api_calls: 20, nope: 1 } })).details?.issues?.[0]?.code).toBe("unrecognized_keys");
    expect((await patch({})).code).toBe("validation_error");
    expect((await patch({ name: "" })).details?.issues?.[0]?.path).toBe("name");
    expect(await planRow(id)).toEqual({ name: `Plan ${id}`, limits: { api_calls: 10 } });

    const dup = await rejected("/v1/internal/plans", 409, { scopes: INTERNAL, body: { id, name: "Other" } });
    expect(dup.code).toBe("conflict");
    expect(await planRow(id)).toEqual({ name: `Plan ${id}`, limits: { api_calls: 10 } });
    expect(
      (
        await rejected(`/v1/internal/plans/${newPlanId()}`, 404, {
          scopes: INTERNAL,
          method: "PATCH",
          body: { name: "n" },
        })
      ).code,
    ).toBe("not_found");
  });

  it("refuses to delete a plan still assigned (409) or the default plan, and deletes it once free", async () => {
    const id = newPlanId();
    const org = newOrg();
    await createPlan(id);
    await assign(org, { planId: id });
    expect((await call<Plan>(`/v1/internal/plans/${id}`, 200, { scopes: INTERNAL })).organizations).toBe(1);
    const busy = await rejected(`/v1/internal/plans/${id}`, 409, { scopes: INTERNAL, method: "DELETE" });
    expect(busy).toMatchObject({ code: "conflict", details: { planId: id, organizations: 1 } });
    expect(await planRow(id)).toBeDefined();
    expect((await rejected("/v1/internal/plans/free", 409, { scopes: INTERNAL, method: "DELETE" })).code).toBe(
      "conflict",
    );
    expect(
      (await rejected(`/v1/internal/plans/${newPlanId()}`, 404, { scopes: INTERNAL, method: "DELETE" })).code,
    ).toBe("not_found");
    await assign(org, { planId: "pro" });
    await call(`/v1/internal/plans/${id}`, 200, { scopes: INTERNAL, method: "DELETE" });
    expect(await planRow(id)).toBeUndefined();
  });

  it("needs scope internal for every change and admin for the organization's own view", async () => {
    const org = newOrg();
    const other = newOrg();
    const id = newPlanId();
    const adminOf = (o: string) => ({ org: o, scopes: ["admin"] });
    // admin implies every scope but internal: operators' changes stay out of an organization's reach.
    for (const opts of [adminOf(org), { org, scopes: ["usage:read", "usage:write"] }]) {
      expect((await rejected("/v1/internal/plans", 403, { ...opts, body: { id, name: "x" } })).code).toBe("forbidden");
      expect((await rejected("/v1/internal/plans", 403, opts)).code).toBe("forbidden");
      expect((await rejected("/v1/internal/plans/free", 403, { ...opts, method: "DELETE" })).code).toBe("forbidden");
      expect(
        (await rejected(`/v1/orgs/${org}/plan`, 403, { ...opts, method: "PUT", body: { planId: "enterprise" } })).code,
      ).toBe("forbidden");
      expect(
        (await rejected(`/v1/orgs/${org}/plan/overrides`, 403, { ...opts, method: "PUT", body: { limits: {} } })).code,
      ).toBe("forbidden");
      expect((await rejected(`/v1/orgs/${org}/plan/overrides`, 403, { ...opts, method: "DELETE" })).code).toBe(
        "forbidden",
      );
    }
    expect(await planRow(id)).toBeUndefined();
    expect(await orgRow(org)).toBeUndefined();
    expect(await overrideRow(org)).toBeUndefined();
    expect(await planRow("free")).toBeDefined();

    // The effective plan: admin of the organization, or internal; another organization's admin gets 404.
    expect((await rejected(`/v1/orgs/${org}/plan`, 403, { org, scopes: ["usage:read", "usage:write"] })).code).toBe(
      "forbidden",
    );
    expect((await rejected(`/v1/orgs/${org}/plan`, 404, adminOf(other))).code).toBe("not_found");
    expect((await call<Effective>(`/v1/orgs/${org}/plan`, 200, adminOf(org))).planId).toBe("free");
    expect((await call<Effective>(`/v1/orgs/${org}/plan`, 200, { org: other, scopes: INTERNAL })).planId).toBe("free");
    expect((await rejected(`/v1/orgs/${org}/plan`, 401, { token: null })).code).toBe("unauthorized");
  });
});

describe("an organization's plan: assignment, overrides, effective terms", () => {
  it("merges overrides over the plan, shows what is overridden, and emits organization.plan.changed", async () => {
    const org = newOrg();
    const id = newPlanId();
    await createPlan(id, {
      limits: { api_calls: 100, documents: 10, teams: 2 },
      included: { api_calls: 50 },
      prices: { api_calls: 0.01 },
    });
    const anchor = new Date(Math.floor((Date.now() - 3 * 86_400_000) / 60_000) * 60_000);
    const assigned = await assign(org, { planId: id, billingAnchor: anchor.toISOString() });
    const period = billingPeriod(anchor, new Date());
    expect(assigned).toMatchObject({
      organizationId: org,
      planId: id,
      planName: `Plan ${id}`,
      billingAnchor: anchor.toISOString(),
      currentPeriod: { start: period.start.toISOString(), end: period.end.toISOString() },
      limits: { api_calls: 100, documents: 10, teams: 2 },
      overridden: [],
    });
    expect(new Date((await orgRow(org))!.billing_anchor).toISOString()).toBe(anchor.toISOString());

    const overridden = await putOverrides(org, {
      limits: { api_calls: 500, documents: null },
      prices: { api_calls: 0.02 },
    });
    const expected = {
      planId: id,
      limits: { api_calls: 500, teams: 2 }, // documents: null = unlimited
      included: { api_calls: 50 },
      prices: { api_calls: 0.02 },
      plan: {
        limits: { api_calls: 100, documents: 10, teams: 2 },
        included: { api_calls: 50 },
        prices: { api_calls: 0.01 },
      },
      overrides: { limits: { api_calls: 500, documents: null }, included: {}, prices: { api_calls: 0.02 } },
      overridden: ["limits.api_calls", "limits.documents", "prices.api_calls"],
    };
    expect(overridden).toMatchObject(expected);
    // The organization's own admin sees the same.
    expect(await call<Effective>(`/v1/orgs/${org}/plan`, 200, { org, scopes: ["admin"] })).toMatchObject(expected);
    // The quota status reads the effective limits too.
    const status = await call<{ plan: string; metrics: { metricType: string; limit: number | null }[] }>(
      `/v1/orgs/${org}/usage/quota`,
      200,
      { org, scopes: ["usage:read"] },
    );
    expect(status.plan).toBe(id);
    expect(Object.fromEntries(status.metrics.map((m) => [m.metricType, m.limit]))).toMatchObject({
      api_calls: 500,
      documents: null,
    });

    const cleared = await call<Effective>(`/v1/orgs/${org}/plan/overrides`, 200, {
      scopes: INTERNAL,
      method: "DELETE",
    });
    expect(cleared).toMatchObject({ limits: { api_calls: 100, documents: 10, teams: 2 }, overridden: [] });
    expect(await overrideRow(org)).toBeUndefined();

    const events = await planEvents(org);
    expect(events.map((e) => e.reason)).toEqual(["plan_assigned", "overrides_changed", "overrides_changed"]);
    expect(events[0]).toMatchObject({ planId: id, previousPlanId: "free", billingAnchor: anchor.toISOString() });
    expect(events[1]).toMatchObject({ planId: id, previousPlanId: id, limits: { api_calls: 500, teams: 2 } });
  });

  it("bills reports with the effective allowances and prices", async () => {
    const org = newOrg();
    await setPlan(org, {}, { api_calls: 10 }, { api_calls: 0.5 });
    await putOverrides(org, { included: { api_calls: 2 }, prices: { api_calls: 1 } });
    await record(Array.from({ length: 5 }, () => ev(org, { timestamp: hoursAgo(2) })));
    const r = await usage().generateUsageReport(org, hoursAgo(24), hoursAgo(-1));
    expect(r.lineItems.find((l) => l.metricType === "api_calls")).toEqual({
      metricType: "api_calls",
      quantity: 5,
      included: 2,
      overage: 3,
      unitPrice: 1,
      amount: 3,
    });
  });

  it("limits teams by the effective plan", async () => {
    const org = newOrg();
    const id = newPlanId();
    await createPlan(id, { limits: { teams: 1 } });
    await assign(org, { planId: id });
    const team = (name: string) =>
      api(`/v1/orgs/${org}/teams`, { org, user: "ana", scopes: ["teams:write"], body: { name } });
    expect((await team("One")).status).toBe(201);
    const refused = await team("Two");
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as Envelope).error.code).toBe("quota_exceeded");
    await putOverrides(org, { limits: { teams: 2 } });
    expect((await team("Two")).status).toBe(201);
  });

  it("rejects bad assignments and overrides with a 400 envelope, and writes nothing", async () => {
    const org = newOrg();
    const put = (path: string, body: unknown) =>
      rejected(`/v1/orgs/${org}${path}`, 400, { scopes: INTERNAL, method: "PUT", body });
    const unknownPlan = await put("/plan", { planId: newPlanId() });
    expect(unknownPlan.details?.issues).toEqual([expect.objectContaining({ path: "planId", code: "unknown_plan" })]);
    expect((await put("/plan", { planId: "pro", billingAnchor: "next tuesday" })).details?.issues?.[0]?.path).toBe(
      "billingAnchor",
    );
    expect((await put("/plan", { plan: "pro" })).code).toBe("validation_error");
    // Nothing written: not even the organization row the assignment would have created.
    expect(await orgRow(org)).toBeUndefined();

    await assign(org, { planId: "pro" });
    const before = await orgRow(org);
    const issue = async (body: unknown) => (await put("/plan/overrides", body)).details?.issues?.[0];
    expect(await issue({ limits: { api_calls: 1, unknown_metric: 2 } })).toMatchObject({
      path: "limits",
      code: "unrecognized_keys",
    });
    expect(await issue({ limits: { storage: -5 } })).toMatchObject({ path: "limits.storage", code: "too_small" });
    expect(await issue({ included: { api_calls: null } })).toMatchObject({ path: "included.api_calls" });
    expect(await issue({ prices: { collaborators: "8" } })).toMatchObject({ code: "invalid_type" });
    expect(await issue({ limit: {} })).toMatchObject({ code: "unrecognized_keys" });
    expect((await put("/plan", { planId: newPlanId() })).details?.issues?.[0]?.code).toBe("unknown_plan");
    expect(await overrideRow(org)).toBeUndefined();
    expect(await orgRow(org)).toEqual(before);
    expect((await planEvents(org)).map((e) => e.reason)).toEqual(["plan_assigned"]);
  });

  it("is effective in the organization object at once: the next checkQuota sees each change", async () => {
    const org = newOrg();
    const id = newPlanId();
    await createPlan(id, { limits: { api_calls: 5 } });
    await assign(org, { planId: id });
    // The object now caches the plan (for a minute): only the API's refresh can make the next checks right.
    expect(await check(org, 5)).toEqual({ allowed: true, remaining: 0, limit: 5 });
    expect(await check(org, 1)).toEqual({ allowed: false, remaining: 0, limit: 5 });

    await call(`/v1/internal/plans/${id}`, 200, {
      scopes: INTERNAL,
      method: "PATCH",
      body: { limits: { api_calls: 8 } },
    });
    expect(await check(org, 1)).toEqual({ allowed: true, remaining: 2, limit: 8 });

    await putOverrides(org, { limits: { api_calls: 3 } });
    expect(await check(org, 1)).toEqual({ allowed: false, remaining: 0, limit: 3 });

    await putOverrides(org, { limits: { api_calls: null } });
    expect(await check(org, 1000)).toEqual({ allowed: true, remaining: null, limit: null });

    await call(`/v1/orgs/${org}/plan/overrides`, 200, { scopes: INTERNAL, method: "DELETE" });
    // 5 + 1 reserved under the plan's 8 (the unlimited admission reserved nothing).
    expect(await check(org, 3)).toEqual({ allowed: false, remaining: 2, limit: 8 });

    await assign(org, { planId: "pro" });
    expect(await check(org, 3)).toEqual({ allowed: true, remaining: 1_000_000 - 9, limit: 1_000_000 });
    expect((await planEvents(org)).map((e) => e.reason)).toEqual([
      "plan_assigned",
      "plan_updated",
      "overrides_changed",
      "overrides_changed",
      "overrides_changed",
      "plan_assigned",
    ]);
  });
});

describe("in-app notifications", () => {
  interface Note {
    id: string;
    kind: string;
    title: string;
    body: Record<string, unknown>;
    createdAt: string;
    readAt: string | null;
  }
  interface Page {
    notifications: Note[];
    unreadCount: number;
    hasMore: boolean;
    nextCursor: string | null;
  }
  const list = (org: string, query = "") =>
    call<Page>(`/v1/orgs/${org}/usage/notifications${query}`, 200, { org, scopes: ["usage:read"] });
  const write = { scopes: ["usage:write"] };
  /** Five notifications a second apart (newest last), as the alerts write them. */
  const seed = (org: string) =>
    withDb(async (db) =>
      db.query(
        `insert into notifications (organization_id, kind, title, body, created_at)
         select $1, 'usage.quota.exceeded', 'n' || g, jsonb_build_object('n', g), $2::timestamptz + g * interval '1 second'
         from generate_series(1, 5) g`,
        [org, new Date(Date.now() - 60_000).toISOString()],
      ),
    );

  it("makes the usage alerts' notifications readable", async () => {
    const org = newOrg();
    await setPlan(org, { api_calls: 4 });
    await usage().subscribeToQuotaAlerts(org, {
      metricType: "api_calls",
      threshold: 50,
      notificationChannels: ["in_app"],
    });
    await record(Array.from({ length: 5 }, () => ev(org)));
    await deliverAlerts(org);
    const page = await list(org);
    expect(page.notifications.map((n) => n.kind)).toEqual(["usage.quota.exceeded", "usage.quota.threshold_crossed"]);
    expect(page.notifications[1]).toMatchObject({
      title: "api_calls reached 50% of the plan limit",
      body: { metricType: "api_calls", threshold: 50, limit: 4 },
      readAt: null,
    });
    expect(page.unreadCount).toBe(2);
  });

  it("pages newest first with a cursor, filters unread, marks one and all read", async () => {
    const org = newOrg();
    await seed(org);
    const first = await list(org, "?limit=2");
    expect(first.notifications.map((n) => n.title)).toEqual(["n5", "n4"]);
    expect(first).toMatchObject({ hasMore: true, unreadCount: 5 });
    const second = await list(org, `?limit=2&cursor=${encodeURIComponent(first.nextCursor!)}`);
    expect(second.notifications.map((n) => n.title)).toEqual(["n3", "n2"]);
    const third = await list(org, `?limit=2&cursor=${encodeURIComponent(second.nextCursor!)}`);
    expect(third.notifications.map((n) => n.title)).toEqual(["n1"]);
    expect(third).toMatchObject({ hasMore: false, nextCursor: null });

    const n4 = first.notifications[1]!;
    const read = await call<Note>(`/v1/orgs/${org}/usage/notifications/${n4.id}/read`, 200, {
      org,
      ...write,
      body: {},
    });
    expect(read).toMatchObject({ id: n4.id, title: "n4" });
    expect(Date.parse(read.readAt!)).toBeGreaterThan(Date.now() - 60_000);
    // Again: unchanged, keeps its first read time.
    expect(
      await call<Note>(`/v1/orgs/${org}/usage/notifications/${n4.id}/read`, 200, { org, ...write, method: "POST" }),
    ).toEqual(read);
    const unread = await list(org, "?unread=true");
    expect(unread.notifications.map((n) => n.title)).toEqual(["n5", "n3", "n2", "n1"]);
    expect(unread.unreadCount).toBe(4);

    // Up to what the reader saw (n3): n5 stays unread.
    const n3 = second.notifications[0]!;
    expect(
      await call(`/v1/orgs/${org}/usage/notifications/read-all`, 200, { org, ...write, body: { upToId: n3.id } }),
    ).toEqual({ marked: 3 });
    expect((await list(org, "?unread=true")).notifications.map((n) => n.title)).toEqual(["n5"]);
    expect(await call(`/v1/orgs/${org}/usage/notifications/read-all`, 200, { org, ...write, method: "POST" })).toEqual({
      marked: 1,
    });
    const all = await list(org);
    expect(all.unreadCount).toBe(0);
    expect(all.notifications.every((n) => n.readAt !== null)).toBe(true);
    expect(all.notifications.find((n) => n.id === n4.id)?.readAt).toBe(read.readAt);
  });

  it("keeps organizations apart, checks scopes and ids, and writes nothing on bad input", async () => {
    const org = newOrg();
    const other = newOrg();
    await seed(other);
    const theirs = (await list(other)).notifications[0]!;
    const path = (o: string, rest: string) => `/v1/orgs/${o}/usage/notifications${rest}`;
    expect((await rejected(path(org, `/${theirs.id}/read`), 404, { org, ...write, body: {} })).code).toBe("not_found");
    expect((await rejected(path(other, `/${theirs.id}/read`), 404, { org, ...write, body: {} })).code).toBe(
      "not_found",
    );
    expect((await rejected(path(other, ""), 404, { org, scopes: ["usage:read"] })).code).toBe("not_found");
    expect(
      (await rejected(path(other, `/${theirs.id}/read`), 403, { org: other, scopes: ["usage:read"], body: {} })).code,
    ).toBe("forbidden");
    expect((await rejected(path(other, ""), 403, { org: other, scopes: ["teams:read"] })).code).toBe("forbidden");
    expect((await rejected(path(other, "/read-all"), 403, { org: other, scopes: ["usage:read"], body: {} })).code).toBe(
      "forbidden",
    );
    expect((await rejected(path(other, "/abc/read"), 400, { org: other, ...write, body: {} })).code).toBe(
      "validation_error",
    );
    expect((await rejected(path(other, "?cursor=nonsense"), 400, { org: other, scopes: ["usage:read"] })).code).toBe(
      "validation_error",
    );
    expect((await rejected(path(other, "?limit=1000"), 400, { org: other, scopes: ["usage:read"] })).code).toBe(
      "validation_error",
    );
    const badUpTo = await rejected(path(other, "/read-all"), 400, { org: other, ...write, body: { upToId: "x" } });
    expect(badUpTo.details?.issues?.[0]?.path).toBe("upToId");
    expect(
      (await rejected(path(other, "/read-all"), 400, { org: other, ...write, body: { everything: true } })).code,
    ).toBe("validation_error");
    const after = await list(other);
    expect(after.unreadCount).toBe(5);
  });
});

describe("report listings and CSV export", () => {
  interface Report {
    reportId: string;
    periodStart: string;
    periodEnd: string;
    revision: number;
    lineItems: { metricType: string; quantity: number; amount: number; unitPrice: number }[];
  }
  interface Page {
    reports: Report[];
    hasMore: boolean;
    nextCursor: string | null;
  }
  const read = (org: string) => ({ org, scopes: ["usage:read"] });

  it("lists the latest revision of each period, newest period first, and each report's revisions", async () => {
    const org = newOrg();
    await setPlan(org, {}, { api_calls: 1 }, { api_calls: 0.25 });
    await record(Array.from({ length: 3 }, () => ev(org, { timestamp: hoursAgo(5) })));
    const gen = (from: number, to: number) => usage().generateUsageReport(org, hoursAgo(from), hoursAgo(to));
    const older = await gen(48, 24);
    const mid = await gen(24, 0);
    const r1 = await gen(12, -1);
    await record([ev(org, { timestamp: hoursAgo(4) })]);
    const r2 = await gen(12, -1);
    await record([ev(org, { timestamp: hoursAgo(3) })]);
    const r3 = await gen(12, -1);
    expect([r1.revision, r2.revision, r3.revision]).toEqual([1, 2, 3]);

    const first = await call<Page>(`/v1/orgs/${org}/usage/reports?limit=2`, 200, read(org));
    expect(first.reports.map((r) => [r.reportId, r.revision])).toEqual([
      [r3.reportId, 3],
      [mid.reportId, 1],
    ]);
    expect(first.hasMore).toBe(true);
    const second = await call<Page>(
      `/v1/orgs/${org}/usage/reports?limit=2&cursor=${encodeURIComponent(first.nextCursor!)}`,
      200,
      read(org),
    );
    expect(second).toMatchObject({ hasMore: false, nextCursor: null });
    expect(second.reports.map((r) => r.reportId)).toEqual([older.reportId]);

    // Any revision's id names the report: every revision, newest first, paged.
    const revs = await call<Page>(`/v1/orgs/${org}/usage/reports/${r1.reportId}/revisions`, 200, read(org));
    expect(revs.reports.map((r) => r.revision)).toEqual([3, 2, 1]);
    expect(revs.reports.map((r) => r.lineItems.find((l) => l.metricType === "api_calls")?.quantity)).toEqual([5, 4, 3]);
    const p1 = await call<Page>(`/v1/orgs/${org}/usage/reports/${r3.reportId}/revisions?limit=2`, 200, read(org));
    expect(p1.reports.map((r) => r.revision)).toEqual([3, 2]);
    const p2 = await call<Page>(
      `/v1/orgs/${org}/usage/reports/${r3.reportId}/revisions?limit=2&cursor=${encodeURIComponent(p1.nextCursor!)}`,
      200,
      read(org),
    );
    expect(p2.reports.map((r) => r.revision)).toEqual([1]);
    expect(p2.nextCursor).toBeNull();

    const other = newOrg();
    expect((await rejected(`/v1/orgs/${other}/usage/reports/${r1.reportId}/revisions`, 404, read(other))).code).toBe(
      "not_found",
    );
    expect((await rejected(`/v1/orgs/${org}/usage/reports`, 404, read(other))).code).toBe("not_found");
    expect((await rejected(`/v1/orgs/${org}/usage/reports`, 403, { org, scopes: ["teams:read"] })).code).toBe(
      "forbidden",
    );
    expect((await rejected(`/v1/orgs/${org}/usage/reports?cursor=%25%25`, 400, read(org))).code).toBe(
      "validation_error",
    );
    expect((await call<Page>(`/v1/orgs/${other}/usage/reports`, 200, read(other))).reports).toEqual([]);
  });

  it("exports a report's line items as CSV on ?format=csv or Accept: text/csv", async () => {
    const org = newOrg();
    await setPlan(org, {}, { api_calls: 2 }, { api_calls: 0.5, storage: 0.00000000002 });
    await record([
      ...Array.from({ length: 5 }, () => ev(org, { timestamp: hoursAgo(2) })),
      ev(org, { eventType: "storage.upload", quantity: 3e9, timestamp: hoursAgo(2) }),
    ]);
    const report = await usage().generateUsageReport(org, hoursAgo(24), hoursAgo(-1));
    const path = `/v1/orgs/${org}/usage/reports/${report.reportId}`;

    const res = await api(`${path}?format=csv`, read(org));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(res.headers.get("content-disposition")).toBe(
      `attachment; filename="usage-report_${org}_${report.periodStart.slice(0, 10)}_r1.csv"`,
    );
    const text = await res.text();
    expect(text.endsWith("\r\n")).toBe(true);
    const [header, ...lines] = text.trimEnd().split("\r\n");
    expect(header).toBe(
      "report_id,organization_id,period_start,period_end,revision,metric_type,quantity,included,overage,unit_price,amount,currency",
    );
    expect(lines).toHaveLength(report.lineItems.length);
    const rows = Object.fromEntries(lines.map((l) => l.split(",")).map((cells) => [cells[5], cells]));
    expect(rows.api_calls).toEqual([
      report.reportId,
      org,
      report.periodStart,
      report.periodEnd,
      "1",
      "api_calls",
      "5",
      "2",
      "3",
      "0.5",
      "1.5",
      "USD",
    ]);
    // Plain decimals, never exponent notation.
    expect(rows.storage?.slice(6)).toEqual(["3000000000", "0", "3000000000", "0.00000000002", "0.06", "USD"]);

    const viaAccept = await api(path, { ...read(org), headers: { accept: "text/csv" } });
    expect(viaAccept.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(await viaAccept.text()).toBe(text);
    const json = await api(path, { ...read(org), headers: { accept: "application/json, text/csv;q=0.5" } });
    expect(json.headers.get("content-type")).toMatch(/^application\/json/);
    expect(((await json.json()) as Report).reportId).toBe(report.reportId);
    const forced = await api(`${path}?format=json`, { ...read(org), headers: { accept: "text/csv" } });
    expect(forced.headers.get("content-type")).toMatch(/^application\/json/);
    await forced.body?.cancel();
    expect((await rejected(`${path}?format=xlsx`, 400, read(org))).code).toBe("validation_error");
    const other = newOrg();
    expect(
      (await rejected(`/v1/orgs/${other}/usage/reports/${report.reportId}?format=csv`, 404, read(other))).code,
    ).toBe("not_found");
  });
});
