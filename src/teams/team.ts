import { withTransaction } from "../events/bus.ts";
import type { EventBus } from "../events/bus.ts";
import type { EventType } from "../events/catalog.ts";
import { createEvent } from "../events/cloudevent.ts";
import type { Config } from "../platform/config.ts";
import type { Db, Queryable } from "../platform/db.ts";
import type { EmailClient } from "../platform/email.ts";
import { cancelEmails } from "../platform/email.ts";
import {
  ConflictError,
  CycleError,
  ExpiredError,
  ForbiddenError,
  InvalidTokenError,
  NotFoundError,
  QuotaExceededError,
  RateLimitedError,
  ValidationError,
} from "../platform/errors.ts";
import { slidingWindow } from "../platform/rate-limit.ts";
import type { Redis, RedisKeys } from "../platform/redis.ts";
import { decodeCursor, encodeCursor } from "../platform/cursor.ts";
import { parseInput } from "../platform/validation.ts";
import { effectivePlan } from "../usage/plans.ts";
import { StampCache, bumpRevision, dep, encodeRevision } from "./authz/revision.ts";
import { CachedGrants } from "./cache.ts";
import type { TeamRow } from "./hierarchy.ts";
import { ancestorRows, depthOf, descendantRows, grantsOnPath, isInSubtree, subtreeHeight } from "./hierarchy.ts";
import type { InvitationRow } from "./invitation.ts";
import { hashToken, invitationEmail, issueInvitationToken, looksLikeToken, toInvitation } from "./invitation.ts";
import type { MembershipRow } from "./membership.ts";
import {
  assertCollaboratorRoom,
  assertKeepsAnOwner,
  byRoleThenJoin,
  grantKeepingHigher,
  lockTeam,
  toMembership,
  withUsers,
} from "./membership.ts";
import type { Grant, Permission, PermissionDecision, Role } from "./permissions.ts";
import {
  decide,
  effectiveGrant,
  effectivePermissions,
  grantableRole,
  higher,
  isPermission,
  lower,
  permissionsToGrant,
  roles,
} from "./permissions.ts";
import { reachCte, membersVisibleSql, redactGrants, sightOf, visibleTeamSql } from "./visibility.ts";
import type {
  CreateTeamRequest,
  DeleteTeamOptions,
  EffectivePermissions,
  InvitationRequest,
  Team,
  TeamHierarchy,
  TeamHierarchyNode,
  TeamInvitation,
  TeamMembership,
  TeamPolicy,
  UpdateTeamRequest,
} from "./schemas.ts";
import {
  createTeamSchema,
  deleteTeamSchema,
  invitationRequestSchema,
  teamPolicySchema,
  updateTeamSchema,
} from "./schemas.ts";
import type { UsersClient } from "./users.ts";
import { noUsers } from "./users.ts";

/** The caller, as the HTTP layer knows it (org admins hold every permission in their organization). */
export interface Viewer {
  userId: string;
  orgAdmin: boolean;
  email?: string;
}

/** Constructor options: the seed's db, redis, eventBus, emailClient, plus the users service and settings. */
export interface TeamServiceOptions {
  db: Db;
  redis: Redis;
  keys: RedisKeys;
  eventBus?: EventBus;
  emailClient: EmailClient;
  users?: UsersClient;
  config: Config["teams"];
  /** Who is calling (for org-admin rights and visibility); absent for internal jobs. */
  viewer?: Viewer;
  /** Link in invitation e-mails; `?token=` is appended. */
  acceptUrl?: string;
  /** Key of derived invitation tokens (`config.tokenSecret`). */
  tokenSecret: string;
  /** Keeps background work (cache fills) alive after the response (ctx.waitUntil). */
  waitUntil?: (p: Promise<unknown>) => void;
}

const iso = (d: Date | string) => new Date(d).toISOString();

/** Maps a row to the seed's `Team`. */
export function toTeam(r: TeamRow): Team {
  return {
    id: r.id,
    organizationId: r.organization_id,
    name: r.name,
    ...(r.description ? { description: r.description } : {}),
    ...(r.parent_team_id ? { parentTeamId: r.parent_team_id } : {}),
    visibility: r.visibility,
    settings: r.settings,
    createdAt: iso(r.created_at),
    updatedAt: iso(r.updated_at),
    createdBy: r.created_by,
  };
}

/**
 * TeamManagementService — teams, memberships, invitations and inherited permissions (seed Task 2).
 * Every change runs in one Postgres transaction with its events in the outbox; hierarchy changes
 * take a per-organization advisory lock so concurrent moves cannot create a cycle; cached checks
 * are invalidated per dependency (the stamps of `authz/revision.ts`) after each change.
 */
export class TeamManagementService {
  private readonly db: Db;
  private readonly redis: Redis;
  private readonly keys: RedisKeys;
  private readonly email: EmailClient;
  private readonly users: UsersClient;
  private readonly config: Config["teams"];
  private readonly viewer?: Viewer;
  private readonly cached: CachedGrants;
  private readonly acceptUrl?: string;
  private readonly tokenSecret: string;
  private readonly waitUntil: (p: Promise<unknown>) => void;
  private readonly stamps: StampCache;
  private lastRevision?: string;

  /** @param options - db, redis, eventBus, emailClient (seed) plus users service, settings and the viewer */
  constructor(options: TeamServiceOptions) {
    this.db = options.db;
    this.redis = options.redis;
    this.keys = options.keys;
    this.email = options.emailClient;
    this.users = options.users ?? noUsers;
    this.config = options.config;
    this.viewer = options.viewer;
    this.acceptUrl = options.acceptUrl;
    this.tokenSecret = options.tokenSecret;
    this.stamps = new StampCache(options.redis, options.keys);
    this.waitUntil = options.waitUntil ?? ((p) => void p.catch(() => undefined));
    this.cached = new CachedGrants({
      db: options.db,
      redis: options.redis,
      keys: options.keys,
      maxDepth: options.config.maxDepth,
      waitUntil: this.waitUntil,
    });
  }

  private event(type: EventType, org: string, subject: string, data: Record<string, unknown>) {
    return createEvent({ type, organizationId: org, source: "/cloudmatrix-edge/teams", subject, data });
  }

  private isOrgAdmin(userId: string) {
    return this.viewer?.orgAdmin === true && this.viewer.userId === userId;
  }

  private async team(q: Queryable, teamId: string): Promise<TeamRow> {
    const { rows } = await q.query<TeamRow>("select * from teams where id = $1", [teamId]);
    if (!rows[0]) throw new NotFoundError(`team ${teamId} not found`);
    return rows[0];
  }

  /** Grants on the path, from the cache when fresh (see {@link CachedGrants}). */
  private grants(teamId: string, userId: string): Promise<Grant[]> {
    return this.cached.grants(teamId, userId);
  }

  /**
   * The grants of `userId` on the team's path as the viewer may see them — the read of the
   * permission routes, with their guard: @throws {NotFoundError} unless the team is in
   * `organizationId` and the viewer may see it. From the cache alone when a valid entry proves all
   * of that, so such a check keeps working while Postgres is down: the entry's team is in the
   * organization (teams never move between organizations) and still exists (a deletion raises the
   * organization's stamp), and the viewer sees it — an organization admin; or someone reaching it
   * (a grant on its path: for the user themself, the entry's own; for another viewer, their own
   * cached check of the team) or the team not being secret (its visibility is in the entry, a
   * change raises the team's stamp). The grants are then redacted by the viewer's reach, cached the
   * same way (`redacted`). What is not cached, Postgres decides (a 503 while it is down).
   */
  private async visibleGrants(organizationId: string, teamId: string, userId: string): Promise<Grant[]> {
    const hit = await this.cached.lookup(teamId, userId);
    if (hit.org !== undefined && hit.org !== organizationId) throw new NotFoundError(`team ${teamId} not found`);
    if (hit.grants && hit.org === organizationId) {
      const viewer = this.viewer;
      const self = viewer?.userId === userId;
      if (!viewer || viewer.orgAdmin || (self && hit.grants.length > 0)) return hit.grants;
      if (hit.visibility) {
        const sees = hit.visibility !== "secret" || (!self && (await this.grants(teamId, viewer.userId)).length > 0);
        if (!sees) throw new NotFoundError(`team ${teamId} not found`);
        return this.redacted(hit.grants, userId);
      }
    }
    const team = await this.getTeam(teamId);
    if (!team || team.organizationId !== organizationId) throw new NotFoundError(`team ${teamId} not found`);
    return this.redacted(await this.cached.grants(teamId, userId, hit), userId);
  }

  /** @throws {ForbiddenError} unless `actor` holds `permission` on the team (uncached: mutations read their own truth) */
  private async authorize(q: Queryable, team: TeamRow, actor: string, permission: Permission): Promise<void> {
    if (this.isOrgAdmin(actor)) return;
    const d = decide(permission, await grantsOnPath(q, team.id, actor, this.config.maxDepth), false);
    if (!d.allowed) throw new ForbiddenError(`${permission} denied: ${d.reason}`);
  }

  /**
   * The one rule of who may grant what (`permissionsToGrant`): @throws {ForbiddenError} unless the actor
   * may give — or take away — `role` on the team.
   */
  private async assertMayGrant(q: Queryable, team: TeamRow, actor: string, role: Role): Promise<void> {
    for (const p of permissionsToGrant({ on: "team", role })) await this.authorize(q, team, actor, p);
  }

  /** The strongest role the actor may grant on the team (uncached), or null. */
  private async grantable(q: Queryable, team: TeamRow, actor: string): Promise<Role | null> {
    return grantableRole(await grantsOnPath(q, team.id, actor, this.config.maxDepth), this.isOrgAdmin(actor));
  }

  /** What the viewer may see of each team (one query at most). */
  private sightOf(teams: readonly Pick<TeamRow, "id" | "visibility">[]) {
    return sightOf(this.db, this.viewer, teams, this.config.maxDepth);
  }

  /**
   * Teams as the viewer may see them: a parent the viewer cannot see is not named (its id would
   * reveal a secret team).
   */
  private async present(rows: readonly TeamRow[]): Promise<Team[]> {
    const parentIds = [...new Set(rows.map((r) => r.parent_team_id).filter((id): id is string => !!id))];
    const parents =
      parentIds.length === 0 || !this.viewer || this.viewer.orgAdmin
        ? []
        : (await this.db.query<TeamRow>("select id, visibility from teams where id = any($1::text[])", [parentIds]))
            .rows;
    const seen = await this.sightOf(parents);
    return rows.map((r) => {
      const t = toTeam(r);
      if (r.parent_team_id && seen.get(r.parent_team_id)?.visible === false) delete t.parentTeamId;
      return t;
    });
  }

  /**
   * Grants with the teams the viewer may not see blanked out, so no reason or source names them.
   * The viewer's reach comes from their own cached checks of those teams (see {@link CachedGrants}).
   */
  private async redacted(grants: Grant[], userId: string): Promise<Grant[]> {
    if (!this.viewer || this.viewer.orgAdmin || this.viewer.userId === userId) return grants;
    const secret = grants.filter((g) => g.visibility !== "public" && g.visibility !== "private");
    if (secret.length === 0) return grants;
    const reached = await this.cached.reached(
      this.viewer.userId,
      secret.map((g) => g.teamId),
    );
    const hidden = new Set(
      secret.filter((g) => g.visibility === "secret" || g.visibility === undefined).map((g) => g.teamId),
    );
    for (const id of reached) hidden.delete(id);
    return redactGrants(grants, hidden);
  }

  /** Serialises changes that can add collaborators to an organization, so its plan limit holds. */
  private async lockMembers(tx: Queryable, org: string) {
    await tx.query("select pg_advisory_xact_lock(hashtext($1))", [`teams-members:${org}`]);
  }

  /**
   * Runs a change that affects permissions in one transaction: increments the authorization
   * revision as the transaction's last statement and, after the commit, raises the stamps of what
   * `fn` touched (`touch(dep…)`), so exactly the cached checks — of teams and of resources — that
   * read those go cold, and none other. If Redis cannot take the stamps the change fails loudly
   * (it has committed; entries expire after 5 minutes). The revision token is kept in {@link revision}.
   */
  private async permissionChange<T>(
    org: string,
    fn: (tx: Queryable, outbox: EventBus, touch: (...deps: string[]) => void) => Promise<T>,
  ): Promise<T> {
    const deps: string[] = [];
    const { result, rev } = await withTransaction(this.db, async (tx, outbox) => {
      const result = await fn(tx, outbox, (...d) => deps.push(...d));
      return { result, rev: await bumpRevision(tx, org) };
    });
    this.lastRevision = encodeRevision(org, rev);
    await this.stamps.announce(org, deps, rev);
    return result;
  }

  /** The revision token of the last permission change this service made (read-your-writes). */
  get revision(): string | undefined {
    return this.lastRevision;
  }

  private async lockOrg(tx: Queryable, org: string) {
    await tx.query("select pg_advisory_xact_lock(hashtext($1))", [`teams:${org}`]);
  }

  /**
   * Create a new team within an organization; the creator becomes its owner.
   * @param request - organization, name, description, parent, visibility, creator
   * @throws {ValidationError} if team data is invalid or the depth limit is reached
   * @throws {QuotaExceededError} if organization has reached team limit
   * @throws {ConflictError} if the name is taken in the organization (case-insensitive)
   * @throws {ForbiddenError} for a root team when the organization lets only its admins create those
   */
  async createTeam(request: CreateTeamRequest): Promise<Team> {
    const req = parseInput(createTeamSchema, request, "team");
    const row = await this.permissionChange(req.organizationId, async (tx, outbox, touch) => {
      await this.lockOrg(tx, req.organizationId);
      await this.lockMembers(tx, req.organizationId);
      await tx.query("insert into organizations (id) values ($1) on conflict do nothing", [req.organizationId]);
      if (!req.parentTeamId && !this.isOrgAdmin(req.creatorUserId)) {
        const policy = await rootTeamCreation(tx, req.organizationId);
        if (policy === "admins") {
          throw new ForbiddenError("in this organization only organization admins may create teams at the root");
        }
      }
      // The creator becomes the owner: a new collaborator counts toward the plan like any other.
      await assertCollaboratorRoom(tx, req.organizationId, req.creatorUserId);
      const teamLimit = (await effectivePlan(tx, req.organizationId)).limits.teams;
      if (teamLimit !== undefined) {
        const { rows: lim } = await tx.query<{ teams: number }>(
          "select count(*)::int as teams from teams where organization_id = $1",
          [req.organizationId],
        );
        if ((lim[0]?.teams ?? 0) >= teamLimit)
          throw new QuotaExceededError(`the plan allows ${teamLimit} teams`, {
            details: { metricType: "teams", limit: teamLimit },
          });
      }
      if (req.parentTeamId) {
        const parent = await this.team(tx, req.parentTeamId);
        if (parent.organization_id !== req.organizationId)
          throw new NotFoundError(`team ${req.parentTeamId} not found`);
        await this.authorize(tx, parent, req.creatorUserId, "team.create_subteam");
        if ((await depthOf(tx, parent.id, this.config.maxDepth)) + 1 > this.config.maxDepth) {
          throw new ValidationError("hierarchy too deep", [
            { path: "parentTeamId", message: `teams nest at most ${this.config.maxDepth} levels` },
          ]);
        }
      }
      const id = `team_${crypto.randomUUID().replace(/-/g, "")}`;
      let created: TeamRow;
      try {
        created = (
          await tx.query<TeamRow>(
            `insert into teams (id, organization_id, name, description, parent_team_id, visibility, settings, created_by)
               values ($1, $2, $3, $4, $5, $6, $7, $8) returning *`,
            [
              id,
              req.organizationId,
              req.name,
              req.description ?? null,
              req.parentTeamId ?? null,
              req.visibility,
              JSON.stringify(req.settings),
              req.creatorUserId,
            ],
          )
        ).rows[0]!;
      } catch (err) {
        if ((err as { code?: string }).code === "23505")
          throw new ConflictError(`a team named "${req.name}" already exists in this organization`);
        throw err;
      }
      await tx.query("insert into team_memberships (team_id, user_id, role, added_by) values ($1, $2, 'owner', $2)", [
        id,
        req.creatorUserId,
      ]);
      touch(dep.user(req.creatorUserId));
      await outbox.publishMany([
        this.event("team.created", req.organizationId, `teams/${id}`, {
          teamId: id,
          name: req.name,
          parentTeamId: req.parentTeamId ?? null,
          visibility: req.visibility,
          createdBy: req.creatorUserId,
        }),
        this.event("member.added", req.organizationId, `teams/${id}`, {
          teamId: id,
          userId: req.creatorUserId,
          role: "owner",
          addedBy: req.creatorUserId,
        }),
      ]);
      return created;
    });
    // Teams never change organization: cached now, the team's first check can cache its answer (a
    // check that finds no organization cached only caches that). Best effort, like every cache fill.
    await this.cached.cache.setOrg(row.id, row.organization_id).catch(() => undefined);
    return toTeam(row);
  }

  /** Whether the viewer may see the team at all (secret teams: members of it or above, and org admins). */
  private async visible(team: TeamRow): Promise<boolean> {
    if (team.visibility !== "secret" || !this.viewer || this.viewer.orgAdmin) return true;
    return (await this.grants(team.id, this.viewer.userId)).length > 0;
  }

  /**
   * Get team by ID with optional member loading. Secret teams are invisible (null) to non-members;
   * members of private teams are listed to members only.
   * @param teamId - team identifier
   * @param options - includeMembers, includeSubteams
   */
  async getTeam(
    teamId: string,
    options: { includeMembers?: boolean; includeSubteams?: boolean } = {},
  ): Promise<Team | null> {
    const { rows } = await this.db.query<TeamRow>("select * from teams where id = $1", [teamId]);
    const row = rows[0];
    if (!row || !(await this.visible(row))) return null;
    const [team] = await this.present([row]);
    if (!team) return null;
    if (options.includeMembers) {
      const mayList =
        row.visibility === "public" ||
        !this.viewer ||
        this.viewer.orgAdmin ||
        (await this.grants(row.id, this.viewer.userId)).length > 0;
      if (mayList) {
        const m = await this.db.query<MembershipRow>("select * from team_memberships where team_id = $1", [teamId]);
        team.members = await withUsers(m.rows.sort(byRoleThenJoin), this.users);
      }
    }
    if (options.includeSubteams) {
      const subs = await this.db.query<TeamRow>(
        "select * from teams where parent_team_id = $1 order by created_at, id",
        [teamId],
      );
      const seen = await this.sightOf(subs.rows);
      team.subteams = subs.rows.filter((s) => seen.get(s.id)?.visible).map(toTeam);
    }
    return team;
  }

  /** Teams of an organization visible to the viewer, oldest first, optionally under one parent. */
  async listTeams(
    organizationId: string,
    options: { parentTeamId?: string; limit?: number; cursor?: string } = {},
  ): Promise<{ teams: Team[]; nextCursor: string | null }> {
    const limit = Math.min(Math.max(options.limit ?? 50, 1), 200);
    const after = decodeCursor(options.cursor);
    // The children of a team the viewer cannot see are not listed either (that would confirm it exists).
    if (options.parentTeamId) {
      const parent = (await this.db.query<TeamRow>("select * from teams where id = $1", [options.parentTeamId]))
        .rows[0];
      if (!parent || parent.organization_id !== organizationId || !(await this.visible(parent))) {
        return { teams: [], nextCursor: null };
      }
    }
    const { rows } = await this.db.query<TeamRow & { created_text: string }>(
      `with recursive ${reachCte("$2", "$1", "$7")}
       select t.*, t.created_at::text as created_text from teams t
       where t.organization_id = $1 and ($3::text is null or t.parent_team_id = $3)
         and ${visibleTeamSql("t", "$4")}
         and ($5::timestamptz is null or (t.created_at, t.id) > ($5::timestamptz, $6))
       order by t.created_at, t.id limit $8`,
      [
        organizationId,
        this.viewer?.userId ?? "",
        options.parentTeamId ?? null,
        !this.viewer || this.viewer.orgAdmin,
        after?.createdAt ?? null,
        after?.id ?? "",
        this.config.maxDepth,
        limit + 1,
      ],
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      teams: await this.present(page),
      nextCursor: rows.length > limit && last ? encodeCursor(last.created_text, last.id) : null,
    };
  }

  /**
   * Update team properties (settings are merged).
   * @param teamId - team identifier
   * @param updates - name, description, visibility, settings
   * @param actorUserId - user performing the update
   * @throws {ForbiddenError} if actor lacks permission
   */
  async updateTeam(teamId: string, updates: UpdateTeamRequest, actorUserId: string): Promise<Team> {
    const u = parseInput(updateTeamSchema, updates, "team update");
    const row = await withTransaction(this.db, async (tx, outbox) => {
      const team = await this.team(tx, teamId);
      await this.authorize(tx, team, actorUserId, "team.update");
      try {
        const { rows } = await tx.query<TeamRow>(
          `update teams set name = coalesce($2, name), description = case when $3 then $4 else description end,
             visibility = coalesce($5, visibility), settings = settings || $6::jsonb, updated_at = now()
           where id = $1 returning *`,
          [
            teamId,
            u.name ?? null,
            u.description !== undefined,
            u.description ?? null,
            u.visibility ?? null,
            JSON.stringify(u.settings ?? {}),
          ],
        );
        await outbox.publish(
          this.event("team.updated", team.organization_id, `teams/${teamId}`, {
            teamId,
            changes: Object.keys(u),
            updatedBy: actorUserId,
          }),
        );
        // Cached reasons carry the team's name and visibility (a team turned secret must vanish from them).
        return { ...rows[0]!, rev: await bumpRevision(tx, team.organization_id) };
      } catch (err) {
        if ((err as { code?: string }).code === "23505")
          throw new ConflictError(`a team named "${u.name}" already exists in this organization`);
        throw err;
      }
    });
    this.lastRevision = encodeRevision(row.organization_id, row.rev);
    await this.stamps.announce(row.organization_id, [dep.team(teamId)], row.rev);
    return toTeam(row);
  }

  /**
   * Delete a team and handle member reassignment, in one transaction: members move to `reassignTo`
   * (keeping the higher role), subteams are deleted or re-parented to the deleted team's parent,
   * pending invitations are revoked, events are written to the outbox.
   * @param teamId - team identifier
   * @param options - actorUserId, reassignTo?, deleteSubteams?
   */
  async deleteTeam(
    teamId: string,
    options: DeleteTeamOptions,
  ): Promise<{ deleted: boolean; membersReassigned: number; rolesCapped: number }> {
    const o = parseInput(deleteTeamSchema, options, "delete options");
    const team = await this.team(this.db, teamId);
    return this.permissionChange(team.organization_id, async (tx, outbox, touch) => {
      await this.lockOrg(tx, team.organization_id);
      await this.authorize(tx, team, o.actorUserId, "team.delete");
      const subtree = o.deleteSubteams ? await descendantRows(tx, teamId, this.config.maxDepth) : [];
      const doomed = [teamId, ...subtree.map((t) => t.id)];
      let reassigned = 0;
      let capped = 0;
      if (o.reassignTo) {
        if (doomed.includes(o.reassignTo))
          throw new ValidationError("cannot reassign into a team being deleted", [
            { path: "reassignTo", message: "choose a team outside the deleted subtree" },
          ]);
        const target = await this.team(tx, o.reassignTo);
        if (target.organization_id !== team.organization_id) throw new NotFoundError(`team ${o.reassignTo} not found`);
        // Re-homing members grants roles on the target: never more than the actor may grant there.
        const cap = await this.grantable(tx, target, o.actorUserId);
        if (!cap) throw new ForbiddenError(`you may not add members to team ${o.reassignTo}`);
        const members = await tx.query<MembershipRow>("select * from team_memberships where team_id = $1", [teamId]);
        for (const m of members.rows) {
          const role = lower(m.role, cap);
          if (role !== m.role) capped += 1;
          await grantKeepingHigher(tx, o.reassignTo, m.user_id, role, o.actorUserId);
        }
        reassigned = members.rows.length;
      }
      if (!o.deleteSubteams)
        await tx.query("update teams set parent_team_id = $2, updated_at = now() where parent_team_id = $1", [
          teamId,
          team.parent_team_id,
        ]);
      await tx.query(
        "update team_invitations set status = 'revoked' where team_id = any($1::text[]) and status = 'pending'",
        [doomed],
      );
      // Children before parents, so the parent foreign key never blocks.
      for (const id of [...doomed].reverse()) await tx.query("delete from teams where id = $1", [id]);
      // Grants to the deleted teams go with them (a subject is not a foreign key: it may be a user).
      await tx.query(
        "delete from authz_grants where organization_id = $1 and subject_type = 'team' and subject_id = any($2::text[])",
        [team.organization_id, doomed],
      );
      // Deletion re-parents, re-homes and removes at once: rare enough to invalidate the organization.
      touch(dep.org);
      await outbox.publishMany(
        doomed.map((id) =>
          this.event("team.deleted", team.organization_id, `teams/${id}`, {
            teamId: id,
            deletedBy: o.actorUserId,
            reassignedTo: id === teamId ? (o.reassignTo ?? null) : null,
          }),
        ),
      );
      return { deleted: true, membersReassigned: reassigned, rolesCapped: capped };
    });
  }

  /**
   * Add a member to a team.
   * @param teamId - team identifier
   * @param userId - user to add
   * @param role - 'member' | 'admin' | 'owner'
   * @param actorUserId - user performing the action
   * @throws {ConflictError} if user is already a member; {ForbiddenError}; {QuotaExceededError} (collaborators)
   */
  async addMember(teamId: string, userId: string, role: Role, actorUserId: string): Promise<TeamMembership> {
    if (!roles.includes(role))
      throw new ValidationError("invalid role", [{ path: "role", message: `one of ${roles.join(", ")}` }]);
    const team = await this.team(this.db, teamId);
    const row = await this.permissionChange(team.organization_id, async (tx, outbox, touch) => {
      await this.lockMembers(tx, team.organization_id);
      await lockTeam(tx, teamId);
      await this.assertMayGrant(tx, team, actorUserId, role);
      await assertCollaboratorRoom(tx, team.organization_id, userId);
      const { rows } = await tx.query<MembershipRow>(
        "insert into team_memberships (team_id, user_id, role, added_by) values ($1, $2, $3, $4) on conflict do nothing returning *",
        [teamId, userId, role, actorUserId],
      );
      if (!rows[0]) throw new ConflictError(`user ${userId} is already a member of team ${teamId}`);
      touch(dep.user(userId));
      await outbox.publish(
        this.event("member.added", team.organization_id, `teams/${teamId}`, {
          teamId,
          userId,
          role,
          addedBy: actorUserId,
        }),
      );
      return rows[0];
    });
    return toMembership(row);
  }

  /**
   * Remove a member from a team (anyone may leave; removing others needs team.manage_members).
   * @throws {ForbiddenError} If trying to remove last owner
   */
  async removeMember(teamId: string, userId: string, actorUserId: string): Promise<{ removed: boolean }> {
    const team = await this.team(this.db, teamId);
    return this.permissionChange(team.organization_id, async (tx, outbox, touch) => {
      await lockTeam(tx, teamId);
      const { rows } = await tx.query<MembershipRow>(
        "select * from team_memberships where team_id = $1 and user_id = $2",
        [teamId, userId],
      );
      const current = rows[0];
      if (!current) throw new NotFoundError(`user ${userId} is not a member of team ${teamId}`);
      // Leaving is always allowed; taking a role from someone else needs the right to grant it.
      if (actorUserId !== userId) await this.assertMayGrant(tx, team, actorUserId, current.role);
      await assertKeepsAnOwner(tx, teamId, current.role, null);
      await tx.query("delete from team_memberships where team_id = $1 and user_id = $2", [teamId, userId]);
      touch(dep.user(userId));
      await outbox.publish(
        this.event("member.removed", team.organization_id, `teams/${teamId}`, {
          teamId,
          userId,
          previousRole: current.role,
          removedBy: actorUserId,
        }),
      );
      return { removed: true };
    });
  }

  /**
   * Update a member's role within a team.
   * @throws {ForbiddenError} without permission, or when it would demote the last owner
   */
  async updateMemberRole(teamId: string, userId: string, newRole: Role, actorUserId: string): Promise<TeamMembership> {
    if (!roles.includes(newRole))
      throw new ValidationError("invalid role", [{ path: "role", message: `one of ${roles.join(", ")}` }]);
    const team = await this.team(this.db, teamId);
    const row = await this.permissionChange(team.organization_id, async (tx, outbox, touch) => {
      await lockTeam(tx, teamId);
      const { rows } = await tx.query<MembershipRow>(
        "select * from team_memberships where team_id = $1 and user_id = $2",
        [teamId, userId],
      );
      const current = rows[0];
      if (!current) throw new NotFoundError(`user ${userId} is not a member of team ${teamId}`);
      // Both ends count: demoting an owner takes the owner role away.
      await this.assertMayGrant(tx, team, actorUserId, higher(current.role, newRole));
      await assertKeepsAnOwner(tx, teamId, current.role, newRole);
      const updated = await tx.query<MembershipRow>(
        "update team_memberships set role = $3 where team_id = $1 and user_id = $2 returning *",
        [teamId, userId, newRole],
      );
      touch(dep.user(userId));
      if (current.role !== newRole) {
        await outbox.publish(
          this.event("member.role_changed", team.organization_id, `teams/${teamId}`, {
            teamId,
            userId,
            previousRole: current.role,
            role: newRole,
            changedBy: actorUserId,
          }),
        );
      }
      return updated.rows[0]!;
    });
    return toMembership(row);
  }

  /** Checks the invitation rate limit of an organization (creating and re-sending both count). */
  private async invitationRateLimit(org: string): Promise<void> {
    const limit = await slidingWindow(
      this.redis,
      this.keys.key("teams", "invites", org),
      this.config.invitationRateLimit,
      86_400_000,
    );
    if (!limit.allowed) {
      throw new RateLimitedError(
        `at most ${this.config.invitationRateLimit} invitations per organization per 24 h`,
        limit.retryAfterSeconds,
      );
    }
  }

  /** Queues the invitation e-mail in `tx`: its token is derived when it is sent, never stored. */
  private async queueInvitationEmail(tx: Queryable, team: TeamRow, inv: InvitationRow, nonce: string): Promise<void> {
    const mail = invitationEmail(
      team.name,
      inv.role,
      this.acceptUrl,
      inv.message ?? undefined,
      new Date(inv.expires_at),
    );
    await this.email.send(
      {
        to: inv.email,
        ...mail,
        kind: "invitation",
        organizationId: team.organization_id,
        tokenFor: { subject: inv.id, nonce },
        ref: inv.id,
      },
      tx,
    );
  }

  /**
   * Create and send a team invitation: a 256-bit token derived from the invitation and a nonce
   * (only its hash is stored), e-mailed through the outbox; rate-limited per organization; one
   * pending invitation per address and team.
   * @param request - teamId, email, role, inviterUserId, message?
   * @throws {ConflictError} if the address already has a pending invitation to the team (details.invitationId)
   */
  async createInvitation(request: InvitationRequest): Promise<TeamInvitation> {
    const req = parseInput(invitationRequestSchema, request, "invitation");
    const team = await this.team(this.db, req.teamId);
    await this.authorize(this.db, team, req.inviterUserId, "team.invite");
    await this.assertMayGrant(this.db, team, req.inviterUserId, req.role);
    await this.invitationRateLimit(team.organization_id);
    const id = `inv_${crypto.randomUUID().replace(/-/g, "")}`;
    const { nonce, token, hash } = await issueInvitationToken(this.tokenSecret, id);
    const days = req.expiresInDays ?? this.config.invitationTtlDays;
    const row = await withTransaction(this.db, async (tx, outbox) => {
      // A pending invitation past its expiry no longer blocks a new one.
      await tx.query(
        "update team_invitations set status = 'expired' where team_id = $1 and email = $2 and status = 'pending' and expires_at <= now()",
        [team.id, req.email],
      );
      const { rows } = await tx.query<InvitationRow>(
        `insert into team_invitations (id, team_id, organization_id, email, role, token_hash, token_nonce, invited_by, message, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + make_interval(days => $10))
         on conflict (team_id, email) where status = 'pending' do nothing returning *`,
        [
          id,
          team.id,
          team.organization_id,
          req.email,
          req.role,
          hash,
          nonce,
          req.inviterUserId,
          req.message ?? null,
          days,
        ],
      );
      const inv = rows[0];
      if (!inv) {
        const existing = await tx.query<{ id: string }>(
          "select id from team_invitations where team_id = $1 and email = $2 and status = 'pending'",
          [team.id, req.email],
        );
        throw new ConflictError(`${req.email} already has a pending invitation to this team: re-send it instead`, {
          details: { invitationId: existing.rows[0]?.id },
        });
      }
      await this.queueInvitationEmail(tx, team, inv, nonce);
      await outbox.publish(
        this.event("invitation.sent", team.organization_id, `teams/${team.id}`, {
          invitationId: inv.id,
          teamId: team.id,
          email: req.email,
          role: req.role,
          invitedBy: req.inviterUserId,
          expiresAt: iso(inv.expires_at),
        }),
      );
      return inv;
    });
    return toInvitation(row, token);
  }

  /**
   * Accept a team invitation: single use (the row is locked; a second accept finds it used); the
   * accepting user's e-mail must match the invited address, and a mismatch does not consume it.
   * Someone already in the team keeps the higher of the two roles.
   * @param invitationToken - invitation token
   * @param userId - user accepting the invitation
   * @param verifiedEmail - the user's verified e-mail (token claim or users service)
   * @throws {ExpiredError} If invitation has expired
   * @throws {InvalidTokenError} If token is invalid, revoked or already used
   */
  async acceptInvitation(invitationToken: string, userId: string, verifiedEmail?: string): Promise<TeamMembership> {
    if (!looksLikeToken(invitationToken)) throw new InvalidTokenError("invalid invitation token");
    let email = verifiedEmail ?? (this.viewer?.userId === userId ? this.viewer.email : undefined);
    if (!email) {
      const u = (await this.users.getUsers([userId]).catch(() => new Map())).get(userId);
      if (u?.email && u.emailVerified !== false) email = u.email;
    }
    if (!email) throw new ForbiddenError("no verified e-mail for this user: the token must carry an email claim");
    const hash = await hashToken(invitationToken);
    const { rows: probe } = await this.db.query<{ organization_id: string }>(
      "select organization_id from team_invitations where token_hash = $1",
      [hash],
    );
    if (!probe[0]) throw new InvalidTokenError("invalid invitation token");
    const org = probe[0].organization_id;
    const row = await this.permissionChange(org, async (tx, outbox, touch) => {
      await this.lockMembers(tx, org);
      const { rows } = await tx.query<InvitationRow>(
        "select * from team_invitations where token_hash = $1 for update",
        [hash],
      );
      const inv = rows[0];
      if (!inv) throw new InvalidTokenError("invalid invitation token");
      if (inv.status === "revoked") throw new InvalidTokenError("this invitation was revoked");
      if (inv.status === "accepted") throw new InvalidTokenError("this invitation was already used");
      if (inv.status === "expired" || new Date(inv.expires_at).getTime() <= Date.now())
        throw new ExpiredError("this invitation has expired");
      if (inv.email !== email!.toLowerCase())
        throw new ForbiddenError("this invitation was sent to another e-mail address");
      await lockTeam(tx, inv.team_id);
      await assertCollaboratorRoom(tx, inv.organization_id, userId);
      const before = await tx.query<MembershipRow>(
        "select * from team_memberships where team_id = $1 and user_id = $2",
        [inv.team_id, userId],
      );
      await grantKeepingHigher(tx, inv.team_id, userId, inv.role, inv.invited_by);
      touch(dep.user(userId));
      // The accepted address is the user's: member search finds them by it.
      await tx.query(
        `insert into user_directory (user_id, email) values ($1, $2)
           on conflict (user_id) do update set email = coalesce(user_directory.email, excluded.email)`,
        [userId, inv.email],
      );
      await tx.query(
        "update team_invitations set status = 'accepted', accepted_by = $2, accepted_at = now() where id = $1",
        [inv.id, userId],
      );
      const m = await tx.query<MembershipRow>("select * from team_memberships where team_id = $1 and user_id = $2", [
        inv.team_id,
        userId,
      ]);
      const now = m.rows[0]!;
      const was = before.rows[0];
      const subject = `teams/${inv.team_id}`;
      await outbox.publishMany([
        this.event("invitation.accepted", inv.organization_id, subject, {
          invitationId: inv.id,
          teamId: inv.team_id,
          userId,
        }),
        // A member event only for what changed: joining, or a role the invitation raised.
        ...(!was
          ? [
              this.event("member.added", inv.organization_id, subject, {
                teamId: inv.team_id,
                userId,
                role: now.role,
                addedBy: inv.invited_by,
                invitationId: inv.id,
              }),
            ]
          : was.role !== now.role
            ? [
                this.event("member.role_changed", inv.organization_id, subject, {
                  teamId: inv.team_id,
                  userId,
                  previousRole: was.role,
                  role: now.role,
                  changedBy: inv.invited_by,
                  invitationId: inv.id,
                }),
              ]
            : []),
      ]);
      return now;
    });
    return toMembership(row);
  }

  /** Revokes a pending invitation (its unsent e-mail is cancelled too). */
  async revokeInvitation(teamId: string, invitationId: string, actorUserId: string): Promise<{ revoked: boolean }> {
    const team = await this.team(this.db, teamId);
    return withTransaction(this.db, async (tx, outbox) => {
      await this.authorize(tx, team, actorUserId, "team.invite");
      const { rowCount } = await tx.query(
        "update team_invitations set status = 'revoked' where id = $1 and team_id = $2 and status = 'pending'",
        [invitationId, teamId],
      );
      if (rowCount === 0) throw new NotFoundError(`no pending invitation ${invitationId}`);
      await cancelEmails(tx, invitationId);
      await outbox.publish(
        this.event("invitation.revoked", team.organization_id, `teams/${teamId}`, {
          invitationId,
          teamId,
          revokedBy: actorUserId,
        }),
      );
      return { revoked: true };
    });
  }

  /**
   * Re-sends a pending (or expired) invitation with a new token and a fresh expiry: the old token
   * stops working and its unsent e-mail is cancelled. Counts toward the rate limit like a new one.
   */
  async resendInvitation(teamId: string, invitationId: string, actorUserId: string): Promise<TeamInvitation> {
    const team = await this.team(this.db, teamId);
    await this.authorize(this.db, team, actorUserId, "team.invite");
    const current = (
      await this.db.query<InvitationRow>("select * from team_invitations where id = $1 and team_id = $2", [
        invitationId,
        teamId,
      ])
    ).rows[0];
    if (!current || (current.status !== "pending" && current.status !== "expired")) {
      throw new NotFoundError(`no pending invitation ${invitationId}`);
    }
    await this.assertMayGrant(this.db, team, actorUserId, current.role);
    await this.invitationRateLimit(team.organization_id);
    const { nonce, token, hash } = await issueInvitationToken(this.tokenSecret, invitationId);
    const inv = await withTransaction(this.db, async (tx, outbox) => {
      const { rows } = await tx.query<InvitationRow>(
        `update team_invitations set token_hash = $3, token_nonce = $4, expires_at = now() + make_interval(days => $5),
           status = 'pending'
         where id = $1 and team_id = $2 and status in ('pending', 'expired') returning *`,
        [invitationId, teamId, hash, nonce, this.config.invitationTtlDays],
      );
      const inv = rows[0];
      if (!inv) throw new NotFoundError(`no pending invitation ${invitationId}`);
      await cancelEmails(tx, invitationId);
      await this.queueInvitationEmail(tx, team, inv, nonce);
      await outbox.publish(
        this.event("invitation.sent", team.organization_id, `teams/${teamId}`, {
          invitationId,
          teamId,
          email: inv.email,
          role: inv.role,
          invitedBy: actorUserId,
          expiresAt: iso(inv.expires_at),
          resent: true,
        }),
      );
      return inv;
    }).catch((err: unknown) => {
      // Re-sending an expired invitation while a newer one is pending for the same address.
      if ((err as { code?: string }).code === "23505") {
        throw new ConflictError(`${current.email} already has a newer pending invitation to this team`);
      }
      throw err;
    });
    return toInvitation(inv, token);
  }

  /** Invitations of a team (default: pending). */
  async listInvitations(
    teamId: string,
    actorUserId: string,
    status: TeamInvitation["status"] = "pending",
  ): Promise<TeamInvitation[]> {
    const team = await this.team(this.db, teamId);
    await this.authorize(this.db, team, actorUserId, "team.invite");
    // Expiry is judged the same way everywhere (`toInvitation`): a pending row past its expiry is
    // expired whether or not the cron has marked it yet.
    const where = {
      pending: "status = 'pending' and expires_at > now()",
      expired: "(status = 'expired' or (status = 'pending' and expires_at <= now()))",
      accepted: "status = 'accepted'",
      revoked: "status = 'revoked'",
    }[status];
    const { rows } = await this.db.query<InvitationRow>(
      `select * from team_invitations where team_id = $1 and ${where} order by created_at desc`,
      [teamId],
    );
    return rows.map((r) => toInvitation(r));
  }

  /** Cron: marks pending invitations past their expiry `expired` and emits `invitation.expired`. */
  async expireInvitations(limit = 500): Promise<number> {
    return withTransaction(this.db, async (tx, outbox) => {
      const { rows } = await tx.query<InvitationRow>(
        `update team_invitations set status = 'expired' where id in (
           select id from team_invitations where status = 'pending' and expires_at <= now() order by expires_at limit $1 for update skip locked)
         returning *`,
        [limit],
      );
      for (const r of rows) await cancelEmails(tx, r.id);
      await outbox.publishMany(
        rows.map((r) =>
          this.event("invitation.expired", r.organization_id, `teams/${r.team_id}`, {
            invitationId: r.id,
            teamId: r.team_id,
            email: r.email,
          }),
        ),
      );
      return rows.length;
    });
  }

  /**
   * Get all teams a user belongs to; with `includeInherited`, also the teams below them (where
   * their role applies too).
   * @param userId - user identifier
   * @param options - organizationId, includeInherited, limit, cursor
   */
  async getUserTeams(
    userId: string,
    options: { organizationId?: string; includeInherited?: boolean; limit?: number; cursor?: string } = {},
  ): Promise<{ memberships: TeamMembership[]; nextCursor: string | null }> {
    const limit = Math.min(Math.max(options.limit ?? 50, 1), 200);
    const after = decodeCursor(options.cursor);
    // Someone else's memberships show only where the viewer may see members (public teams, teams they
    // reach): a private or secret team is not revealed through who belongs to it.
    const { rows } = await this.db.query<MembershipRow & { inherited: boolean; created_text: string }>(
      `with recursive ${reachCte("$9", "coalesce($2::text, rt.organization_id)", "$4")}, direct as (
         select m.* from team_memberships m join teams t on t.id = m.team_id
         where m.user_id = $1 and ($2::text is null or t.organization_id = $2)
       ), below as (
         select d.team_id as root, t.id as team_id, d.role, d.joined_at, d.added_by, 1 as depth, array[d.team_id, t.id] as path
         from direct d join teams t on t.parent_team_id = d.team_id where $3
         union all
         select b.root, t.id, b.role, b.joined_at, b.added_by, b.depth + 1, b.path || t.id from below b join teams t on t.parent_team_id = b.team_id
         where not t.id = any(b.path) and b.depth < $4
       ), best_below as (
         select distinct on (team_id) team_id, $1::text as user_id, role, joined_at, added_by from below
         where team_id not in (select team_id from direct)
         order by team_id, case role when 'owner' then 3 when 'admin' then 2 else 1 end desc
       ), everything as (
         select team_id, user_id, role, joined_at, added_by, false as inherited from direct
         union all
         select team_id, user_id, role, joined_at, added_by, true from best_below
       )
       select e.*, t.created_at::text as created_text from everything e join teams t on t.id = e.team_id
       where ($5::text is null or (t.created_at, t.id) > ($5::timestamptz, $6))
         and ($9 = $1 or ${membersVisibleSql("t", "$8")})
       order by t.created_at, t.id limit $7`,
      [
        userId,
        options.organizationId ?? null,
        options.includeInherited === true,
        this.config.maxDepth,
        after?.createdAt ?? null,
        after?.id ?? "",
        limit + 1,
        !this.viewer || this.viewer.orgAdmin,
        this.viewer?.userId ?? "",
      ],
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      memberships: page.map((r) => ({ ...toMembership(r), ...(r.inherited ? { inherited: true } : {}) })),
      nextCursor: rows.length > limit && last ? encodeCursor(last.created_text, last.team_id) : null,
    };
  }

  /**
   * Get organizational hierarchy starting from a team: ancestors to the root (nearest first) and
   * the descendant tree with depths. Secret teams the viewer may not see are left out.
   * @param teamId - starting team identifier
   * @param direction - 'ancestors' | 'descendants' | 'both'
   */
  async getHierarchy(teamId: string, direction: "ancestors" | "descendants" | "both" = "both"): Promise<TeamHierarchy> {
    const path = await ancestorRows(this.db, teamId, this.config.maxDepth);
    const self = path[0];
    if (!self || !(await this.visible(self))) throw new NotFoundError(`team ${teamId} not found`);
    let ancestors: Team[] = [];
    if (direction !== "descendants") {
      // The chain stops below the first ancestor the viewer may not see: nothing above it is named.
      const seen = await this.sightOf(path.slice(1));
      const cut = path.slice(1).findIndex((t) => !seen.get(t.id)?.visible);
      ancestors = await this.present(cut < 0 ? path.slice(1) : path.slice(1, 1 + cut));
    }
    const descendants: TeamHierarchyNode[] = [];
    if (direction !== "ancestors") {
      const rows = await descendantRows(this.db, teamId, this.config.maxDepth);
      const seen = await this.sightOf(rows.filter((r) => r.visibility === "secret"));
      const hidden = new Set<string>();
      const nodes = new Map<string, TeamHierarchyNode>();
      for (const r of rows) {
        // A secret team hides its whole subtree from those who cannot see it.
        if (hidden.has(r.parent_team_id ?? "") || seen.get(r.id)?.visible === false) {
          hidden.add(r.id);
          continue;
        }
        const node: TeamHierarchyNode = { team: toTeam(r), children: [], depth: r.depth };
        nodes.set(r.id, node);
        if (r.parent_team_id === teamId) descendants.push(node);
        else nodes.get(r.parent_team_id ?? "")?.children.push(node);
      }
    }
    const [team] = await this.present([self]);
    return { team: team!, ancestors, descendants };
  }

  /**
   * Move a team to a new parent in the hierarchy. Serialised per organization, so two concurrent
   * moves (A under B, B under A) can never both succeed.
   * @param teamId - team to move
   * @param newParentId - new parent team ID (null for root)
   * @param actorUserId - user performing the action
   * @throws {CycleError} If move would create a cycle
   */
  async moveTeam(teamId: string, newParentId: string | null, actorUserId: string): Promise<Team> {
    const team = await this.team(this.db, teamId);
    const row = await this.permissionChange(team.organization_id, async (tx, outbox, touch) => {
      await this.lockOrg(tx, team.organization_id);
      const current = await this.team(tx, teamId);
      await this.authorize(tx, current, actorUserId, "team.move");
      if (newParentId) {
        const parent = await this.team(tx, newParentId);
        if (parent.organization_id !== current.organization_id)
          throw new NotFoundError(`team ${newParentId} not found`);
        if (await isInSubtree(tx, teamId, newParentId, this.config.maxDepth))
          throw new CycleError(`moving ${teamId} under ${newParentId} would create a cycle`);
        await this.authorize(tx, parent, actorUserId, "team.create_subteam");
        const depth =
          (await depthOf(tx, newParentId, this.config.maxDepth)) +
          1 +
          (await subtreeHeight(tx, teamId, this.config.maxDepth));
        if (depth > this.config.maxDepth)
          throw new ValidationError("hierarchy too deep", [
            { path: "newParentId", message: `the move would nest ${depth} levels; at most ${this.config.maxDepth}` },
          ]);
      }
      const { rows } = await tx.query<TeamRow>(
        "update teams set parent_team_id = $2, updated_at = now() where id = $1 returning *",
        [teamId, newParentId],
      );
      // Who reaches the moved team and everything below it changed; nothing else did.
      const below = await descendantRows(tx, teamId, this.config.maxDepth);
      touch(dep.team(teamId), ...below.map((t) => dep.team(t.id)), dep.teams);
      await outbox.publish(
        this.event("team.moved", current.organization_id, `teams/${teamId}`, {
          teamId,
          fromParentId: current.parent_team_id,
          toParentId: newParentId,
          movedBy: actorUserId,
        }),
      );
      return rows[0]!;
    });
    return toTeam(row);
  }

  /**
   * Check if a user has a specific permission within a team context (with inheritance).
   * @param organizationId - when given (the API), the team must be in it and visible to the viewer
   * (else {NotFoundError}); a check the cache can prove is answered without Postgres
   * @returns allowed, and the reason: which membership granted it or why it is denied
   */
  async checkPermission(
    teamId: string,
    userId: string,
    permission: string,
    organizationId?: string,
  ): Promise<PermissionDecision> {
    if (!isPermission(permission))
      throw new ValidationError("unknown permission", [
        { path: "permission", message: "see GET /openapi.json for the permission list" },
      ]);
    const seen = organizationId === undefined ? undefined : await this.visibleGrants(organizationId, teamId, userId);
    if (this.isOrgAdmin(userId)) return { allowed: true, reason: "organization admin" };
    return decide(permission, seen ?? (await this.redacted(await this.grants(teamId, userId), userId)), false);
  }

  /**
   * Get effective permissions for a user in a team (including inherited), with their sources.
   * @param teamId - team identifier
   * @param userId - user identifier
   * @param organizationId - as for {@link checkPermission}: the API's guard, cache first
   */
  async getEffectivePermissions(
    teamId: string,
    userId: string,
    organizationId?: string,
  ): Promise<EffectivePermissions> {
    const admin = this.isOrgAdmin(userId);
    const seen = organizationId === undefined ? undefined : await this.visibleGrants(organizationId, teamId, userId);
    const grants = admin ? [] : (seen ?? (await this.redacted(await this.grants(teamId, userId), userId)));
    const { permissions, sources } = effectivePermissions(grants, admin);
    return { teamId, userId, role: effectiveGrant(grants)?.role ?? null, permissions, sources };
  }

  /** The organization's team policy: who may create teams at the root (`members`, GitHub's default, or `admins`). */
  async getTeamPolicy(organizationId: string): Promise<TeamPolicy> {
    return { organizationId, rootTeamCreation: await rootTeamCreation(this.db, organizationId) };
  }

  /**
   * Sets who may create root teams. @throws {ForbiddenError} unless the caller is an organization admin
   * @param policy - `rootTeamCreation`: `members` or `admins`
   */
  async updateTeamPolicy(
    organizationId: string,
    policy: { rootTeamCreation: "members" | "admins" },
  ): Promise<TeamPolicy> {
    if (this.viewer && !this.viewer.orgAdmin)
      throw new ForbiddenError("only organization admins change the team policy");
    const p = parseInput(teamPolicySchema.pick({ rootTeamCreation: true }), policy, "team policy");
    await this.db.query(
      `insert into organizations (id, root_team_creation) values ($1, $2)
       on conflict (id) do update set root_team_creation = excluded.root_team_creation, updated_at = now()`,
      [organizationId, p.rootTeamCreation],
    );
    return { organizationId, rootTeamCreation: p.rootTeamCreation };
  }
}

/** Who may create root teams in an organization (`members` when it has no row yet). */
async function rootTeamCreation(q: Queryable, org: string): Promise<"members" | "admins"> {
  const { rows } = await q.query<{ p: "members" | "admins" }>(
    "select root_team_creation as p from organizations where id = $1",
    [org],
  );
  return rows[0]?.p ?? "members";
}
