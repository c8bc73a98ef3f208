import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { Webhook as StandardWebhook } from "standardwebhooks";
import type { Behaviour } from "../../setup/receiver-behaviour.ts";
import { api } from "./api.ts";
import { withDb } from "./backends.ts";

/** The scriptable local receiver (test/setup/receiver.ts). */
export const receiverUrl = () => (env as unknown as { RECEIVER_URL: string }).RECEIVER_URL;

/** A fresh hook name on the receiver, and its URL. */
export function newHook() {
  const name = `h${crypto.randomUUID().slice(0, 12)}`;
  return { name, url: `${receiverUrl()}/hooks/${name}` };
}

/** Scripts how the hook answers: `script` one per request, then `otherwise`. */
export async function script(name: string, cfg: { script?: Behaviour[]; otherwise?: Behaviour; reset?: boolean }) {
  await fetch(`${receiverUrl()}/__control/${name}`, { method: "POST", body: JSON.stringify(cfg) });
}

/** What the hook received so far. */
export async function received(name: string) {
  const r = (await (await fetch(`${receiverUrl()}/__control/${name}`)).json()) as {
    requests: { headers: Record<string, string>; body: string; receivedAt: number }[];
    maxInFlight: number;
  };
  return r;
}

/** Verifies a received request with the official Standard Webhooks library. */
export function verifiedBy(secret: string, req: { headers: Record<string, string>; body: string }): unknown {
  return new StandardWebhook(secret).verify(req.body, {
    "webhook-id": req.headers["webhook-id"]!,
    "webhook-timestamp": req.headers["webhook-timestamp"]!,
    "webhook-signature": req.headers["webhook-signature"]!,
  });
}

/** The endpoint object of a webhook. */
export const endpoint = (webhookId: string) => env.WEBHOOK_ENDPOINT.get(env.WEBHOOK_ENDPOINT.idFromName(webhookId));

/**
 * Runs `fn` while the endpoint object of `webhookId` sees `overrides` in its env (e.g. an
 * unreachable DATABASE_URL), then restores it: an outage of the object's own dependencies while
 * the Worker's and the writer's are up.
 */
export async function withEndpointEnv<T>(
  webhookId: string,
  overrides: Record<string, string>,
  fn: () => Promise<T>,
): Promise<T> {
  const swap = (next: (env: object) => object) =>
    runInDurableObject(endpoint(webhookId), (instance: object) => {
      const o = instance as { env: object }; // protected in the class; the test swaps it in place
      o.env = next(o.env);
    });
  let original: object | undefined;
  await swap((e) => {
    original = e;
    return { ...e, ...overrides };
  });
  try {
    return await fn();
  } finally {
    await swap(() => original!);
  }
}

/**
 * Moves an endpoint object's clock forward by `ms`: every due time and breaker timestamp shifts
 * back, so what would be due after `ms` is due now. Deterministic, no sleeping.
 */
export async function timeTravel(webhookId: string, ms: number) {
  await runInDurableObject(
    endpoint(webhookId),
    async (instance: { reloadState(): void }, state: DurableObjectState) => {
      instance.reloadState(); // it caches what is edited below
      state.storage.sql.exec("update jobs set due_at = due_at - ?", ms);
      const row = state.storage.sql.exec<{ value: string }>("select value from kv where key = 'circuit'").toArray()[0];
      if (row) {
        const c = JSON.parse(row.value) as Record<string, number | null | string>;
        for (const k of ["lastFailureAt", "openedAt", "halfOpenAt"])
          if (typeof c[k] === "number") c[k] = (c[k] as number) - ms;
        state.storage.sql.exec("update kv set value = ? where key = 'circuit'", JSON.stringify(c));
      }
      // The auto-disable clock and the rate limit's window move with it.
      state.storage.sql.exec(
        "update kv set value = cast(cast(value as integer) - ? as text) where key = 'failingSince'",
        ms,
      );
      const pacing = state.storage.sql
        .exec<{ value: string }>("select value from kv where key = 'pacing'")
        .toArray()[0];
      if (pacing) {
        const starts = (JSON.parse(pacing.value) as number[]).map((t) => t - ms);
        state.storage.sql.exec("update kv set value = ? where key = 'pacing'", JSON.stringify(starts));
      }
    },
  );
}

/** Registers a webhook through the API and returns it (with its secret). */
export async function register(
  org: string,
  url: string,
  events: string[] = ["*"],
  extra: Record<string, unknown> = {},
) {
  const res = await api(`/v1/orgs/${org}/webhooks`, { org, body: { url, events, ...extra } });
  if (res.status !== 201) throw new Error(`register failed: ${res.status} ${await res.text()}`);
  return (await res.json()) as { id: string; secret: string; organizationId: string; url: string; events: string[] };
}

/** Sends an event through the API. */
export async function sendEvent(
  org: string,
  eventType = "team.created",
  data: Record<string, unknown> = {},
  eventId = `evt_${crypto.randomUUID()}`,
) {
  const res = await api(`/v1/orgs/${org}/webhook-events`, {
    org,
    body: { eventId, eventType, data, occurredAt: new Date().toISOString() },
  });
  if (res.status !== 202) throw new Error(`enqueue failed: ${res.status} ${await res.text()}`);
  return { eventId, ...((await res.json()) as { queued: number; webhookIds: string[] }) };
}

/**
 * A webhook whose receiver answers 500 to everything, sent `events` events and drained: with the
 * default threshold (5) its circuit is open.
 */
export async function failingWebhook(org: string, events = 6) {
  const hook = newHook();
  await script(hook.name, { otherwise: { status: 500 } });
  const w = await register(org, hook.url, ["team.*"]);
  for (let i = 0; i < events; i++) await sendEvent(org);
  await endpoint(w.id).drain();
  return { w, hook };
}

/** A unique organization id. */
export const newOrg = () => `org_${crypto.randomUUID().slice(0, 8)}`;

/** A delivery as {@link seedDeliveries} wrote it. */
export interface SeededDelivery {
  id: string;
  eventType: string;
  status: string;
  createdAt: string;
}

/**
 * Writes `n` deliveries of a webhook straight into Postgres, a minute apart back from now, the
 * types cycling through `types`, alternately failed and succeeded; returns them newest first.
 */
export async function seedDeliveries(
  org: string,
  webhookId: string,
  n: number,
  types: string[] = ["team.created", "team.deleted", "usage.quota.exceeded"],
): Promise<SeededDelivery[]> {
  const { rows } = await withDb((db) =>
    db.query<{ id: string; event_type: string; status: string; created_at: Date }>(
      `insert into webhook_deliveries (id, webhook_id, organization_id, event_id, event_type, payload, status, created_at)
       select 'msg_s' || i || '_' || $1, $1, $2, 'evt_s' || i || '_' || $1, ($3::text[])[1 + i % cardinality($3::text[])],
         '{}', case when i % 2 = 0 then 'failed' else 'succeeded' end, now() - make_interval(mins => i)
       from generate_series(0, $4 - 1) as i
       returning id, event_type, status, created_at`,
      [webhookId, org, types, n],
    ),
  );
  return rows
    .map((r) => ({ id: r.id, eventType: r.event_type, status: r.status, createdAt: r.created_at.toISOString() }))
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}
