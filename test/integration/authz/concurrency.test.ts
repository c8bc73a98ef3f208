import { describe, expect, it } from "vitest";
import type { Ref } from "./support.ts";
import { as, json, orgWithTree } from "./support.ts";

/**
 * Grants and revocations racing checks: every write is followed by a check with its token, while
 * other requests keep filling the cache with answers computed mid-write. A check given `atLeast`
 * must never return the state before the write.
 */
describe("concurrency: grant/revoke against checks with atLeast", () => {
  it("never answers from before the write, for direct grants and memberships", async () => {
    const { org, boss, f, d } = await orgWithTree();
    const ana = as(org, "ana");
    const team = await ana.createTeam("Racers");
    await json(await boss.grant(f, { type: "team", id: team.id }, "member"), 201);
    const rounds = 4;
    let stale = 0;
    let checked = 0;
    let stop = false;

    // Background readers: checks without a token, so entries are computed (and stored) while writes run.
    const readers = Array.from({ length: 2 }, async (_, i) => {
      while (!stop) {
        await boss.check(i === 0 ? "ug0" : "um0", "documents.write", d);
      }
    });

    const granter = async (user: string) => {
      for (let k = 0; k < rounds; k++) {
        const g = await json<{ revision: string }>(await boss.grant(d, { type: "user", id: user }, "member"), 201);
        const a = await boss.check(user, "documents.write", d, g.revision);
        checked++;
        if (!a.allowed) stale++;
        const r = await json<{ revision: string }>(await boss.revoke(d, { type: "user", id: user }), 200);
        const b = await boss.check(user, "documents.write", d, r.revision);
        checked++;
        if (b.allowed) stale++;
      }
    };
    const member = async (user: string) => {
      for (let k = 0; k < rounds; k++) {
        const add = await ana.addMember(team.id, user);
        expect(add.status).toBe(201);
        const a = await boss.check(user, "documents.write", d, add.headers.get("x-authz-revision")!);
        checked++;
        if (!a.allowed) stale++;
        const rm = await ana.call(`/teams/${team.id}/members/${user}`, { method: "DELETE" });
        expect(rm.status).toBe(200);
        const b = await boss.check(user, "documents.write", d, rm.headers.get("x-authz-revision")!);
        checked++;
        if (b.allowed) stale++;
      }
    };
    await Promise.all([granter("ug0"), granter("ug1"), member("um0")]);
    stop = true;
    await Promise.all(readers);
    expect({ checked, stale }).toEqual({ checked: rounds * 2 * 3, stale: 0 });
  }, 120_000);

  it("moves of folders and roles racing checks: the token's state or newer", async () => {
    const { boss, p, f, d } = await orgWithTree();
    const f2: Ref = { type: "folder", id: "f2" };
    await json(await boss.put(f2, p), 201);
    await json(await boss.role("viewer", ["documents.read"]), 201);
    await json(await boss.grant(f2, { type: "user", id: "val" }, "viewer"), 201);
    let stale = 0;
    for (let k = 0; k < 5; k++) {
      const into = await json<{ revision: string }>(await boss.put(d, f2), 200);
      const [inside, widened] = await Promise.all([
        boss.check("val", "documents.read", d, into.revision),
        boss
          .role("viewer", ["documents.read", "documents.comment"])
          .then((r) => r.json() as Promise<{ revision: string }>),
      ]);
      if (!inside.allowed) stale++;
      if (!(await boss.check("val", "documents.comment", d, widened.revision)).allowed) stale++;
      const narrowed = await json<{ revision: string }>(await boss.role("viewer", ["documents.read"]), 200);
      if ((await boss.check("val", "documents.comment", d, narrowed.revision)).allowed) stale++;
      const back = await json<{ revision: string }>(await boss.put(d, f), 200);
      if ((await boss.check("val", "documents.read", d, back.revision)).allowed) stale++;
    }
    expect(stale).toBe(0);
  }, 120_000);
});
