import { z } from "@hono/zod-openapi";
import { roles } from "./permissions.ts";

/** The seed's team data models as zod schemas. */

const id = z.string().min(1).max(200);
const name = z
  .string()
  .trim()
  .min(1)
  .max(100)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused here
  .regex(/^[^\u0000-\u001f]+$/, "no control characters");

/** Seed `CreateTeamRequest`. */
export const createTeamSchema = z
  .object({
    organizationId: id,
    name,
    description: z.string().max(1000).optional(),
    parentTeamId: id.optional(),
    visibility: z.enum(["public", "private", "secret"]).default("private"),
    creatorUserId: id,
    settings: z.record(z.string(), z.unknown()).default({}),
  })
  .openapi("CreateTeamRequest");
/** Input of `createTeam`. */
export type CreateTeamRequest = z.input<typeof createTeamSchema>;

/** Seed `UpdateTeamRequest` (`settings` is merged). */
export const updateTeamSchema = z
  .object({
    name: name.optional(),
    description: z.string().max(1000).nullable().optional(),
    visibility: z.enum(["public", "private", "secret"]).optional(),
    settings: z.record(z.string(), z.unknown()).optional(),
  })
  .strict()
  .openapi("UpdateTeamRequest");
/** Input of `updateTeam`. */
export type UpdateTeamRequest = z.input<typeof updateTeamSchema>;

/** Seed `TeamMembership`. */
export const membershipSchema = z
  .object({
    teamId: z.string(),
    userId: z.string(),
    role: z.enum(roles),
    joinedAt: z.string(),
    addedBy: z.string(),
    user: z.object({ id: z.string(), name: z.string().optional(), email: z.string().optional() }).optional(),
    inherited: z.boolean().optional(),
  })
  .openapi("TeamMembership");
/** A membership. */
export type TeamMembership = z.infer<typeof membershipSchema>;

/** A team without its optional loaded relations. */
export const teamSummarySchema = z
  .object({
    id: z.string(),
    organizationId: z.string(),
    name: z.string(),
    description: z.string().optional(),
    parentTeamId: z.string().optional(),
    visibility: z.enum(["public", "private", "secret"]),
    settings: z.record(z.string(), z.unknown()),
    createdAt: z.string(),
    updatedAt: z.string(),
    createdBy: z.string(),
  })
  .openapi("TeamSummary");

/** Seed `Team` (members and subteams when asked for). */
export const teamSchema = teamSummarySchema
  .extend({ members: z.array(membershipSchema).optional(), subteams: z.array(teamSummarySchema).optional() })
  .openapi("Team");
/** A team. */
export interface Team {
  id: string;
  organizationId: string;
  name: string;
  description?: string;
  parentTeamId?: string;
  visibility: "public" | "private" | "secret";
  settings: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
  createdBy: string;
  members?: TeamMembership[];
  subteams?: Omit<Team, "members" | "subteams">[];
}

/** Seed `TeamInvitation` (the token only in the creation response). */
export const invitationSchema = z
  .object({
    id: z.string(),
    teamId: z.string(),
    email: z.string(),
    role: z.enum(roles),
    token: z.string().optional(),
    invitedBy: z.string(),
    createdAt: z.string(),
    expiresAt: z.string(),
    status: z.enum(["pending", "accepted", "expired", "revoked"]),
  })
  .openapi("TeamInvitation");
/** An invitation. */
export type TeamInvitation = z.infer<typeof invitationSchema>;

/** Seed `InvitationRequest`. */
export const invitationRequestSchema = z
  .object({
    teamId: id,
    email: z
      .email()
      .max(320)
      .transform((e) => e.toLowerCase()),
    role: z.enum(roles).default("member"),
    inviterUserId: id,
    message: z.string().max(2000).optional(),
    expiresInDays: z.number().int().min(1).max(30).optional(),
  })
  .openapi("InvitationRequest");
/** Input of `createInvitation`. */
export type InvitationRequest = z.input<typeof invitationRequestSchema>;

/** Seed `DeleteTeamOptions`. */
export const deleteTeamSchema = z
  .object({ actorUserId: id, reassignTo: id.optional(), deleteSubteams: z.boolean().default(false) })
  .openapi("DeleteTeamOptions");
/** Input of `deleteTeam`. */
export type DeleteTeamOptions = z.input<typeof deleteTeamSchema>;

/** Seed `TeamHierarchyNode`. */
export interface TeamHierarchyNode {
  team: Team;
  children: TeamHierarchyNode[];
  depth: number;
}
// Documented one level deep: OpenAPI generators cannot expand a recursive schema.
const nodeSchema = z
  .object({
    team: teamSummarySchema,
    depth: z.number().int(),
    children: z.array(z.unknown()).openapi({ description: "TeamHierarchyNode[] (the same shape, one level deeper)" }),
  })
  .openapi("TeamHierarchyNode");

/** Seed `TeamHierarchy`. */
export const hierarchySchema = z
  .object({ team: teamSummarySchema, ancestors: z.array(teamSummarySchema), descendants: z.array(nodeSchema) })
  .openapi("TeamHierarchy");
/** A team with its ancestors and descendant tree. */
export interface TeamHierarchy {
  team: Team;
  ancestors: Team[];
  descendants: TeamHierarchyNode[];
}

/** Seed `EffectivePermissions`. */
export const effectivePermissionsSchema = z
  .object({
    teamId: z.string(),
    userId: z.string(),
    role: z.enum(roles).nullable(),
    permissions: z.array(z.string()),
    sources: z.record(
      z.string(),
      z.object({
        type: z.enum(["direct", "inherited", "organization_admin"]),
        teamId: z.string().optional(),
        role: z.enum(roles).optional(),
      }),
    ),
  })
  .openapi("EffectivePermissions");
/** Permissions with their sources. */
export type EffectivePermissions = z.infer<typeof effectivePermissionsSchema>;

/** An organization's team policy. */
export const teamPolicySchema = z
  .object({
    organizationId: z.string(),
    rootTeamCreation: z
      .enum(["members", "admins"])
      .openapi({ description: "Who may create teams at the root: every member (default) or organization admins only" }),
  })
  .openapi("TeamPolicy");
/** An organization's team policy. */
export type TeamPolicy = z.infer<typeof teamPolicySchema>;
