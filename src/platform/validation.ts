import type { ZodError, ZodType, output } from "zod";
import type { FieldIssue } from "./errors.ts";
import { ValidationError } from "./errors.ts";

/** Turns a zod error into field issues with dotted paths (`where` = json, query, param…). */
export function zodIssuesOf(error: ZodError, where?: string): FieldIssue[] {
  return error.issues.map((i) => ({
    path: i.path.map(String).join("."),
    message: i.message,
    code: i.code,
    ...(where ? { in: where } : {}),
  }));
}

/**
 * Validates a service input with its zod schema: the parsed value, or a {@link ValidationError}
 * ("invalid <what>") listing every field — the one way services reject bad input.
 */
export function parseInput<S extends ZodType>(schema: S, value: unknown, what: string): output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new ValidationError(`invalid ${what}`, zodIssuesOf(r.error));
  return r.data;
}
