import type { ZodError } from "zod";
import type { FieldIssue } from "./errors.ts";

/** Turns a zod error into field issues with dotted paths (`where` = json, query, param…). */
export function zodIssuesOf(error: ZodError, where?: string): FieldIssue[] {
  return error.issues.map((i) => ({
    path: i.path.map(String).join("."),
    message: i.message,
    code: i.code,
    ...(where ? { in: where } : {}),
  }));
}
