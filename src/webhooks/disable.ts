import type { EventBus } from "../events/bus.ts";
import { createEvent } from "../events/cloudevent.ts";
import type { Queryable } from "../platform/db.ts";
import { queueEmail } from "../platform/email.ts";
import type { DisableReason } from "./runner.ts";

/**
 * Disabling an endpoint on its own (410 Gone, or every attempt failed for the auto-disable period):
 * one transaction marks the webhook inactive, publishes `webhook.disabled` through the outbox and
 * queues an e-mail to its notification address (`notificationEmail`, else the e-mail of the token
 * that registered it; none known: no e-mail, the event still goes out).
 */

/** The reason text stored in `disabled_reason` and sent in the event. */
export function disableReasonText(r: DisableReason): string {
  return r.cause === "gone"
    ? "endpoint answered 410 Gone"
    : `every attempt failed since ${new Date(r.since).toISOString()}`;
}

/** The e-mail about an auto-disabled endpoint. */
export function disabledEmail(w: { id: string; url: string; organizationId: string }, reason: string) {
  return {
    subject: `Webhook endpoint disabled: ${w.url}`,
    text: [
      `CloudMatrix disabled the webhook endpoint ${w.url} (${w.id}) of organization ${w.organizationId}:`,
      `${reason}.`,
      "",
      "Events that arrive while it is disabled are kept (status held), not sent.",
      `To resume: PATCH /v1/orgs/${w.organizationId}/webhooks/${w.id} {"active": true},`,
      `then POST /v1/orgs/${w.organizationId}/webhooks/${w.id}/recover {"since": "<when it was disabled>"}`,
      "to deliver what was held or failed meanwhile.",
    ].join("\n"),
  };
}

/**
 * Disables `webhookId` if it is still active; returns whether it did (a second disable is a no-op:
 * one event, one e-mail).
 */
export async function disableWebhook(
  tx: Queryable,
  outbox: EventBus,
  webhookId: string,
  reason: DisableReason,
): Promise<boolean> {
  const text = disableReasonText(reason);
  const { rows } = await tx.query<{
    organization_id: string;
    url: string;
    notification_email: string | null;
    created_by_email: string | null;
  }>(
    `update webhooks set active = false, disabled_reason = $2, updated_at = now()
     where id = $1 and active and deleted_at is null
     returning organization_id, url, notification_email, created_by_email`,
    [webhookId, text],
  );
  const w = rows[0];
  if (!w) return false;
  await outbox.publish(
    createEvent({
      type: "webhook.disabled",
      organizationId: w.organization_id,
      source: "/cloudmatrix-edge/webhooks",
      subject: `webhooks/${webhookId}`,
      data: {
        webhookId,
        reason: text,
        cause: reason.cause,
        failingSince: reason.cause === "failing" ? new Date(reason.since).toISOString() : null,
      },
    }),
  );
  const to = w.notification_email ?? w.created_by_email;
  if (to) {
    await queueEmail(tx, {
      to,
      kind: "webhook.disabled",
      organizationId: w.organization_id,
      ref: `webhook:${webhookId}`,
      ...disabledEmail({ id: webhookId, url: w.url, organizationId: w.organization_id }, text),
    });
  }
  return true;
}
