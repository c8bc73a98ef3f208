import type { Queryable } from "../platform/db.ts";
import type { TeamRow } from "./hierarchy.ts";
import type { Grant } from "./permissions.ts";

/**
 * Who may see what of a team — the one rule every read goes through. A team is *reached* by a
 * user with a membership on it or on any team above it (their role applies there).
 * - public: everyone in the organization sees it and its members;
 * - private: everyone sees it; its members only those who reach it (GitHub's closed teams show
 *   their members to the organization; we keep them to the team);
 * - secret: only those who reach it know it exists — in lists, ancestors, descendants, parent
 *   links, permission reasons and counts alike.
 * Organization admins (and internal jobs, which have no viewer) see everything.
 *
 * A user reaches a team exactly when they hold a grant on its path (`grantsOnPath`): so the reach
 * behind the redaction of a single check is read as the viewer's own cached team check
 * (`CachedGrants` in `cache.ts`, under the authorization stamps); lists use the queries below.
 */

/** The caller, as far as visibility is concerned (absent: an internal job). */
export interface Sighted {
  userId: string;
  orgAdmin: boolean;
}

/** What a viewer may see of one team. */
export interface TeamSight {
  /** The team exists for them (false only for secret teams they do not reach). */
  visible: boolean;
  /** They may list its members (public teams, or teams they reach). */
  membersVisible: boolean;
}

/** The rule itself, for a team the viewer does (`reached`) or does not reach. */
export function sight(visibility: TeamRow["visibility"], reached: boolean, viewer: Sighted | undefined): TeamSight {
  if (!viewer || viewer.orgAdmin || reached) return { visible: true, membersVisible: true };
  return { visible: visibility !== "secret", membersVisible: visibility === "public" };
}

/**
 * Which of `teamIds` the user reaches (a membership on the team or an ancestor): one query, walking
 * up from each team at most `maxDepth` levels.
 */
export async function reachedTeams(
  db: Queryable,
  userId: string,
  teamIds: readonly string[],
  maxDepth: number,
): Promise<Set<string>> {
  if (teamIds.length === 0) return new Set();
  const { rows } = await db.query<{ origin: string }>(
    `with recursive up as (
       select t.id as origin, t.id, t.parent_team_id, 0 as d, array[t.id] as path from teams t where t.id = any($2::text[])
       union all
       select up.origin, p.id, p.parent_team_id, up.d + 1, up.path || p.id from teams p join up on p.id = up.parent_team_id
       where not p.id = any(up.path) and up.d < $3
     )
     select distinct up.origin from up join team_memberships m on m.team_id = up.id and m.user_id = $1`,
    [userId, [...new Set(teamIds)], maxDepth],
  );
  return new Set(rows.map((r) => r.origin));
}

/** The sight of each team in `teams` for `viewer` (one query at most). */
export async function sightOf(
  db: Queryable,
  viewer: Sighted | undefined,
  teams: readonly Pick<TeamRow, "id" | "visibility">[],
  maxDepth: number,
): Promise<Map<string, TeamSight>> {
  const out = new Map<string, TeamSight>();
  // Only private and secret teams depend on reach; skip the query when the answer is fixed.
  const open = !viewer || viewer.orgAdmin;
  const needReach = open ? [] : teams.filter((t) => t.visibility !== "public").map((t) => t.id);
  const reached =
    viewer && needReach.length > 0 ? await reachedTeams(db, viewer.userId, needReach, maxDepth) : new Set<string>();
  for (const t of teams) out.set(t.id, sight(t.visibility, reached.has(t.id), viewer));
  return out;
}

/**
 * SQL condition "the viewer may know team `t`": for lists filtered in the query itself (so pages
 * stay full). `$viewer` is the viewer's id, `$open` true for admins and jobs; needs the CTE
 * {@link reachCte} under the name `reach`.
 */
export const visibleTeamSql = (t: string, open: string) =>
  `(${open} or ${t}.visibility <> 'secret' or ${t}.id in (select id from reach))`;

/** SQL condition "the viewer may see the members of team `t`" (see {@link visibleTeamSql}). */
export const membersVisibleSql = (t: string, open: string) =>
  `(${open} or ${t}.visibility = 'public' or ${t}.id in (select id from reach))`;

/** A recursive CTE `reach(id)`: every team of organization `org` the user reaches, bounded by `maxDepth`. */
export const reachCte = (user: string, org: string, maxDepth: string) =>
  `reach as (
     select m.team_id as id, 0 as d from team_memberships m join teams rt on rt.id = m.team_id
     where m.user_id = ${user} and rt.organization_id = ${org}
     union all
     select t.id, reach.d + 1 from teams t join reach on t.parent_team_id = reach.id where reach.d < ${maxDepth}
   )`;

/**
 * Grants whose team the viewer cannot see are kept (they still decide the check) but lose their
 * name and id, so a reason never names a secret team.
 */
export function redactGrants(grants: readonly Grant[], hidden: ReadonlySet<string>): Grant[] {
  return grants.map((g) => (hidden.has(g.teamId) ? { ...g, teamId: "", teamName: "", hidden: true } : g));
}
