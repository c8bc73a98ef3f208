import { decodeCursor, encodeCursor } from "../platform/cursor.ts";
import type { Queryable } from "../platform/db.ts";
import { NotFoundError, ValidationError } from "../platform/errors.ts";
import { parseInput } from "../platform/validation.ts";
import type { Notification } from "./schemas.ts";
import { pageOptionsSchema } from "./schemas.ts";

/**
 * In-app notifications of an organization (`notifications`, written by usage alerts in the
 * transaction that claims them — see `alerts.ts`): listing newest first, and marking read. Read
 * state is the organization's, like the rows.
 */

interface NotificationRow {
  id: string;
  kind: string;
  title: string;
  body: Record<string, unknown>;
  created_at: Date;
  created_at_text: string;
  read_at: Date | null;
}

const COLUMNS = "id::text as id, kind, title, body, created_at, created_at::text as created_at_text, read_at";

const toNotification = (r: NotificationRow): Notification => ({
  id: r.id,
  kind: r.kind,
  title: r.title,
  body: r.body,
  createdAt: new Date(r.created_at).toISOString(),
  readAt: r.read_at ? new Date(r.read_at).toISOString() : null,
});

// Ids are bigserials: anything else cannot name a notification.
const notificationId = (id: string, path: string, where: string): string => {
  if (!/^[1-9]\d{0,17}$/.test(id)) {
    throw new ValidationError("invalid notification id", [{ path, message: "a notification id (digits)", in: where }]);
  }
  return id;
};

/** Notifications of organizations, for their members (routes under `…/usage/notifications`). */
export class NotificationService {
  private readonly db: Queryable;

  /** @param db - Postgres */
  constructor(db: Queryable) {
    this.db = db;
  }

  /**
   * A page of the organization's notifications, newest first, and how many are unread.
   * @param options - limit (1–100, default 20), cursor (from `nextCursor`), `unread` only
   */
  async list(
    organizationId: string,
    options: { limit?: number; cursor?: string; unread?: boolean } = {},
  ): Promise<{ notifications: Notification[]; unreadCount: number; hasMore: boolean; nextCursor: string | null }> {
    const o = parseInput(pageOptionsSchema, options, "page options");
    const after = decodeCursor(o.cursor);
    const unread = options.unread === true;
    const [page, count] = await Promise.all([
      this.db.query<NotificationRow>(
        `select ${COLUMNS} from notifications
         where organization_id = $1 and (not $2 or read_at is null)
           and ($3::timestamptz is null or (created_at, id) < ($3::timestamptz, $4::bigint))
         order by created_at desc, id desc limit $5`,
        [
          organizationId,
          unread,
          after?.createdAt ?? null,
          after ? notificationId(after.id, "cursor", "query") : null,
          o.limit + 1,
        ],
      ),
      this.db.query<{ n: number }>(
        "select count(*)::int as n from notifications where organization_id = $1 and read_at is null",
        [organizationId],
      ),
    ]);
    const rows = page.rows.slice(0, o.limit);
    const last = rows[rows.length - 1];
    const hasMore = page.rows.length > o.limit;
    return {
      notifications: rows.map(toNotification),
      unreadCount: count.rows[0]?.n ?? 0,
      hasMore,
      nextCursor: hasMore && last ? encodeCursor(last.created_at_text, last.id) : null,
    };
  }

  /**
   * Marks one notification read (again: it keeps the first read time).
   * @throws {NotFoundError} for an unknown id or another organization's
   */
  async markRead(organizationId: string, id: string): Promise<Notification> {
    const { rows } = await this.db.query<NotificationRow>(
      `update notifications set read_at = coalesce(read_at, now()) where id = $2::bigint and organization_id = $1
       returning ${COLUMNS}`,
      [organizationId, notificationId(id, "notificationId", "param")],
    );
    if (!rows[0]) throw new NotFoundError(`notification ${id} not found`);
    return toNotification(rows[0]);
  }

  /**
   * Marks every unread notification read — up to `upToId` when given, so one that arrived after the
   * caller's last listing stays unread.
   * @returns how many were marked
   */
  async markAllRead(organizationId: string, options: { upToId?: string } = {}): Promise<{ marked: number }> {
    const { rowCount } = await this.db.query(
      `update notifications set read_at = now()
       where organization_id = $1 and read_at is null and ($2::bigint is null or id <= $2::bigint)`,
      [organizationId, options.upToId === undefined ? null : notificationId(options.upToId, "upToId", "json")],
    );
    return { marked: rowCount };
  }
}
