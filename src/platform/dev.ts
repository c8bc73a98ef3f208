import { createRoute, z } from "@hono/zod-openapi";
import { createRouter } from "./create-app.ts";
import { NotFoundError } from "./errors.ts";
import { authErrors, jsonResponse } from "./openapi.ts";

const emails = createRoute({
  method: "get",
  path: "/v1/dev/emails",
  tags: ["development"],
  summary: "Captured e-mails (only when ENVIRONMENT=development)",
  request: {
    query: z.object({ to: z.string().optional(), limit: z.coerce.number().int().min(1).max(200).default(50) }),
  },
  responses: {
    200: jsonResponse(
      z.object({
        emails: z.array(
          z.object({
            id: z.string(),
            to: z.string(),
            subject: z.string(),
            text: z.string(),
            kind: z.string(),
            status: z.string(),
            createdAt: z.string(),
          }),
        ),
      }),
      "Newest first",
    ),
    ...authErrors,
  },
});

/** Development-only helpers: they answer 404 in every other environment. */
export const devRoutes = createRouter().openapi(emails, async (c) => {
  if (c.var.platform.config.environment !== "development") throw new NotFoundError("no route for GET /v1/dev/emails");
  const { to, limit } = c.req.valid("query");
  const { rows } = await c.var.platform.db.query<{
    id: string;
    to_address: string;
    subject: string;
    body_text: string;
    kind: string;
    status: string;
    created_at: Date;
  }>(
    "select id, to_address, subject, body_text, kind, status, created_at from outbound_emails where ($1::text is null or to_address = lower($1)) order by id desc limit $2",
    [to ?? null, limit],
  );
  return c.json(
    {
      emails: rows.map((r) => ({
        id: String(r.id),
        to: r.to_address,
        subject: r.subject,
        text: r.body_text,
        kind: r.kind,
        status: r.status,
        createdAt: new Date(r.created_at).toISOString(),
      })),
    },
    200,
  );
});
