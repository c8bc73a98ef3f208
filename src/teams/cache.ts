import type { Redis, RedisKeys } from "../platform/redis.ts";
import { ENTRY_TTL_SECONDS, storable } from "./authz/revision.ts";
import type { TeamRow } from "./hierarchy.ts";
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
   * day: teams never change organization), that organization's version, and the entry.
   */
  async lookup(teamId: string, userId: string): Promise<PermissionLookup> {
    const [org, version, value] = (await this.redis.eval(
      `local org = redis.call('GET', KEYS[1])
       if not org then return {false, false, false} end
       local v = redis.call('GET', ARGV[1] .. org .. ':version') or '0'
       local e = redis.call('GET', ARGV[1] .. org .. ':w' .. v .. ':' .. ARGV[2])
       if e then
         local ok, d = pcall(cjson.decode, e)
         if not ok then return {org, v, false} end
         for _, k in ipairs(d.k) do
           local s = redis.call('GET', ARGV[3] .. org .. ':s:' .. k)
           if s and tonumber(s) > d.r then return {org, v, false} end
         end
       end
       return {org, v, e}`,
      [this.orgKey(teamId)],
      [this.keys.key("perm", ""), `${teamId}:${userId}`, this.keys.key("authz", "")],
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
