import type { Queryable } from "../../platform/db.ts";
import { ValidationError } from "../../platform/errors.ts";
import type { Redis, RedisKeys } from "../../platform/redis.ts";

/**
 * Read-your-writes for authorization (Zanzibar's zookies, SpiceDB's ZedTokens) and the
 * per-dependency cache invalidation built on the same counter.
 *
 * Every write that can change an answer increments the organization's revision as the last
 * statement of its transaction (`authz_revisions`: the row lock orders those writes, so revisions
 * commit in order) and returns it as an opaque token. Reads compute their answer and the current
 * revision in one statement — one snapshot — so an answer computed at revision `r` reflects every
 * write up to `r` and none after.
 *
 * Cache entries record that `r` and the dependencies they were computed from (`u:<user>`,
 * `t:<team>`, `r:<type>:<id>`, `role:<name>`, `teams`, `org`). After its commit a write raises the
 * stamp of each dependency it touched to its revision; an entry is served only while every stamp
 * is ≤ its `r`, and — given `atLeast=T` — only if `r ≥ T`. A write that touched one team therefore
 * invalidates exactly the entries that read that team; all others stay warm.
 */

/** Header carrying the revision token of a write (and of a read's answer). */
export const REVISION_HEADER = "X-Authz-Revision";

/** Increments the organization's revision in `tx` (call last, just before commit). */
export async function bumpRevision(tx: Queryable, org: string): Promise<number> {
  const { rows } = await tx.query<{ revision: string }>(
    `insert into authz_revisions as r (organization_id, revision) values ($1, 1)
     on conflict (organization_id) do update set revision = r.revision + 1 returning revision`,
    [org],
  );
  return Number(rows[0]!.revision);
}

/** SQL expression: the current revision of organization `$n` (0 before its first write). */
export const revisionSql = (orgParam: string) =>
  `coalesce((select revision from authz_revisions where organization_id = ${orgParam}), 0)`;

const b64url = (s: string) => btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

/** The opaque revision token of `revision` in `org` (bound to the organization). */
export function encodeRevision(org: string, revision: number): string {
  return `rv1_${b64url(`${org}|${revision}`)}`;
}

/**
 * The revision a token stands for. @throws {ValidationError} for a token this API did not issue,
 * or one issued for another organization
 */
export function decodeRevision(org: string, token: string | undefined, path = "atLeast"): number {
  if (token === undefined || token === "") return 0;
  const bad = () =>
    new ValidationError("invalid revision token", [{ path, message: "not a revision token of this organization" }]);
  if (!token.startsWith("rv1_")) throw bad();
  let text: string;
  try {
    text = atob(token.slice(4).replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    throw bad();
  }
  const cut = text.lastIndexOf("|");
  const rev = Number(text.slice(cut + 1));
  if (cut < 0 || text.slice(0, cut) !== org || !Number.isSafeInteger(rev) || rev < 0) throw bad();
  return rev;
}

/** A cached answer: the revision it was computed at, what it read, and the value. */
export interface Stamped<T> {
  /** Revision of the snapshot it was computed from. */
  r: number;
  /** Dependencies it read. */
  k: string[];
  /** The value. */
  v: T;
}

// Served only while no dependency moved past the entry's revision, and only if it is at least
// as new as asked. One round trip: entry and stamps are read together.
const LOOKUP = `local e = redis.call('GET', KEYS[1])
if not e then return false end
local ok, d = pcall(cjson.decode, e)
if not ok then return false end
if d.r < tonumber(ARGV[2]) then return false end
for _, k in ipairs(d.k) do
  local s = redis.call('GET', ARGV[1] .. k)
  if s and tonumber(s) > d.r then return false end
end
return e`;

/** Lifetime of a cached answer (both caches that read stamps). */
export const ENTRY_TTL_SECONDS = 300;
/**
 * An answer whose read began longer ago than this is not cached: so every entry computed before a
 * write is stored within this window of the write's commit, and is gone `ENTRY_TTL_SECONDS` later.
 */
export const STORE_WINDOW_MS = 60_000;
/**
 * Lifetime of a stamp after its last raise: it only has to outlive the entries it invalidates —
 * those read before the write, stored within {@link STORE_WINDOW_MS}, expiring `ENTRY_TTL_SECONDS`
 * after that — so stamps no longer pile up, one per user, team and resource ever written. (A lower
 * announcement that arrives later leaves the higher stamp's expiry: its write committed earlier, so
 * its entries expire earlier still.)
 */
export const STAMP_TTL_SECONDS = ENTRY_TTL_SECONDS + STORE_WINDOW_MS / 1000 + 60;

/** Whether an answer whose read began at `readStartedAt` (epoch ms) may still be cached. */
export const storable = (readStartedAt: number, now = Date.now()) => now - readStartedAt <= STORE_WINDOW_MS;

// Raises each stamp to the revision (never lowers one: writes may announce out of order), with the
// stamps' lifetime.
const ANNOUNCE = `local r = tonumber(ARGV[1])
for _, k in ipairs(KEYS) do
  local s = tonumber(redis.call('GET', k) or '0')
  if r > s then redis.call('SET', k, ARGV[1], 'EX', ARGV[2]) end
end
return #KEYS`;

/** Stamps and stamped entries in Redis (see the module comment). */
export class StampCache {
  private readonly redis: Redis;
  private readonly keys: RedisKeys;

  /** Entries live {@link ENTRY_TTL_SECONDS}; stamps {@link STAMP_TTL_SECONDS} after their last raise. */
  constructor(redis: Redis, keys: RedisKeys) {
    this.redis = redis;
    this.keys = keys;
  }

  private stampPrefix(org: string) {
    return this.keys.key("authz", org, "s", "");
  }

  /** Key of an entry of `org`. */
  entryKey(org: string, ...parts: string[]): string {
    return this.keys.key("authz", org, "c", ...parts);
  }

  /** The entry, if it is still valid and at least at revision `atLeast`. */
  async get<T>(org: string, key: string, atLeast: number): Promise<Stamped<T> | undefined> {
    const raw = (await this.redis.eval(LOOKUP, [key], [this.stampPrefix(org), String(atLeast)])) as string | null;
    return raw ? (JSON.parse(raw) as Stamped<T>) : undefined;
  }

  /**
   * Stores an entry computed at revision `r` from `deps` — unless its read began more than
   * {@link STORE_WINDOW_MS} ago (the stamps that could invalidate it may have expired by then).
   * @param readStartedAt - when the read it came from began (epoch ms)
   */
  async set<T>(key: string, entry: Stamped<T>, readStartedAt: number): Promise<void> {
    if (!storable(readStartedAt)) return;
    await this.redis.set(key, JSON.stringify(entry), { ex: ENTRY_TTL_SECONDS });
  }

  /**
   * After a commit at `revision`: every entry that read one of `deps` stops being served.
   * Always includes nothing else — a change to one team leaves every other entry warm.
   */
  async announce(org: string, deps: readonly string[], revision: number): Promise<void> {
    const unique = [...new Set(deps)];
    if (unique.length === 0) return;
    const prefix = this.stampPrefix(org);
    // Large announcements (a moved subtree) go in slices, to keep each script short.
    for (let i = 0; i < unique.length; i += 500)
      await this.redis.eval(
        ANNOUNCE,
        unique.slice(i, i + 500).map((d) => prefix + d),
        [String(revision), String(STAMP_TTL_SECONDS)],
      );
  }
}

/** Dependency names (the stamps a write raises and an entry reads). */
export const dep = {
  /** A user's memberships. */
  user: (userId: string) => `u:${userId}`,
  /** A team's place in the tree, name and visibility. */
  team: (teamId: string) => `t:${teamId}`,
  /** A resource's grants and parent. */
  resource: (type: string, id: string) => `r:${type}:${id}`,
  /** A role's permissions. */
  role: (name: string) => `role:${name}`,
  /** Any team tree change (read by entries that depend on too many teams to list). */
  teams: "teams",
  /** Everything of the organization (team deletion). */
  org: "org",
} as const;
