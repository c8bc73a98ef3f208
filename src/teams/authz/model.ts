import type { Role } from "../permissions.ts";
import { isResourcePermission, resourcePermissions, rolePermissions, roles } from "../permissions.ts";

/**
 * The authorization model, as pure rules (no I/O): typed resources with parent pointers, roles as
 * sets of catalog permissions, and the decision of a check from the grants that reach a user.
 *
 * - Resources: `project` ⊃ `folder` (folders nest) ⊃ `document`. A grant on a resource covers
 *   everything it contains (OpenFGA's tuple-to-userset, `viewer from parent`).
 * - Subjects: a user, or a team. A team's grant reaches the team's members *including inherited
 *   ones*: as everywhere in the teams service, a membership of a team applies to every team
 *   beneath it, so the members of every ancestor of the granted team hold it too. (GitHub points the
 *   other way for repository access — a parent team's access flows to child teams; here a grant to
 *   a subteam is a grant to the people who run it from above.)
 * - Roles: the built-in `owner` ⊇ `admin` ⊇ `member` (their resource permissions, extendable but
 *   never weakened) and custom roles per organization. Permissions are resolved when a check runs,
 *   so changing a role changes every check at once.
 * - Nothing is allowed that no grant gives (no wildcard, no implicit owner); organization admins
 *   (token scope `admin`) hold everything in their organization.
 */

/** Resource types, outermost first. */
export const resourceTypes = ["project", "folder", "document"] as const;

/** A resource type. */
export type ResourceType = (typeof resourceTypes)[number];

/** A typed resource id. */
export interface ResourceRef {
  type: ResourceType;
  id: string;
}

/** Which types may contain each type (projects are roots). */
export const allowedParents: Record<ResourceType, readonly ResourceType[]> = {
  project: [],
  folder: ["project", "folder"],
  document: ["project", "folder"],
};

/** A role as checks see it. */
export interface RoleDefinition {
  name: string;
  description?: string;
  /** Resource permissions the role holds. */
  permissions: string[];
  /** One of owner/admin/member (may be extended, never weakened). */
  builtin: boolean;
}

/** Whether `name` is a built-in role. */
export const isBuiltinRole = (name: string): name is Role => (roles as readonly string[]).includes(name);

/** The built-in role's resource permissions (its floor: an extension only adds). */
export function builtinPermissions(name: Role): string[] {
  return rolePermissions[name].filter(isResourcePermission);
}

/**
 * The effective definition of `name`: a built-in's permissions plus any stored extension, or the
 * stored custom role; undefined when the organization has no such role.
 */
export function effectiveRole(
  name: string,
  stored?: { permissions: readonly string[]; description?: string | null },
): RoleDefinition | undefined {
  if (isBuiltinRole(name)) {
    const base = builtinPermissions(name);
    const extra = (stored?.permissions ?? []).filter((p) => !base.includes(p));
    return {
      name,
      permissions: sortPermissions([...base, ...extra]),
      builtin: true,
      ...(stored?.description ? { description: stored.description } : {}),
    };
  }
  if (!stored) return undefined;
  return {
    name,
    permissions: sortPermissions(stored.permissions),
    builtin: false,
    ...(stored.description ? { description: stored.description } : {}),
  };
}

/** Permissions in catalog order, without duplicates or unknown names. */
export function sortPermissions(ps: readonly string[]): string[] {
  return resourcePermissions.filter((p) => ps.includes(p));
}

/**
 * Why a role definition is refused, or null: custom names are lowercase, permissions come from
 * the catalog and apply to resources, and a built-in is never weakened.
 */
export function roleProblem(name: string, permissions: readonly string[]): { path: string; message: string } | null {
  if (!/^[a-z][a-z0-9_.-]{0,39}$/.test(name))
    return { path: "name", message: "1–40 characters: a-z first, then a-z 0-9 . _ -" };
  const unknown = permissions.filter((p) => !isResourcePermission(p));
  if (unknown.length > 0)
    return { path: "permissions", message: `not resource permissions of the catalog: ${unknown.join(", ")}` };
  if (isBuiltinRole(name)) {
    const missing = builtinPermissions(name).filter((p) => !permissions.includes(p));
    if (missing.length > 0)
      return { path: "permissions", message: `built-in role ${name} cannot be weakened: keep ${missing.join(", ")}` };
  }
  return null;
}

/** A team as a source names it. */
export interface TeamRefInfo {
  id: string;
  name: string;
  visibility: "public" | "private" | "secret";
}

/** A grant that reaches a user on a resource or one of its containers. */
export interface Hit {
  grantId: string;
  role: string;
  /** The role's permissions when the answer was computed. */
  permissions: string[];
  /** Where the grant is: the resource itself (distance 0) or a container. */
  resource: ResourceRef;
  /** 0 = the checked resource, 1 = its parent … */
  distance: number;
  subject: { type: "user" | "team"; id: string };
  /** The granted team (team subjects). */
  team?: TeamRefInfo;
  /** The team whose membership carries the grant: the granted team or one of its ancestors. */
  via?: TeamRefInfo & { distance: number };
}

/** The best reason first: nearest resource, a direct user grant before a team's, nearest membership. */
export function rankHits(hits: readonly Hit[]): Hit[] {
  return [...hits].sort(
    (a, b) =>
      a.distance - b.distance ||
      (a.subject.type === "user" ? 0 : 1) - (b.subject.type === "user" ? 0 : 1) ||
      (a.via?.distance ?? 0) - (b.via?.distance ?? 0) ||
      a.grantId.localeCompare(b.grantId),
  );
}

/** A check's answer. */
export interface Decision {
  allowed: boolean;
  /** Which grant, team and ancestor gave it, or why nothing did. */
  reason: string;
  /** The grant that decided (absent on a deny). */
  source?: Hit;
}

const teamText = (t: TeamRefInfo | undefined) =>
  !t ? "a team" : t.id === "" ? "a team you cannot see" : `team ${t.name} (${t.id})`;

/** Human form of where a hit comes from (teams already redacted by the caller). */
export function describeHit(h: Hit, target: ResourceRef): string {
  const where =
    h.distance === 0
      ? `${h.resource.type} ${h.resource.id}`
      : `${h.resource.type} ${h.resource.id}, which contains ${target.type} ${target.id}`;
  if (h.subject.type === "user") return `role ${h.role} on ${where}, granted to the user`;
  const via =
    !h.via || h.via.distance === 0
      ? "as a member"
      : `as a member of ancestor ${h.via.id === "" ? "team you cannot see" : `team ${h.via.name} (${h.via.id})`}`;
  return `role ${h.role} on ${where}, granted to ${teamText(h.team)}, ${via}`;
}

/**
 * Decides `permission` on `target` from the hits that reach the user (ancestors included): allowed
 * by the best-ranked hit whose role holds it; otherwise denied, saying what was found.
 */
export function decide(permission: string, target: ResourceRef, hits: readonly Hit[]): Decision {
  const ranked = rankHits(hits);
  const winner = ranked.find((h) => h.permissions.includes(permission));
  if (winner) return { allowed: true, reason: describeHit(winner, target), source: winner };
  if (ranked.length === 0)
    return {
      allowed: false,
      reason: `no grant on ${target.type} ${target.id} or what contains it reaches the user`,
    };
  const held = [...new Set(ranked.map((h) => h.role))].join(", ");
  return { allowed: false, reason: `role ${held} reaches the user here but does not include ${permission}` };
}

/** Hits with the teams a viewer may not see blanked (id and name empty), so no reason names them. */
export function redactHits(hits: readonly Hit[], hidden: ReadonlySet<string>): Hit[] {
  const blank = <T extends TeamRefInfo>(t: T | undefined): T | undefined =>
    t && hidden.has(t.id) ? { ...t, id: "", name: "" } : t;
  return hits.map((h) => {
    const team = blank(h.team);
    const via = blank(h.via);
    const subject =
      h.subject.type === "team" && hidden.has(h.subject.id) ? { type: "team" as const, id: "" } : h.subject;
    return { ...h, subject, ...(team ? { team } : {}), ...(via ? { via } : {}) };
  });
}

/** Secret teams named by `hits` (the only ones a viewer may fail to see). */
export function secretTeams(hits: readonly Hit[]): string[] {
  const ids = new Set<string>();
  for (const h of hits) {
    if (h.team?.visibility === "secret") ids.add(h.team.id);
    if (h.via?.visibility === "secret") ids.add(h.via.id);
  }
  return [...ids];
}
