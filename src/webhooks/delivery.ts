import type { EventBus } from "../events/bus.ts";
import type { Config } from "../platform/config.ts";
import type { Db } from "../platform/db.ts";
import { ConflictError, NotFoundError, ValidationError } from "../platform/errors.ts";
import type { Redis } from "../platform/redis.ts";
import { decodeCursor, encodeCursor } from "../platform/cursor.ts";
import { parseInput } from "../platform/validation.ts";
import type { CircuitState } from "./circuit.ts";
import type { Job } from "./queue.ts";
import type { DeliveryRow, WebhookRow } from "./repo.ts";
import { findDelivery, findWebhook, listWebhookRows, matchingWebhooks, toDelivery, toWebhook } from "./repo.ts";
import type { AttemptRecord } from "./runner.ts";
import type {
  Delivery,
  DeliveryResult,
  EventDeliveryStatus,
  Webhook,
  WebhookEvent,
  WebhookHealthMetrics,
  WebhookRegistration,
  WebhookUpdate,
} from "./schemas.ts";
import {
  historyOptionsSchema,
  listOptionsSchema,
  webhookEventSchema,
  webhookRegistrationSchema,
  webhookUpdateSchema,
} from "./schemas.ts";
import {
  generateSecret,
  signPayload as signWebhookPayload,
  verifySignature as verifyWebhookSignature,
} from "./signing.ts";
import { assertWebhookUrl } from "./url-policy.ts";

/** The RPC surface of an endpoint's Durable Object (`WebhookEndpoint`), as the service uses it. */
export interface EndpointClient {
  enqueue(webhookId: string, organizationId: string, jobs: Job[]): Promise<number>;
  drain(): Promise<{ processed: number; succeeded: number; failed: number }>;
  attemptNow(deliveryId: string): Promise<{ record?: AttemptRecord; circuit: CircuitState }>;
  circuitState(webhookId: string): Promise<CircuitState>;
  resetCircuit(): Promise<{ reset: boolean }>;
  cancelAll(): Promise<number>;
  invalidate(): Promise<void>;
}

/** Constructor options (the seed's, plus what the edge architecture adds). */
export interface WebhookDeliveryOptions {
  /** PostgreSQL (request-scoped). */
  db: Db;
  /** Redis; not needed by delivery itself (queues live in the endpoint objects), kept for the seed's contract. */
  redis?: Redis;
  /** Event bus for `webhook.*` events. */
  eventBus?: EventBus;
  /** HTTP client for deliveries: used by the endpoint objects (`attemptDelivery`); accepted here for the seed's contract. */
  httpClient?: typeof fetch;
  /** The endpoint object of a webhook. */
  endpoints: (webhookId: string) => EndpointClient;
  /** `config.webhooks`. */
  config: Config["webhooks"];
  now?: () => number;
}

/** Pagination options of {@link WebhookDeliverySystem.listWebhooks}. */
export interface ListWebhooksOptions {
  limit?: number;
  cursor?: string;
  active?: boolean;
}

/** Pagination options of {@link WebhookDeliverySystem.getDeliveryHistory}. */
export interface HistoryOptions {
  limit?: number;
  cursor?: string;
  status?: Delivery["status"];
}

/** A random delivery id: `msg_` + 26 base32 characters (128 bits). */
export function newDeliveryId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
  let bits = 0;
  let value = 0;
  let out = "";
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return `msg_${out}`;
}

/**
 * The body every delivery carries, exactly `JSON.stringify` of this object: `id` (= the
 * `webhook-id` header, for deduplication), the event's type, id, organization, time and data.
 */
export function envelope(
  deliveryId: string,
  e: { eventType: string; eventId: string; organizationId: string; occurredAt: string; data: unknown },
): string {
  return JSON.stringify({
    id: deliveryId,
    type: e.eventType,
    eventId: e.eventId,
    organizationId: e.organizationId,
    occurredAt: e.occurredAt,
    data: e.data,
  });
}

const toJob = (
  d: Pick<DeliveryRow, "id" | "event_id" | "event_type" | "payload" | "attempt_count" | "schedule_base" | "created_at">,
  dueAt: number,
): Job => ({
  deliveryId: d.id,
  eventId: d.event_id,
  eventType: d.event_type,
  body: d.payload,
  attempts: d.attempt_count,
  scheduleBase: d.schedule_base,
  dueAt,
  createdAt: new Date(d.created_at).getTime(),
});

/**
 * WebhookDeliverySystem — reliable webhook delivery with retries and circuit breaking (seed Task 3).
 * Postgres holds endpoints, deliveries, attempts and stats; each endpoint's Durable Object holds its
 * pending deliveries, its breaker and the alarm that drives retries.
 */
export class WebhookDeliverySystem {
  private readonly db: Db;
  private readonly endpoints: (webhookId: string) => EndpointClient;
  private readonly config: Config["webhooks"];
  private readonly now: () => number;

  /**
   * @param options - db, redis, eventBus, httpClient (seed) plus the endpoint directory and settings
   */
  constructor(options: WebhookDeliveryOptions) {
    this.db = options.db;
    this.endpoints = options.endpoints;
    this.config = options.config;
    this.now = options.now ?? Date.now;
  }

  private policy() {
    return { allowLocalHttp: this.config.allowLocalHttp };
  }

  /**
   * Register a new webhook endpoint.
   * @param registration - organization, HTTPS URL, event types (wildcards allowed), description, custom headers, creator
   * @returns the webhook with its secret shown (the only time besides `GET …/secret`)
   * @throws {ValidationError} if the URL is not https, points at a private/loopback/metadata address, or events are unknown
   */
  async registerWebhook(registration: WebhookRegistration): Promise<Webhook> {
    const r = parseInput(webhookRegistrationSchema, registration, "webhook registration");
    const url = assertWebhookUrl(r.url, this.policy());
    const { rows } = await this.db.query<{ id: string }>(
      `insert into webhooks (id, organization_id, url, events, secret, description, headers, created_by)
       values ($1, $2, $3, $4, $5, $6, $7, $8) returning id`,
      [
        `wh_${crypto.randomUUID().replace(/-/g, "")}`,
        r.organizationId,
        url.toString(),
        r.events,
        generateSecret(),
        r.description,
        JSON.stringify(r.headers),
        r.createdBy,
      ],
    );
    return toWebhook((await findWebhook(this.db, rows[0]!.id))!, true);
  }

  /**
   * Get webhook by ID (secret masked).
   * @param webhookId - webhook identifier
   * @returns the webhook, or null if it does not exist or was deleted
   */
  async getWebhook(webhookId: string): Promise<Webhook | null> {
    const row = await findWebhook(this.db, webhookId);
    return row ? toWebhook(row) : null;
  }

  /** The webhook's current signing secret. @throws {NotFoundError} */
  async getWebhookSecret(webhookId: string): Promise<{ secret: string; previousSecretExpiresAt: string | null }> {
    const row = await this.mustFind(webhookId);
    const live = row.previous_secret_expires_at && new Date(row.previous_secret_expires_at).getTime() > this.now();
    return {
      secret: row.secret,
      previousSecretExpiresAt: live ? new Date(row.previous_secret_expires_at!).toISOString() : null,
    };
  }

  private async mustFind(webhookId: string): Promise<WebhookRow> {
    const row = await findWebhook(this.db, webhookId);
    if (!row) throw new NotFoundError(`webhook ${webhookId} not found`);
    return row;
  }

  /**
   * Update webhook configuration. `rotateSecret` issues a new secret; the previous one keeps
   * signing alongside (a second `v1,` entry) for the configured overlap.
   * @param webhookId - webhook identifier
   * @param updates - url, events, active, description, headers, rotateSecret
   * @returns the updated webhook (secret shown when it was rotated)
   * @throws {NotFoundError} if there is no such webhook; {ValidationError} on bad input
   */
  async updateWebhook(webhookId: string, updates: WebhookUpdate): Promise<Webhook> {
    const u = parseInput(webhookUpdateSchema, updates, "webhook update");
    const before = await this.mustFind(webhookId);
    const sets: string[] = [];
    const params: unknown[] = [webhookId];
    const set = (column: string, value: unknown) => sets.push(`${column} = $${params.push(value)}`);
    if (u.url !== undefined) set("url", assertWebhookUrl(u.url, this.policy()).toString());
    if (u.events !== undefined) set("events", u.events);
    if (u.description !== undefined) set("description", u.description);
    if (u.headers !== undefined) set("headers", JSON.stringify(u.headers));
    if (u.active !== undefined) {
      set("active", u.active);
      if (u.active) sets.push("disabled_reason = null");
    }
    if (u.rotateSecret) {
      sets.push(
        "previous_secret = secret",
        `previous_secret_expires_at = now() + ($${params.push(this.config.secretOverlapMs)}::bigint * interval '1 millisecond')`,
      );
      set("secret", generateSecret());
    }
    if (sets.length > 0) {
      await this.db.query(
        `update webhooks set ${sets.join(", ")}, updated_at = now() where id = $1 and deleted_at is null`,
        params,
      );
    }
    const endpoint = this.endpoints(webhookId);
    await endpoint.invalidate();
    // Re-enabled: the endpoint object holds its deliveries; wake it so they flow again.
    if (u.active && !before.active) await endpoint.enqueue(webhookId, before.organization_id, []);
    return toWebhook((await this.mustFind(webhookId))!, !!u.rotateSecret);
  }

  /**
   * Delete a webhook and cancel pending (and held) deliveries.
   * @param webhookId - webhook identifier
   * @returns whether it was deleted and how many pending deliveries were cancelled
   */
  async deleteWebhook(webhookId: string): Promise<{ deleted: boolean; cancelledDeliveries: number }> {
    const cancelled = await this.db.transaction(async (tx) => {
      const { rowCount } = await tx.query(
        "update webhooks set deleted_at = now(), active = false, updated_at = now() where id = $1 and deleted_at is null",
        [webhookId],
      );
      if (rowCount === 0) return null;
      const res = await tx.query(
        "update webhook_deliveries set status = 'cancelled', completed_at = now() where webhook_id = $1 and status in ('pending', 'in_progress', 'held')",
        [webhookId],
      );
      return res.rowCount;
    });
    if (cancelled === null) return { deleted: false, cancelledDeliveries: 0 };
    await this.endpoints(webhookId).cancelAll();
    return { deleted: true, cancelledDeliveries: cancelled };
  }

  /**
   * List webhooks for an organization, oldest first.
   * @param organizationId - organization identifier
   * @param options - limit (1–100, default 20), cursor (from `nextCursor`), active filter
   */
  async listWebhooks(
    organizationId: string,
    options: ListWebhooksOptions = {},
  ): Promise<{ webhooks: Webhook[]; total: number; hasMore: boolean; nextCursor: string | null }> {
    const o = parseInput(
      listOptionsSchema,
      { ...options, active: options.active === undefined ? undefined : String(options.active) },
      "list options",
    );
    const { rows, total } = await listWebhookRows(this.db, organizationId, {
      limit: o.limit,
      after: decodeCursor(o.cursor),
      active: o.active,
    });
    const page = rows.slice(0, o.limit);
    const hasMore = rows.length > o.limit;
    const last = page[page.length - 1];
    return {
      webhooks: page.map((r) => toWebhook(r)),
      total,
      hasMore,
      nextCursor: hasMore && last ? encodeCursor(last.created_at_text, last.id) : null,
    };
  }

  /**
   * Enqueue an event for delivery to all matching webhooks. Idempotent on `eventId`: a repeated
   * call creates nothing new and re-hands any still-pending delivery to its endpoint.
   * Every delivery is persisted in Postgres before this returns. A disabled webhook's delivery is
   * recorded as `held` and not handed over: `recoverFailed` sends it once the webhook is re-enabled.
   * @param event - the event (`eventId`, `eventType`, `organizationId`, `data`, `occurredAt`)
   * @returns how many deliveries are queued and to which (active) webhooks
   */
  async enqueueEvent(event: WebhookEvent): Promise<{ queued: number; webhookIds: string[] }> {
    const e = parseInput(webhookEventSchema, event, "webhook event");
    const targets = await matchingWebhooks(this.db, e.organizationId, e.eventType);
    if (targets.length === 0) return { queued: 0, webhookIds: [] };
    const rows = await this.insertDeliveries(
      e,
      targets.map((t) => ({ webhookId: t.id, status: t.active ? "pending" : "held" })),
    );
    const pending = rows.filter((r) => r.status === "pending");
    await this.handOff(pending);
    return { queued: pending.length, webhookIds: targets.filter((t) => t.active).map((t) => t.id) };
  }

  private async insertDeliveries(
    e: { eventId: string; eventType: string; organizationId: string; occurredAt: string; data: unknown },
    targets: { webhookId: string; status: "pending" | "held" }[],
  ): Promise<DeliveryRow[]> {
    const fresh = targets.map(({ webhookId, status }) => {
      const id = newDeliveryId();
      return { id, webhook_id: webhookId, status, payload: envelope(id, e) };
    });
    // One round trip: the new rows come back from the insert, rows of an earlier enqueue of the same
    // event from the select (both read the same snapshot, so nothing is returned twice).
    const { rows } = await this.db.query<DeliveryRow>(
      `with ins as (
         insert into webhook_deliveries (id, webhook_id, organization_id, event_id, event_type, payload, status)
         select x.id, x.webhook_id, $2, $3, $4, x.payload, x.status
         from jsonb_to_recordset($1::jsonb) as x(id text, webhook_id text, payload text, status text)
         on conflict (webhook_id, event_id) do nothing
         returning *
       )
       select * from ins
       union all
       select * from webhook_deliveries where event_id = $3 and webhook_id = any($5::text[])`,
      [JSON.stringify(fresh), e.organizationId, e.eventId, e.eventType, targets.map((t) => t.webhookId)],
    );
    return rows;
  }

  /** Hands pending deliveries to their endpoint objects; a failure is left to the sweep (the rows are durable). */
  private async handOff(rows: DeliveryRow[]): Promise<void> {
    const byWebhook = new Map<string, DeliveryRow[]>();
    for (const r of rows) byWebhook.set(r.webhook_id, [...(byWebhook.get(r.webhook_id) ?? []), r]);
    await Promise.all(
      [...byWebhook].map(([webhookId, list]) =>
        this.endpoints(webhookId).enqueue(
          webhookId,
          list[0]!.organization_id,
          list.map((d) => toJob(d, new Date(d.scheduled_at).getTime())),
        ),
      ),
    );
  }

  private result(
    deliveryId: string,
    record: AttemptRecord | undefined,
    circuit: CircuitState,
    reason?: string,
  ): DeliveryResult {
    if (!record) {
      return {
        deliveryId,
        success: false,
        responseTimeMs: 0,
        error:
          reason ?? (circuit.state === "open" ? `circuit open: held until ${circuit.halfOpenAt}` : "not attempted"),
        willRetry: circuit.state === "open",
        ...(circuit.state === "open" && circuit.halfOpenAt ? { nextRetryAt: circuit.halfOpenAt } : {}),
      };
    }
    const o = record.outcome;
    return {
      deliveryId,
      success: o.success,
      ...(o.statusCode !== undefined ? { statusCode: o.statusCode } : {}),
      responseTimeMs: o.responseTimeMs,
      ...(o.error ? { error: o.error } : {}),
      willRetry: record.decision.kind === "retry",
      ...(record.decision.kind === "retry" ? { nextRetryAt: new Date(record.decision.at).toISOString() } : {}),
    };
  }

  /**
   * Attempt delivery now, whatever its schedule (through the endpoint object, so the breaker and
   * the queue stay consistent).
   * @param deliveryId - delivery identifier
   * @throws {NotFoundError} if there is no such delivery
   */
  async attemptDelivery(deliveryId: string): Promise<DeliveryResult> {
    const d = await findDelivery(this.db, deliveryId);
    if (!d) throw new NotFoundError(`delivery ${deliveryId} not found`);
    if (d.status !== "pending")
      throw new ConflictError(`delivery ${deliveryId} is ${d.status}; use retryDelivery to send it again`);
    const webhook = await findWebhook(this.db, d.webhook_id);
    if (!webhook) throw new NotFoundError(`webhook ${d.webhook_id} not found`);
    const endpoint = this.endpoints(d.webhook_id);
    await endpoint.enqueue(d.webhook_id, d.organization_id, [toJob(d, this.now())]);
    const { record, circuit } = await endpoint.attemptNow(deliveryId);
    return this.result(
      deliveryId,
      record,
      circuit,
      webhook.active
        ? undefined
        : `webhook is disabled${webhook.disabled_reason ? `: ${webhook.disabled_reason}` : ""}`,
    );
  }

  /**
   * Process the delivery queue (cron sweep): hands every overdue pending delivery that can run —
   * round-robin across webhooks — to its endpoint object again (idempotent) and runs those
   * endpoints now. Deliveries of disabled webhooks and of open circuits (until their half-open
   * time, mirrored from the endpoint objects) are held: handing them over would only fill the batch.
   * @param batchSize - most deliveries to look at
   */
  async processQueue(batchSize = 10): Promise<{ processed: number; succeeded: number; failed: number }> {
    const { rows } = await this.db.query<DeliveryRow>(
      `select * from (
         select d.*, row_number() over (partition by d.webhook_id order by d.scheduled_at) as rn
         from webhook_deliveries d join webhooks w on w.id = d.webhook_id
         where d.status = 'pending' and d.scheduled_at < now() - interval '30 seconds'
           and w.active and w.deleted_at is null
           and (w.circuit_state <> 'open' or w.circuit_half_open_at <= now())
       ) x order by rn, scheduled_at limit $1`,
      [batchSize],
    );
    await this.handOff(rows);
    const totals = { processed: 0, succeeded: 0, failed: 0 };
    const results = await Promise.all(
      [...new Set(rows.map((r) => r.webhook_id))].map((id) => this.endpoints(id).drain()),
    );
    for (const r of results) {
      totals.processed += r.processed;
      totals.succeeded += r.succeeded;
      totals.failed += r.failed;
    }
    return totals;
  }

  /**
   * Get delivery status for an event: every delivery and a per-webhook summary.
   * @param eventId - event identifier
   * @param scope - restrict to one organization (the HTTP API always does)
   */
  async getEventDeliveryStatus(eventId: string, scope: { organizationId?: string } = {}): Promise<EventDeliveryStatus> {
    const params: unknown[] = [eventId];
    const { rows } = await this.db.query<DeliveryRow>(
      `select * from webhook_deliveries where event_id = $1${scope.organizationId ? ` and organization_id = $${params.push(scope.organizationId)}` : ""} order by created_at, id`,
      params,
    );
    const deliveries = rows.map(toDelivery);
    return {
      eventId,
      deliveries,
      summary: Object.fromEntries(
        deliveries.map((d) => [d.webhookId, { status: d.status, attempts: d.attemptNumber }]),
      ),
    };
  }

  /**
   * Get delivery history for a webhook, newest first.
   * @param webhookId - webhook identifier
   * @param options - limit (1–100), cursor, status filter
   */
  async getDeliveryHistory(
    webhookId: string,
    options: HistoryOptions = {},
  ): Promise<{ deliveries: Delivery[]; total: number; hasMore: boolean; nextCursor: string | null }> {
    const o = parseInput(historyOptionsSchema, options, "history options");
    const status = o.status ?? null;
    const after = decodeCursor(o.cursor);
    const [page, total] = await Promise.all([
      this.db.query<DeliveryRow>(
        `select *, created_at::text as created_at_text from webhook_deliveries
         where webhook_id = $1 and ($2::text is null or status = $2) and ($3::timestamptz is null or (created_at, id) < ($3::timestamptz, $4))
         order by created_at desc, id desc limit $5`,
        [webhookId, status, after?.createdAt ?? null, after?.id ?? null, o.limit + 1],
      ),
      this.db.query<{ n: number }>(
        "select count(*)::int as n from webhook_deliveries where webhook_id = $1 and ($2::text is null or status = $2)",
        [webhookId, status],
      ),
    ]);
    const rows = page.rows.slice(0, o.limit);
    const hasMore = page.rows.length > o.limit;
    const last = rows[rows.length - 1];
    return {
      deliveries: rows.map(toDelivery),
      total: total.rows[0]?.n ?? 0,
      hasMore,
      nextCursor: hasMore && last?.created_at_text ? encodeCursor(last.created_at_text, last.id) : null,
    };
  }

  /** The organization and webhook a delivery belongs to (tenancy checks), or null. */
  async findDeliveryOwner(deliveryId: string): Promise<{ organizationId: string; webhookId: string } | null> {
    const d = await findDelivery(this.db, deliveryId);
    return d ? { organizationId: d.organization_id, webhookId: d.webhook_id } : null;
  }

  /**
   * Retry a delivery manually (also a succeeded one: "resend"). A delivery that is not pending
   * starts a fresh retry schedule (full `maxAttempts` with backoff); its attempt numbering continues.
   * @param deliveryId - delivery identifier
   * @throws {NotFoundError} if unknown; {ConflictError} if its webhook was deleted
   */
  async retryDelivery(deliveryId: string): Promise<DeliveryResult> {
    const d = await findDelivery(this.db, deliveryId);
    if (!d) throw new NotFoundError(`delivery ${deliveryId} not found`);
    if (!(await findWebhook(this.db, d.webhook_id))) throw new ConflictError(`webhook ${d.webhook_id} was deleted`);
    if (d.status !== "pending") {
      await this.db.query(
        `update webhook_deliveries set status = 'pending', scheduled_at = now(), completed_at = null, schedule_base = attempt_count
         where id = $1`,
        [deliveryId],
      );
    }
    return this.attemptDelivery(deliveryId);
  }

  /**
   * Requeues every failed or held delivery of a webhook created since `since` ("recover", as in
   * Svix), each with a fresh retry schedule; attempt numbering continues. Held deliveries are the
   * events that arrived while the webhook was disabled; re-enable it first, or they wait in its
   * endpoint object until it is.
   * @returns how many were requeued
   */
  async recoverFailed(webhookId: string, since: Date): Promise<{ requeued: number }> {
    const webhook = await this.mustFind(webhookId);
    const { rows } = await this.db.query<DeliveryRow>(
      `update webhook_deliveries set status = 'pending', scheduled_at = now(), completed_at = null, schedule_base = attempt_count
       where webhook_id = $1 and status in ('failed', 'held') and created_at >= $2 returning *`,
      [webhookId, since.toISOString()],
    );
    for (let i = 0; i < rows.length; i += 500) {
      await this.endpoints(webhookId).enqueue(
        webhookId,
        webhook.organization_id,
        rows.slice(i, i + 500).map((d) => toJob(d, this.now())),
      );
    }
    return { requeued: rows.length };
  }

  /**
   * Send a `webhook.test` event through the real path (signing, breaker, history) and wait for it.
   * @param webhookId - webhook to test
   */
  async sendTestEvent(webhookId: string): Promise<DeliveryResult> {
    const webhook = await this.mustFind(webhookId);
    const eventId = `evt_test_${crypto.randomUUID()}`;
    const [row] = await this.insertDeliveries(
      {
        eventId,
        eventType: "webhook.test",
        organizationId: webhook.organization_id,
        occurredAt: new Date(this.now()).toISOString(),
        data: { message: "This is a test event from CloudMatrix.", webhookId },
      },
      [{ webhookId, status: "pending" }],
    );
    return this.attemptDelivery(row!.id);
  }

  /**
   * Get circuit breaker status for a webhook.
   * @param webhookId - webhook identifier
   */
  async getCircuitState(webhookId: string): Promise<CircuitState> {
    await this.mustFind(webhookId);
    return this.endpoints(webhookId).circuitState(webhookId);
  }

  /**
   * Reset circuit breaker for a webhook (manual recovery); held deliveries flow again.
   * @param webhookId - webhook identifier
   */
  async resetCircuit(webhookId: string): Promise<{ reset: boolean }> {
    await this.mustFind(webhookId);
    return this.endpoints(webhookId).resetCircuit();
  }

  /**
   * Get webhook health metrics over a time range (default: the last 24 h): success rate,
   * average/p95/p99 latency of attempts and an error breakdown by type.
   * @param webhookId - webhook identifier
   * @param timeRange - `{from, to}` as Dates or ISO strings
   */
  async getHealthMetrics(
    webhookId: string,
    timeRange: { from?: Date | string; to?: Date | string } = {},
  ): Promise<WebhookHealthMetrics> {
    await this.mustFind(webhookId);
    const to = timeRange.to ? new Date(timeRange.to) : new Date(this.now());
    const from = timeRange.from ? new Date(timeRange.from) : new Date(to.getTime() - 86_400_000);
    if (!(from < to))
      throw new ValidationError("invalid time range", [{ path: "from", message: "from must be before to" }]);
    const range = [webhookId, from.toISOString(), to.toISOString()];
    const [agg, errors] = await Promise.all([
      this.db.query<{
        n: number;
        ok: number;
        deliveries: number;
        avg: number | null;
        p95: number | null;
        p99: number | null;
      }>(
        `select count(*)::int as n, count(*) filter (where success)::int as ok, count(distinct delivery_id)::int as deliveries,
           avg(response_time_ms)::float8 as avg,
           percentile_cont(0.95) within group (order by response_time_ms)::float8 as p95,
           percentile_cont(0.99) within group (order by response_time_ms)::float8 as p99
         from webhook_attempts where webhook_id = $1 and attempted_at >= $2 and attempted_at < $3`,
        range,
      ),
      this.db.query<{ type: string; count: number; last: string | null }>(
        `select coalesce(error_type, 'unknown') as type, count(*)::int as count, (array_agg(error_message order by attempted_at desc))[1] as last
         from webhook_attempts where webhook_id = $1 and attempted_at >= $2 and attempted_at < $3 and not success
         group by 1 order by 2 desc`,
        range,
      ),
    ]);
    const a = agg.rows[0]!;
    const r1 = (v: number | null) => Math.round((v ?? 0) * 10) / 10;
    return {
      successRate: a.n ? Math.round((a.ok / a.n) * 10_000) / 100 : 0,
      averageLatencyMs: r1(a.avg),
      p95LatencyMs: r1(a.p95),
      p99LatencyMs: r1(a.p99),
      deliveriesInPeriod: a.deliveries,
      errorBreakdown: errors.rows.map((e) => ({ type: e.type, count: e.count, lastMessage: e.last })),
    };
  }

  /**
   * Sign a webhook payload (Standard Webhooks v1). WebCrypto is asynchronous, so this returns a
   * Promise of the seed's signature string.
   * @param payload - object (body = JSON.stringify(payload), msg id = payload.id) or raw JSON string
   * @param secret - `whsec_…` secret
   * @param timestamp - Unix seconds
   * @returns the `webhook-signature` header value, `v1,<base64>`
   */
  signPayload(payload: unknown, secret: string, timestamp: number): Promise<string> {
    return signWebhookPayload(payload, secret, timestamp);
  }

  /**
   * Verify a webhook signature (for documentation/SDK use).
   * @param payload - received payload (object or raw JSON string)
   * @param signature - received `webhook-signature` value (space-separated list allowed)
   * @param secret - `whsec_…` secret
   * @param timestamp - received `webhook-timestamp` (Unix seconds)
   * @param tolerance - max age (and max future skew) in seconds, default 300
   */
  verifySignature(
    payload: unknown,
    signature: string,
    secret: string,
    timestamp: number,
    tolerance = 300,
  ): Promise<boolean> {
    return verifyWebhookSignature(payload, signature, secret, timestamp, tolerance);
  }
}
