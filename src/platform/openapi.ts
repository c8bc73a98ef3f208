import { z } from "@hono/zod-openapi";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "./create-app.ts";
import { DOCS_ASSETS, DOCS_MOUNT_ID } from "./docs-assets.ts";
import { errorStatus } from "./errors.ts";

/** OpenAPI schema of the error envelope every non-2xx response carries. */
export const errorEnvelopeSchema = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(errorStatus) as [keyof typeof errorStatus, ...(keyof typeof errorStatus)[]]),
      message: z.string(),
      details: z.unknown().optional(),
      requestId: z.string().optional(),
    }),
  })
  .openapi("ErrorEnvelope");

const errorResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: errorEnvelopeSchema } },
});

/** Standard error responses for an authenticated route, to spread into `createRoute({responses})`. */
export const authErrors = {
  400: errorResponse("Invalid input (`validation_error`, `invalid_json`)"),
  401: errorResponse("Missing or invalid bearer token"),
  403: errorResponse("Token lacks the required scope or permission"),
  404: errorResponse("Not found, or not visible to this caller"),
} as const;

/** Builds a JSON response entry for `createRoute({responses})`. */
export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

/** Builds a JSON request body entry for `createRoute({request})`. */
export function jsonBody<T extends z.ZodType>(schema: T, description?: string) {
  return { required: true, description, content: { "application/json": { schema } } };
}

/**
 * Content-Security-Policy of `/docs`: everything from this origin only, scripts from files only.
 * The one exception is inline styles: Scalar's components insert `<style>` elements (theme, toasts)
 * and `style="…"` attributes that neither a nonce nor a hash can cover.
 */
export const DOCS_CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

// No inline script (the CSP forbids it) and no URL of another origin: the reference works offline.
const docsPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CloudMatrix Edge API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"></head>
<body><div id="${DOCS_MOUNT_ID}"></div>
<script src="${DOCS_ASSETS.scalar}"></script>
<script src="${DOCS_ASSETS.init}"></script></body></html>`;

/** Serves the OpenAPI 3.1 document at `/openapi.json` and the API reference page at `/docs`. */
export function mountOpenApi(app: OpenAPIHono<AppEnv>): void {
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "CloudMatrix Edge API",
      version: "1.0.0",
      description:
        "Webhook delivery, usage analytics and team management for CloudMatrix. Every `/v1` route takes `Authorization: Bearer <JWT>`; errors use one envelope `{error:{code,message,details,requestId}}`.",
    },
    security: [{ bearerAuth: [] }],
  });
  app.get("/docs", (c) => {
    c.header("content-security-policy", DOCS_CONTENT_SECURITY_POLICY);
    c.header("x-content-type-options", "nosniff");
    c.header("referrer-policy", "no-referrer");
    return c.html(docsPage);
  });
}
