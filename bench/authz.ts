import { connectPg } from "../scripts/lib/pg.ts";
import type { Queryable, QueryOptions } from "../src/platform/db.ts";
import { readAuthorizedUsers, readCheck } from "../src/teams/authz/store.ts";
import type { ResourceRef } from "../src/teams/authz/model.ts";
import { builtinPermissions, isBuiltinRole } from "../src/teams/authz/model.ts";
import { resourcePermissions } from "../src/teams/permissions.ts";
import type { WorkerLoopResult } from "./baseline.ts";
import { workerPgSelect1, workerRedisGet } from "./baseline.ts";
import type { BenchConfig, BenchContext, BenchResult } from "./harness.ts";
import { numArg } from "./harness.ts";
import type { LatencySummary } from "./lib.ts";
import { percentile, prng, round, summarize } from "./lib.ts";

/**
 * Teams as the authorization layer, at enterprise scale.
 *
 * Seed (SQL straight into this run's database): one `enterprise` organization; 10,000 teams in
 * trees of 20 (spine heights 1..20, so depth ≤ 20); 100,000 memberships over 20,000 users — one
 * root team `tb_0` has 10,000 members, the others 9 or 10; resources: 100 projects, 1,000 folders,
 * 1,000 subfolders, 100,000 documents (half in a folder, half in a subfolder); 1,000,000 document
 * grants (5 teams and 5 users per document, roles viewer/commenter/member/admin/owner, the first
 * two custom) plus 2,000 folder grants; a document `d_hot` granted to `tb_0` (10,000 users).
 *
 * Measured inside the Worker (`/__bench/authz`, the real `AuthzService`), in interleaved rounds with
 * the same-run baselines `/__bench/redis` (raw GET) and `/__bench/pg` (raw `select 1`):
 * - cached check: `--pairs` (256) random (user, permission, document) pairs — half for a member
 *   of a granted team or its ancestors, half random — filled, then `--cached-n` checks;
 * - uncached check: the same pairs, the entry deleted (untimed) before each of `--uncached-n` checks;
 * - list users: first page (50) of who may read `d_hot`, `--users-n` times;
 * - warm after a change: `--warm-pairs` (2,000) filled, one team (with its subtree) moved, rechecked;
 * - read-your-writes: `--ryw` (10,000) writes on `--lanes` (8) concurrent lanes (grant/revoke toggles, one in
 *   five a membership toggle), each followed by a check with its token; stale answers counted.
 * Answers of the sampled checks are compared with what the seed implies (computed here).
 * workerd's clock has whole milliseconds, so p50/p99 are quantized; means are the precise figure.
 */

export const config: BenchConfig = { wsProxyThread: true };

const ORG = "org_bench_authz";
const TEAMS = 10_000;
const USERS = 20_000;
const BIG = 10_000;
const MAX_DEPTH = 20;
const DOCS = 100_000;
const FOLDERS = 1_000;
const PROJECTS = 100;
const CUSTOM_ROLES: Record<string, string[]> = {
  viewer: ["documents.read"],
  commenter: ["documents.read", "documents.comment"],
};

// The seed's formulas, shared by the SQL below and the expectations here.
const docTeam = (i: number, j: number) => (i * 7 + j * 1009) % TEAMS;
const docUser = (i: number, j: number) => (i * 13 + j * 2003) % USERS;
const folderTeam = (i: number, j: number) => (i * 11 + j * 3001) % TEAMS;
const roleAt = (x: number) => {
  const m = x % 50;
  return m < 20 ? "viewer" : m < 30 ? "commenter" : m < 45 ? "member" : m < 49 ? "admin" : "owner";
};
const docRole = (i: number, j: number) => roleAt(i * 31 + j * 17);
const folderRole = (j: number) => (j === 0 ? "viewer" : "member");
const ROLE_SQL = (x: string) =>
  `case when (${x}) % 50 < 20 then 'viewer' when (${x}) % 50 < 30 then 'commenter' when (${x}) % 50 < 45 then 'member' when (${x}) % 50 < 49 then 'admin' else 'owner' end`;
const permsOf = (role: string) => (isBuiltinRole(role) ? builtinPermissions(role) : CUSTOM_ROLES[role]!);

interface Data {
  parent: number[];
  depth: number[];
  members: Set<string>[];
  byUser: Map<string, number[]>;
  subtree: (t: number) => number[];
}

function buildTeams(): Data {
  const rnd = prng(61_616);
  const parent: number[] = [];
  const depth: number[] = [];
  const add = (p: number) => {
    parent.push(p);
    depth.push(p < 0 ? 1 : depth[p]! + 1);
    return parent.length - 1;
  };
  add(-1); // tb_0: the big root team
  for (let k = 0; parent.length < TEAMS; k++) {
    const height = 1 + (k % MAX_DEPTH);
    const spine: number[] = [];
    for (let d = 0; d < height && parent.length < TEAMS; d++) spine.push(add(d === 0 ? -1 : spine[d - 1]!));
    for (let e = spine.length; e < 20 && parent.length < TEAMS; e++)
      add(height === 1 ? -1 : spine[Math.floor(rnd() * (spine.length - 1))]!);
  }
  const members: Set<string>[] = parent.map(() => new Set());
  for (let u = 0; u < BIG; u++) members[0]!.add(`u_${u}`);
  // 90,000 more: 9 per team, and a 10th for the first few, so the total is exactly 100,000.
  let extra = 100_000 - BIG - 9 * (TEAMS - 1);
  for (let t = 1; t < TEAMS; t++) {
    const want = 9 + (extra-- > 0 ? 1 : 0);
    while (members[t]!.size < want) members[t]!.add(`u_${Math.floor(rnd() * USERS)}`);
  }
  const byUser = new Map<string, number[]>();
  members.forEach((set, t) => {
    for (const u of set) {
      let l = byUser.get(u);
      if (!l) byUser.set(u, (l = []));
      l.push(t);
    }
  });
  const children = parent.map(() => [] as number[]);
  parent.forEach((p, t) => {
    if (p >= 0) children[p]!.push(t);
  });
  const subtree = (t: number) => {
    const out = [t];
    for (let i = 0; i < out.length; i++) out.push(...children[out[i]!]!);
    return out;
  };
  return { parent, depth, members, byUser, subtree };
}

/** Whether `user` reaches team `t` (a member of it or an ancestor). */
const reaches = (d: Data, user: string, t: number) => {
  for (let x = t; x >= 0; x = d.parent[x]!) if (d.members[x]!.has(user)) return true;
  return false;
};

/** What a check on document `i` must answer, from the formulas. */
function expected(d: Data, user: string, permission: string, i: number): boolean {
  const roles: string[] = [];
  for (let j = 0; j < 5; j++) {
    if (`u_${docUser(i, j)}` === user) roles.push(docRole(i, j));
    if (reaches(d, user, docTeam(i, j))) roles.push(docRole(i, j));
  }
  const f = i % FOLDERS;
  for (let j = 0; j < 2; j++) if (reaches(d, user, folderTeam(f, j))) roles.push(folderRole(j));
  return roles.some((r) => permsOf(r).includes(permission));
}

interface Counts {
  teams: number;
  members: number;
  grants: number;
  resources: number;
  depth: number;
}

async function seed(ctx: BenchContext, d: Data): Promise<Counts> {
  const pg = await connectPg(ctx.pgUrl);
  const t = (label: string, t0: number) => ctx.log(`  ${label}: ${Math.round(performance.now() - t0)} ms`);
  try {
    let t0 = performance.now();
    await pg.query("insert into organizations (id, plan_id) values ($1, 'enterprise')", [ORG]);
    const rows = d.parent.map((p, i) => ({ id: `tb_${i}`, p: p < 0 ? null : `tb_${p}`, n: `Team ${i}` }));
    for (let i = 0; i < rows.length; i += 2_000)
      await pg.query(
        `insert into teams (id, organization_id, name, parent_team_id, visibility, created_by)
         select e->>'id', $2, e->>'n', e->>'p', 'public', 'u_seed' from jsonb_array_elements($1::jsonb) e`,
        [JSON.stringify(rows.slice(i, i + 2_000)), ORG],
      );
    const mrows = d.members.flatMap((set, i) => [...set].map((u) => ({ t: `tb_${i}`, u })));
    for (let i = 0; i < mrows.length; i += 10_000)
      await pg.query(
        `insert into team_memberships (team_id, user_id, role, added_by)
         select e->>'t', e->>'u', 'member', 'u_seed' from jsonb_array_elements($1::jsonb) e`,
        [JSON.stringify(mrows.slice(i, i + 10_000))],
      );
    t("teams and memberships", t0);
    t0 = performance.now();
    for (const [name, perms] of Object.entries(CUSTOM_ROLES))
      await pg.query(
        "insert into authz_roles (organization_id, name, permissions, created_by) values ($1, $2, $3, 'u_seed')",
        [ORG, name, perms],
      );
    await pg.query(
      `insert into authz_resources (organization_id, type, id, parent_type, parent_id, created_by)
       select $1, 'project', 'p_' || i, null, null, 'u_seed' from generate_series(0, ${PROJECTS - 1}) i
       union all select $1, 'folder', 'f_' || i, 'project', 'p_' || (i % ${PROJECTS}), 'u_seed' from generate_series(0, ${FOLDERS - 1}) i`,
      [ORG],
    );
    await pg.query(
      `insert into authz_resources (organization_id, type, id, parent_type, parent_id, created_by)
       select $1, 'folder', 'g_' || i, 'folder', 'f_' || i, 'u_seed' from generate_series(0, ${FOLDERS - 1}) i`,
      [ORG],
    );
    await pg.query(
      `insert into authz_resources (organization_id, type, id, parent_type, parent_id, created_by)
       select $1, 'document', 'd_' || i, 'folder', case when i % 2 = 0 then 'g_' else 'f_' end || (i % ${FOLDERS}), 'u_seed'
       from generate_series(0, ${DOCS - 1}) i
       union all select $1, 'document', 'd_hot', 'folder', 'f_0', 'u_seed'`,
      [ORG],
    );
    t("resources", t0);
    t0 = performance.now();
    // 1,000,000 document grants in slices (one statement each), then the folder grants and d_hot's.
    for (let lo = 0; lo < DOCS; lo += 20_000) {
      await pg.query(
        `insert into authz_grants (id, organization_id, resource_type, resource_id, subject_type, subject_id, role, created_by)
         select 'g' || i || '_' || j || s, $1, 'document', 'd_' || i, case s when 't' then 'team' else 'user' end,
                case s when 't' then 'tb_' || ((i * 7 + j * 1009) % ${TEAMS}) else 'u_' || ((i * 13 + j * 2003) % ${USERS}) end,
                ${ROLE_SQL("i * 31 + j * 17")}, 'u_seed'
         from generate_series($2::int, $3::int) i, generate_series(0, 4) j, (values ('t'), ('u')) v(s)`,
        [ORG, lo, Math.min(DOCS, lo + 20_000) - 1],
      );
      ctx.log(`  grants: ${Math.min(DOCS, lo + 20_000) * 10}`);
    }
    await pg.query(
      `insert into authz_grants (id, organization_id, resource_type, resource_id, subject_type, subject_id, role, created_by)
       select 'gf' || i || '_' || j, $1, 'folder', 'f_' || i, 'team', 'tb_' || ((i * 11 + j * 3001) % ${TEAMS}),
              case j when 0 then 'viewer' else 'member' end, 'u_seed'
       from generate_series(0, ${FOLDERS - 1}) i, generate_series(0, 1) j
       union all select 'ghot', $1, 'document', 'd_hot', 'team', 'tb_0', 'viewer', 'u_seed'`,
      [ORG],
    );
    t("grants", t0);
    t0 = performance.now();
    await pg.query("analyze");
    t("analyze", t0);
    const c = (
      await pg.query<Counts>(
        `select (select count(*)::int from teams where organization_id = $1) as teams,
                (select count(*)::int from team_memberships m join teams t on t.id = m.team_id where t.organization_id = $1) as members,
                (select count(*)::int from authz_grants where organization_id = $1) as grants,
                (select count(*)::int from authz_resources where organization_id = $1) as resources,
                (with recursive x as (select id, 1 as depth from teams where parent_team_id is null and organization_id = $1
                   union all select t.id, x.depth + 1 from teams t join x on t.parent_team_id = x.id where x.depth < 50)
                 select max(depth)::int from x) as depth`,
        [ORG],
      )
    ).rows[0]!;
    if (c.teams !== TEAMS || c.members !== 100_000 || c.grants < 1_000_000 || c.depth > MAX_DEPTH)
      throw new Error(`seed check: ${JSON.stringify(c)}`);
    return c;
  } finally {
    await pg.end();
  }
}

/**
 * Server-side time of the two hot statements (`EXPLAIN ANALYZE`, median of `runs`): the check's
 * read and the first page of who-can, run through the service's own query functions from Node.
 * A named statement is explained as the Worker runs it — prepared, past the plan cache's first
 * five (custom) plans — and, for comparison, as plain text planned on every call.
 */
async function explainHot(ctx: BenchContext, pair: { userId: string; resource: ResourceRef }, runs = 15) {
  const pg = await connectPg(ctx.pgUrl);
  try {
    const plans: { planning: number; execution: number }[] = [];
    const prepared = new Set<string>();
    const literal = (v: unknown) => (typeof v === "number" ? String(v) : `'${String(v).replace(/'/g, "''")}'`);
    // Runs every statement under EXPLAIN ANALYZE, records the times, then runs it for real.
    const explaining = (asPrepared: boolean): Queryable => ({
      query: async <T>(text: string, params?: readonly unknown[], options?: QueryOptions) => {
        let sql = text;
        let values = params as unknown[] | undefined;
        if (asPrepared && options?.name) {
          sql = `execute ${options.name}(${(params ?? []).map(literal).join(", ")})`;
          values = undefined;
          if (!prepared.has(options.name)) {
            await pg.query(`prepare ${options.name} as ${text}`);
            prepared.add(options.name);
            for (let i = 0; i < 5; i++) await pg.query(sql);
          }
        }
        const e = await pg.query(`explain (analyze, format json) ${sql}`, values);
        const plan = (e.rows[0] as { "QUERY PLAN": [{ "Planning Time": number; "Execution Time": number }] })[
          "QUERY PLAN"
        ][0];
        plans.push({ planning: plan["Planning Time"], execution: plan["Execution Time"] });
        const r = await pg.query(sql, values);
        return { rows: r.rows as T[], rowCount: r.rowCount ?? 0 };
      },
    });
    const q = explaining(true);
    const med = (xs: number[]) => round(percentile(xs, 50));
    const take = async (fn: () => Promise<unknown>) => {
      plans.length = 0;
      for (let i = 0; i < runs; i++) await fn();
      return { planning: med(plans.map((p) => p.planning)), execution: med(plans.map((p) => p.execution)) };
    };
    return {
      check: await take(() => readCheck(q, ORG, pair.resource, pair.userId, MAX_DEPTH, 32)),
      checkUnprepared: await take(() => readCheck(explaining(false), ORG, pair.resource, pair.userId, MAX_DEPTH, 32)),
      users: await take(() =>
        readAuthorizedUsers(
          q,
          ORG,
          { type: "document", id: "d_hot" },
          "documents.read",
          ["member", "admin", "owner"],
          MAX_DEPTH,
          "",
          51,
        ),
      ),
    };
  } finally {
    await pg.end();
  }
}

interface CheckReply extends LatencySummary {
  mean: number;
  parts: Record<string, number>;
  ok: number;
  raw: number[];
  allowed: boolean[];
}

export default async function run(ctx: BenchContext): Promise<BenchResult> {
  const a = ctx.args;
  const nPairs = numArg(a, "pairs", 256);
  const cachedN = numArg(a, "cached-n", 3000);
  const uncachedN = numArg(a, "uncached-n", 1500);
  const usersN = numArg(a, "users-n", 200);
  const warmPairs = numArg(a, "warm-pairs", 1000);
  const rywTries = numArg(a, "ryw", 10_000);
  const rounds = Math.max(1, numArg(a, "rounds", 5));
  const redisN = numArg(a, "redis-n", 1500);
  const pgN = numArg(a, "pg-n", 1000);
  const notes: string[] = [];

  ctx.log(`seeding ${TEAMS} teams, 100,000 memberships, 1,002,001 grants (org ${ORG})`);
  const s0 = performance.now();
  const data = buildTeams();
  const counts = await seed(ctx, data);
  const seedMs = performance.now() - s0;

  const rnd = prng(4242);
  const pickDocUser = (i: number) => {
    if (rnd() < 0.5) return `u_${Math.floor(rnd() * USERS)}`;
    // A member of one of the granted teams or of an ancestor of it.
    let t = docTeam(i, Math.floor(rnd() * 5));
    while (data.parent[t]! >= 0 && rnd() < 0.3) t = data.parent[t]!;
    const ms = [...data.members[t]!];
    return ms[Math.floor(rnd() * ms.length)]!;
  };
  const makePairs = (n: number) =>
    Array.from({ length: n }, () => {
      const i = Math.floor(rnd() * DOCS);
      const userId = pickDocUser(i);
      const permission = resourcePermissions[Math.floor(rnd() * resourcePermissions.length)]!;
      return { i, pair: { userId, permission, resource: { type: "document", id: `d_${i}` } as ResourceRef } };
    });
  const sample = makePairs(nPairs);
  const pairs = sample.map((s) => s.pair);

  const per = (total: number) => Math.max(1, Math.ceil(total / rounds));
  const call = <T>(body: Record<string, unknown>) =>
    ctx.worker.json<T>("/__bench/authz", { organizationId: ORG, ...body });
  ctx.log("warm-up");
  await workerRedisGet(ctx.worker, 50);
  await workerPgSelect1(ctx.worker, 20);
  await call<CheckReply>({ mode: "check", pairs: pairs.slice(0, 5), n: 5 });

  const lat = { cached: [] as number[], uncached: [] as number[], users: [] as number[] };
  const means = { cached: [] as number[], uncached: [] as number[], users: [] as number[] };
  const redisRuns: WorkerLoopResult[] = [];
  const pgRuns: WorkerLoopResult[] = [];
  let mismatches = 0;
  const parts: Record<string, number[]> = {};
  let usersFirst: { users: number; sources: number; next: boolean } | undefined;
  let usersTotal = 0;
  for (let r = 0; r < rounds && !ctx.signal.aborted; r++) {
    ctx.log(
      `round ${r + 1}/${rounds}: redis ×${per(redisN)}, select 1 ×${per(pgN)}, cached ×${per(cachedN)}, uncached ×${per(uncachedN)}, users ×${per(usersN)}`,
    );
    redisRuns.push(await workerRedisGet(ctx.worker, per(redisN)));
    pgRuns.push(await workerPgSelect1(ctx.worker, per(pgN)));
    const c = await call<CheckReply>({ mode: "check", cache: "cached", pairs, n: per(cachedN) });
    const u = await call<CheckReply>({ mode: "check", cache: "uncached", pairs, n: per(uncachedN) });
    const us = await call<CheckReply & { first: typeof usersFirst; total: number }>({
      mode: "users",
      resource: { type: "document", id: "d_hot" },
      permission: "documents.read",
      limit: 50,
      n: per(usersN),
    });
    lat.cached.push(...c.raw);
    lat.uncached.push(...u.raw);
    lat.users.push(...us.raw);
    means.cached.push(c.mean);
    means.uncached.push(u.mean);
    means.users.push(us.mean);
    for (const [k, v] of Object.entries(u.parts ?? {})) (parts[k] ??= []).push(v);
    usersFirst = us.first;
    usersTotal = us.total;
    if (r === 0)
      mismatches += sample.filter(
        (s, k) => c.allowed[k] !== expected(data, s.pair.userId, s.pair.permission, s.i),
      ).length;
  }
  const weighted = (runs: WorkerLoopResult[]) =>
    runs.reduce((t, x) => t + x.mean * x.ok, 0) /
    Math.max(
      1,
      runs.reduce((t, x) => t + x.ok, 0),
    );
  const avg = (xs: number[]) => xs.reduce((t, x) => t + x, 0) / Math.max(1, xs.length);
  const redisMean = weighted(redisRuns);
  const pgMean = weighted(pgRuns);
  const redisP99 = Math.max(...redisRuns.map((x) => x.p99));
  const pgP99 = Math.max(...pgRuns.map((x) => x.p99));
  const cached = summarize(lat.cached);
  const uncached = summarize(lat.uncached);
  const usersP95 = percentile(lat.users, 95);

  ctx.log("EXPLAIN ANALYZE of the check's read and the first who-can page, from Node");
  const explain = await explainHot(ctx, pairs[0]!);

  // ─── one team's change: how much of the cache stays warm ───
  ctx.log(`warm after a change: ${warmPairs} pairs filled, one team moved, rechecked`);
  const warmSample = makePairs(warmPairs).map((s) => s.pair);
  // A team with a subtree below it (a spine team), moved to the root.
  let moved = 1;
  for (let t = 1; t < TEAMS; t++)
    if (data.parent[t]! >= 0 && data.subtree(t).length >= 5) {
      moved = t;
      break;
    }
  const warm = await call<{ pairs: number; filled: number; warmAfterMove: number; warmAfterMember: number }>({
    mode: "warm",
    pairs: warmSample,
    move: { teamId: `tb_${moved}`, newParentId: null },
    member: { teamId: `tb_${docTeam(1, 0)}`, userId: "u_new_member" },
  });

  // ─── read-your-writes under concurrent writes ───
  const nLanes = numArg(a, "lanes", 8);
  ctx.log(`read-your-writes: ${rywTries} writes on ${nLanes} lanes, each followed by a check with its token`);
  // In batches (a request must answer within Node fetch's 300 s); each batch has fresh lane users,
  // so every lane starts from "no grant, no membership".
  const ryw = { tries: 0, stale: 0, writes: 0, memberWrites: 0, errors: [] as string[], ms: 0 };
  const batch = numArg(a, "ryw-batch", 1000);
  for (let b = 0; ryw.tries < rywTries && !ctx.signal.aborted; b++) {
    const lanes = Array.from({ length: nLanes }, (_, k) => ({
      doc: { type: "document", id: `d_${50_000 + k}` },
      user: `u_ryw_${b}_${k}`,
      teamId: `tb_${docTeam(50_000 + k, 0)}`,
      memberUser: `u_rywm_${b}_${k}`,
    }));
    try {
      const r = await call<typeof ryw>({ mode: "ryw", tries: Math.min(batch, rywTries - ryw.tries), lanes });
      ryw.tries += r.tries;
      ryw.stale += r.stale;
      ryw.writes += r.writes;
      ryw.memberWrites += r.memberWrites;
      ryw.ms += r.ms;
      ryw.errors.push(...r.errors.slice(0, 3));
    } catch (err) {
      ryw.errors.push(`batch ${b}: ${err instanceof Error ? err.message : String(err)}`);
      break;
    }
  }
  if (ryw.errors.length) notes.push(`ryw errors: ${ryw.errors.join("; ")}`);

  notes.push(
    `seed ${round(seedMs / 1000, 1)} s: ${JSON.stringify(counts)}; baselines in the same Worker: Redis GET mean ${round(redisMean)} ms (p99 ${redisP99}), select 1 mean ${round(pgMean)} ms (p99 ${pgP99})`,
    `cached check mean ${round(avg(means.cached))} ms p50/p99 ${cached.p50}/${cached.p99}; uncached mean ${round(avg(means.uncached))} ms p50/p99 ${uncached.p50}/${uncached.p99}; list-users first page mean ${round(avg(means.users))} ms p95 ${usersP95}`,
    `uncached parts, each alone (means): ${Object.entries(parts)
      .map(([k, v]) => `${k} ${round(avg(v))} ms`)
      .join(", ")}`,
    `list-users on d_hot: first page ${usersFirst?.users} users (${usersFirst?.sources} sources), ${usersTotal} authorized in all`,
    `warm after moving tb_${moved} (${data.subtree(moved).length} teams): ${warm.warmAfterMove}/${warm.filled} of ${warm.pairs}; then after a membership: ${warm.warmAfterMember}/${warm.filled}`,
    `read-your-writes: ${ryw.tries} tries (${ryw.writes} grant/revoke, ${ryw.memberWrites} membership) in ${round(ryw.ms / 1000, 1)} s, ${ryw.stale} stale`,
    `server time (EXPLAIN ANALYZE, median): check read, prepared as the Worker runs it, planning ${explain.check.planning} ms + execution ${explain.check.execution} ms (planned on every call: ${explain.checkUnprepared.planning} + ${explain.checkUnprepared.execution} ms); who-can first page ${explain.users.planning} + ${explain.users.execution} ms`,
    "workerd's clock has whole milliseconds: p50/p99 of sub-millisecond operations are quantized; the mean ratios are the precise figures",
  );
  const ratio = (x: number, y: number) => round(x / Math.max(y, 1e-9));
  return {
    name: "authz",
    headline: "cached_check_mean / redis_get_mean",
    figures: {
      teams: counts.teams,
      memberships: counts.members,
      grants: counts.grants,
      resources: counts.resources,
      seed_s: round(seedMs / 1000, 1),
      redis_get_mean_ms: round(redisMean),
      redis_get_p99_ms: redisP99,
      select1_mean_ms: round(pgMean),
      select1_p99_ms: pgP99,
      cached_check_mean_ms: round(avg(means.cached)),
      cached_check_p99_ms: cached.p99,
      uncached_check_mean_ms: round(avg(means.uncached)),
      uncached_check_p99_ms: uncached.p99,
      list_users_first_page_mean_ms: round(avg(means.users)),
      list_users_first_page_p95_ms: usersP95,
      list_users_authorized_total: usersTotal,
      check_mismatches: mismatches,
      ryw_tries: ryw.tries,
      ryw_stale: ryw.stale,
      check_sql_planning_ms: explain.check.planning,
      check_sql_execution_ms: explain.check.execution,
      check_sql_unprepared_planning_ms: explain.checkUnprepared.planning,
      check_sql_unprepared_execution_ms: explain.checkUnprepared.execution,
      users_sql_planning_ms: explain.users.planning,
      users_sql_execution_ms: explain.users.execution,
      warm_after_team_move_pct: round((100 * warm.warmAfterMove) / Math.max(1, warm.filled), 2),
      warm_after_membership_pct: round((100 * warm.warmAfterMember) / Math.max(1, warm.filled), 2),
    },
    ratios: {
      "cached_check_mean / redis_get_mean": ratio(avg(means.cached), redisMean),
      "cached_check_p99 / redis_get_p99": ratio(cached.p99, redisP99),
      "uncached_check_mean / select1_mean": ratio(avg(means.uncached), pgMean),
      "uncached_check_p99 / select1_p99": ratio(uncached.p99, pgP99),
      "list_users_p95 / select1_mean": ratio(usersP95, pgMean),
      "list_users_mean / select1_mean": ratio(avg(means.users), pgMean),
    },
    targets: {
      "cached_check_p99 / redis_get_p99": "<= 2",
      "uncached_check_p99 / select1_p99": "<= 3",
      "list_users_p95 / select1_mean": "<= 20",
      check_mismatches: "<= 0",
      ryw_stale: "<= 0",
      ryw_tries: ">= 10000",
      warm_after_team_move_pct: ">= 99",
    },
    notes,
  };
}
