import type { Config } from "./config.ts";
import type { Queryable } from "./db.ts";

/**
 * E-mail behind a small interface (the seed's `emailClient`). With `EMAIL_API_URL` set, messages go
 * to that HTTP provider (JSON `{from, to, subject, text}`, Bearer `EMAIL_API_TOKEN`); without it
 * they are captured. Either way every message is recorded in `outbound_emails`.
 */

/** One message. */
export interface EmailMessage {
  to: string;
  subject: string;
  text: string;
  /** What it is about, e.g. `usage.alert`, `invitation`. */
  kind: string;
  organizationId?: string;
}

/** Sends e-mail. */
export interface EmailClient {
  /** Sends (or captures) a message; resolves with how it ended. */
  send(message: EmailMessage): Promise<{ status: "captured" | "sent" | "failed"; providerId?: string }>;
}

/** The platform's e-mail client. */
export function createEmailClient(
  db: Queryable,
  config: Pick<Config, "email">,
  fetchFn: typeof fetch = fetch,
): EmailClient {
  return {
    async send(m) {
      let status: "captured" | "sent" | "failed" = "captured";
      let providerId: string | undefined;
      let error: string | undefined;
      if (config.email.apiUrl) {
        try {
          const res = await fetchFn(config.email.apiUrl, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              ...(config.email.apiToken ? { authorization: `Bearer ${config.email.apiToken}` } : {}),
            },
            body: JSON.stringify({ from: config.email.from, to: m.to, subject: m.subject, text: m.text }),
            signal: AbortSignal.timeout(10_000),
          });
          status = res.ok ? "sent" : "failed";
          const body = (await res.json().catch(() => ({}))) as { id?: unknown };
          providerId = typeof body.id === "string" ? body.id : undefined;
          if (!res.ok) error = `provider answered ${res.status}`;
        } catch (err) {
          status = "failed";
          error = err instanceof Error ? err.message : String(err);
        }
      }
      await db.query(
        "insert into outbound_emails (organization_id, to_address, subject, body_text, kind, status, provider_id, error) values ($1, $2, $3, $4, $5, $6, $7, $8)",
        [m.organizationId ?? null, m.to, m.subject, m.text, m.kind, status, providerId ?? null, error ?? null],
      );
      return { status, ...(providerId ? { providerId } : {}) };
    },
  };
}
