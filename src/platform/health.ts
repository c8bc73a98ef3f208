import { createRoute, z } from "@hono/zod-openapi";
import { withAmqp } from "./amqp.ts";
import { createRouter } from "./create-app.ts";
import { missingTopology, topology } from "../events/rabbit.ts";
import { outboxStats } from "../events/relay.ts";
import { AppError } from "./errors.ts";
import type { Platform } from "./platform.ts";

/** Result of one dependency probe. */
export interface CheckResult {
  ok: boolean;
  latencyMs: number;
  error?: string;
  /** What the probe measured (e.g. the outbox lag). */
  info?: Record<string, unknown>;
}

/** A readiness probe: throws when down, or reports `{ok:false}` with details; may attach info. */
export type Check = (
  platform: Platform,
) => Promise<undefined | { ok: boolean; error?: string; info?: Record<string, unknown> }>;

const TIMEOUT_MS = 3_000;

/** Probes of the three backing services and the broker topology; services may add their own (e.g. outbox lag). */
export const dependencyChecks: Record<string, Check> = {
  postgres: async (p) => void (await p.db.query("select 1")),
  redis: async (p) => void (await p.redis.ping()),
  rabbitmq: (p) => withAmqp(p.config.rabbitmq.url, async () => undefined),
  // Without the inbound queue and its bindings, events other services publish are dropped unrouted.
  topology: (p) =>
    withAmqp(p.config.rabbitmq.url, async (client) => {
      const missing = await missingTopology(client, topology(p.config.rabbitmq));
      return missing.length > 0 ? { ok: false, error: `${missing.join(", ")} (run npm run setup)` } : undefined;
    }),
  outbox: async (p) => {
    const stats = await outboxStats(p.db);
    const lag = stats.oldestPendingAgeSeconds ?? 0;
    const ok = lag <= p.config.events.outboxLagAlertSeconds;
    return { ok, info: { ...stats }, ...(ok ? {} : { error: `oldest pending event is ${lag}s old` }) };
  },
};

async function probe(check: Check, platform: Platform): Promise<CheckResult> {
  const started = Date.now();
  let timer: ReturnType<typeof setTimeout> | null = null;
  try {
    const outcome = await Promise.race([
      check(platform),
      new Promise(
        (_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${TIMEOUT_MS} ms`)), TIMEOUT_MS)),
      ),
    ]);
    const report = (outcome ?? {}) as { ok?: boolean; error?: string; info?: Record<string, unknown> };
    return {
      ok: report.ok ?? true,
      latencyMs: Date.now() - started,
      ...(report.error ? { error: report.error } : {}),
      ...(report.info ? { info: report.info } : {}),
    };
  } catch (err) {
    const cause = err instanceof AppError && err.cause instanceof Error ? err.cause : err;
    return {
      ok: false,
      latencyMs: Date.now() - started,
      error: cause instanceof Error ? cause.message : String(cause),
    };
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** Runs every check in parallel. */
export async function runChecks(platform: Platform, checks: Record<string, Check> = dependencyChecks) {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => [name, await probe(check, platform)] as const),
  );
  return Object.fromEntries(entries) as Record<string, CheckResult>;
}

const checkSchema = z.object({
  ok: z.boolean(),
  latencyMs: z.number(),
  error: z.string().optional(),
  info: z.record(z.string(), z.unknown()).optional(),
});

const readyz = createRoute({
  method: "get",
  path: "/readyz",
  tags: ["health"],
  security: [],
  summary: "Readiness: Postgres, Redis and RabbitMQ answer, and the RabbitMQ topology is declared",
  responses: {
    200: {
      description: "All dependencies answer",
      content: {
        "application/json": {
          schema: z.object({ status: z.literal("ready"), checks: z.record(z.string(), checkSchema) }),
        },
      },
    },
    503: { description: "`service_unavailable`; `details.checks` names what is down" },
  },
});

/** `/readyz` (and `/healthz` is served by the app shell so it works without configuration). */
export const healthRoutes = createRouter().openapi(readyz, async (c) => {
  const checks = await runChecks(c.var.platform);
  const down = Object.entries(checks)
    .filter(([, r]) => !r.ok)
    .map(([n]) => n);
  if (down.length > 0) {
    // Retry-After like every other 503: probes and clients back off the same way.
    throw new AppError("service_unavailable", {
      message: `not ready: ${down.join(", ")} down`,
      details: { checks },
      retryAfterSeconds: 5,
    });
  }
  return c.json({ status: "ready" as const, checks }, 200);
});
