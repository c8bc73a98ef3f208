import { z } from "@hono/zod-openapi";
import type { Config } from "../platform/config.ts";
import type { CircuitSettings } from "./circuit.ts";
import type { RetrySettings } from "./queue.ts";

/**
 * Per-endpoint delivery settings: each webhook stores only its overrides (`webhooks.settings`),
 * every other key follows the global `WEBHOOK_*` default. Pure functions.
 */

const ms = (min: number, max: number) => z.number().int().min(min).max(max);

/** The overridable keys, their ranges (the same as the global variables'), and what they mean. */
export const settingsShape = {
  maxAttempts: z.number().int().min(1).max(50).openapi({ description: "attempts before a delivery ends failed" }),
  backoffBaseMs: ms(100, 3_600_000).openapi({ description: "first retry delay; doubles per attempt" }),
  backoffCapMs: ms(1_000, 86_400_000).openapi({ description: "longest retry delay" }),
  timeoutMs: ms(100, 120_000).openapi({ description: "request timeout" }),
  circuitFailureThreshold: z.number().int().min(1).max(1_000).openapi({ description: "consecutive failures to open" }),
  circuitSuccessThreshold: z.number().int().min(1).max(1_000).openapi({ description: "probe successes to close" }),
  circuitCooldownMs: ms(1_000, 86_400_000).openapi({ description: "open → half-open (doubles per re-open)" }),
  rateLimitPerSecond: z
    .number()
    .int()
    .min(0)
    .max(10_000)
    .openapi({ description: "most attempts started in any second (0: no limit); excess waits, never dropped" }),
  ordered: z.boolean().openapi({ description: "one delivery in flight, strictly in sequence order" }),
  disableAfterFailingMs: ms(0, 365 * 86_400_000).openapi({
    description: "disable the endpoint once every attempt failed for this long (0: never)",
  }),
};

/** Effective settings of an endpoint. */
export const effectiveSettingsSchema = z.object(settingsShape).openapi("WebhookSettings");
/** Effective settings of an endpoint (every key resolved). */
export type EndpointSettings = z.infer<typeof effectiveSettingsSchema>;

/** Overrides as a request gives them: any subset; `null` resets a key to the global default. */
export const settingsOverridesSchema = z
  .object(
    Object.fromEntries(Object.entries(settingsShape).map(([k, v]) => [k, v.nullable().optional()])) as {
      [K in keyof typeof settingsShape]: z.ZodOptional<z.ZodNullable<(typeof settingsShape)[K]>>;
    },
  )
  .strict()
  .openapi("WebhookSettingsUpdate");
/** What a request may set. */
export type SettingsOverrides = z.input<typeof settingsOverridesSchema>;

/** Stored overrides (no nulls). */
export type StoredOverrides = Partial<EndpointSettings>;

/** The global defaults, from configuration. */
export function defaultSettings(w: Config["webhooks"]): EndpointSettings {
  return {
    maxAttempts: w.maxAttempts,
    backoffBaseMs: w.backoffBaseMs,
    backoffCapMs: w.backoffCapMs,
    timeoutMs: w.timeoutMs,
    circuitFailureThreshold: w.circuit.failureThreshold,
    circuitSuccessThreshold: w.circuit.successThreshold,
    circuitCooldownMs: w.circuit.cooldownMs,
    rateLimitPerSecond: w.rateLimitPerSecond,
    ordered: false,
    disableAfterFailingMs: w.autoDisableAfterMs,
  };
}

/** Applies a request's overrides to the stored ones: a value sets, `null` removes, absent keeps. */
export function mergeOverrides(stored: StoredOverrides, update: SettingsOverrides): StoredOverrides {
  const out: Record<string, unknown> = { ...stored };
  for (const [k, v] of Object.entries(update)) {
    if (v === null) delete out[k];
    else if (v !== undefined) out[k] = v;
  }
  return out as StoredOverrides;
}

/** Defaults overlaid with an endpoint's overrides (unknown stored keys are ignored). */
export function resolveSettings(
  defaults: EndpointSettings,
  stored: StoredOverrides | null | undefined,
): EndpointSettings {
  const out = { ...defaults };
  for (const k of Object.keys(settingsShape) as (keyof EndpointSettings)[]) {
    const v = stored?.[k];
    if (v !== undefined && v !== null) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

/** Problems of a resolved combination (each key is valid alone): the backoff base above its cap. */
export function settingsProblems(s: EndpointSettings): { path: string; message: string }[] {
  return s.backoffBaseMs > s.backoffCapMs
    ? [{ path: "settings.backoffBaseMs", message: `must not exceed backoffCapMs (${s.backoffCapMs})` }]
    : [];
}

/** The retry policy of resolved settings. */
export const retryOf = (s: EndpointSettings): RetrySettings => ({
  baseMs: s.backoffBaseMs,
  capMs: s.backoffCapMs,
  maxAttempts: s.maxAttempts,
});

/** The breaker settings of resolved settings. */
export const circuitOf = (s: EndpointSettings): CircuitSettings => ({
  failureThreshold: s.circuitFailureThreshold,
  successThreshold: s.circuitSuccessThreshold,
  cooldownMs: s.circuitCooldownMs,
});
