/**
 * Billing periods and time buckets. Periods start on the organization's billing anchor day (and
 * time) each month; in months without that day the period starts on the month's last day (an
 * anchor on the 31st gives Feb 28/29, Apr 30 …). Buckets in an IANA time zone are computed with
 * Intl, so they follow daylight-saving changes.
 */

/** A half-open interval [start, end). */
export interface Period {
  start: Date;
  end: Date;
}

const daysInMonth = (y: number, m: number) => new Date(Date.UTC(y, m + 1, 0)).getUTCDate();

/** The anchor's day and time transplanted into year `y`, month `m` (UTC), clamped to the month's length. */
export function anchorIn(anchor: Date, y: number, m: number): Date {
  const yy = y + Math.floor(m / 12);
  const mm = ((m % 12) + 12) % 12;
  const day = Math.min(anchor.getUTCDate(), daysInMonth(yy, mm));
  return new Date(
    Date.UTC(
      yy,
      mm,
      day,
      anchor.getUTCHours(),
      anchor.getUTCMinutes(),
      anchor.getUTCSeconds(),
      anchor.getUTCMilliseconds(),
    ),
  );
}

/** The billing period containing `at` for a billing `anchor`. */
export function billingPeriod(anchor: Date, at: Date): Period {
  const y = at.getUTCFullYear();
  const m = at.getUTCMonth();
  let start = anchorIn(anchor, y, m);
  if (start > at) start = anchorIn(anchor, y, m - 1);
  const startMonth = start.getUTCFullYear() * 12 + start.getUTCMonth();
  const end = anchorIn(anchor, Math.floor((startMonth + 1) / 12), (startMonth + 1) % 12);
  return { start, end };
}

/** Bucket granularities. */
export type Granularity = "minute" | "hour" | "day" | "month";

/** Offset of `tz` from UTC at instant `at`, in minutes (e.g. +60 for Europe/Paris in winter). */
export function tzOffsetMinutes(tz: string, at: Date): number {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: tz,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(at);
  const n = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  const asUtc = Date.UTC(n("year"), n("month") - 1, n("day"), n("hour"), n("minute"), n("second"));
  return Math.round((asUtc - Math.floor(at.getTime() / 1000) * 1000) / 60_000);
}

/** Whether `tz` is a valid IANA zone name. */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Whether `tz`'s offset is a whole number of hours throughout [from, to] (checked at each UTC hour boundary's day). */
export function hasWholeHourOffsets(tz: string, from: Date, to: Date): boolean {
  if (tz === "UTC") return true;
  for (let t = from.getTime(); t <= to.getTime() + 86_400_000; t += 6 * 3_600_000) {
    if (tzOffsetMinutes(tz, new Date(t)) % 60 !== 0) return false;
  }
  return true;
}
