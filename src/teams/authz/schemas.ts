import { z } from "@hono/zod-openapi";
import { resourcePermissions, roles } from "../permissions.ts";
import { resourceTypes } from "./model.ts";

/** zod schemas of the authorization API (validation, OpenAPI and types from one source). */

const id = z.string().min(1).max(200);

/** A typed resource id. */
export const resourceRefSchema = z.object({ type: z.enum(resourceTypes), id }).openapi("ResourceRef");

/** Path parameters naming a resource. */
export const resourceParams = z.object({
  organizationId: id,
  type: z.enum(resourceTypes),
  resourceId: id,
});

/** Path parameters naming a grant's subject on a resource. */
export const subjectParams = resourceParams.extend({ subjectType: z.enum(["team", "user"]), subjectId: id });

/** A role definition as stored and shown. */
export const roleSchema = z
  .object({
    name: z.string(),
    description: z.string().optional(),
    permissions: z.array(z.string()),
    builtin: z.boolean(),
  })
  .openapi("Role");

/** Body of `PUT …/authz/roles/{name}`. */
export const putRoleSchema = z
  .object({
    description: z.string().max(500).optional(),
    permissions: z
      .array(z.string().min(1).max(64))
      .max(resourcePermissions.length * 2)
      .openapi({ description: `resource permissions: ${resourcePermissions.join(", ")}` }),
  })
  .strict();

/** A grant as shown. */
export const grantSchema = z
  .object({
    id: z.string(),
    resource: resourceRefSchema,
    subject: z.object({ type: z.enum(["team", "user"]), id: z.string() }),
    role: z.string(),
    createdBy: z.string(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Grant");

const teamRef = z.object({
  id: z.string().openapi({ description: "empty when the viewer may not see the team" }),
  name: z.string(),
  visibility: z.enum(["public", "private", "secret"]),
});

/** Where a permission comes from: the grant, the resource it is on, the team and the ancestor. */
export const sourceSchema = z
  .object({
    grantId: z.string(),
    role: z.string(),
    permissions: z.array(z.string()),
    resource: resourceRefSchema,
    distance: z.number().int().openapi({ description: "0: on the resource itself; n: on its n-th container" }),
    subject: z.object({ type: z.enum(["team", "user"]), id: z.string() }),
    team: teamRef.optional(),
    via: teamRef
      .extend({ distance: z.number().int() })
      .optional()
      .openapi({ description: "the team whose membership carries the grant (the granted team or an ancestor)" }),
  })
  .openapi("GrantSource");

/** Answer of a check. */
export const checkResultSchema = z
  .object({
    allowed: z.boolean(),
    reason: z.string(),
    source: sourceSchema.optional(),
    revision: z.string().openapi({ description: "revision token of the state the answer reflects" }),
    cached: z.boolean(),
  })
  .openapi("CheckResult");

/** Body of `POST …/authz/check`. */
export const checkBodySchema = z
  .object({ userId: id, permission: z.string().min(1).max(64), resource: resourceRefSchema })
  .strict();

const limit = z.coerce.number().int().min(1).max(200).default(50);
const atLeast = z
  .string()
  .max(400)
  .optional()
  .openapi({ description: "revision token of a write: the answer reflects at least that write" });

/** `atLeast` alone. */
export const atLeastQuery = z.object({ atLeast });

/** Query of paginated listings. */
export const pageQuery = z.object({ limit, cursor: z.string().max(400).optional(), atLeast });

/** Query of `GET …/users`. */
export const usersQuery = pageQuery.extend({ permission: z.string().min(1).max(64) });

/** Query of `GET …/authz/users/{userId}/resources`. */
export const resourcesQuery = pageQuery.extend({ type: z.enum(resourceTypes), permission: z.string().min(1).max(64) });

/** Query of `GET …/teams/{teamId}/effective-members`. */
export const membersQuery = pageQuery.extend({
  q: z.string().trim().min(1).max(200).optional().openapi({ description: "substring of name, e-mail or user id" }),
  role: z.enum(roles).optional().openapi({ description: "effective (highest) role" }),
  source: z.enum(["all", "direct", "inherited"]).default("all"),
});

/** A member with inheritance. */
export const effectiveMemberSchema = z
  .object({
    userId: z.string(),
    role: z.enum(roles),
    direct: z.boolean(),
    user: z.object({ id: z.string(), name: z.string().optional(), email: z.string().optional() }).optional(),
    sources: z.array(
      z.object({
        teamId: z.string(),
        teamName: z.string(),
        role: z.string(),
        distance: z.number().int().openapi({ description: "0: the team itself; n: its n-th ancestor" }),
        hidden: z.boolean().optional(),
      }),
    ),
  })
  .openapi("EffectiveMember");

/** Revision token of a write (also in the `X-Authz-Revision` header). */
export const revisionField = z
  .string()
  .openapi({ description: "revision token: pass as `atLeast` to read your write" });
