import { api } from "../support/api.ts";
import { withDb } from "../support/backends.ts";

/** A unique organization on the enterprise plan (the free plan allows only 3 teams). */
export async function newOrg(): Promise<string> {
  const org = `torg_${crypto.randomUUID().slice(0, 8)}`;
  await withDb((db) => db.query("insert into organizations (id, plan_id) values ($1, 'enterprise')", [org]));
  return org;
}

const json = async <T>(res: Response, status: number): Promise<T> => {
  if (res.status !== status) throw new Error(`expected ${status}, got ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
};

/** Calls the teams API as `user` of `org`. */
export function as(org: string, user: string, extra: { email?: string; admin?: boolean } = {}) {
  const scopes = ["teams:read", "teams:write", ...(extra.admin ? ["admin"] : [])];
  const call = (path: string, opts: { method?: string; body?: unknown } = {}) =>
    api(`/v1/orgs/${org}${path}`, { org, user, email: extra.email, scopes, ...opts });
  return {
    call,
    createTeam: async (name: string, more: Record<string, unknown> = {}) =>
      json<{ id: string; name: string; parentTeamId?: string }>(await call("/teams", { body: { name, ...more } }), 201),
    addMember: (teamId: string, userId: string, role = "member") =>
      call(`/teams/${teamId}/members`, { body: { userId, role } }),
    check: async (teamId: string, userId: string, permission: string) =>
      json<{ allowed: boolean; reason: string }>(
        await call(`/teams/${teamId}/permissions/check`, { body: { userId, permission } }),
        200,
      ),
    move: (teamId: string, newParentId: string | null) => call(`/teams/${teamId}/move`, { body: { newParentId } }),
  };
}

export { json };
