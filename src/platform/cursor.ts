import { ValidationError } from "./errors.ts";

/**
 * Keyset pagination cursors over (created_at, id). They carry Postgres' own text form of
 * created_at, so microseconds survive the round trip (a JS Date would drop them and repeat rows).
 */

/** A position after which the next page starts. */
export interface Cursor {
  createdAt: string;
  id: string;
}

/** Encodes a cursor from a row's `created_at::text` and id. */
export const encodeCursor = (createdAtText: string, id: string): string => btoa(`${createdAtText}|${id}`);

/** Decodes a cursor from a request. @throws {ValidationError} for anything this API did not issue */
export function decodeCursor(cursor: string | undefined): Cursor | undefined {
  if (!cursor) return undefined;
  try {
    const [createdAt, id] = atob(cursor).split("|");
    if (createdAt && id && !Number.isNaN(Date.parse(createdAt))) return { createdAt, id };
  } catch {
    // not base64: reported below
  }
  throw new ValidationError("invalid cursor", [{ path: "cursor", message: "not a cursor returned by this API" }]);
}
