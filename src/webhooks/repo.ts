import type { Queryable } from "../platform/db.ts";
import type { Endpoint } from "./attempt.ts";
import type { CircuitRecord } from "./circuit.ts";
import type { AttemptRecord } from "./queue.ts";
import type { Delivery, Webhook, WebhookStats } from "./schemas.ts";
import type { EndpointSettings, StoredOverrides } from "./settings.ts";
import { resolveSettings } from "./settings.ts";

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
  /** Overrides of the global delivery settings. */
  settings: StoredOverrides;
  /** The last sequence number given to one of its deliveries. */
  delivery_seq: string;
  created_by: string;
  created_by_email: string | null;
  notification_email: string | null;
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
  w.active, w.disabled_reason, w.description, w.headers, w.settings, w.delivery_seq::text, w.created_by, w.created_by_email,
  w.notification_email, w.created_at, w.created_at::text as created_at_text, w.updated_at,
  s.total_deliveries, s.successful_deliveries, s.failed_deliveries, s.total_response_time_ms, s.attempts,
  s.last_delivery_at, s.last_delivery_status`;

/** Maps a row to the seed's `Webhook` (settings resolved against `defaults`); the secret is masked unless `reveal`. */
export function toWebhook(r: WebhookRow, defaults: EndpointSettings, reveal = false): Webhook {
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
    settings: resolveSettings(defaults, r.settings),
    notificationEmail: r.notification_email,
    lastSequence: Number(r.delivery_seq ?? 0),
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

/**
 * What an endpoint object needs to deliver (URL, live secrets, headers, effective settings), from a
 * row: null when deleted, "inactive" when disabled.
 */
export function endpointFromRow(
  row: WebhookRow | undefined,
  defaults: EndpointSettings,
  now: number,
): Endpoint | null | "inactive" {
  if (!row) return null;
  if (!row.active) return "inactive";
  const previousLive =
    row.previous_secret && row.previous_secret_expires_at && new Date(row.previous_secret_expires_at).getTime() > now;
  return {
    id: row.id,
    url: row.url,
    headers: row.headers,
    secrets: previousLive ? [row.secret, row.previous_secret!] : [row.secret],
    settings: resolveSettings(defaults, row.settings),
  };
}

/** Every pattern that matches an event type: `*`, each `prefix.*`, and the type itself. */
export function patternsFor(type: string): string[] {
  const parts = type.split(".");
  const out = ["*", type];
  for (let i = 1; i < parts.length; i++) out.push(`${parts.slice(0, i).join(".")}.*`);
  return out;
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
  /** The endpoint's gap-free number of this delivery. */
  sequence: string | null;
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
    ...(r.sequence !== null && r.sequence !== undefined ? { sequence: Number(r.sequence) } : {}),
    attemptNumber: r.attempt_count,
    scheduledAt: iso(r.scheduled_at)!,
    ...(r.last_attempt_at ? { attemptedAt: iso(r.last_attempt_at)! } : {}),
    ...(r.response_status !== null ? { responseStatus: r.response_status } : {}),
    ...(r.response_time_ms !== null ? { responseTimeMs: r.response_time_ms } : {}),
    ...(r.error_message ? { errorMessage: r.error_message } : {}),
    createdAt: iso(r.created_at)!,
  };
}

/** Filters and page of {@link listDeliveryRows}. */
export interface DeliveryListOptions {
  /** Page size (one row more is read, which tells whether there is more). */
  limit: number;
  status?: Delivery["status"];
  /** Concrete event types (a pattern resolved by the caller); absent: every type. */
  types?: readonly string[];
  /** Created at or after. */
  since?: string;
  /** Created before. */
  until?: string;
  /** The page starts below this (created_at, id): the cursor. */
  before?: { createdAt: string; id: string };
}

/**
 * A webhook's deliveries matching every filter, newest first, keyset-paginated by (created_at, id),
 * with the count of all that match. Time and cursor are a range of `webhook_deliveries_webhook_idx`;
 * one event type, of `webhook_deliveries_type_idx` (migration 0020), read in order without sorting.
 * The SQL names only the filters given, so each plan fits its query.
 */
export async function listDeliveryRows(
  db: Queryable,
  webhookId: string,
  o: DeliveryListOptions,
): Promise<{ rows: DeliveryRow[]; total: number }> {
  const params: unknown[] = [webhookId];
  let where = "webhook_id = $1";
  if (o.status) where += ` and status = $${params.push(o.status)}`;
  if (o.types?.length === 1) where += ` and event_type = $${params.push(o.types[0])}`;
  else if (o.types) where += ` and event_type = any($${params.push(o.types)}::text[])`;
  if (o.since) where += ` and created_at >= $${params.push(o.since)}::timestamptz`;
  if (o.until) where += ` and created_at < $${params.push(o.until)}::timestamptz`;
  const filter = { where, params: [...params] };
  if (o.before)
    where += ` and (created_at, id) < ($${params.push(o.before.createdAt)}::timestamptz, $${params.push(o.before.id)})`;
  const [page, total] = await Promise.all([
    db.query<DeliveryRow>(
      `select *, created_at::text as created_at_text from webhook_deliveries where ${where}
       order by created_at desc, id desc limit $${params.push(o.limit + 1)}`,
      params,
    ),
    db.query<{ n: number }>(`select count(*)::int as n from webhook_deliveries where ${filter.where}`, filter.params),
  ]);
  return { rows: page.rows, total: total.rows[0]?.n ?? 0 };
}

/** One delivery. */
export async function findDelivery(db: Queryable, id: string): Promise<DeliveryRow | undefined> {
  return (await db.query<DeliveryRow>("select * from webhook_deliveries where id = $1", [id])).rows[0];
}

/** One attempt as written to `webhook_attempts` (and as an endpoint object buffers it). */
export interface AttemptRow {
  delivery_id: string;
  webhook_id: string;
  attempt_number: number;
  attempted_at: string;
  success: boolean;
  response_status: number | null;
  response_time_ms: number;
  response_body: string | null;
  request_headers: Record<string, string> | null;
  response_headers: Record<string, string> | null;
  error_type: string | null;
  error_message: string | null;
  /** The delivery's status after it: pending (retrying), succeeded or failed. */
  status: "pending" | "succeeded" | "failed";
  next_at: string | null;
}

/** The row of one attempt record. */
export function attemptRow(webhookId: string, r: AttemptRecord): AttemptRow {
  return {
    delivery_id: r.job.deliveryId,
    webhook_id: webhookId,
    attempt_number: r.attemptNumber,
    attempted_at: new Date(r.attemptedAt).toISOString(),
    success: r.outcome.success,
    response_status: r.outcome.statusCode ?? null,
    response_time_ms: Math.round(r.outcome.responseTimeMs),
    response_body: r.outcome.responseBody ?? null,
    request_headers: r.outcome.requestHeaders ?? null,
    response_headers: r.outcome.responseHeaders ?? null,
    error_type: r.outcome.errorType ?? null,
    error_message: r.outcome.error ?? null,
    status: r.decision.kind === "succeeded" ? "succeeded" : r.decision.kind === "retry" ? "pending" : "failed",
    next_at: r.decision.kind === "retry" ? new Date(r.decision.at).toISOString() : null,
  };
}

/**
 * Writes attempts of any endpoints in one round trip: the attempt log and each delivery's status.
 * Idempotent, so a batch may be written twice (a flush repeated after a crash): an attempt is
 * (delivery, attempt number), and a delivery takes only an attempt later than the last it has
 * (several of one delivery in a batch: the latest). The webhook's stats follow by triggers
 * (migration 0008), counting only rows that changed.
 */
export async function writeAttempts(db: Queryable, rows: readonly AttemptRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.query(
    `with a as (
       select * from jsonb_to_recordset($1::jsonb) as x(delivery_id text, webhook_id text, attempt_number int,
         attempted_at timestamptz, success bool, response_status int, response_time_ms int, response_body text,
         request_headers jsonb, response_headers jsonb, error_type text, error_message text, status text, next_at timestamptz)
     ), ins as (
       insert into webhook_attempts (delivery_id, webhook_id, attempt_number, attempted_at, success, response_status,
         response_time_ms, response_body, request_headers, response_headers, error_type, error_message)
       select delivery_id, webhook_id, attempt_number, attempted_at, success, response_status, response_time_ms,
         response_body, request_headers, response_headers, error_type, error_message from a
       on conflict (delivery_id, attempt_number) do nothing
     ), latest as (
       select distinct on (delivery_id) * from a order by delivery_id, attempt_number desc
     ), upd as (
       update webhook_deliveries d set
         status = l.status, attempt_count = l.attempt_number, last_attempt_at = l.attempted_at,
         scheduled_at = coalesce(l.next_at, d.scheduled_at), response_status = l.response_status,
         response_time_ms = l.response_time_ms, error_message = l.error_message,
         completed_at = case when l.status in ('succeeded', 'failed') then l.attempted_at end
       from latest l where d.id = l.delivery_id and d.status <> 'cancelled' and d.attempt_count < l.attempt_number
     )
     select 1`,
    [JSON.stringify(rows)],
  );
}
