import { z } from "@hono/zod-openapi";
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "./create-app.ts";
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

// The reference page loads Scalar from its CDN in the reader's browser; the Worker ships no UI code.
const docsPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>CloudMatrix Edge API</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><script id="api-reference" data-url="/openapi.json"></script>
<script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference"></script></body></html>`;

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
  app.get("/docs", (c) => c.html(docsPage));
}
