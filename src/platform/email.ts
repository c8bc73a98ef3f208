import type { Config } from "./config.ts";
import type { Db, Queryable } from "./db.ts";
import type { Logger } from "./logger.ts";
import { deriveToken } from "./secret-token.ts";

/**
 * E-mail behind a small interface (the seed's `emailClient`), through an outbox: a message is a
 * row of `outbound_emails` written in the transaction of the change it is about, so it exists if
 * and only if that change committed. A sender (kicked after commit, and by the minute cron) claims
 * due rows with a lease, hands them to the HTTP provider (`EMAIL_API_URL`, JSON
 * `{from, to, subject, text}`, Bearer `EMAIL_API_TOKEN`) — or captures them when there is none —
 * and retries failures with backoff; operators see every row's state.
 *
 * Secrets never rest in a row: a body may hold the placeholder `{{token}}`, and the row the inputs
 * (`tokenFor`: a subject and a nonce) from which the token is derived with the configured secret
 * when the message is sent (see `secret-token.ts`).
 */

/** One message. */
export interface EmailMessage {
  to: string;
  subject: string;
  /** The body; `{{token}}` is replaced at send time with the token derived from `tokenFor`. */
  text: string;
  /** What it is about, e.g. `usage.alert`, `invitation`. */
  kind: string;
  organizationId?: string;
  /** Inputs of the token `{{token}}` stands for (no secret: the key comes from configuration). */
  tokenFor?: { subject: string; nonce: string };
  /** What it belongs to (e.g. an invitation id), so it can be cancelled when that changes. */
  ref?: string;
}

/** Queues e-mail (the seed's `emailClient`). */
export interface EmailClient {
  /**
   * Queues a message; returns its id. Pass `tx` to queue it in a transaction, so it exists exactly
   * when the change it is about committed.
   */
  send(message: EmailMessage, tx?: Queryable): Promise<{ id: string; status: "pending" }>;
}

// Connections that queued e-mail; the platform's commit hook runs the sender after those.
const wroteEmail = new WeakSet<Queryable>();

/** Whether e-mail was queued through `db` (a transaction's connection). */
export function hasEmailWrites(db: Queryable): boolean {
  return wroteEmail.has(db);
}

/** Queues a message through `db` — pass a transaction's client to commit it with the change. */
export async function queueEmail(db: Queryable, m: EmailMessage): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `insert into outbound_emails (organization_id, to_address, subject, body_text, kind, status, token_for, ref)
     values ($1, lower($2), $3, $4, $5, 'pending', $6, $7) returning id::text`,
    [
      m.organizationId ?? null,
      m.to,
      m.subject,
      m.text,
      m.kind,
      m.tokenFor ? JSON.stringify(m.tokenFor) : null,
      m.ref ?? null,
    ],
  );
  wroteEmail.add(db);
  return rows[0]!.id;
}

/** Cancels pending e-mails about `ref` (e.g. an invitation that was re-sent or revoked). */
export async function cancelEmails(db: Queryable, ref: string): Promise<number> {
  const { rowCount } = await db.query(
    "update outbound_emails set status = 'cancelled', updated_at = now() where ref = $1 and status in ('pending', 'sending')",
    [ref],
  );
  return rowCount;
}

/** An e-mail client that queues through `db` (the seed's `emailClient`). */
export function createEmailClient(db: Queryable): EmailClient {
  return { send: async (m, tx) => ({ id: await queueEmail(tx ?? db, m), status: "pending" }) };
}

/** The HTTP provider, as the sender uses it. */
export interface EmailProvider {
  send(m: { from: string; to: string; subject: string; text: string }): Promise<{ providerId?: string }>;
}

/** The configured provider, or null: e-mails are then captured (development, tests). */
export function providerFromConfig(config: Pick<Config, "email">, fetchFn: typeof fetch = fetch): EmailProvider | null {
  const { apiUrl, apiToken } = config.email;
  if (!apiUrl) return null;
  return {
    async send(m) {
      const res = await fetchFn(apiUrl, {
        method: "POST",
        headers: { "content-type": "application/json", ...(apiToken ? { authorization: `Bearer ${apiToken}` } : {}) },
        body: JSON.stringify(m),
        signal: AbortSignal.timeout(10_000),
      });
      const body = (await res.json().catch(() => ({}))) as { id?: unknown };
      if (!res.ok) throw new Error(`provider answered ${res.status}`);
      return typeof body.id === "string" ? { providerId: body.id } : {};
    },
  };
}

/** Attempts before a message ends `failed`. */
export const EMAIL_MAX_ATTEMPTS = 8;

/** Delay after the n-th failed attempt: 1 min, 2 min, 4 min … capped at 1 h. */
export function emailBackoffMs(attempts: number): number {
  return Math.min(60_000 * 2 ** Math.max(0, attempts - 1), 3_600_000);
}

/** A row as the sender claims it. */
interface EmailRow {
  id: string;
  to_address: string;
  subject: string;
  body_text: string;
  attempts: number;
  token_for: { subject: string; nonce: string } | null;
}

/** Replaces `{{token}}` with the token derived from the row's inputs (never stored). */
export async function renderEmail(row: Pick<EmailRow, "body_text" | "token_for">, secret: string): Promise<string> {
  if (!row.token_for) return row.body_text;
  const token = await deriveToken(secret, row.token_for.subject, row.token_for.nonce);
  return row.body_text.replaceAll("{{token}}", token);
}

/** What one sender run did. */
export interface DeliveryRun {
  sent: number;
  captured: number;
  retrying: number;
  failed: number;
}

/**
 * Delivers due e-mails once: claims up to `limit` rows (a lease of 2 minutes, so a crashed sender's
 * rows come back), renders, sends or captures, and records the outcome. Safe to run concurrently.
 */
export async function deliverEmails(
  db: Db,
  deps: { provider: EmailProvider | null; from: string; tokenSecret: string; logger?: Logger; limit?: number },
): Promise<DeliveryRun> {
  const run: DeliveryRun = { sent: 0, captured: 0, retrying: 0, failed: 0 };
  const { rows } = await db.query<EmailRow>(
    `update outbound_emails e set status = 'sending', attempts = e.attempts + 1,
       next_attempt_at = now() + interval '2 minutes', updated_at = now()
     from (select id from outbound_emails where status in ('pending', 'sending') and next_attempt_at <= now()
           order by next_attempt_at, id limit $1 for update skip locked) pick
     where e.id = pick.id
     returning e.id::text, e.to_address, e.subject, e.body_text, e.attempts, e.token_for`,
    [deps.limit ?? 50],
  );
  for (const row of rows) {
    try {
      const text = await renderEmail(row, deps.tokenSecret);
      if (deps.provider) {
        const r = await deps.provider.send({ from: deps.from, to: row.to_address, subject: row.subject, text });
        await db.query(
          "update outbound_emails set status = 'sent', provider_id = $2, error = null, sent_at = now(), updated_at = now() where id = $1",
          [row.id, r.providerId ?? null],
        );
        run.sent += 1;
      } else {
        await db.query(
          "update outbound_emails set status = 'captured', error = null, sent_at = now(), updated_at = now() where id = $1",
          [row.id],
        );
        run.captured += 1;
      }
    } catch (err) {
      const last = row.attempts >= EMAIL_MAX_ATTEMPTS;
      await db.query(
        `update outbound_emails set status = $2, error = $3, updated_at = now(),
           next_attempt_at = now() + ($4::int * interval '1 millisecond') where id = $1 and status = 'sending'`,
        [
          row.id,
          last ? "failed" : "pending",
          String((err as Error)?.message ?? err).slice(0, 1000),
          emailBackoffMs(row.attempts),
        ],
      );
      if (last) run.failed += 1;
      else run.retrying += 1;
      deps.logger?.warn("e-mail delivery failed", { emailId: row.id, attempts: row.attempts, final: last, err });
    }
  }
  return run;
}
