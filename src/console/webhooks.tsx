/** @jsxImportSource hono/jsx */
import { Hono } from "hono";
import { z } from "zod";
import { ForbiddenError, ValidationError } from "../platform/errors.ts";
import { zodIssuesOf } from "../platform/validation.ts";
import type {
  Delivery,
  DeliveryAttempt,
  DeliveryResult,
  ListedWebhook,
  Webhook,
  WebhookHealthMetrics,
} from "../webhooks/schemas.ts";
import { deliveryStatuses } from "../webhooks/schemas.ts";
import type { CircuitState } from "../webhooks/circuit.ts";
import { orgPath } from "./api.ts";
import { CONSOLE_ASSETS } from "./assets.ts";
import type { ConsoleContext, ConsoleEnv } from "./kit.ts";
import { act, pageContext, readForm, redirectWith, render } from "./kit.ts";
import type { PageContext } from "./layout.tsx";
import { ActionButton, FlashMessage, Form, JsonData, Layout, fmtTime } from "./layout.tsx";
import type { EndpointForm, EndpointValues, EventType, Refusal } from "./webhook-form.tsx";
import { EndpointFields, endpointBody, endpointForm, refusalOf, valuesFromForm, valuesOf } from "./webhook-form.tsx";

/**
 * Webhooks pages (Svix App Portal parity): endpoints with state, circuit and success rate;
 * create/edit with the event-type catalog; secret reveal and rotation; test events; the delivery
 * log with filters and attempts; replay, recover, circuit reset; latency and errors by type.
 */

const base = (c: ConsoleContext) => `${orgPath(c.var.session.principal.organizationId)}`;
const canWrite = (ctx: PageContext) => !ctx.session.scoped || ctx.session.scoped.access === "write";

const successRate = (w: Webhook) =>
  w.stats.totalDeliveries === 0
    ? "—"
    : `${((100 * w.stats.successfulDeliveries) / Math.max(1, w.stats.totalDeliveries)).toFixed(1)} %`;

function stateBadge(w: Webhook, circuit?: CircuitState) {
  return (
    <>
      <span class={`badge ${w.active ? "ok" : "off"}`}>{w.active ? "active" : "disabled"}</span>{" "}
      {circuit ? <span class={`badge circuit-${circuit.state}`}>circuit {circuit.state.replace("_", "-")}</span> : null}
    </>
  );
}

/** The endpoint form after a refusal: what was typed (absent: the page's own values) and why. */
interface FormState {
  values?: EndpointValues;
  refusal: Refusal;
}

function ListPage(props: { ctx: PageContext; webhooks: ListedWebhook[] }) {
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
              {props.webhooks.map((w) => (
                <tr>
                  <td>
                    <a href={`/console/webhooks/${encodeURIComponent(w.id)}`}>{w.url}</a>
                    {w.description ? <div class="muted">{w.description}</div> : null}
                  </td>
                  <td>{stateBadge(w, w.circuit)}</td>
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
          <p>
            <a href="/console/webhooks/new">Add an endpoint</a> — its URL, event types, headers and delivery settings.
          </p>
        </section>
      ) : null}
    </Layout>
  );
}

/** One page of the delivery log, as the API answered the filters (or refused them). */
interface LogPage {
  deliveries: Delivery[];
  total: number;
  nextCursor: string | null;
  refusal?: Refusal;
}

interface DetailData {
  webhook: Webhook;
  circuit: CircuitState;
  health: WebhookHealthMetrics;
  log: LogPage;
  types: EventType[];
  filters: DeliveryFilters;
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

/** The log's address for `filters` (empty ones left out), e.g. the next page's with its cursor. */
const logHref = (path: string, filters: DeliveryFilters) =>
  `${path}?${new URLSearchParams(Object.entries(filters).filter((e): e is [string, string] => !!e[1]))}`;

/** Filter inputs by the API parameter they set (the refusal's issue paths). */
const filterFields: Record<string, string> = {
  status: "f-status",
  eventType: "f-type",
  since: "f-since",
  until: "f-until",
};

/**
 * The delivery log: the filter form (status, event type, creation time), the API's page of the
 * deliveries that match and links to the older pages (its cursor) and back to the newest; a refused
 * filter is named next to the form, its input marked invalid.
 */
function DeliveryLog(props: {
  ctx: PageContext;
  path: string;
  log: LogPage;
  filters: DeliveryFilters;
  types: EventType[];
}) {
  const { ctx, path, log, filters: f } = props;
  const write = canWrite(ctx);
  const refused = new Set(log.refusal?.issues.map((i) => filterFields[i.path]));
  const invalid = (id: string) =>
    refused.has(id) ? { "aria-invalid": "true" as const, "aria-describedby": "filter-error" } : {};
  const types = props.types.map((t) => t.type);
  // A type or pattern given in the address but not in the catalog stays visible as chosen.
  if (f.eventType && !types.includes(f.eventType)) types.unshift(f.eventType);
  return (
    <>
      <form method="get" action={path} class="filters" aria-label="Filter deliveries">
        <label for="f-status">Status</label>
        <select id="f-status" name="status" {...invalid("f-status")}>
          <option value="">any</option>
          {deliveryStatuses.map((s) => (
            <option value={s} selected={f.status === s}>
              {s}
            </option>
          ))}
        </select>
        <label for="f-type">Event type</label>
        <select id="f-type" name="eventType" {...invalid("f-type")}>
          <option value="">any</option>
          {types.map((t) => (
            <option value={t} selected={f.eventType === t}>
              {t}
            </option>
          ))}
        </select>
        <label for="f-since">Created since (UTC)</label>
        <input id="f-since" name="since" type="datetime-local" value={f.since ?? ""} {...invalid("f-since")} />
        <label for="f-until">Created before (UTC)</label>
        <input id="f-until" name="until" type="datetime-local" value={f.until ?? ""} {...invalid("f-until")} />
        <button type="submit">Filter</button>
      </form>
      {log.refusal ? (
        <p id="filter-error" class="flash error" role="alert">
          <code>{log.refusal.code}</code> {log.refusal.message}
          {log.refusal.issues.length ? `: ${log.refusal.issues.map((i) => `${i.path}: ${i.message}`).join("; ")}` : ""}
        </p>
      ) : log.deliveries.length === 0 ? (
        <p>No deliveries match.</p>
      ) : (
        <>
          <p class="muted">
            {log.total} {log.total === 1 ? "delivery matches" : "deliveries match"}
            {f.cursor ? "; an older page" : ""}.
          </p>
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
              {log.deliveries.map((x) => (
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
        </>
      )}
      {f.cursor || log.nextCursor ? (
        <nav aria-label="Delivery log pages" class="pager">
          {f.cursor ? <a href={logHref(path, { ...f, cursor: undefined })}>Newest deliveries</a> : null}
          {log.nextCursor ? (
            <a href={logHref(path, { ...f, cursor: log.nextCursor })} rel="next">
              Older deliveries
            </a>
          ) : null}
        </nav>
      ) : null}
    </>
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
        <DeliveryLog ctx={ctx} path={path} log={d.log} filters={d.filters} types={d.types} />
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
            <p>
              <a href={`${path}/edit`}>Edit endpoint</a> — its URL, event types, headers and delivery settings.
            </p>
            <h3>Delete</h3>
            <ActionButton ctx={ctx} action={`${path}/delete`} label="Delete endpoint" danger />
          </section>
        </>
      ) : null}
    </Layout>
  );
}

/**
 * The endpoint form on a page of its own (create, or edit `webhook`): the list and the endpoint's
 * page stay light, and a refused form is shown again without loading them.
 */
function EndpointFormPage(props: { ctx: PageContext; types: EventType[]; webhook?: Webhook; state?: FormState }) {
  const { ctx, webhook: w, state } = props;
  const back = w ? `/console/webhooks/${encodeURIComponent(w.id)}` : "/console/webhooks";
  const label = w ? "Edit endpoint" : "Add an endpoint";
  return (
    <Layout ctx={ctx} title={w ? `Edit ${w.url}` : "Add an endpoint"}>
      <p>
        <a href={back}>{w ? "← Endpoint" : "← All endpoints"}</a>
      </p>
      <Form ctx={ctx} action={w ? `${back}/edit` : "/console/webhooks"} label={label}>
        <EndpointFields
          types={props.types}
          values={state?.values ?? valuesOf(props.types, w)}
          prefix={w ? "edit" : "new"}
          {...(w ? { editing: true } : {})}
          {...(state ? { refusal: state.refusal } : {})}
        />
        <button type="submit">{w ? "Save" : "Create endpoint"}</button>
      </Form>
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

/**
 * The delivery log's filters as the address gives them; passed to the API, which judges them (a
 * value over these lengths is dropped, not an error: no API value is that long).
 */
const deliveryFilters = z.object({
  status: z.string().max(40).optional().catch(undefined),
  eventType: z.string().max(200).optional().catch(undefined),
  since: z.string().max(40).optional().catch(undefined),
  until: z.string().max(40).optional().catch(undefined),
  cursor: z.string().max(400).optional().catch(undefined),
});
type DeliveryFilters = z.infer<typeof deliveryFilters>;

/** Deliveries per page of the log. */
const LOG_PAGE = 25;

/**
 * `datetime-local` (no zone: taken as UTC) → ISO; text that is no time is returned as typed, for
 * the API to refuse with its own message; undefined when empty.
 */
export function localToIso(v: string | undefined): string | undefined {
  if (!v) return undefined;
  const t = Date.parse(/[zZ]|[+-]\d\d:\d\d$/.test(v) ? v : `${v}Z`);
  return Number.isNaN(t) ? v : new Date(t).toISOString();
}

async function loadDetail(c: ConsoleContext, id: string, extra: Pick<DetailData, "secret"> = {}): Promise<DetailData> {
  const api = c.var.api;
  const w = `${base(c)}/webhooks/${encodeURIComponent(id)}`;
  const f = deliveryFilters.parse(c.req.query());
  const [webhook, circuit, health, log, types] = await Promise.all([
    api.get<Webhook>(w),
    api.get<CircuitState>(`${w}/circuit`),
    api.get<WebhookHealthMetrics>(`${w}/health`),
    api
      .get<LogPage>(`${w}/deliveries`, {
        limit: String(LOG_PAGE),
        status: f.status,
        eventType: f.eventType,
        since: localToIso(f.since),
        until: localToIso(f.until),
        cursor: f.cursor,
      })
      .catch((err: unknown): LogPage => {
        const refusal = refusalOf(err);
        if (refusal?.status !== 400) throw err;
        return { deliveries: [], total: 0, nextCursor: null, refusal };
      }),
    api.get<{ eventTypes: EventType[] }>("/v1/event-types"),
  ]);
  return { webhook, circuit, health, log, types: types.eventTypes, filters: f, ...extra };
}

/** An endpoint's page (with the revealed secret). */
const detailPage = async (c: ConsoleContext, id: string, extra: Pick<DetailData, "secret"> = {}) =>
  render(c, <DetailPage ctx={pageContext(c, "webhooks")} d={await loadDetail(c, id, extra)} />);

/** The endpoint list. */
async function listPage(c: ConsoleContext) {
  // One call for the endpoints and their breakers (not one per endpoint).
  const list = await c.var.api.get<{ webhooks: ListedWebhook[] }>(`${base(c)}/webhooks`, {
    limit: "100",
    includeCircuit: "true",
  });
  return render(c, <ListPage ctx={pageContext(c, "webhooks")} webhooks={list.webhooks} />);
}

/** The endpoint form's page: create, or edit endpoint `id`; after a refusal, with what was typed. */
async function formPage(c: ConsoleContext, id?: string, state?: FormState) {
  const ctx = pageContext(c, "webhooks");
  if (!canWrite(ctx)) throw new ForbiddenError("this console link is read-only");
  const [types, webhook] = await Promise.all([
    c.var.api.get<{ eventTypes: EventType[] }>("/v1/event-types"),
    id ? c.var.api.get<Webhook>(`${base(c)}/webhooks/${encodeURIComponent(id)}`) : undefined,
  ]);
  return render(
    c,
    <EndpointFormPage
      ctx={ctx}
      types={types.eventTypes}
      {...(webhook ? { webhook } : {})}
      {...(state ? { state } : {})}
    />,
    state?.refusal.status ?? 200,
  );
}

/**
 * Saves the endpoint form through `/v1`: on success Post/Redirect/Get with a flash message; on a
 * 4xx refusal (the API's, or the form's own parse) the page again (`page`), its form keeping what
 * was typed and showing each issue next to its field. A refusal renders rather than redirects:
 * what was typed would not fit in the flash cookie.
 */
async function saveEndpoint(
  c: ConsoleContext,
  send: (f: EndpointForm) => Promise<{ message: string; location: string; field?: string }>,
  page: (state: FormState) => Promise<Response>,
) {
  const parsed = endpointForm.safeParse(await c.req.parseBody({ all: true }));
  try {
    if (!parsed.success) throw new ValidationError("form validation failed", zodIssuesOf(parsed.error, "form"));
    const { message, location, field } = await send(parsed.data);
    return redirectWith(c, location, { kind: "ok", message, ...(field ? { field } : {}) });
  } catch (err) {
    const refusal = refusalOf(err);
    if (!refusal) throw err;
    return page({ refusal, ...(parsed.success ? { values: valuesFromForm(parsed.data) } : {}) });
  }
}

const csrfOnly = z.object({ _csrf: z.string() }).passthrough();

/** The webhooks section of the console. */
export const webhookPages = new Hono<ConsoleEnv>()
  .get("/", (c) => listPage(c))
  .get("/new", (c) => formPage(c))
  .post("/", (c) =>
    saveEndpoint(
      c,
      async (f) => {
        const w = await c.var.api.send<Webhook>("POST", `${base(c)}/webhooks`, endpointBody(f));
        return { message: `Endpoint ${w.url} created.`, location: `/console/webhooks/${encodeURIComponent(w.id)}` };
      },
      (state) => formPage(c, undefined, state),
    ),
  )
  .get("/:id", (c) => detailPage(c, c.req.param("id")))
  .get("/:id/edit", (c) => formPage(c, c.req.param("id")))
  .post("/:id/secret", async (c) => {
    await readForm(c, csrfOnly);
    const id = c.req.param("id");
    const secret = await c.var.api.get<DetailData["secret"]>(`${base(c)}/webhooks/${encodeURIComponent(id)}/secret`);
    // Rendered, not redirected: the secret never rests in a cookie or a URL.
    return detailPage(c, id, secret ? { secret } : {});
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
  .post("/:id/edit", (c) => {
    const id = c.req.param("id");
    const path = `${base(c)}/webhooks/${encodeURIComponent(id)}`;
    return saveEndpoint(
      c,
      async (f) => {
        // The body names only the settings that change, so it is built against the current ones.
        const current = await c.var.api.get<Webhook>(path);
        await c.var.api.send("PATCH", path, endpointBody(f, current));
        return { message: "Endpoint saved.", location: `/console/webhooks/${encodeURIComponent(id)}`, field: "edit" };
      },
      (state) => formPage(c, id, state),
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
          { since: localToIso(f.since) },
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
