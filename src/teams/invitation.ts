import type { Role } from "./permissions.ts";
import type { TeamInvitation } from "./schemas.ts";

import { deriveToken, hashToken, newNonce } from "../platform/secret-token.ts";

export { hashToken, looksLikeToken } from "../platform/secret-token.ts";

/**
 * Invitation tokens are derived, never stored: HMAC(secret, invitation id, nonce) — see
 * `platform/secret-token.ts`. The row keeps the nonce and the token's SHA-256 (for the lookup at
 * accept time); the e-mail outbox derives the token again when it sends the message. Re-sending
 * draws a new nonce, which revokes the previous token.
 */

/** A fresh nonce, the token it gives and that token's hash. */
export async function issueInvitationToken(secret: string, invitationId: string) {
  const nonce = newNonce();
  const token = await deriveToken(secret, invitationId, nonce);
  return { nonce, token, hash: await hashToken(token) };
}

/** A `team_invitations` row. */
export interface InvitationRow {
  id: string;
  team_id: string;
  organization_id: string;
  email: string;
  role: Role;
  invited_by: string;
  message: string | null;
  status: TeamInvitation["status"];
  /** Nonce of the current token (null for invitations issued before derived tokens). */
  token_nonce?: string | null;
  created_at: Date;
  expires_at: Date;
}

/** Maps a row to the seed's `TeamInvitation` (token only when just issued). */
export function toInvitation(r: InvitationRow, token?: string): TeamInvitation {
  return {
    id: r.id,
    teamId: r.team_id,
    email: r.email,
    role: r.role,
    ...(token ? { token } : {}),
    invitedBy: r.invited_by,
    createdAt: new Date(r.created_at).toISOString(),
    expiresAt: new Date(r.expires_at).toISOString(),
    // A pending invitation past its expiry is expired, whether or not the cron has marked it yet.
    status: r.status === "pending" && new Date(r.expires_at).getTime() <= Date.now() ? "expired" : r.status,
  };
}

/**
 * The invitation e-mail. Its body holds `{{token}}` where the token goes: the outbox derives it at
 * send time, so the stored message carries none.
 */
export function invitationEmail(
  teamName: string,
  role: Role,
  acceptUrl: string | undefined,
  message: string | undefined,
  expiresAt: Date,
) {
  const link = acceptUrl ? `${acceptUrl}${acceptUrl.includes("?") ? "&" : "?"}token={{token}}` : "token: {{token}}";
  return {
    subject: `You are invited to join ${teamName} on CloudMatrix`,
    text: [
      `You have been invited to join the team "${teamName}" as ${role}.`,
      message ? `\nMessage: ${message}\n` : "",
      `Accept: ${link}`,
      `This invitation expires on ${expiresAt.toISOString()}.`,
    ].join("\n"),
  };
}
