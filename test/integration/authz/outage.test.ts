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
    await check(env, "bo"); // the first miss caches the team's organization, the second the entry
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
