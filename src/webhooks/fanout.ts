import type { Db } from "../platform/db.ts";
import type { Endpoint } from "./attempt.ts";
import type { Job } from "./queue.ts";
import type { DeliveryRow, WebhookRow } from "./repo.ts";
import { endpointFromRow, patternsFor } from "./repo.ts";
import type { EndpointSettings } from "./settings.ts";
import { matchesEventType } from "../events/catalog.ts";

/**
 * Batched fan-out: the deliveries of a whole batch of events are planned in memory and written in
 * one transaction — every matching endpoint's delivery, each with the endpoint's next gap-free
 * sequence number — and each endpoint object then gets its share in one hand-off. The writer object
 * (`durable-objects/webhook-writer.ts`) feeds it batches of concurrent requests.
 */

/** One event to fan out. */
export interface FanOutRequest {
  eventId: string;
  eventType: string;
  organizationId: string;
  occurredAt: string;
  data: unknown;
  /** Deliver to these webhooks of the organization (subscribed or not) instead of the matching ones (test events). */
  webhookIds?: string[];
  /** Create only: the caller hands the delivery over itself (a test event attempted at once). */
  noHandOff?: boolean;
}

/** What one request got. */
export interface FanOutResult {
  /** Deliveries handed to endpoints (pending: new, or re-handed from an earlier enqueue of the event). */
  queued: number;
  /** The active webhooks it goes to. */
  webhookIds: string[];
  /** Every delivery of the event to a target (held ones included). */
  deliveries: { id: string; webhookId: string; status: DeliveryRow["status"] }[];
}

/** An endpoint as handed over with jobs, and when it was read. */
export interface EndpointSnapshot {
  endpoint: Endpoint | "inactive";
  readAt: number;
}

/** Pending work for one endpoint object, with the endpoint as read in the same transaction. */
export interface HandOff {
  webhookId: string;
  organizationId: string;
  jobs: Job[];
  endpoint: Endpoint | "inactive";
  /** When the endpoint was read (epoch ms): an object ignores it if it was invalidated later. */
  readAt: number;
}

/** The subset of a `webhooks` row the planner needs. */
export type PlanWebhook = Pick<WebhookRow, "id" | "organization_id" | "events" | "active" | "delivery_seq">;

/** A delivery that exists already (an earlier enqueue of the same event). */
export type PlanExisting = Pick<DeliveryRow, "id" | "webhook_id" | "event_id" | "status">;

/** A delivery to insert. */
export interface PlannedDelivery {
  id: string;
  webhook_id: string;
  organization_id: string;
  event_id: string;
  event_type: string;
  status: "pending" | "held";
  sequence: number;
  payload: string;
}

/** Output of {@link planDeliveries}. */
export interface Plan {
  inserts: PlannedDelivery[];
  /** The webhooks' counters after the batch. */
  counters: { id: string; seq: number }[];
  /** Per request, its targets: the delivery (new or existing) for each webhook. */
  targets: { webhookId: string; deliveryId: string; status: DeliveryRow["status"]; active: boolean }[][];
}

/**
 * The body every delivery carries, exactly `JSON.stringify` of this object: `id` (= the
 * `webhook-id` header, for deduplication), the endpoint's `sequence` number (= `webhook-sequence`),
 * the event's type, id, organization, time and data.
 */
export function deliveryBody(
  deliveryId: string,
  sequence: number | undefined,
  e: { eventType: string; eventId: string; organizationId: string; occurredAt: string; data: unknown },
): string {
  return JSON.stringify({
    id: deliveryId,
    ...(sequence !== undefined ? { sequence } : {}),
    type: e.eventType,
    eventId: e.eventId,
    organizationId: e.organizationId,
    occurredAt: e.occurredAt,
    data: e.data,
  });
}

/** The webhooks a request goes to (its organization's, matching its type or named by it). */
export function targetsOf(req: FanOutRequest, webhooks: readonly PlanWebhook[]): PlanWebhook[] {
  return webhooks.filter(
    (w) =>
      w.organization_id === req.organizationId &&
      (req.webhookIds ? req.webhookIds.includes(w.id) : w.events.some((p) => matchesEventType(p, req.eventType))),
  );
}

/**
 * Plans a batch: for each request in order, each target gets the existing delivery of that event
 * (an enqueue repeated: nothing new, no number used) or a new one numbered next for its webhook —
 * so numbers are gap-free and unique per endpoint, whatever the batch holds (the same event twice,
 * events seen before). Disabled webhooks get `held` deliveries; they are numbered too.
 */
export function planDeliveries(
  requests: readonly FanOutRequest[],
  webhooks: readonly PlanWebhook[],
  existing: readonly PlanExisting[],
  newId: () => string,
): Plan {
  const counters = new Map(webhooks.map((w) => [w.id, Number(w.delivery_seq)]));
  const known = new Map<string, { id: string; status: DeliveryRow["status"] }>();
  for (const d of existing) known.set(`${d.webhook_id}\u0000${d.event_id}`, { id: d.id, status: d.status });
  const inserts: PlannedDelivery[] = [];
  const targets = requests.map((req) =>
    targetsOf(req, webhooks).map((w) => {
      const key = `${w.id}\u0000${req.eventId}`;
      let d = known.get(key);
      if (!d) {
        const sequence = counters.get(w.id)! + 1;
        counters.set(w.id, sequence);
        const id = newId();
        const status = w.active ? "pending" : "held";
        inserts.push({
          id,
          webhook_id: w.id,
          organization_id: req.organizationId,
          event_id: req.eventId,
          event_type: req.eventType,
          status,
          sequence,
          payload: deliveryBody(id, sequence, req),
        });
        d = { id, status };
        known.set(key, d);
      }
      return { webhookId: w.id, deliveryId: d.id, status: d.status, active: w.active };
    }),
  );
  const changed = new Set(inserts.map((i) => i.webhook_id));
  return {
    inserts,
    counters: [...changed].map((id) => ({ id, seq: counters.get(id)! })),
    targets,
  };
}

/** Raised when a concurrent writer took a planned (webhook, event) first: the batch is rolled back and planned again. */
export class PlanConflict extends Error {}

const toJob = (d: DeliveryRow, dueAt: number): Job => ({
  deliveryId: d.id,
  eventId: d.event_id,
  eventType: d.event_type,
  body: d.payload,
  attempts: d.attempt_count,
  scheduleBase: d.schedule_base,
  dueAt,
  createdAt: new Date(d.created_at).getTime(),
  ...(d.sequence !== null && d.sequence !== undefined ? { sequence: Number(d.sequence) } : {}),
});

/** A delivery row as a job for its endpoint object. */
export function deliveryJob(d: DeliveryRow, dueAt = new Date(d.scheduled_at).getTime()): Job {
  return toJob(d, dueAt);
}

const WEBHOOK_FIELDS = `id, organization_id, url, events, secret, previous_secret, previous_secret_expires_at, active,
  headers, settings, delivery_seq::text`;

/**
 * Creates the deliveries of a batch of events in one transaction (see {@link planDeliveries}):
 * locks the organizations' matching webhooks (their counters), reads what exists, inserts the new
 * deliveries and moves the counters. Returns each request's result and the hand-offs: per endpoint,
 * every pending delivery of the batch.
 */
export async function createDeliveries(
  db: Db,
  requests: readonly FanOutRequest[],
  defaults: EndpointSettings,
  newId: () => string,
  now: () => number = Date.now,
): Promise<{ results: FanOutResult[]; handOffs: HandOff[] }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await createOnce(db, requests, defaults, newId, now);
    } catch (err) {
      if (!(err instanceof PlanConflict) || attempt >= 3) throw err;
    }
  }
}

async function createOnce(
  db: Db,
  requests: readonly FanOutRequest[],
  defaults: EndpointSettings,
  newId: () => string,
  now: () => number,
): Promise<{ results: FanOutResult[]; handOffs: HandOff[] }> {
  const orgs = [...new Set(requests.map((r) => r.organizationId))];
  const patterns = [...new Set(requests.flatMap((r) => (r.webhookIds ? [] : patternsFor(r.eventType))))];
  const named = [...new Set(requests.flatMap((r) => r.webhookIds ?? []))];
  const eventIds = [...new Set(requests.map((r) => r.eventId))];
  return db.transaction(async (tx) => {
    const readAt = now();
    const { rows: webhooks } = await tx.query<WebhookRow>(
      `select ${WEBHOOK_FIELDS} from webhooks
       where organization_id = any($1::text[]) and deleted_at is null and (events && $2::text[] or id = any($3::text[]))
       order by id for update`,
      [orgs, patterns, named],
    );
    if (webhooks.length === 0) {
      return { results: requests.map(() => ({ queued: 0, webhookIds: [], deliveries: [] })), handOffs: [] };
    }
    const { rows: existing } = await tx.query<DeliveryRow>(
      `select * from webhook_deliveries where webhook_id = any($1::text[]) and event_id = any($2::text[])`,
      [webhooks.map((w) => w.id), eventIds],
    );
    const plan = planDeliveries(requests, webhooks, existing, newId);
    let inserted: DeliveryRow[] = [];
    if (plan.inserts.length > 0) {
      const res = await tx.query<DeliveryRow>(
        `with ins as (
           insert into webhook_deliveries (id, webhook_id, organization_id, event_id, event_type, payload, status, sequence)
           select x.id, x.webhook_id, x.organization_id, x.event_id, x.event_type, x.payload, x.status, x.sequence
           from jsonb_to_recordset($1::jsonb) as x(id text, webhook_id text, organization_id text, event_id text,
             event_type text, payload text, status text, sequence bigint)
           on conflict do nothing
           returning *
         ), seq as (
           update webhooks w set delivery_seq = c.seq
           from jsonb_to_recordset($2::jsonb) as c(id text, seq bigint) where w.id = c.id
         )
         select * from ins`,
        [JSON.stringify(plan.inserts), JSON.stringify(plan.counters)],
      );
      // Fewer rows than planned: another writer took a pair first; numbers would have a gap.
      if (res.rows.length !== plan.inserts.length) throw new PlanConflict("concurrent fan-out of the same event");
      inserted = res.rows;
    }
    const byId = new Map<string, DeliveryRow>();
    for (const d of [...existing, ...inserted]) byId.set(d.id, d);
    const byWebhook = new Map(webhooks.map((w) => [w.id, w]));
    const work = new Map<string, Map<string, Job>>();
    const results = plan.targets.map((targets, i) => {
      const deliveries = targets.map((t) => ({
        id: t.deliveryId,
        webhookId: t.webhookId,
        status: byId.get(t.deliveryId)?.status ?? t.status,
      }));
      let queued = 0;
      for (const d of deliveries) {
        const row = byId.get(d.id);
        if (row?.status !== "pending") continue;
        queued += 1;
        if (requests[i]!.noHandOff) continue;
        let jobs = work.get(d.webhookId);
        if (!jobs) work.set(d.webhookId, (jobs = new Map()));
        jobs.set(row.id, deliveryJob(row));
      }
      return { queued, webhookIds: targets.filter((t) => t.active).map((t) => t.webhookId), deliveries };
    });
    const handOffs = [...work].map(([webhookId, jobs]): HandOff => {
      const w = byWebhook.get(webhookId)!;
      const endpoint = endpointFromRow(w, defaults, readAt);
      return {
        webhookId,
        organizationId: w.organization_id,
        jobs: [...jobs.values()],
        endpoint: endpoint ?? "inactive",
        readAt,
      };
    });
    return { results, handOffs };
  });
}
