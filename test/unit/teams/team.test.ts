import { describe, expect, it, vi } from "vitest";
import type { Db } from "../../../src/platform/db.ts";
import type { Redis } from "../../../src/platform/redis.ts";
import { PermissionCache } from "../../../src/teams/cache.ts";
import type { Grant } from "../../../src/teams/permissions.ts";
import {
  decide,
  effectiveGrant,
  effectivePermissions,
  higher,
  isPermission,
  permissionCatalog,
  rank,
  rolePermissions,
} from "../../../src/teams/permissions.ts";
import { createTeamSchema, updateTeamSchema } from "../../../src/teams/schemas.ts";
import { TeamManagementService, toTeam } from "../../../src/teams/team.ts";
import { httpUsersClient } from "../../../src/teams/users.ts";

const grant = (role: Grant["role"], distance: number, teamId = `t${distance}`): Grant => ({
  teamId,
  teamName: teamId.toUpperCase(),
  role,
  distance,
});

/** A service whose database must not be touched (validation and short-circuits happen first). */
function service(viewer?: { userId: string; orgAdmin: boolean; email?: string }) {
  const forbidden = () => {
    throw new Error("database used");
  };
  const db = { query: forbidden, transaction: forbidden, end: async () => {} } as unknown as Db;
  return new TeamManagementService({
    db,
    redis: {} as Redis,
    keys: { key: (...p) => p.join(":") },
    emailClient: { send: vi.fn() },
    config: { maxDepth: 20, invitationTtlDays: 7, invitationRateLimit: 50 },
    tokenSecret: "s".repeat(32),
    viewer,
  });
}

describe("roles and permissions", () => {
  it("orders roles and picks the higher", () => {
    expect([rank("member"), rank("admin"), rank("owner")]).toEqual([1, 2, 3]);
    expect(higher("member", "owner")).toBe("owner");
    expect(higher("admin", "member")).toBe("admin");
  });

  it("makes each role a superset of the one below", () => {
    for (const p of rolePermissions.member) expect(rolePermissions.admin).toContain(p);
    for (const p of rolePermissions.admin) expect(rolePermissions.owner).toContain(p);
    expect(rolePermissions.owner).toHaveLength(Object.keys(permissionCatalog).length);
  });

  it("keeps destructive permissions for owners", () => {
    for (const p of ["team.delete", "team.move", "team.manage_owners"] as const) {
      expect(rolePermissions.admin).not.toContain(p);
      expect(rolePermissions.owner).toContain(p);
    }
  });

  it("recognises permissions", () => {
    expect(isPermission("documents.write")).toBe(true);
    expect(isPermission("documents.burn")).toBe(false);
  });

  it("lets the highest role win, the nearest team on ties", () => {
    expect(effectiveGrant([grant("member", 0), grant("owner", 3)])?.role).toBe("owner");
    expect(effectiveGrant([grant("admin", 2, "far"), grant("admin", 1, "near")])?.teamId).toBe("near");
    expect(effectiveGrant([])).toBeUndefined();
  });

  it("explains allowed and denied decisions", () => {
    expect(decide("team.read", [grant("member", 0)], false)).toEqual({
      allowed: true,
      reason: "role member on this team",
    });
    expect(decide("team.invite", [grant("admin", 2, "root")], false)).toEqual({
      allowed: true,
      reason: "role admin on ancestor team ROOT (root)",
    });
    expect(decide("team.delete", [grant("admin", 0)], false)).toEqual({
      allowed: false,
      reason: "role admin on this team does not grant team.delete",
    });
    expect(decide("team.read", [], false).allowed).toBe(false);
    expect(decide("team.delete", [], true)).toEqual({ allowed: true, reason: "organization admin" });
  });

  it("attributes each effective permission to the grant that gives it", () => {
    const e = effectivePermissions([grant("member", 0, "here"), grant("admin", 1, "parent")], false);
    expect(e.sources["team.read"]).toEqual({ type: "inherited", teamId: "parent", role: "admin" });
    expect(e.sources["team.invite"]).toEqual({ type: "inherited", teamId: "parent", role: "admin" });
    expect(e.permissions).not.toContain("team.delete");
    const direct = effectivePermissions([grant("owner", 0, "here")], false);
    expect(direct.sources["team.delete"]).toEqual({ type: "direct", teamId: "here", role: "owner" });
  });

  it("gives organization admins everything", () => {
    const e = effectivePermissions([], true);
    expect(e.permissions).toHaveLength(Object.keys(permissionCatalog).length);
    expect(Object.values(e.sources).every((s) => s.type === "organization_admin")).toBe(true);
  });

  it("grants nothing without memberships", () => {
    expect(effectivePermissions([], false)).toEqual({ permissions: [], sources: {} });
  });
});

describe("team input", () => {
  it("trims names, defaults visibility to private and settings to {}", () => {
    const r = createTeamSchema.parse({ organizationId: "o", name: "  Design  ", creatorUserId: "u" });
    expect(r).toMatchObject({ name: "Design", visibility: "private", settings: {} });
  });

  it("rejects empty, long or control-character names and unknown visibility", () => {
    for (const bad of [
      { name: "   " },
      { name: "x".repeat(101) },
      { name: "a\u0007b" },
      { name: "ok", visibility: "hidden" },
    ]) {
      expect(
        createTeamSchema.safeParse({ organizationId: "o", creatorUserId: "u", ...bad }).success,
        JSON.stringify(bad),
      ).toBe(false);
    }
  });

  it("accepts only known update fields", () => {
    expect(updateTeamSchema.safeParse({ name: "n", settings: { a: 1 } }).success).toBe(true);
    expect(updateTeamSchema.safeParse({ parentTeamId: "x" }).success).toBe(false);
    expect(updateTeamSchema.safeParse({ description: null }).success).toBe(true);
  });

  it("maps rows to the seed's Team", () => {
    const t = toTeam({
      id: "t",
      organization_id: "o",
      name: "N",
      description: null,
      parent_team_id: null,
      visibility: "public",
      settings: {},
      created_by: "u",
      created_at: new Date(0),
      updated_at: new Date(0),
    });
    expect(t).toEqual({
      id: "t",
      organizationId: "o",
      name: "N",
      visibility: "public",
      settings: {},
      createdAt: "1970-01-01T00:00:00.000Z",
      updatedAt: "1970-01-01T00:00:00.000Z",
      createdBy: "u",
    });
  });
});

describe("service guards (before any database access)", () => {
  it("validates team creation", async () => {
    await expect(
      service().createTeam({ organizationId: "o", name: "", creatorUserId: "u", visibility: "public" }),
    ).rejects.toMatchObject({ code: "validation_error" });
  });

  it("validates roles, permissions and tokens", async () => {
    await expect(service().addMember("t", "u", "king" as "owner", "a")).rejects.toMatchObject({
      code: "validation_error",
    });
    await expect(service().updateMemberRole("t", "u", "king" as "owner", "a")).rejects.toMatchObject({
      code: "validation_error",
    });
    await expect(service().checkPermission("t", "u", "team.fly")).rejects.toMatchObject({ code: "validation_error" });
    await expect(service().acceptInvitation("short", "u", "a@example.com")).rejects.toMatchObject({
      code: "invalid_token",
    });
    await expect(
      service().createInvitation({ teamId: "t", email: "not-an-email", inviterUserId: "u" }),
    ).rejects.toMatchObject({ code: "validation_error" });
    await expect(service().deleteTeam("t", { actorUserId: "" })).rejects.toMatchObject({ code: "validation_error" });
  });

  it("answers organization admins without reading anything", async () => {
    expect(await service({ userId: "boss", orgAdmin: true }).checkPermission("t", "boss", "team.delete")).toEqual({
      allowed: true,
      reason: "organization admin",
    });
  });

  it("needs a verified e-mail to accept", async () => {
    await expect(service({ userId: "u", orgAdmin: false }).acceptInvitation("A".repeat(43), "u")).rejects.toMatchObject(
      { code: "forbidden" },
    );
  });
});

describe("permission cache", () => {
  function fakeRedis() {
    const store = new Map<string, string>();
    const redis = {
      eval: vi.fn(async (_script: string, keys: string[], args: string[]) => {
        const org = store.get(keys[0]!);
        if (!org) return [null, null, null];
        const v = store.get(`${args[0]}${org}:version`) ?? "0";
        return [org, v, store.get(`${args[0]}${org}:w${v}:${args[1]}`) ?? null];
      }),
      set: vi.fn(async (k: string, v: string) => void store.set(k, v)),
      incr: vi.fn(async (k: string) => {
        const n = Number(store.get(k) ?? "0") + 1;
        store.set(k, String(n));
        return n;
      }),
    };
    return { redis: redis as unknown as Redis, store };
  }

  it("reads version and entry in one call and misses after a bump", async () => {
    const { redis } = fakeRedis();
    const cache = new PermissionCache(redis, { key: (...p) => p.join(":") });
    await cache.setOrg("t", "o");
    const first = await cache.lookup("t", "u");
    expect(first).toEqual({ org: "o", version: "0" });
    await cache.set("o", first.version!, "t", "u", [grant("admin", 0)]);
    expect((await cache.lookup("t", "u")).grants).toEqual([grant("admin", 0)]);
    await cache.bump("o");
    expect(await cache.lookup("t", "u")).toEqual({ org: "o", version: "1" });
    expect((redis as unknown as { eval: ReturnType<typeof vi.fn> }).eval).toHaveBeenCalledTimes(3);
  });

  it("finds organization, version and entry by team in one call", async () => {
    const { redis } = fakeRedis();
    const cache = new PermissionCache(redis, { key: (...p) => p.join(":") });
    expect(await cache.lookup("t", "u")).toEqual({});
    await cache.setOrg("t", "o");
    expect(await cache.lookup("t", "u")).toEqual({ org: "o", version: "0" });
    await cache.set("o", "0", "t", "u", [grant("member", 0)]);
    expect((await cache.lookup("t", "u")).grants).toEqual([grant("member", 0)]);
    await cache.bump("o");
    expect(await cache.lookup("t", "u")).toEqual({ org: "o", version: "1" });
  });

  it("keeps organizations apart", async () => {
    const { redis } = fakeRedis();
    const cache = new PermissionCache(redis, { key: (...p) => p.join(":") });
    await cache.setOrg("t", "o1");
    await cache.set("o1", "0", "t", "u", [grant("owner", 0)]);
    await cache.bump("o2");
    expect((await cache.lookup("t", "u")).grants).toHaveLength(1);
  });
});

describe("users service client", () => {
  it("looks a page of users up in one call", async () => {
    const fetchFn = vi.fn(async (url: string | URL | Request) => {
      const ids = new URL(String(url)).searchParams.get("ids")!.split(",");
      return Response.json({ users: ids.map((id) => ({ id, name: id.toUpperCase() })) });
    });
    const users = await httpUsersClient("https://users.internal/api", fetchFn as unknown as typeof fetch).getUsers([
      "a",
      "b",
      "a",
    ]);
    expect(fetchFn).toHaveBeenCalledOnce();
    expect(String(fetchFn.mock.calls[0]![0])).toBe("https://users.internal/api/users?ids=a%2Cb");
    expect(users.get("b")).toEqual({ id: "b", name: "B" });
  });

  it("fails loudly on a bad answer", async () => {
    const client = httpUsersClient(
      "https://users.internal/",
      (async () => new Response("no", { status: 503 })) as unknown as typeof fetch,
    );
    await expect(client.getUsers(["a"])).rejects.toThrow(/503/);
  });
});
