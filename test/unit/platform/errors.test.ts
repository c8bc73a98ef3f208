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
  errorEnvelope,
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
