import { z } from "zod";

/**
 * Every event type the platform knows — the one source of truth for its description, the JSON
 * Schema of its `data` and an example (served by `GET /v1/event-types`). Producers may only emit
 * these; webhook subscriptions and inbound validation check against them. Patterns: `*`
 * (everything), `team.*` (a prefix at any depth, so `usage.*` covers `usage.quota.exceeded`), or
 * an exact type.
 *
 * To add a type: one entry below — `description`, `data` (a zod object; `z.looseObject` when
 * producers may add fields) and an `example` that the schema accepts (a unit test checks).
 */

/** What the catalog says about one event type. */
export interface EventDefinition {
  /** One sentence: what happened. */
  description: string;
  /** The shape of the event's `data`. */
  data: z.ZodType<Record<string, unknown>>;
  /** A representative `data` value (validated by `data` in the unit tests). */
  example: Record<string, unknown>;
}

const id = z.string().min(1);
const isoTime = z.iso.datetime({ offset: true });
const role = z.enum(["owner", "admin", "member", "viewer"]);

// Usage events come from other CloudMatrix services (RabbitMQ inbound); the fields they share.
const usageData = (extra: Record<string, z.ZodType> = {}) =>
  z.looseObject({
    eventId: id.optional().describe("the producer's id (deduplication key with the organization)"),
    userId: id.optional(),
    quantity: z.number().optional().describe("amount metered (default 1)"),
    ...extra,
  });

const webhookData = (extra: Record<string, z.ZodType> = {}) =>
  z.looseObject({ webhookId: id.describe("the endpoint"), ...extra });

const circuitData = webhookData({
  from: z.enum(["closed", "open", "half_open"]),
  to: z.enum(["closed", "open", "half_open"]),
  reason: z.string(),
  failureCount: z.number().int().optional(),
  halfOpenAt: isoTime.nullable().optional(),
});

/** The catalog. Keys are the event types. */
export const eventDefinitions = {
  "document.created": {
    description: "A document was created",
    data: usageData({ documentId: id.optional() }),
    example: { eventId: "ev_1", userId: "u_1", documentId: "doc_1" },
  },
  "document.updated": {
    description: "A document's content or metadata changed",
    data: usageData({ documentId: id.optional() }),
    example: { eventId: "ev_2", userId: "u_1", documentId: "doc_1" },
  },
  "document.deleted": {
    description: "A document was deleted",
    data: usageData({ documentId: id.optional() }),
    example: { eventId: "ev_3", userId: "u_1", documentId: "doc_1" },
  },
  "document.viewed": {
    description: "A document was opened for reading",
    data: usageData({ documentId: id.optional() }),
    example: { eventId: "ev_4", userId: "u_2", documentId: "doc_1" },
  },
  "document.shared": {
    description: "A document was shared with a user or team",
    data: usageData({ documentId: id.optional(), sharedWith: id.optional() }),
    example: { eventId: "ev_5", userId: "u_1", documentId: "doc_1", sharedWith: "team_1" },
  },
  "collaboration.session_started": {
    description: "A real-time editing session began",
    data: usageData({ documentId: id.optional(), sessionId: id.optional() }),
    example: { eventId: "ev_6", userId: "u_1", documentId: "doc_1", sessionId: "s_1" },
  },
  "collaboration.session_ended": {
    description: "A real-time editing session ended",
    data: usageData({ documentId: id.optional(), sessionId: id.optional() }),
    example: { eventId: "ev_7", userId: "u_1", documentId: "doc_1", sessionId: "s_1" },
  },
  "storage.upload": {
    description: "A file was uploaded (quantity = bytes)",
    data: usageData(),
    example: { eventId: "ev_8", userId: "u_1", quantity: 1048576 },
  },
  "storage.delete": {
    description: "A file was deleted (quantity = bytes freed)",
    data: usageData(),
    example: { eventId: "ev_9", userId: "u_1", quantity: 1048576 },
  },
  "presence.joined": {
    description: "A user opened a document",
    data: usageData({ documentId: id.optional() }),
    example: { eventId: "ev_10", userId: "u_3", documentId: "doc_1" },
  },
  "presence.left": {
    description: "A user closed a document",
    data: usageData({ documentId: id.optional() }),
    example: { eventId: "ev_11", userId: "u_3", documentId: "doc_1" },
  },
  "presence.heartbeat": {
    description: "A user is still active on a document",
    data: usageData({ documentId: id.optional() }),
    example: { eventId: "ev_12", userId: "u_3", documentId: "doc_1" },
  },
  "api.call": {
    description: "A public API request was served",
    data: usageData({ endpoint: z.string().optional(), status: z.number().int().optional() }),
    example: { eventId: "ev_13", userId: "u_1", endpoint: "GET /v1/documents", status: 200 },
  },
  "team.created": {
    description: "A team was created",
    data: z.looseObject({ teamId: id, name: z.string(), parentTeamId: id.nullable() }),
    example: { teamId: "team_1", name: "Design", parentTeamId: null },
  },
  "team.updated": {
    description: "A team's properties changed",
    data: z.looseObject({ teamId: id, changes: z.array(z.string()), updatedBy: id.optional() }),
    example: { teamId: "team_1", changes: ["name"], updatedBy: "u_1" },
  },
  "team.deleted": {
    description: "A team was deleted",
    data: z.looseObject({ teamId: id, deletedBy: id.optional(), reassignedTo: id.nullable().optional() }),
    example: { teamId: "team_2", deletedBy: "u_1", reassignedTo: null },
  },
  "team.moved": {
    description: "A team moved in the hierarchy",
    data: z.looseObject({ teamId: id, fromParentId: id.nullable(), toParentId: id.nullable() }),
    example: { teamId: "team_2", fromParentId: "team_1", toParentId: null },
  },
  "member.added": {
    description: "A user joined a team",
    data: z.looseObject({ teamId: id, userId: id, role }),
    example: { teamId: "team_1", userId: "u_2", role: "member" },
  },
  "member.removed": {
    description: "A user left a team",
    data: z.looseObject({ teamId: id, userId: id, previousRole: role.optional() }),
    example: { teamId: "team_1", userId: "u_2", previousRole: "member" },
  },
  "member.role_changed": {
    description: "A member's role changed",
    data: z.looseObject({ teamId: id, userId: id, previousRole: role, role: role.optional() }),
    example: { teamId: "team_1", userId: "u_2", previousRole: "member", role: "admin" },
  },
  "invitation.sent": {
    description: "An invitation was sent",
    data: z.looseObject({ invitationId: id, teamId: id, email: z.string() }),
    example: { invitationId: "inv_1", teamId: "team_1", email: "new@example.com", role: "member" },
  },
  "invitation.accepted": {
    description: "An invitation was accepted",
    data: z.looseObject({ invitationId: id, teamId: id, userId: id }),
    example: { invitationId: "inv_1", teamId: "team_1", userId: "u_9" },
  },
  "invitation.revoked": {
    description: "An invitation was revoked",
    data: z.looseObject({ invitationId: id, teamId: id, revokedBy: id.optional() }),
    example: { invitationId: "inv_1", teamId: "team_1", revokedBy: "u_1" },
  },
  "invitation.expired": {
    description: "An invitation expired unused",
    data: z.looseObject({ invitationId: id, teamId: id, email: z.string() }),
    example: { invitationId: "inv_2", teamId: "team_1", email: "late@example.com" },
  },
  "authz.grant.created": {
    description: "A team or user was granted a role on a resource",
    data: z.looseObject({
      grantId: id,
      resource: z.object({ type: id, id }),
      subject: z.object({ type: z.enum(["team", "user"]), id }),
      role: id,
      grantedBy: id.optional(),
    }),
    example: {
      grantId: "grt_1",
      resource: { type: "document", id: "doc_1" },
      subject: { type: "team", id: "team_1" },
      role: "member",
      grantedBy: "u_1",
    },
  },
  "authz.grant.role_changed": {
    description: "The role of a grant on a resource changed",
    data: z.looseObject({
      grantId: id,
      resource: z.object({ type: id, id }),
      subject: z.object({ type: z.enum(["team", "user"]), id }),
      role: id,
      previousRole: id,
    }),
    example: {
      grantId: "grt_1",
      resource: { type: "folder", id: "f_1" },
      subject: { type: "user", id: "u_2" },
      role: "editor",
      previousRole: "viewer",
      grantedBy: "u_1",
    },
  },
  "authz.grant.revoked": {
    description: "A grant on a resource was revoked",
    data: z.looseObject({
      grantId: id,
      resource: z.object({ type: id, id }),
      subject: z.object({ type: z.enum(["team", "user"]), id }),
      previousRole: id,
      revokedBy: id.optional(),
    }),
    example: {
      grantId: "grt_1",
      resource: { type: "document", id: "doc_1" },
      subject: { type: "team", id: "team_1" },
      previousRole: "member",
      revokedBy: "u_1",
    },
  },
  "authz.role.created": {
    description: "A custom role was defined, or a built-in role extended",
    data: z.looseObject({ role: id, permissions: z.array(z.string()), builtin: z.boolean().optional() }),
    example: { role: "editor", permissions: ["documents.read", "documents.write"], builtin: false, changedBy: "u_1" },
  },
  "authz.role.updated": {
    description: "A role's permissions or description changed (effective on every check at once)",
    data: z.looseObject({
      role: id,
      permissions: z.array(z.string()),
      previousPermissions: z.array(z.string()).optional(),
    }),
    example: {
      role: "editor",
      permissions: ["documents.read", "documents.comment", "documents.write"],
      previousPermissions: ["documents.read", "documents.write"],
      builtin: false,
      changedBy: "u_1",
    },
  },
  "authz.role.deleted": {
    description: "A custom role (or a built-in's extension) was deleted",
    data: z.looseObject({ role: id, deletedBy: id.optional() }),
    example: { role: "editor", deletedBy: "u_1" },
  },
  "authz.resource.registered": {
    description: "A project, folder or document was registered for sharing",
    data: z.looseObject({
      resource: z.object({ type: id, id }),
      parent: z.object({ type: id, id }).nullable(),
    }),
    example: { resource: { type: "document", id: "doc_1" }, parent: { type: "folder", id: "f_1" }, createdBy: "u_1" },
  },
  "authz.resource.moved": {
    description: "A resource moved to another folder or project (what covers it changed)",
    data: z.looseObject({
      resource: z.object({ type: id, id }),
      fromParent: z.object({ type: id, id: id.nullable() }).nullable(),
      toParent: z.object({ type: id, id }).nullable(),
    }),
    example: {
      resource: { type: "folder", id: "f_2" },
      fromParent: { type: "project", id: "p_1" },
      toParent: { type: "folder", id: "f_1" },
      movedBy: "u_1",
    },
  },
  "authz.resource.deleted": {
    description: "A resource and its grants were removed",
    data: z.looseObject({ resource: z.object({ type: id, id }), deletedBy: id.optional() }),
    example: { resource: { type: "document", id: "doc_1" }, deletedBy: "u_1" },
  },
  "usage.quota.threshold_crossed": {
    description: "A usage counter crossed an alert threshold",
    data: z.looseObject({
      subscriptionId: id,
      metricType: z.string(),
      threshold: z.number(),
      used: z.number(),
      limit: z.number(),
      percentage: z.number(),
      periodStart: isoTime,
      channels: z.array(z.string()),
    }),
    example: {
      subscriptionId: "sub_1",
      metricType: "api_calls",
      threshold: 80,
      used: 8000,
      limit: 10000,
      percentage: 80,
      periodStart: "2026-01-01T00:00:00.000Z",
      channels: ["webhook", "email"],
    },
  },
  "usage.quota.exceeded": {
    description: "A usage counter exceeded its plan limit",
    data: z.looseObject({ metricType: z.string(), used: z.number(), limit: z.number(), periodStart: isoTime }),
    example: { metricType: "api_calls", used: 10001, limit: 10000, periodStart: "2026-01-01T00:00:00.000Z" },
  },
  "organization.plan.changed": {
    description:
      "An organization's effective plan changed: another plan, its plan's terms, its overrides or its billing anchor",
    data: z.looseObject({
      reason: z.enum(["plan_assigned", "overrides_changed", "plan_updated"]),
      planId: id,
      previousPlanId: id,
      billingAnchor: isoTime,
      limits: z.record(z.string(), z.number()),
      included: z.record(z.string(), z.number()),
      prices: z.record(z.string(), z.number()),
      overridden: z.array(z.string()),
    }),
    example: {
      reason: "overrides_changed",
      planId: "pro",
      previousPlanId: "pro",
      billingAnchor: "2026-01-01T00:00:00.000Z",
      limits: { api_calls: 2000000, storage: 107374182400 },
      included: { api_calls: 500000 },
      prices: { api_calls: 0.0001 },
      overridden: ["limits.api_calls"],
    },
  },
  "webhook.test": {
    description: "A test event sent on request",
    data: webhookData({ message: z.string() }),
    example: { webhookId: "wh_1", message: "This is a test event from CloudMatrix." },
  },
  "webhook.circuit_opened": {
    description: "Deliveries to an endpoint are paused after repeated failures",
    data: circuitData,
    example: {
      webhookId: "wh_1",
      from: "closed",
      to: "open",
      reason: "5 consecutive failures",
      failureCount: 5,
      halfOpenAt: "2026-01-01T00:01:00.000Z",
    },
  },
  "webhook.circuit_half_opened": {
    description: "An endpoint is being probed after its cooldown",
    data: circuitData,
    example: { webhookId: "wh_1", from: "open", to: "half_open", reason: "cooldown elapsed", failureCount: 5 },
  },
  "webhook.circuit_closed": {
    description: "Deliveries to an endpoint resumed",
    data: circuitData,
    example: { webhookId: "wh_1", from: "half_open", to: "closed", reason: "2 consecutive successes" },
  },
  "webhook.disabled": {
    description: "An endpoint was disabled: it answered 410 Gone, or every attempt failed for the auto-disable period",
    data: webhookData({
      reason: z.string(),
      cause: z.enum(["gone", "failing"]).optional(),
      failingSince: isoTime.nullable().optional(),
    }),
    example: {
      webhookId: "wh_1",
      reason: "every attempt failed since 2026-01-01T00:00:00.000Z",
      cause: "failing",
      failingSince: "2026-01-01T00:00:00.000Z",
    },
  },
} as const satisfies Record<string, EventDefinition>;

/** A known event type. */
export type EventType = keyof typeof eventDefinitions;

/** All known event types. */
export const eventTypes = Object.keys(eventDefinitions) as EventType[];

/** Type → description (the catalog's original shape). */
export const eventCatalog = Object.fromEntries(eventTypes.map((t) => [t, eventDefinitions[t].description])) as {
  readonly [T in EventType]: (typeof eventDefinitions)[T]["description"];
};

const known = new Set<string>(eventTypes);

/** Whether `type` is in the catalog. */
export function isEventType(type: string): type is EventType {
  return known.has(type);
}

/** Whether `type` matches a subscription pattern (`*`, `team.*`, or exact). */
export function matchesEventType(pattern: string, type: string): boolean {
  if (pattern === "*") return true;
  if (pattern.endsWith(".*")) return type.startsWith(pattern.slice(0, -1));
  return pattern === type;
}

/** Whether a pattern is valid and matches at least one known type (so typos are caught). */
export function isKnownPattern(pattern: string): boolean {
  if (pattern === "*") return true;
  if (pattern.endsWith(".*"))
    return (
      /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.\*$/.test(pattern) && eventTypes.some((t) => matchesEventType(pattern, t))
    );
  return isEventType(pattern);
}

/** Known types matched by any of `patterns`. */
export function typesMatching(patterns: readonly string[]): EventType[] {
  return eventTypes.filter((t) => patterns.some((p) => matchesEventType(p, t)));
}

/** One entry of `GET /v1/event-types`. */
export interface EventTypeDescription {
  type: EventType;
  description: string;
  /** JSON Schema (draft 2020-12) of `data`. */
  schema: Record<string, unknown>;
  example: Record<string, unknown>;
}

let described: EventTypeDescription[] | undefined;

/** The catalog as documents: every type with its description, `data` JSON Schema and example. */
export function describeEventTypes(): EventTypeDescription[] {
  described ??= eventTypes.map((type) => {
    const d: EventDefinition = eventDefinitions[type];
    return {
      type,
      description: d.description,
      schema: z.toJSONSchema(d.data, { target: "draft-2020-12", io: "input" }) as Record<string, unknown>,
      example: d.example,
    };
  });
  return described;
}
