import { describe, expect, it } from "vitest";
import { as, authz, json, orgWithTree } from "./support.ts";

describe("smoke", () => {
  it("grants through a folder and a team", async () => {
    const { org, boss, f, d } = await orgWithTree();
    const ana = as(org, "ana");
    const team = await ana.createTeam("Writers");
    await ana.addMember(team.id, "bo");
    const g = await boss.grant(f, { type: "team", id: team.id }, "member");
    expect(g.status).toBe(201);
    const c = await boss.check("bo", "documents.write", d);
    expect(c.allowed).toBe(true);
    expect(c.reason).toContain("folder f1");
    const u = await json<{ users: { userId: string }[] }>(await boss.users(d, "documents.read"), 200);
    expect(u.users.map((x) => x.userId)).toEqual(["ana", "bo"]);
    const rs = await json<{ resources: { id: string }[] }>(
      await authz(org, "bo").resources("bo", "document", "documents.read"),
      200,
    );
    expect(rs.resources.map((x) => x.id)).toEqual(["d1"]);
    const m = await json<{ members: { userId: string }[] }>(await boss.members(team.id), 200);
    expect(m.members.map((x) => x.userId)).toEqual(["ana", "bo"]);
  });
});
