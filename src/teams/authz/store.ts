import type { Queryable, QueryOptions } from "../../platform/db.ts";
import type { Hit, ResourceRef, ResourceType, TeamRefInfo } from "./model.ts";
import { revisionSql } from "./revision.ts";

/**
 * Storage of the authorization layer: one SQL statement per read (resource chain, grants, team
 * walks and the revision in one snapshot), plain statements for writes. Every walk carries its
 * path and a depth bound, as the team hierarchy's do.
 */

/** An `authz_resources` row. */
export interface ResourceRow {
  organization_id: string;
  type: ResourceType;
  id: string;
  parent_type: ResourceType | null;
  parent_id: string | null;
  created_by: string;
  created_at: Date;
}

/** An `authz_grants` row. */
export interface GrantRow {
  id: string;
  organization_id: string;
  resource_type: ResourceType;
  resource_id: string;
  subject_type: "team" | "user";
  subject_id: string;
  role: string;
  created_by: string;
  created_at: Date;
  updated_at: Date;
}

/** An `authz_roles` row. */
export interface RoleRow {
  organization_id: string;
  name: string;
  description: string | null;
  permissions: string[];
  created_by: string;
  created_at: Date;
  updated_at: Date;
}

// The resource and its containers, nearest first ($1 org, $2 type, $3 id, $5 depth bound).
const chainCte = `res as (
  select r.type, r.id, r.parent_type, r.parent_id, 0 as d, array[r.type || ':' || r.id] as path
  from authz_resources r where r.organization_id = $1 and r.type = $2 and r.id = $3
  union all
  select p.type, p.id, p.parent_type, p.parent_id, res.d + 1, res.path || (p.type || ':' || p.id)
  from authz_resources p join res on p.organization_id = $1 and p.type = res.parent_type and p.id = res.parent_id
  where res.d < $5 and not (p.type || ':' || p.id) = any(res.path)
)`;

// From each team grant of `g`, the granted team and its ancestors: whose members hold the grant.
const upCte = `up as (
  select g.id as grant_id, t.id as team_id, t.parent_team_id, 0 as d, array[t.id] as path
  from g join teams t on t.id = g.subject_id and t.organization_id = $1 where g.subject_type = 'team'
  union all
  select up.grant_id, t.id, t.parent_team_id, up.d + 1, up.path || t.id
  from up join teams t on t.id = up.parent_team_id where up.d < $5 and not t.id = any(up.path)
)`;

/** What a check reads, in one snapshot. */
export interface CheckRead {
  /** The revision the answer reflects. */
  revision: number;
  /** The resource and its containers (empty: no such resource). */
  chain: ResourceRef[];
  /** Teams granted anything on the chain (at most `teamCap + 1`: more means "too many to list"). */
  teams: string[];
  /** Grants that reach the user, with the role's stored definition (built-ins: extension only). */
  hits: RawHit[];
  /** Stored definitions of the hits' roles. */
  roles: { name: string; permissions: string[]; description: string | null }[];
}

// Grants whose role holds the permission: a built-in that holds it by default (listed by the
// caller) or any stored role — custom, or a built-in's extension — that lists it.
const roleFilter = (g: string, builtins: string, permission: string) =>
  `(${g}.role = any(${builtins}::text[]) or ${g}.role in (select name from authz_roles where organization_id = $1 and ${permission} = any(permissions)))`;

/** A hit before roles are resolved. */
export type RawHit = Omit<Hit, "permissions">;

interface RawHitRow {
  g: string;
  role: string;
  rt: ResourceType;
  rid: string;
  d: number;
  st: "team" | "user";
  sid: string;
  tn: string | null;
  tv: TeamRefInfo["visibility"] | null;
  via: string | null;
  vd: number | null;
  vn: string | null;
  vv: TeamRefInfo["visibility"] | null;
}

const toHit = (r: RawHitRow): RawHit => ({
  grantId: r.g,
  role: r.role,
  resource: { type: r.rt, id: r.rid },
  distance: r.d,
  subject: { type: r.st, id: r.sid },
  ...(r.st === "team" && r.tv ? { team: { id: r.sid, name: r.tn ?? "", visibility: r.tv } } : {}),
  ...(r.via && r.vv ? { via: { id: r.via, name: r.vn ?? "", visibility: r.vv, distance: r.vd ?? 0 } } : {}),
});

const hitJson = (h: string, g: string) => `json_build_object(
  'g', ${g}.id, 'role', ${g}.role, 'rt', ${g}.resource_type, 'rid', ${g}.resource_id, 'd', ${g}.d,
  'st', ${g}.subject_type, 'sid', ${g}.subject_id, 'tn', gt.name, 'tv', gt.visibility,
  'via', ${h}.via_team, 'vd', ${h}.via_d, 'vn', vt.name, 'vv', vt.visibility)`;

// The check's read ($1 org, $2 type, $3 id, $4 user, $5 depth bound, $6 team cap + 1): one
// constant text, so it runs as a prepared statement — planning it took longer than running it.
const CHECK_SQL = `with recursive ${chainCte},
     g as materialized (
       select g.id, g.role, g.subject_type, g.subject_id, g.resource_type, g.resource_id, res.d
       from res join authz_grants g on g.organization_id = $1 and g.resource_type = res.type and g.resource_id = res.id
     ),
     ${upCte},
     hits as materialized (
       select g.id as grant_id, null::text as via_team, null::int as via_d from g where g.subject_type = 'user' and g.subject_id = $4
       union all
       select * from (
         select distinct on (up.grant_id) up.grant_id, up.team_id, up.d
         from up join team_memberships m on m.team_id = up.team_id and m.user_id = $4
         order by up.grant_id, up.d
       ) x
     )
     select ${revisionSql("$1")} as rev,
       (select coalesce(json_agg(json_build_array(type, id) order by d), '[]') from res) as chain,
       (select json_agg(s) from (select distinct subject_id as s from g where subject_type = 'team' limit $6) x) as teams,
       (select coalesce(json_agg(${hitJson("h", "g")}), '[]')
          from hits h join g on g.id = h.grant_id
          left join teams gt on g.subject_type = 'team' and gt.id = g.subject_id
          left join teams vt on vt.id = h.via_team) as hits,
       (select coalesce(json_agg(json_build_object('name', name, 'permissions', permissions, 'description', description)), '[]')
          from authz_roles where organization_id = $1 and name in (select g.role from hits join g on g.id = hits.grant_id)) as roles`;

/** Name of the check's read as a prepared statement (see {@link QueryOptions.name}). */
export const CHECK_STATEMENT = "authz_check_v1";

/**
 * Everything `check(user, ·, resource)` needs, whatever the permission: the chain, the grants on it
 * that reach the user (directly or through a team they reach), their roles, and the revision.
 * One round trip, as the prepared statement {@link CHECK_STATEMENT}.
 */
export async function readCheck(
  db: Queryable,
  org: string,
  resource: ResourceRef,
  userId: string,
  maxDepth: number,
  teamCap: number,
): Promise<CheckRead> {
  const { rows } = await db.query<{
    rev: string;
    chain: [ResourceType, string][];
    teams: string[] | null;
    hits: RawHitRow[];
    roles: CheckRead["roles"];
  }>(CHECK_SQL, [org, resource.type, resource.id, userId, maxDepth, teamCap + 1], { name: CHECK_STATEMENT });
  const r = rows[0]!;
  return {
    revision: Number(r.rev),
    chain: r.chain.map(([type, id]) => ({ type, id })),
    teams: r.teams ?? [],
    hits: r.hits.map(toHit),
    roles: r.roles,
  };
}

/** One user who holds a permission on a resource, with every grant that gives it. */
export interface AuthorizedUser {
  userId: string;
  sources: RawHit[];
}

/**
 * Users holding `permission` (through a built-in role of `builtinRoles`, which hold it, or a stored role that does) on the resource (or a container), ordered by id, after
 * `after`: a page of `limit`. Each granted team contributes at most `limit` members from its index
 * order, so the first page costs O(teams × limit), not O(everyone authorized).
 */
export async function readAuthorizedUsers(
  db: Queryable,
  org: string,
  resource: ResourceRef,
  permission: string,
  builtinRoles: readonly string[],
  maxDepth: number,
  after: string,
  limit: number,
): Promise<{ revision: number; found: boolean; users: AuthorizedUser[] }> {
  const { rows } = await db.query<{ rev: string; found: boolean; users: { u: string; s: RawHitRow[] }[] }>(
    `with recursive ${chainCte},
     g as materialized (
       select g.id, g.role, g.subject_type, g.subject_id, g.resource_type, g.resource_id, res.d
       from res join authz_grants g on g.organization_id = $1 and g.resource_type = res.type and g.resource_id = res.id
       where ${roleFilter("g", "$4", "$8")}
     ),
     ${upCte},
     ut as materialized (select distinct team_id from up),
     page as materialized (
       select user_id from (
         select * from (select g.subject_id as user_id from g where g.subject_type = 'user' and g.subject_id > $6
                        order by g.subject_id limit $7) a
         union
         select x.user_id from ut cross join lateral (
           select m.user_id from team_memberships m where m.team_id = ut.team_id and m.user_id > $6
           order by m.user_id limit $7) x
       ) c order by user_id limit $7
     )
     select ${revisionSql("$1")} as rev, exists (select 1 from res) as found,
       coalesce((select json_agg(json_build_object('u', p.user_id, 's', (
         select json_agg(${hitJson("h", "g")})
         from (
           select g.id as grant_id, null::text as via_team, null::int as via_d from g
            where g.subject_type = 'user' and g.subject_id = p.user_id
           union all
           select * from (select distinct on (up.grant_id) up.grant_id, up.team_id, up.d
             from up join team_memberships m on m.team_id = up.team_id and m.user_id = p.user_id
             order by up.grant_id, up.d) y
         ) h join g on g.id = h.grant_id
         left join teams gt on g.subject_type = 'team' and gt.id = g.subject_id
         left join teams vt on vt.id = h.via_team)) order by p.user_id)
        from page p), '[]') as users`,
    [org, resource.type, resource.id, builtinRoles, maxDepth, after, limit, permission],
  );
  const r = rows[0]!;
  return {
    revision: Number(r.rev),
    found: r.found,
    users: r.users.map((u) => ({ userId: u.u, sources: u.s.map(toHit) })),
  };
}

/** A resource a user may act on, with the grants that give it. */
export interface AuthorizedResource {
  id: string;
  sources: RawHit[];
}

/**
 * Resources of `type` the user holds `permission` on (roles as in {@link readAuthorizedUsers}) (a grant on the resource or a
 * container, to the user or a team they reach), ordered by id after `after`.
 */
export async function readAuthorizedResources(
  db: Queryable,
  org: string,
  userId: string,
  type: ResourceType,
  permission: string,
  builtinRoles: readonly string[],
  maxDepth: number,
  after: string,
  limit: number,
): Promise<{ revision: number; resources: AuthorizedResource[] }> {
  const { rows } = await db.query<{ rev: string; resources: { id: string; s: RawHitRow[] }[] }>(
    `with recursive mt as (
       select m.team_id as id, 0 as d from team_memberships m join teams t on t.id = m.team_id
       where m.user_id = $2 and t.organization_id = $1
     ),
     down as (
       select id, id as via, 0 as d from mt
       union
       select t.id, down.via, down.d + 1 from teams t join down on t.parent_team_id = down.id where down.d < $5
     ),
     reached as materialized (select distinct on (id) id, via, d from down order by id, d),
     g as materialized (
       select g.id, g.role, g.subject_type, g.subject_id, g.resource_type, g.resource_id,
              case when g.subject_type = 'team' then r.via end as via_team, r.d as via_d
       from authz_grants g left join reached r on g.subject_type = 'team' and r.id = g.subject_id
       where g.organization_id = $1 and ${roleFilter("g", "$4", "$8")}
         and ((g.subject_type = 'user' and g.subject_id = $2) or (g.subject_type = 'team' and r.id is not null))
     ),
     rd as (
       select g.resource_type as type, g.resource_id as id, g.id as grant_id, 0 as d, array[g.resource_type || ':' || g.resource_id] as path from g
       union all
       select r.type, r.id, rd.grant_id, rd.d + 1, rd.path || (r.type || ':' || r.id)
       from authz_resources r join rd on r.organization_id = $1 and r.parent_type = rd.type and r.parent_id = rd.id
       where rd.d < $5 and not (r.type || ':' || r.id) = any(rd.path)
     ),
     page as (
       select id, json_agg(json_build_object('grant_id', grant_id, 'd', d)) as s from rd
       where type = $3 and id > $6 group by id order by id limit $7
     )
     select ${revisionSql("$1")} as rev,
       coalesce((select json_agg(json_build_object('id', p.id, 's', (
         select json_agg(json_build_object(
           'g', g.id, 'role', g.role, 'rt', g.resource_type, 'rid', g.resource_id, 'd', (e->>'d')::int,
           'st', g.subject_type, 'sid', g.subject_id, 'tn', gt.name, 'tv', gt.visibility,
           'via', g.via_team, 'vd', g.via_d, 'vn', vt.name, 'vv', vt.visibility))
         from json_array_elements(p.s) e join g on g.id = e->>'grant_id'
         left join teams gt on g.subject_type = 'team' and gt.id = g.subject_id
         left join teams vt on vt.id = g.via_team)) order by p.id)
        from page p), '[]') as resources`,
    [org, userId, type, builtinRoles, maxDepth, after, limit, permission],
  );
  const r = rows[0]!;
  return {
    revision: Number(r.rev),
    resources: r.resources.map((x) => ({ id: x.id, sources: x.s.map(toHit) })),
  };
}

/** A member of a team, directly or through an ancestor. */
export interface EffectiveMemberRow {
  user_id: string;
  direct: boolean;
  role: "owner" | "admin" | "member";
  name: string | null;
  email: string | null;
  sources: {
    teamId: string;
    teamName: string;
    visibility: TeamRefInfo["visibility"];
    role: string;
    distance: number;
  }[];
}

/** Escapes `%`, `_` and `\` for ILIKE. */
const likeEscape = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/**
 * Members of a team including those of its ancestors (who hold their role on it), ordered by user
 * id after `after`; `q` matches name, e-mail or id (case-insensitive substring), `role` the
 * effective (highest) role, `source` direct or inherited-only members.
 */
export async function readEffectiveMembers(
  db: Queryable,
  teamId: string,
  maxDepth: number,
  opts: { after: string; limit: number; q?: string; role?: string; source: "all" | "direct" | "inherited" },
): Promise<{ revision: number; members: EffectiveMemberRow[] }> {
  const { rows } = await db.query<EffectiveMemberRow & { rev: string }>(
    `with recursive up as (
       select t.id, t.name, t.visibility, t.parent_team_id, t.organization_id, 0 as d, array[t.id] as path from teams t where t.id = $1
       union all
       select t.id, t.name, t.visibility, t.parent_team_id, t.organization_id, up.d + 1, up.path || t.id
       from teams t join up on t.id = up.parent_team_id where up.d < $2 and not t.id = any(up.path)
     ),
     agg as (
       select m.user_id, bool_or(up.d = 0) as direct,
         (array_agg(m.role order by case m.role when 'owner' then 3 when 'admin' then 2 else 1 end desc, up.d))[1] as role,
         json_agg(json_build_object('teamId', up.id, 'teamName', up.name, 'visibility', up.visibility, 'role', m.role, 'distance', up.d) order by up.d) as sources
       from up join team_memberships m on m.team_id = up.id
       where m.user_id > $3
       group by m.user_id
     )
     select a.*, u.name, u.email, ${revisionSql("(select organization_id from teams where id = $1)")} as rev
     from agg a left join user_directory u on u.user_id = a.user_id
     where ($5::text is null or a.role = $5)
       and ($6 = 'all' or ($6 = 'direct') = a.direct)
       and ($7::text is null or u.name ilike $7 or u.email ilike $7 or a.user_id ilike $7)
     order by a.user_id limit $4`,
    [
      teamId,
      maxDepth,
      opts.after,
      opts.limit,
      opts.role ?? null,
      opts.source,
      opts.q ? `%${likeEscape(opts.q)}%` : null,
    ],
  );
  // Without rows there is no revision column: read it on its own (same answer, a moment later).
  let revision = rows[0] ? Number(rows[0].rev) : undefined;
  if (revision === undefined) {
    const r = await db.query<{ rev: string }>(
      `select ${revisionSql("(select organization_id from teams where id = $1)")} as rev`,
      [teamId],
    );
    revision = Number(r.rows[0]?.rev ?? 0);
  }
  return { revision, members: rows };
}

/** The resource row, if it exists in the organization. */
export async function findResource(db: Queryable, org: string, r: ResourceRef): Promise<ResourceRow | undefined> {
  const { rows } = await db.query<ResourceRow>(
    "select * from authz_resources where organization_id = $1 and type = $2 and id = $3",
    [org, r.type, r.id],
  );
  return rows[0];
}

/** Whether `candidate` is `r` or contained in it (a move under it would loop). */
export async function containsOrIs(
  db: Queryable,
  org: string,
  r: ResourceRef,
  candidate: ResourceRef,
  maxDepth: number,
): Promise<boolean> {
  const { rows } = await db.query<{ hit: boolean }>(
    `with recursive ${chainCte} select exists (select 1 from res where type = $4 and id = $6) as hit`,
    [org, candidate.type, candidate.id, r.type, maxDepth + 1, r.id],
  );
  return rows[0]?.hit ?? false;
}

/** Levels of the chain above a resource (0 for a project). */
export async function chainLength(db: Queryable, org: string, r: ResourceRef, maxDepth: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `with recursive ${chainCte} select count(*)::int as n from res where $4::int >= 0`,
    [org, r.type, r.id, 0, maxDepth + 1],
  );
  return rows[0]?.n ?? 0;
}

/** Stored role rows of an organization. */
export async function readRoles(db: Queryable, org: string): Promise<RoleRow[]> {
  const { rows } = await db.query<RoleRow>("select * from authz_roles where organization_id = $1 order by name", [org]);
  return rows;
}
