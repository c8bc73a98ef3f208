import type { EventBus } from "../events/bus.ts";
import type { Config } from "../platform/config.ts";
import type { Db } from "../platform/db.ts";
import { ConflictError, NotFoundError, ValidationError } from "../platform/errors.ts";
import type { Redis } from "../platform/redis.ts";
import { decodeCursor, encodeCursor } from "../platform/cursor.ts";
import { parseInput } from "../platform/validation.ts";
import { typesMatching } from "../events/catalog.ts";
import type { Endpoint } from "./attempt.ts";
import type { CircuitState } from "./circuit.ts";
import type { EndpointSnapshot, FanOutRequest, FanOutResult } from "./fanout.ts";
import { createDeliveries, deliveryBody, deliveryJob } from "./fanout.ts";
import type { Job } from "./queue.ts";
import type { AttemptRow, DeliveryRow, WebhookRow } from "./repo.ts";
import { findDelivery, findWebhook, listDeliveryRows, listWebhookRows, toDelivery, toWebhook } from "./repo.ts";
import type { AttemptRecord } from "./runner.ts";
import type {
  Delivery,
  DeliveryAttempt,
  DeliveryResult,
  EventDeliveryStatus,
  ListedWebhook,
  RecoverFilter,
  Webhook,
  WebhookEvent,
  WebhookHealthMetrics,
  WebhookRegistration,
  WebhookUpdate,
} from "./schemas.ts";
import {
  errorTypes,
  historyOptionsSchema,
  listOptionsSchema,
  recoverSchema,
  webhookEventSchema,
  webhookRegistrationSchema,
  webhookUpdateSchema,
} from "./schemas.ts";
import type { EndpointSettings } from "./settings.ts";
import { defaultSettings, mergeOverrides, resolveSettings, settingsProblems } from "./settings.ts";
import {
  generateSecret,
  signPayload as signWebhookPayload,
  verifySignature as verifyWebhookSignature,
} from "./signing.ts";
import { assertWebhookUrl } from "./url-policy.ts";

/**
 * A circuit read from an endpoint's object: the breaker, and the webhook's organization as the
 * object knows it from hand-offs (`null`: it cannot vouch — no hand-off yet, or a delete under way).
 */
export interface CircuitReading {
  circuit: CircuitState;
  organizationId: string | null;
  /** The webhook was deleted (for good: `cancelAll` reached the object). */
  deleted: boolean;
}

/** The RPC surface of an endpoint's Durable Object (`WebhookEndpoint`), as the service uses it. */
export interface EndpointClient {
  enqueue(
    webhookId: string,
    organizationId: string,
    jobs: Job[],
    snapshot?: EndpointSnapshot,
    options?: { run?: boolean },
  ): Promise<number>;
  drain(): Promise<{ processed: number; succeeded: number; failed: number }>;
  /** Writes the object's buffered attempt results to Postgres now. */
  flush(): Promise<void>;
  attemptNow(deliveryId: string, job?: Job): Promise<{ record?: AttemptRecord; circuit: CircuitState }>;
  readCircuit(webhookId: string): Promise<CircuitReading>;
  resetCircuit(): Promise<{ reset: boolean }>;
  cancelAll(): Promise<number>;
  invalidate(options?: { reactivated?: boolean; deleting?: boolean }): Promise<void>;
}

/** The RPC surface of a writer object (`WebhookWriter`), as the service and the endpoint objects use it. */
export interface WriterClient {
  /** Creates an event's deliveries (batched with concurrent events) and hands them over. */
  createDeliveries(request: FanOutRequest): Promise<FanOutResult>;
  /** Writes attempt results (batched across endpoint objects); resolves once committed. */
  recordAttempts(rows: AttemptRow[]): Promise<void>;
  /** An endpoint as its object needs it (null: deleted, "inactive": disabled). */
  loadEndpoint(webhookId: string): Promise<Endpoint | null | "inactive">;
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
  /**
   * The writer object of an organization (`WebhookWriter`: batched fan-out over a warm Postgres
   * session). Without it, fan-out runs on `db` in the caller.
   */
  writers?: (organizationId: string) => WriterClient;
  /** `config.webhooks`. */
  config: Config["webhooks"];
  now?: () => number;
}

/** Pagination options of {@link WebhookDeliverySystem.listWebhooks}. */
export interface ListWebhooksOptions {
  limit?: number;
  cursor?: string;
  active?: boolean;
  /** Each endpoint with its circuit breaker's state. */
  includeCircuit?: boolean;
}

/** Pagination and filters of {@link WebhookDeliverySystem.getDeliveryHistory}. */
export interface HistoryOptions {
  limit?: number;
  cursor?: string;
  status?: Delivery["status"];
  /** An event type or pattern (`team.*`). */
  eventType?: string;
  /** Created at or after (ISO 8601). */
  since?: string;
  /** Created before (ISO 8601). */
  until?: string;
}

/** The shape of every webhook id {@link WebhookDeliverySystem.registerWebhook} issues. */
const WEBHOOK_ID = /^wh_[0-9a-f]{32}$/;

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
 * `webhook-id` header, for deduplication), the endpoint's `sequence` number (= `webhook-sequence`,
 * when given), the event's type, id, organization, time and data.
 */
export function envelope(
  deliveryId: string,
  e: { eventType: string; eventId: string; organizationId: string; occurredAt: string; data: unknown },
  sequence?: number,
): string {
  return deliveryBody(deliveryId, sequence, e);
}

const toJob = (d: DeliveryRow, dueAt: number): Job => deliveryJob(d, dueAt);

/**
 * WebhookDeliverySystem — reliable webhook delivery with retries and circuit breaking (seed Task 3).
 * Postgres holds endpoints, deliveries, attempts and stats; each endpoint's Durable Object holds its
 * pending deliveries, its breaker and the alarm that drives retries.
 */
export class WebhookDeliverySystem {
  private readonly db: Db;
  private readonly endpoints: (webhookId: string) => EndpointClient;
  private readonly writers?: (organizationId: string) => WriterClient;
  private readonly config: Config["webhooks"];
  private readonly defaults: EndpointSettings;
  private readonly now: () => number;

  /**
   * @param options - db, redis, eventBus, httpClient (seed) plus the endpoint directory and settings
   */
  constructor(options: WebhookDeliveryOptions) {
    this.db = options.db;
    this.endpoints = options.endpoints;
    this.writers = options.writers;
    this.config = options.config;
    this.defaults = defaultSettings(options.config);
    this.now = options.now ?? Date.now;
  }

  private policy() {
    return { allowLocalHttp: this.config.allowLocalHttp };
  }

  /**
   * Register a new webhook endpoint.
   * @param registration - organization, HTTPS URL, event types (wildcards allowed), description, custom headers,
   *   per-endpoint settings, notification e-mail, creator
   * @returns the webhook with its secret shown (the only time besides `GET …/secret`)
   * @throws {ValidationError} if the URL is not https, points at a private/loopback/metadata address, events are
   *   unknown, or settings are out of range
   */
  async registerWebhook(registration: WebhookRegistration): Promise<Webhook> {
    const r = parseInput(webhookRegistrationSchema, registration, "webhook registration");
    const url = assertWebhookUrl(r.url, this.policy());
    const overrides = mergeOverrides({}, r.settings ?? {});
    this.checkSettings(overrides);
    const { rows } = await this.db.query<{ id: string }>(
      `insert into webhooks (id, organization_id, url, events, secret, description, headers, created_by, settings,
         notification_email, created_by_email)
       values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) returning id`,
      [
        `wh_${crypto.randomUUID().replace(/-/g, "")}`,
        r.organizationId,
        url.toString(),
        r.events,
        generateSecret(),
        r.description,
        JSON.stringify(r.headers),
        r.createdBy,
        JSON.stringify(overrides),
        r.notificationEmail ?? null,
        r.createdByEmail ?? null,
      ],
    );
    const id = rows[0]!.id;
    // The object learns the organization now, as from a hand-off, so it answers circuit reads from
    // the first one on, Postgres down or not. A cache only: should the call fail, the first read
    // asks Postgres and teaches it then.
    await this.endpoints(id)
      .enqueue(id, r.organizationId, [], undefined, { run: false })
      .catch(() => undefined);
    return toWebhook((await findWebhook(this.db, id))!, this.defaults, true);
  }

  private checkSettings(overrides: Parameters<typeof resolveSettings>[1]): void {
    const problems = settingsProblems(resolveSettings(this.defaults, overrides));
    if (problems.length > 0) throw new ValidationError("invalid webhook settings", problems);
  }

  /** The ordered-mode head every later delivery waits for, when it has failed at least once. */
  private async blockedBy(row: WebhookRow): Promise<Webhook["blockedBy"]> {
    if (!resolveSettings(this.defaults, row.settings).ordered) return undefined;
    const { rows } = await this.db.query<{
      id: string;
      sequence: string | null;
      attempt_count: number;
      error_message: string | null;
      scheduled_at: Date;
    }>(
      `select id, sequence::text, attempt_count, error_message, scheduled_at from webhook_deliveries
       where webhook_id = $1 and status = 'pending' order by sequence nulls last, created_at limit 1`,
      [row.id],
    );
    const head = rows[0];
    if (!head || head.attempt_count === 0) return null;
    return {
      deliveryId: head.id,
      sequence: head.sequence === null ? null : Number(head.sequence),
      attempts: head.attempt_count,
      lastError: head.error_message,
      nextAttemptAt: new Date(head.scheduled_at).toISOString(),
    };
  }

  private async view(row: WebhookRow, reveal = false): Promise<Webhook> {
    const w = toWebhook(row, this.defaults, reveal);
    const blockedBy = await this.blockedBy(row);
    return blockedBy === undefined ? w : { ...w, blockedBy };
  }

  /**
   * Get webhook by ID (secret masked).
   * @param webhookId - webhook identifier
   * @returns the webhook, or null if it does not exist or was deleted
   */
  async getWebhook(webhookId: string): Promise<Webhook | null> {
    const row = await findWebhook(this.db, webhookId);
    return row ? this.view(row) : null;
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
   * @param updates - url, events, active, description, headers, rotateSecret, settings (null resets a key), notificationEmail
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
    if (u.notificationEmail !== undefined) set("notification_email", u.notificationEmail);
    if (u.settings !== undefined) {
      const merged = mergeOverrides(before.settings ?? {}, u.settings);
      this.checkSettings(merged);
      set("settings", JSON.stringify(merged));
    }
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
    await endpoint.invalidate({ reactivated: !!u.active && !before.active });
    // Re-enabled: the endpoint object holds its deliveries; wake it so they flow again.
    if (u.active && !before.active) await endpoint.enqueue(webhookId, before.organization_id, []);
    return this.view(await this.mustFind(webhookId), !!u.rotateSecret);
  }

  /**
   * Delete a webhook and cancel pending (and held) deliveries.
   * @param webhookId - webhook identifier
   * @returns whether it was deleted and how many pending deliveries were cancelled
   */
  async deleteWebhook(webhookId: string): Promise<{ deleted: boolean; cancelledDeliveries: number }> {
    const endpoint = this.endpoints(webhookId);
    // First the object stops vouching for the webhook (circuit reads answered without Postgres):
    // should the delete commit and then fail to reach it, those reads ask Postgres, which knows.
    await endpoint.invalidate({ deleting: true });
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
    await endpoint.cancelAll();
    return { deleted: true, cancelledDeliveries: cancelled };
  }

  /**
   * List webhooks for an organization, oldest first.
   * @param organizationId - organization identifier
   * @param options - limit (1–100, default 20), cursor (from `nextCursor`), active filter, includeCircuit
   */
  async listWebhooks(
    organizationId: string,
    options: ListWebhooksOptions = {},
  ): Promise<{ webhooks: ListedWebhook[]; total: number; hasMore: boolean; nextCursor: string | null }> {
    const flag = (v: boolean | undefined) => (v === undefined ? undefined : String(v));
    const o = parseInput(
      listOptionsSchema,
      { ...options, active: flag(options.active), includeCircuit: flag(options.includeCircuit) },
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
    const webhooks: ListedWebhook[] = page.map((r) => toWebhook(r, this.defaults));
    // From each endpoint object, concurrently: they hold the breaker (the Postgres mirror may lag).
    if (o.includeCircuit)
      await Promise.all(
        webhooks.map(async (w) => {
          w.circuit = (await this.endpoints(w.id).readCircuit(w.id)).circuit;
        }),
      );
    return {
      webhooks,
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
    const { queued, webhookIds } = await this.fanOut(e);
    return { queued, webhookIds };
  }

  /**
   * Creates (or finds) the deliveries of one event and hands the pending ones over: through the
   * organization's writer object, which batches concurrent events into one transaction on a warm
   * Postgres session, or here on `db` when there is none.
   */
  private async fanOut(request: FanOutRequest): Promise<FanOutResult> {
    if (this.writers) return this.writers(request.organizationId).createDeliveries(request);
    const { results, handOffs } = await createDeliveries(this.db, [request], this.defaults, newDeliveryId, this.now);
    await Promise.all(
      handOffs.map((h) =>
        this.endpoints(h.webhookId).enqueue(h.webhookId, h.organizationId, h.jobs, {
          endpoint: h.endpoint,
          readAt: h.readAt,
        }),
      ),
    );
    return results[0]!;
  }

  /** Hands pending deliveries to their endpoint objects for the sweep's `drain` to run; a failure is left to the next sweep. */
  private async handOff(rows: DeliveryRow[]): Promise<void> {
    const byWebhook = new Map<string, DeliveryRow[]>();
    for (const r of rows) byWebhook.set(r.webhook_id, [...(byWebhook.get(r.webhook_id) ?? []), r]);
    await Promise.all(
      [...byWebhook].map(([webhookId, list]) =>
        this.endpoints(webhookId).enqueue(
          webhookId,
          list[0]!.organization_id,
          list.map((d) => toJob(d, new Date(d.scheduled_at).getTime())),
          undefined,
          { run: false },
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
    await endpoint.enqueue(d.webhook_id, d.organization_id, [], undefined, { run: false });
    const { record, circuit } = await endpoint.attemptNow(deliveryId, toJob(d, this.now()));
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
   * @param options - limit (1–100), cursor, and filters: status, event type or pattern, creation time [since, until)
   */
  async getDeliveryHistory(
    webhookId: string,
    options: HistoryOptions = {},
  ): Promise<{ deliveries: Delivery[]; total: number; hasMore: boolean; nextCursor: string | null }> {
    const o = parseInput(historyOptionsSchema, options, "history options");
    const { rows: page, total } = await listDeliveryRows(this.db, webhookId, {
      limit: o.limit,
      ...(o.status ? { status: o.status } : {}),
      // `*` is no filter; a pattern is the known types it matches.
      ...(o.eventType && o.eventType !== "*" ? { types: typesMatching([o.eventType]) } : {}),
      ...(o.since ? { since: o.since } : {}),
      ...(o.until ? { until: o.until } : {}),
      ...(o.cursor ? { before: decodeCursor(o.cursor) } : {}),
    });
    const rows = page.slice(0, o.limit);
    const hasMore = page.length > o.limit;
    const last = rows[rows.length - 1];
    return {
      deliveries: rows.map(toDelivery),
      total,
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
    const found = await findDelivery(this.db, deliveryId);
    if (!found) throw new NotFoundError(`delivery ${deliveryId} not found`);
    if (!(await findWebhook(this.db, found.webhook_id)))
      throw new ConflictError(`webhook ${found.webhook_id} was deleted`);
    // Its latest attempts may still be buffered in the endpoint object: the replay builds on them.
    await this.endpoints(found.webhook_id).flush();
    const d = (await findDelivery(this.db, deliveryId))!;
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
   * Requeues the deliveries of a webhook created in `[since, until)` ("recover", as in Svix) — by
   * default its failed and held ones; `status` may add succeeded ones (a bulk resend), `eventTypes`
   * narrows by type or pattern — each with a fresh retry schedule; attempt numbering continues.
   * Held deliveries are the events that arrived while the webhook was disabled; re-enable it first,
   * or they wait in its endpoint object until it is.
   * @param webhookId - webhook identifier
   * @param since - oldest creation time, or the whole filter `{since, until?, eventTypes?, status?}`
   * @returns how many were requeued
   */
  async recoverFailed(webhookId: string, since: Date | RecoverFilter): Promise<{ requeued: number }> {
    const f = parseInput(
      recoverSchema,
      since instanceof Date ? { since: since.toISOString() } : since,
      "recover request",
    );
    const webhook = await this.mustFind(webhookId);
    // Buffered results first, so a delivery that just failed (or succeeded) is seen as it is.
    await this.endpoints(webhookId).flush();
    const types = f.eventTypes ? typesMatching(f.eventTypes) : null;
    const { rows } = await this.db.query<DeliveryRow>(
      `update webhook_deliveries set status = 'pending', scheduled_at = now(), completed_at = null, schedule_base = attempt_count
       where webhook_id = $1 and status = any($2::text[]) and created_at >= $3 and created_at < $4
         and ($5::text[] is null or event_type = any($5::text[]))
       returning *`,
      [webhookId, f.status ?? ["failed", "held"], f.since, f.until ?? new Date(this.now()).toISOString(), types],
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
    const { deliveries } = await this.fanOut({
      eventId,
      eventType: "webhook.test",
      organizationId: webhook.organization_id,
      occurredAt: new Date(this.now()).toISOString(),
      data: { message: "This is a test event from CloudMatrix.", webhookId },
      webhookIds: [webhookId],
      // Attempted here at once: a hand-off would let the object's alarm take it first.
      noHandOff: true,
    });
    const delivery = deliveries[0];
    if (!delivery) throw new NotFoundError(`webhook ${webhookId} not found`);
    // A disabled webhook records the test as held; attempting it reports why nothing was sent.
    if (delivery.status === "held") {
      await this.db.query("update webhook_deliveries set status = 'pending' where id = $1 and status = 'held'", [
        delivery.id,
      ]);
    }
    return this.attemptDelivery(delivery.id);
  }

  /**
   * Get circuit breaker status for a webhook. Answered by the endpoint's object alone when it can
   * vouch for the webhook — it knows its organization from a hand-off (webhooks never change
   * organization) and no delete has begun — so the read keeps working while Postgres is down;
   * otherwise Postgres decides, and the object learns the organization for the next read.
   * @param webhookId - webhook identifier
   * @param organizationId - when given (the API), the webhook must belong to it
   * @throws {NotFoundError} if there is no such webhook, it was deleted, or it is another organization's
   */
  async getCircuitState(webhookId: string, organizationId?: string): Promise<CircuitState> {
    const notFound = () => new NotFoundError(`webhook ${webhookId} not found`);
    // An id this service never issues has no object: asking would create one.
    if (!WEBHOOK_ID.test(webhookId)) throw notFound();
    const endpoint = this.endpoints(webhookId);
    const seen = await endpoint.readCircuit(webhookId);
    if (seen.deleted) throw notFound();
    if (seen.organizationId !== null) {
      if (organizationId !== undefined && seen.organizationId !== organizationId) throw notFound();
      return seen.circuit;
    }
    const row = await this.mustFind(webhookId);
    // The object learns its organization from Postgres, as from a hand-off: the next read needs none.
    await endpoint.enqueue(webhookId, row.organization_id, [], undefined, { run: false });
    if (organizationId !== undefined && row.organization_id !== organizationId) throw notFound();
    return seen.circuit;
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
    const [agg, errors, hours] = await Promise.all([
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
      this.db.query<{
        hour: Date;
        attempts: number;
        succeeded: number;
        p50: number | null;
        p95: number | null;
        p99: number | null;
        errors: Record<string, number> | null;
      }>(
        `select h.hour, h.attempts, h.succeeded, h.p50, h.p95, h.p99, e.errors
         from (
           select date_trunc('hour', attempted_at) as hour, count(*)::int as attempts,
             count(*) filter (where success)::int as succeeded,
             percentile_cont(0.5) within group (order by response_time_ms)::float8 as p50,
             percentile_cont(0.95) within group (order by response_time_ms)::float8 as p95,
             percentile_cont(0.99) within group (order by response_time_ms)::float8 as p99
           from webhook_attempts where webhook_id = $1 and attempted_at >= $2 and attempted_at < $3 group by 1
         ) h left join (
           select hour, jsonb_object_agg(type, n) as errors from (
             select date_trunc('hour', attempted_at) as hour, coalesce(error_type, 'invalid_response') as type, count(*)::int as n
             from webhook_attempts where webhook_id = $1 and attempted_at >= $2 and attempted_at < $3 and not success
             group by 1, 2
           ) x group by hour
         ) e on e.hour = h.hour
         order by h.hour`,
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
      timeline: hours.rows.map((h) => ({
        hour: new Date(h.hour).toISOString(),
        attempts: h.attempts,
        succeeded: h.succeeded,
        p50LatencyMs: r1(h.p50),
        p95LatencyMs: r1(h.p95),
        p99LatencyMs: r1(h.p99),
        errors: Object.fromEntries(errorTypes.map((t) => [t, h.errors?.[t] ?? 0])) as Record<
          (typeof errorTypes)[number],
          number
        >,
      })),
    };
  }

  /**
   * Every attempt of a delivery, oldest first: when, the request headers sent (signature and
   * credentials redacted), the response status, headers and body excerpt, latency, error class.
   * @param deliveryId - delivery identifier
   * @param options - limit (1–100, default 50)
   */
  async getDeliveryAttempts(deliveryId: string, options: { limit?: number } = {}): Promise<DeliveryAttempt[]> {
    const d = await findDelivery(this.db, deliveryId);
    if (!d) throw new NotFoundError(`delivery ${deliveryId} not found`);
    await this.endpoints(d.webhook_id).flush();
    const limit = Math.min(100, Math.max(1, options.limit ?? 50));
    const { rows } = await this.db.query<{
      attempt_number: number;
      attempted_at: Date;
      success: boolean;
      response_time_ms: number;
      request_headers: Record<string, string> | null;
      response_status: number | null;
      response_headers: Record<string, string> | null;
      response_body: string | null;
      error_type: DeliveryAttempt["errorType"];
      error_message: string | null;
    }>(
      `select attempt_number, attempted_at, success, response_time_ms, request_headers, response_status, response_headers,
         response_body, error_type, error_message
       from webhook_attempts where delivery_id = $1 order by attempt_number limit $2`,
      [deliveryId, limit],
    );
    return rows.map((a) => ({
      attemptNumber: a.attempt_number,
      attemptedAt: new Date(a.attempted_at).toISOString(),
      success: a.success,
      latencyMs: a.response_time_ms,
      requestHeaders: a.request_headers ?? {},
      responseStatus: a.response_status,
      responseHeaders: a.response_headers ?? {},
      responseBody: a.response_body,
      errorType: a.error_type,
      errorMessage: a.error_message,
    }));
  }

  /**
   * Retention (cron): deletes attempts older than `WEBHOOK_RETENTION_DAYS`, then finished
   * deliveries (not pending) created before then that have no attempt left — in bounded,
   * index-backed batches, so one run never holds locks for long. Stats are lifetime counters and
   * stay. Run it again to continue when `more` is true.
   * @param options - rows per statement (default 5,000), statements per table (default 10)
   */
  async purgeHistory(
    options: { batchSize?: number; maxBatches?: number } = {},
  ): Promise<{ attempts: number; deliveries: number; more: boolean }> {
    const batch = options.batchSize ?? 5_000;
    const rounds = options.maxBatches ?? 10;
    const cutoff = new Date(this.now() - this.config.retentionDays * 86_400_000).toISOString();
    let attempts = 0;
    let deliveries = 0;
    let more = false;
    for (let i = 0; i < rounds; i++) {
      const { rowCount } = await this.db.query(
        `delete from webhook_attempts where id in (
           select id from webhook_attempts where attempted_at < $1 order by attempted_at limit $2)`,
        [cutoff, batch],
      );
      attempts += rowCount;
      more = rowCount === batch;
      if (!more) break;
    }
    for (let i = 0; i < rounds; i++) {
      const { rowCount } = await this.db.query(
        `delete from webhook_deliveries where id in (
           select d.id from webhook_deliveries d
           where d.created_at < $1 and d.status not in ('pending', 'in_progress')
             and not exists (select 1 from webhook_attempts a where a.delivery_id = d.id)
           order by d.created_at limit $2)`,
        [cutoff, batch],
      );
      deliveries += rowCount;
      const full = rowCount === batch;
      more ||= full;
      if (!full) break;
    }
    return { attempts, deliveries, more };
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
