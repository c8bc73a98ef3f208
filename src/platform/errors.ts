/**
 * One error model for every service: domain code throws these classes, the HTTP layer turns
 * them into the envelope `{"error":{"code","message","details","requestId"}}`, queue consumers
 * read `retryable` to decide between retry and dead-letter. Web-standard only (Deno-compatible).
 */

/** Machine-readable error codes; each maps to exactly one HTTP status. */
export const errorStatus = {
  validation_error: 400,
  invalid_json: 400,
  invalid_token: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  cycle: 409,
  expired: 410,
  payload_too_large: 413,
  unsupported_media_type: 415,
  quota_exceeded: 429,
  rate_limited: 429,
  internal_error: 500,
  configuration_error: 500,
  service_unavailable: 503,
} as const;

/** A code of {@link errorStatus}. */
export type ErrorCode = keyof typeof errorStatus;

/** HTTP status of an error code. */
export type ErrorStatus = (typeof errorStatus)[ErrorCode];

/** Constructor options shared by every {@link AppError}. */
export interface AppErrorOptions {
  /** Human-readable explanation, safe to show to API clients. */
  message: string;
  /** Structured detail (field errors, limits…), included in the envelope. */
  details?: unknown;
  /** Seconds after which a retry may succeed; becomes `Retry-After`. */
  retryAfterSeconds?: number;
  /** The underlying error, kept for logs only, never sent to clients. */
  cause?: unknown;
}

/** Base class of every error the platform reports deliberately. */
export class AppError extends Error {
  /** Machine-readable code. */
  readonly code: ErrorCode;
  /** Structured detail for clients. */
  readonly details?: unknown;
  /** Seconds until a retry may succeed. */
  readonly retryAfterSeconds?: number;

  /**
   * @param code - machine-readable code, decides the HTTP status
   * @param options - message, details, retry hint and cause
   */
  constructor(code: ErrorCode, options: AppErrorOptions) {
    super(options.message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  /** HTTP status derived from the code. */
  get status(): ErrorStatus {
    return errorStatus[this.code];
  }

  /** Whether repeating the same operation later may succeed (consumers retry, others dead-letter). */
  get retryable(): boolean {
    return this.status >= 500 || this.code === "rate_limited" || this.code === "quota_exceeded";
  }
}

type Opts = Omit<AppErrorOptions, "message">;

/** One failed check of an input, with the path of the offending field. */
export interface FieldIssue {
  /** Dotted path of the field ("" for the whole input). */
  path: string;
  /** What is wrong with it. */
  message: string;
  /** Validator code (e.g. zod's `invalid_type`). */
  code?: string;
  /** Where the field was sent: `json`, `query`, `param`, `header`… */
  in?: string;
}

/** Input that fails validation (400 `validation_error`); `details.issues` lists the fields. */
export class ValidationError extends AppError {
  /** @param message - summary; @param issues - per-field problems */
  constructor(message: string, issues: FieldIssue[] = [], opts: Opts = {}) {
    super("validation_error", { message, details: { issues }, ...opts });
  }
}

/** Missing or invalid credentials (401). */
export class UnauthorizedError extends AppError {
  /** @param message - why the credentials were rejected */
  constructor(message = "authentication required", opts: Opts = {}) {
    super("unauthorized", { message, ...opts });
  }
}

/** Authenticated, but not allowed to do this (403). */
export class ForbiddenError extends AppError {
  /** @param message - which permission is missing */
  constructor(message = "forbidden", opts: Opts = {}) {
    super("forbidden", { message, ...opts });
  }
}

/** The resource does not exist, or the caller may not know it exists (404). */
export class NotFoundError extends AppError {
  /** @param message - what was not found */
  constructor(message = "not found", opts: Opts = {}) {
    super("not_found", { message, ...opts });
  }
}

/** The request conflicts with the current state (409), e.g. a duplicate. */
export class ConflictError extends AppError {
  /** @param message - what conflicts */
  constructor(message: string, opts: Opts = {}) {
    super("conflict", { message, ...opts });
  }
}

/** The resource existed but has expired (410), e.g. an invitation. */
export class ExpiredError extends AppError {
  /** @param message - what expired */
  constructor(message: string, opts: Opts = {}) {
    super("expired", { message, ...opts });
  }
}

/** A plan or quota limit is reached (429, `Retry-After` when the limit resets). */
export class QuotaExceededError extends AppError {
  /** @param message - which limit */
  constructor(message: string, opts: Opts = {}) {
    super("quota_exceeded", { message, ...opts });
  }
}

/** Too many requests in a sliding window (429 with `Retry-After`). */
export class RateLimitedError extends AppError {
  /** @param message - which limit; @param retryAfterSeconds - when to come back */
  constructor(message: string, retryAfterSeconds: number, opts: Opts = {}) {
    super("rate_limited", { message, retryAfterSeconds, ...opts });
  }
}

/** A hierarchy change would create a cycle (409 `cycle`). */
export class CycleError extends AppError {
  /** @param message - which move would loop */
  constructor(message: string, opts: Opts = {}) {
    super("cycle", { message, ...opts });
  }
}

/** A presented token (invitation, signature…) is unknown, revoked or malformed (400). */
export class InvalidTokenError extends AppError {
  /** @param message - why the token is not accepted */
  constructor(message = "invalid token", opts: Opts = {}) {
    super("invalid_token", { message, ...opts });
  }
}

/** A dependency (Postgres, Redis, RabbitMQ…) is not reachable (503). */
export class ServiceUnavailableError extends AppError {
  /** @param message - what is down */
  constructor(message: string, opts: Opts = {}) {
    super("service_unavailable", { message, ...opts });
  }
}

/** The Worker's configuration is missing or malformed (500, names the variable). */
export class ConfigurationError extends AppError {
  /** @param message - which variable is wrong and how */
  constructor(message: string, opts: Opts = {}) {
    super("configuration_error", { message, ...opts });
  }
}

/** The error envelope every non-2xx response carries. */
export interface ErrorEnvelope {
  error: { code: ErrorCode; message: string; details?: unknown; requestId?: string };
}

/**
 * Normalises anything thrown into an {@link AppError}: unknown errors become
 * `internal_error` with a generic message so internals never leak.
 */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const remote = fromRemote(err);
  if (remote) return remote;
  return new AppError("internal_error", { message: "internal error", cause: err });
}

const REMOTE_PREFIX = "cm-app-error:";

/**
 * Durable Object RPC hands the caller a plain `Error` (message and stack, no subclass, no own
 * fields), so an `AppError` thrown inside an object — a 503 "database unavailable" — reached the
 * HTTP layer as an unknown error, a 500. {@link rpcBoundary} wraps an object's method so an
 * `AppError` crosses as an `Error` whose message carries code, message, details and retry hint;
 * {@link toAppError} turns it back. Other errors pass unchanged.
 */
export async function rpcBoundary<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    const { code, message, details, retryAfterSeconds } = err;
    throw new Error(REMOTE_PREFIX + JSON.stringify({ code, message, details, retryAfterSeconds }), { cause: err });
  }
}

function fromRemote(err: unknown): AppError | undefined {
  if (!(err instanceof Error) || !err.message.startsWith(REMOTE_PREFIX)) return undefined;
  try {
    const o = JSON.parse(err.message.slice(REMOTE_PREFIX.length)) as {
      code: ErrorCode;
      message: string;
      details?: unknown;
      retryAfterSeconds?: number;
    };
    if (!(o.code in errorStatus)) return undefined;
    return new AppError(o.code, { message: o.message, details: o.details, retryAfterSeconds: o.retryAfterSeconds });
  } catch {
    return undefined;
  }
}

/** Builds the JSON envelope for an error. */
export function errorEnvelope(err: AppError, requestId?: string): ErrorEnvelope {
  return {
    error: {
      code: err.code,
      message: err.message,
      ...(err.details === undefined ? {} : { details: err.details }),
      ...(requestId ? { requestId } : {}),
    },
  };
}
