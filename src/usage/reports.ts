import { decodeCursor, encodeCursor } from "../platform/cursor.ts";
import type { Queryable } from "../platform/db.ts";
import { NotFoundError, ValidationError } from "../platform/errors.ts";
import type { LineItem, UsageReport } from "./schemas.ts";

/**
 * Stored billing reports: reading revisions back, listing them, and their CSV form. A report is
 * identified by (organization, period); each generation that saw changed data is a new revision,
 * one row of `usage_reports` (generation lives in the aggregator).
 */

/** A row of `usage_reports`. */
export interface ReportRow {
  id: string;
  organization_id: string;
  period_start: Date;
  period_end: Date;
  revision: number;
  as_of: Date;
  events_counted: string | number;
  summary: Record<string, unknown>;
  line_items: unknown;
  changes: unknown;
  generated_at: Date;
}

/** One page of reports or revisions. */
export interface ReportPage {
  reports: UsageReport[];
  hasMore: boolean;
  nextCursor: string | null;
}

const iso = (d: Date | string) => new Date(d).toISOString();

/** Maps a row to the seed's `UsageReport`. */
export function toReport(r: ReportRow): UsageReport {
  return {
    reportId: r.id,
    organizationId: r.organization_id,
    periodStart: iso(r.period_start),
    periodEnd: iso(r.period_end),
    revision: r.revision,
    asOf: iso(r.as_of),
    summary: r.summary,
    lineItems: r.line_items as LineItem[],
    changes: (r.changes as UsageReport["changes"]) ?? null,
    generatedAt: iso(r.generated_at),
  };
}

/** A stored report revision of the organization. @throws {NotFoundError} (also for another organization's id) */
export async function findReport(db: Queryable, org: string, reportId: string): Promise<UsageReport> {
  const { rows } = await db.query<ReportRow>("select * from usage_reports where id = $1 and organization_id = $2", [
    reportId,
    org,
  ]);
  if (!rows[0]) throw new NotFoundError(`report ${reportId} not found`);
  return toReport(rows[0]);
}

const badCursor = () =>
  new ValidationError("invalid cursor", [{ path: "cursor", message: "not a cursor returned by this API" }]);

/**
 * The organization's reports — the latest revision of each period — newest period first. The
 * cursor is the last period's (start, end) in Postgres' text form: a new revision never moves a
 * period, so pages neither skip nor repeat while reports are being regenerated.
 */
export async function listLatestReports(
  db: Queryable,
  org: string,
  page: { limit: number; cursor?: string },
): Promise<ReportPage> {
  const after = decodeCursor(page.cursor);
  if (after && Number.isNaN(Date.parse(after.id))) throw badCursor();
  const { rows } = await db.query<ReportRow & { start_text: string; end_text: string }>(
    `select distinct on (period_start, period_end) *, period_start::text as start_text, period_end::text as end_text
     from usage_reports
     where organization_id = $1 and ($2::timestamptz is null or (period_start, period_end) < ($2::timestamptz, $3::timestamptz))
     order by period_start desc, period_end desc, revision desc
     limit $4`,
    [org, after?.createdAt ?? null, after?.id ?? null, page.limit + 1],
  );
  const items = rows.slice(0, page.limit);
  const last = items[items.length - 1];
  const hasMore = rows.length > page.limit;
  return {
    reports: items.map(toReport),
    hasMore,
    nextCursor: hasMore && last ? encodeCursor(last.start_text, last.end_text) : null,
  };
}

/**
 * Every revision of the report `reportId` belongs to (same organization and period), newest first.
 * @throws {NotFoundError} for an unknown report or another organization's
 */
export async function listRevisions(
  db: Queryable,
  org: string,
  reportId: string,
  page: { limit: number; cursor?: string },
): Promise<ReportPage> {
  const after = decodeCursor(page.cursor);
  const before = after ? Number(after.id) : null;
  if (before !== null && !Number.isSafeInteger(before)) throw badCursor();
  const { rows } = await db.query<ReportRow & { found: boolean; start_text: string }>(
    `with target as (select period_start, period_end from usage_reports where id = $2 and organization_id = $1)
     select r.*, r.period_start::text as start_text from target t
     join usage_reports r on r.organization_id = $1 and r.period_start = t.period_start and r.period_end = t.period_end
     where $3::int is null or r.revision < $3::int
     order by r.revision desc limit $4`,
    [org, reportId, before, page.limit + 1],
  );
  if (rows.length === 0 && before === null) throw new NotFoundError(`report ${reportId} not found`);
  const items = rows.slice(0, page.limit);
  const last = items[items.length - 1];
  const hasMore = rows.length > page.limit;
  return {
    reports: items.map(toReport),
    hasMore,
    // (period start, revision): the position within this report's revisions.
    nextCursor: hasMore && last ? encodeCursor(last.start_text, String(last.revision)) : null,
  };
}

/** Columns of the CSV export, one row per line item. */
export const REPORT_CSV_COLUMNS = [
  "report_id",
  "organization_id",
  "period_start",
  "period_end",
  "revision",
  "metric_type",
  "quantity",
  "included",
  "overage",
  "unit_price",
  "amount",
  "currency",
] as const;

/** A number in plain decimal notation (spreadsheets and billing tools misread `2e-11`). */
export function plainNumber(n: number): string {
  const s = String(n);
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return s;
  const [, sign, int, frac = "", expText] = m;
  const digits = `${int}${frac}`;
  const exp = Number(expText);
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  const point = 1 + exp;
  return `${sign}${digits.length <= point ? digits.padEnd(point, "0") : `${digits.slice(0, point)}.${digits.slice(point)}`}`;
}

/**
 * RFC 4180 field: quoted when it holds a comma, a quote, CR or LF (quotes doubled). A text field
 * that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) is prefixed with `'`.
 */
export function csvField(value: string | number): string {
  let s = typeof value === "number" ? plainNumber(value) : value;
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The report's line items as CSV (header row, CRLF line ends, RFC 4180 quoting). */
export function reportCsv(report: UsageReport): string {
  const currency = typeof report.summary.currency === "string" ? report.summary.currency : "USD";
  const rows: (string | number)[][] = [
    [...REPORT_CSV_COLUMNS],
    ...report.lineItems.map((l) => [
      report.reportId,
      report.organizationId,
      report.periodStart,
      report.periodEnd,
      report.revision,
      l.metricType,
      l.quantity,
      l.included,
      l.overage,
      l.unitPrice,
      l.amount,
      currency,
    ]),
  ];
  return `${rows.map((r) => r.map(csvField).join(",")).join("\r\n")}\r\n`;
}

/** A download name for the CSV: `usage-report_<org>_<period start>_r<revision>.csv`, in safe characters only. */
export function reportCsvFilename(report: UsageReport): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, "-");
  return `usage-report_${safe(report.organizationId)}_${report.periodStart.slice(0, 10)}_r${report.revision}.csv`;
}

/**
 * Whether an Accept header prefers text/csv to JSON. Each type takes the quality of its most
 * specific matching range (`text/csv`, then `text/*`, then the any-type range; RFC 9110); a tie,
 * the any-type range alone or no header means JSON.
 */
export function prefersCsv(accept: string | undefined): boolean {
  if (!accept) return false;
  const ranges = accept.split(",").map((part) => {
    const [range = "", ...params] = part.split(";");
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    const value = q ? Number(q.slice(2)) : 1;
    return { range: range.trim().toLowerCase(), q: Number.isFinite(value) ? value : 0 };
  });
  const quality = (type: string) => {
    const wildcard = `${type.split("/")[0]}/*`;
    let best = { specificity: -1, q: 0 };
    for (const r of ranges) {
      const specificity = r.range === type ? 2 : r.range === wildcard ? 1 : r.range === "*/*" ? 0 : -1;
      if (specificity > best.specificity) best = { specificity, q: r.q };
    }
    return best;
  };
  const csv = quality("text/csv");
  const json = quality("application/json");
  return csv.q > 0 && (csv.q > json.q || (csv.q === json.q && csv.specificity > json.specificity));
}
