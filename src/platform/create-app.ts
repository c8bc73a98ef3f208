import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { ZodError } from "zod";
import type { Principal } from "./auth.ts";
import type { Scope } from "./auth.ts";
import { assertScope, assertTenant, bearerToken, verifyToken } from "./auth.ts";
import type { ErrorCode } from "./errors.ts";
import { AppError, ValidationError, errorEnvelope, toAppError } from "./errors.ts";
import type { Logger } from "./logger.ts";
import { unstorableIssue, zodIssuesOf } from "./validation.ts";
import { createLogger } from "./logger.ts";
import type { Platform } from "./platform.ts";
import { createPlatform } from "./platform.ts";

/** Hono environment of every route: typed bindings and per-request variables. */
export type AppEnv = {
  Bindings: CloudflareBindings;
  Variables: {
    /** `X-Request-Id` of this request (echoed or generated). */
    requestId: string;
    /** Logger carrying the request id. */
    logger: Logger;
    /** Config, db and redis for this request. */
    platform: Platform;
    /** The authenticated caller (set on `/v1` routes). */
    principal: Principal;
  };
};

/** `defaultHook` of every router: a failed zod validation becomes a 400 `validation_error`. */
const onZodError = (result: { success: boolean; target: string; error?: ZodError }) => {
  if (!result.success && result.error) {
    throw new ValidationError("request validation failed", zodIssuesOf(result.error, result.target));
  }
};

/** Route middleware: the token must hold `scope` (403 otherwise). */
export function requireScope(scope: Scope): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    assertScope(c.var.principal, scope);
    await next();
  };
}

/** A router with the platform's validation hook; each service builds its routes on one. */
export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({ defaultHook: onZodError });
}

const httpCodes: Record<number, ErrorCode> = {
  400: "validation_error",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  413: "payload_too_large",
  415: "unsupported_media_type",
};

/** Maps anything thrown to the error envelope; unknown errors are logged and become a bare 500. */
export function handleError(err: unknown, c: Context<AppEnv>): Response {
  let appError: AppError;
  if (err instanceof HTTPException && err.status < 500) {
    // Hono's JSON validator reports unparsable bodies as a 400 HTTPException; a client error the
    // table does not know (a middleware's own 4xx) is still the client's, never a 500.
    const code =
      err.status === 400 && /json/i.test(err.message) ? "invalid_json" : (httpCodes[err.status] ?? "validation_error");
    appError = new AppError(code, { message: err.message || code.replace(/_/g, " ") });
  } else {
    appError = toAppError(err);
  }
  if (appError.status >= 500) {
    (c.var.logger ?? createLogger()).error("request failed", { code: appError.code, err: appError.cause ?? err });
  }
  const headers: Record<string, string> = {};
  if (appError.retryAfterSeconds !== undefined) headers["Retry-After"] = String(Math.ceil(appError.retryAfterSeconds));
  return c.json(errorEnvelope(appError, c.var.requestId), appError.status, headers);
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * Builds the application shell: request id, access log, platform, body limit, authentication on
 * `/v1`, tenancy on `/v1/orgs/{organizationId}`, the error envelope and the JSON 404.
 * Services mount their routers on it (see `src/app.ts`).
 */
export function createApp(): OpenAPIHono<AppEnv> {
  const app = createRouter();

  app.use("*", async (c, next) => {
    const incoming = c.req.header("x-request-id");
    const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    const logger = createLogger({ requestId });
    c.set("requestId", requestId);
    c.set("logger", logger);
    const started = Date.now();
    try {
      await next();
    } finally {
      c.res.headers.set("X-Request-Id", requestId);
      logger.info("request", {
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        durationMs: Date.now() - started,
        org: c.var.principal?.organizationId ?? c.req.param("organizationId"),
        user: c.var.principal?.userId,
      });
      c.var.platform?.close();
    }
  });

  app.get("/healthz", (c) => c.json({ status: "ok" }));

  // Only routes that need dependencies build the platform, so liveness and the API docs answer
  // even when the configuration is broken (which readiness then reports).
  const platform: MiddlewareHandler<AppEnv> = async (c, next) => {
    const ctx = { waitUntil: (p: Promise<unknown>) => c.executionCtx.waitUntil(p) };
    c.set("platform", createPlatform(c.env, ctx, c.var.logger));
    await next();
  };
  const limitBody: MiddlewareHandler<AppEnv> = (c, next) =>
    bodyLimit({
      maxSize: c.var.platform.config.maxBodyBytes,
      onError: () => {
        throw new AppError("payload_too_large", {
          message: `request body exceeds ${c.var.platform.config.maxBodyBytes} bytes`,
        });
      },
    })(c, next);
  const authenticate: MiddlewareHandler<AppEnv> = async (c, next) => {
    const principal = await verifyToken(bearerToken(c.req.header("authorization")), c.var.platform.config.auth);
    c.set("principal", principal);
    await next();
  };
  // Input no store can hold (U+0000, unpaired surrogates) is refused once here, for every route, before any
  // handler or query sees it; after the body limit, so an oversized body is never read.
  const storableInput: MiddlewareHandler<AppEnv> = async (c, next) => {
    // Only JSON is parsed into strings that reach a store; other bodies are refused by the routes.
    const json = /json/i.test(c.req.header("content-type") ?? "") && !["GET", "HEAD"].includes(c.req.method);
    const body = json ? await c.req.text() : undefined;
    const issue = unstorableIssue(c.req.url, body);
    if (issue) throw new ValidationError("request validation failed", [issue]);
    await next();
  };
  app.use("/readyz", platform);
  app.use("/v1/*", platform, limitBody, authenticate, storableInput);

  app.use("/v1/orgs/:organizationId/*", async (c, next) => {
    assertTenant(c.var.principal, c.req.param("organizationId"));
    await next();
  });

  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
  });

  app.notFound((c) =>
    handleError(new AppError("not_found", { message: `no route for ${c.req.method} ${c.req.path}` }), c),
  );
  app.onError(handleError);
  return app;
}
