import { describe, expect, it } from "vitest";
import { withDb } from "../support/backends.ts";
import { suites } from "./cases.ts";
import type { Ref } from "./support.ts";
import { authz, json, newOrg } from "./support.ts";

const refOf = (s: string): Ref => {
  const [type, id] = s.split(":") as [Ref["type"], string];
  return { type, id };
};

describe.each(suites)("consistency: $name", (suite) => {
  it("answers every check and listing as the table says", async () => {
    const org = await newOrg();
    const boss = authz(org, "boss", { admin: true });
    // Teams and memberships straight into the database (the model); grants, resources and roles through the API.
    const teamIds = new Map(suite.teams.map((t) => [t.name, `team_${org}_${t.name}`]));
    await withDb(async (db) => {
      for (const t of suite.teams)
        await db.query(
          "insert into teams (id, organization_id, name, parent_team_id, visibility, created_by) values ($1, $2, $3, $4, $5, 'fixture')",
          [teamIds.get(t.name), org, t.name, t.parent ? teamIds.get(t.parent) : null, t.visibility ?? "public"],
        );
      for (const [team, user, role] of suite.members)
        await db.query(
          "insert into team_memberships (team_id, user_id, role, added_by) values ($1, $2, $3, 'fixture')",
          [teamIds.get(team), user, role],
        );
    });
    for (const [name, permissions] of Object.entries(suite.roles)) await json(await boss.role(name, permissions), 201);
    for (const [r, parent] of suite.resources) await json(await boss.put(refOf(r), parent ? refOf(parent) : null), 201);
    let last = "";
    for (const [r, subject, role] of suite.tuples) {
      const [type, id] = subject.split(":") as ["team" | "user", string];
      const res = await json<{ revision: string }>(
        await boss.grant(refOf(r), { type, id: type === "team" ? teamIds.get(id)! : id }, role),
        201,
      );
      last = res.revision;
    }
    const checks = [];
    for (const [user, permission, r] of suite.checks) {
      const c = await boss.check(user, permission, refOf(r), last);
      checks.push([user, permission, r, c.allowed]);
      expect(typeof c.reason).toBe("string");
      if (c.allowed) expect(c.source?.grantId).toMatch(/^grt_/);
    }
    expect(checks).toEqual(suite.checks);
    // Cached answers agree with fresh ones.
    for (const [user, permission, r, allowed] of suite.checks)
      expect([user, permission, r, (await boss.check(user, permission, refOf(r))).allowed]).toEqual([
        user,
        permission,
        r,
        allowed,
      ]);
    for (const [r, permission, users] of suite.listUsers) {
      const ref = refOf(r);
      const page = await json<{ users: { userId: string; sources: { permissions: string[] }[] }[] }>(
        await boss.users(ref, permission, { atLeast: last }),
        200,
      );
      expect([r, permission, page.users.map((u) => u.userId)]).toEqual([r, permission, users]);
      for (const u of page.users) {
        expect(u.sources.length).toBeGreaterThan(0);
        for (const s of u.sources) expect(s.permissions).toContain(permission);
      }
    }
    for (const [user, type, permission, ids] of suite.listResources) {
      const page = await json<{ resources: { id: string }[] }>(await boss.resources(user, type, permission), 200);
      expect([user, type, permission, page.resources.map((x) => x.id)]).toEqual([user, type, permission, ids]);
    }
  });
});
