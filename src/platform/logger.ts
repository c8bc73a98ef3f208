/**
 * Structured logging behind a small interface: one JSON object per line, which Workers Logs and
 * `wrangler tail` index by field. Tests pass a capturing logger instead.
 */

/** Fields of a log line. */
export type LogFields = Record<string, unknown>;

/** What services log through. */
export interface Logger {
  /** Routine facts (one per request, per batch…). */
  info(msg: string, fields?: LogFields): void;
  /** Something degraded but handled (a retry, a fallback). */
  warn(msg: string, fields?: LogFields): void;
  /** A failure someone should look at. */
  error(msg: string, fields?: LogFields): void;
  /** A logger whose lines all carry `fields` too. */
  child(fields: LogFields): Logger;
}

const serialise = (v: unknown): unknown =>
  v instanceof Error ? { name: v.name, message: v.message, stack: v.stack, cause: serialise(v.cause) } : v;

/** A logger writing JSON lines to the console. */
export function createLogger(base: LogFields = {}): Logger {
  const write = (level: string, msg: string, fields: LogFields = {}) => {
    const line: LogFields = { level, msg, time: new Date().toISOString(), ...base };
    for (const [k, v] of Object.entries(fields)) line[k] = serialise(v);
    (level === "error" ? console.error : level === "warn" ? console.warn : console.log)(JSON.stringify(line));
  };
  return {
    info: (msg, f) => write("info", msg, f),
    warn: (msg, f) => write("warn", msg, f),
    error: (msg, f) => write("error", msg, f),
    child: (fields) => createLogger({ ...base, ...fields }),
  };
}
