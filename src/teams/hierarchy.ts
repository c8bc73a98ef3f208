import type { Queryable } from "../platform/db.ts";
import type { Grant, Role } from "./permissions.ts";

/**
 * Hierarchy queries with recursive CTEs. Every walk carries its path and stops at a repeated team
 * or at the depth bound, so even corrupted data (a cycle written behind our back) cannot loop.
 */

/** A `teams` row. */
export interface TeamRow {
  id: string;
  organization_id: string;
  name: string;
  description: string | null;
  parent_team_id: string | null;
  visibility: "public" | "private" | "secret";
  settings: Record<string, unknown>;
  created_by: string;
  created_at: Date;
  updated_at: Date;
}

/** The team and its ancestors, nearest first (`distance` 0 = the team). */
export async function ancestorRows(
  db: Queryable,
  teamId: string,
  maxDepth: number,
): Promise<(TeamRow & { distance: number })[]> {
  const { rows } = await db.query<TeamRow & { distance: number }>(
    `with recursive up as (
       select t.*, 0 as distance, array[t.id] as path from teams t where t.id = $1
       union all
       select t.*, up.distance + 1, up.path || t.id from teams t join up on t.id = up.parent_team_id
       where not t.id = any(up.path) and up.distance < $2
     )
     select id, organization_id, name, description, parent_team_id, visibility, settings, created_by, created_at, updated_at, distance
     from up order by distance`,
    [teamId, maxDepth],
  );
  return rows;
}

/** The team's descendants with their depth below it (1 = child), in breadth-first order. */
export async function descendantRows(
  db: Queryable,
  teamId: string,
  maxDepth: number,
): Promise<(TeamRow & { depth: number })[]> {
  const { rows } = await db.query<TeamRow & { depth: number }>(
    `with recursive down as (
       select t.*, 1 as depth, array[$1::text, t.id] as path from teams t where t.parent_team_id = $1
       union all
       select t.*, down.depth + 1, down.path || t.id from teams t join down on t.parent_team_id = down.id
       where not t.id = any(down.path) and down.depth < $2
     )
     select id, organization_id, name, description, parent_team_id, visibility, settings, created_by, created_at, updated_at, depth
     from down order by depth, created_at, id`,
    [teamId, maxDepth],
  );
  return rows;
}

/** The user's memberships on the team and every ancestor: the grants a permission check weighs. */
export async function grantsOnPath(db: Queryable, teamId: string, userId: string, maxDepth: number): Promise<Grant[]> {
  const { rows } = await db.query<{
    team_id: string;
    name: string;
    visibility: TeamRow["visibility"];
    role: Role;
    distance: number;
  }>(
    `with recursive up as (
       select t.id, t.name, t.visibility, t.parent_team_id, 0 as distance, array[t.id] as path from teams t where t.id = $1
       union all
       select t.id, t.name, t.visibility, t.parent_team_id, up.distance + 1, up.path || t.id from teams t join up on t.id = up.parent_team_id
       where not t.id = any(up.path) and up.distance < $3
     )
     select up.id as team_id, up.name, up.visibility, m.role, up.distance from up join team_memberships m on m.team_id = up.id and m.user_id = $2`,
    [teamId, userId, maxDepth],
  );
  return rows.map((r) => ({
    teamId: r.team_id,
    teamName: r.name,
    role: r.role,
    distance: r.distance,
    visibility: r.visibility,
  }));
}

/**
 * {@link grantsOnPath}, the team's own visibility and the organization's authorization revision, in
 * one statement (one snapshot): what the permission cache stores, tagged with the revision it reflects.
 */
export async function grantsOnPathAt(
  db: Queryable,
  teamId: string,
  userId: string,
  maxDepth: number,
): Promise<{ grants: Grant[]; revision: number; visibility?: TeamRow["visibility"] }> {
  const { rows } = await db.query<{
    grants: { team_id: string; name: string; visibility: TeamRow["visibility"]; role: Role; distance: number }[];
    rev: string;
    visibility: TeamRow["visibility"] | null;
  }>(
    `with recursive up as (
       select t.id, t.name, t.visibility, t.parent_team_id, 0 as distance, array[t.id] as path from teams t where t.id = $1
       union all
       select t.id, t.name, t.visibility, t.parent_team_id, up.distance + 1, up.path || t.id from teams t join up on t.id = up.parent_team_id
       where not t.id = any(up.path) and up.distance < $3
     )
     select coalesce(json_agg(json_build_object('team_id', up.id, 'name', up.name, 'visibility', up.visibility, 'role', m.role, 'distance', up.distance)), '[]') as grants,
       coalesce((select revision from authz_revisions where organization_id = (select organization_id from teams where id = $1)), 0) as rev,
       (select visibility from teams where id = $1) as visibility
     from up join team_memberships m on m.team_id = up.id and m.user_id = $2`,
    [teamId, userId, maxDepth],
  );
  const r = rows[0]!;
  return {
    revision: Number(r.rev),
    ...(r.visibility ? { visibility: r.visibility } : {}),
    grants: r.grants.map((g) => ({
      teamId: g.team_id,
      teamName: g.name,
      role: g.role,
      distance: g.distance,
      visibility: g.visibility,
    })),
  };
}

/** Whether `candidate` is `teamId` itself or one of its descendants (a move under it would loop). */
export async function isInSubtree(
  db: Queryable,
  teamId: string,
  candidate: string,
  maxDepth: number,
): Promise<boolean> {
  if (teamId === candidate) return true;
  const { rows } = await db.query<{ hit: boolean }>(
    `with recursive up as (
       select id, parent_team_id, 0 as distance, array[id] as path from teams where id = $2
       union all
       select t.id, t.parent_team_id, up.distance + 1, up.path || t.id from teams t join up on t.id = up.parent_team_id
       where not t.id = any(up.path) and up.distance < $3
     )
     select exists (select 1 from up where id = $1) as hit`,
    [teamId, candidate, maxDepth + 1],
  );
  return rows[0]?.hit ?? false;
}

/** Levels below the team (0 for a leaf). */
export async function subtreeHeight(db: Queryable, teamId: string, maxDepth: number): Promise<number> {
  const rows = await descendantRows(db, teamId, maxDepth + 1);
  return rows.reduce((h, r) => Math.max(h, r.depth), 0);
}

/** Depth of the team from its root (1 for a root team). */
export async function depthOf(db: Queryable, teamId: string, maxDepth: number): Promise<number> {
  return (await ancestorRows(db, teamId, maxDepth + 1)).length;
}
