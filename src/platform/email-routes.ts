import { createRoute, z } from "@hono/zod-openapi";
import { assertScope } from "./auth.ts";
import { createRouter } from "./create-app.ts";
import { renderEmail } from "./email.ts";
import { NotFoundError } from "./errors.ts";
import { authErrors, jsonResponse } from "./openapi.ts";

/** The e-mail outbox, for operators (every environment) and developers (the rendered messages). */

const statuses = ["pending", "sending", "sent", "captured", "failed", "cancelled"] as const;

const emailRowSchema = z
  .object({
    id: z.string(),
    to: z.string(),
    subject: z.string(),
    kind: z.string(),
    status: z.enum(statuses),
    attempts: z.number().int(),
    error: z.string().nullable(),
    nextAttemptAt: z.string().nullable(),
    sentAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi("OutboundEmail");

const internalEmails = createRoute({
  method: "get",
  path: "/v1/internal/emails",
  tags: ["events"],
  summary: "The e-mail outbox: every message's delivery state, without bodies (scope `internal`)",
  request: {
    query: z.object({
      status: z.enum(statuses).optional(),
      organizationId: z.string().max(200).optional(),
      limit: z.coerce.number().int().min(1).max(500).default(50),
    }),
  },
  responses: { 200: jsonResponse(z.object({ emails: z.array(emailRowSchema) }), "Newest first"), ...authErrors },
});

const devEmails = createRoute({
  method: "get",
  path: "/v1/dev/emails",
  tags: ["development"],
  summary: "E-mails as their recipients get them, tokens included (only when ENVIRONMENT=development)",
  request: {
    query: z.object({ to: z.string().optional(), limit: z.coerce.number().int().min(1).max(200).default(50) }),
  },
  responses: {
    200: jsonResponse(z.object({ emails: z.array(emailRowSchema.extend({ text: z.string() })) }), "Newest first"),
    ...authErrors,
  },
});

interface Row {
  id: string;
  to_address: string;
  subject: string;
  body_text: string;
  kind: string;
  status: (typeof statuses)[number];
  attempts: number;
  error: string | null;
  next_attempt_at: Date | null;
  sent_at: Date | null;
  created_at: Date;
  token_for: { subject: string; nonce: string } | null;
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
const view = (r: Row) => ({
  id: String(r.id),
  to: r.to_address,
  subject: r.subject,
  kind: r.kind,
  status: r.status,
  attempts: r.attempts,
  error: r.error,
  nextAttemptAt: r.status === "pending" || r.status === "sending" ? iso(r.next_attempt_at) : null,
  sentAt: iso(r.sent_at),
  createdAt: iso(r.created_at)!,
});

/** Operator and developer views of the e-mail outbox. */
export const emailRoutes = createRouter()
  .openapi(internalEmails, async (c) => {
    assertScope(c.var.principal, "internal");
    const q = c.req.valid("query");
    const { rows } = await c.var.platform.db.query<Row>(
      `select * from outbound_emails where ($1::text is null or status = $1) and ($2::text is null or organization_id = $2)
       order by id desc limit $3`,
      [q.status ?? null, q.organizationId ?? null, q.limit],
    );
    return c.json({ emails: rows.map(view) }, 200);
  })
  .openapi(devEmails, async (c) => {
    const config = c.var.platform.config;
    if (config.environment !== "development") throw new NotFoundError("no route for GET /v1/dev/emails");
    const { to, limit } = c.req.valid("query");
    const { rows } = await c.var.platform.db.query<Row>(
      "select * from outbound_emails where ($1::text is null or to_address = lower($1)) order by id desc limit $2",
      [to ?? null, limit],
    );
    // Rendered on the way out, as the sender does: the stored rows hold no token.
    const emails = await Promise.all(
      rows.map(async (r) => ({ ...view(r), text: await renderEmail(r, config.tokenSecret) })),
    );
    return c.json({ emails }, 200);
  });
