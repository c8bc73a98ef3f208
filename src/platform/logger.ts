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

// Errors keep name, message, stack and cause; other objects are capped, so a driver object passed
// by mistake cannot flood the logs.
const serialise = (v: unknown, depth = 0): unknown => {
  if (v instanceof Error)
    return {
      name: v.name,
      message: v.message,
      stack: v.stack,
      ...(v.cause !== undefined && depth < 3 ? { cause: serialise(v.cause, depth + 1) } : {}),
    };
  if (v && typeof v === "object") {
    let text: string;
    try {
      text = JSON.stringify(v);
    } catch {
      return String(v);
    }
    return text.length > 2_000 ? `${text.slice(0, 2_000)}…` : v;
  }
  return v;
};

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
