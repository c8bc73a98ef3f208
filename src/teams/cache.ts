import type { Queryable } from "../platform/db.ts";
import type { Redis, RedisKeys } from "../platform/redis.ts";
import { ENTRY_TTL_SECONDS, dep, storable } from "./authz/revision.ts";
import type { TeamRow } from "./hierarchy.ts";
import { grantsOnPathAt } from "./hierarchy.ts";
import type { Grant } from "./permissions.ts";

/** What a lookup finds: the team's organization, its version, and the entry if it is valid. */
export interface PermissionLookup {
  /** The team's organization (unknown until a miss cached it). */
  org?: string;
  /** The organization's version counter. */
  version?: string;
  /** The grants on the team's path, when the entry is valid. */
  grants?: Grant[];
  /** The team's own visibility, read with the grants (entries written before it lack it). */
  visibility?: TeamRow["visibility"];
}

/**
 * Cache of team permission checks: the grants on a team's path for one user. An entry is keyed by
 * the organization's version counter (`bump` flushes the whole organization at once: kept for
 * operators and benchmarks) and carries the authorization revision it was computed at and what it
 * read (the user's memberships, the team and the teams of its grants, the organization — see
 * `authz/revision.ts`). Writes raise those stamps after their commit, so an entry is served only
 * while nothing it read changed: a change to one team leaves every other team's entries warm.
 * One round trip per lookup: a Lua script reads the team's organization, its version, the entry
 * and its stamps. Entries also expire (TTL). An entry also carries the team's visibility: a change
 * to it raises the team's stamp, so a valid entry proves both — enough to answer a check while
 * Postgres is down (see `TeamManagementService`).
 */
export class PermissionCache {
  private readonly redis: Redis;
  private readonly keys: RedisKeys;

  /** Entries live `ENTRY_TTL_SECONDS` (`authz/revision.ts`, whose stamps outlive them). */
  constructor(redis: Redis, keys: RedisKeys) {
    this.redis = redis;
    this.keys = keys;
  }

  private versionKey(org: string) {
    return this.keys.key("perm", org, "version");
  }

  private entryKey(org: string, version: string, teamId: string, userId: string) {
    // `w`: entries carry their stamps (older `v` entries had none and are never read).
    return this.keys.key("perm", org, `w${version}`, teamId, userId);
  }

  /**
   * Stores grants computed while `version` was current, at authorization revision `stamp.r` from
   * the dependencies `stamp.k` (none: valid until the version moves), with the team's visibility
   * `stamp.t` read in the same snapshot, by a read that began at `stamp.readAt` — not at all if that
   * was too long ago for the stamps to cover it (`storable`).
   */
  async set(
    org: string,
    version: string,
    teamId: string,
    userId: string,
    grants: Grant[],
    stamp: { r: number; k: string[]; readAt: number; t?: TeamRow["visibility"] } = { r: 0, k: [], readAt: Date.now() },
  ): Promise<void> {
    if (!storable(stamp.readAt)) return;
    const entry = { r: stamp.r, k: stamp.k, v: grants, ...(stamp.t ? { t: stamp.t } : {}) };
    await this.redis.set(this.entryKey(org, version, teamId, userId), JSON.stringify(entry), {
      ex: ENTRY_TTL_SECONDS,
    });
  }

  /**
   * Everything a check needs in one round trip, by team: the team's organization (cached for a
   * day: teams never change organization), that organization's version, and the entry — only if
   * it was computed at revision `atLeast` or later (read-your-writes, as `StampCache.get`).
   */
  async lookup(teamId: string, userId: string, atLeast = 0): Promise<PermissionLookup> {
    const [org, version, value] = (await this.redis.eval(
      `local org = redis.call('GET', KEYS[1])
       if not org then return {false, false, false} end
       local v = redis.call('GET', ARGV[1] .. org .. ':version') or '0'
       local e = redis.call('GET', ARGV[1] .. org .. ':w' .. v .. ':' .. ARGV[2])
       if e then
         local ok, d = pcall(cjson.decode, e)
         if not ok then return {org, v, false} end
         if d.r < tonumber(ARGV[4]) then return {org, v, false} end
         for _, k in ipairs(d.k) do
           local s = redis.call('GET', ARGV[3] .. org .. ':s:' .. k)
           if s and tonumber(s) > d.r then return {org, v, false} end
         end
       end
       return {org, v, e}`,
      [this.orgKey(teamId)],
      [this.keys.key("perm", ""), `${teamId}:${userId}`, this.keys.key("authz", ""), String(atLeast)],
    )) as [string | null, string | null, string | null];
    if (!org) return {};
    if (!value) return { org, version: String(version) };
    const e = JSON.parse(value) as { v: Grant[]; t?: TeamRow["visibility"] };
    return { org, version: String(version), grants: e.v, ...(e.t ? { visibility: e.t } : {}) };
  }

  private orgKey(teamId: string) {
    return this.keys.key("teams", "org-of", teamId);
  }

  /** Remembers a team's organization. */
  async setOrg(teamId: string, org: string): Promise<void> {
    await this.redis.set(this.orgKey(teamId), org, { ex: 86_400 });
  }

  /** Invalidates every entry of the organization. */
  async bump(org: string): Promise<void> {
    await this.redis.incr(this.versionKey(org));
  }
}

/** What {@link CachedGrants} needs. */
export interface CachedGrantsOptions {
  db: Queryable;
  redis: Redis;
  keys: RedisKeys;
  maxDepth: number;
  /** Keeps cache fills alive after the response (ctx.waitUntil). */
  waitUntil: (p: Promise<unknown>) => void;
}

/**
 * A user's grants on a team's path, from {@link PermissionCache} when valid, else from Postgres
 * (and then cached) — the read of team permission checks, and of *reach*: a user reaches a team
 * (may see it though it is secret, and see it named in a reason) exactly when they hold a grant on
 * its path (`visibility.ts`). So the viewer's reach is their own cached check, under the same
 * stamps: a change to their memberships (`u:`), to the team's place in the tree or visibility
 * (`t:`, raised for a moved team and everything below it) or a deletion (`org`) makes it go cold
 * like every entry that read them. Not cached: Postgres answers (a 503 while it is down).
 */
export class CachedGrants {
  private readonly db: Queryable;
  private readonly maxDepth: number;
  private readonly waitUntil: (p: Promise<unknown>) => void;
  /** The cache itself. */
  readonly cache: PermissionCache;

  constructor(options: CachedGrantsOptions) {
    this.db = options.db;
    this.maxDepth = options.maxDepth;
    this.waitUntil = options.waitUntil;
    this.cache = new PermissionCache(options.redis, options.keys);
  }

  /** The cache's view of (team, user), at revision `atLeast` or later; Redis down is a miss (Postgres answers). */
  lookup(teamId: string, userId: string, atLeast = 0): Promise<PermissionLookup> {
    return this.cache.lookup(teamId, userId, atLeast).catch((): PermissionLookup => ({}));
  }

  /**
   * Grants on the path, from the cache when fresh (one Redis round trip on a hit; `found`: that
   * lookup, done already with the same `atLeast`).
   */
  async grants(teamId: string, userId: string, found?: PermissionLookup, atLeast = 0): Promise<Grant[]> {
    const hit = found ?? (await this.lookup(teamId, userId, atLeast));
    if (hit.grants) return hit.grants;
    const readAt = Date.now();
    const { grants, revision, visibility } = await grantsOnPathAt(this.db, teamId, userId, this.maxDepth);
    // Tagged with the revision of the snapshot and what it read: a change to any of those, even
    // one racing this read, raises a stamp past it; a change elsewhere leaves it valid.
    const k = [dep.org, dep.user(userId), dep.team(teamId), ...grants.map((g) => dep.team(g.teamId))];
    const stamp = { r: revision, k, readAt, ...(visibility ? { t: visibility } : {}) };
    if (hit.org && hit.version !== undefined)
      this.waitUntil(this.cache.set(hit.org, hit.version, teamId, userId, grants, stamp).catch(() => undefined));
    else if (!hit.org) this.waitUntil(this.teamOrg(teamId).catch(() => undefined));
    return grants;
  }

  /**
   * Which of `teamIds` the user reaches: their grants on each team's path, each from the cache
   * when valid and at revision `atLeast` or later, the others from Postgres (then cached).
   */
  async reached(userId: string, teamIds: readonly string[], atLeast = 0): Promise<Set<string>> {
    const ids = [...new Set(teamIds)];
    const held = await Promise.all(
      ids.map(async (id) => (await this.grants(id, userId, undefined, atLeast)).length > 0),
    );
    return new Set(ids.filter((_, i) => held[i]));
  }

  /** Caches the organization of a team (teams never change organization). */
  private async teamOrg(teamId: string): Promise<void> {
    const { rows } = await this.db.query<{ organization_id: string }>(
      "select organization_id from teams where id = $1",
      [teamId],
    );
    if (rows[0]) await this.cache.setOrg(teamId, rows[0].organization_id);
  }
}
