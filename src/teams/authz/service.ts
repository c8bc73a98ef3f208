import type { EventBus } from "../../events/bus.ts";
import { withTransaction } from "../../events/bus.ts";
import type { EventType } from "../../events/catalog.ts";
import { createEvent } from "../../events/cloudevent.ts";
import type { Config } from "../../platform/config.ts";
import type { Db, Queryable } from "../../platform/db.ts";
import { ConflictError, CycleError, ForbiddenError, NotFoundError, ValidationError } from "../../platform/errors.ts";
import type { Redis, RedisKeys } from "../../platform/redis.ts";
import { CachedGrants } from "../cache.ts";
import type { TeamRow } from "../hierarchy.ts";
import {
  isResourcePermission,
  permissionCatalog,
  permissionsToGrant,
  resourcePermissions,
  roles,
} from "../permissions.ts";
import { sightOf } from "../visibility.ts";
import type { Viewer } from "../team.ts";
import type { Decision, Hit, ResourceRef, ResourceType, RoleDefinition } from "./model.ts";
import {
  allowedParents,
  builtinPermissions,
  decide,
  effectiveRole,
  isBuiltinRole,
  rankHits,
  redactHits,
  roleProblem,
  secretTeams,
} from "./model.ts";
import type { Stamped } from "./revision.ts";
import { StampCache, bumpRevision, decodeRevision, dep, encodeRevision, revisionSql } from "./revision.ts";
import type { CheckRead, GrantRow, RawHit, RoleRow } from "./store.ts";
import {
  chainLength,
  containsOrIs,
  findResource,
  readAuthorizedResources,
  readAuthorizedUsers,
  readCheck,
  readEffectiveMembers,
  readRoles,
} from "./store.ts";

/** A grant as the API shows it. */
export interface GrantView {
  id: string;
  resource: ResourceRef;
  subject: { type: "team" | "user"; id: string };
  role: string;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}

/** The answer of a check. */
export interface CheckResult extends Decision {
  /** Revision token of the state the answer reflects (pass it as `atLeast` later). */
  revision: string;
  /** Whether it came from the cache. */
  cached: boolean;
}

/** Constructor options. */
export interface AuthzServiceOptions {
  db: Db;
  redis: Redis;
  keys: RedisKeys;
  config: Config["teams"];
  /** The caller (absent for internal jobs: they see everything). */
  viewer?: Viewer;
  /** Keeps background cache fills alive after the response (ctx.waitUntil). */
  waitUntil?: (p: Promise<unknown>) => void;
}

// Entries that would list more granted teams than this depend on any team tree change instead.
const TEAM_DEPS_CAP = 32;

const iso = (d: Date | string) => new Date(d).toISOString();

const toGrant = (g: GrantRow): GrantView => ({
  id: g.id,
  resource: { type: g.resource_type, id: g.resource_id },
  subject: { type: g.subject_type, id: g.subject_id },
  role: g.role,
  createdBy: g.created_by,
  createdAt: iso(g.created_at),
  updatedAt: iso(g.updated_at),
});

/**
 * Teams as the authorization layer of document sharing: custom roles, typed resources, grants,
 * checks with reasons, "who can" listings, member listings with inheritance, revision tokens.
 * Writes run in one transaction with their events in the outbox, increment the organization's
 * revision last (see `revision.ts`) and then raise the stamps of what they touched; every grant
 * goes through `permissionsToGrant`, the rule memberships and invitations use too; every read
 * hides secret teams from those who do not reach them (`visibility.ts`).
 */
export class AuthzService {
  private readonly db: Db;
  private readonly config: Config["teams"];
  private readonly viewer?: Viewer;
  private readonly stamps: StampCache;
  private readonly waitUntil: (p: Promise<unknown>) => void;
  private readonly reach: CachedGrants;

  /** @param options - db, redis, keys, team settings, the viewer */
  constructor(options: AuthzServiceOptions) {
    this.db = options.db;
    this.config = options.config;
    this.viewer = options.viewer;
    this.stamps = new StampCache(options.redis, options.keys);
    this.waitUntil = options.waitUntil ?? ((p) => void p.catch(() => undefined));
    this.reach = new CachedGrants({
      db: options.db,
      redis: options.redis,
      keys: options.keys,
      maxDepth: options.config.maxDepth,
      waitUntil: this.waitUntil,
    });
  }

  private get viewerIsAdmin() {
    return !this.viewer || this.viewer.orgAdmin;
  }

  private isOrgAdmin(userId: string) {
    return this.viewer?.orgAdmin === true && this.viewer.userId === userId;
  }

  private event(type: EventType, org: string, subject: string, data: Record<string, unknown>) {
    return createEvent({ type, organizationId: org, source: "/cloudmatrix-edge/teams/authz", subject, data });
  }

  /** Runs a write; returns its result and revision token after the stamps of `deps` were raised. */
  private async write<T>(
    org: string,
    fn: (tx: Queryable, outbox: EventBus, touch: (...deps: string[]) => void) => Promise<T>,
  ): Promise<T & { revision: string }> {
    const deps: string[] = [];
    const { result, rev } = await withTransaction(this.db, async (tx, outbox) => {
      const result = await fn(tx, outbox, (...d) => deps.push(...d));
      return { result, rev: await bumpRevision(tx, org) };
    });
    await this.stamps.announce(org, deps, rev);
    return { ...result, revision: encodeRevision(org, rev) };
  }

  // ---------------------------------------------------------------- catalog and roles

  /** The permission catalog: every permission, what it allows and where it applies; the built-in roles. */
  catalog() {
    return {
      permissions: Object.entries(permissionCatalog).map(([name, description]) => ({
        name,
        description,
        appliesTo: isResourcePermission(name) ? ("resources" as const) : ("teams" as const),
      })),
      resourceTypes: Object.entries(allowedParents).map(([type, parents]) => ({ type, parents: [...parents] })),
      builtinRoles: roles.map((r) => ({ name: r, permissions: builtinPermissions(r) })),
    };
  }

  /** Every role of the organization: built-ins (with extensions) first, then custom ones by name. */
  async listRoles(org: string): Promise<RoleDefinition[]> {
    const stored = new Map((await readRoles(this.db, org)).map((r) => [r.name, r]));
    const out: RoleDefinition[] = roles
      .slice()
      .reverse()
      .map((r) => effectiveRole(r, stored.get(r))!);
    for (const [name, row] of stored) if (!isBuiltinRole(name)) out.push(effectiveRole(name, row)!);
    return out;
  }

  /**
   * Creates or replaces a role (organization admins only). A built-in may be extended, never
   * weakened; the change applies to every check at once (the role's stamp is raised).
   * @throws {ValidationError} bad name, unknown or team permissions, a weakened built-in
   */
  async putRole(
    org: string,
    name: string,
    body: { description?: string; permissions: string[] },
    actor: string,
  ): Promise<{ role: RoleDefinition; created: boolean; revision: string }> {
    if (!this.viewerIsAdmin) throw new ForbiddenError("only organization admins define roles");
    const problem = roleProblem(name, body.permissions);
    if (problem) throw new ValidationError("invalid role", [problem]);
    return this.write(org, async (tx, outbox, touch) => {
      const before = await tx.query<RoleRow>(
        "select * from authz_roles where organization_id = $1 and name = $2 for update",
        [org, name],
      );
      const { rows } = await tx.query<RoleRow>(
        `insert into authz_roles (organization_id, name, description, permissions, created_by) values ($1, $2, $3, $4, $5)
         on conflict (organization_id, name) do update set description = excluded.description,
           permissions = excluded.permissions, updated_at = now()
         returning *`,
        [org, name, body.description ?? null, body.permissions, actor],
      );
      const role = effectiveRole(name, rows[0]!)!;
      const created = !before.rows[0];
      await outbox.publish(
        this.event(created ? "authz.role.created" : "authz.role.updated", org, `roles/${name}`, {
          role: name,
          permissions: role.permissions,
          ...(before.rows[0] ? { previousPermissions: effectiveRole(name, before.rows[0])!.permissions } : {}),
          builtin: role.builtin,
          changedBy: actor,
        }),
      );
      touch(dep.role(name));
      return { role, created };
    });
  }

  /**
   * Deletes a custom role, or a built-in's extension (organization admins only).
   * @throws {ConflictError} while grants use it; {NotFoundError} when there is none
   */
  async deleteRole(org: string, name: string, actor: string): Promise<{ deleted: boolean; revision: string }> {
    if (!this.viewerIsAdmin) throw new ForbiddenError("only organization admins define roles");
    return this.write(org, async (tx, outbox, touch) => {
      const { rows } = await tx.query<RoleRow>(
        "delete from authz_roles where organization_id = $1 and name = $2 returning *",
        [org, name],
      );
      if (!rows[0]) throw new NotFoundError(`role ${name} not found`);
      if (!isBuiltinRole(name)) {
        const used = await tx.query<{ n: number }>(
          "select count(*)::int as n from authz_grants where organization_id = $1 and role = $2",
          [org, name],
        );
        if ((used.rows[0]?.n ?? 0) > 0)
          throw new ConflictError(`role ${name} is used by ${used.rows[0]!.n} grants: revoke or change them first`, {
            details: { grants: used.rows[0]!.n },
          });
      }
      await outbox.publish(this.event("authz.role.deleted", org, `roles/${name}`, { role: name, deletedBy: actor }));
      touch(dep.role(name));
      return { deleted: true };
    });
  }

  private async roleOf(q: Queryable, org: string, name: string): Promise<RoleDefinition> {
    const { rows } = await q.query<RoleRow>("select * from authz_roles where organization_id = $1 and name = $2", [
      org,
      name,
    ]);
    const role = effectiveRole(name, rows[0]);
    if (!role)
      throw new ValidationError("unknown role", [
        { path: "role", message: `no role ${name} in this organization (see GET …/authz/roles)` },
      ]);
    return role;
  }

  // ---------------------------------------------------------------- the one rule, applied to resources

  /** The permissions `userId` holds on `r` (read now, uncached: writes decide on their own truth). */
  private async heldOn(q: Queryable, org: string, r: ResourceRef, userId: string): Promise<Set<string>> {
    const read = await readCheck(q, org, r, userId, this.config.maxDepth, TEAM_DEPS_CAP);
    const held = new Set<string>();
    for (const h of resolveHits(read)) for (const p of h.permissions) held.add(p);
    return held;
  }

  /**
   * @throws {ForbiddenError} unless the actor holds every permission in `needed` on `r`
   * (organization admins hold all).
   */
  private async requireOn(q: Queryable, org: string, r: ResourceRef, actor: string, needed: readonly string[]) {
    if (this.isOrgAdmin(actor) || !this.viewer) return;
    const held = await this.heldOn(q, org, r, actor);
    const missing = needed.filter((p) => !held.has(p));
    if (missing.length > 0)
      throw new ForbiddenError(`you lack ${missing.join(", ")} on ${r.type} ${r.id}`, { details: { missing } });
  }

  /**
   * The one rule of who may grant what (`permissionsToGrant`), on a resource: to give or take
   * away roles — here, each of `roleDefs` — the actor needs `documents.share` and everything the
   * role holds there.
   */
  private async assertMayGrant(q: Queryable, org: string, r: ResourceRef, actor: string, roleDefs: RoleDefinition[]) {
    const permissions = [...new Set(roleDefs.flatMap((d) => d.permissions))];
    await this.requireOn(q, org, r, actor, permissionsToGrant({ on: "resource", permissions }));
  }

  // ---------------------------------------------------------------- resources

  /**
   * Registers a resource or moves it under another parent. Projects are roots (organization
   * admins create them); a folder or document needs `documents.write` on its new parent; moving
   * an existing one also needs `documents.share` on it (who may see it changes).
   * @throws {ValidationError} a parent of the wrong type; {CycleError} a folder under itself
   */
  async putResource(
    org: string,
    r: ResourceRef,
    parent: ResourceRef | null,
    actor: string,
  ): Promise<{ resource: ResourceRef & { parent: ResourceRef | null }; created: boolean; revision: string }> {
    const allowed = allowedParents[r.type];
    if (parent && !allowed.includes(parent.type))
      throw new ValidationError("invalid parent", [
        { path: "parent.type", message: `a ${r.type} lives in ${allowed.join(" or ") || "nothing"}` },
      ]);
    if (!parent && r.type !== "project")
      throw new ValidationError("invalid parent", [{ path: "parent", message: `a ${r.type} needs a parent` }]);
    return this.write(org, async (tx, outbox, touch) => {
      await tx.query("select pg_advisory_xact_lock(hashtext($1))", [`authz-resources:${org}`]);
      const existing = await findResource(tx, org, r);
      if (!parent) {
        if (!this.viewerIsAdmin) throw new ForbiddenError("only organization admins create projects");
      } else {
        if (!(await findResource(tx, org, parent))) throw new NotFoundError(`${parent.type} ${parent.id} not found`);
        await this.requireOn(tx, org, parent, actor, ["documents.write"]);
        if (existing) {
          await this.requireOn(tx, org, r, actor, ["documents.share"]);
          if (await containsOrIs(tx, org, r, parent, this.config.maxDepth))
            throw new CycleError(`moving ${r.type} ${r.id} under ${parent.type} ${parent.id} would create a cycle`);
        }
        if ((await chainLength(tx, org, parent, this.config.maxDepth)) + 1 > this.config.maxDepth)
          throw new ValidationError("resource tree too deep", [
            { path: "parent", message: `resources nest at most ${this.config.maxDepth} levels` },
          ]);
      }
      if (existing) {
        const same = existing.parent_type === (parent?.type ?? null) && existing.parent_id === (parent?.id ?? null);
        if (!same) {
          await tx.query(
            "update authz_resources set parent_type = $4, parent_id = $5 where organization_id = $1 and type = $2 and id = $3",
            [org, r.type, r.id, parent?.type ?? null, parent?.id ?? null],
          );
          await outbox.publish(
            this.event("authz.resource.moved", org, `${r.type}s/${r.id}`, {
              resource: r,
              fromParent: existing.parent_type ? { type: existing.parent_type, id: existing.parent_id } : null,
              toParent: parent,
              movedBy: actor,
            }),
          );
          // Everything below it reads this resource in its chain: one stamp covers them all.
          touch(dep.resource(r.type, r.id));
        }
      } else {
        await tx.query(
          "insert into authz_resources (organization_id, type, id, parent_type, parent_id, created_by) values ($1, $2, $3, $4, $5, $6)",
          [org, r.type, r.id, parent?.type ?? null, parent?.id ?? null, actor],
        );
        await outbox.publish(
          this.event("authz.resource.registered", org, `${r.type}s/${r.id}`, { resource: r, parent, createdBy: actor }),
        );
        touch(dep.resource(r.type, r.id));
      }
      return { resource: { ...r, parent }, created: !existing };
    });
  }

  /**
   * Removes a resource and its grants (`documents.delete` on it).
   * @throws {ConflictError} while it contains other resources
   */
  async deleteResource(org: string, r: ResourceRef, actor: string): Promise<{ deleted: boolean; revision: string }> {
    return this.write(org, async (tx, outbox, touch) => {
      await tx.query("select pg_advisory_xact_lock(hashtext($1))", [`authz-resources:${org}`]);
      if (!(await findResource(tx, org, r))) throw new NotFoundError(`${r.type} ${r.id} not found`);
      await this.requireOn(tx, org, r, actor, ["documents.delete"]);
      const kids = await tx.query<{ n: number }>(
        "select count(*)::int as n from authz_resources where organization_id = $1 and parent_type = $2 and parent_id = $3",
        [org, r.type, r.id],
      );
      if ((kids.rows[0]?.n ?? 0) > 0)
        throw new ConflictError(`${r.type} ${r.id} still contains ${kids.rows[0]!.n} resources`);
      await tx.query("delete from authz_resources where organization_id = $1 and type = $2 and id = $3", [
        org,
        r.type,
        r.id,
      ]);
      await outbox.publish(
        this.event("authz.resource.deleted", org, `${r.type}s/${r.id}`, { resource: r, deletedBy: actor }),
      );
      touch(dep.resource(r.type, r.id));
      return { deleted: true };
    });
  }

  private async mustFind(q: Queryable, org: string, r: ResourceRef) {
    const row = await findResource(q, org, r);
    if (!row) throw new NotFoundError(`${r.type} ${r.id} not found`);
    return row;
  }

  /** A team of the organization the viewer may know exists; else 404 (secret teams are not revealed). */
  private async visibleTeam(q: Queryable, org: string, teamId: string): Promise<TeamRow> {
    const { rows } = await q.query<TeamRow>("select * from teams where id = $1 and organization_id = $2", [
      teamId,
      org,
    ]);
    const team = rows[0];
    if (!team) throw new NotFoundError(`team ${teamId} not found`);
    const seen = await sightOf(q, this.viewer, [team], this.config.maxDepth);
    if (!seen.get(team.id)?.visible) throw new NotFoundError(`team ${teamId} not found`);
    return team;
  }

  // ---------------------------------------------------------------- grants

  /**
   * Grants `role` on a resource to a team or a user (replacing the subject's previous role there).
   * The rule of who may grant what applies to the new role and, on a change, the old one too.
   */
  async grant(
    org: string,
    r: ResourceRef,
    subject: { type: "team" | "user"; id: string },
    roleName: string,
    actor: string,
  ): Promise<{ grant: GrantView; created: boolean; revision: string }> {
    return this.write(org, async (tx, outbox, touch) => {
      await this.mustFind(tx, org, r);
      if (subject.type === "team") await this.visibleTeam(tx, org, subject.id);
      const role = await this.roleOf(tx, org, roleName);
      const { rows: prev } = await tx.query<GrantRow>(
        `select * from authz_grants where organization_id = $1 and resource_type = $2 and resource_id = $3
           and subject_type = $4 and subject_id = $5 for update`,
        [org, r.type, r.id, subject.type, subject.id],
      );
      const before = prev[0];
      const previous =
        before && before.role !== roleName ? await this.roleOf(tx, org, before.role).catch(() => undefined) : undefined;
      await this.assertMayGrant(tx, org, r, actor, previous ? [role, previous] : [role]);
      const { rows } = await tx.query<GrantRow>(
        `insert into authz_grants (id, organization_id, resource_type, resource_id, subject_type, subject_id, role, created_by)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (organization_id, resource_type, resource_id, subject_type, subject_id)
         do update set role = excluded.role, updated_at = now() returning *`,
        [`grt_${crypto.randomUUID().replace(/-/g, "")}`, org, r.type, r.id, subject.type, subject.id, roleName, actor],
      );
      const g = rows[0]!;
      if (!before || before.role !== roleName)
        await outbox.publish(
          this.event(before ? "authz.grant.role_changed" : "authz.grant.created", org, `${r.type}s/${r.id}`, {
            grantId: g.id,
            resource: r,
            subject,
            role: roleName,
            ...(before ? { previousRole: before.role } : {}),
            grantedBy: actor,
          }),
        );
      touch(dep.resource(r.type, r.id));
      return { grant: toGrant(g), created: !before };
    });
  }

  /** Revokes a subject's grant on a resource (the rule applies to the role taken away). */
  async revoke(
    org: string,
    r: ResourceRef,
    subject: { type: "team" | "user"; id: string },
    actor: string,
  ): Promise<{ revoked: boolean; revision: string }> {
    return this.write(org, async (tx, outbox, touch) => {
      await this.mustFind(tx, org, r);
      const { rows } = await tx.query<GrantRow>(
        `select * from authz_grants where organization_id = $1 and resource_type = $2 and resource_id = $3
           and subject_type = $4 and subject_id = $5 for update`,
        [org, r.type, r.id, subject.type, subject.id],
      );
      const g = rows[0];
      if (!g) throw new NotFoundError(`no grant to ${subject.type} ${subject.id} on ${r.type} ${r.id}`);
      if (subject.type === "team") await this.visibleTeam(tx, org, subject.id);
      const role = await this.roleOf(tx, org, g.role).catch(() => undefined);
      await this.assertMayGrant(tx, org, r, actor, role ? [role] : []);
      await tx.query("delete from authz_grants where id = $1", [g.id]);
      await outbox.publish(
        this.event("authz.grant.revoked", org, `${r.type}s/${r.id}`, {
          grantId: g.id,
          resource: r,
          subject,
          previousRole: g.role,
          revokedBy: actor,
        }),
      );
      touch(dep.resource(r.type, r.id));
      return { revoked: true };
    });
  }

  /** Grants on one resource (not its containers), by id; grants to teams the viewer cannot see are left out. */
  async listGrants(
    org: string,
    r: ResourceRef,
    page: { after?: string; limit: number },
  ): Promise<{ grants: GrantView[]; nextCursor: string | null }> {
    await this.mustFind(this.db, org, r);
    if (this.viewer) await this.requireOn(this.db, org, r, this.viewer.userId, ["documents.read"]);
    const { rows } = await this.db.query<GrantRow & { visibility: TeamRow["visibility"] | null }>(
      `select g.*, t.visibility from authz_grants g left join teams t on g.subject_type = 'team' and t.id = g.subject_id
       where g.organization_id = $1 and g.resource_type = $2 and g.resource_id = $3 and g.id > $4 order by g.id limit $5`,
      [org, r.type, r.id, page.after ?? "", page.limit + 1],
    );
    const more = rows.length > page.limit;
    const pageRows = rows.slice(0, page.limit);
    const hidden = await this.hiddenTeams(pageRows.filter((g) => g.visibility === "secret").map((g) => g.subject_id));
    return {
      grants: pageRows.filter((g) => !hidden.has(g.subject_id) || g.subject_type !== "team").map(toGrant),
      nextCursor: more ? pageRows[pageRows.length - 1]!.id : null,
    };
  }

  /**
   * Which of these secret teams the viewer does not reach (admins and jobs reach everything). The
   * viewer's reach is their own cached team checks (`CachedGrants`, under the same stamps), each
   * at revision `atLeast` or later; what is not cached, Postgres answers.
   */
  private async hiddenTeams(secret: readonly string[], checkedUser?: string, atLeast = 0): Promise<Set<string>> {
    if (secret.length === 0 || !this.viewer || this.viewer.orgAdmin) return new Set();
    // A user is always shown the teams through which they themselves hold something.
    if (checkedUser !== undefined && checkedUser === this.viewer.userId) return new Set();
    const reached = await this.reach.reached(this.viewer.userId, secret, atLeast);
    return new Set(secret.filter((id) => !reached.has(id)));
  }

  // ---------------------------------------------------------------- checks

  /**
   * Does `userId` hold `permission` on the resource? With the reason: which grant, on which
   * resource (the resource or a container), to which team, through which ancestor's membership.
   * `atLeast` (a revision token) makes sure the answer reflects at least that write.
   * @throws {ValidationError} unknown or team permission, bad token; {NotFoundError} no such resource
   */
  async check(
    org: string,
    userId: string,
    permission: string,
    r: ResourceRef,
    atLeastToken?: string,
  ): Promise<CheckResult> {
    if (!isResourcePermission(permission))
      throw new ValidationError("unknown permission", [
        { path: "permission", message: `one of ${resourcePermissions.join(", ")} (GET …/authz/permissions)` },
      ]);
    const atLeast = decodeRevision(org, atLeastToken);
    if (this.isOrgAdmin(userId)) {
      const { rows } = await this.db.query<{ found: boolean; rev: string }>(
        `select exists (select 1 from authz_resources where organization_id = $1 and type = $2 and id = $3) as found,
           ${revisionSql("$1")} as rev`,
        [org, r.type, r.id],
      );
      if (!rows[0]?.found) throw new NotFoundError(`${r.type} ${r.id} not found`);
      assertFresh(Number(rows[0].rev), atLeast);
      return {
        allowed: true,
        reason: "organization admin",
        revision: encodeRevision(org, Number(rows[0].rev)),
        cached: false,
      };
    }
    const { entry, cached } = await this.checkEntry(org, userId, r, atLeast);
    const hits = resolveHits(entry.v);
    const hidden = await this.hiddenTeams(secretTeams(hits), userId, atLeast);
    const d = decide(permission, r, hidden.size ? redactHits(hits, hidden) : hits);
    return { ...d, revision: encodeRevision(org, entry.r), cached };
  }

  /** The check's read for (user, resource): from the cache when valid and new enough, else from Postgres. */
  private async checkEntry(
    org: string,
    userId: string,
    r: ResourceRef,
    atLeast: number,
  ): Promise<{ entry: Stamped<CheckRead>; cached: boolean }> {
    const key = this.stamps.entryKey(org, "chk", userId, r.type, r.id);
    const hit = await this.stamps.get<CheckRead>(org, key, atLeast).catch(() => undefined);
    if (hit) return { entry: hit, cached: true };
    const readAt = Date.now();
    const read = await readCheck(this.db, org, r, userId, this.config.maxDepth, TEAM_DEPS_CAP);
    if (read.chain.length === 0) throw new NotFoundError(`${r.type} ${r.id} not found`);
    assertFresh(read.revision, atLeast);
    const entry: Stamped<CheckRead> = { r: read.revision, k: checkDeps(userId, read), v: read };
    this.waitUntil(this.stamps.set(key, entry, readAt).catch(() => undefined));
    return { entry, cached: false };
  }

  /**
   * Who holds `permission` on the resource (through a grant on it or a container, to them or to a
   * team they reach), by user id, with every source. The viewer needs `documents.read` there.
   */
  async listUsers(
    org: string,
    r: ResourceRef,
    permission: string,
    page: { after?: string; limit: number; atLeast?: string },
  ): Promise<{ users: { userId: string; sources: Hit[] }[]; nextCursor: string | null; revision: string }> {
    if (!isResourcePermission(permission))
      throw new ValidationError("unknown permission", [{ path: "permission", message: "a resource permission" }]);
    const atLeast = decodeRevision(org, page.atLeast);
    if (this.viewer && !this.viewer.orgAdmin) {
      const own = await this.check(org, this.viewer.userId, "documents.read", r, page.atLeast);
      if (!own.allowed) throw new ForbiddenError(`documents.read denied on ${r.type} ${r.id}: ${own.reason}`);
    }
    const builtins = roles.filter((b) => builtinPermissions(b).includes(permission));
    const read = await readAuthorizedUsers(
      this.db,
      org,
      r,
      permission,
      builtins,
      this.config.maxDepth,
      page.after ?? "",
      page.limit + 1,
    );
    if (!read.found) throw new NotFoundError(`${r.type} ${r.id} not found`);
    assertFresh(read.revision, atLeast);
    const storedRoles = await this.rolesFor(
      org,
      read.users.flatMap((u) => u.sources.map((s) => s.role)),
    );
    const more = read.users.length > page.limit;
    const users = read.users.slice(0, page.limit);
    const resolved = users.map((u) => ({
      userId: u.userId,
      sources: rankHits(resolveWith(u.sources, storedRoles)).filter((h) => h.permissions.includes(permission)),
    }));
    const hidden = await this.hiddenTeams(secretTeams(resolved.flatMap((u) => u.sources)), undefined, atLeast);
    return {
      users: resolved.map((u) => ({ ...u, sources: hidden.size ? redactHits(u.sources, hidden) : u.sources })),
      nextCursor: more ? users[users.length - 1]!.userId : null,
      revision: encodeRevision(org, read.revision),
    };
  }

  /** Stored definitions of these role names (built-in extensions and custom roles). */
  private async rolesFor(org: string, names: readonly string[]) {
    const unique = [...new Set(names)];
    if (unique.length === 0) return [];
    const { rows } = await this.db.query<RoleRow>(
      "select * from authz_roles where organization_id = $1 and name = any($2::text[])",
      [org, unique],
    );
    return rows;
  }

  /**
   * Resources of `type` on which `userId` holds `permission`, by id, with the grants that give it.
   * Only the user themselves and organization admins may ask.
   */
  async listResources(
    org: string,
    userId: string,
    type: ResourceType,
    permission: string,
    page: { after?: string; limit: number; atLeast?: string },
  ): Promise<{
    resources: { type: ResourceType; id: string; sources: Hit[] }[];
    nextCursor: string | null;
    revision: string;
  }> {
    if (!isResourcePermission(permission))
      throw new ValidationError("unknown permission", [{ path: "permission", message: "a resource permission" }]);
    const atLeast = decodeRevision(org, page.atLeast);
    if (this.viewer && !this.viewer.orgAdmin && this.viewer.userId !== userId)
      throw new ForbiddenError("only the user and organization admins list a user's resources");
    const builtins = roles.filter((b) => builtinPermissions(b).includes(permission));
    const read = await readAuthorizedResources(
      this.db,
      org,
      userId,
      type,
      permission,
      builtins,
      this.config.maxDepth,
      page.after ?? "",
      page.limit + 1,
    );
    assertFresh(read.revision, atLeast);
    const storedRoles = await this.rolesFor(
      org,
      read.resources.flatMap((x) => x.sources.map((s) => s.role)),
    );
    const more = read.resources.length > page.limit;
    const list = read.resources.slice(0, page.limit);
    return {
      resources: list.map((x) => ({
        type,
        id: x.id,
        sources: rankHits(resolveWith(x.sources, storedRoles)).filter((h) => h.permissions.includes(permission)),
      })),
      nextCursor: more ? list[list.length - 1]!.id : null,
      revision: encodeRevision(org, read.revision),
    };
  }

  // ---------------------------------------------------------------- members with inheritance

  /**
   * Members of a team including inherited ones (members of its ancestors, who hold their role on
   * it), by user id: direct or inherited, the effective role, each source. Search `q` (name,
   * e-mail, id), filter by effective `role` and by `source`. Secret ancestors the viewer does not
   * reach appear as "a team you cannot see".
   * @throws {NotFoundError} a team of another organization or one the viewer may not see;
   *   {ForbiddenError} members the viewer may not see (private teams they do not reach)
   */
  async listMembers(
    org: string,
    teamId: string,
    opts: {
      after?: string;
      limit: number;
      q?: string;
      role?: string;
      source: "all" | "direct" | "inherited";
      atLeast?: string;
    },
  ) {
    const atLeast = decodeRevision(org, opts.atLeast);
    const team = await this.visibleTeam(this.db, org, teamId);
    const seen = await sightOf(this.db, this.viewer, [team], this.config.maxDepth);
    if (!seen.get(team.id)?.membersVisible) throw new ForbiddenError(`the members of team ${teamId} are private`);
    const read = await readEffectiveMembers(this.db, teamId, this.config.maxDepth, {
      after: opts.after ?? "",
      limit: opts.limit + 1,
      q: opts.q,
      role: opts.role,
      source: opts.source,
    });
    assertFresh(read.revision, atLeast);
    const more = read.members.length > opts.limit;
    const rows = read.members.slice(0, opts.limit);
    const hidden = await this.hiddenTeams(
      [...new Set(rows.flatMap((m) => m.sources.filter((s) => s.visibility === "secret").map((s) => s.teamId)))],
      undefined,
      atLeast,
    );
    return {
      members: rows.map((m) => ({
        userId: m.user_id,
        role: m.role,
        direct: m.direct,
        ...(m.name || m.email
          ? { user: { id: m.user_id, ...(m.name ? { name: m.name } : {}), ...(m.email ? { email: m.email } : {}) } }
          : {}),
        sources: m.sources.map((s) =>
          hidden.has(s.teamId)
            ? { teamId: "", teamName: "", role: s.role, distance: s.distance, hidden: true }
            : { teamId: s.teamId, teamName: s.teamName, role: s.role, distance: s.distance },
        ),
      })),
      nextCursor: more ? rows[rows.length - 1]!.user_id : null,
      revision: encodeRevision(org, read.revision),
    };
  }

  /** Records a user's name and e-mail for member search (the users service pushes them; internal scope). */
  async putDirectoryUser(userId: string, info: { name?: string | null; email?: string | null }) {
    await this.db.query(
      `insert into user_directory (user_id, name, email) values ($1, $2, $3)
       on conflict (user_id) do update set name = excluded.name, email = excluded.email, updated_at = now()`,
      [userId, info.name ?? null, info.email?.toLowerCase() ?? null],
    );
    return { userId, name: info.name ?? null, email: info.email?.toLowerCase() ?? null };
  }
}

/**
 * What an entry for (user, resource) depends on: the organization, the user's memberships, every
 * resource of the chain (grants and parents), the granted teams (their place in the tree) — or any
 * tree change when there are too many to list — the teams memberships came through (names and
 * visibility in reasons), and the roles of the hits.
 */
export function checkDeps(userId: string, read: CheckRead): string[] {
  const deps = new Set<string>([dep.org, dep.user(userId)]);
  for (const c of read.chain) deps.add(dep.resource(c.type, c.id));
  if (read.teams.length > TEAM_DEPS_CAP) deps.add(dep.teams);
  else for (const t of read.teams) deps.add(dep.team(t));
  for (const h of read.hits) {
    if (h.via) deps.add(dep.team(h.via.id));
    deps.add(dep.role(h.role));
  }
  return [...deps];
}

/** @throws {ValidationError} when the read is older than the token asked for (a token from the future) */
function assertFresh(revision: number, atLeast: number): void {
  if (revision < atLeast)
    throw new ValidationError("revision token ahead of this organization's state", [
      { path: "atLeast", message: `asked for revision ${atLeast}, the organization is at ${revision}` },
    ]);
}

/** Hits with their roles' permissions (a role that no longer exists holds nothing). */
export function resolveHits(read: Pick<CheckRead, "hits" | "roles">): Hit[] {
  return resolveWith(read.hits, read.roles);
}

function resolveWith(hits: readonly RawHit[], stored: readonly { name: string; permissions: string[] }[]): Hit[] {
  const byName = new Map(stored.map((r) => [r.name, r]));
  return hits.map((h) => ({ ...h, permissions: effectiveRole(h.role, byName.get(h.role))?.permissions ?? [] }));
}
