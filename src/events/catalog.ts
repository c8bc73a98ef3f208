/**
 * Every event type the platform knows, with what it means. Producers may only emit these; webhook
 * subscriptions and inbound validation check against them. Patterns: `*` (everything), `team.*`
 * (a prefix at any depth, so `usage.*` covers `usage.quota.exceeded`), or an exact type.
 */
export const eventCatalog = {
  "document.created": "A document was created",
  "document.updated": "A document's content or metadata changed",
  "document.deleted": "A document was deleted",
  "document.viewed": "A document was opened for reading",
  "document.shared": "A document was shared with a user or team",
  "collaboration.session_started": "A real-time editing session began",
  "collaboration.session_ended": "A real-time editing session ended",
  "storage.upload": "A file was uploaded (quantity = bytes)",
  "storage.delete": "A file was deleted (quantity = bytes freed)",
  "presence.joined": "A user opened a document",
  "presence.left": "A user closed a document",
  "presence.heartbeat": "A user is still active on a document",
  "api.call": "A public API request was served",
  "team.created": "A team was created",
  "team.updated": "A team's properties changed",
  "team.deleted": "A team was deleted",
  "team.moved": "A team moved in the hierarchy",
  "member.added": "A user joined a team",
  "member.removed": "A user left a team",
  "member.role_changed": "A member's role changed",
  "invitation.sent": "An invitation was sent",
  "invitation.accepted": "An invitation was accepted",
  "invitation.revoked": "An invitation was revoked",
  "invitation.expired": "An invitation expired unused",
  "usage.quota.threshold_crossed": "A usage counter crossed an alert threshold",
  "usage.quota.exceeded": "A usage counter exceeded its plan limit",
  "organization.plan.changed":
    "An organization's effective plan changed: another plan, its plan's terms, its overrides or its billing anchor",
  "webhook.test": "A test event sent on request",
  "webhook.circuit_opened": "Deliveries to an endpoint are paused after repeated failures",
  "webhook.circuit_half_opened": "An endpoint is being probed after its cooldown",
  "webhook.circuit_closed": "Deliveries to an endpoint resumed",
  "webhook.disabled": "An endpoint was disabled (410 Gone)",
} as const;

/** A known event type. */
export type EventType = keyof typeof eventCatalog;

/** All known event types. */
export const eventTypes = Object.keys(eventCatalog) as EventType[];

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
