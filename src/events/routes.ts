import { createRoute, z } from "@hono/zod-openapi";
import { assertScope } from "../platform/auth.ts";
import { createRouter } from "../platform/create-app.ts";
import { authErrors, jsonResponse } from "../platform/openapi.ts";
import { outboxStats } from "./relay.ts";

const statsSchema = z
  .object({
    pending: z.number().int(),
    failing: z.number().int(),
    published: z.number().int(),
    oldestPendingAgeSeconds: z.number().nullable(),
  })
  .openapi("OutboxStats");

const outboxRowSchema = z
  .object({
    seq: z.string(),
    id: z.string(),
    type: z.string(),
    organizationId: z.string(),
    createdAt: z.string(),
    publishedAt: z.string().nullable(),
    attempts: z.number().int(),
    lastError: z.string().nullable(),
  })
  .openapi("OutboxRow");

const outbox = createRoute({
  method: "get",
  path: "/v1/internal/events/outbox",
  tags: ["events"],
  summary: "Outbox counts, lag and rows (scope `internal`)",
  request: {
    query: z.object({
      status: z.enum(["pending", "failing", "published"]).default("pending"),
      limit: z.coerce.number().int().min(1).max(500).default(50),
    }),
  },
  responses: {
    200: jsonResponse(z.object({ stats: statsSchema, rows: z.array(outboxRowSchema) }), "Outbox state"),
    ...authErrors,
  },
});

const deadLetters = createRoute({
  method: "get",
  path: "/v1/internal/events/dead-letters",
  tags: ["events"],
  summary: "Messages consumers gave up on (scope `internal`)",
  request: { query: z.object({ limit: z.coerce.number().int().min(1).max(500).default(50) }) },
  responses: {
    200: jsonResponse(
      z.object({
        deadLetters: z.array(
          z.object({
            id: z.string(),
            source: z.string(),
            messageId: z.string().nullable(),
            eventId: z.string().nullable(),
            reason: z.string(),
            attempts: z.number().nullable(),
            createdAt: z.string(),
            body: z.unknown(),
          }),
        ),
      }),
      "Dead letters, newest first",
    ),
    ...authErrors,
  },
});

const filters = {
  pending: "published_at is null",
  failing: "published_at is null and attempts > 0",
  published: "published_at is not null",
} as const;

/** Operator view of the event bus. */
export const eventRoutes = createRouter()
  .openapi(outbox, async (c) => {
    assertScope(c.var.principal, "internal");
    const { status, limit } = c.req.valid("query");
    const db = c.var.platform.db;
    const [stats, rows] = await Promise.all([
      outboxStats(db),
      db.query<{
        seq: string;
        id: string;
        type: string;
        organization_id: string;
        created_at: Date;
        published_at: Date | null;
        attempts: number;
        last_error: string | null;
      }>(
        `select seq, id, type, organization_id, created_at, published_at, attempts, last_error from outbox
         where ${filters[status]} order by seq ${status === "published" ? "desc" : "asc"} limit $1`,
        [limit],
      ),
    ]);
    return c.json(
      {
        stats,
        rows: rows.rows.map((r) => ({
          seq: String(r.seq),
          id: r.id,
          type: r.type,
          organizationId: r.organization_id,
          createdAt: new Date(r.created_at).toISOString(),
          publishedAt: r.published_at ? new Date(r.published_at).toISOString() : null,
          attempts: r.attempts,
          lastError: r.last_error,
        })),
      },
      200,
    );
  })
  .openapi(deadLetters, async (c) => {
    assertScope(c.var.principal, "internal");
    const { rows } = await c.var.platform.db.query<{
      id: string;
      source: string;
      message_id: string | null;
      event_id: string | null;
      reason: string;
      attempts: number | null;
      created_at: Date;
      body: unknown;
    }>(
      "select id, source, message_id, event_id, reason, attempts, created_at, body from dead_letters order by id desc limit $1",
      [c.req.valid("query").limit],
    );
    return c.json(
      {
        deadLetters: rows.map((r) => ({
          id: String(r.id),
          source: r.source,
          messageId: r.message_id,
          eventId: r.event_id,
          reason: r.reason,
          attempts: r.attempts,
          createdAt: new Date(r.created_at).toISOString(),
          body: r.body,
        })),
      },
      200,
    );
  });
