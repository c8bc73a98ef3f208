/**
 * The permission model: three roles, each a fixed superset of the one below; a role held on a team
 * applies to every team beneath it (the highest role along the path wins); organization admins
 * (token scope `admin`) hold every permission in their organization.
 */

/** Team roles, weakest first. */
export const roles = ["member", "admin", "owner"] as const;

/** A team role. */
export type Role = (typeof roles)[number];

/** Every permission, with what it allows. */
export const permissionCatalog = {
  "team.read": "See the team, its members and subteams",
  "documents.read": "Open a document, or list a folder's or project's contents",
  "documents.comment": "Comment on a document",
  "documents.write": "Edit a document, or add to a folder or project",
  "documents.share": "Grant and revoke roles on the resource (never more than the sharer holds there)",
  "documents.delete": "Delete the resource",
  "team.update": "Change name, description, visibility, settings",
  "team.manage_members": "Add and remove members, change roles below owner",
  "team.invite": "Invite people by e-mail",
  "team.create_subteam": "Create teams beneath this one",
  "team.manage_owners": "Grant or revoke the owner role",
  "team.move": "Move the team in the hierarchy",
  "team.delete": "Delete the team",
} as const;

/** A permission. */
export type Permission = keyof typeof permissionCatalog;

/** Permissions that apply to resources (documents, folders, projects); the rest apply to teams. */
export const resourcePermissions = [
  "documents.read",
  "documents.comment",
  "documents.write",
  "documents.share",
  "documents.delete",
] as const satisfies readonly Permission[];

/** Whether `p` applies to resources (custom roles hold only these). */
export const isResourcePermission = (p: string): boolean => (resourcePermissions as readonly string[]).includes(p);

const memberPerms: Permission[] = ["team.read", "documents.read", "documents.comment", "documents.write"];
const adminPerms: Permission[] = [
  ...memberPerms,
  "documents.share",
  "documents.delete",
  "team.update",
  "team.manage_members",
  "team.invite",
  "team.create_subteam",
];
const ownerPerms: Permission[] = [...adminPerms, "team.manage_owners", "team.move", "team.delete"];

/** The permissions of each role. */
export const rolePermissions: Record<Role, readonly Permission[]> = {
  member: memberPerms,
  admin: adminPerms,
  owner: ownerPerms,
};

/** Rank of a role (member 1 … owner 3). */
export const rank = (r: Role): number => roles.indexOf(r) + 1;

/** The higher of two roles. */
export const higher = (a: Role, b: Role): Role => (rank(a) >= rank(b) ? a : b);

/** Whether `p` is a known permission. */
export const isPermission = (p: string): p is Permission => Object.hasOwn(permissionCatalog, p);

/** What is being granted (or taken away): a membership role on a team, or a role on a resource. */
export type GrantTarget =
  | { on: "team"; role: Role }
  | { on: "resource" /** the permissions of the role being granted */; permissions: readonly string[] };

/**
 * The one rule of who may grant what: to give `target` — or to take it away — the actor needs
 * every returned permission on the team or resource it applies to. Every path that writes a
 * membership or a grant goes through it: adding members, changing roles (both the old and the new
 * role count), removing others, inviting, accepting an invitation (checked against the inviter),
 * re-homing members when a team is deleted, and granting, changing or revoking a role on a resource.
 * - team: `owner` needs `team.manage_owners`; `admin` or `member` needs `team.manage_members`;
 * - resource: `documents.share` plus every resource permission of the role — nobody hands out more
 *   than they hold there (so a custom role is only as strong as its sharer).
 */
export function permissionsToGrant(target: GrantTarget): Permission[] {
  if (target.on === "team") return [target.role === "owner" ? "team.manage_owners" : "team.manage_members"];
  const held = resourcePermissions.filter((p) => target.permissions.includes(p));
  return ["documents.share", ...held.filter((p) => p !== "documents.share")];
}

/** The strongest role someone holding `grants` on a team may grant there (org admins: owner), or null. */
export function grantableRole(grants: readonly Grant[], orgAdmin: boolean): Role | null {
  if (orgAdmin) return "owner";
  const g = effectiveGrant(grants);
  if (!g) return null;
  for (const r of [...roles].reverse())
    if (permissionsToGrant({ on: "team", role: r }).every((p) => rolePermissions[g.role].includes(p))) return r;
  return null;
}

/** The weaker of two roles. */
export const lower = (a: Role, b: Role): Role => (rank(a) <= rank(b) ? a : b);

/** A membership on the path from a team to the root: where a role comes from. */
export interface Grant {
  teamId: string;
  teamName: string;
  role: Role;
  /** 0 = the team itself, 1 = its parent … */
  distance: number;
  /** The granting team's visibility (secret teams are named only to those who may see them). */
  visibility?: "public" | "private" | "secret";
  /** Set when the viewer may not see the granting team: its name and id are blanked. */
  hidden?: boolean;
}

/** The winning grant: highest role, nearest team on ties. */
export function effectiveGrant(grants: readonly Grant[]): Grant | undefined {
  return [...grants].sort((a, b) => rank(b.role) - rank(a.role) || a.distance - b.distance)[0];
}

/** Decision of a permission check. */
export interface PermissionDecision {
  allowed: boolean;
  reason: string;
}

/** Decides a check from the user's grants on the path (and whether they are an org admin). */
export function decide(permission: Permission, grants: readonly Grant[], orgAdmin: boolean): PermissionDecision {
  if (orgAdmin) return { allowed: true, reason: "organization admin" };
  const g = effectiveGrant(grants);
  if (!g) return { allowed: false, reason: "not a member of this team or any team above it" };
  const where =
    g.distance === 0
      ? "this team"
      : g.hidden
        ? "an ancestor team you cannot see"
        : `ancestor team ${g.teamName} (${g.teamId})`;
  if (rolePermissions[g.role].includes(permission)) return { allowed: true, reason: `role ${g.role} on ${where}` };
  return { allowed: false, reason: `role ${g.role} on ${where} does not grant ${permission}` };
}

/** Effective permissions with their sources (seed `EffectivePermissions.sources`). */
export function effectivePermissions(
  grants: readonly Grant[],
  orgAdmin: boolean,
): {
  permissions: Permission[];
  sources: Record<string, { type: "direct" | "inherited" | "organization_admin"; teamId?: string; role?: Role }>;
} {
  const all = Object.keys(permissionCatalog) as Permission[];
  if (orgAdmin)
    return {
      permissions: all,
      sources: Object.fromEntries(all.map((p) => [p, { type: "organization_admin" as const }])),
    };
  const sources: Record<string, { type: "direct" | "inherited"; teamId?: string; role: Role }> = {};
  // Strongest grant first, so each permission is attributed to what actually grants it.
  for (const g of [...grants].sort((a, b) => rank(b.role) - rank(a.role) || a.distance - b.distance)) {
    for (const p of rolePermissions[g.role]) {
      // A team the viewer may not see is not named: the source says "inherited" and the role only.
      sources[p] ??= {
        type: g.distance === 0 ? "direct" : "inherited",
        ...(g.hidden ? {} : { teamId: g.teamId }),
        role: g.role,
      };
    }
  }
  return { permissions: all.filter((p) => sources[p]), sources };
}
