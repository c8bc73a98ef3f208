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

/**
 * Keyset cursors over one text key (user ids, resource ids, grant ids): opaque, so clients never
 * build them, and checked on the way in like {@link decodeCursor}.
 */
export const encodeKeyCursor = (key: string): string =>
  `k1.${btoa(String.fromCharCode(...new TextEncoder().encode(key)))}`;

/** Decodes a cursor of {@link encodeKeyCursor}. @throws {ValidationError} for anything this API did not issue */
export function decodeKeyCursor(cursor: string | undefined): string | undefined {
  if (!cursor) return undefined;
  if (cursor.startsWith("k1.")) {
    try {
      const key = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(
        Uint8Array.from(atob(cursor.slice(3)), (ch) => ch.charCodeAt(0)),
      );
      if (key) return key;
    } catch {
      // not base64: reported below
    }
  }
  throw new ValidationError("invalid cursor", [{ path: "cursor", message: "not a cursor returned by this API" }]);
}
