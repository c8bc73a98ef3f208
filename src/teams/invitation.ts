import type { Role } from "./permissions.ts";
import type { TeamInvitation } from "./schemas.ts";

/**
 * Invitation tokens: 256 bits from the CSPRNG, base64url, handed to the invitee once (e-mail) and
 * stored only as their SHA-256, so a database leak reveals no usable token.
 */

/** A fresh token. */
export function newInvitationToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** Hex SHA-256 of a token (what the database stores and looks up). */
export async function hashToken(token: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether a string can be a token we issued (43 base64url characters). */
export const looksLikeToken = (t: string) => /^[A-Za-z0-9_-]{43}$/.test(t);

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

/** The invitation e-mail. */
export function invitationEmail(
  teamName: string,
  role: Role,
  token: string,
  acceptUrl: string | undefined,
  message: string | undefined,
  expiresAt: Date,
) {
  const link = acceptUrl ? `${acceptUrl}${acceptUrl.includes("?") ? "&" : "?"}token=${token}` : `token: ${token}`;
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
