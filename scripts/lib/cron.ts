/**
 * The Cron Trigger schedule for `npm run dev`: wrangler only runs `scheduled()` when someone calls
 * `/__scheduled`, so the dev server fires each cron of `wrangler.toml` itself, at the minutes
 * Cloudflare would. Pure (timers and a callback only), so it is unit-tested with fake timers.
 *
 * Syntax as Cloudflare documents it: five fields (minute, hour, day of month, month, weekday), UTC;
 * `*`, lists `a,b`, ranges `a-b`, steps `*\/n` and `a-b/n`, month names `JAN`–`DEC` and weekday names
 * `SUN`–`SAT` (case-insensitive); weekdays are 1–7 with 1 = Sunday (Quartz numbering, not Unix 0–6).
 * The Quartz extensions `L`, `W` and `#` are refused rather than silently misread.
 */

/** A parsed cron expression: the allowed values of each field. */
export interface Cron {
  /** The expression as written in `wrangler.toml` (what `/__scheduled?cron=` must receive). */
  expression: string;
  minutes: ReadonlySet<number>;
  hours: ReadonlySet<number>;
  daysOfMonth: ReadonlySet<number>;
  months: ReadonlySet<number>;
  /** 1 = Sunday … 7 = Saturday. */
  weekdays: ReadonlySet<number>;
  /** Day of month and weekday were both restricted: a day matches if either does (as in Unix cron). */
  eitherDay: boolean;
}

interface FieldSpec {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const FIELDS: readonly FieldSpec[] = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12, names: MONTHS },
  { name: "weekday", min: 1, max: 7, names: WEEKDAYS },
];

function value(token: string, f: FieldSpec, expr: string): number {
  const named = f.names?.indexOf(token.toUpperCase()) ?? -1;
  const n = named >= 0 ? named + 1 : /^\d+$/.test(token) ? Number(token) : Number.NaN;
  if (!Number.isInteger(n) || n < f.min || n > f.max)
    throw new Error(`cron "${expr}": ${f.name} "${token}" is not in ${f.min}-${f.max}`);
  return n;
}

function parseField(text: string, f: FieldSpec, expr: string): { values: Set<number>; star: boolean } {
  if (/[LW#?]/i.test(text.replace(/[A-Z]{3}/gi, (m) => (f.names?.includes(m.toUpperCase()) ? "" : m))))
    throw new Error(
      `cron "${expr}": ${f.name} "${text}" uses L, W, # or ?, which the local scheduler does not support`,
    );
  const values = new Set<number>();
  for (const part of text.split(",")) {
    const m = /^([^/]+)(?:\/(\d+))?$/.exec(part);
    if (!m) throw new Error(`cron "${expr}": bad ${f.name} "${part}"`);
    const [, range, stepText] = m;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1) throw new Error(`cron "${expr}": ${f.name} step must be at least 1`);
    let lo: number;
    let hi: number;
    if (range === "*") [lo, hi] = [f.min, f.max];
    else if (range!.includes("-")) {
      const [a, b, ...rest] = range!.split("-");
      if (rest.length > 0 || !a || !b) throw new Error(`cron "${expr}": bad ${f.name} range "${range}"`);
      [lo, hi] = [value(a, f, expr), value(b, f, expr)];
      if (lo > hi) throw new Error(`cron "${expr}": ${f.name} range "${range}" runs backwards`);
    } else {
      lo = value(range!, f, expr);
      // "5/15" means from 5 to the end in steps of 15, as in Quartz and Vixie cron.
      hi = stepText === undefined ? lo : f.max;
    }
    for (let n = lo; n <= hi; n += step) values.add(n);
  }
  return { values, star: text === "*" || text.startsWith("*/") };
}

/** Parses a 5-field cron expression; throws naming the field that is wrong. */
export function parseCron(expression: string): Cron {
  const parts = expression.trim().split(/\s+/);
  if (parts.length !== 5) throw new Error(`cron "${expression}": expected 5 fields, got ${parts.length}`);
  const [minute, hour, dom, month, dow] = parts.map((p, i) => parseField(p, FIELDS[i]!, expression));
  return {
    expression,
    minutes: minute!.values,
    hours: hour!.values,
    daysOfMonth: dom!.values,
    months: month!.values,
    weekdays: dow!.values,
    eitherDay: !dom!.star && !dow!.star,
  };
}

/** Whether the cron fires in the UTC minute that contains `at` (Cloudflare schedules in UTC). */
export function cronMatches(cron: Cron, at: Date): boolean {
  if (!cron.minutes.has(at.getUTCMinutes()) || !cron.hours.has(at.getUTCHours())) return false;
  if (!cron.months.has(at.getUTCMonth() + 1)) return false;
  const dom = cron.daysOfMonth.has(at.getUTCDate());
  const dow = cron.weekdays.has(at.getUTCDay() + 1);
  return cron.eitherDay ? dom || dow : dom && dow;
}

/** Whether the cron fires every minute (these run once more as soon as the dev server answers). */
export function firesEveryMinute(cron: Cron): boolean {
  return (
    cron.minutes.size === 60 &&
    cron.hours.size === 24 &&
    cron.daysOfMonth.size === 31 &&
    cron.months.size === 12 &&
    cron.weekdays.size === 7
  );
}

/** Options of {@link startCronScheduler}. */
export interface CronSchedulerOptions {
  /** Expressions exactly as in `wrangler.toml` `[triggers] crons`. */
  crons: readonly string[];
  /** Runs one cron (e.g. calls `/__scheduled?cron=…`); failures are the callback's to report (rejections are dropped). */
  fire(expression: string, scheduledTime: Date): Promise<void>;
  /** Clock; default `Date.now`. */
  now?: () => number;
}

/** A running schedule. */
export interface CronScheduler {
  /** The parsed crons, in `wrangler.toml` order. */
  crons: readonly Cron[];
  /** Fires the every-minute crons now (the dev server just came up; don't wait for the next minute). */
  fireEveryMinuteNow(): Promise<void>;
  /** Stops the timer; firings already started finish on their own. */
  stop(): void;
}

/**
 * Fires every cron at each UTC minute it matches, from the next minute boundary on. A timer that
 * wakes late (a busy machine) still fires the minute it was set for, once; a skipped minute is not
 * replayed, as with Cloudflare's own triggers.
 */
export function startCronScheduler(opts: CronSchedulerOptions): CronScheduler {
  const crons = opts.crons.map(parseCron);
  const now = opts.now ?? Date.now;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  let lastMinute = Math.floor(now() / 60_000);

  const fireMatching = (minute: number) => {
    const at = new Date(minute * 60_000);
    for (const c of crons) if (cronMatches(c, at)) void opts.fire(c.expression, at).catch(() => undefined);
  };
  const arm = () => {
    if (stopped) return;
    const next = lastMinute + 1;
    timer = setTimeout(
      () => {
        const current = Math.floor(now() / 60_000);
        // Woken early (clock adjusted back): wait on; late: fire the newest minute only.
        if (current >= next) {
          lastMinute = current;
          fireMatching(current);
        }
        arm();
      },
      Math.max(0, next * 60_000 - now()),
    );
  };
  arm();

  return {
    crons,
    async fireEveryMinuteNow() {
      const at = new Date(Math.floor(now() / 60_000) * 60_000);
      await Promise.all(crons.filter(firesEveryMinute).map((c) => opts.fire(c.expression, at).catch(() => undefined)));
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
