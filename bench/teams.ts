import * as os from "node:os";
import { connectPg } from "../scripts/lib/pg.ts";
import { signToken } from "../src/platform/auth.ts";
import type { Queryable } from "../src/platform/db.ts";
import { descendantRows, grantsOnPath } from "../src/teams/hierarchy.ts";
import type { Permission, Role } from "../src/teams/permissions.ts";
import { permissionCatalog, rank, rolePermissions } from "../src/teams/permissions.ts";
import type { WorkerLoopResult } from "./baseline.ts";
import { workerPgSelect1, workerRedisGet } from "./baseline.ts";
import type { BenchContext, BenchResult } from "./harness.ts";
import { numArg } from "./harness.ts";
import type { LatencySummary } from "./lib.ts";
import { percentile, round, runBounded, summarize, prng } from "./lib.ts";

/**
 * Teams: inherited permission checks and hierarchy reads at enterprise scale.
 *
 * Seed (SQL, straight into this run's database): one `enterprise` organization, 10,000 teams —
 * one chain of exactly 20 levels, one 2,000-team subtree (under a root team), the rest trees of
 * 20 teams whose heights run 1..20 — and 100,000 memberships (10 per team, roles ~80 % member,
 * 15 % admin, 5 % owner, 20,000 users), then `analyze`.
 *
 * Measured inside the Worker (`/__bench/teams-check`: the real `createTeamService(createPlatform(…))`,
 * sequential `checkPermission` calls on one platform):
 * - cached: `--pairs` (256) random (team, user, permission) pairs, each checked once, then `--cached-n`
 *   (3000) checks cycling through them;
 * - uncached: the same pairs, `--uncached-n` (1500) checks, the organization's cache version bumped
 *   (`PermissionCache.bump`, untimed) before each one, so every check runs `grantsOnPath`;
 * - depth: depth-1 and depth-20 teams (the roots and depth-20 leaves of the 20-level trees, checked
 *   for a member of the root), interleaved, `--depth-n` (2000) checks, uncached and cached;
 * - cold: `--cold` (500) pairs on teams never checked before (permission and team→org caches miss).
 * Baselines from the same Worker in the same run: `/__bench/redis` (a raw GET, `--redis-n` 1500) and
 * `/__bench/pg` (raw `select 1`, `--pg-n` 1000). Everything above runs in `--rounds` (5) interleaved
 * rounds (baselines, cached, uncached, depth, cold, parts), each doing 1/rounds of every count, and is
 * pooled, so load drift on a shared machine hits baselines and checks alike. Ratios use the means
 * (workerd's clock has whole ms; p50/p99 are quantized). `/__bench/teams-parts` (`--parts-n` 300)
 * times the round trips a check is made of.
 * From Node: grantsOnPath / descendantRows round trips and `EXPLAIN ANALYZE` (server time).
 * Hierarchy: `getHierarchy(subtreeRoot, "descendants")` of the 2,000-team subtree, `--hier-runs` (7)
 * in the Worker (service, no viewer) and through `GET …/hierarchy?direction=descendants` (owner token).
 * Also informative: `POST …/permissions/check` from Node (cached), `--http-n` (200).
 */

const ORG = "org_bench_teams";
const TEAMS = 10_000;
const MEMBERS_PER_TEAM = 10;
const USERS = 20_000;
const MAX_DEPTH = 20;
const SUBTREE = 2_000;
const PERMISSIONS = Object.keys(permissionCatalog) as Permission[];

interface Team {
  id: string;
  parent: number; // index, -1 for a root
  depth: number; // 1 = root
  visibility: "public" | "private" | "secret";
}

interface Pair {
  teamId: string;
  userId: string;
  permission: string;
  group?: string;
}

/** The team forest and the memberships, plus the indexes the measurements need. */
function buildData() {
  const rnd = prng(20_000);
  const teams: Team[] = [];
  const vis = (): Team["visibility"] => {
    const x = rnd();
    return x < 0.75 ? "public" : x < 0.95 ? "private" : "secret";
  };
  const add = (parent: number) => {
    const depth = parent < 0 ? 1 : teams[parent]!.depth + 1;
    if (depth > MAX_DEPTH) throw new Error("generator bug: too deep");
    teams.push({ id: `tmb_${teams.length}`, parent, depth, visibility: vis() });
    return teams.length - 1;
  };
  // 1. One chain of exactly 20 levels.
  const chain: number[] = [];
  for (let i = 0; i < MAX_DEPTH; i++) chain.push(add(i === 0 ? -1 : chain[i - 1]!));
  // 2. A 2,000-team subtree (root + 1,999 descendants, branching 5) under a root team.
  const subParent = add(-1);
  const subtree: number[] = [add(subParent)];
  for (let j = 1; j < SUBTREE; j++) subtree.push(add(subtree[Math.floor((j - 1) / 5)]!));
  // 3. The rest: trees of 20 teams; tree k is a spine of height 1 + k % 20 with the other teams
  //    hung on random spine teams above its bottom (a height-1 "tree" is 20 root teams).
  const deep: { root: number; leaf: number }[] = [{ root: chain[0]!, leaf: chain[MAX_DEPTH - 1]! }];
  for (let k = 0; teams.length < TEAMS; k++) {
    const height = 1 + (k % MAX_DEPTH);
    const spine: number[] = [];
    for (let d = 0; d < height && teams.length < TEAMS; d++) spine.push(add(d === 0 ? -1 : spine[d - 1]!));
    if (spine.length === MAX_DEPTH) deep.push({ root: spine[0]!, leaf: spine[MAX_DEPTH - 1]! });
    for (let e = spine.length; e < 20 && teams.length < TEAMS; e++) {
      add(height === 1 ? -1 : spine[Math.floor(rnd() * (spine.length - 1))]!);
    }
  }
  // Memberships: 10 distinct users per team.
  const members: { team: number; user: string; role: Role }[] = [];
  const byTeam: Map<string, Role>[] = teams.map(() => new Map());
  for (let t = 0; t < teams.length; t++) {
    while (byTeam[t]!.size < MEMBERS_PER_TEAM) {
      const user = `u_${Math.floor(rnd() * USERS)}`;
      if (byTeam[t]!.has(user)) continue;
      const x = rnd();
      const role: Role = x < 0.8 ? "member" : x < 0.95 ? "admin" : "owner";
      byTeam[t]!.set(user, role);
      members.push({ team: t, user, role });
    }
  }
  return { teams, chain, subParent, subtreeRoot: subtree[0]!, deep, members, byTeam, rnd };
}

type Data = ReturnType<typeof buildData>;

/** What checkPermission must answer, computed from the seed (highest role on the path wins). */
function expected(data: Data, team: number, user: string, permission: Permission): boolean {
  let best: Role | undefined;
  for (let t = team; t >= 0; t = data.teams[t]!.parent) {
    const r = data.byTeam[t]!.get(user);
    if (r && (!best || rank(r) > rank(best))) best = r;
  }
  return best !== undefined && rolePermissions[best].includes(permission);
}

async function seed(ctx: BenchContext, data: Data): Promise<void> {
  const pg = await connectPg(ctx.pgUrl);
  try {
    await pg.query("insert into organizations (id, plan_id) values ($1, 'enterprise')", [ORG]);
    const rows = data.teams.map((t, i) => ({
      id: t.id,
      p: t.parent < 0 ? null : data.teams[t.parent]!.id,
      n: `Team ${i} (d${t.depth})`,
      v: t.visibility,
    }));
    for (let i = 0; i < rows.length; i += 2_000) {
      await pg.query(
        `insert into teams (id, organization_id, name, parent_team_id, visibility, created_by)
         select e->>'id', $2, e->>'n', e->>'p', e->>'v', 'u_seed' from jsonb_array_elements($1::jsonb) e`,
        [JSON.stringify(rows.slice(i, i + 2_000)), ORG],
      );
    }
    const mrows = data.members.map((m) => ({ t: data.teams[m.team]!.id, u: m.user, r: m.role }));
    for (let i = 0; i < mrows.length; i += 10_000) {
      await pg.query(
        `insert into team_memberships (team_id, user_id, role, added_by)
         select e->>'t', e->>'u', e->>'r', 'u_seed' from jsonb_array_elements($1::jsonb) e`,
        [JSON.stringify(mrows.slice(i, i + 10_000))],
      );
    }
    await pg.query("analyze");
    const c = (
      await pg.query<{ teams: number; members: number; depth: number }>(
        `select (select count(*)::int from teams where organization_id = $1) as teams,
              (select count(*)::int from team_memberships) as members,
              (with recursive d as (select id, 1 as depth from teams where parent_team_id is null and organization_id = $1
                 union all select t.id, d.depth + 1 from teams t join d on t.parent_team_id = d.id where d.depth < 50)
               select max(depth)::int from d) as depth`,
        [ORG],
      )
    ).rows[0]!;
    if (c.teams !== TEAMS || c.members !== TEAMS * MEMBERS_PER_TEAM || c.depth !== MAX_DEPTH)
      throw new Error(`seed check: ${JSON.stringify(c)}`);
  } finally {
    await pg.end();
  }
}

/** Reply of `/__bench/teams-check`. */
interface CheckReply extends LatencySummary {
  mode: string;
  ok: number;
  failed: number;
  stoppedEarly: boolean;
  loopMs: number;
  groups: Record<string, LatencySummary>;
  raw: Record<string, number[]>;
  allowed: (boolean | null)[];
  reasons: string[];
  errors: string[];
}

interface PartsReply {
  orgOfGet: WorkerLoopResult;
  cacheEval: WorkerLoopResult;
  grantsOnPath: WorkerLoopResult;
  cacheSet: WorkerLoopResult;
  bump: WorkerLoopResult;
  entryGet: WorkerLoopResult;
  evalReturn1: WorkerLoopResult;
  evalGet: WorkerLoopResult;
  grants: number;
}

export default async function run(ctx: BenchContext): Promise<BenchResult> {
  const a = ctx.args;
  const nPairs = numArg(a, "pairs", 256);
  const cachedN = numArg(a, "cached-n", 3000);
  const uncachedN = numArg(a, "uncached-n", 1500);
  const depthN = numArg(a, "depth-n", 2000);
  const coldN = numArg(a, "cold", 500);
  const hierRuns = numArg(a, "hier-runs", 7);
  const httpN = numArg(a, "http-n", 200);
  const rounds = Math.max(1, numArg(a, "rounds", 5));
  const redisN = numArg(a, "redis-n", 1500);
  const pgN = numArg(a, "pg-n", 1000);
  const partsN = numArg(a, "parts-n", 300);
  const notes: string[] = [];

  ctx.log(`seeding ${TEAMS} teams, ${TEAMS * MEMBERS_PER_TEAM} memberships (org ${ORG}, enterprise)`);
  const s0 = performance.now();
  const data = buildData();
  await seed(ctx, data);
  const seedMs = performance.now() - s0;

  // ─── pairs ───
  const { rnd, teams } = data;
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const used = new Set<number>([data.subtreeRoot, ...data.deep.flatMap((d) => [d.root, d.leaf])]);
  /** Half the pairs ask about a member of the team or an ancestor (mostly allowed), half a random user. */
  const randomPair = (t: number): Pair & { team: number } => {
    let user = `u_${Math.floor(rnd() * USERS)}`;
    if (rnd() < 0.5) {
      const path: number[] = [];
      for (let x = t; x >= 0; x = teams[x]!.parent) path.push(x);
      user = pick([...data.byTeam[pick(path)]!.keys()]);
    }
    return { team: t, teamId: teams[t]!.id, userId: user, permission: pick(PERMISSIONS) };
  };
  const freshTeam = () => {
    for (;;) {
      const t = Math.floor(rnd() * teams.length);
      if (!used.has(t)) {
        used.add(t);
        return t;
      }
    }
  };
  const mixed = Array.from({ length: nPairs }, () => randomPair(freshTeam()));
  const cold = Array.from({ length: coldN }, () => randomPair(freshTeam()));
  const depthPairs: Pair[] = [];
  for (const d of data.deep) {
    const user = [...data.byTeam[d.root]!.keys()][0]!;
    depthPairs.push({ teamId: teams[d.root]!.id, userId: user, permission: "team.read", group: "depth1" });
    depthPairs.push({ teamId: teams[d.leaf]!.id, userId: user, permission: "team.read", group: "depth20" });
  }
  const strip = (p: Pair & { team: number }): Pair => ({
    teamId: p.teamId,
    userId: p.userId,
    permission: p.permission,
  });
  const wrong = (pairs: (Pair & { team: number })[], reply: CheckReply) =>
    pairs.filter(
      (p, i) =>
        reply.allowed[i] !== null && reply.allowed[i] !== expected(data, p.team, p.userId, p.permission as Permission),
    ).length;

  const check = (mode: "cached" | "bump" | "cold", pairs: Pair[], n: number, warmupPairs: Pair[] = pairs.slice(0, 5)) =>
    ctx.worker.json<CheckReply>("/__bench/teams-check", { mode, pairs, n, warmupPairs, organizationId: ORG });
  const assertOk = (label: string, r: CheckReply) => {
    if (r.failed || r.stoppedEarly)
      throw new Error(`${label}: ${r.failed} failed, stoppedEarly ${r.stoppedEarly}: ${r.errors.join("; ")}`);
  };

  // ─── interleaved rounds: baselines and checks alternate, so load drift hits both alike ───
  const mixedS = mixed.map(strip);
  const per = (total: number) => Math.max(1, Math.ceil(total / rounds));
  ctx.log("warm-up: /__bench/redis, /__bench/pg");
  await workerRedisGet(ctx.worker, 50);
  await workerPgSelect1(ctx.worker, 20);
  const lat = {
    cached: [] as number[],
    uncached: [] as number[],
    cold: [] as number[],
    d1u: [] as number[],
    d20u: [] as number[],
    d1c: [] as number[],
    d20c: [] as number[],
  };
  const redisRuns: WorkerLoopResult[] = [];
  const pgRuns: WorkerLoopResult[] = [];
  const parts1Runs: PartsReply[] = [];
  const parts20Runs: PartsReply[] = [];
  const roundRatio = { cached: [] as number[], uncached: [] as number[], depth: [] as number[] };
  let mismatches = 0;
  const coldPer = per(coldN);
  const parts = (p: Pair) =>
    ctx.worker.json<PartsReply>("/__bench/teams-parts", {
      teamId: p.teamId,
      userId: p.userId,
      organizationId: ORG,
      n: per(partsN),
    });
  for (let r = 0; r < rounds && !ctx.signal.aborted; r++) {
    ctx.log(
      `round ${r + 1}/${rounds}: redis GET ×${per(redisN)}, select 1 ×${per(pgN)}, cached ×${per(cachedN)}, uncached ×${per(uncachedN)}, depth ×${per(depthN)} uncached + cached, cold ×${coldPer}, parts`,
    );
    const redis = await workerRedisGet(ctx.worker, per(redisN));
    const pgr = await workerPgSelect1(ctx.worker, per(pgN));
    const c = await check("cached", mixedS, per(cachedN));
    assertOk("cached", c);
    const u = await check("bump", mixedS, per(uncachedN));
    assertOk("uncached", u);
    const du = await check("bump", depthPairs, per(depthN));
    assertOk("depth uncached", du);
    const dc = await check("cached", depthPairs, per(depthN));
    assertOk("depth cached", dc);
    const coldSlice = cold.slice(r * coldPer, (r + 1) * coldPer);
    if (coldSlice.length) {
      const co = await check("cold", coldSlice.map(strip), coldSlice.length, mixedS.slice(0, 5));
      assertOk("cold", co);
      lat.cold.push(...co.raw.all!);
      mismatches += wrong(coldSlice, co);
    }
    parts1Runs.push(await parts(depthPairs[0]!));
    parts20Runs.push(await parts(depthPairs[1]!));
    redisRuns.push(redis);
    pgRuns.push(pgr);
    lat.cached.push(...c.raw.all!);
    lat.uncached.push(...u.raw.all!);
    lat.d1u.push(...du.raw.depth1!);
    lat.d20u.push(...du.raw.depth20!);
    lat.d1c.push(...dc.raw.depth1!);
    lat.d20c.push(...dc.raw.depth20!);
    mismatches += wrong(mixed, c) + wrong(mixed, u) + [...du.allowed, ...dc.allowed].filter((x) => x !== true).length;
    roundRatio.cached.push(c.mean / redis.mean);
    roundRatio.uncached.push(u.mean / pgr.mean);
    roundRatio.depth.push(du.groups.depth20!.p99 / du.groups.depth1!.p99);
  }
  const weighted = (runs: WorkerLoopResult[]) =>
    runs.reduce((t, x) => t + x.mean * x.ok, 0) /
    Math.max(
      1,
      runs.reduce((t, x) => t + x.ok, 0),
    );
  const redisMean = weighted(redisRuns);
  const pgMean = weighted(pgRuns);
  const cached = summarize(lat.cached);
  const uncached = summarize(lat.uncached);
  const coldR = summarize(lat.cold);
  const d1u = summarize(lat.d1u);
  const d20u = summarize(lat.d20u);
  const d1c = summarize(lat.d1c);
  const d20c = summarize(lat.d20c);
  const avgPart = (runs: PartsReply[], k: Exclude<keyof PartsReply, "grants">) =>
    round(runs.reduce((t, x) => t + x[k].mean, 0) / Math.max(1, runs.length));
  const median = (xs: number[]) => percentile(xs, 50);

  ctx.log("grantsOnPath from Node: round trips and EXPLAIN ANALYZE");
  const nodePg = await nodeGrantsOnPath(ctx, depthPairs[0]!, depthPairs[1]!, teams[data.subtreeRoot]!.id);

  // ─── hierarchy ───
  const subtreeRootId = teams[data.subtreeRoot]!.id;
  ctx.log(`getHierarchy(${subtreeRootId}, descendants): ${hierRuns} runs in the Worker, ${hierRuns} over HTTP`);
  const hier = await ctx.worker.json<WorkerLoopResult & { nodes: number; max: number }>("/__bench/teams-hierarchy", {
    teamId: subtreeRootId,
    direction: "descendants",
    runs: hierRuns,
  });
  if (hier.failed || hier.nodes !== SUBTREE - 1) throw new Error(`hierarchy: ${JSON.stringify(hier).slice(0, 300)}`);
  // An owner of the subtree root sees every team under it, secret ones included.
  const owner =
    [...data.byTeam[data.subtreeRoot]!.entries()].find(([, r]) => r === "owner")?.[0] ??
    [...data.byTeam[data.subtreeRoot]!.keys()][0]!;
  const token = async (userId: string, extraScopes: string[] = []) =>
    signToken(
      { userId, organizationId: ORG, scopes: ["teams:read", "teams:write", ...extraScopes], ttlSeconds: 3_600 },
      {
        secret: ctx.bindings.AUTH_JWT_SECRET!,
        issuer: ctx.bindings.AUTH_JWT_ISSUER ?? "cloudmatrix",
        audience: ctx.bindings.AUTH_JWT_AUDIENCE ?? "cloudmatrix-edge",
      },
    );
  const ownerAuth = { authorization: `Bearer ${await token(owner)}` };
  let httpNodes = 0;
  let httpBytes = 0;
  const countNodes = (nodes: { children: unknown[] }[]): number =>
    nodes.reduce((n, c) => n + 1 + countNodes(c.children as { children: unknown[] }[]), 0);
  const getTree = async () => {
    const res = await ctx.worker.fetch(`/v1/orgs/${ORG}/teams/${subtreeRootId}/hierarchy?direction=descendants`, {
      headers: ownerAuth,
      signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(30_000)]),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`hierarchy HTTP ${res.status} ${text.slice(0, 300)}`);
    httpBytes = text.length;
    httpNodes = countNodes((JSON.parse(text) as { descendants: { children: unknown[] }[] }).descendants);
  };
  await getTree(); // warm-up (also fills the grants cache of the secret teams)
  const hh = await runBounded({ count: hierRuns, timeLimitMs: 60_000, signal: ctx.signal }, getTree);
  if (hh.failed) throw new Error(`hierarchy over HTTP: ${hh.errors.join("; ")}`);
  const hierHttp = summarize(hh.latencies);
  // The same request as an organization admin (scope `admin`): visible() answers without a lookup,
  // so the difference to the owner's request is the per-secret-team permission lookups.
  const adminAuth = { authorization: `Bearer ${await token("u_bench_admin", ["admin"])}` };
  const ha = await runBounded({ count: hierRuns + 1, timeLimitMs: 60_000, signal: ctx.signal }, async () => {
    const res = await ctx.worker.fetch(`/v1/orgs/${ORG}/teams/${subtreeRootId}/hierarchy?direction=descendants`, {
      headers: adminAuth,
      signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(30_000)]),
    });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`hierarchy (admin) HTTP ${res.status} ${text.slice(0, 300)}`);
  });
  if (ha.failed) throw new Error(`hierarchy over HTTP (admin): ${ha.errors.join("; ")}`);
  const hierAdmin = summarize(ha.latencies.slice(1));
  const secretInSubtree = data.teams.filter(
    (t, i) => t.visibility === "secret" && isUnder(data, i, data.subtreeRoot),
  ).length;

  // ─── the HTTP check route (informative) ───
  ctx.log(`POST …/permissions/check from Node: ${httpN} cached checks`);
  const pairOwnerAuth = {
    "content-type": "application/json",
    authorization: `Bearer ${await token("u_bench_caller")}`,
  };
  const publicMixed = mixed.filter((p) => teams[p.team]!.visibility !== "secret");
  const hc = await runBounded({ count: httpN + 20, timeLimitMs: 60_000, signal: ctx.signal }, async (i) => {
    const p = publicMixed[i % publicMixed.length]!;
    const res = await ctx.worker.fetch(`/v1/orgs/${ORG}/teams/${p.teamId}/permissions/check`, {
      method: "POST",
      headers: pairOwnerAuth,
      body: JSON.stringify({ userId: p.userId, permission: p.permission }),
    });
    const body = (await res.json()) as { allowed?: boolean };
    if (res.status !== 200 || body.allowed !== expected(data, p.team, p.userId, p.permission as Permission))
      throw new Error(`check HTTP ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
  });
  if (hc.failed) throw new Error(`HTTP checks: ${hc.errors.join("; ")}`);
  const httpCheck = summarize(hc.latencies.slice(20)); // the first 20 warm up

  const ratio = (x: number, y: number) => round(x / y, 2);
  const part = (runs: PartsReply[]) =>
    `GET org-of ${avgPart(runs, "orgOfGet")} ms, cache lookup EVAL ${avgPart(runs, "cacheEval")} ms, grantsOnPath ${avgPart(runs, "grantsOnPath")} ms, SET ${avgPart(runs, "cacheSet")} ms, INCR ${avgPart(runs, "bump")} ms; controls: GET entry ${avgPart(runs, "entryGet")} ms, EVAL 'return 1' ${avgPart(runs, "evalReturn1")} ms, EVAL GET ${avgPart(runs, "evalGet")} ms`;
  const range = (xs: number[]) => `${round(Math.min(...xs), 2)}–${round(Math.max(...xs), 2)}`;
  const load = os
    .loadavg()
    .map((x) => round(x, 1))
    .join(" / ");

  notes.push(
    `seed: ${TEAMS} teams (max depth ${MAX_DEPTH}; ${data.deep.length} depth-20 leaves incl. the 20-level chain; a ${SUBTREE}-team subtree, ${secretInSubtree} of it secret), ${TEAMS * MEMBERS_PER_TEAM} memberships, ${USERS} users, in ${round(seedMs / 1000, 1)} s`,
    `check latencies are measured inside the Worker (createTeamService(createPlatform(env, ctx, logger)), sequential, one pool per request); ${rounds} rounds, each: redis GET, select 1, cached, uncached, depth, cold, parts — pooled; workerd's clock has whole ms, so p50/p99 are quantized and the ratios use means`,
    `per-round ratios (median, range): cached/GET ${round(median(roundRatio.cached), 2)} (${range(roundRatio.cached)}), uncached/select 1 ${round(median(roundRatio.uncached), 2)} (${range(roundRatio.uncached)}), depth p99 20/1 ${round(median(roundRatio.depth), 2)} (${range(roundRatio.depth)})`,
    `uncached = the org's permission-cache version bumped (untimed INCR) before every check; cold = ${coldN} teams never checked before (team→org cache misses too)`,
    `baselines per round: redis GET ${redisRuns.map((x) => x.mean).join(" / ")} ms, pg select 1 ${pgRuns.map((x) => x.mean).join(" / ")} ms; load average at the end ${load} on ${os.cpus().length} CPUs`,
    "one cached check = GET teams:org-of:<team> + EVAL (version + entry): 2 Redis round trips; uncached adds grantsOnPath + SET: 3 Redis + 1 Postgres",
    `breakdown (/__bench/teams-parts, sequential loops, mean of rounds) depth 1: ${part(parts1Runs)}`,
    `breakdown depth 20: ${part(parts20Runs)}`,
    `decisions checked against the seed in Node: ${mismatches} mismatch(es)`,
    `hierarchy over HTTP: ${httpNodes} nodes, ${round(httpBytes / 1024, 0)} KiB; as the subtree root's owner (hierarchy_2000_http_*) every secret team below costs a sequential visible() → grants() lookup (${secretInSubtree} here); as an org admin (…_http_admin_p50) none`,
    "http_check_*: POST /v1/orgs/{org}/teams/{id}/permissions/check from Node (auth, ownTeam's `select * from teams`, a fresh Postgres pool per request), not a target",
  );

  return {
    name: "teams",
    headline: "check_cached_mean_ms",
    figures: {
      check_cached_p50_ms: cached.p50,
      check_cached_p99_ms: cached.p99,
      check_cached_mean_ms: cached.mean,
      check_uncached_p50_ms: uncached.p50,
      check_uncached_p99_ms: uncached.p99,
      check_uncached_mean_ms: uncached.mean,
      check_cold_p50_ms: coldR.p50,
      check_cold_p99_ms: coldR.p99,
      check_cold_mean_ms: coldR.mean,
      uncached_depth1_p50_ms: d1u.p50,
      uncached_depth1_p99_ms: d1u.p99,
      uncached_depth1_mean_ms: d1u.mean,
      uncached_depth20_p50_ms: d20u.p50,
      uncached_depth20_p99_ms: d20u.p99,
      uncached_depth20_mean_ms: d20u.mean,
      cached_depth1_p99_ms: d1c.p99,
      cached_depth1_mean_ms: d1c.mean,
      cached_depth20_p99_ms: d20c.p99,
      cached_depth20_mean_ms: d20c.mean,
      redis_get_mean_ms: round(redisMean),
      redis_get_p50_ms: median(redisRuns.map((x) => x.p50)),
      redis_get_p99_ms: Math.max(...redisRuns.map((x) => x.p99)),
      pg_select1_mean_ms: round(pgMean),
      pg_select1_p50_ms: median(pgRuns.map((x) => x.p50)),
      pg_select1_p99_ms: Math.max(...pgRuns.map((x) => x.p99)),
      grants_on_path_depth1_mean_ms: avgPart(parts1Runs, "grantsOnPath"),
      grants_on_path_depth20_mean_ms: avgPart(parts20Runs, "grantsOnPath"),
      node_pg_select1_mean_ms: nodePg.select1.mean,
      node_grants_on_path_depth1_mean_ms: nodePg.depth1.mean,
      node_grants_on_path_depth20_mean_ms: nodePg.depth20.mean,
      pg_grants_on_path_depth1_exec_ms: nodePg.explain1.execution,
      pg_grants_on_path_depth1_plan_ms: nodePg.explain1.planning,
      pg_grants_on_path_depth20_exec_ms: nodePg.explain20.execution,
      pg_grants_on_path_depth20_plan_ms: nodePg.explain20.planning,
      hierarchy_2000_p50_ms: hier.p50,
      hierarchy_2000_mean_ms: hier.mean,
      hierarchy_2000_max_ms: hier.max,
      hierarchy_2000_http_p50_ms: hierHttp.p50,
      hierarchy_2000_http_max_ms: hierHttp.max,
      hierarchy_2000_http_admin_p50_ms: hierAdmin.p50,
      hierarchy_nodes: hier.nodes,
      pg_descendants_2000_exec_ms: nodePg.descendantsExplain.execution,
      node_descendants_2000_p50_ms: nodePg.descendants.p50,
      http_check_p50_ms: httpCheck.p50,
      http_check_p99_ms: httpCheck.p99,
      decision_mismatches: mismatches,
      checks:
        lat.cached.length +
        lat.uncached.length +
        lat.cold.length +
        lat.d1u.length +
        lat.d20u.length +
        lat.d1c.length +
        lat.d20c.length,
    },
    ratios: {
      "check_cached_mean / redis_get_mean": ratio(cached.mean, redisMean),
      "check_uncached_mean / pg_select1_mean": ratio(uncached.mean, pgMean),
      "check_cold_mean / pg_select1_mean": ratio(coldR.mean, pgMean),
      "uncached_depth20_p99 / uncached_depth1_p99": ratio(d20u.p99, d1u.p99),
      "uncached_depth20_mean / uncached_depth1_mean": ratio(d20u.mean, d1u.mean),
      "cached_depth20_p99 / cached_depth1_p99": ratio(d20c.p99, d1c.p99),
      "grants_on_path_depth20_mean / grants_on_path_depth1_mean": ratio(
        avgPart(parts20Runs, "grantsOnPath"),
        avgPart(parts1Runs, "grantsOnPath"),
      ),
      "hierarchy_2000_http_p50 / hierarchy_2000_http_admin_p50": ratio(hierHttp.p50, hierAdmin.p50),
    },
    targets: {
      "check_cached_mean / redis_get_mean": "<= 2",
      "check_uncached_mean / pg_select1_mean": "<= 3",
      "uncached_depth20_p99 / uncached_depth1_p99": "<= 1.5",
      decision_mismatches: "<= 0",
    },
    notes,
  };
}

/** The text of grantsOnPath (src/teams/hierarchy.ts), for EXPLAIN; keep in step with it. */
const GRANTS_ON_PATH_SQL = `with recursive up as (
       select t.id, t.name, t.parent_team_id, 0 as distance, array[t.id] as path from teams t where t.id = $1
       union all
       select t.id, t.name, t.parent_team_id, up.distance + 1, up.path || t.id from teams t join up on t.id = up.parent_team_id
       where not t.id = any(up.path) and up.distance < $3
     )
     select up.id as team_id, up.name, m.role, up.distance from up join team_memberships m on m.team_id = up.id and m.user_id = $2`;

/** The text of descendantRows (src/teams/hierarchy.ts), for EXPLAIN; keep in step with it. */
const DESCENDANTS_SQL = `with recursive down as (
       select t.*, 1 as depth, array[$1::text, t.id] as path from teams t where t.parent_team_id = $1
       union all
       select t.*, down.depth + 1, down.path || t.id from teams t join down on t.parent_team_id = down.id
       where not t.id = any(down.path) and down.depth < $2
     )
     select id, organization_id, name, description, parent_team_id, visibility, settings, created_by, created_at, updated_at, depth
     from down order by depth, created_at, id`;

/**
 * The Postgres side of grantsOnPath without workerd: sequential round trips from Node through the
 * same driver and WebSocket proxy (`select 1` vs the query at depth 1 and 20), and the server's own
 * planning / execution time (`EXPLAIN ANALYZE`, median of 20).
 */
async function nodeGrantsOnPath(ctx: BenchContext, d1: Pair, d20: Pair, subtreeRootId: string) {
  const pg = await connectPg(ctx.pgUrl);
  try {
    const q: Queryable = {
      query: async <T>(text: string, params?: readonly unknown[]) => {
        const r = await pg.query(text, params as unknown[] | undefined);
        return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
      },
    };
    const loop = async (fn: () => Promise<unknown>) => {
      await runBounded({ count: 50, timeLimitMs: 10_000 }, fn);
      const r = await runBounded({ count: 500, timeLimitMs: 20_000, signal: ctx.signal }, fn);
      if (r.failed) throw new Error(r.errors.join("; "));
      return summarize(r.latencies);
    };
    const explain = async (sql: string, params: unknown[], runs = 20) => {
      const plan: number[] = [];
      const exec: number[] = [];
      for (let i = 0; i < runs; i++) {
        const r = await pg.query<{ "QUERY PLAN": [{ "Planning Time": number; "Execution Time": number }] }>(
          `explain (analyze, format json) ${sql}`,
          params,
        );
        plan.push(r.rows[0]!["QUERY PLAN"][0]["Planning Time"]);
        exec.push(r.rows[0]!["QUERY PLAN"][0]["Execution Time"]);
      }
      return { planning: summarize(plan).p50, execution: summarize(exec).p50 };
    };
    return {
      select1: await loop(() => pg.query("select 1")),
      depth1: await loop(() => grantsOnPath(q, d1.teamId, d1.userId, MAX_DEPTH)),
      depth20: await loop(() => grantsOnPath(q, d20.teamId, d20.userId, MAX_DEPTH)),
      explain1: await explain(GRANTS_ON_PATH_SQL, [d1.teamId, d1.userId, MAX_DEPTH]),
      explain20: await explain(GRANTS_ON_PATH_SQL, [d20.teamId, d20.userId, MAX_DEPTH]),
      descendantsExplain: await explain(DESCENDANTS_SQL, [subtreeRootId, MAX_DEPTH], 5),
      descendants: await (async () => {
        const r = await runBounded({ count: 6, timeLimitMs: 20_000, signal: ctx.signal }, () =>
          descendantRows(q, subtreeRootId, MAX_DEPTH),
        );
        return summarize(r.latencies.slice(1));
      })(),
    };
  } finally {
    await pg.end();
  }
}

/** Whether team `i` is `root` or below it. */
function isUnder(data: Data, i: number, root: number): boolean {
  for (let t = i; t >= 0; t = data.teams[t]!.parent) if (t === root) return true;
  return false;
}
