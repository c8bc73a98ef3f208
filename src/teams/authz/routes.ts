import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { hasScope } from "../../platform/auth.ts";
import type { AppEnv } from "../../platform/create-app.ts";
import { createRouter, requireScope } from "../../platform/create-app.ts";
import { decodeKeyCursor, encodeKeyCursor } from "../../platform/cursor.ts";
import { authErrors, jsonBody, jsonResponse } from "../../platform/openapi.ts";
import { REVISION_HEADER } from "./revision.ts";
import { AuthzService } from "./service.ts";
import {
  atLeastQuery,
  checkBodySchema,
  checkResultSchema,
  effectiveMemberSchema,
  grantSchema,
  membersQuery,
  pageQuery,
  putRoleSchema,
  resourceParams,
  resourceRefSchema,
  resourcesQuery,
  revisionField,
  roleSchema,
  sourceSchema,
  subjectParams,
  usersQuery,
} from "./schemas.ts";

const id = z.string().min(1).max(200);
const org = z.object({ organizationId: id });
const read = requireScope("teams:read");
const write = requireScope("teams:write");
const tags = ["authorization"];

/** The service for this request (the caller's visibility and admin rights). */
export function authzService(c: Context<AppEnv>): AuthzService {
  const p = c.var.platform;
  const principal = c.var.principal;
  return new AuthzService({
    db: p.db,
    redis: p.redis,
    keys: p.keys,
    config: p.config.teams,
    viewer: { userId: principal.userId, orgAdmin: hasScope(principal, "admin"), email: principal.email },
    waitUntil: (x) => p.waitUntil(x),
  });
}

const ref = (p: { type: "project" | "folder" | "document"; resourceId: string }) => ({
  type: p.type,
  id: p.resourceId,
});

/** JSON with the revision token in the header too. */
function withRevision<T extends { revision: string }, S extends 200 | 201>(c: Context<AppEnv>, body: T, status: S) {
  c.header(REVISION_HEADER, body.revision);
  return c.json(body, status);
}

const cursorOut = (key: string | null) => (key === null ? null : encodeKeyCursor(key));

const r = {
  permissions: createRoute({
    method: "get",
    path: "/v1/orgs/{organizationId}/authz/permissions",
    tags,
    middleware: [read] as const,
    summary: "The permission catalog, resource types and built-in roles",
    request: { params: org },
    responses: {
      200: jsonResponse(
        z.object({
          permissions: z.array(
            z.object({ name: z.string(), description: z.string(), appliesTo: z.enum(["resources", "teams"]) }),
          ),
          resourceTypes: z.array(z.object({ type: z.string(), parents: z.array(z.string()) })),
          builtinRoles: z.array(z.object({ name: z.string(), permissions: z.array(z.string()) })),
        }),
        "The catalog",
      ),
      ...authErrors,
    },
  }),
  roles: createRoute({
    method: "get",
    path: "/v1/orgs/{organizationId}/authz/roles",
    tags,
    middleware: [read] as const,
    summary: "Roles of the organization (built-ins with extensions, then custom roles)",
    request: { params: org },
    responses: { 200: jsonResponse(z.object({ roles: z.array(roleSchema) }), "Roles"), ...authErrors },
  }),
  putRole: createRoute({
    method: "put",
    path: "/v1/orgs/{organizationId}/authz/roles/{name}",
    tags,
    middleware: [write] as const,
    summary: "Define a custom role or extend a built-in one (organization admins; built-ins are never weakened)",
    request: { params: org.extend({ name: z.string().min(1).max(64) }), body: jsonBody(putRoleSchema) },
    responses: {
      200: jsonResponse(z.object({ role: roleSchema, revision: revisionField }), "Replaced"),
      201: jsonResponse(z.object({ role: roleSchema, revision: revisionField }), "Created"),
      ...authErrors,
    },
  }),
  deleteRole: createRoute({
    method: "delete",
    path: "/v1/orgs/{organizationId}/authz/roles/{name}",
    tags,
    middleware: [write] as const,
    summary: "Delete a custom role (409 while grants use it) or a built-in's extension",
    request: { params: org.extend({ name: z.string().min(1).max(64) }) },
    responses: {
      200: jsonResponse(z.object({ deleted: z.boolean(), revision: revisionField }), "Deleted"),
      409: { description: "In use" },
      ...authErrors,
    },
  }),
  putResource: createRoute({
    method: "put",
    path: "/v1/orgs/{organizationId}/authz/resources/{type}/{resourceId}",
    tags,
    middleware: [write] as const,
    summary: "Register a resource or move it (projects are roots; folders and documents live in a project or folder)",
    request: {
      params: resourceParams,
      body: jsonBody(z.object({ parent: resourceRefSchema.nullable() }).strict()),
    },
    responses: {
      200: jsonResponse(
        z.object({
          resource: resourceRefSchema.extend({ parent: resourceRefSchema.nullable() }),
          revision: revisionField,
        }),
        "Moved or unchanged",
      ),
      201: jsonResponse(
        z.object({
          resource: resourceRefSchema.extend({ parent: resourceRefSchema.nullable() }),
          revision: revisionField,
        }),
        "Registered",
      ),
      409: { description: "Cycle" },
      ...authErrors,
    },
  }),
  deleteResource: createRoute({
    method: "delete",
    path: "/v1/orgs/{organizationId}/authz/resources/{type}/{resourceId}",
    tags,
    middleware: [write] as const,
    summary: "Remove a resource and its grants (409 while it contains others)",
    request: { params: resourceParams },
    responses: {
      200: jsonResponse(z.object({ deleted: z.boolean(), revision: revisionField }), "Deleted"),
      ...authErrors,
    },
  }),
  grants: createRoute({
    method: "get",
    path: "/v1/orgs/{organizationId}/authz/resources/{type}/{resourceId}/grants",
    tags,
    middleware: [read] as const,
    summary: "Grants on the resource itself (viewer needs documents.read)",
    request: { params: resourceParams, query: pageQuery.omit({ atLeast: true }) },
    responses: {
      200: jsonResponse(z.object({ grants: z.array(grantSchema), nextCursor: z.string().nullable() }), "A page"),
      ...authErrors,
    },
  }),
  grant: createRoute({
    method: "put",
    path: "/v1/orgs/{organizationId}/authz/resources/{type}/{resourceId}/grants/{subjectType}/{subjectId}",
    tags,
    middleware: [write] as const,
    summary: "Grant a role on the resource to a team or user (needs documents.share and every permission of the role)",
    request: { params: subjectParams, body: jsonBody(z.object({ role: z.string().min(1).max(64) }).strict()) },
    responses: {
      200: jsonResponse(z.object({ grant: grantSchema, revision: revisionField }), "Changed"),
      201: jsonResponse(z.object({ grant: grantSchema, revision: revisionField }), "Granted"),
      ...authErrors,
    },
  }),
  revoke: createRoute({
    method: "delete",
    path: "/v1/orgs/{organizationId}/authz/resources/{type}/{resourceId}/grants/{subjectType}/{subjectId}",
    tags,
    middleware: [write] as const,
    summary: "Revoke a grant (the same rule as granting its role)",
    request: { params: subjectParams },
    responses: {
      200: jsonResponse(z.object({ revoked: z.boolean(), revision: revisionField }), "Revoked"),
      ...authErrors,
    },
  }),
  check: createRoute({
    method: "post",
    path: "/v1/orgs/{organizationId}/authz/check",
    tags,
    middleware: [read] as const,
    summary: "Does the user hold the permission on the resource? With the reason",
    request: { params: org, query: atLeastQuery, body: jsonBody(checkBodySchema) },
    responses: { 200: jsonResponse(checkResultSchema, "Decision"), ...authErrors },
  }),
  users: createRoute({
    method: "get",
    path: "/v1/orgs/{organizationId}/authz/resources/{type}/{resourceId}/users",
    tags,
    middleware: [read] as const,
    summary: "Who holds a permission on the resource, with sources (viewer needs documents.read)",
    request: { params: resourceParams, query: usersQuery },
    responses: {
      200: jsonResponse(
        z.object({
          users: z.array(z.object({ userId: z.string(), sources: z.array(sourceSchema) })),
          nextCursor: z.string().nullable(),
          revision: revisionField,
        }),
        "A page",
      ),
      ...authErrors,
    },
  }),
  resources: createRoute({
    method: "get",
    path: "/v1/orgs/{organizationId}/authz/users/{userId}/resources",
    tags,
    middleware: [read] as const,
    summary: "Resources of a type the user holds a permission on (the user or organization admins)",
    request: { params: org.extend({ userId: id }), query: resourcesQuery },
    responses: {
      200: jsonResponse(
        z.object({
          resources: z.array(resourceRefSchema.extend({ sources: z.array(sourceSchema) })),
          nextCursor: z.string().nullable(),
          revision: revisionField,
        }),
        "A page",
      ),
      ...authErrors,
    },
  }),
  members: createRoute({
    method: "get",
    path: "/v1/orgs/{organizationId}/teams/{teamId}/effective-members",
    tags,
    middleware: [read] as const,
    summary: "Members including inherited ones (members of ancestors), searchable, by role and source",
    request: { params: org.extend({ teamId: id }), query: membersQuery },
    responses: {
      200: jsonResponse(
        z.object({
          members: z.array(effectiveMemberSchema),
          nextCursor: z.string().nullable(),
          revision: revisionField,
        }),
        "A page",
      ),
      ...authErrors,
    },
  }),
  directory: createRoute({
    method: "put",
    path: "/v1/internal/users/{userId}",
    tags,
    middleware: [requireScope("internal")] as const,
    summary: "Record a user's name and e-mail for member search (the users service; scope internal)",
    request: {
      params: z.object({ userId: id }),
      body: jsonBody(
        z.object({ name: z.string().max(200).nullable().optional(), email: z.email().nullable().optional() }).strict(),
      ),
    },
    responses: {
      200: jsonResponse(
        z.object({ userId: z.string(), name: z.string().nullable(), email: z.string().nullable() }),
        "Recorded",
      ),
      ...authErrors,
    },
  }),
};

/** The authorization API (scopes `teams:read` / `teams:write`; the actor is the token's `sub`). */
export const authzRoutes = createRouter()
  .openapi(r.permissions, async (c) => c.json(authzService(c).catalog(), 200))
  .openapi(r.roles, async (c) =>
    c.json({ roles: await authzService(c).listRoles(c.req.valid("param").organizationId) }, 200),
  )
  .openapi(r.putRole, async (c) => {
    const { organizationId, name } = c.req.valid("param");
    const res = await authzService(c).putRole(organizationId, name, c.req.valid("json"), c.var.principal.userId);
    return withRevision(c, { role: res.role, revision: res.revision }, res.created ? 201 : 200);
  })
  .openapi(r.deleteRole, async (c) => {
    const { organizationId, name } = c.req.valid("param");
    return withRevision(c, await authzService(c).deleteRole(organizationId, name, c.var.principal.userId), 200);
  })
  .openapi(r.putResource, async (c) => {
    const p = c.req.valid("param");
    const res = await authzService(c).putResource(
      p.organizationId,
      ref(p),
      c.req.valid("json").parent,
      c.var.principal.userId,
    );
    return withRevision(c, { resource: res.resource, revision: res.revision }, res.created ? 201 : 200);
  })
  .openapi(r.deleteResource, async (c) => {
    const p = c.req.valid("param");
    return withRevision(c, await authzService(c).deleteResource(p.organizationId, ref(p), c.var.principal.userId), 200);
  })
  .openapi(r.grants, async (c) => {
    const p = c.req.valid("param");
    const q = c.req.valid("query");
    const res = await authzService(c).listGrants(p.organizationId, ref(p), {
      after: decodeKeyCursor(q.cursor),
      limit: q.limit,
    });
    return c.json({ grants: res.grants, nextCursor: cursorOut(res.nextCursor) }, 200);
  })
  .openapi(r.grant, async (c) => {
    const p = c.req.valid("param");
    const res = await authzService(c).grant(
      p.organizationId,
      ref(p),
      { type: p.subjectType, id: p.subjectId },
      c.req.valid("json").role,
      c.var.principal.userId,
    );
    return withRevision(c, { grant: res.grant, revision: res.revision }, res.created ? 201 : 200);
  })
  .openapi(r.revoke, async (c) => {
    const p = c.req.valid("param");
    return withRevision(
      c,
      await authzService(c).revoke(
        p.organizationId,
        ref(p),
        { type: p.subjectType, id: p.subjectId },
        c.var.principal.userId,
      ),
      200,
    );
  })
  .openapi(r.check, async (c) => {
    const b = c.req.valid("json");
    const res = await authzService(c).check(
      c.req.valid("param").organizationId,
      b.userId,
      b.permission,
      b.resource,
      c.req.valid("query").atLeast,
    );
    return withRevision(c, res, 200);
  })
  .openapi(r.users, async (c) => {
    const p = c.req.valid("param");
    const q = c.req.valid("query");
    const res = await authzService(c).listUsers(p.organizationId, ref(p), q.permission, {
      after: decodeKeyCursor(q.cursor),
      limit: q.limit,
      atLeast: q.atLeast,
    });
    return withRevision(c, { ...res, nextCursor: cursorOut(res.nextCursor) }, 200);
  })
  .openapi(r.resources, async (c) => {
    const p = c.req.valid("param");
    const q = c.req.valid("query");
    const res = await authzService(c).listResources(p.organizationId, p.userId, q.type, q.permission, {
      after: decodeKeyCursor(q.cursor),
      limit: q.limit,
      atLeast: q.atLeast,
    });
    return withRevision(c, { ...res, nextCursor: cursorOut(res.nextCursor) }, 200);
  })
  .openapi(r.members, async (c) => {
    const p = c.req.valid("param");
    const q = c.req.valid("query");
    const res = await authzService(c).listMembers(p.organizationId, p.teamId, {
      after: decodeKeyCursor(q.cursor),
      limit: q.limit,
      q: q.q,
      role: q.role,
      source: q.source,
      atLeast: q.atLeast,
    });
    return withRevision(c, { ...res, nextCursor: cursorOut(res.nextCursor) }, 200);
  })
  .openapi(r.directory, async (c) =>
    c.json(await authzService(c).putDirectoryUser(c.req.valid("param").userId, c.req.valid("json")), 200),
  );
