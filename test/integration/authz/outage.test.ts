import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ApiOptions } from "../support/api.ts";
import { apiWith } from "../support/api.ts";
import { withoutPostgres } from "../support/backends.ts";
import { as, json, newOrg } from "../teams/support.ts";
import { orgWithTree } from "./support.ts";

// Issue [5/6]: during a Postgres outage, a permission check whose answer is in the Redis cache is
// still answered (and the same); one that is not, or whose `atLeast` is newer than the cache, is a
// 503 with Retry-After — never a stale answer, never a 500.

const admin = (org: string) => ({ org, user: "boss", scopes: ["teams:read", "teams:write", "admin"] });

/** Calls `path` of `org` with `bindings` (waiting for the cache fill); returns status, Retry-After and body. */
async function call(bindings: object, org: string, path: string, opts: ApiOptions) {
  const res = await apiWith(bindings, `/v1/orgs/${org}${path}`, opts);
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as unknown };
}

const unavailable = {
  status: 503,
  retryAfter: "1",
  body: { error: expect.objectContaining({ code: "service_unavailable", message: "database unavailable" }) },
};

describe("permission checks while Postgres is down", () => {
  it("answers a cached resource check unchanged, and an uncached or newer-than-cached one with 503", async () => {
    const { org, boss, f, d } = await orgWithTree();
    await json(await boss.grant(f, { type: "user", id: "vic" }, "member"), 201);
    const check = (bindings: object, resource = d, atLeast?: string) =>
      call(bindings, org, `/authz/check${atLeast ? `?atLeast=${atLeast}` : ""}`, {
        ...admin(org),
        body: { userId: "vic", permission: "documents.write", resource },
      });
    const fresh = await check(env);
    expect(fresh).toMatchObject({ status: 200, body: { allowed: true, cached: false } });

    const down = await check(withoutPostgres());
    expect(down).toEqual({ ...fresh, body: { ...(fresh.body as object), cached: true } });
    // The token of the answer itself is served from the cache too.
    const token = (fresh.body as { revision: string }).revision;
    expect(await check(withoutPostgres(), d, token)).toMatchObject({ status: 200, body: { cached: true } });

    expect(await check(withoutPostgres(), f)).toMatchObject(unavailable); // never cached
    // A write the cached entry does not depend on: its token is newer than the entry, so only
    // Postgres can answer (read-your-writes), and Postgres is down.
    const other = await json<{ revision: string }>(await boss.grant(d, { type: "user", id: "zed" }, "member"), 201);
    expect(await check(withoutPostgres(), d, other.revision)).toMatchObject(unavailable);
  });

  it("answers a cached team check unchanged, and an uncached one with 503", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const team = await ana.createTeam("T");
    await json(await ana.addMember(team.id, "bo"), 201);
    const check = (bindings: object, userId: string) =>
      call(bindings, org, `/teams/${team.id}/permissions/check`, {
        ...admin(org),
        body: { userId, permission: "team.invite" },
      });
    // One miss is enough: creating the team cached its organization, so the first check caches its answer.
    const fresh = await check(env, "bo");
    expect(fresh).toMatchObject({ status: 200, body: { allowed: false } });
    expect(await check(withoutPostgres(), "bo")).toEqual(fresh);
    expect(await check(withoutPostgres(), "ana")).toMatchObject(unavailable); // never cached
    // Asked in another organization, the team is not found, outage or not (its organization is cached).
    const other = await newOrg();
    const stranger = await call(withoutPostgres(), other, `/teams/${team.id}/permissions/check`, {
      ...admin(other),
      body: { userId: "bo", permission: "team.invite" },
    });
    expect(stranger).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
    // A user's own checks, member or not (the team is private: it exists for everyone), and their
    // effective permissions: the cached answers as they see them.
    const own = (bindings: object, user: string, path = "/permissions/check") =>
      call(bindings, org, `/teams/${team.id}${path}`, {
        org,
        user,
        scopes: ["teams:read"],
        ...(path === "/permissions/check" ? { body: { userId: user, permission: "team.read" } } : {}),
      });
    expect(await own(env, "bo")).toMatchObject({ status: 200, body: { allowed: true } });
    expect(await own(withoutPostgres(), "bo")).toEqual(await own(env, "bo"));
    await own(env, "cy");
    const outsider = await own(env, "cy");
    expect(outsider).toMatchObject({ status: 200, body: { allowed: false } });
    expect(await own(withoutPostgres(), "cy")).toEqual(outsider);
    const effective = await own(env, "bo", "/permissions/bo");
    expect(effective).toMatchObject({ status: 200, body: { role: "member" } });
    expect(await own(withoutPostgres(), "bo", "/permissions/bo")).toEqual(effective);
  });
});

// The viewer's reach — which secret teams they may see — is their own cached team check (a user
// reaches a team exactly when they hold a grant on its path), under the same stamps: so a check by
// someone other than the checked user, whose reason involves a secret team, is answered while
// Postgres is down once both are cached; redacted exactly as with Postgres up; 503 when the
// viewer's reach is not cached, or was made stale by a membership change.
describe("checks that need the viewer's reach while Postgres is down", () => {
  /** Asks three times with Postgres up (every cache fill a check makes, its own and the viewer's reach, has landed); the last answer. */
  async function warm(ask: (bindings: object) => Promise<Awaited<ReturnType<typeof call>>>) {
    await ask(env);
    await ask(env);
    return ask(env);
  }

  it("answers another viewer's team check from the cache, naming a secret team only to those who reach it", async () => {
    const org = await newOrg();
    const ana = as(org, "ana");
    const secret = await ana.createTeam("Skunkworks", { visibility: "secret" });
    const child = await ana.createTeam("Open child", { parentTeamId: secret.id, visibility: "public" });
    await json(await ana.addMember(secret.id, "bo", "admin"), 201); // bo's role flows into the child
    await json(await ana.addMember(secret.id, "dan"), 201);
    const viewer = (user: string) => ({ org, user, scopes: ["teams:read"] });
    const check = (bindings: object, user: string, teamId = child.id) =>
      call(bindings, org, `/teams/${teamId}/permissions/check`, {
        ...viewer(user),
        body: { userId: "bo", permission: "team.invite" },
      });

    // eve reaches nothing: the reason is redacted, during the outage as before it.
    const forEve = await warm((b) => check(b, "eve"));
    expect(forEve).toMatchObject({ status: 200, body: { allowed: true } });
    expect(JSON.stringify(forEve.body)).not.toContain(secret.id);
    expect(JSON.stringify(forEve.body)).not.toContain("Skunkworks");
    expect(await check(withoutPostgres(), "eve")).toEqual(forEve);
    // Her view of bo's effective permissions, sources redacted the same way.
    const effective = (bindings: object) => call(bindings, org, `/teams/${child.id}/permissions/bo`, viewer("eve"));
    const effEve = await warm(effective);
    expect(effEve).toMatchObject({ status: 200, body: { role: "admin" } });
    expect(JSON.stringify(effEve.body)).not.toContain(secret.id);
    expect(await effective(withoutPostgres())).toEqual(effEve);

    // dan reaches the secret team: he is told its name, during the outage as before it.
    const forDan = await warm((b) => check(b, "dan"));
    expect(JSON.stringify(forDan.body)).toContain(secret.id);
    expect(await check(withoutPostgres(), "dan")).toEqual(forDan);
    const danOnSecret = await warm((b) => check(b, "dan", secret.id));
    expect(danOnSecret).toMatchObject({ status: 200, body: { allowed: true } });
    expect(await check(withoutPostgres(), "dan", secret.id)).toEqual(danOnSecret);
    // The secret team itself does not exist for eve, outage or not (bo's entry on it is warm now).
    const onSecret = await warm((b) => check(b, "eve", secret.id));
    expect(onSecret).toMatchObject({ status: 404, body: { error: { code: "not_found" } } });
    expect(await check(withoutPostgres(), "eve", secret.id)).toMatchObject({
      status: 404,
      body: { error: { code: "not_found", message: (onSecret.body as { error: { message: string } }).error.message } },
    });

    // fay's reach was never read: bo's entry is warm, but only Postgres could say what she sees.
    expect(await check(withoutPostgres(), "fay")).toMatchObject(unavailable);
    expect(await check(withoutPostgres(), "fay", secret.id)).toMatchObject(unavailable);

    // eve joins the secret team (Postgres up): her cached reach is stale, never used.
    await json(await ana.addMember(secret.id, "eve"), 201);
    expect(await check(withoutPostgres(), "eve")).toMatchObject(unavailable);
    const eveNow = await warm((b) => check(b, "eve"));
    expect(JSON.stringify(eveNow.body)).toContain(secret.id);
    expect(await check(withoutPostgres(), "eve")).toEqual(eveNow);
    // dan leaves it: his cached reach would name the team; it is not used.
    expect((await ana.call(`/teams/${secret.id}/members/dan`, { method: "DELETE" })).status).toBe(200);
    expect(await check(withoutPostgres(), "dan")).toMatchObject(unavailable);
    expect(await check(withoutPostgres(), "dan", secret.id)).toMatchObject(unavailable);
    const danNow = await warm((b) => check(b, "dan"));
    expect(JSON.stringify(danNow.body)).not.toContain(secret.id);
    expect(await check(withoutPostgres(), "dan")).toEqual(danNow);
  });

  it("answers a resource check whose reason names a secret team, redacted for a viewer who does not reach it", async () => {
    const { org, boss, d } = await orgWithTree();
    const ana = as(org, "ana");
    const secret = await ana.createTeam("Hidden", { visibility: "secret" });
    await json(await boss.grant(d, { type: "team", id: secret.id }, "member"), 201);
    await json(await ana.addMember(secret.id, "kit"), 201);
    const check = (bindings: object, user: string, atLeast?: string) =>
      call(bindings, org, `/authz/check${atLeast ? `?atLeast=${atLeast}` : ""}`, {
        org,
        user,
        scopes: ["teams:read"],
        body: { userId: "kit", permission: "documents.write", resource: d },
      });

    // sid does not reach the team: "a team you cannot see", during the outage as before it.
    const forSid = await warm((b) => check(b, "sid"));
    expect(forSid).toMatchObject({ status: 200, body: { allowed: true, cached: true } });
    expect((forSid.body as { reason: string }).reason).toContain("a team you cannot see");
    expect(JSON.stringify(forSid.body)).not.toContain(secret.id);
    expect(JSON.stringify(forSid.body)).not.toContain("Hidden");
    expect(await check(withoutPostgres(), "sid")).toEqual(forSid);
    // Its own token is honoured from the cache too.
    const token = (forSid.body as { revision: string }).revision;
    expect(await check(withoutPostgres(), "sid", token)).toEqual(forSid);
    // ana owns it: she is told its name.
    const forAna = await warm((b) => check(b, "ana"));
    expect(JSON.stringify(forAna.body)).toContain(secret.id);
    expect(await check(withoutPostgres(), "ana")).toEqual(forAna);
    // fay's reach was never read: 503, not a guess either way.
    expect(await check(withoutPostgres(), "fay")).toMatchObject(unavailable);
    // A write elsewhere (its token newer than sid's cached reach, which it leaves valid); an admin's
    // check refreshes kit's entry past it. Given that token, sid's reach is too old: only Postgres
    // could answer. Without it, the cached answer stands.
    const elsewhere = await json<{ revision: string }>(await boss.grant(d, { type: "user", id: "zed" }, "member"), 201);
    const byAdmin = (bindings: object) =>
      call(bindings, org, `/authz/check?atLeast=${elsewhere.revision}`, {
        ...admin(org),
        body: { userId: "kit", permission: "documents.write", resource: d },
      });
    expect(await byAdmin(env)).toMatchObject({ status: 200, body: { cached: false } });
    expect(await byAdmin(withoutPostgres())).toMatchObject({ status: 200, body: { cached: true } });
    expect(await check(withoutPostgres(), "sid", elsewhere.revision)).toMatchObject(unavailable);
    const sidLater = await check(withoutPostgres(), "sid");
    expect(sidLater).toMatchObject({ status: 200, body: { reason: (forSid.body as { reason: string }).reason } });
    expect(JSON.stringify(sidLater.body)).not.toContain(secret.id);

    // sid joins the team (Postgres up): neither his stale reach nor an answer older than the token.
    const joined = await ana.addMember(secret.id, "sid");
    expect(joined.status).toBe(201);
    const w = joined.headers.get("x-authz-revision")!;
    expect(await check(withoutPostgres(), "sid")).toMatchObject(unavailable);
    expect(await check(withoutPostgres(), "sid", w)).toMatchObject(unavailable);
    const sidNow = await warm((b) => check(b, "sid", w));
    expect(JSON.stringify(sidNow.body)).toContain(secret.id);
    expect(await check(withoutPostgres(), "sid", w)).toEqual(sidNow);
    // ana leaves it (kit stays): her cached reach would name it; it is not used.
    await json(await ana.addMember(secret.id, "kim", "owner"), 201);
    const left = await as(org, "kim").call(`/teams/${secret.id}/members/ana`, { method: "DELETE" });
    expect(left.status).toBe(200);
    const w2 = left.headers.get("x-authz-revision")!;
    expect(await check(withoutPostgres(), "ana")).toMatchObject(unavailable);
    expect(await check(withoutPostgres(), "ana", w2)).toMatchObject(unavailable);
    const anaNow = await warm((b) => check(b, "ana", w2));
    expect(JSON.stringify(anaNow.body)).not.toContain(secret.id);
    expect(await check(withoutPostgres(), "ana", w2)).toEqual(anaNow);
  });
});
