import { env } from "cloudflare:workers";
import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../../src/index.ts";
import { withDb } from "../support/backends.ts";
import { as, json, newOrg } from "./support.ts";

const events = (org: string, prefix: string) =>
  withDb(async (db) =>
    (
      await db.query<{ type: string }>(
        "select type from outbox where organization_id = $1 and type like $2 order by seq",
        [org, `${prefix}%`],
      )
    ).rows.map((r) => r.type),
  );

describe("teams", () => {
  it("creates a team with its creator as owner, emitting events; names are unique case-insensitively", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const t = await ana.createTeam("Design", { description: "UX", visibility: "public" });
    const got = await json<{ members: { userId: string; role: string }[] }>(
      await ana.call(`/teams/${t.id}?includeMembers=true`),
      200,
    );
    expect(got.members).toEqual([expect.objectContaining({ userId: "ana", role: "owner" })]);
    expect(await events(org, "team.")).toEqual(["team.created"]);
    expect(await events(org, "member.")).toEqual(["member.added"]);
    expect((await ana.call("/teams", { body: { name: "design" } })).status).toBe(409);
  });

  it("merges settings on update and checks the actor", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const t = await ana.createTeam("Eng", { settings: { a: 1 } });
    const u = await json<{ settings: Record<string, number>; name: string }>(
      await ana.call(`/teams/${t.id}`, { method: "PATCH", body: { name: "Engineering", settings: { b: 2 } } }),
      200,
    );
    expect(u).toMatchObject({ name: "Engineering", settings: { a: 1, b: 2 } });
    expect((await as(org, "eve").call(`/teams/${t.id}`, { method: "PATCH", body: { name: "Hacked" } })).status).toBe(
      403,
    );
  });

  it("hides secret teams from non-members but not from members below or org admins", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const secret = await ana.createTeam("Skunkworks", { visibility: "secret" });
    const child = await ana.createTeam("Inner", { parentTeamId: secret.id, visibility: "private" });
    expect((await as(org, "eve").call(`/teams/${secret.id}`)).status).toBe(404);
    expect((await as(org, "eve", { admin: true }).call(`/teams/${secret.id}`)).status).toBe(200);
    await ana.addMember(secret.id, "bo");
    expect((await as(org, "bo").call(`/teams/${secret.id}`)).status).toBe(200);
    const list = await json<{ teams: { id: string }[] }>(await as(org, "eve").call("/teams"), 200);
    expect(list.teams.map((t) => t.id)).not.toContain(secret.id);
    const hier = await json<{ descendants: unknown[] }>(await ana.call(`/teams/${secret.id}/hierarchy`), 200);
    expect(hier.descendants).toHaveLength(1);
    // Private: visible to the org, but its members only to members.
    const viewed = await json<{ members?: unknown[] }>(
      await as(org, "eve").call(`/teams/${child.id}?includeMembers=true`),
      200,
    );
    expect(viewed.members).toBeUndefined();
  });

  it("returns ancestors and the descendant tree with depths, and enforces the depth limit", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const root = await ana.createTeam("Root");
    const a = await ana.createTeam("A", { parentTeamId: root.id });
    const b = await ana.createTeam("B", { parentTeamId: a.id });
    await ana.createTeam("A2", { parentTeamId: root.id });
    const up = await json<{ ancestors: { id: string }[] }>(
      await ana.call(`/teams/${b.id}/hierarchy?direction=ancestors`),
      200,
    );
    expect(up.ancestors.map((t) => t.id)).toEqual([a.id, root.id]);
    const down = await json<{
      descendants: { team: { name: string }; depth: number; children: { team: { name: string }; depth: number }[] }[];
    }>(await ana.call(`/teams/${root.id}/hierarchy?direction=descendants`), 200);
    expect(down.descendants.map((n) => [n.team.name, n.depth])).toEqual([
      ["A", 1],
      ["A2", 1],
    ]);
    expect(down.descendants[0]!.children.map((n) => [n.team.name, n.depth])).toEqual([["B", 2]]);
    let parent = b.id;
    for (let depth = 4; depth <= 20; depth++) parent = (await ana.createTeam(`L${depth}`, { parentTeamId: parent })).id;
    const tooDeep = await ana.call("/teams", { body: { name: "L21", parentTeamId: parent } });
    expect(tooDeep.status).toBe(400);
    expect(JSON.stringify(await tooDeep.json())).toContain("at most 20");
  });

  it("rejects moves that create cycles, also when two opposite moves race", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const a = await ana.createTeam("A");
    const b = await ana.createTeam("B", { parentTeamId: a.id });
    const cycle = await ana.move(a.id, b.id);
    expect(cycle.status).toBe(409);
    expect(((await cycle.json()) as { error: { code: string } }).error.code).toBe("cycle");
    const x = await ana.createTeam("X");
    const y = await ana.createTeam("Y");
    const [r1, r2] = await Promise.all([ana.move(x.id, y.id), ana.move(y.id, x.id)]);
    expect([r1.status, r2.status].sort()).toEqual([200, 409]);
    const { rows } = await withDb((db) =>
      db.query<{ id: string; parent_team_id: string | null }>(
        "select id, parent_team_id from teams where id = any($1) order by id",
        [[x.id, y.id]],
      ),
    );
    expect(rows.filter((r) => r.parent_team_id !== null)).toHaveLength(1);
    expect(await events(org, "team.moved")).toHaveLength(1);
  });

  it("deletes a team in one transaction: reassigns members (higher role kept), re-parents subteams, revokes invitations", async () => {
    const org = await newOrg();
    const ana = as(org, "ana", { email: "ana@example.com" });
    const old = await ana.createTeam("Old");
    const target = await ana.createTeam("Target");
    const child = await ana.createTeam("Child", { parentTeamId: old.id });
    await ana.addMember(old.id, "bo", "admin");
    await ana.addMember(target.id, "bo", "member");
    await ana.addMember(old.id, "cy");
    await ana.call(`/teams/${old.id}/invitations`, { body: { email: "dee@example.com" } });
    const del = await json<{ deleted: boolean; membersReassigned: number }>(
      await ana.call(`/teams/${old.id}?reassignTo=${target.id}`, { method: "DELETE" }),
      200,
    );
    expect(del).toEqual({ deleted: true, membersReassigned: 3, rolesCapped: 0 });
    const members = await withDb((db) =>
      db.query<{ user_id: string; role: string }>(
        "select user_id, role from team_memberships where team_id = $1 order by user_id",
        [target.id],
      ),
    );
    expect(members.rows).toEqual([
      { user_id: "ana", role: "owner" },
      { user_id: "bo", role: "admin" },
      { user_id: "cy", role: "member" },
    ]);
    const moved = await withDb((db) =>
      db.query<{ parent_team_id: string | null }>("select parent_team_id from teams where id = $1", [child.id]),
    );
    expect(moved.rows[0]?.parent_team_id).toBeNull();
    const inv = await withDb((db) => db.query("select 1 from team_invitations where team_id = $1", [old.id]));
    expect(inv.rows).toHaveLength(0); // cascaded with the team (it was revoked first)
    expect(await events(org, "team.deleted")).toHaveLength(1);

    const parent = await ana.createTeam("P");
    const kid = await ana.createTeam("K", { parentTeamId: parent.id });
    await ana.createTeam("G", { parentTeamId: kid.id });
    const gone = await json<{ deleted: boolean }>(
      await ana.call(`/teams/${parent.id}?deleteSubteams=true`, { method: "DELETE" }),
      200,
    );
    expect(gone.deleted).toBe(true);
    expect(
      (
        await withDb((db) =>
          db.query("select 1 from teams where organization_id = $1 and name in ('P','K','G')", [org]),
        )
      ).rows,
    ).toHaveLength(0);
  });

  it("enforces the plan's team limit", async () => {
    const org = await newOrg();
    await withDb(async (db) => {
      await db.query("insert into plans (id, name, limits) values ($1, $1, '{\"teams\": 2}') on conflict do nothing", [
        `p_${org}`,
      ]);
      await db.query("update organizations set plan_id = $2 where id = $1", [org, `p_${org}`]);
    });
    const ana = as(org, "ana");
    await ana.createTeam("One");
    await ana.createTeam("Two");
    const third = await ana.call("/teams", { body: { name: "Three" } });
    expect(third.status).toBe(429);
    expect(((await third.json()) as { error: { code: string } }).error.code).toBe("quota_exceeded");
  });

  it("lists a user's teams, with inherited ones on request", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const root = await ana.createTeam("Root");
    const kid = await ana.createTeam("Kid", { parentTeamId: root.id });
    const direct = await json<{ memberships: { teamId: string }[] }>(await ana.call("/users/ana/teams"), 200);
    expect(direct.memberships.map((m) => m.teamId).sort()).toEqual([root.id, kid.id].sort());
    await ana.addMember(root.id, "bo", "admin");
    // Seen by ana, who reaches both (private) teams: an outsider would not see these memberships.
    const inherited = await json<{ memberships: { teamId: string; role: string; inherited?: boolean }[] }>(
      await ana.call("/users/bo/teams?includeInherited=true"),
      200,
    );
    expect(inherited.memberships).toEqual([
      expect.objectContaining({ teamId: root.id, role: "admin" }),
      expect.objectContaining({ teamId: kid.id, role: "admin", inherited: true }),
    ]);
  });

  it("lets the organization restrict root teams to its admins; subteams follow the parent's rule", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const admin = as(org, "root", { admin: true });
    const root = await ana.createTeam("Before");
    expect(await json(await ana.call("/team-policy"), 200)).toEqual({
      organizationId: org,
      rootTeamCreation: "members",
    });
    expect((await ana.call("/team-policy", { method: "PUT", body: { rootTeamCreation: "admins" } })).status).toBe(403);
    expect((await admin.call("/team-policy", { method: "PUT", body: { rootTeamCreation: "sometimes" } })).status).toBe(
      400,
    );
    expect(
      await json(await admin.call("/team-policy", { method: "PUT", body: { rootTeamCreation: "admins" } }), 200),
    ).toEqual({
      organizationId: org,
      rootTeamCreation: "admins",
    });
    const refused = await ana.call("/teams", { body: { name: "After" } });
    expect(refused.status).toBe(403);
    expect(await ana.createTeam("Sub", { parentTeamId: root.id })).toMatchObject({ parentTeamId: root.id });
    expect((await admin.createTeam("By admin")).name).toBe("By admin");
  });

  it("expires invitations from the cron and emits invitation.expired", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const t = await ana.createTeam("T");
    const inv = await json<{ id: string }>(
      await ana.call(`/teams/${t.id}/invitations`, { body: { email: "late@example.com" } }),
      201,
    );
    await withDb((db) =>
      db.query("update team_invitations set expires_at = now() - interval '1 minute' where id = $1", [inv.id]),
    );
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "*/5 * * * *", scheduledTime: new Date() }), env, ctx);
    await waitOnExecutionContext(ctx);
    const { rows } = await withDb((db) =>
      db.query<{ status: string }>("select status from team_invitations where id = $1", [inv.id]),
    );
    expect(rows[0]?.status).toBe("expired");
    expect(await events(org, "invitation.")).toEqual(["invitation.sent", "invitation.expired"]);
  });
});
