/** @jsxImportSource hono/jsx */
import { Hono } from "hono";
import { z } from "zod";
import { metricTypes } from "../usage/metrics.ts";
import type { AggregatedMetrics, DashboardData, QuotaMetric, UsageReport } from "../usage/schemas.ts";
import { orgPath } from "./api.ts";
import { CONSOLE_ASSETS } from "./assets.ts";
import type { ConsoleContext, ConsoleEnv } from "./kit.ts";
import { act, pageContext, readForm, render } from "./kit.ts";
import type { PageContext } from "./layout.tsx";
import { FlashMessage, Form, JsonData, Layout, fmtTime } from "./layout.tsx";

/**
 * Usage pages: a time-series chart per metric (the `/usage/metrics` answer, point for point) with
 * granularity and time-zone pickers; quota bars with the alert thresholds; current vs previous
 * period; top users and documents; real-time counts refreshed in place; reports with revisions
 * and CSV download.
 */

const granularities = ["minute", "hour", "day", "month"] as const;
const spanMs = { minute: 3 * 3_600_000, hour: 2 * 86_400_000, day: 31 * 86_400_000, month: 366 * 86_400_000 };
const zones = [
  "UTC",
  "Europe/London",
  "Europe/Paris",
  "America/New_York",
  "America/Los_Angeles",
  "Asia/Tokyo",
  "Asia/Kolkata",
  "Australia/Sydney",
];

const queryForm = z.object({
  metric: z
    .union([z.string(), z.array(z.string())])
    .optional()
    .transform((v) => (v === undefined ? ["api_calls"] : Array.isArray(v) ? v : [v])),
  granularity: z.enum(granularities).catch("hour"),
  tz: z.string().max(64).catch("UTC"),
  from: z.string().max(40).optional(),
  to: z.string().max(40).optional(),
  refresh: z.coerce.number().int().min(1000).max(600_000).catch(5000),
});

/** `datetime-local` (taken as UTC) or ISO → ISO; undefined when empty or malformed. */
const toIso = (v: string | undefined) => {
  if (!v) return undefined;
  const t = Date.parse(/[zZ]|[+-]\d\d:\d\d$/.test(v) ? v : `${v}Z`);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
};

/** One chart's data: x in unix seconds (bucket starts), one series (the metric's values). */
export function chartOf(metrics: AggregatedMetrics, metric: string) {
  const points = metrics.dataPoints.filter((p) => p.metricType === metric);
  return {
    title: metric,
    x: points.map((p) => Math.floor(Date.parse(p.timestamp) / 1000)),
    series: [{ label: metric, values: points.map((p) => p.value) }],
  };
}

/** A quota bar as SVG (no inline styles under the CSP): usage, and a tick per alert threshold. */
function QuotaBar(props: { m: QuotaMetric; thresholds: number[] }) {
  const { m } = props;
  const pct = m.limit === null ? 0 : Math.min(100, m.percentage);
  const label = `${m.metricType}: ${m.used.toLocaleString("en")} of ${
    m.limit === null ? "unlimited" : m.limit.toLocaleString("en")
  } (${m.percentage.toFixed(1)} %)${props.thresholds.length ? `; alerts at ${props.thresholds.map((t) => `${t} %`).join(", ")}` : ""}`;
  return (
    <div class="quota" data-metric={m.metricType}>
      <svg width="300" height="22" viewBox="0 0 300 22" role="img" aria-label={label}>
        <rect x="0" y="4" width="300" height="14" fill="#e5e7eb" rx="3" />
        <rect x="0" y="4" width={String(3 * pct)} height="14" fill={m.exceeded ? "#b91c1c" : "#2563eb"} rx="3" />
        {props.thresholds.map((t) => (
          <line
            data-threshold={String(t)}
            x1={String(3 * Math.min(100, t))}
            x2={String(3 * Math.min(100, t))}
            y1="0"
            y2="22"
            stroke="#111827"
            stroke-width="2"
          />
        ))}
      </svg>{" "}
      <span>{label}</span>
    </div>
  );
}

interface Trend {
  weekOverWeek?: { current: number; previous: number; changePct: number | null };
  monthOverMonth?: { current: number; previous: number; changePct: number | null };
}

function UsagePage(props: {
  ctx: PageContext;
  q: z.infer<typeof queryForm>;
  range: { from: string; to: string };
  metrics: AggregatedMetrics;
  apiQuery: string;
  dash: DashboardData;
  thresholds: Record<string, number[]>;
  reports: UsageReport[];
}) {
  const { ctx, q, dash } = props;
  const period = dash.currentPeriod as {
    plan?: string;
    periodStart?: string;
    periodEnd?: string;
    metrics?: QuotaMetric[];
  };
  const trends = dash.trends as Record<string, Trend>;
  const write = !ctx.session.scoped || ctx.session.scoped.access === "write";
  return (
    <Layout
      ctx={ctx}
      title="Usage"
      scripts={[CONSOLE_ASSETS.uplot, CONSOLE_ASSETS.chart, CONSOLE_ASSETS.live]}
      styles={[CONSOLE_ASSETS.uplotCss]}
    >
      <section aria-labelledby="live-h" data-live-src="/console/usage/live" data-live-every={String(q.refresh)}>
        <h2 id="live-h">Right now</h2>
        <div class="kpis" aria-live="polite">
          <div>
            Active users <strong data-live="activeUsers">{dash.realtime.activeUsers}</strong>
          </div>
          <div>
            Open documents <strong data-live="openDocuments">{dash.realtime.openDocuments}</strong>
          </div>
          <div>
            Unique users today / week / month{" "}
            <strong>
              {dash.uniqueUsers.today} / {dash.uniqueUsers.week} / {dash.uniqueUsers.month}
            </strong>
          </div>
        </div>
      </section>

      <section aria-labelledby="series-h">
        <h2 id="series-h">Over time</h2>
        <form method="get" action="/console/usage" class="filters" aria-label="Chart query">
          <label for="q-metric">Metrics</label>
          <select id="q-metric" name="metric" multiple size={4}>
            {metricTypes.map((m) => (
              <option value={m} selected={q.metric.includes(m)}>
                {m}
              </option>
            ))}
          </select>
          <label for="q-granularity">Granularity</label>
          <select id="q-granularity" name="granularity">
            {granularities.map((g) => (
              <option value={g} selected={q.granularity === g}>
                {g}
              </option>
            ))}
          </select>
          <label for="q-tz">Time zone</label>
          <select id="q-tz" name="tz">
            {[...new Set([q.tz, ...zones])].map((z) => (
              <option value={z} selected={q.tz === z}>
                {z}
              </option>
            ))}
          </select>
          <label for="q-from">From (UTC)</label>
          <input id="q-from" name="from" type="datetime-local" value={props.range.from.slice(0, 16)} />
          <label for="q-to">To (UTC)</label>
          <input id="q-to" name="to" type="datetime-local" value={props.range.to.slice(0, 16)} />
          <button type="submit">Show</button>
        </form>
        <p class="help" id="series-query" data-query={props.apiQuery}>
          Same data as <code>GET /usage/metrics?{props.apiQuery}</code> ({props.metrics.source}).
        </p>
        {q.metric.map((m) => (
          <figure>
            <div
              class="chart"
              data-chart={`chart-${m}`}
              data-tz={q.tz}
              role="img"
              aria-label={`${m} per ${q.granularity}`}
            />
            <JsonData id={`chart-${m}`} data={chartOf(props.metrics, m)} />
            <figcaption>
              {m}: total {props.metrics.totals[m] ?? 0} per {q.granularity} ({q.tz})
            </figcaption>
          </figure>
        ))}
      </section>

      <section aria-labelledby="quota-h">
        <h2 id="quota-h">Quotas</h2>
        <p>
          Plan <strong>{period.plan ?? "—"}</strong>, period {fmtTime(period.periodStart)} – {fmtTime(period.periodEnd)}
          .
        </p>
        {(period.metrics ?? []).map((m) => (
          <QuotaBar m={m} thresholds={props.thresholds[m.metricType] ?? []} />
        ))}
      </section>

      <section aria-labelledby="trend-h">
        <h2 id="trend-h">Current vs previous period</h2>
        <table>
          <thead>
            <tr>
              <th scope="col">Metric</th>
              <th scope="col">This week</th>
              <th scope="col">Last week</th>
              <th scope="col">This month</th>
              <th scope="col">Last month</th>
              <th scope="col">Change (month)</th>
            </tr>
          </thead>
          <tbody>
            {Object.entries(trends).map(([metric, t]) => (
              <tr>
                <td>{metric}</td>
                <td>{t.weekOverWeek?.current ?? "—"}</td>
                <td>{t.weekOverWeek?.previous ?? "—"}</td>
                <td>{t.monthOverMonth?.current ?? "—"}</td>
                <td>{t.monthOverMonth?.previous ?? "—"}</td>
                <td>{t.monthOverMonth?.changePct == null ? "—" : `${t.monthOverMonth.changePct.toFixed(1)} %`}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>

      <section aria-labelledby="top-h">
        <h2 id="top-h">Top users and documents</h2>
        <div class="kpis">
          <table>
            <caption>Top users</caption>
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Events</th>
              </tr>
            </thead>
            <tbody>
              {dash.topUsers.map((u) => (
                <tr>
                  <td>{u.userId}</td>
                  <td>{u.events}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <table>
            <caption>Top documents</caption>
            <thead>
              <tr>
                <th scope="col">Document</th>
                <th scope="col">Events</th>
              </tr>
            </thead>
            <tbody>
              {dash.topDocuments.map((d) => (
                <tr>
                  <td>{d.documentId}</td>
                  <td>{d.events}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>

      <section aria-labelledby="reports-h">
        <h2 id="reports-h">Reports</h2>
        {props.reports.length === 0 ? <p>No reports yet.</p> : null}
        <ul>
          {props.reports.map((r) => (
            <li>
              <a href={`/console/usage/reports/${encodeURIComponent(r.reportId)}`}>
                {r.periodStart.slice(0, 10)} – {r.periodEnd.slice(0, 10)}, revision {r.revision}
              </a>{" "}
              · <a href={`/console/usage/reports/${encodeURIComponent(r.reportId)}/csv`}>CSV</a>
            </li>
          ))}
        </ul>
        {write ? (
          <>
            <FlashMessage flash={ctx.flash} field="report" />
            <Form ctx={ctx} action="/console/usage/reports" label="Generate a report">
              <label for="r-start">Period start (UTC date)</label>
              <input
                id="r-start"
                name="periodStart"
                type="date"
                required
                value={(period.periodStart ?? "").slice(0, 10)}
              />
              <label for="r-end">Period end (UTC date)</label>
              <input id="r-end" name="periodEnd" type="date" required value={(period.periodEnd ?? "").slice(0, 10)} />
              <button type="submit">Generate report</button>
            </Form>
          </>
        ) : null}
      </section>
    </Layout>
  );
}

function ReportPage(props: { ctx: PageContext; revisions: UsageReport[] }) {
  const latest = props.revisions[0];
  return (
    <Layout
      ctx={props.ctx}
      title={latest ? `Report ${latest.periodStart.slice(0, 10)} – ${latest.periodEnd.slice(0, 10)}` : "Report"}
    >
      <p>
        <a href="/console/usage">← Usage</a>
      </p>
      {props.revisions.map((r) => (
        <section aria-labelledby={`rev-${r.revision}`}>
          <h2 id={`rev-${r.revision}`}>
            Revision {r.revision} (as of {fmtTime(r.asOf)}) ·{" "}
            <a href={`/console/usage/reports/${encodeURIComponent(r.reportId)}/csv`}>CSV</a>
          </h2>
          <table>
            <thead>
              <tr>
                <th scope="col">Metric</th>
                <th scope="col">Quantity</th>
                <th scope="col">Included</th>
                <th scope="col">Overage</th>
                <th scope="col">Unit price</th>
                <th scope="col">Amount</th>
              </tr>
            </thead>
            <tbody>
              {r.lineItems.map((l) => (
                <tr>
                  <td>{l.metricType}</td>
                  <td>{l.quantity}</td>
                  <td>{l.included}</td>
                  <td>{l.overage}</td>
                  <td>{l.unitPrice}</td>
                  <td>{l.amount}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {r.changes?.length ? (
            <p>
              Changes: {r.changes.map((ch) => `${ch.metricType} ${ch.previousQuantity} → ${ch.quantity}`).join("; ")}
            </p>
          ) : null}
        </section>
      ))}
    </Layout>
  );
}

const base = (c: ConsoleContext) => orgPath(c.var.session.principal.organizationId);

/** The usage section of the console. */
export const usagePages = new Hono<ConsoleEnv>()
  .get("/", async (c) => {
    const singles = queryForm.parse({ ...c.req.query(), metric: c.req.queries("metric") });
    const q = singles;
    const to = toIso(singles.to) ?? new Date(Math.ceil(Date.now() / 3_600_000) * 3_600_000).toISOString();
    const from = toIso(singles.from) ?? new Date(Date.parse(to) - spanMs[singles.granularity]).toISOString();
    const query = {
      startTime: from,
      endTime: to,
      granularity: singles.granularity,
      metricTypes: q.metric.join(","),
      timeZone: singles.tz,
    };
    const api = c.var.api;
    const [metrics, dash, alerts, reports] = await Promise.all([
      api.get<AggregatedMetrics>(`${base(c)}/usage/metrics`, query),
      api.get<DashboardData>(`${base(c)}/usage/dashboard`),
      api.get<{ subscriptions: { metricType: string; threshold: number }[] }>(`${base(c)}/usage/alerts`),
      api.get<{ reports: UsageReport[] }>(`${base(c)}/usage/reports`, { limit: "20" }),
    ]);
    const thresholds: Record<string, number[]> = {};
    for (const s of alerts.subscriptions) (thresholds[s.metricType] ??= []).push(s.threshold);
    for (const t of Object.values(thresholds)) t.sort((a, b) => a - b);
    return render(
      c,
      <UsagePage
        ctx={pageContext(c, "usage")}
        q={singles}
        range={{ from, to }}
        metrics={metrics}
        apiQuery={new URLSearchParams(query).toString()}
        dash={dash}
        thresholds={thresholds}
        reports={reports.reports}
      />,
    );
  })
  .get("/live", async (c) => {
    const dash = await c.var.api.get<DashboardData>(`${base(c)}/usage/dashboard`);
    c.header("cache-control", "no-store");
    return c.json(dash.realtime);
  })
  .post("/reports", async (c) => {
    const f = await readForm(c, z.object({ _csrf: z.string(), periodStart: z.iso.date(), periodEnd: z.iso.date() }));
    return act(
      c,
      "/console/usage",
      async () => {
        const r = await c.var.api.send<UsageReport>("POST", `${base(c)}/usage/reports`, {
          periodStart: `${f.periodStart}T00:00:00Z`,
          periodEnd: `${f.periodEnd}T00:00:00Z`,
        });
        return {
          message: `Report revision ${r.revision} ready.`,
          location: `/console/usage/reports/${encodeURIComponent(r.reportId)}`,
        };
      },
      "report",
    );
  })
  .get("/reports/:id", async (c) => {
    const r = await c.var.api.get<{ reports: UsageReport[] }>(
      `${base(c)}/usage/reports/${encodeURIComponent(c.req.param("id"))}/revisions`,
      { limit: "50" },
    );
    return render(c, <ReportPage ctx={pageContext(c, "usage")} revisions={r.reports} />);
  })
  .get("/reports/:id/csv", async (c) => {
    const res = await c.var.api.raw(`${base(c)}/usage/reports/${encodeURIComponent(c.req.param("id"))}`, {
      format: "csv",
    });
    if (!res.ok) return c.json(await res.json(), res.status as 404);
    const headers = new Headers({ "content-type": res.headers.get("content-type") ?? "text/csv" });
    const disposition = res.headers.get("content-disposition");
    if (disposition) headers.set("content-disposition", disposition);
    return new Response(res.body, { status: 200, headers });
  });
