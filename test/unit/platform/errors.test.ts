import { describe, expect, it } from "vitest";
import {
  AppError,
  ConflictError,
  CycleError,
  ExpiredError,
  ForbiddenError,
  InvalidTokenError,
  NotFoundError,
  QuotaExceededError,
  UnauthorizedError,
  ValidationError,
  ServiceUnavailableError,
  errorEnvelope,
  rpcBoundary,
  toAppError,
} from "../../../src/platform/errors.ts";

describe("error classes", () => {
  it.each([
    [new ValidationError("bad"), 400, "validation_error"],
    [new UnauthorizedError(), 401, "unauthorized"],
    [new ForbiddenError(), 403, "forbidden"],
    [new NotFoundError(), 404, "not_found"],
    [new ConflictError("dup"), 409, "conflict"],
    [new ExpiredError("old"), 410, "expired"],
    [new QuotaExceededError("full"), 429, "quota_exceeded"],
    [new CycleError("loop"), 409, "cycle"],
    [new InvalidTokenError(), 400, "invalid_token"],
  ])("%s maps to %i %s", (err, status, code) => {
    expect(err.status).toBe(status);
    expect(err.code).toBe(code);
    expect(err).toBeInstanceOf(AppError);
    expect(err.name).toBe(err.constructor.name);
  });

  it("hides unknown errors behind internal_error", () => {
    const secret = new Error("password=hunter2 at db.internal:5432");
    const app = toAppError(secret);
    expect(app.code).toBe("internal_error");
    expect(app.message).toBe("internal error");
    expect(app.cause).toBe(secret);
    expect(JSON.stringify(errorEnvelope(app, "r1"))).not.toContain("hunter2");
  });

  it("builds the envelope with details and request id", () => {
    const env = errorEnvelope(new ValidationError("bad input", [{ path: "url", message: "must be https" }]), "req-1");
    expect(env).toEqual({
      error: {
        code: "validation_error",
        message: "bad input",
        details: { issues: [{ path: "url", message: "must be https" }] },
        requestId: "req-1",
      },
    });
  });

  it("marks 5xx and rate limits as retryable, client errors not", () => {
    expect(new AppError("service_unavailable", { message: "x" }).retryable).toBe(true);
    expect(new QuotaExceededError("x").retryable).toBe(true);
    expect(new ValidationError("x").retryable).toBe(false);
    expect(new NotFoundError().retryable).toBe(false);
  });
});

// Found by `npm run chaos` (Postgres killed under webhook fan-out): a 503 thrown inside a Durable
// Object reached the HTTP layer as a plain Error over RPC, hence a 500.
describe("rpcBoundary", () => {
  it("carries an AppError across an RPC-like boundary and back through toAppError", async () => {
    const thrown = await rpcBoundary(async () => {
      throw new ServiceUnavailableError("database unavailable", { retryAfterSeconds: 1 });
    }).catch((e: unknown) => e);
    // What RPC delivers: a plain Error with the same message.
    const delivered = new Error((thrown as Error).message);
    expect(toAppError(delivered)).toMatchObject({
      code: "service_unavailable",
      status: 503,
      retryAfterSeconds: 1,
      message: "database unavailable",
    });
    await expect(rpcBoundary(async () => 7)).resolves.toBe(7);
    const plain = new TypeError("boom");
    await expect(
      rpcBoundary(async () => {
        throw plain;
      }),
    ).rejects.toBe(plain);
    expect(toAppError(new Error("cm-app-error:{bad json")).code).toBe("internal_error");
  });
});
