import type { Principal } from "../src/platform/auth.ts";
import type { Queryable } from "../src/platform/db.ts";
import { createLogger } from "../src/platform/logger.ts";
import type { WaitUntil } from "../src/platform/platform.ts";
import { createPlatform } from "../src/platform/platform.ts";
import type { ResourceRef } from "../src/teams/authz/model.ts";
import { StampCache } from "../src/teams/authz/revision.ts";
import { AuthzService } from "../src/teams/authz/service.ts";
import { readCheck } from "../src/teams/authz/store.ts";
import { createTeamService } from "../src/teams/service.ts";
import { round, summarize } from "./lib.ts";

/**
 * `/__bench/authz` (bench/authz.ts drives it): the real `AuthzService` / team service inside the
 * Worker, one platform per request, sequential unless said otherwise. Modes:
 * - `check`: `pairs` checked once (fills the cache; answers returned), then `n` checks cycling
 *   through them — `cached`, or `uncached` (the entry deleted, untimed, before each check);
 * - `users`: `n` first pages (limit `limit`) of who holds `permission` on `resource`;
 * - `warm`: the pairs checked (filled), a team moved, the pairs checked again (how many answered from
 *   the cache), then a membership added and the pairs checked once more;
 * - `ryw`: `tries` writes (grant/revoke toggles and membership toggles) on `lanes` concurrent
 *   lanes, each followed by a check with the write's token: stale answers counted.
 */

/** A check to time. */
interface Pair {
  userId: string;
  permission: string;
  resource: ResourceRef;
}

const MAX_TIME_MS = 120_000;

const adminPrincipal = (org: string): Principal => ({
  userId: "u_bench_admin",
  organizationId: org,
  scopes: new Set(["admin", "teams:read", "teams:write"]),
});

const json = (data: unknown, status = 200) =>
  new Response(JSON.stringify(data), { status, headers: { "content-type": "application/json" } });

/** Handles `/__bench/authz`. */
export async function authzBench(body: Record<string, unknown>, env: object, ctx: WaitUntil): Promise<Response> {
  const org = String(body.organizationId ?? "");
  const mode = String(body.mode ?? "");
  const platform = createPlatform(env, ctx, createLogger({ bench: "authz" }));
  // Cache fills run in the background as in production; the platform keeps them alive.
  const svc = new AuthzService({
    db: platform.db,
    redis: platform.redis,
    keys: platform.keys,
    config: platform.config.teams,
    waitUntil: (p) => platform.waitUntil(p),
  });
  const stamps = new StampCache(platform.redis, platform.keys);
  const pairs = (Array.isArray(body.pairs) ? body.pairs : []) as Pair[];
  const checkAll = async () => {
    const out: { allowed: boolean; cached: boolean }[] = [];
    for (const p of pairs) {
      const c = await svc.check(org, p.userId, p.permission, p.resource);
      out.push({ allowed: c.allowed, cached: c.cached });
    }
    return out;
  };
  try {
    if (mode === "check") {
      const n = Number(body.n ?? 1000);
      const uncached = body.cache === "uncached";
      const first = await checkAll();
      // Let the background fills land before timing cached reads.
      await new Promise((r) => setTimeout(r, 50));
      const lat: number[] = [];
      const start = performance.now();
      let timed = 0;
      for (let i = 0; i < n && performance.now() - start < MAX_TIME_MS; i++) {
        const p = pairs[i % pairs.length]!;
        if (uncached) await platform.redis.del(stamps.entryKey(org, "chk", p.userId, p.resource.type, p.resource.id));
        const t0 = performance.now();
        const c = await svc.check(org, p.userId, p.permission, p.resource);
        const ms = performance.now() - t0;
        timed += ms;
        lat.push(ms);
        if (c.allowed !== first[i % pairs.length]!.allowed) throw new Error(`answer changed for ${JSON.stringify(p)}`);
        if (!uncached && !c.cached) throw new Error(`cached check missed for ${JSON.stringify(p)}`);
      }
      // The parts of an uncached check, each alone: the cache lookup that misses, the read (as the
      // service runs it, and as plain text planned on every call), the baseline.
      const parts: Record<string, number> = {};
      if (uncached) {
        const m = Math.min(200, n);
        const time = async (fn: (p: Pair) => Promise<unknown>) => {
          const t0 = performance.now();
          for (let i = 0; i < m; i++) await fn(pairs[i % pairs.length]!);
          return round((performance.now() - t0) / m);
        };
        parts.lookupMiss = await time((p) => stamps.get(org, stamps.entryKey(org, "miss", p.userId, p.resource.id), 0));
        parts.readCheck = await time((p) =>
          readCheck(platform.db, org, p.resource, p.userId, platform.config.teams.maxDepth, 32),
        );
        const unprepared: Queryable = { query: (text, params) => platform.db.query(text, params) };
        parts.readCheckUnprepared = await time((p) =>
          readCheck(unprepared, org, p.resource, p.userId, platform.config.teams.maxDepth, 32),
        );
        parts.select1 = await time(() => platform.db.query("select 1"));
      }
      return json({
        ...summarize(lat),
        mean: round(timed / Math.max(1, lat.length)),
        ok: lat.length,
        raw: lat.map((x) => round(x)),
        allowed: first.map((x) => x.allowed),
        parts,
      });
    }
    if (mode === "users") {
      const n = Number(body.n ?? 100);
      const resource = body.resource as ResourceRef;
      const permission = String(body.permission);
      const limit = Number(body.limit ?? 50);
      const lat: number[] = [];
      let first: { users: number; sources: number; next: boolean } | undefined;
      let timed = 0;
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        const page = await svc.listUsers(org, resource, permission, { limit });
        const ms = performance.now() - t0;
        lat.push(ms);
        timed += ms;
        first ??= {
          users: page.users.length,
          sources: page.users.reduce((t, u) => t + u.sources.length, 0),
          next: page.nextCursor !== null,
        };
      }
      // Walk every page once: how many authorized users there are in all.
      let total = 0;
      let after: string | undefined;
      const w0 = performance.now();
      for (;;) {
        const page = await svc.listUsers(org, resource, permission, { limit: 200, after });
        total += page.users.length;
        if (!page.nextCursor) break;
        after = page.nextCursor;
      }
      return json({
        ...summarize(lat),
        mean: round(timed / Math.max(1, lat.length)),
        ok: lat.length,
        raw: lat.map((x) => round(x)),
        first,
        total,
        walkMs: round(performance.now() - w0),
      });
    }
    if (mode === "warm") {
      await checkAll();
      await new Promise((r) => setTimeout(r, 50));
      const filled = (await checkAll()).filter((x) => x.cached).length;
      const teams = createTeamService(platform, adminPrincipal(org));
      const move = body.move as { teamId: string; newParentId: string | null };
      await teams.moveTeam(move.teamId, move.newParentId, "u_bench_admin");
      const afterMove = await checkAll();
      await new Promise((r) => setTimeout(r, 50));
      // Then a membership: entries the move made cold were refilled by the pass above.
      const member = body.member as { teamId: string; userId: string };
      await teams.addMember(member.teamId, member.userId, "member", "u_bench_admin");
      const afterMember = await checkAll();
      return json({
        pairs: pairs.length,
        filled,
        warmAfterMove: afterMove.filter((x) => x.cached).length,
        warmAfterMember: afterMember.filter((x) => x.cached).length,
      });
    }
    if (mode === "ryw") {
      const tries = Number(body.tries ?? 1000);
      const lanes = (body.lanes ?? []) as { doc: ResourceRef; user: string; teamId: string; memberUser: string }[];
      let done = 0;
      let stale = 0;
      let writes = 0;
      let memberWrites = 0;
      const errors: string[] = [];
      const start = performance.now();
      // Each lane is its own client, as concurrent requests are (one platform, one pool each).
      const lane = async (l: (typeof lanes)[number], k: number) => {
        const lp = createPlatform(env, ctx, createLogger({ bench: "authz-ryw" }));
        const lsvc = new AuthzService({
          db: lp.db,
          redis: lp.redis,
          keys: lp.keys,
          config: lp.config.teams,
          waitUntil: (p) => lp.waitUntil(p),
        });
        let granted = false;
        let member = false;
        try {
          for (let i = 0; done < tries && performance.now() - start < MAX_TIME_MS; i++) {
            done++;
            try {
              if ((i + k) % 5 === 4) {
                // A membership toggle of a team that holds a grant on the lane's document.
                const laneTeams = createTeamService(lp, adminPrincipal(org));
                if (member) await laneTeams.removeMember(l.teamId, l.memberUser, "u_bench_admin");
                else await laneTeams.addMember(l.teamId, l.memberUser, "member", "u_bench_admin");
                member = !member;
                memberWrites++;
                const c = await lsvc.check(org, l.memberUser, "documents.read", l.doc, laneTeams.revision);
                if (c.allowed !== member) stale++;
              } else {
                const w = granted
                  ? await lsvc.revoke(org, l.doc, { type: "user", id: l.user }, "u_bench_admin")
                  : await lsvc.grant(org, l.doc, { type: "user", id: l.user }, "member", "u_bench_admin");
                granted = !granted;
                writes++;
                const c = await lsvc.check(org, l.user, "documents.write", l.doc, w.revision);
                if (c.allowed !== granted) stale++;
              }
              // Keep the cache busy with answers computed while other lanes write (every other try).
              if (i % 2 === 0) await lsvc.check(org, l.user, "documents.write", l.doc);
            } catch (err) {
              if (errors.length < 5) errors.push(err instanceof Error ? err.message : String(err));
            }
          }
        } finally {
          lp.close();
        }
      };
      await Promise.all(lanes.map((l, k) => lane(l, k)));
      return json({ tries: done, stale, writes, memberWrites, errors, ms: round(performance.now() - start) });
    }
    return json({ error: "mode: check | users | warm | ryw" }, 400);
  } finally {
    platform.close();
  }
}
