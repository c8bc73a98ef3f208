import { env } from "cloudflare:workers";
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../../src/platform/logger.ts";
import { createPlatform } from "../../../src/platform/platform.ts";
import {
  ENTRY_TTL_SECONDS,
  STAMP_TTL_SECONDS,
  STORE_WINDOW_MS,
  StampCache,
  dep,
} from "../../../src/teams/authz/revision.ts";
import { PermissionCache } from "../../../src/teams/cache.ts";
import { AuthzService } from "../../../src/teams/authz/service.ts";
import { CHECK_STATEMENT } from "../../../src/teams/authz/store.ts";
import { createTeamService } from "../../../src/teams/service.ts";
import { api } from "../support/api.ts";
import { withDb } from "../support/backends.ts";
import type { Ref } from "./support.ts";
import { as, authz, json, newOrg, orgWithTree } from "./support.ts";

type Envelope = { error: { code: string; message: string; details?: unknown } };

const expectError = async (res: Response, status: number, code: string) => {
  const body = (await res.json()) as Envelope;
  expect({ status: res.status, code: body.error?.code }).toEqual({ status, code });
  return body;
};

/** The revision number inside a token (tests only: clients treat tokens as opaque). */
const revisionOf = (token: string) =>
  Number(atob(token.slice(4).replace(/-/g, "+").replace(/_/g, "/")).split("|").pop());

const count = (sql: string, params: unknown[]) =>
  withDb(async (db) => (await db.query<{ n: number }>(sql, params)).rows[0]!.n);

const grantsOf = (org: string) =>
  count("select count(*)::int as n from authz_grants where organization_id = $1", [org]);

const outboxTypes = (org: string) =>
  withDb(async (db) =>
    (
      await db.query<{ type: string }>(
        "select type from outbox where organization_id = $1 and type like 'authz.%' order by created_at, id",
        [org],
      )
    ).rows.map((r) => r.type),
  );

describe("permission catalog and roles", () => {
  it("serves the catalog and the built-in roles, defines custom roles and never weakens a built-in", async () => {
    const org = await newOrg();
    const boss = authz(org, "boss", { admin: true });
    const cat = await json<{
      permissions: { name: string; appliesTo: string }[];
      builtinRoles: { name: string; permissions: string[] }[];
    }>(await boss.call("/authz/permissions"), 200);
    expect(cat.permissions.find((p) => p.name === "documents.share")?.appliesTo).toBe("resources");
    expect(cat.permissions.find((p) => p.name === "team.move")?.appliesTo).toBe("teams");
    expect(cat.builtinRoles.find((r) => r.name === "member")?.permissions).toEqual([
      "documents.read",
      "documents.comment",
      "documents.write",
    ]);

    const created = await boss.role("viewer", ["documents.read"]);
    expect(created.status).toBe(201);
    expect(created.headers.get("x-authz-revision")).toMatch(/^rv1_/);
    const replaced = await json<{ role: { permissions: string[] }; revision: string }>(
      await boss.role("viewer", ["documents.comment", "documents.read"]),
      200,
    );
    expect(replaced.role.permissions).toEqual(["documents.read", "documents.comment"]);

    // Bad input: 400 with the envelope, nothing written.
    const before = await count("select count(*)::int as n from authz_roles where organization_id = $1", [org]);
    await expectError(await boss.role("member", ["documents.read"]), 400, "validation_error");
    await expectError(await boss.role("editor", ["documents.fly"]), 400, "validation_error");
    await expectError(await boss.role("editor", ["team.delete"]), 400, "validation_error");
    await expectError(await boss.role("Bad Name", ["documents.read"]), 400, "validation_error");
    await expectError(
      await boss.call("/authz/roles/editor", { method: "PUT", body: { permissions: "x" } }),
      400,
      "validation_error",
    );
    await expectError(
      await boss.call("/authz/roles/editor", { method: "PUT", body: { permissions: [], extra: 1 } }),
      400,
      "validation_error",
    );
    await expectError(await authz(org, "ana").role("editor", ["documents.read"]), 403, "forbidden");
    expect(await count("select count(*)::int as n from authz_roles where organization_id = $1", [org])).toBe(before);

    // A built-in may be extended: member gains share.
    const ext = await json<{ role: { permissions: string[]; builtin: boolean } }>(
      await boss.role("member", ["documents.read", "documents.comment", "documents.write", "documents.share"]),
      201,
    );
    expect(ext.role).toMatchObject({ builtin: true });
    expect(ext.role.permissions).toContain("documents.share");
    const list = await json<{ roles: { name: string }[] }>(await boss.call("/authz/roles"), 200);
    expect(list.roles.map((r) => r.name)).toEqual(["owner", "admin", "member", "viewer"]);
    expect(await outboxTypes(org)).toEqual(["authz.role.created", "authz.role.updated", "authz.role.created"]);
  });

  it("applies a role change to every check at once, cached or not, and refuses to delete a role in use", async () => {
    const { boss, f, d } = await orgWithTree();
    await json(await boss.role("viewer", ["documents.read"]), 201);
    await json(await boss.grant(f, { type: "user", id: "vic" }, "viewer"), 201);
    expect((await boss.check("vic", "documents.comment", d)).allowed).toBe(false);
    expect((await boss.check("vic", "documents.comment", d)).cached).toBe(true);
    const changed = await json<{ revision: string }>(
      await boss.role("viewer", ["documents.read", "documents.comment"]),
      200,
    );
    // Without a token (the stamp of the role was raised) and with one.
    expect((await boss.check("vic", "documents.comment", d)).allowed).toBe(true);
    expect((await boss.check("vic", "documents.comment", d, changed.revision)).allowed).toBe(true);
    const inUse = await expectError(await boss.call("/authz/roles/viewer", { method: "DELETE" }), 409, "conflict");
    expect(inUse.error.details).toEqual({ grants: 1 });
    await expectError(await boss.call("/authz/roles/nope", { method: "DELETE" }), 404, "not_found");
    await json(await boss.revoke(f, { type: "user", id: "vic" }), 200);
    await json(await boss.call("/authz/roles/viewer", { method: "DELETE" }), 200);
    await expectError(await boss.grant(f, { type: "user", id: "vic" }, "viewer"), 400, "validation_error");
  });
});

describe("resources", () => {
  it("validates types and parents, refuses cycles, and lets only sharers move", async () => {
    const { org, boss, p, f, d } = await orgWithTree();
    const before = await count("select count(*)::int as n from authz_resources where organization_id = $1", [org]);
    await expectError(
      await boss.call("/authz/resources/spreadsheet/x", { method: "PUT", body: { parent: null } }),
      400,
      "validation_error",
    );
    await expectError(await boss.put({ type: "document", id: "d9" }, null), 400, "validation_error");
    await expectError(await boss.put({ type: "project", id: "p9" }, f), 400, "validation_error");
    await expectError(await boss.put({ type: "folder", id: "f9" }, d), 400, "validation_error");
    await expectError(await boss.put({ type: "folder", id: "f9" }, { type: "folder", id: "ghost" }), 404, "not_found");
    await json(await boss.put({ type: "folder", id: "f2" }, f), 201);
    await expectError(await boss.put(f, { type: "folder", id: "f2" }), 409, "cycle");
    await expectError(await boss.put(f, f), 409, "cycle");
    await expectError(await authz(org, "ana").put({ type: "project", id: "p2" }, null), 403, "forbidden");
    await expectError(await authz(org, "ana").put({ type: "document", id: "d2" }, f), 403, "forbidden");
    await expectError(await boss.call(`/authz/resources/project/${p.id}`, { method: "DELETE" }), 409, "conflict");
    expect(await count("select count(*)::int as n from authz_resources where organization_id = $1", [org])).toBe(
      before + 1,
    );

    // A writer of the folder may add a document; moving it out needs documents.share on it.
    await json(await boss.grant(f, { type: "user", id: "wes" }, "member"), 201);
    const wes = authz(org, "wes");
    await json(await wes.put({ type: "document", id: "d2" }, f), 201);
    await json(await boss.put({ type: "folder", id: "f3" }, p), 201);
    await json(await boss.grant({ type: "folder", id: "f3" }, { type: "user", id: "wes" }, "member"), 201);
    await expectError(await wes.put({ type: "document", id: "d2" }, { type: "folder", id: "f3" }), 403, "forbidden");
    const moved = await boss.put(d, { type: "folder", id: "f3" });
    expect(moved.status).toBe(200);
    const c = await boss.check("wes", "documents.write", d);
    expect(c.reason).toContain("folder f3");
    await json(await boss.call("/authz/resources/document/d2", { method: "DELETE" }), 200);
    expect(await outboxTypes(org)).toContain("authz.resource.moved");
  });
});

describe("grants and the one rule of who may grant what", () => {
  it("needs documents.share and every permission of the role, on grant, change and revoke; nothing written on refusal", async () => {
    const { org, boss, p, f, d } = await orgWithTree();
    await json(await boss.role("viewer", ["documents.read"]), 201);
    await json(await boss.role("sharer", ["documents.read", "documents.share"]), 201);
    await json(await boss.grant(f, { type: "user", id: "mo" }, "member"), 201);
    await json(await boss.grant(f, { type: "user", id: "sam" }, "sharer"), 201);
    const n = await grantsOf(org);
    const mo = authz(org, "mo");
    const sam = authz(org, "sam");
    // member has no documents.share
    const refused = await expectError(await mo.grant(d, { type: "user", id: "x" }, "viewer"), 403, "forbidden");
    expect(refused.error.details).toEqual({ missing: ["documents.share"] });
    // sam shares, but only what sam holds: viewer yes, member (write, comment) no.
    await json(await sam.grant(d, { type: "user", id: "x" }, "viewer"), 201);
    const over = await expectError(await sam.grant(d, { type: "user", id: "y" }, "member"), 403, "forbidden");
    expect(over.error.details).toEqual({ missing: ["documents.comment", "documents.write"] });
    // Taking away a role sam could not grant is refused too; a change counts both ends.
    await expectError(await sam.revoke(f, { type: "user", id: "mo" }), 403, "forbidden");
    await expectError(await sam.grant(f, { type: "user", id: "mo" }, "viewer"), 403, "forbidden");
    // Not above the folder: no rights on the project.
    await expectError(await sam.grant(p, { type: "user", id: "x" }, "viewer"), 403, "forbidden");
    expect(await grantsOf(org)).toBe(n + 1);
    // Bad input
    await expectError(await sam.grant(d, { type: "group", id: "x" } as never, "viewer"), 400, "validation_error");
    await expectError(
      await sam.call(`/authz/resources/document/d1/grants/user/x`, { method: "PUT", body: { role: 7 } }),
      400,
      "validation_error",
    );
    await expectError(await boss.grant(d, { type: "user", id: "x" }, "ghost-role"), 400, "validation_error");
    await expectError(
      await boss.grant({ type: "document", id: "ghost" }, { type: "user", id: "x" }, "viewer"),
      404,
      "not_found",
    );
    await expectError(await boss.revoke(d, { type: "user", id: "nobody" }), 404, "not_found");
    expect(await grantsOf(org)).toBe(n + 1);
    // A change of role replaces the grant and says so.
    const ch = await json<{ grant: { role: string } }>(await boss.grant(d, { type: "user", id: "x" }, "member"), 200);
    expect(ch.grant.role).toBe("member");
    await json(await boss.revoke(d, { type: "user", id: "x" }), 200);
    expect(await outboxTypes(org)).toEqual([
      "authz.resource.registered",
      "authz.resource.registered",
      "authz.resource.registered",
      "authz.role.created",
      "authz.role.created",
      "authz.grant.created",
      "authz.grant.created",
      "authz.grant.created",
      "authz.grant.role_changed",
      "authz.grant.revoked",
    ]);
  });

  it("grants to teams of the organization only, and never reveals a secret team", async () => {
    const { org, boss, d } = await orgWithTree();
    const other = await newOrg();
    const foreign = await as(other, "zed").createTeam("Foreign");
    await expectError(await boss.grant(d, { type: "team", id: foreign.id }, "member"), 404, "not_found");
    const ana = as(org, "ana");
    const secret = await ana.createTeam("Hidden", { visibility: "secret" });
    await json(await boss.grant(d, { type: "user", id: "sid" }, "owner"), 201);
    const sid = authz(org, "sid");
    const notSeen = await expectError(await sid.grant(d, { type: "team", id: secret.id }, "member"), 404, "not_found");
    expect(notSeen.error.message).not.toContain("Hidden");
    // ana reaches it: grants to it work; listing hides it from sid, shows it to ana.
    await json(await boss.grant(d, { type: "team", id: secret.id }, "member"), 201);
    await json(await boss.grant(d, { type: "user", id: "ana" }, "member"), 201);
    const forSid = await json<{ grants: { subject: { id: string } }[] }>(
      await sid.call("/authz/resources/document/d1/grants"),
      200,
    );
    expect(forSid.grants.map((g) => g.subject.id)).not.toContain(secret.id);
    const forAna = await json<{ grants: { subject: { id: string } }[] }>(
      await authz(org, "ana").call("/authz/resources/document/d1/grants"),
      200,
    );
    expect(forAna.grants.map((g) => g.subject.id)).toContain(secret.id);
    // A check for a member of the secret team, asked by sid: the reason does not name it.
    const c = await sid.check("ana", "documents.write", d);
    expect(c.allowed).toBe(true);
    const member = await ana.addMember(secret.id, "kit");
    expect(member.status).toBe(201);
    const viaSecret = await sid.check("kit", "documents.write", d, member.headers.get("x-authz-revision")!);
    expect(viaSecret.allowed).toBe(true);
    expect(viaSecret.reason).toContain("a team you cannot see");
    expect(JSON.stringify(viaSecret)).not.toContain(secret.id);
    expect(JSON.stringify(viaSecret)).not.toContain("Hidden");
    const who = await json<{ users: { userId: string; sources: unknown[] }[] }>(
      await sid.users(d, "documents.write"),
      200,
    );
    expect(who.users.map((u) => u.userId)).toEqual(["ana", "kit", "sid"]);
    expect(JSON.stringify(who)).not.toContain(secret.id);
  });
});

describe("checks", () => {
  it("says which grant, team and ancestor gave a permission; denies what no grant gives", async () => {
    const { org, boss, p, f, d } = await orgWithTree();
    const ana = as(org, "ana");
    const eng = await ana.createTeam("Eng");
    const be = await ana.createTeam("Backend", { parentTeamId: eng.id });
    await ana.addMember(be.id, "bob");
    await ana.addMember(eng.id, "eve");
    await json(await boss.grant(f, { type: "team", id: be.id }, "member"), 201);
    const bob = await boss.check("bob", "documents.write", d);
    expect(bob).toMatchObject({ allowed: true, cached: false });
    expect(bob.reason).toBe(
      `role member on folder f1, which contains document d1, granted to team Backend (${be.id}), as a member`,
    );
    const eve = await boss.check("eve", "documents.read", d);
    expect(eve.allowed).toBe(true);
    expect(eve.source?.via).toMatchObject({ id: eng.id, distance: 1 });
    expect(eve.reason).toContain(`as a member of ancestor team Eng (${eng.id})`);
    expect((await boss.check("bob", "documents.share", d)).reason).toBe(
      "role member reaches the user here but does not include documents.share",
    );
    expect(await boss.check("zed", "documents.read", p)).toMatchObject({
      allowed: false,
      reason: "no grant on project p1 or what contains it reaches the user",
    });
    // The folder's grant does not reach upwards.
    expect((await boss.check("bob", "documents.read", p)).allowed).toBe(false);
    // Organization admins (checking themselves) hold everything.
    expect((await boss.check("boss", "documents.delete", d)).reason).toBe("organization admin");
    // Bad input
    await expectError(await boss.checkRaw("bob", "documents.fly", d), 400, "validation_error");
    await expectError(await boss.checkRaw("bob", "team.read", d), 400, "validation_error");
    await expectError(
      await boss.checkRaw("bob", "documents.read", { type: "document", id: "ghost" }),
      404,
      "not_found",
    );
    await expectError(
      await boss.call("/authz/check", { body: { userId: "bob", permission: "documents.read" } }),
      400,
      "validation_error",
    );
    await expectError(
      await boss.call("/authz/check", {
        body: { userId: "bob", permission: "documents.read", resource: { type: "sheet", id: "x" } },
      }),
      400,
      "validation_error",
    );
  });

  it("keeps organizations apart", async () => {
    const { org, boss, d } = await orgWithTree();
    const other = await newOrg();
    const intruder = authz(other, "mal", { admin: true });
    // Their own organization has no such resource.
    await expectError(await intruder.checkRaw("bob", "documents.read", d), 404, "not_found");
    await expectError(await intruder.users(d, "documents.read"), 404, "not_found");
    // A token of another organization on this one's paths: 404, nothing revealed.
    const res = await api(`/v1/orgs/${org}/authz/check`, {
      org: other,
      user: "mal",
      scopes: ["teams:read", "admin"],
      body: { userId: "bob", permission: "documents.read", resource: d },
    });
    await expectError(res, 404, "not_found");
    const put = await api(`/v1/orgs/${org}/authz/resources/document/d1/grants/user/mal`, {
      org: other,
      user: "mal",
      scopes: ["teams:write", "admin"],
      method: "PUT",
      body: { role: "owner" },
    });
    await expectError(put, 404, "not_found");
    expect(await grantsOf(org)).toBe(0);
    // A revision token of another organization is refused.
    const theirs = await json<{ revision: string }>(await intruder.role("viewer", ["documents.read"]), 201);
    await expectError(await boss.checkRaw("bob", "documents.read", d, theirs.revision), 400, "validation_error");
  });

  it("reads an uncached check with one prepared statement, parsed once per connection", async () => {
    const { org, boss, d } = await orgWithTree();
    await json(await boss.grant(d, { type: "user", id: "ann" }, "member"), 201);
    const platform = createPlatform(env, createExecutionContext(), createLogger({ test: "prepared" }));
    const svc = new AuthzService({
      db: platform.db,
      redis: platform.redis,
      keys: platform.keys,
      config: platform.config.teams,
    });
    // Sequential calls share the pool's one connection: each check below misses the cache (a new user).
    const users = ["ann", "u1", "u2", "u3", "u4", "u5", "u6"];
    for (const u of users) {
      const c = await svc.check(org, u, "documents.write", d);
      expect({ u, allowed: c.allowed, cached: c.cached }).toEqual({ u, allowed: u === "ann", cached: false });
    }
    const { rows } = await platform.db.query<{ from_sql: boolean; runs: number }>(
      "select from_sql, (generic_plans + custom_plans)::int as runs from pg_prepared_statements where name = $1",
      [CHECK_STATEMENT],
    );
    // Planning the check's read cost more than running it: parsed once, then bound and executed.
    expect(rows).toEqual([{ from_sql: false, runs: users.length }]);
    platform.close();
  });
});

describe("read-your-writes", () => {
  it("returns a revision token from every write and never answers older than atLeast", async () => {
    const { org, boss, f, d } = await orgWithTree();
    const ana = as(org, "ana");
    const team = await ana.createTeam("T");
    const added = await ana.addMember(team.id, "bo");
    const t0 = added.headers.get("x-authz-revision");
    expect(t0).toMatch(/^rv1_/);
    const g = await boss.grant(f, { type: "team", id: team.id }, "member");
    const tg = ((await g.json()) as { revision: string }).revision;
    expect(g.headers.get("x-authz-revision")).toBe(tg);
    expect((await boss.check("bo", "documents.write", d, tg)).allowed).toBe(true);
    expect((await boss.check("bo", "documents.write", d, tg)).cached).toBe(true);
    const removed = await ana.call(`/teams/${team.id}/members/bo`, { method: "DELETE" });
    const tr = removed.headers.get("x-authz-revision")!;
    expect(tr).toMatch(/^rv1_/);
    const after = await boss.check("bo", "documents.write", d, tr);
    expect(after).toMatchObject({ allowed: false, cached: false });
    // The answer's revision is at least the token's.
    expect(revisionOf(after.revision)).toBeGreaterThanOrEqual(revisionOf(tr));
    await expectError(await boss.checkRaw("bo", "documents.write", d, "nonsense"), 400, "validation_error");
    const future = `rv1_${btoa(`${org}|999999`).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`;
    await expectError(await boss.checkRaw("bo", "documents.write", d, future), 400, "validation_error");
    await expectError(await boss.users(d, "documents.read", { atLeast: "rv1_zzz" }), 400, "validation_error");
  });

  it("invalidates per dependency: a change to one team leaves other cached checks warm", async () => {
    const { org, boss, p } = await orgWithTree();
    const ana = as(org, "ana");
    const teams = [];
    for (let i = 0; i < 4; i++) {
      const t = await ana.createTeam(`W${i}`);
      await ana.addMember(t.id, `w${i}`);
      const doc: Ref = { type: "document", id: `doc${i}` };
      await json(await boss.put(doc, p), 201);
      await json(await boss.grant(doc, { type: "team", id: t.id }, "member"), 201);
      teams.push({ t, doc });
    }
    for (let i = 0; i < 4; i++) await boss.check(`w${i}`, "documents.read", teams[i]!.doc);
    for (let i = 0; i < 4; i++) expect((await boss.check(`w${i}`, "documents.read", teams[i]!.doc)).cached).toBe(true);
    // One team's membership changes and one team moves: only their entries go cold.
    await ana.addMember(teams[0]!.t.id, "w1");
    await ana.move(teams[2]!.t.id, teams[3]!.t.id);
    const cached = [];
    for (let i = 0; i < 4; i++) cached.push((await boss.check(`w${i}`, "documents.read", teams[i]!.doc)).cached);
    expect(cached).toEqual([true, false, false, true]);
  });
});

describe("who can, and what can they", () => {
  it("lists the users with a permission, with sources, in pages", async () => {
    const { org, boss, f, d } = await orgWithTree();
    const ana = as(org, "ana");
    const eng = await ana.createTeam("Eng");
    for (const u of ["u1", "u2", "u3"]) await ana.addMember(eng.id, u);
    await json(await boss.grant(f, { type: "team", id: eng.id }, "member"), 201);
    await json(await boss.grant(d, { type: "user", id: "u2" }, "owner"), 201);
    await json(await boss.grant(d, { type: "user", id: "u9" }, "owner"), 201);
    const all: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await json<{
        users: { userId: string; sources: { grantId: string }[] }[];
        nextCursor: string | null;
      }>(await boss.users(d, "documents.read", { limit: 2, cursor }), 200);
      all.push(...page.users.map((u) => u.userId));
      if (page.users.find((u) => u.userId === "u2"))
        expect(page.users.find((u) => u.userId === "u2")!.sources).toHaveLength(2);
      cursor = page.nextCursor ?? undefined;
      pages += 1;
    } while (cursor && pages < 10);
    expect(all).toEqual(["ana", "u1", "u2", "u3", "u9"]);
    const sharers = await json<{ users: { userId: string }[] }>(await boss.users(d, "documents.share"), 200);
    expect(sharers.users.map((u) => u.userId)).toEqual(["u2", "u9"]);
    await expectError(await boss.users(d, "documents.read", { cursor: "bogus" }), 400, "validation_error");
    await expectError(await boss.users(d, "documents.read", { limit: 0 }), 400, "validation_error");
    await expectError(await boss.users(d, "team.read"), 400, "validation_error");
    // Only readers of the resource may ask.
    await expectError(await authz(org, "stranger").users(d, "documents.read"), 403, "forbidden");
    expect((await authz(org, "u1").users(d, "documents.read")).status).toBe(200);
  });

  it("lists the resources of a type a user can act on", async () => {
    const { org, boss, p, f } = await orgWithTree();
    for (const id of ["d2", "d3"]) await json(await boss.put({ type: "document", id }, f), 201);
    await json(await boss.put({ type: "document", id: "d4" }, p), 201);
    await json(await boss.grant(f, { type: "user", id: "rae" }, "member"), 201);
    const rae = authz(org, "rae");
    const docs = await json<{ resources: { id: string; sources: { resource: Ref }[] }[]; nextCursor: string | null }>(
      await rae.resources("rae", "document", "documents.write", { limit: 2 }),
      200,
    );
    expect(docs.resources.map((r) => r.id)).toEqual(["d1", "d2"]);
    expect(docs.resources[0]!.sources[0]!.resource).toEqual(f);
    const next = await json<{ resources: { id: string }[]; nextCursor: string | null }>(
      await rae.resources("rae", "document", "documents.write", { limit: 2, cursor: docs.nextCursor! }),
      200,
    );
    expect(next).toMatchObject({ resources: [{ id: "d3" }], nextCursor: null });
    expect(
      (await json<{ resources: unknown[] }>(await rae.resources("rae", "project", "documents.read"), 200)).resources,
    ).toEqual([]);
    expect(
      (await json<{ resources: unknown[] }>(await rae.resources("rae", "document", "documents.share"), 200)).resources,
    ).toEqual([]);
    await expectError(await authz(org, "snoop").resources("rae", "document", "documents.read"), 403, "forbidden");
    await expectError(await rae.resources("rae", "sheet", "documents.read"), 400, "validation_error");
    expect((await boss.resources("rae", "folder", "documents.read")).status).toBe(200);
  });

  it("lists a team's members with inherited ones: direct vs inherited, role filter, search, pages", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const root = await ana.createTeam("Root", { visibility: "public" });
    const mid = await ana.createTeam("Mid", { parentTeamId: root.id, visibility: "public" });
    const leaf = await ana.createTeam("Leaf", { parentTeamId: mid.id, visibility: "public" });
    await ana.addMember(root.id, "rita", "admin");
    await ana.addMember(mid.id, "max");
    await ana.addMember(leaf.id, "lea");
    await ana.addMember(leaf.id, "max");
    const internal = (userId: string, body: unknown) =>
      api(`/v1/internal/users/${userId}`, { scopes: ["internal"], method: "PUT", body });
    await json(await internal("lea", { name: "Léa Martin", email: "Lea@Example.com" }), 200);
    await json(await internal("max", { name: "Max Power", email: "max@example.com" }), 200);
    expect((await internal("max", { name: 3 })).status).toBe(400);
    expect((await api("/v1/internal/users/max", { method: "PUT", body: { name: "x" } })).status).toBe(403);

    type Page = {
      members: { userId: string; role: string; direct: boolean; sources: { teamId: string }[] }[];
      nextCursor: string | null;
    };
    const viewer = authz(org, "lea");
    const all = await json<Page>(await viewer.members(leaf.id), 200);
    expect(all.members.map((m) => [m.userId, m.role, m.direct])).toEqual([
      ["ana", "owner", true],
      ["lea", "member", true],
      ["max", "member", true],
      ["rita", "admin", false],
    ]);
    expect(all.members.find((m) => m.userId === "max")!.sources.map((s) => s.teamId)).toEqual([leaf.id, mid.id]);
    const inherited = await json<Page>(await viewer.members(leaf.id, { source: "inherited" }), 200);
    expect(inherited.members.map((m) => m.userId)).toEqual(["rita"]);
    const admins = await json<Page>(await viewer.members(leaf.id, { role: "admin" }), 200);
    expect(admins.members.map((m) => m.userId)).toEqual(["rita"]);
    const search = await json<Page>(await viewer.members(leaf.id, { q: "lea@example" }), 200);
    expect(search.members.map((m) => m.userId)).toEqual(["lea"]);
    const byName = await json<Page>(await viewer.members(leaf.id, { q: "POWER" }), 200);
    expect(byName.members.map((m) => m.userId)).toEqual(["max"]);
    expect((await json<Page>(await viewer.members(leaf.id, { q: "%" }), 200)).members).toEqual([]);
    const p1 = await json<Page>(await viewer.members(leaf.id, { limit: 3 }), 200);
    const p2 = await json<Page>(await viewer.members(leaf.id, { limit: 3, cursor: p1.nextCursor! }), 200);
    expect([...p1.members, ...p2.members].map((m) => m.userId)).toEqual(["ana", "lea", "max", "rita"]);
    expect(p2.nextCursor).toBeNull();
    await expectError(await viewer.members(leaf.id, { role: "king" }), 400, "validation_error");
    await expectError(await viewer.members(leaf.id, { source: "x" }), 400, "validation_error");
    await expectError(await viewer.members(leaf.id, { cursor: "nope" }), 400, "validation_error");
    await expectError(await viewer.members("team_nope"), 404, "not_found");
    const other = await newOrg();
    await expectError(await authz(other, "x", { admin: true }).members(leaf.id), 404, "not_found");
  });

  it("hides secret teams and private members from those who do not reach them", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const secret = await ana.createTeam("Covert", { visibility: "secret" });
    const child = await ana.createTeam("Open", { parentTeamId: secret.id, visibility: "public" });
    const priv = await ana.createTeam("Closed", { visibility: "private" });
    await ana.addMember(child.id, "olga");
    await ana.addMember(priv.id, "pia");
    const olga = authz(org, "olga");
    const outsider = authz(org, "out");
    await expectError(await outsider.members(secret.id), 404, "not_found");
    await expectError(await outsider.members(priv.id), 403, "forbidden");
    expect((await authz(org, "pia").members(priv.id)).status).toBe(200);
    // olga is in the public child; the secret parent's owner appears with the team blanked.
    const page = await json<{
      members: { userId: string; sources: { teamId: string; teamName: string; hidden?: boolean }[] }[];
    }>(await olga.members(child.id), 200);
    const inheritedAna = page.members.find((m) => m.userId === "ana")!;
    expect(inheritedAna.sources).toContainEqual({ teamId: "", teamName: "", role: "owner", distance: 1, hidden: true });
    expect(JSON.stringify(page)).not.toContain(secret.id);
    expect(JSON.stringify(page)).not.toContain("Covert");
  });
});

describe("team checks share the per-dependency invalidation", () => {
  it("keeps other teams' cached checks after a membership change and a move", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const a = await ana.createTeam("A");
    const b = await ana.createTeam("B");
    await ana.addMember(a.id, "x");
    await ana.addMember(b.id, "y");
    const ctx = createExecutionContext();
    const platform = createPlatform(env, ctx, createLogger({ test: "team-cache" }));
    const svc = createTeamService(platform);
    const cache = new PermissionCache(platform.redis, platform.keys);
    const fill = async () => {
      for (const [t, u] of [
        [a.id, "x"],
        [b.id, "y"],
      ] as const)
        await svc.checkPermission(t, u, "team.read");
      await svc.checkPermission(a.id, "x", "team.read"); // asked again: a fill of the first may still be landing
      await svc.checkPermission(b.id, "y", "team.read");
      await waitOnExecutionContext(ctx);
    };
    const warm = async () => [
      (await cache.lookup(a.id, "x")).grants !== undefined,
      (await cache.lookup(b.id, "y")).grants !== undefined,
    ];
    await fill();
    expect(await warm()).toEqual([true, true]);
    await ana.addMember(b.id, "z");
    expect(await warm()).toEqual([true, true]);
    await ana.addMember(b.id, "x");
    expect(await warm()).toEqual([false, true]);
    await fill();
    await ana.move(b.id, a.id);
    expect(await warm()).toEqual([true, false]);
    platform.close();
  });

  it("lets stamps expire after the entries they guard, and caches no answer read too long ago", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const team = await ana.createTeam("Stamped");
    const platform = createPlatform(env, createExecutionContext(), createLogger({ test: "stamps" }));
    const stamp = platform.keys.key("authz", org, "s", dep.user("x"));
    // A write's stamps carry a lifetime: they no longer pile up forever, one per team ever written.
    await ana.addMember(team.id, "x");
    const ttl = await platform.redis.ttl(stamp);
    expect(ttl).toBeGreaterThan(ENTRY_TTL_SECONDS + STORE_WINDOW_MS / 1000);
    expect(ttl).toBeLessThanOrEqual(STAMP_TTL_SECONDS);
    // …which is safe only because an answer is cached within STORE_WINDOW_MS of its read.
    const stamps = new StampCache(platform.redis, platform.keys);
    const entry = { r: 1, k: [dep.team(team.id)], v: "answer" };
    const fresh = stamps.entryKey(org, "test", "fresh");
    const stale = stamps.entryKey(org, "test", "stale");
    await stamps.set(fresh, entry, Date.now());
    await stamps.set(stale, entry, Date.now() - STORE_WINDOW_MS - 1);
    expect(await platform.redis.exists(fresh, stale)).toBe(1);
    const cache = new PermissionCache(platform.redis, platform.keys);
    await cache.set(org, "0", team.id, "late", [], { r: 1, k: [], readAt: Date.now() - STORE_WINDOW_MS - 1 });
    await cache.set(org, "0", team.id, "prompt", [], { r: 1, k: [], readAt: Date.now() });
    expect(await platform.redis.exists(platform.keys.key("perm", org, "w0", team.id, "late"))).toBe(0);
    expect(await platform.redis.exists(platform.keys.key("perm", org, "w0", team.id, "prompt"))).toBe(1);
    platform.close();
  });
});
