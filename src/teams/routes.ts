import { createRoute, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../platform/create-app.ts";
import { createRouter, requireScope } from "../platform/create-app.ts";
import { NotFoundError } from "../platform/errors.ts";
import { idempotent } from "../platform/idempotency.ts";
import { authErrors, jsonBody, jsonResponse } from "../platform/openapi.ts";
import { roles } from "./permissions.ts";
import {
  createTeamSchema,
  effectivePermissionsSchema,
  hierarchySchema,
  invitationSchema,
  membershipSchema,
  teamPolicySchema,
  teamSchema,
  updateTeamSchema,
} from "./schemas.ts";
import { REVISION_HEADER } from "./authz/revision.ts";
import { createTeamService } from "./service.ts";
import type { TeamManagementService } from "./team.ts";

const org = z.object({ organizationId: z.string().min(1).max(200) });
const orgTeam = org.extend({ teamId: z.string().min(1).max(200) });
const orgTeamUser = orgTeam.extend({ userId: z.string().min(1).max(200) });
const read = requireScope("teams:read");
const write = requireScope("teams:write");
const tags = ["teams"];
const bool = z
  .enum(["true", "false"])
  .transform((v) => v === "true")
  .optional();

// One service per request, so the revision of its write is there for the header afterwards.
const services = new WeakMap<Request, TeamManagementService>();
const svc = (c: Context<AppEnv>) => {
  let s = services.get(c.req.raw);
  if (!s) services.set(c.req.raw, (s = createTeamService(c.var.platform, c.var.principal)));
  return s;
};

/** Writes that can change a permission answer carry their revision token (read-your-writes: `atLeast`). */
const revisionHeader: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  const rev = services.get(c.req.raw)?.revision;
  if (rev && c.res.status < 300) c.res.headers.set(REVISION_HEADER, rev);
};

/** The team, if it exists in this organization and the caller may see it; else 404. */
async function ownTeam(
  c: Context<AppEnv>,
  organizationId: string,
  teamId: string,
  opts: { includeMembers?: boolean; includeSubteams?: boolean } = {},
) {
  const team = await svc(c).getTeam(teamId, opts);
  if (!team || team.organizationId !== organizationId) throw new NotFoundError(`team ${teamId} not found`);
  return team;
}

const r = {
  create: createRoute({
    method: "post",
    path: "/v1/orgs/{organizationId}/teams",
    tags,
    middleware: [write, revisionHeader, idempotent()] as const,
    summary: "Create a team (the caller becomes owner)",
    request: { params: org, body: jsonBody(createTeamSchema.omit({ organizationId: true, creatorUserId: true })) },
    responses: {
      201: jsonResponse(teamSchema, "Created"),
      409: { description: "Name taken" },
      429: { description: "Team limit of the plan" },
      ...authErrors,
    },
  }),
  list: createRoute({
    method: "get",
    path: "/v1/orgs/{organizationId}/teams",
    tags,
    middleware: [read] as const,
    summary: "Teams visible to the caller",
    request: {
      params: org,
      query: z.object({
        parentTeamId: z.string().optional(),
        limit: z.coerce.number().int().min(1).max(200).default(50),
        cursor: z.string().optional(),
      }),
    },
    responses: {
      200: jsonResponse(z.object({ teams: z.array(teamSchema), nextCursor: z.string().nullable() }), "A page"),
      ...authErrors,
    },
  }),
  get: createRoute({
    method: "get",
    path: "/v1/orgs/{organizationId}/teams/{teamId}",
    tags,
    middleware: [read] as const,
    summary: "A team (secret teams: 404 to non-members)",
    request: { params: orgTeam, query: z.object({ includeMembers: bool, includeSubteams: bool }) },
    responses: { 200: jsonResponse(teamSchema, "The team"), ...authErrors },
  }),
  update: createRoute({
    method: "patch",
    path: "/v1/orgs/{organizationId}/teams/{teamId}",
    tags,
    middleware: [write, revisionHeader] as const,
    summary: "Update a team (settings are merged)",
    request: { params: orgTeam, body: jsonBody(updateTeamSchema) },
    responses: { 200: jsonResponse(teamSchema, "Updated"), ...authErrors },
  }),
  remove: createRoute({
    method: "delete",
    path: "/v1/orgs/{organizationId}/teams/{teamId}",
    tags,
    middleware: [write, revisionHeader] as const,
    summary: "Delete a team",
    request: { params: orgTeam, query: z.object({ reassignTo: z.string().optional(), deleteSubteams: bool }) },
    responses: {
      200: jsonResponse(
        z.object({
          deleted: z.boolean(),
          membersReassigned: z.number().int(),
          rolesCapped: z.number().int().openapi({
            description: "Reassigned members whose role was lowered to what the caller may grant on the target",
          }),
        }),
        "Deleted",
      ),
      ...authErrors,
    },
  }),
  addMember: createRoute({
    method: "post",
    path: "/v1/orgs/{organizationId}/teams/{teamId}/members",
    tags,
    middleware: [write, revisionHeader, idempotent()] as const,
    summary: "Add a member",
    request: {
      params: orgTeam,
      body: jsonBody(z.object({ userId: z.string().min(1).max(200), role: z.enum(roles).default("member") })),
    },
    responses: {
      201: jsonResponse(membershipSchema, "Added"),
      409: { description: "Already a member" },
      ...authErrors,
    },
  }),
  updateMember: createRoute({
    method: "patch",
    path: "/v1/orgs/{organizationId}/teams/{teamId}/members/{userId}",
    tags,
    middleware: [write, revisionHeader] as const,
    summary: "Change a member's role",
    request: { params: orgTeamUser, body: jsonBody(z.object({ role: z.enum(roles) })) },
    responses: { 200: jsonResponse(membershipSchema, "Updated"), ...authErrors },
  }),
  removeMember: createRoute({
    method: "delete",
    path: "/v1/orgs/{organizationId}/teams/{teamId}/members/{userId}",
    tags,
    middleware: [write, revisionHeader] as const,
    summary: "Remove a member (or leave)",
    request: { params: orgTeamUser },
    responses: { 200: jsonResponse(z.object({ removed: z.boolean() }), "Removed"), ...authErrors },
  }),
  invite: createRoute({
    method: "post",
    path: "/v1/orgs/{organizationId}/teams/{teamId}/invitations",
    tags,
    // The token is never stored: a replayed response carries the invitation without it.
    middleware: [write, idempotent({ redact: ["token"] })] as const,
    summary: "Invite by e-mail (the token is in the response and the e-mail)",
    request: {
      params: orgTeam,
      body: jsonBody(
        z.object({
          email: z.email(),
          role: z.enum(roles).default("member"),
          message: z.string().max(2000).optional(),
          expiresInDays: z.number().int().min(1).max(30).optional(),
        }),
      ),
    },
    responses: { 201: jsonResponse(invitationSchema, "Sent"), ...authErrors },
  }),
  invitations: createRoute({
    method: "get",
    path: "/v1/orgs/{organizationId}/teams/{teamId}/invitations",
    tags,
    middleware: [read] as const,
    summary: "Invitations (default: pending)",
    request: {
      params: orgTeam,
      query: z.object({ status: z.enum(["pending", "accepted", "expired", "revoked"]).default("pending") }),
    },
    responses: {
      200: jsonResponse(z.object({ invitations: z.array(invitationSchema) }), "Invitations"),
      ...authErrors,
    },
  }),
  revoke: createRoute({
    method: "delete",
    path: "/v1/orgs/{organizationId}/teams/{teamId}/invitations/{invitationId}",
    tags,
    middleware: [write, revisionHeader] as const,
    summary: "Revoke an invitation",
    request: { params: orgTeam.extend({ invitationId: z.string().min(1).max(200) }) },
    responses: { 200: jsonResponse(z.object({ revoked: z.boolean() }), "Revoked"), ...authErrors },
  }),
  resend: createRoute({
    method: "post",
    path: "/v1/orgs/{organizationId}/teams/{teamId}/invitations/{invitationId}/resend",
    tags,
    middleware: [write, revisionHeader] as const,
    summary: "Re-send with a new token and expiry",
    request: { params: orgTeam.extend({ invitationId: z.string().min(1).max(200) }) },
    responses: { 200: jsonResponse(invitationSchema, "Re-sent"), ...authErrors },
  }),
  accept: createRoute({
    method: "post",
    path: "/v1/invitations/accept",
    tags,
    middleware: [requireScope("teams:read"), revisionHeader] as const,
    summary: "Accept an invitation as the caller (e-mail must match)",
    request: { body: jsonBody(z.object({ token: z.string().min(1).max(200) })) },
    responses: { 200: jsonResponse(membershipSchema, "Joined"), 410: { description: "Expired" }, ...authErrors },
  }),
  userTeams: createRoute({
    method: "get",
    path: "/v1/orgs/{organizationId}/users/{userId}/teams",
    tags,
    middleware: [read] as const,
    summary: "Teams of a user (optionally with inherited ones)",
    request: {
      params: org.extend({ userId: z.string().min(1).max(200) }),
      query: z.object({
        includeInherited: bool,
        limit: z.coerce.number().int().min(1).max(200).default(50),
        cursor: z.string().optional(),
      }),
    },
    responses: {
      200: jsonResponse(
        z.object({ memberships: z.array(membershipSchema), nextCursor: z.string().nullable() }),
        "Memberships",
      ),
      ...authErrors,
    },
  }),
  hierarchy: createRoute({
    method: "get",
    path: "/v1/orgs/{organizationId}/teams/{teamId}/hierarchy",
    tags,
    middleware: [read] as const,
    summary: "Ancestors and the descendant tree",
    request: {
      params: orgTeam,
      query: z.object({ direction: z.enum(["ancestors", "descendants", "both"]).default("both") }),
    },
    responses: { 200: jsonResponse(hierarchySchema, "Hierarchy"), ...authErrors },
  }),
  move: createRoute({
    method: "post",
    path: "/v1/orgs/{organizationId}/teams/{teamId}/move",
    tags,
    middleware: [write, revisionHeader] as const,
    summary: "Move under another team (null: to the root)",
    request: { params: orgTeam, body: jsonBody(z.object({ newParentId: z.string().min(1).max(200).nullable() })) },
    responses: { 200: jsonResponse(teamSchema, "Moved"), 409: { description: "Cycle" }, ...authErrors },
  }),
  permissions: createRoute({
    method: "get",
    path: "/v1/orgs/{organizationId}/teams/{teamId}/permissions/{userId}",
    tags,
    middleware: [read] as const,
    summary: "Effective permissions with sources",
    request: { params: orgTeamUser },
    responses: { 200: jsonResponse(effectivePermissionsSchema, "Permissions"), ...authErrors },
  }),
  check: createRoute({
    method: "post",
    path: "/v1/orgs/{organizationId}/teams/{teamId}/permissions/check",
    tags,
    middleware: [read] as const,
    summary: "Check one permission",
    request: {
      params: orgTeam,
      body: jsonBody(z.object({ userId: z.string().min(1).max(200), permission: z.string().min(1).max(64) })),
    },
    responses: { 200: jsonResponse(z.object({ allowed: z.boolean(), reason: z.string() }), "Decision"), ...authErrors },
  }),
  policy: createRoute({
    method: "get",
    path: "/v1/orgs/{organizationId}/team-policy",
    tags,
    middleware: [read] as const,
    summary: "Who may create root teams in the organization",
    request: { params: org },
    responses: { 200: jsonResponse(teamPolicySchema, "The policy"), ...authErrors },
  }),
  setPolicy: createRoute({
    method: "put",
    path: "/v1/orgs/{organizationId}/team-policy",
    tags,
    middleware: [requireScope("admin")] as const,
    summary: "Set who may create root teams: every member (default) or organization admins (scope `admin`)",
    request: { params: org, body: jsonBody(teamPolicySchema.pick({ rootTeamCreation: true })) },
    responses: { 200: jsonResponse(teamPolicySchema, "The policy"), ...authErrors },
  }),
};

/** The teams HTTP API (scopes `teams:read` / `teams:write`; the actor is the token's `sub`). */
export const teamRoutes = createRouter()
  .openapi(r.create, async (c) => {
    const { organizationId } = c.req.valid("param");
    return c.json(
      await svc(c).createTeam({ ...c.req.valid("json"), organizationId, creatorUserId: c.var.principal.userId }),
      201,
    );
  })
  .openapi(r.list, async (c) =>
    c.json(await svc(c).listTeams(c.req.valid("param").organizationId, c.req.valid("query")), 200),
  )
  .openapi(r.get, async (c) => {
    const { organizationId, teamId } = c.req.valid("param");
    return c.json(await ownTeam(c, organizationId, teamId, c.req.valid("query")), 200);
  })
  .openapi(r.update, async (c) => {
    const { organizationId, teamId } = c.req.valid("param");
    await ownTeam(c, organizationId, teamId);
    return c.json(await svc(c).updateTeam(teamId, c.req.valid("json"), c.var.principal.userId), 200);
  })
  .openapi(r.remove, async (c) => {
    const { organizationId, teamId } = c.req.valid("param");
    await ownTeam(c, organizationId, teamId);
    const q = c.req.valid("query");
    return c.json(
      await svc(c).deleteTeam(teamId, {
        actorUserId: c.var.principal.userId,
        reassignTo: q.reassignTo,
        deleteSubteams: q.deleteSubteams ?? false,
      }),
      200,
    );
  })
  .openapi(r.addMember, async (c) => {
    const { organizationId, teamId } = c.req.valid("param");
    await ownTeam(c, organizationId, teamId);
    const b = c.req.valid("json");
    return c.json(await svc(c).addMember(teamId, b.userId, b.role, c.var.principal.userId), 201);
  })
  .openapi(r.updateMember, async (c) => {
    const { organizationId, teamId, userId } = c.req.valid("param");
    await ownTeam(c, organizationId, teamId);
    return c.json(await svc(c).updateMemberRole(teamId, userId, c.req.valid("json").role, c.var.principal.userId), 200);
  })
  .openapi(r.removeMember, async (c) => {
    const { organizationId, teamId, userId } = c.req.valid("param");
    await ownTeam(c, organizationId, teamId);
    return c.json(await svc(c).removeMember(teamId, userId, c.var.principal.userId), 200);
  })
  .openapi(r.invite, async (c) => {
    const { organizationId, teamId } = c.req.valid("param");
    await ownTeam(c, organizationId, teamId);
    return c.json(
      await svc(c).createInvitation({ ...c.req.valid("json"), teamId, inviterUserId: c.var.principal.userId }),
      201,
    );
  })
  .openapi(r.invitations, async (c) => {
    const { organizationId, teamId } = c.req.valid("param");
    await ownTeam(c, organizationId, teamId);
    return c.json(
      { invitations: await svc(c).listInvitations(teamId, c.var.principal.userId, c.req.valid("query").status) },
      200,
    );
  })
  .openapi(r.revoke, async (c) => {
    const { organizationId, teamId, invitationId } = c.req.valid("param");
    await ownTeam(c, organizationId, teamId);
    return c.json(await svc(c).revokeInvitation(teamId, invitationId, c.var.principal.userId), 200);
  })
  .openapi(r.resend, async (c) => {
    const { organizationId, teamId, invitationId } = c.req.valid("param");
    await ownTeam(c, organizationId, teamId);
    return c.json(await svc(c).resendInvitation(teamId, invitationId, c.var.principal.userId), 200);
  })
  .openapi(r.accept, async (c) =>
    c.json(
      await svc(c).acceptInvitation(c.req.valid("json").token, c.var.principal.userId, c.var.principal.email),
      200,
    ),
  )
  .openapi(r.userTeams, async (c) => {
    const { organizationId, userId } = c.req.valid("param");
    return c.json(await svc(c).getUserTeams(userId, { ...c.req.valid("query"), organizationId }), 200);
  })
  .openapi(r.hierarchy, async (c) => {
    const { organizationId, teamId } = c.req.valid("param");
    await ownTeam(c, organizationId, teamId);
    // The document describes the recursive tree one level deep; the value is the full tree.
    const tree = (await svc(c).getHierarchy(teamId, c.req.valid("query").direction)) as unknown as z.infer<
      typeof hierarchySchema
    >;
    return c.json(tree, 200);
  })
  .openapi(r.move, async (c) => {
    const { organizationId, teamId } = c.req.valid("param");
    await ownTeam(c, organizationId, teamId);
    return c.json(await svc(c).moveTeam(teamId, c.req.valid("json").newParentId, c.var.principal.userId), 200);
  })
  .openapi(r.permissions, async (c) => {
    const { organizationId, teamId, userId } = c.req.valid("param");
    // The service guards the team (organization, visibility): from the cache when it can, so a
    // cached answer survives a Postgres outage.
    return c.json(await svc(c).getEffectivePermissions(teamId, userId, organizationId), 200);
  })
  .openapi(r.policy, async (c) => c.json(await svc(c).getTeamPolicy(c.req.valid("param").organizationId), 200))
  .openapi(r.setPolicy, async (c) =>
    c.json(await svc(c).updateTeamPolicy(c.req.valid("param").organizationId, c.req.valid("json")), 200),
  )
  .openapi(r.check, async (c) => {
    const { organizationId, teamId } = c.req.valid("param");
    const b = c.req.valid("json");
    // As above: the service's guard, cache first.
    return c.json(await svc(c).checkPermission(teamId, b.userId, b.permission, organizationId), 200);
  });
