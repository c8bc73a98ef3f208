import { env } from "cloudflare:workers";
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { app } from "../../../src/app.ts";
import { createLogger } from "../../../src/platform/logger.ts";
import { renderEmail } from "../../../src/platform/email.ts";
import { sendQueuedEmails } from "../../../src/platform/platform.ts";
import { getConfig } from "../../../src/platform/config.ts";
import { api, tokenFor } from "../support/api.ts";
import { config, withDb } from "../support/backends.ts";
import { newHook, received, script } from "../support/webhooks.ts";
import { as, json, newOrg } from "./support.ts";

const roleOf = async (teamId: string, userId: string) =>
  (
    await withDb((db) =>
      db.query<{ role: string }>("select role from team_memberships where team_id = $1 and user_id = $2", [
        teamId,
        userId,
      ]),
    )
  ).rows[0]?.role;

describe("least privilege: one rule of who may grant what", () => {
  it("an admin cannot become owner by deleting a team of their own into one they administer", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const bo = as(org, "bo");
    const x = await ana.createTeam("X");
    expect((await ana.addMember(x.id, "bo", "admin")).status).toBe(201);
    const y = await bo.createTeam("Y"); // bo owns Y
    const del = await bo.call(`/teams/${y.id}?reassignTo=${x.id}`, { method: "DELETE" });
    expect(del.status).toBe(200);
    expect(await del.json()).toMatchObject({ deleted: true, membersReassigned: 1, rolesCapped: 1 });
    expect(await roleOf(x.id, "bo")).toBe("admin");
    // …so the real owner cannot be demoted or removed by them.
    expect((await bo.call(`/teams/${x.id}/members/ana`, { method: "PATCH", body: { role: "member" } })).status).toBe(
      403,
    );
    expect((await bo.call(`/teams/${x.id}/members/ana`, { method: "DELETE" })).status).toBe(403);
    expect(await roleOf(x.id, "ana")).toBe("owner");
  });

  it("applies the same rule to invitations: admins invite members and admins, never owners", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const t = await ana.createTeam("T");
    await ana.addMember(t.id, "bo", "admin");
    const bo = as(org, "bo");
    expect(
      (await bo.call(`/teams/${t.id}/invitations`, { body: { email: "o@example.com", role: "owner" } })).status,
    ).toBe(403);
    expect(
      (await bo.call(`/teams/${t.id}/invitations`, { body: { email: "a@example.com", role: "admin" } })).status,
    ).toBe(201);
    await ana.addMember(t.id, "cy", "member");
    expect((await as(org, "cy").call(`/teams/${t.id}/invitations`, { body: { email: "m@example.com" } })).status).toBe(
      403,
    );
  });
});

describe("secret teams are invisible to those outside them, everywhere", () => {
  async function fixture() {
    const org = await newOrg();
    const ana = as(org, "ana");
    const secret = await ana.createTeam("Skunkworks", { visibility: "secret" });
    const child = await ana.createTeam("Open child", { parentTeamId: secret.id, visibility: "public" });
    const priv = await ana.createTeam("Private", { visibility: "private" });
    await ana.addMember(secret.id, "bo", "admin"); // bo's role flows into the public child
    await ana.addMember(priv.id, "bo");
    return { org, ana, secret, child, priv };
  }

  it("does not list another user's secret or private memberships", async () => {
    const { org, secret, child, priv } = await fixture();
    const ids = async (viewer: ReturnType<typeof as>) =>
      (
        await json<{ memberships: { teamId: string }[] }>(
          await viewer.call("/users/bo/teams?includeInherited=true"),
          200,
        )
      ).memberships
        .map((m) => m.teamId)
        .sort();
    expect(await ids(as(org, "eve"))).toEqual([child.id]);
    expect(await ids(as(org, "bo"))).toEqual([secret.id, child.id, priv.id].sort());
    expect(await ids(as(org, "eve", { admin: true }))).toEqual([secret.id, child.id, priv.id].sort());
  });

  it("names no secret ancestor in a hierarchy, a parent link or a child listing", async () => {
    const { org, secret, child } = await fixture();
    const eve = as(org, "eve");
    const h = await json<{ team: { parentTeamId?: string }; ancestors: { id: string }[] }>(
      await eve.call(`/teams/${child.id}/hierarchy`),
      200,
    );
    expect(h.ancestors).toEqual([]);
    expect(h.team.parentTeamId).toBeUndefined();
    const got = await json<{ parentTeamId?: string }>(await eve.call(`/teams/${child.id}`), 200);
    expect(got.parentTeamId).toBeUndefined();
    const list = await json<{ teams: { id: string; parentTeamId?: string }[] }>(await eve.call("/teams"), 200);
    expect(list.teams.find((t) => t.id === child.id)?.parentTeamId).toBeUndefined();
    expect(JSON.stringify(list)).not.toContain(secret.id);
    expect((await json<{ teams: unknown[] }>(await eve.call(`/teams?parentTeamId=${secret.id}`), 200)).teams).toEqual(
      [],
    );
    // A member of the secret team sees all of it.
    const bo = await json<{ ancestors: { id: string }[] }>(
      await as(org, "bo").call(`/teams/${child.id}/hierarchy`),
      200,
    );
    expect(bo.ancestors.map((a) => a.id)).toEqual([secret.id]);
  });

  it("gives permission reasons and sources without naming a secret team", async () => {
    const { org, secret, child } = await fixture();
    const eve = as(org, "eve");
    const check = await eve.check(child.id, "bo", "team.invite");
    expect(check.allowed).toBe(true);
    expect(check.reason).not.toContain(secret.id);
    expect(check.reason).not.toContain("Skunkworks");
    const eff = await eve.call(`/teams/${child.id}/permissions/bo`);
    const text = await eff.text();
    expect(eff.status).toBe(200);
    expect(text).not.toContain(secret.id);
    // Someone who may see it gets the full reason.
    expect((await as(org, "ana").check(child.id, "bo", "team.invite")).reason).toContain(secret.id);
  });
});

describe("invitation tokens and e-mails", () => {
  it("keeps no token in plain text at rest: not in the e-mail row, not in the idempotency record", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const t = await ana.createTeam("T");
    const email = `dee.${crypto.randomUUID().slice(0, 6)}@example.com`;
    const res = await api(`/v1/orgs/${org}/teams/${t.id}/invitations`, {
      org,
      user: "ana",
      scopes: ["teams:write"],
      headers: { "idempotency-key": `k-${email}` },
      body: { email },
    });
    const inv = await json<{ id: string; token: string }>(res, 201);
    const rows = await withDb(async (db) => ({
      emails: (
        await db.query<{ body_text: string; token_for: { subject: string; nonce: string } }>(
          "select body_text, token_for from outbound_emails where to_address = $1",
          [email],
        )
      ).rows,
      idem: (
        await db.query<{ response: unknown }>("select response from idempotency_keys where key = $1", [`k-${email}`])
      ).rows,
      dump: (
        await db.query<{ t: string }>(
          "select coalesce(string_agg(i::text, ' '), '') as t from team_invitations i where team_id = $1",
          [t.id],
        )
      ).rows[0]!.t,
    }));
    expect(rows.emails).toHaveLength(1);
    expect(rows.emails[0]!.body_text).not.toContain(inv.token);
    expect(rows.emails[0]!.body_text).toContain("{{token}}");
    expect(JSON.stringify(rows.idem)).not.toContain(inv.token);
    expect(rows.dump).not.toContain(inv.token);
    // …yet the message the invitee receives carries it.
    expect(await renderEmail(rows.emails[0]!, config().tokenSecret)).toContain(inv.token);
  });

  it("sends invitation e-mail through the outbox: a provider failure is retried with backoff, not lost", async () => {
    const org = await newOrg();
    const hook = newHook();
    await script(hook.name, { script: [{ status: 500 }], otherwise: { status: 200, body: '{"id":"prov-1"}' } });
    const withProvider = { ...env, EMAIL_API_URL: hook.url };
    const email = `eve.${crypto.randomUUID().slice(0, 6)}@example.com`;
    const teamRes = await api(`/v1/orgs/${org}/teams`, { org, user: "ana", body: { name: "T" } });
    const team = await json<{ id: string }>(teamRes, 201);
    const ctx = createExecutionContext();
    const res = await app.request(
      `/v1/orgs/${org}/teams/${team.id}/invitations`,
      {
        method: "POST",
        headers: {
          authorization: `Bearer ${await tokenFor({ org, user: "ana" })}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ email }),
      },
      withProvider,
      ctx,
    );
    expect(res.status).toBe(201); // queued durably with the invitation
    const { token } = (await res.json()) as { token: string };
    await waitOnExecutionContext(ctx); // the sender ran after the commit: the provider answered 500
    const state = () =>
      withDb(
        async (db) =>
          (
            await db.query<{ status: string; attempts: number; error: string | null }>(
              "select status, attempts, error from outbound_emails where to_address = $1",
              [email],
            )
          ).rows[0],
      );
    expect(await state()).toMatchObject({ status: "pending", attempts: 1, error: "provider answered 500" });
    // The backoff elapses; the next sweep delivers it.
    await withDb((db) => db.query("update outbound_emails set next_attempt_at = now() where to_address = $1", [email]));
    await sendQueuedEmails(getConfig(withProvider), createLogger(), 500);
    expect(await state()).toMatchObject({ status: "sent", attempts: 2, error: null });
    const sent = (await received(hook.name)).requests.map((r) => JSON.parse(r.body) as { to: string; text: string });
    expect(sent.filter((m) => m.to === email)).toHaveLength(2);
    expect(sent.at(-1)!.text).toContain(token);
  });
});
