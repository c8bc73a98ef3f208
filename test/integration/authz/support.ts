import { api } from "../support/api.ts";
import { as, json, newOrg } from "../teams/support.ts";

export { as, json, newOrg };

/** A resource reference. */
export type Ref = { type: "project" | "folder" | "document"; id: string };

/** Calls the authorization API as `user` of `org` (optionally an organization admin). */
export function authz(org: string, user: string, extra: { admin?: boolean; email?: string } = {}) {
  const scopes = ["teams:read", "teams:write", ...(extra.admin ? ["admin"] : [])];
  const call = (path: string, opts: { method?: string; body?: unknown } = {}) =>
    api(`/v1/orgs/${org}${path}`, { org, user, email: extra.email, scopes, ...opts });
  const q = (o: Record<string, string | number | undefined>) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(o)) if (v !== undefined) p.set(k, String(v));
    const s = p.toString();
    return s ? `?${s}` : "";
  };
  return {
    call,
    put: (r: Ref, parent: Ref | null) =>
      call(`/authz/resources/${r.type}/${r.id}`, { method: "PUT", body: { parent } }),
    grant: (r: Ref, subject: { type: "team" | "user"; id: string }, role: string) =>
      call(`/authz/resources/${r.type}/${r.id}/grants/${subject.type}/${subject.id}`, {
        method: "PUT",
        body: { role },
      }),
    revoke: (r: Ref, subject: { type: "team" | "user"; id: string }) =>
      call(`/authz/resources/${r.type}/${r.id}/grants/${subject.type}/${subject.id}`, { method: "DELETE" }),
    role: (name: string, permissions: string[]) =>
      call(`/authz/roles/${name}`, { method: "PUT", body: { permissions } }),
    checkRaw: (userId: string, permission: string, resource: Ref, atLeast?: string) =>
      call(`/authz/check${q({ atLeast })}`, { body: { userId, permission, resource } }),
    check: async (userId: string, permission: string, resource: Ref, atLeast?: string) =>
      json<{
        allowed: boolean;
        reason: string;
        cached: boolean;
        revision: string;
        source?: { grantId: string; resource: Ref; team?: { id: string }; via?: { id: string; distance: number } };
      }>(await call(`/authz/check${q({ atLeast })}`, { body: { userId, permission, resource } }), 200),
    users: (r: Ref, permission: string, more: Record<string, string | number | undefined> = {}) =>
      call(`/authz/resources/${r.type}/${r.id}/users${q({ permission, ...more })}`),
    resources: (
      userId: string,
      type: string,
      permission: string,
      more: Record<string, string | number | undefined> = {},
    ) => call(`/authz/users/${userId}/resources${q({ type, permission, ...more })}`),
    members: (teamId: string, more: Record<string, string | number | undefined> = {}) =>
      call(`/teams/${teamId}/effective-members${q(more)}`),
  };
}

/** A fresh organization whose admin (`boss`) registers a project `p`, folder `f` in it and document `d` in `f`. */
export async function orgWithTree() {
  const org = await newOrg();
  const boss = authz(org, "boss", { admin: true });
  const p: Ref = { type: "project", id: "p1" };
  const f: Ref = { type: "folder", id: "f1" };
  const d: Ref = { type: "document", id: "d1" };
  for (const [r, parent] of [
    [p, null],
    [f, p],
    [d, f],
  ] as const)
    await json(await boss.put(r, parent), 201);
  return { org, boss, p, f, d };
}
