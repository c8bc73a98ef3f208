import { createEvent } from "../events/cloudevent.ts";
import { withTransaction } from "../events/bus.ts";
import { queueEmail } from "../platform/email.ts";
import type { Platform } from "../platform/platform.ts";

/** A threshold or limit crossed by an organization's counters. */
export type AlertCrossing =
  | {
      kind: "threshold";
      subscription: { id: string; threshold: number; notificationChannels: string[] };
      metricType: string;
      used: number;
      limit: number;
      periodStart: Date;
    }
  | { kind: "exceeded"; metricType: string; used: number; limit: number; periodStart: Date };

/**
 * Fires alerts exactly once: a row per (subscription, period) — or (organization, metric, period)
 * for exceeded limits — is claimed in the transaction that writes the event into the outbox and the
 * in-app notification and queues the e-mail; a crossing seen again (a retried batch, a restarted
 * object) claims nothing.
 */
export async function fireAlerts(p: Platform, org: string, crossings: readonly AlertCrossing[]): Promise<number> {
  return withTransaction(p.db, async (tx, outbox) => {
    let n = 0;
    for (const c of crossings) {
      const pct = Math.round((c.used / c.limit) * 10_000) / 100;
      if (c.kind === "threshold") {
        const claim = await tx.query<{ notify_email: string | null }>(
          `insert into usage_alerts_fired (subscription_id, period_start, used, usage_limit) values ($1, $2, $3, $4)
           on conflict do nothing returning (select notify_email from usage_alert_subscriptions where id = $1)`,
          [c.subscription.id, c.periodStart.toISOString(), c.used, c.limit],
        );
        if (claim.rowCount === 0) continue;
        n += 1;
        const data = {
          subscriptionId: c.subscription.id,
          metricType: c.metricType,
          threshold: c.subscription.threshold,
          used: c.used,
          limit: c.limit,
          percentage: pct,
          periodStart: c.periodStart.toISOString(),
          channels: c.subscription.notificationChannels,
        };
        // The event reaches webhook subscribers (channel `webhook`) through the fan-out.
        await outbox.publish(
          createEvent({
            type: "usage.quota.threshold_crossed",
            organizationId: org,
            source: "/cloudmatrix-edge/usage",
            subject: `usage/${c.metricType}`,
            id: `usage-threshold:${c.subscription.id}:${c.periodStart.toISOString()}`,
            data,
          }),
        );
        if (c.subscription.notificationChannels.includes("in_app")) {
          await tx.query(
            "insert into notifications (organization_id, kind, title, body) values ($1, 'usage.quota.threshold_crossed', $2, $3)",
            [org, `${c.metricType} reached ${c.subscription.threshold}% of the plan limit`, JSON.stringify(data)],
          );
        }
        const to = claim.rows[0]?.notify_email;
        if (c.subscription.notificationChannels.includes("email") && to) {
          // Queued in this transaction: the e-mail exists exactly when the alert was claimed.
          await queueEmail(tx, {
            to,
            subject: `CloudMatrix: ${c.metricType} at ${pct}% of your plan`,
            text: `Your organization ${org} has used ${c.used} of ${c.limit} ${c.metricType} (${pct}%) this billing period.`,
            kind: "usage.alert",
            organizationId: org,
          });
        }
      } else {
        const claim = await tx.query(
          "insert into usage_quota_exceeded (organization_id, metric_type, period_start) values ($1, $2, $3) on conflict do nothing",
          [org, c.metricType, c.periodStart.toISOString()],
        );
        if (claim.rowCount === 0) continue;
        n += 1;
        const data = {
          metricType: c.metricType,
          used: c.used,
          limit: c.limit,
          periodStart: c.periodStart.toISOString(),
        };
        await outbox.publish(
          createEvent({
            type: "usage.quota.exceeded",
            organizationId: org,
            source: "/cloudmatrix-edge/usage",
            subject: `usage/${c.metricType}`,
            id: `usage-exceeded:${org}:${c.metricType}:${c.periodStart.toISOString()}`,
            data,
          }),
        );
        await tx.query(
          "insert into notifications (organization_id, kind, title, body) values ($1, 'usage.quota.exceeded', $2, $3)",
          [org, `${c.metricType} exceeded the plan limit`, JSON.stringify(data)],
        );
      }
    }
    return n;
  });
}
