import { describe, expect, it } from "vitest";
import { settingsShape } from "../../../src/webhooks/settings.ts";
import { api, tokenFor } from "../support/api.ts";
import { withDb } from "../support/backends.ts";
import { csrfOf, fetchWorker, form, signIn } from "../support/console.ts";
import { newHook, newOrg, register, seedDeliveries } from "../support/webhooks.ts";

// The console's endpoint form in workerd: a labelled field for every setting the /v1 API takes,
// bodies that reach the API as a client would send them, and the API's refusals shown next to the
// fields they concern, with what was typed kept.

type Webhook = {
  id: string;
  url: string;
  description: string;
  events: string[];
  headers: Record<string, string>;
  notificationEmail: string | null;
  settings: Record<string, number | boolean>;
};

const settingKeys = Object.keys(settingsShape);
const numericKeys = settingKeys.filter((k) => k !== "ordered");

/** An attribute of the element with `id` (its opening tag), or undefined. */
function attrOf(html: string, id: string, attr: string): string | undefined {
  const tag = html.match(new RegExp(`<[a-z]+[^>]*\\sid="${id}"[^>]*>`))?.[0];
  return tag?.match(new RegExp(`\\s${attr}="([^"]*)"`))?.[1];
}

const entities: Record<string, string> = { "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'", "&amp;": "&" };

/** The text of the element with `id` (tags stripped, entities decoded). */
function textOf(html: string, id: string): string | undefined {
  const m = html.match(new RegExp(`<([a-z]+)[^>]*\\sid="${id}"[^>]*>([\\s\\S]*?)</\\1>`));
  return m?.[2]
    ?.replace(/<[^>]+>/g, "")
    .replace(/&(lt|gt|quot|#39|amp);/g, (e) => entities[e]!)
    .trim();
}

const webhook = async (org: string, id: string) =>
  (await (await api(`/v1/orgs/${org}/webhooks/${id}`, { org })).json()) as Webhook;

async function session(org: string) {
  const s = await signIn(await tokenFor({ org, scopes: ["admin"] }));
  return { session: s, csrf: await csrfOf(s) };
}

describe("console endpoint form", () => {
  it("has a labelled field for every per-endpoint setting, the notification address, headers and event types", async () => {
    const org = newOrg();
    const { session: s } = await session(org);
    const w = await register(org, newHook().url, ["team.*"], { settings: { maxAttempts: 4 } });
    for (const [path, prefix] of [
      ["/console/webhooks/new", "new"],
      [`/console/webhooks/${w.id}/edit`, "edit"],
    ] as const) {
      const html = await (await fetchWorker(path, { headers: { cookie: s } })).text();
      for (const name of [...settingKeys, "url", "description", "notificationEmail", "headers", "patterns"]) {
        const id = `${prefix}-${name}`;
        expect(attrOf(html, id, "name"), `${path}: field ${name}`).toBe(name);
        expect(html, `${path}: label of ${name}`).toMatch(new RegExp(`<label[^>]*for="${id}"`));
      }
      // Each number says its range (from the API's own schema) in a description tied to the field.
      for (const k of numericKeys) {
        const help = attrOf(html, `${prefix}-${k}`, "aria-describedby");
        expect(help, `${path}: ${k}`).toBe(`${prefix}-${k}-help`);
        expect(textOf(html, `${prefix}-${k}-help`), `${path}: ${k}`).toMatch(/\d/);
      }
    }
    const edit = await (await fetchWorker(`/console/webhooks/${w.id}/edit`, { headers: { cookie: s } })).text();
    expect(attrOf(edit, "edit-maxAttempts", "value")).toBe("4");
    expect(attrOf(edit, "edit-patterns", "value")).toBe("team.*");
  });

  it("creates an endpoint with every setting through the API", async () => {
    const org = newOrg();
    const { session: s, csrf } = await session(org);
    const hook = newHook();
    const settings = {
      maxAttempts: 7,
      backoffBaseMs: 2_000,
      backoffCapMs: 600_000,
      timeoutMs: 4_000,
      circuitFailureThreshold: 9,
      circuitSuccessThreshold: 3,
      circuitCooldownMs: 45_000,
      rateLimitPerSecond: 25,
      disableAfterFailingMs: 86_400_000,
    };
    const res = await fetchWorker(
      "/console/webhooks",
      form(s, [
        ["_csrf", csrf],
        ["url", hook.url],
        ["description", "all settings"],
        ["events", "team.created"],
        ["patterns", "usage.*"],
        ["headers", "X-Tenant: blue\nX-Env: test"],
        ["notificationEmail", "ops@example.com"],
        ["ordered", "on"],
        ...Object.entries(settings).map(([k, v]) => [k, String(v)] as [string, string]),
      ]),
    );
    expect(res.status).toBe(303);
    const id = decodeURIComponent(res.headers.get("location")!.split("/").pop()!);
    expect(await webhook(org, id)).toMatchObject({
      url: hook.url,
      description: "all settings",
      events: ["team.created", "usage.*"],
      headers: { "X-Tenant": "blue", "X-Env": "test" },
      notificationEmail: "ops@example.com",
      settings: { ...settings, ordered: true },
    });
  });

  it("saves only what the edit changed: an emptied setting returns to the default, untouched ones stay defaults", async () => {
    const org = newOrg();
    const { session: s, csrf } = await session(org);
    const w = await register(org, newHook().url, ["*"], {
      settings: { maxAttempts: 3, timeoutMs: 500 },
      notificationEmail: "old@example.com",
    });
    const before = await webhook(org, w.id);
    // The form as the page shows it (effective values), with one value changed and one emptied.
    const fields: [string, string][] = [
      ["_csrf", csrf],
      ["url", before.url],
      ["description", "edited"],
      ["events", "*"],
      ["patterns", ""],
      ["headers", ""],
      ["notificationEmail", ""],
      ...numericKeys.map((k) => [k, String(before.settings[k])] as [string, string]),
    ];
    const edited = fields.map(([k, v]): [string, string] =>
      k === "maxAttempts" ? [k, "5"] : k === "timeoutMs" ? [k, ""] : [k, v],
    );
    const res = await fetchWorker(`/console/webhooks/${w.id}/edit`, form(s, edited));
    expect(res.status).toBe(303);
    const after = await webhook(org, w.id);
    expect(after).toMatchObject({ description: "edited", notificationEmail: null });
    expect(after.settings).toEqual({ ...before.settings, maxAttempts: 5, timeoutMs: 1_000 });
    // Stored overrides: only the changed key; the emptied one removed, the unchanged defaults not pinned.
    const { rows } = await withDb((db) =>
      db.query<{ settings: Record<string, unknown> }>("select settings from webhooks where id = $1", [w.id]),
    );
    expect(rows[0]!.settings).toEqual({ maxAttempts: 5 });
  });

  it("shows the API's refusal next to each field it names, keeps what was typed, and writes nothing", async () => {
    const org = newOrg();
    const { session: s, csrf } = await session(org);
    const hook = newHook();
    const res = await fetchWorker(
      "/console/webhooks",
      form(s, [
        ["_csrf", csrf],
        ["url", hook.url],
        ["events", "team.created"],
        ["patterns", "nope.*"],
        ["headers", "Webhook-Id: mine"],
        ["maxAttempts", "0"],
        ["timeoutMs", "soon"],
        ["notificationEmail", "not-an-address"],
      ]),
    );
    expect(res.status).toBe(400);
    const html = await res.text();
    for (const [field, message] of [
      ["maxAttempts", />=\s?1/],
      ["timeoutMs", /number/],
      ["patterns", /nope\.\*.*unknown event type/],
      ["headers", /Webhook-Id.*cannot be overridden/],
      ["notificationEmail", /email/i],
    ] as const) {
      const id = `new-${field}`;
      expect(textOf(html, `${id}-error`), field).toMatch(message);
      expect(attrOf(html, id, "aria-invalid"), field).toBe("true");
      expect(attrOf(html, id, "aria-describedby")?.split(" "), field).toContain(`${id}-error`);
    }
    // A summary at the top of the form, announced, linking to each field.
    expect(attrOf(html, "new-errors", "role")).toBe("alert");
    expect(html).toMatch(/<a href="#new-maxAttempts">/);
    // What was typed is still there.
    expect(attrOf(html, "new-timeoutMs", "value")).toBe("soon");
    expect(attrOf(html, "new-url", "value")).toBe(hook.url);
    expect(html).toMatch(/<input[^>]*value="team\.created"[^>]*checked/);
    const { rows } = await withDb((db) => db.query("select 1 from webhooks where organization_id = $1", [org]));
    expect(rows).toHaveLength(0);

    // On edit, a rule across two settings (base above cap) lands on the field it names.
    const w = await register(org, hook.url);
    const bad = await fetchWorker(
      `/console/webhooks/${w.id}/edit`,
      form(s, [
        ["_csrf", csrf],
        ["url", hook.url],
        ["events", "*"],
        ["backoffBaseMs", "1800000"],
        ["backoffCapMs", "1000000"],
      ]),
    );
    expect(bad.status).toBe(400);
    const page = await bad.text();
    expect(textOf(page, "edit-backoffBaseMs-error")).toMatch(/must not exceed backoffCapMs/);
    expect(attrOf(page, "edit-backoffBaseMs", "value")).toBe("1800000");
    expect((await webhook(org, w.id)).settings.backoffBaseMs).toBe(60_000);
  });
});

describe("console delivery log", () => {
  /** The delivery ids a console page lists, in order. */
  const listed = (html: string) => [...html.matchAll(/<tr data-delivery="([^"]+)"/g)].map((m) => m[1]!);
  /** The "older" link's href, decoded. */
  const older = (html: string) => html.match(/<a[^>]*href="([^"]+)"[^>]*rel="next"/)?.[1]?.replaceAll("&amp;", "&");

  it("filters on the server: a match older than the newest hundred is found, time ranges and pages follow the API", async () => {
    const org = newOrg();
    const { session: s } = await session(org);
    const w = await register(org, newHook().url);
    // 130 deliveries; the oldest alone is a member.added.
    const all = await seedDeliveries(org, w.id, 130, [
      ...Array.from({ length: 129 }, (_, i) => (i % 2 ? "team.created" : "team.deleted")),
      "member.added",
    ]);
    const page = async (q: Record<string, string>) =>
      (await fetchWorker(`/console/webhooks/${w.id}?${new URLSearchParams(q)}`, { headers: { cookie: s } })).text();
    const fromApi = async (q: Record<string, string>) =>
      (
        (await (
          await api(`/v1/orgs/${org}/webhooks/${w.id}/deliveries?${new URLSearchParams(q)}`, { org })
        ).json()) as {
          deliveries: { id: string }[];
        }
      ).deliveries.map((d) => d.id);

    const rare = await page({ eventType: "member.added" });
    expect(listed(rare)).toEqual([all[129]!.id]);

    // A time range as the datetime-local inputs send it (minutes, no zone: UTC), with a status.
    const since = all[90]!.createdAt.slice(0, 16);
    const until = all[20]!.createdAt.slice(0, 16);
    const q = { status: "failed", since, until };
    const first = await page(q);
    const expected = await fromApi({ status: "failed", since: `${since}:00Z`, until: `${until}:00Z`, limit: "100" });
    expect(expected.length).toBeGreaterThan(30);
    expect(attrOf(first, "f-since", "value")).toBe(since);
    expect(attrOf(first, "f-until", "value")).toBe(until);

    // Pages of 25 through the cursor ("Older deliveries"), keeping the filters, until the last.
    const seen = listed(first);
    let next = older(first);
    for (let i = 0; next && i < 10; i++) {
      expect(next).toContain("status=failed");
      const html = await (await fetchWorker(next, { headers: { cookie: s } })).text();
      seen.push(...listed(html));
      next = older(html);
    }
    expect(next).toBeUndefined();
    expect(seen).toEqual(expected);
    expect(listed(first)).toHaveLength(25);
  });

  it("shows the API's refusal of a filter next to the filter form", async () => {
    const org = newOrg();
    const { session: s } = await session(org);
    const w = await register(org, newHook().url);
    await seedDeliveries(org, w.id, 3);
    const res = await fetchWorker(`/console/webhooks/${w.id}?since=soon&eventType=nope.created`, {
      headers: { cookie: s },
    });
    expect(res.status).toBe(200);
    const html = await res.text();
    const error = textOf(html, "filter-error");
    for (const part of ["validation_error", "since", "eventType: unknown event type"]) expect(error).toContain(part);
    expect(attrOf(html, "f-since", "aria-invalid")).toBe("true");
    expect(attrOf(html, "f-since", "aria-describedby")).toBe("filter-error");
    expect(listed(html)).toEqual([]);
  });
});
