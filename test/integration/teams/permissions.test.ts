import { env } from "cloudflare:workers";
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { app } from "../../../src/app.ts";
import { createLogger } from "../../../src/platform/logger.ts";
import { createPlatform } from "../../../src/platform/platform.ts";
import { createTeamService } from "../../../src/teams/service.ts";
import { api, tokenFor } from "../support/api.ts";
import { renderEmail } from "../../../src/platform/email.ts";
import { config, withDb } from "../support/backends.ts";
import { as, json, newOrg } from "./support.ts";

describe("permissions with inheritance", () => {
  it("applies a role held on the root to every team beneath, highest role winning", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const root = await ana.createTeam("Root");
    const mid = await ana.createTeam("Mid", { parentTeamId: root.id });
    const leaf = await ana.createTeam("Leaf", { parentTeamId: mid.id });
    await ana.addMember(root.id, "bo", "member");
    await ana.addMember(mid.id, "bo", "admin");
    const leafCheck = await ana.check(leaf.id, "bo", "team.invite");
    expect(leafCheck.allowed).toBe(true);
    expect(leafCheck.reason).toContain("admin");
    expect(leafCheck.reason).toContain(mid.id);
    expect((await ana.check(root.id, "bo", "team.invite")).allowed).toBe(false);
    expect((await ana.check(leaf.id, "bo", "team.delete")).allowed).toBe(false);
    const eff = await json<{
      role: string;
      permissions: string[];
      sources: Record<string, { type: string; teamId: string }>;
    }>(await ana.call(`/teams/${leaf.id}/permissions/bo`), 200);
    expect(eff.role).toBe("admin");
    expect(eff.permissions).toContain("team.create_subteam");
    expect(eff.sources["team.invite"]).toEqual({ type: "inherited", teamId: mid.id, role: "admin" });
    expect(await ana.check(leaf.id, "zed", "team.read")).toEqual({
      allowed: false,
      reason: "not a member of this team or any team above it",
    });
    expect(
      (await ana.call(`/teams/${leaf.id}/permissions/check`, { body: { userId: "bo", permission: "team.fly" } }))
        .status,
    ).toBe(400);
  });

  it("never answers from a stale cache entry after a change returns", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const team = await ana.createTeam("T");
    await ana.addMember(team.id, "bo", "admin");
    expect((await ana.check(team.id, "bo", "team.update")).allowed).toBe(true);
    expect((await ana.check(team.id, "bo", "team.update")).allowed).toBe(true); // now cached
    await ana.call(`/teams/${team.id}/members/bo`, { method: "PATCH", body: { role: "member" } });
    expect((await ana.check(team.id, "bo", "team.update")).allowed).toBe(false);
    await ana.call(`/teams/${team.id}/members/bo`, { method: "DELETE" });
    expect((await ana.check(team.id, "bo", "team.read")).allowed).toBe(false);
  });

  it("moves permissions with a moved subtree immediately", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const eng = await ana.createTeam("Eng");
    const sales = await ana.createTeam("Sales");
    const squad = await ana.createTeam("Squad", { parentTeamId: eng.id });
    await ana.addMember(eng.id, "bo", "owner");
    expect((await ana.check(squad.id, "bo", "team.delete")).allowed).toBe(true);
    expect((await ana.move(squad.id, sales.id)).status).toBe(200);
    expect((await ana.check(squad.id, "bo", "team.delete")).allowed).toBe(false);
  });

  it("lets organization admins do everything in their organization", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const team = await ana.createTeam("T");
    const boss = as(org, "boss", { admin: true });
    expect((await boss.call(`/teams/${team.id}`, { method: "PATCH", body: { description: "by admin" } })).status).toBe(
      200,
    );
    expect((await boss.addMember(team.id, "cy", "owner")).status).toBe(201);
    expect(await boss.check(team.id, "boss", "team.delete")).toEqual({ allowed: true, reason: "organization admin" });
  });
});

describe("membership", () => {
  it("refuses duplicates, checks the actor, and protects the last owner", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const team = await ana.createTeam("T");
    expect((await ana.addMember(team.id, "bo")).status).toBe(201);
    expect((await ana.addMember(team.id, "bo")).status).toBe(409);
    expect((await as(org, "bo").addMember(team.id, "cy")).status).toBe(403);
    const last = await ana.call(`/teams/${team.id}/members/ana`, { method: "DELETE" });
    expect(last.status).toBe(403);
    expect((await ana.call(`/teams/${team.id}/members/ana`, { method: "PATCH", body: { role: "admin" } })).status).toBe(
      403,
    );
    expect((await as(org, "bo").call(`/teams/${team.id}/members/bo`, { method: "DELETE" })).status).toBe(200); // leaving is allowed
  });

  it("keeps an owner when two owners remove themselves at once", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const team = await ana.createTeam("T");
    await ana.addMember(team.id, "bo", "owner");
    const [a, b] = await Promise.all([
      ana.call(`/teams/${team.id}/members/ana`, { method: "DELETE" }),
      as(org, "bo").call(`/teams/${team.id}/members/bo`, { method: "DELETE" }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 403]);
    const { rows } = await withDb((db) =>
      db.query<{ n: number }>("select count(*)::int as n from team_memberships where team_id = $1 and role = 'owner'", [
        team.id,
      ]),
    );
    expect(rows[0]?.n).toBe(1);
  });

  it("counts members toward the plan's collaborator limit", async () => {
    const org = await newOrg();
    await withDb(async (db) => {
      await db.query('insert into plans (id, name, limits) values ($1, $1, \'{"collaborators": 2, "teams": 10}\')', [
        `p_${org}`,
      ]);
      await db.query("update organizations set plan_id = $2 where id = $1", [org, `p_${org}`]);
    });
    const ana = as(org, "ana");
    const t1 = await ana.createTeam("T1");
    const t2 = await ana.createTeam("T2");
    expect((await ana.addMember(t1.id, "bo")).status).toBe(201);
    expect((await ana.addMember(t2.id, "bo")).status).toBe(201); // already a collaborator
    expect((await ana.addMember(t1.id, "cy")).status).toBe(429);
  });

  it("holds the collaborator limit under concurrent adds to different teams", async () => {
    const org = await newOrg();
    await withDb(async (db) => {
      await db.query('insert into plans (id, name, limits) values ($1, $1, \'{"collaborators": 2, "teams": 20}\')', [
        `p_${org}`,
      ]);
      await db.query("update organizations set plan_id = $2 where id = $1", [org, `p_${org}`]);
    });
    // Written directly: nothing else (an outbox relay) may hold connections while the adds race.
    const teams = [{ id: `team_${org}_1` }, { id: `team_${org}_2` }];
    await withDb(async (db) => {
      for (const t of teams) {
        await db.query(
          "insert into teams (id, organization_id, name, visibility, created_by) values ($1, $2, $1, 'private', 'ana')",
          [t.id, org],
        );
        await db.query(
          "insert into team_memberships (team_id, user_id, role, added_by) values ($1, 'ana', 'owner', 'ana')",
          [t.id],
        );
      }
    });
    // Line two adds of new people up (one seat is left): hold their teams' rows until both wait, then
    // let them go at once. Two, because a Worker invocation opens at most six connections at a time.
    // (Service calls, each on a platform of its own like a request: they interleave in this isolate.)
    const add = (teamId: string, userId: string) =>
      createTeamService(createPlatform(env, createExecutionContext(), createLogger()), {
        userId: "ana",
        organizationId: org,
        scopes: new Set(["teams:write"] as const),
      })
        .addMember(teamId, userId, "member", "ana")
        .then(
          () => 201,
          (err: { status?: number }) => err.status ?? 500,
        );
    let adds: Promise<number[]> | undefined;
    await withDb((db) =>
      db.transaction(async (tx) => {
        await tx.query("select id from teams where id = any($1) for update", [teams.map((t) => t.id)]);
        adds = Promise.all(teams.map((t, i) => add(t.id, `new${i}`)));
        await vi.waitFor(
          async () => {
            // Activity statistics are a snapshot per transaction: take a fresh one each time.
            await tx.query("select pg_stat_clear_snapshot()");
            const { rows } = await tx.query<{ n: number }>(
              "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
            );
            expect(rows[0]!.n).toBeGreaterThanOrEqual(2);
          },
          { timeout: 15_000, interval: 50 },
        );
      }),
    );
    expect((await adds!).sort()).toEqual([201, 429]);
    const { rows } = await withDb((db) =>
      db.query<{ n: number }>(
        "select count(distinct m.user_id)::int as n from team_memberships m join teams t on t.id = m.team_id where t.organization_id = $1",
        [org],
      ),
    );
    expect(rows[0]?.n).toBe(2);
  });
});

describe("invitations", () => {
  // The message as the invitee receives it: the outbox renders the token when it sends.
  const tokenFromEmail = async (to: string) => {
    const { rows } = await withDb((db) =>
      db.query<{ body_text: string; token_for: { subject: string; nonce: string } | null }>(
        "select body_text, token_for from outbound_emails where to_address = $1 and status <> 'cancelled' order by id desc limit 1",
        [to],
      ),
    );
    const text = rows[0] ? await renderEmail(rows[0], config().tokenSecret) : "";
    return /token[=: ]+([A-Za-z0-9_-]{43})/.exec(text)?.[1];
  };

  it("e-mails a token stored only as a hash; accepting with the invited e-mail joins once", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const team = await ana.createTeam("T");
    const email = `dee.${crypto.randomUUID().slice(0, 6)}@example.com`;
    const inv = await json<{ id: string; token: string; status: string; expiresAt: string }>(
      await ana.call(`/teams/${team.id}/invitations`, { body: { email, role: "admin", message: "welcome" } }),
      201,
    );
    expect(inv.status).toBe("pending");
    expect(Date.parse(inv.expiresAt) - Date.now()).toBeGreaterThan(6.9 * 86_400_000);
    expect(await tokenFromEmail(email)).toBe(inv.token);
    const stored = await withDb((db) =>
      db.query<{ token_hash: string }>("select token_hash from team_invitations where id = $1", [inv.id]),
    );
    expect(stored.rows[0]!.token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(stored.rows[0]!.token_hash).not.toContain(inv.token);

    const wrong = await api("/v1/invitations/accept", {
      org,
      user: "mallory",
      email: "mallory@example.com",
      scopes: ["teams:read"],
      body: { token: inv.token },
    });
    expect(wrong.status).toBe(403);
    const accept = () =>
      api("/v1/invitations/accept", {
        org,
        user: "dee",
        email: email.toUpperCase(),
        scopes: ["teams:read"],
        body: { token: inv.token },
      });
    const [r1, r2] = await Promise.all([accept(), accept()]);
    expect([r1.status, r2.status].sort()).toEqual([200, 400]);
    const { rows } = await withDb((db) =>
      db.query<{ role: string }>("select role from team_memberships where team_id = $1 and user_id = 'dee'", [team.id]),
    );
    expect(rows).toEqual([{ role: "admin" }]);
    const again = await accept();
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe("invalid_token");
  });

  it("answers 410 for expired and 400 for revoked or unknown tokens", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const team = await ana.createTeam("T");
    const a = await json<{ id: string; token: string }>(
      await ana.call(`/teams/${team.id}/invitations`, { body: { email: "x@example.com" } }),
      201,
    );
    const b = await json<{ id: string; token: string }>(
      await ana.call(`/teams/${team.id}/invitations`, { body: { email: "y@example.com" } }),
      201,
    );
    await withDb((db) =>
      db.query("update team_invitations set expires_at = now() - interval '1 second' where id = $1", [a.id]),
    );
    const expired = await api("/v1/invitations/accept", {
      org,
      user: "x",
      email: "x@example.com",
      scopes: ["teams:read"],
      body: { token: a.token },
    });
    expect(expired.status).toBe(410);
    expect((await ana.call(`/teams/${team.id}/invitations/${b.id}`, { method: "DELETE" })).status).toBe(200);
    const revoked = await api("/v1/invitations/accept", {
      org,
      user: "y",
      email: "y@example.com",
      scopes: ["teams:read"],
      body: { token: b.token },
    });
    expect(revoked.status).toBe(400);
    const unknown = await api("/v1/invitations/accept", {
      org,
      user: "y",
      email: "y@example.com",
      scopes: ["teams:read"],
      body: { token: "A".repeat(43) },
    });
    expect(unknown.status).toBe(400);
    const pending = await json<{ invitations: unknown[] }>(await ana.call(`/teams/${team.id}/invitations`), 200);
    expect(pending.invitations).toHaveLength(0);
  });

  it("lists expired invitations, whether the cron marked them or not", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const team = await ana.createTeam("T");
    const invite = async (email: string) =>
      json<{ id: string }>(await ana.call(`/teams/${team.id}/invitations`, { body: { email } }), 201);
    const [marked, unmarked, live] = [
      await invite("a@example.com"),
      await invite("b@example.com"),
      await invite("c@example.com"),
    ];
    await withDb(async (db) => {
      await db.query("update team_invitations set expires_at = now() - interval '1 minute' where id = any($1)", [
        [marked.id, unmarked.id],
      ]);
      await db.query("update team_invitations set status = 'expired' where id = $1", [marked.id]);
    });
    const list = async (status: string) =>
      (
        await json<{ invitations: { id: string }[] }>(
          await ana.call(`/teams/${team.id}/invitations?status=${status}`),
          200,
        )
      ).invitations
        .map((i) => i.id)
        .sort();
    expect(await list("expired")).toEqual([marked.id, unmarked.id].sort());
    expect(await list("pending")).toEqual([live.id]);
  });

  it("refuses a second pending invitation for the same address and team (409 naming the first)", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const team = await ana.createTeam("T");
    const first = await json<{ id: string }>(
      await ana.call(`/teams/${team.id}/invitations`, { body: { email: "d@example.com" } }),
      201,
    );
    const again = await ana.call(`/teams/${team.id}/invitations`, { body: { email: "D@example.com", role: "admin" } });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { error: { details: { invitationId: string } } }).error.details.invitationId).toBe(
      first.id,
    );
    // Once it expires, a new invitation may be sent.
    await withDb((db) =>
      db.query("update team_invitations set expires_at = now() - interval '1 second' where id = $1", [first.id]),
    );
    expect((await ana.call(`/teams/${team.id}/invitations`, { body: { email: "d@example.com" } })).status).toBe(201);
  });

  it("emits member events only for what an accepted invitation changed", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const team = await ana.createTeam("T");
    await ana.addMember(team.id, "dee", "member");
    const accept = (token: string) =>
      api("/v1/invitations/accept", {
        org,
        user: "dee",
        email: "dee@example.com",
        scopes: ["teams:read"],
        body: { token },
      });
    const invite = async (role: string) =>
      json<{ token: string }>(
        await ana.call(`/teams/${team.id}/invitations`, { body: { email: "dee@example.com", role } }),
        201,
      );
    expect((await accept((await invite("member")).token)).status).toBe(200);
    expect((await accept((await invite("admin")).token)).status).toBe(200);
    const types = await withDb(async (db) =>
      (
        await db.query<{ type: string }>(
          "select type from outbox where organization_id = $1 and (type like 'member.%' or type = 'invitation.accepted') and event->'data'->>'userId' = 'dee' order by seq",
          [org],
        )
      ).rows.map((r) => r.type),
    );
    expect(types).toEqual(["member.added", "invitation.accepted", "invitation.accepted", "member.role_changed"]);
  });

  it("rate-limits re-sending like sending, and announces it", async () => {
    const org = await newOrg();
    const strict = { ...env, TEAMS_INVITATION_RATE_LIMIT: "2" };
    const call = async (path: string, body: unknown) => {
      const ctx = createExecutionContext();
      const res = await app.request(
        `/v1/orgs/${org}${path}`,
        {
          method: "POST",
          headers: {
            authorization: `Bearer ${await tokenFor({ org, user: "ana" })}`,
            "content-type": "application/json",
          },
          body: JSON.stringify(body),
        },
        strict,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      return res;
    };
    const team = (await (await call("/teams", { name: "T" })).json()) as { id: string };
    const inv = (await (await call(`/teams/${team.id}/invitations`, { email: "r2@example.com" })).json()) as {
      id: string;
    };
    expect((await call(`/teams/${team.id}/invitations/${inv.id}/resend`, {})).status).toBe(200);
    const third = await call(`/teams/${team.id}/invitations/${inv.id}/resend`, {});
    expect(third.status).toBe(429);
    const sent = await withDb(async (db) =>
      (
        await db.query<{ resent: boolean | null }>(
          "select (event->'data'->>'resent')::boolean as resent from outbox where organization_id = $1 and type = 'invitation.sent' order by seq",
          [org],
        )
      ).rows.map((r) => r.resent ?? false),
    );
    expect(sent).toEqual([false, true]);
  });

  it("resends with a new token that replaces the old one", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const team = await ana.createTeam("T");
    const inv = await json<{ id: string; token: string }>(
      await ana.call(`/teams/${team.id}/invitations`, { body: { email: "r@example.com" } }),
      201,
    );
    const again = await json<{ token: string }>(
      await ana.call(`/teams/${team.id}/invitations/${inv.id}/resend`, { body: {} }),
      200,
    );
    expect(again.token).not.toBe(inv.token);
    const old = await api("/v1/invitations/accept", {
      org,
      user: "r",
      email: "r@example.com",
      scopes: ["teams:read"],
      body: { token: inv.token },
    });
    expect(old.status).toBe(400);
    const ok = await api("/v1/invitations/accept", {
      org,
      user: "r",
      email: "r@example.com",
      scopes: ["teams:read"],
      body: { token: again.token },
    });
    expect(ok.status).toBe(200);
  });
});
