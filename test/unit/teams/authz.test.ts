import { describe, expect, it } from "vitest";
import { decodeKeyCursor, encodeKeyCursor } from "../../../src/platform/cursor.ts";
import type { Hit } from "../../../src/teams/authz/model.ts";
import {
  decide,
  effectiveRole,
  rankHits,
  redactHits,
  roleProblem,
  secretTeams,
} from "../../../src/teams/authz/model.ts";
import { decodeRevision, dep, encodeRevision } from "../../../src/teams/authz/revision.ts";
import { checkDeps, resolveHits } from "../../../src/teams/authz/service.ts";
import type { CheckRead } from "../../../src/teams/authz/store.ts";
import { permissionsToGrant } from "../../../src/teams/permissions.ts";

const doc = { type: "document" as const, id: "d1" };
const folder = { type: "folder" as const, id: "f1" };
const project = { type: "project" as const, id: "p1" };

const hit = (over: Partial<Hit>): Hit => ({
  grantId: "grt_1",
  role: "member",
  permissions: ["documents.read", "documents.comment", "documents.write"],
  resource: doc,
  distance: 0,
  subject: { type: "user", id: "u1" },
  ...over,
});

describe("resolution rules", () => {
  it("denies what no grant gives", () => {
    expect(decide("documents.read", doc, [])).toEqual({
      allowed: false,
      reason: "no grant on document d1 or what contains it reaches the user",
    });
    const d = decide("documents.share", doc, [hit({})]);
    expect(d).toEqual({
      allowed: false,
      reason: "role member reaches the user here but does not include documents.share",
    });
  });

  it("inherits through folders: a container's grant decides, naming where it is", () => {
    const d = decide("documents.write", doc, [hit({ resource: folder, distance: 1 })]);
    expect(d.allowed).toBe(true);
    expect(d.reason).toBe("role member on folder f1, which contains document d1, granted to the user");
  });

  it("inherits through the team tree: names the granted team and the ancestor whose membership carries it", () => {
    const team = { id: "t_be", name: "Backend", visibility: "public" as const };
    const d = decide("documents.read", doc, [
      hit({
        subject: { type: "team", id: "t_be" },
        team,
        via: { id: "t_eng", name: "Eng", visibility: "public", distance: 1 },
      }),
    ]);
    expect(d.reason).toBe(
      "role member on document d1, granted to team Backend (t_be), as a member of ancestor team Eng (t_eng)",
    );
  });

  it("ranks the nearest resource first, then user grants, then the nearest membership", () => {
    const far = hit({ grantId: "g_far", resource: project, distance: 2 });
    const nearTeam = hit({
      grantId: "g_team",
      subject: { type: "team", id: "t" },
      team: { id: "t", name: "T", visibility: "public" },
      via: { id: "t", name: "T", visibility: "public", distance: 0 },
    });
    const nearUser = hit({ grantId: "g_user" });
    expect(rankHits([far, nearTeam, nearUser]).map((h) => h.grantId)).toEqual(["g_user", "g_team", "g_far"]);
    // The winner is the best hit that holds the permission, not merely the best hit.
    const weak = hit({ grantId: "g_weak", role: "viewer", permissions: ["documents.read"] });
    expect(decide("documents.write", doc, [weak, far]).source?.grantId).toBe("g_far");
  });

  it("custom roles hold exactly what they list; built-ins are extended, never weakened", () => {
    expect(effectiveRole("viewer", { permissions: ["documents.read"] })).toEqual({
      name: "viewer",
      permissions: ["documents.read"],
      builtin: false,
    });
    expect(effectiveRole("ghost")).toBeUndefined();
    expect(effectiveRole("member")?.permissions).toEqual(["documents.read", "documents.comment", "documents.write"]);
    // A stored extension of a built-in only adds, whatever it stores.
    expect(effectiveRole("member", { permissions: ["documents.share"] })?.permissions).toEqual([
      "documents.read",
      "documents.comment",
      "documents.write",
      "documents.share",
    ]);
    expect(effectiveRole("owner")?.permissions).toHaveLength(5);
    expect(roleProblem("member", ["documents.read"])?.message).toContain("cannot be weakened");
    expect(roleProblem("Editor", [])?.path).toBe("name");
    expect(roleProblem("editor", ["team.delete"])?.path).toBe("permissions");
    expect(roleProblem("editor", ["documents.read"])).toBeNull();
    // A role whose definition is gone holds nothing.
    const read = { hits: [{ ...hit({ role: "gone" }), permissions: undefined }], roles: [] } as unknown as CheckRead;
    expect(resolveHits(read)[0]!.permissions).toEqual([]);
  });

  it("blanks secret teams a viewer cannot see, keeping the decision", () => {
    const secret = { id: "t_s", name: "Covert", visibility: "secret" as const };
    const h = hit({ subject: { type: "team", id: "t_s" }, team: secret, via: { ...secret, distance: 0 } });
    expect(secretTeams([h])).toEqual(["t_s"]);
    const [r] = redactHits([h], new Set(["t_s"]));
    expect(r!.team).toEqual({ id: "", name: "", visibility: "secret" });
    expect(r!.subject).toEqual({ type: "team", id: "" });
    const d = decide("documents.read", doc, [r!]);
    expect(d.allowed).toBe(true);
    expect(d.reason).toBe("role member on document d1, granted to a team you cannot see, as a member");
    expect(JSON.stringify(d)).not.toContain("Covert");
  });
});

describe("the one rule of who may grant what", () => {
  it("on teams: owner needs manage_owners, the rest manage_members", () => {
    expect(permissionsToGrant({ on: "team", role: "owner" })).toEqual(["team.manage_owners"]);
    expect(permissionsToGrant({ on: "team", role: "member" })).toEqual(["team.manage_members"]);
  });

  it("on resources: documents.share plus every resource permission of the role, no more", () => {
    expect(permissionsToGrant({ on: "resource", permissions: ["documents.read"] })).toEqual([
      "documents.share",
      "documents.read",
    ]);
    expect(
      permissionsToGrant({ on: "resource", permissions: ["documents.share", "team.delete", "documents.write"] }),
    ).toEqual(["documents.share", "documents.write"]);
    expect(permissionsToGrant({ on: "resource", permissions: [] })).toEqual(["documents.share"]);
  });
});

describe("revision tokens and dependencies", () => {
  it("round-trips a token bound to its organization and refuses others", () => {
    const t = encodeRevision("org_a", 42);
    expect(t).toMatch(/^rv1_[A-Za-z0-9_-]+$/);
    expect(decodeRevision("org_a", t)).toBe(42);
    expect(decodeRevision("org_a", undefined)).toBe(0);
    expect(() => decodeRevision("org_b", t)).toThrow(/invalid revision token/);
    expect(() => decodeRevision("org_a", "rv1_!!")).toThrow(/invalid revision token/);
    expect(() => decodeRevision("org_a", "42")).toThrow(/invalid revision token/);
    expect(() => decodeRevision("org_a", encodeRevision("org_a", -1))).toThrow(/invalid revision token/);
    expect(decodeRevision("o|rg", encodeRevision("o|rg", 7))).toBe(7);
  });

  it("an entry depends on the user, the chain, the granted teams (or any tree change past the cap), vias and roles", () => {
    const read: CheckRead = {
      revision: 9,
      chain: [doc, folder],
      teams: ["t1", "t2"],
      hits: [
        {
          grantId: "g",
          role: "viewer",
          resource: folder,
          distance: 1,
          subject: { type: "team", id: "t1" },
          via: { id: "t0", name: "Root", visibility: "public", distance: 1 },
        },
      ],
      roles: [],
    };
    expect(checkDeps("u1", read).sort()).toEqual(
      [dep.org, dep.user("u1"), "r:document:d1", "r:folder:f1", "t:t1", "t:t2", "t:t0", "role:viewer"].sort(),
    );
    const many = { ...read, teams: Array.from({ length: 33 }, (_, i) => `t${i}`) };
    const deps = checkDeps("u1", many);
    expect(deps).toContain(dep.teams);
    expect(deps.filter((d) => d.startsWith("t:"))).toEqual(["t:t0"]);
  });

  it("key cursors are opaque and checked", () => {
    expect(decodeKeyCursor(encodeKeyCursor("user_é|1"))).toBe("user_é|1");
    expect(decodeKeyCursor(undefined)).toBeUndefined();
    expect(() => decodeKeyCursor("plain")).toThrow(/invalid cursor/);
    expect(() => decodeKeyCursor("k1.%%%")).toThrow(/invalid cursor/);
  });
});
