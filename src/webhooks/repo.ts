import type { Queryable } from "../platform/db.ts";
import type { CircuitRecord } from "./circuit.ts";
import type { AttemptRecord } from "./runner.ts";
import type { Delivery, Webhook, WebhookStats } from "./schemas.ts";

/** Postgres access of the webhook service: plain SQL, one function per question. */

/** A `webhooks` row. */
export interface WebhookRow {
  id: string;
  organization_id: string;
  url: string;
  events: string[];
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: Date | null;
  active: boolean;
  disabled_reason: string | null;
  description: string;
  headers: Record<string, string>;
  created_by: string;
  created_at: Date;
  /** created_at in Postgres' text form: full microsecond precision, for cursors. */
  created_at_text: string;
  updated_at: Date;
  total_deliveries: string | null;
  successful_deliveries: string | null;
  failed_deliveries: string | null;
  total_response_time_ms: string | null;
  attempts: string | null;
  last_delivery_at: Date | null;
  last_delivery_status: string | null;
}

const iso = (d: Date | string | null | undefined) => (d ? new Date(d).toISOString() : null);

const WEBHOOK_COLUMNS = `w.id, w.organization_id, w.url, w.events, w.secret, w.previous_secret, w.previous_secret_expires_at,
  w.active, w.disabled_reason, w.description, w.headers, w.created_by, w.created_at, w.created_at::text as created_at_text, w.updated_at,
  s.total_deliveries, s.successful_deliveries, s.failed_deliveries, s.total_response_time_ms, s.attempts,
  s.last_delivery_at, s.last_delivery_status`;

/** Maps a row to the seed's `Webhook`; the secret is masked unless `reveal`. */
export function toWebhook(r: WebhookRow, reveal = false): Webhook {
  const attempts = Number(r.attempts ?? 0);
  const stats: WebhookStats = {
    totalDeliveries: Number(r.total_deliveries ?? 0),
    successfulDeliveries: Number(r.successful_deliveries ?? 0),
    failedDeliveries: Number(r.failed_deliveries ?? 0),
    attempts,
    averageResponseTimeMs: attempts ? Math.round((Number(r.total_response_time_ms ?? 0) / attempts) * 10) / 10 : 0,
    lastDeliveryAt: iso(r.last_delivery_at),
    lastDeliveryStatus: r.last_delivery_status,
  };
  return {
    id: r.id,
    organizationId: r.organization_id,
    url: r.url,
    events: r.events,
    secret: reveal ? r.secret : `whsec_${"*".repeat(8)}${r.secret.slice(-4)}`,
    active: r.active,
    disabledReason: r.disabled_reason,
    description: r.description,
    headers: r.headers,
    createdBy: r.created_by,
    createdAt: iso(r.created_at)!,
    updatedAt: iso(r.updated_at)!,
    stats,
  };
}

/** A live (not deleted) webhook with its stats. */
export async function findWebhook(db: Queryable, id: string): Promise<WebhookRow | undefined> {
  const { rows } = await db.query<WebhookRow>(
    `select ${WEBHOOK_COLUMNS} from webhooks w left join webhook_stats s on s.webhook_id = w.id where w.id = $1 and w.deleted_at is null`,
    [id],
  );
  return rows[0];
}

/** Webhooks of an organization, oldest first, keyset-paginated by (created_at, id). */
export async function listWebhookRows(
  db: Queryable,
  org: string,
  o: { limit: number; after?: { createdAt: string; id: string }; active?: boolean },
) {
  const params: unknown[] = [org, o.limit + 1];
  let where = "w.organization_id = $1 and w.deleted_at is null";
  if (o.active !== undefined) where += ` and w.active = $${params.push(o.active)}`;
  if (o.after)
    where += ` and (w.created_at, w.id) > ($${params.push(o.after.createdAt)}::timestamptz, $${params.push(o.after.id)})`;
  const [page, total] = await Promise.all([
    db.query<WebhookRow>(
      `select ${WEBHOOK_COLUMNS} from webhooks w left join webhook_stats s on s.webhook_id = w.id where ${where} order by w.created_at, w.id limit $2`,
      params,
    ),
    db.query<{ n: number }>(
      `select count(*)::int as n from webhooks w where w.organization_id = $1 and w.deleted_at is null${o.active === undefined ? "" : " and w.active = $2"}`,
      o.active === undefined ? [org] : [org, o.active],
    ),
  ]);
  return { rows: page.rows, total: total.rows[0]?.n ?? 0 };
}

/** Every pattern that matches an event type: `*`, each `prefix.*`, and the type itself. */
export function patternsFor(type: string): string[] {
  const parts = type.split(".");
  const out = ["*", type];
  for (let i = 1; i < parts.length; i++) out.push(`${parts.slice(0, i).join(".")}.*`);
  return out;
}

/**
 * Webhooks of `org` (not deleted) subscribed to `type`, active or not: a disabled one still gets
 * its deliveries recorded, as `held` (GIN-indexed array overlap).
 */
export async function matchingWebhooks(
  db: Queryable,
  org: string,
  type: string,
): Promise<{ id: string; active: boolean }[]> {
  const { rows } = await db.query<{ id: string; active: boolean }>(
    "select id, active from webhooks where organization_id = $1 and deleted_at is null and events && $2::text[] order by id",
    [org, patternsFor(type)],
  );
  return rows;
}

/**
 * Mirrors the breaker of an endpoint object in Postgres (on every transition and reset), so the
 * cron sweep can skip endpoints whose deliveries are held.
 */
export async function recordCircuit(db: Queryable, webhookId: string, c: CircuitRecord): Promise<void> {
  await db.query("update webhooks set circuit_state = $2, circuit_half_open_at = $3 where id = $1", [
    webhookId,
    c.state,
    c.state === "closed" || c.halfOpenAt === null ? null : new Date(c.halfOpenAt).toISOString(),
  ]);
}

/** A `webhook_deliveries` row. */
export interface DeliveryRow {
  id: string;
  webhook_id: string;
  organization_id: string;
  event_id: string;
  event_type: string;
  payload: string;
  status: Delivery["status"];
  /** Attempts in all. */
  attempt_count: number;
  /** attempt_count when the current retry schedule started (a replay starts a fresh one). */
  schedule_base: number;
  scheduled_at: Date;
  last_attempt_at: Date | null;
  response_status: number | null;
  response_time_ms: number | null;
  error_message: string | null;
  created_at: Date;
  /** created_at in Postgres' text form (cursors). */
  created_at_text?: string;
}

/** Maps a row to the seed's `Delivery`. */
export function toDelivery(r: DeliveryRow): Delivery {
  return {
    id: r.id,
    webhookId: r.webhook_id,
    eventId: r.event_id,
    eventType: r.event_type,
    status: r.status,
    attemptNumber: r.attempt_count,
    scheduledAt: iso(r.scheduled_at)!,
    ...(r.last_attempt_at ? { attemptedAt: iso(r.last_attempt_at)! } : {}),
    ...(r.response_status !== null ? { responseStatus: r.response_status } : {}),
    ...(r.response_time_ms !== null ? { responseTimeMs: r.response_time_ms } : {}),
    ...(r.error_message ? { errorMessage: r.error_message } : {}),
    createdAt: iso(r.created_at)!,
  };
}

/** One delivery. */
export async function findDelivery(db: Queryable, id: string): Promise<DeliveryRow | undefined> {
  return (await db.query<DeliveryRow>("select * from webhook_deliveries where id = $1", [id])).rows[0];
}

/**
 * Records a wave of attempts in one round trip: the attempts' history and each delivery's status.
 * The webhook's stats follow from both by triggers (migration 0008), like every other change.
 */
export async function recordAttempts(
  db: Queryable,
  webhookId: string,
  records: readonly AttemptRecord[],
): Promise<void> {
  if (records.length === 0) return;
  const rows = records.map((r) => ({
    delivery_id: r.job.deliveryId,
    attempt_number: r.attemptNumber,
    attempted_at: new Date(r.attemptedAt).toISOString(),
    success: r.outcome.success,
    response_status: r.outcome.statusCode ?? null,
    response_time_ms: Math.round(r.outcome.responseTimeMs),
    response_body: r.outcome.responseBody ?? null,
    error_type: r.outcome.errorType ?? null,
    error_message: r.outcome.error ?? null,
    status: r.decision.kind === "succeeded" ? "succeeded" : r.decision.kind === "retry" ? "pending" : "failed",
    next_at: r.decision.kind === "retry" ? new Date(r.decision.at).toISOString() : null,
  }));
  await db.query(
    `with a as (
       select * from jsonb_to_recordset($2::jsonb) as x(delivery_id text, attempt_number int, attempted_at timestamptz, success bool,
         response_status int, response_time_ms int, response_body text, error_type text, error_message text, status text, next_at timestamptz)
     ), ins as (
       insert into webhook_attempts (delivery_id, webhook_id, attempt_number, attempted_at, success, response_status, response_time_ms, response_body, error_type, error_message)
       select delivery_id, $1, attempt_number, attempted_at, success, response_status, response_time_ms, response_body, error_type, error_message from a
     ), upd as (
       update webhook_deliveries d set
         status = a.status, attempt_count = a.attempt_number, last_attempt_at = a.attempted_at,
         scheduled_at = coalesce(a.next_at, d.scheduled_at), response_status = a.response_status,
         response_time_ms = a.response_time_ms, error_message = a.error_message,
         completed_at = case when a.status in ('succeeded', 'failed') then a.attempted_at end
       from a where d.id = a.delivery_id and d.status <> 'cancelled'
     )
     select 1`,
    [webhookId, JSON.stringify(rows)],
  );
}
