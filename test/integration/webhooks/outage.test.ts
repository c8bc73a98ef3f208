import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, apiWith } from "../support/api.ts";
import { withDb, withoutPostgres } from "../support/backends.ts";
import { endpoint, failingWebhook, newHook, newOrg, register } from "../support/webhooks.ts";

// Issue [5/6]: during a Postgres outage, a circuit read the endpoint's object can answer — it knows
// the webhook's organization from a hand-off — is still answered (and the same), another
// organization's webhook and a deleted one are still a 404; one the object cannot vouch for is a
// 503 with Retry-After — never a 500, never another organization's breaker.

/** GET …/circuit of `org` with `bindings`; returns status, Retry-After and body. */
async function circuit(bindings: object, org: string, webhookId: string) {
  const res = await apiWith(bindings, `/v1/orgs/${org}/webhooks/${webhookId}/circuit`, { org });
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as unknown };
}

const notFound = { status: 404, body: { error: expect.objectContaining({ code: "not_found" }) } };
const unavailable = {
  status: 503,
  retryAfter: "1",
  body: { error: expect.objectContaining({ code: "service_unavailable", message: "database unavailable" }) },
};

/** A webhook whose breaker is open (its receiver fails every attempt). */
const openCircuit = async (org: string) => (await failingWebhook(org)).w;

describe("circuit reads while Postgres is down", () => {
  it("answers from the endpoint's object, the same as before; another organization's webhook is still a 404", async () => {
    const org = newOrg();
    const w = await openCircuit(org);
    const fresh = await circuit(env, org, w.id);
    expect(fresh).toMatchObject({ status: 200, body: { webhookId: w.id, state: "open", failureCount: 5 } });

    expect(await circuit(withoutPostgres(), org, w.id)).toEqual(fresh);
    const other = newOrg();
    expect(await circuit(withoutPostgres(), other, w.id)).toMatchObject(notFound);

    // Postgres back: the same answers.
    expect(await circuit(env, org, w.id)).toEqual(fresh);
    expect(await circuit(env, other, w.id)).toMatchObject(notFound);
  });

  it("answers for a webhook from its registration on, before any delivery", async () => {
    const org = newOrg();
    const w = await register(org, newHook().url, ["team.*"]); // never handed a delivery
    const down = await circuit(withoutPostgres(), org, w.id);
    expect(down).toMatchObject({ status: 200, body: { webhookId: w.id, state: "closed", failureCount: 0 } });
    expect(await circuit(withoutPostgres(), newOrg(), w.id)).toMatchObject(notFound);
    expect(await circuit(env, org, w.id)).toEqual(down);
  });

  it("is a 503 for a webhook its object cannot vouch for, until a read with Postgres up taught it", async () => {
    const org = newOrg();
    const w = await register(org, newHook().url, ["team.*"]);
    // A webhook whose object never heard of it: its row written without the registration's
    // hand-off (as for webhooks registered before objects learned their organization there).
    const id = `wh_${crypto.randomUUID().replace(/-/g, "")}`;
    await withDb((db) =>
      db.query(
        `insert into webhooks (id, organization_id, url, events, secret, description, headers, created_by, settings)
         select $2, organization_id, url, events, secret, description, headers, created_by, settings from webhooks where id = $1`,
        [w.id, id],
      ),
    );
    expect(await circuit(withoutPostgres(), org, id)).toMatchObject(unavailable);
    expect(await circuit(withoutPostgres(), newOrg(), id)).toMatchObject(unavailable); // nor reveals it
    const fresh = await circuit(env, org, id);
    expect(fresh).toMatchObject({ status: 200, body: { webhookId: id, state: "closed" } });
    expect(await circuit(withoutPostgres(), org, id)).toEqual(fresh);
    expect(await circuit(withoutPostgres(), newOrg(), id)).toMatchObject(notFound);
  });

  it("is a 404 for a deleted webhook, during the outage and after", async () => {
    const org = newOrg();
    const w = await openCircuit(org);
    expect((await api(`/v1/orgs/${org}/webhooks/${w.id}`, { org, method: "DELETE" })).status).toBe(200);
    expect(await circuit(withoutPostgres(), org, w.id)).toMatchObject(notFound);
    expect(await circuit(env, org, w.id)).toMatchObject(notFound);
  });

  it("never vouches for a webhook whose delete committed but did not reach its object", async () => {
    const org = newOrg();
    const w = await openCircuit(org);
    // The delete's first step (the object stops vouching), then its commit — and no `cancelAll`,
    // as when the object could not be reached after the commit.
    await endpoint(w.id).invalidate({ deleting: true });
    await withDb((db) => db.query("update webhooks set deleted_at = now(), active = false where id = $1", [w.id]));
    expect(await circuit(withoutPostgres(), org, w.id)).toMatchObject(unavailable); // not a stale 200
    expect(await circuit(env, org, w.id)).toMatchObject(notFound); // Postgres knows
  });
});
