import type { Redis, RedisKeys } from "../platform/redis.ts";
import type { Grant } from "./permissions.ts";

/**
 * Permission cache with O(1) invalidation: every entry's key contains the organization's version
 * counter, and any membership, role or hierarchy change bumps the counter — before its commit and
 * again after it — so once a write has returned no check can read an entry computed before it.
 * One round trip per lookup: a Lua script reads the team's organization, its version and the entry. Entries also
 * expire (TTL), which bounds staleness if Redis could not be bumped.
 */
export class PermissionCache {
  private readonly redis: Redis;
  private readonly keys: RedisKeys;
  private readonly ttlSeconds: number;

  /** @param ttlSeconds - lifetime of an entry (default 300 s) */
  constructor(redis: Redis, keys: RedisKeys, ttlSeconds = 300) {
    this.redis = redis;
    this.keys = keys;
    this.ttlSeconds = ttlSeconds;
  }

  private versionKey(org: string) {
    return this.keys.key("perm", org, "version");
  }

  private entryKey(org: string, version: string, teamId: string, userId: string) {
    return this.keys.key("perm", org, `v${version}`, teamId, userId);
  }

  /** Stores grants computed while `version` was current. */
  async set(org: string, version: string, teamId: string, userId: string, grants: Grant[]): Promise<void> {
    await this.redis.set(this.entryKey(org, version, teamId, userId), JSON.stringify(grants), { ex: this.ttlSeconds });
  }

  /**
   * Everything a check needs in one round trip, by team: the team's organization (cached for a
   * day: teams never change organization), that organization's version, and the entry.
   */
  async lookup(teamId: string, userId: string): Promise<{ org?: string; version?: string; grants?: Grant[] }> {
    const [org, version, value] = (await this.redis.eval(
      `local org = redis.call('GET', KEYS[1])
       if not org then return {false, false, false} end
       local v = redis.call('GET', ARGV[1] .. org .. ':version') or '0'
       return {org, v, redis.call('GET', ARGV[1] .. org .. ':v' .. v .. ':' .. ARGV[2])}`,
      [this.orgKey(teamId)],
      [this.keys.key("perm", ""), `${teamId}:${userId}`],
    )) as [string | null, string | null, string | null];
    if (!org) return {};
    return { org, version: String(version), ...(value ? { grants: JSON.parse(value) as Grant[] } : {}) };
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
