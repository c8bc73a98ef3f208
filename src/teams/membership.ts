import type { Queryable } from "../platform/db.ts";
import { ForbiddenError, QuotaExceededError } from "../platform/errors.ts";
import { effectivePlan } from "../usage/plans.ts";
import type { Role } from "./permissions.ts";
import { rank } from "./permissions.ts";
import type { TeamMembership } from "./schemas.ts";
import type { UsersClient } from "./users.ts";

/** Membership rules and queries shared by the service's mutations. */

/** A `team_memberships` row. */
export interface MembershipRow {
  team_id: string;
  user_id: string;
  role: Role;
  joined_at: Date;
  added_by: string;
}

/** Maps a row to the seed's `TeamMembership`. */
export function toMembership(r: MembershipRow, user?: { id: string; name?: string; email?: string }): TeamMembership {
  return {
    teamId: r.team_id,
    userId: r.user_id,
    role: r.role,
    joinedAt: new Date(r.joined_at).toISOString(),
    addedBy: r.added_by,
    ...(user
      ? {
          user: {
            id: user.id,
            ...(user.name ? { name: user.name } : {}),
            ...(user.email ? { email: user.email } : {}),
          },
        }
      : {}),
  };
}

/** Attaches user details with one batched lookup (details are omitted when the service is down). */
export async function withUsers(rows: MembershipRow[], users: UsersClient): Promise<TeamMembership[]> {
  const details = await users.getUsers(rows.map((r) => r.user_id)).catch(() => new Map());
  return rows.map((r) => toMembership(r, details.get(r.user_id)));
}

/**
 * Locks the team row for the rest of the transaction: membership changes of one team serialise,
 * so "is this the last owner?" is answered on data nobody else is changing.
 */
export async function lockTeam(tx: Queryable, teamId: string): Promise<void> {
  await tx.query("select id from teams where id = $1 for update", [teamId]);
}

/** Owners of a team (call after {@link lockTeam}). */
export async function ownerCount(tx: Queryable, teamId: string): Promise<number> {
  const { rows } = await tx.query<{ n: number }>(
    "select count(*)::int as n from team_memberships where team_id = $1 and role = 'owner'",
    [teamId],
  );
  return rows[0]?.n ?? 0;
}

/** @throws {ForbiddenError} if the change would leave the team without an owner */
export async function assertKeepsAnOwner(
  tx: Queryable,
  teamId: string,
  current: Role,
  next: Role | null,
): Promise<void> {
  if (current !== "owner" || next === "owner") return;
  if ((await ownerCount(tx, teamId)) <= 1)
    throw new ForbiddenError("a team must keep at least one owner: add another owner first");
}

/**
 * Enforces the plan's `collaborators` limit: distinct members across the organization's teams.
 * Someone already in another team of the organization does not count again.
 */
export async function assertCollaboratorRoom(tx: Queryable, org: string, userId: string): Promise<void> {
  // The effective plan: the organization's overrides count here as they do for usage quotas.
  const limit = (await effectivePlan(tx, org)).limits.collaborators;
  if (limit === undefined) return;
  const { rows } = await tx.query<{ members: number; already: boolean }>(
    `select (select count(distinct m.user_id)::int from team_memberships m join teams t on t.id = m.team_id where t.organization_id = $1) as members,
       exists (select 1 from team_memberships m join teams t on t.id = m.team_id where t.organization_id = $1 and m.user_id = $2) as already`,
    [org, userId],
  );
  const r = rows[0];
  if (r && !r.already && r.members >= limit) {
    throw new QuotaExceededError(`the plan allows ${limit} collaborators in this organization`, {
      details: { metricType: "collaborators", limit },
    });
  }
}

/** Upserts a membership keeping the higher role (reassignment on delete, accepted invitations). */
export async function grantKeepingHigher(
  tx: Queryable,
  teamId: string,
  userId: string,
  role: Role,
  addedBy: string,
): Promise<void> {
  await tx.query(
    `insert into team_memberships as m (team_id, user_id, role, added_by) values ($1, $2, $3, $4)
     on conflict (team_id, user_id) do update set role = case when
       (case excluded.role when 'owner' then 3 when 'admin' then 2 else 1 end) > (case m.role when 'owner' then 3 when 'admin' then 2 else 1 end)
       then excluded.role else m.role end`,
    [teamId, userId, role, addedBy],
  );
}

/** Sorts roles strongest first (for listings). */
export const byRoleThenJoin = (a: MembershipRow, b: MembershipRow) =>
  rank(b.role) - rank(a.role) || new Date(a.joined_at).getTime() - new Date(b.joined_at).getTime();
