/** @jsxImportSource hono/jsx */
import { Hono } from "hono";
import { z } from "zod";
import type { DeliveryAttempt, Delivery, DeliveryResult, Webhook, WebhookHealthMetrics } from "../webhooks/schemas.ts";
import { deliveryStatuses } from "../webhooks/schemas.ts";
import { orgPath } from "./api.ts";
import { CONSOLE_ASSETS } from "./assets.ts";
import type { ConsoleContext, ConsoleEnv } from "./kit.ts";
import { act, pageContext, readForm, render } from "./kit.ts";
import type { PageContext } from "./layout.tsx";
import { ActionButton, FlashMessage, Form, JsonData, Layout, fmtTime } from "./layout.tsx";

/**
 * Webhooks pages (Svix App Portal parity): endpoints with state, circuit and success rate;
 * create/edit with the event-type catalog; secret reveal and rotation; test events; the delivery
 * log with filters and attempts; replay, recover, circuit reset; latency and errors by type.
 */

interface Circuit {
  state: "closed" | "open" | "half_open";
  failureCount: number;
  halfOpenAt?: string;
}
interface EventType {
  type: string;
  description: string;
}

const base = (c: ConsoleContext) => `${orgPath(c.var.session.principal.organizationId)}`;
const canWrite = (ctx: PageContext) => !ctx.session.scoped || ctx.session.scoped.access === "write";

const successRate = (w: Webhook) =>
  w.stats.totalDeliveries === 0
    ? "—"
    : `${((100 * w.stats.successfulDeliveries) / Math.max(1, w.stats.totalDeliveries)).toFixed(1)} %`;

/** Form fields shared by create and edit, turned into the API's body. */
const endpointForm = z.object({
  _csrf: z.string(),
  url: z.string().min(1).max(2048),
  description: z.string().max(1000).default(""),
  events: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .transform((v) => (v === undefined ? [] : Array.isArray(v) ? v : [v])),
  patterns: z.string().max(2000).default(""),
  headers: z.string().max(9000).default(""),
  maxAttempts: z.string().max(10).default(""),
  timeoutMs: z.string().max(10).default(""),
  rateLimitPerSecond: z.string().max(10).default(""),
  ordered: z.string().optional(),
  active: z.string().optional(),
});
type EndpointForm = z.infer<typeof endpointForm>;

/** `Name: value` lines → a header record (the API validates names and values). */
function parseHeaders(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    if (!line.trim()) continue;
    const i = line.indexOf(":");
    if (i <= 0) out[line.trim()] = "";
    else out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

function endpointBody(f: EndpointForm) {
  const events = [
    ...f.events,
    ...f.patterns
      .split(/[\s,]+/)
      .map((s) => s.trim())
      .filter(Boolean),
  ];
  const settings: Record<string, number | boolean> = {};
  for (const k of ["maxAttempts", "timeoutMs", "rateLimitPerSecond"] as const) {
    if (f[k].trim() !== "") settings[k] = Number(f[k]);
  }
  settings.ordered = f.ordered === "on";
  return { url: f.url, description: f.description, events, headers: parseHeaders(f.headers), settings };
}

function EndpointFields(props: { types: EventType[]; webhook?: Webhook; prefix: string }) {
  const w = props.webhook;
  const known = new Set(props.types.map((t) => t.type));
  const chosen = new Set(w?.events ?? []);
  const extra = (w?.events ?? []).filter((e) => !known.has(e) && e !== "*");
  const id = (n: string) => `${props.prefix}-${n}`;
  return (
    <>
      <label for={id("url")}>Endpoint URL</label>
      <input
        id={id("url")}
        name="url"
        type="url"
        required
        value={w?.url ?? ""}
        placeholder="https://example.com/hook"
      />
      <label for={id("description")}>Description</label>
      <input id={id("description")} name="description" value={w?.description ?? ""} />
      <fieldset class="types">
        <legend>Event types</legend>
        <label class="check">
          <input type="checkbox" name="events" value="*" checked={chosen.has("*")} /> <code>*</code> every event
        </label>
        {props.types.map((t) => (
          <label class="check" title={t.description}>
            <input type="checkbox" name="events" value={t.type} checked={chosen.has(t.type)} /> <code>{t.type}</code>
          </label>
        ))}
      </fieldset>
      <label for={id("patterns")}>Other patterns (e.g. team.*), comma-separated</label>
      <input id={id("patterns")} name="patterns" value={extra.join(", ")} />
      <label for={id("headers")}>Custom headers, one "Name: value" per line</label>
      <textarea id={id("headers")} name="headers" rows={3}>
        {Object.entries(w?.headers ?? {})
          .map(([k, v]) => `${k}: ${v}`)
          .join("\n")}
      </textarea>
      <fieldset class="grid">
        <legend>Delivery settings (empty: the default)</legend>
        <label for={id("maxAttempts")}>Max attempts</label>
        <input
          id={id("maxAttempts")}
          name="maxAttempts"
          inputmode="numeric"
          value={w ? String(w.settings.maxAttempts) : ""}
        />
        <label for={id("timeoutMs")}>Timeout (ms)</label>
        <input
          id={id("timeoutMs")}
          name="timeoutMs"
          inputmode="numeric"
          value={w ? String(w.settings.timeoutMs) : ""}
        />
        <label for={id("rateLimitPerSecond")}>Rate limit per second (0: none)</label>
        <input
          id={id("rateLimitPerSecond")}
          name="rateLimitPerSecond"
          inputmode="numeric"
          value={w ? String(w.settings.rateLimitPerSecond) : ""}
        />
        <label class="check" for={id("ordered")}>
          <input id={id("ordered")} type="checkbox" name="ordered" checked={w?.settings.ordered ?? false} /> Ordered
          delivery (one at a time, in sequence)
        </label>
      </fieldset>
    </>
  );
}

function stateBadge(w: Webhook, circuit?: Circuit) {
  return (
    <>
      <span class={`badge ${w.active ? "ok" : "off"}`}>{w.active ? "active" : "disabled"}</span>{" "}
      {circuit ? <span class={`badge circuit-${circuit.state}`}>circuit {circuit.state.replace("_", "-")}</span> : null}
    </>
  );
}

function ListPage(props: {
  ctx: PageContext;
  webhooks: Webhook[];
  circuits: (Circuit | undefined)[];
  types: EventType[];
}) {
  const { ctx } = props;
  return (
    <Layout ctx={ctx} title="Webhooks">
      <section aria-labelledby="endpoints-h">
        <h2 id="endpoints-h">Endpoints</h2>
        {props.webhooks.length === 0 ? (
          <p>No endpoints yet.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">URL</th>
                <th scope="col">State</th>
                <th scope="col">Success rate</th>
                <th scope="col">Deliveries</th>
                <th scope="col">Last delivery</th>
              </tr>
            </thead>
            <tbody>
              {props.webhooks.map((w, i) => (
                <tr>
                  <td>
                    <a href={`/console/webhooks/${encodeURIComponent(w.id)}`}>{w.url}</a>
                    {w.description ? <div class="muted">{w.description}</div> : null}
                  </td>
                  <td>{stateBadge(w, props.circuits[i])}</td>
                  <td>{successRate(w)}</td>
                  <td>{w.stats.totalDeliveries}</td>
                  <td>{fmtTime(w.stats.lastDeliveryAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      {canWrite(ctx) ? (
        <section aria-labelledby="create-h">
          <h2 id="create-h">Add an endpoint</h2>
          <FlashMessage flash={ctx.flash} field="create" />
          <Form ctx={ctx} action="/console/webhooks" label="Add an endpoint">
            <EndpointFields types={props.types} prefix="new" />
            <button type="submit">Create endpoint</button>
          </Form>
        </section>
      ) : null}
    </Layout>
  );
}

interface DetailData {
  webhook: Webhook;
  circuit: Circuit;
  health: WebhookHealthMetrics;
  deliveries: Delivery[];
  types: EventType[];
  filters: { status?: string; eventType?: string; since?: string };
  secret?: { secret: string; previousSecretExpiresAt: string | null };
}

function LatencyChart(props: { health: WebhookHealthMetrics }) {
  const t = props.health.timeline;
  const data = {
    title: "Latency (ms)",
    x: t.map((b) => Math.floor(Date.parse(b.hour) / 1000)),
    series: [
      { label: "p50", values: t.map((b) => b.p50LatencyMs) },
      { label: "p95", values: t.map((b) => b.p95LatencyMs) },
      { label: "p99", values: t.map((b) => b.p99LatencyMs) },
    ],
  };
  return (
    <figure>
      <div class="chart" data-chart="chart-latency" role="img" aria-label="Latency p50, p95 and p99 per hour" />
      <JsonData id="chart-latency" data={data} />
      <figcaption>
        Latency per hour, last 24 h: p50/p95/p99. Overall p95 {props.health.p95LatencyMs} ms, p99{" "}
        {props.health.p99LatencyMs} ms.
      </figcaption>
    </figure>
  );
}

function DetailPage(props: { ctx: PageContext; d: DetailData }) {
  const { ctx, d } = props;
  const w = d.webhook;
  const path = `/console/webhooks/${encodeURIComponent(w.id)}`;
  const write = canWrite(ctx);
  return (
    <Layout
      ctx={ctx}
      title={`Endpoint ${w.url}`}
      scripts={[CONSOLE_ASSETS.uplot, CONSOLE_ASSETS.chart]}
      styles={[CONSOLE_ASSETS.uplotCss]}
    >
      <p>
        <a href="/console/webhooks">← All endpoints</a>
      </p>
      <section aria-labelledby="state-h">
        <h2 id="state-h">State</h2>
        <dl class="facts">
          <dt>State</dt>
          <dd>
            {stateBadge(w, d.circuit)} {w.disabledReason ? `(${w.disabledReason})` : ""}
          </dd>
          <dt>Success rate</dt>
          <dd>{successRate(w)}</dd>
          <dt>Deliveries</dt>
          <dd>
            {w.stats.totalDeliveries} ({w.stats.successfulDeliveries} succeeded, {w.stats.failedDeliveries} failed,{" "}
            {w.stats.attempts} attempts, mean {Math.round(w.stats.averageResponseTimeMs)} ms)
          </dd>
          <dt>Circuit</dt>
          <dd>
            {d.circuit.state.replace("_", "-")}, {d.circuit.failureCount} consecutive failures
            {d.circuit.halfOpenAt ? `, half-open at ${fmtTime(d.circuit.halfOpenAt)}` : ""}
          </dd>
          <dt>Events</dt>
          <dd>{w.events.join(", ")}</dd>
        </dl>
        {write ? (
          <div class="actions">
            <FlashMessage flash={ctx.flash} field="actions" />
            <ActionButton ctx={ctx} action={`${path}/test`} label="Send test event" />
            <ActionButton ctx={ctx} action={`${path}/circuit/reset`} label="Reset circuit" />
            <ActionButton ctx={ctx} action={`${path}/toggle`} label={w.active ? "Disable" : "Enable"} />
          </div>
        ) : null}
      </section>

      <section aria-labelledby="health-h">
        <h2 id="health-h">Health</h2>
        <p>
          Success rate {(d.health.successRate * 100).toFixed(1)} % over {d.health.deliveriesInPeriod} deliveries in the
          last 24 h.
        </p>
        <LatencyChart health={d.health} />
        <h3>Errors by type</h3>
        {d.health.errorBreakdown.length === 0 ? (
          <p>No errors.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">Type</th>
                <th scope="col">Count</th>
                <th scope="col">Last message</th>
              </tr>
            </thead>
            <tbody>
              {d.health.errorBreakdown.map((e) => (
                <tr>
                  <td>{e.type}</td>
                  <td>{e.count}</td>
                  <td>{e.lastMessage ?? "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>

      <section aria-labelledby="log-h">
        <h2 id="log-h">Delivery log</h2>
        <form method="get" action={path} class="filters" aria-label="Filter deliveries">
          <label for="f-status">Status</label>
          <select id="f-status" name="status">
            <option value="">any</option>
            {deliveryStatuses.map((s) => (
              <option value={s} selected={d.filters.status === s}>
                {s}
              </option>
            ))}
          </select>
          <label for="f-type">Event type</label>
          <select id="f-type" name="eventType">
            <option value="">any</option>
            {["webhook.test", ...d.types.map((t) => t.type)].map((t) => (
              <option value={t} selected={d.filters.eventType === t}>
                {t}
              </option>
            ))}
          </select>
          <label for="f-since">Created since (UTC)</label>
          <input id="f-since" name="since" type="datetime-local" value={d.filters.since ?? ""} />
          <button type="submit">Filter</button>
        </form>
        {d.deliveries.length === 0 ? (
          <p>No deliveries match.</p>
        ) : (
          <table class="deliveries">
            <thead>
              <tr>
                <th scope="col">Created</th>
                <th scope="col">Event type</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
                <th scope="col">Last response</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {d.deliveries.map((x) => (
                <tr data-delivery={x.id}>
                  <td>{fmtTime(x.createdAt)}</td>
                  <td>
                    <code>{x.eventType}</code>
                  </td>
                  <td>
                    <span class={`badge status-${x.status}`}>{x.status}</span>
                  </td>
                  <td>{x.attemptNumber}</td>
                  <td>
                    {x.responseStatus ?? "—"} {x.responseTimeMs !== undefined ? `in ${x.responseTimeMs} ms` : ""}
                    {x.errorMessage ? <div class="muted">{x.errorMessage}</div> : null}
                  </td>
                  <td>
                    <a href={`${path}/deliveries/${encodeURIComponent(x.id)}`}>Attempts</a>
                    {write ? (
                      <ActionButton
                        ctx={ctx}
                        action={`${path}/deliveries/${encodeURIComponent(x.id)}/replay`}
                        label="Replay"
                      />
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {write ? (
          <>
            <h3 id="recover-h">Recover failed deliveries</h3>
            <FlashMessage flash={ctx.flash} field="recover" />
            <Form ctx={ctx} action={`${path}/recover`} label="Recover failed deliveries">
              <label for="recover-since">Since (UTC)</label>
              <input id="recover-since" name="since" type="datetime-local" required />
              <button type="submit">Recover</button>
            </Form>
          </>
        ) : null}
      </section>

      {write ? (
        <>
          <section aria-labelledby="secret-h">
            <h2 id="secret-h">Signing secret</h2>
            <FlashMessage flash={ctx.flash} field="secret" />
            {d.secret ? (
              <p>
                <code id="secret-value">{d.secret.secret}</code>
                {d.secret.previousSecretExpiresAt
                  ? ` — the previous secret keeps signing until ${fmtTime(d.secret.previousSecretExpiresAt)}`
                  : " — no previous secret signs"}
              </p>
            ) : (
              <p>
                The secret is hidden (<code>{w.secret}</code>).
              </p>
            )}
            <div class="actions">
              <ActionButton ctx={ctx} action={`${path}/secret`} label="Reveal secret" />
              <ActionButton ctx={ctx} action={`${path}/rotate`} label="Rotate secret" />
            </div>
          </section>
          <section aria-labelledby="edit-h">
            <h2 id="edit-h">Edit endpoint</h2>
            <FlashMessage flash={ctx.flash} field="edit" />
            <Form ctx={ctx} action={`${path}/edit`} label="Edit endpoint">
              <EndpointFields types={d.types} webhook={w} prefix="edit" />
              <button type="submit">Save</button>
            </Form>
            <h3>Delete</h3>
            <ActionButton ctx={ctx} action={`${path}/delete`} label="Delete endpoint" danger />
          </section>
        </>
      ) : null}
    </Layout>
  );
}

function AttemptsPage(props: { ctx: PageContext; webhookId: string; deliveryId: string; attempts: DeliveryAttempt[] }) {
  const { ctx } = props;
  const path = `/console/webhooks/${encodeURIComponent(props.webhookId)}`;
  return (
    <Layout ctx={ctx} title={`Delivery ${props.deliveryId}`}>
      <p>
        <a href={path}>← Endpoint</a>
      </p>
      {canWrite(ctx) ? (
        <ActionButton
          ctx={ctx}
          action={`${path}/deliveries/${encodeURIComponent(props.deliveryId)}/replay`}
          label="Replay"
        />
      ) : null}
      <h2>Attempts</h2>
      {props.attempts.length === 0 ? <p>No attempt yet.</p> : null}
      <ol class="attempts">
        {props.attempts.map((a) => (
          <li data-attempt={a.attemptNumber}>
            <h3>
              Attempt {a.attemptNumber}: {a.success ? "succeeded" : "failed"} —{" "}
              {a.responseStatus ?? a.errorType ?? "no response"} in {a.latencyMs} ms, {fmtTime(a.attemptedAt)}
            </h3>
            {a.errorMessage ? <p class="muted">{a.errorMessage}</p> : null}
            <details>
              <summary>Request headers</summary>
              <pre>
                {Object.entries(a.requestHeaders)
                  .map(([k, v]) => `${k}: ${v}`)
                  .join("\n")}
              </pre>
            </details>
            <details>
              <summary>Response</summary>
              <pre>
                {Object.entries(a.responseHeaders)
                  .map(([k, v]) => `${k}: ${v}`)
                  .join("\n")}
                {"\n\n"}
                {a.responseBody ?? ""}
              </pre>
            </details>
          </li>
        ))}
      </ol>
    </Layout>
  );
}

const deliveryFilters = z.object({
  status: z.enum(deliveryStatuses).optional().catch(undefined),
  eventType: z.string().max(200).optional(),
  since: z.string().max(40).optional(),
});

/** `datetime-local` (no zone: taken as UTC) → ISO; undefined when empty or malformed. */
export function localToIso(v: string | undefined): string | undefined {
  if (!v) return undefined;
  const t = Date.parse(/[zZ]|[+-]\d\d:\d\d$/.test(v) ? v : `${v}Z`);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

async function loadDetail(c: ConsoleContext, id: string, secret?: DetailData["secret"]): Promise<DetailData> {
  const api = c.var.api;
  const w = `${base(c)}/webhooks/${encodeURIComponent(id)}`;
  const f = deliveryFilters.parse(c.req.query());
  const [webhook, circuit, health, history, types] = await Promise.all([
    api.get<Webhook>(w),
    api.get<Circuit>(`${w}/circuit`),
    api.get<WebhookHealthMetrics>(`${w}/health`),
    api.get<{ deliveries: Delivery[] }>(`${w}/deliveries`, { limit: "100", status: f.status }),
    api.get<{ eventTypes: EventType[] }>("/v1/event-types"),
  ]);
  // The API filters by status; event type and time narrow the page it returned (newest 100).
  const since = localToIso(f.since);
  const deliveries = history.deliveries.filter(
    (d) => (!f.eventType || d.eventType === f.eventType) && (!since || d.createdAt >= since),
  );
  return {
    webhook,
    circuit,
    health,
    deliveries,
    types: types.eventTypes,
    filters: { ...(f.status ? { status: f.status } : {}), eventType: f.eventType, since: f.since },
    ...(secret ? { secret } : {}),
  };
}

const csrfOnly = z.object({ _csrf: z.string() }).passthrough();

/** The webhooks section of the console. */
export const webhookPages = new Hono<ConsoleEnv>()
  .get("/", async (c) => {
    const api = c.var.api;
    const [list, types] = await Promise.all([
      api.get<{ webhooks: Webhook[] }>(`${base(c)}/webhooks`, { limit: "100" }),
      api.get<{ eventTypes: EventType[] }>("/v1/event-types"),
    ]);
    const circuits = await Promise.all(
      list.webhooks.map((w) =>
        api.get<Circuit>(`${base(c)}/webhooks/${encodeURIComponent(w.id)}/circuit`).catch(() => undefined),
      ),
    );
    return render(
      c,
      <ListPage
        ctx={pageContext(c, "webhooks")}
        webhooks={list.webhooks}
        circuits={circuits}
        types={types.eventTypes}
      />,
    );
  })
  .post("/", async (c) => {
    const f = await readForm(c, endpointForm);
    return act(
      c,
      "/console/webhooks",
      async () => {
        const w = await c.var.api.send<Webhook>("POST", `${base(c)}/webhooks`, endpointBody(f));
        return { message: `Endpoint ${w.url} created.`, location: `/console/webhooks/${encodeURIComponent(w.id)}` };
      },
      "create",
    );
  })
  .get("/:id", async (c) =>
    render(c, <DetailPage ctx={pageContext(c, "webhooks")} d={await loadDetail(c, c.req.param("id"))} />),
  )
  .post("/:id/secret", async (c) => {
    await readForm(c, csrfOnly);
    const id = c.req.param("id");
    const secret = await c.var.api.get<DetailData["secret"]>(`${base(c)}/webhooks/${encodeURIComponent(id)}/secret`);
    // Rendered, not redirected: the secret never rests in a cookie or a URL.
    return render(c, <DetailPage ctx={pageContext(c, "webhooks")} d={await loadDetail(c, id, secret)} />);
  })
  .post("/:id/rotate", async (c) => {
    await readForm(c, csrfOnly);
    const id = c.req.param("id");
    const back = `/console/webhooks/${encodeURIComponent(id)}`;
    return act(
      c,
      back,
      async () => {
        await c.var.api.send("PATCH", `${base(c)}/webhooks/${encodeURIComponent(id)}`, { rotateSecret: true });
        return { message: "Secret rotated; the previous one keeps signing during the overlap. Reveal it to copy." };
      },
      "secret",
    );
  })
  .post("/:id/test", async (c) => {
    await readForm(c, csrfOnly);
    const id = c.req.param("id");
    return act(
      c,
      `/console/webhooks/${encodeURIComponent(id)}`,
      async () => {
        const r = await c.var.api.send<DeliveryResult>("POST", `${base(c)}/webhooks/${encodeURIComponent(id)}/test`);
        return {
          message: r.success
            ? `Test event delivered: HTTP ${r.statusCode} in ${Math.round(r.responseTimeMs)} ms.`
            : `Test event failed: ${r.error ?? `HTTP ${r.statusCode}`}${r.willRetry ? " (will retry)" : ""}.`,
        };
      },
      "actions",
    );
  })
  .post("/:id/circuit/reset", async (c) => {
    await readForm(c, csrfOnly);
    const id = c.req.param("id");
    return act(
      c,
      `/console/webhooks/${encodeURIComponent(id)}`,
      async () => {
        await c.var.api.send("POST", `${base(c)}/webhooks/${encodeURIComponent(id)}/circuit/reset`);
        return { message: "Circuit closed." };
      },
      "actions",
    );
  })
  .post("/:id/toggle", async (c) => {
    await readForm(c, csrfOnly);
    const id = c.req.param("id");
    return act(
      c,
      `/console/webhooks/${encodeURIComponent(id)}`,
      async () => {
        const path = `${base(c)}/webhooks/${encodeURIComponent(id)}`;
        const w = await c.var.api.get<Webhook>(path);
        await c.var.api.send("PATCH", path, { active: !w.active });
        return { message: w.active ? "Endpoint disabled." : "Endpoint enabled." };
      },
      "actions",
    );
  })
  .post("/:id/edit", async (c) => {
    const f = await readForm(c, endpointForm);
    const id = c.req.param("id");
    return act(
      c,
      `/console/webhooks/${encodeURIComponent(id)}`,
      async () => {
        await c.var.api.send("PATCH", `${base(c)}/webhooks/${encodeURIComponent(id)}`, endpointBody(f));
        return { message: "Endpoint saved." };
      },
      "edit",
    );
  })
  .post("/:id/delete", async (c) => {
    await readForm(c, csrfOnly);
    const id = c.req.param("id");
    return act(
      c,
      `/console/webhooks/${encodeURIComponent(id)}`,
      async () => {
        const r = await c.var.api.send<{ cancelledDeliveries: number }>(
          "DELETE",
          `${base(c)}/webhooks/${encodeURIComponent(id)}`,
        );
        return {
          message: `Endpoint deleted (${r.cancelledDeliveries} pending deliveries cancelled).`,
          location: "/console/webhooks",
        };
      },
      "edit",
    );
  })
  .post("/:id/recover", async (c) => {
    const f = await readForm(c, z.object({ _csrf: z.string(), since: z.string().min(1).max(40) }));
    const id = c.req.param("id");
    return act(
      c,
      `/console/webhooks/${encodeURIComponent(id)}`,
      async () => {
        const r = await c.var.api.send<{ requeued: number }>(
          "POST",
          `${base(c)}/webhooks/${encodeURIComponent(id)}/recover`,
          { since: localToIso(f.since) ?? f.since },
        );
        return { message: `${r.requeued} deliveries requeued.` };
      },
      "recover",
    );
  })
  .get("/:id/deliveries/:did", async (c) => {
    const did = c.req.param("did");
    const r = await c.var.api.get<{ attempts: DeliveryAttempt[] }>(
      `${base(c)}/deliveries/${encodeURIComponent(did)}/attempts`,
    );
    return render(
      c,
      <AttemptsPage
        ctx={pageContext(c, "webhooks")}
        webhookId={c.req.param("id")}
        deliveryId={did}
        attempts={r.attempts}
      />,
    );
  })
  .post("/:id/deliveries/:did/replay", async (c) => {
    await readForm(c, csrfOnly);
    const id = c.req.param("id");
    const did = c.req.param("did");
    return act(c, `/console/webhooks/${encodeURIComponent(id)}/deliveries/${encodeURIComponent(did)}`, async () => {
      const r = await c.var.api.send<DeliveryResult>("POST", `${base(c)}/deliveries/${encodeURIComponent(did)}/retry`);
      return {
        message: r.success
          ? `Replayed: HTTP ${r.statusCode} in ${Math.round(r.responseTimeMs)} ms.`
          : `Replay failed: ${r.error ?? `HTTP ${r.statusCode}`}.`,
      };
    });
  });
