import { describe, expect, it } from "vitest";
import { deriveToken } from "../../../src/platform/secret-token.ts";
import {
  hashToken,
  invitationEmail,
  issueInvitationToken,
  looksLikeToken,
  toInvitation,
} from "../../../src/teams/invitation.ts";
import type { InvitationRow } from "../../../src/teams/invitation.ts";
import type { MembershipRow } from "../../../src/teams/membership.ts";
import { byRoleThenJoin, toMembership, withUsers } from "../../../src/teams/membership.ts";
import { grantableRole, permissionsToGrant } from "../../../src/teams/permissions.ts";
import { invitationRequestSchema } from "../../../src/teams/schemas.ts";
import { noUsers } from "../../../src/teams/users.ts";

const row = (user: string, role: MembershipRow["role"], joined = 0): MembershipRow => ({
  team_id: "t",
  user_id: user,
  role,
  joined_at: new Date(joined),
  added_by: "a",
});

describe("memberships", () => {
  it("maps rows to the seed's TeamMembership, with user details when known", () => {
    expect(toMembership(row("u", "admin"))).toEqual({
      teamId: "t",
      userId: "u",
      role: "admin",
      joinedAt: "1970-01-01T00:00:00.000Z",
      addedBy: "a",
    });
    expect(toMembership(row("u", "member"), { id: "u", name: "Una", email: "u@example.com" }).user).toEqual({
      id: "u",
      name: "Una",
      email: "u@example.com",
    });
  });

  it("sorts owners first, then by join time", () => {
    const sorted = [row("m", "member", 1), row("o2", "owner", 5), row("a", "admin", 2), row("o1", "owner", 3)].sort(
      byRoleThenJoin,
    );
    expect(sorted.map((r) => r.user_id)).toEqual(["o1", "o2", "a", "m"]);
  });

  it("has one rule of who may grant what: owners grant owner, admins up to admin, members nothing", () => {
    expect(permissionsToGrant({ on: "team", role: "owner" })).toEqual(["team.manage_owners"]);
    expect(permissionsToGrant({ on: "team", role: "admin" })).toEqual(["team.manage_members"]);
    expect(permissionsToGrant({ on: "team", role: "member" })).toEqual(["team.manage_members"]);
    const on = (role: MembershipRow["role"], distance = 0) => [{ teamId: "t", teamName: "T", role, distance }];
    expect(grantableRole(on("owner", 2), false)).toBe("owner");
    expect(grantableRole(on("admin"), false)).toBe("admin");
    expect(grantableRole(on("member"), false)).toBeNull();
    expect(grantableRole([], false)).toBeNull();
    expect(grantableRole([], true)).toBe("owner");
  });

  it("omits user details when no users service is configured", async () => {
    const out = await withUsers([row("u", "member")], noUsers);
    expect(out[0]?.user).toBeUndefined();
  });

  it("keeps memberships when the users service fails", async () => {
    const out = await withUsers([row("u", "member")], { getUsers: async () => Promise.reject(new Error("down")) });
    expect(out).toHaveLength(1);
  });
});

describe("invitation tokens", () => {
  it("are 256-bit base64url strings derived from the invitation and a fresh nonce, unique", async () => {
    const secret = "s".repeat(32);
    const issued = await Promise.all(Array.from({ length: 200 }, () => issueInvitationToken(secret, "inv_1")));
    expect(new Set(issued.map((t) => t.token)).size).toBe(200);
    for (const t of issued) {
      expect(looksLikeToken(t.token)).toBe(true);
      expect(t.hash).toBe(await hashToken(t.token));
      // Derivable again from what is stored (id, nonce) plus the secret — and only with the secret.
      expect(await deriveToken(secret, "inv_1", t.nonce)).toBe(t.token);
      expect(await deriveToken("t".repeat(32), "inv_1", t.nonce)).not.toBe(t.token);
    }
  });

  it("are stored as SHA-256 hex", async () => {
    expect(await hashToken("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("reject malformed input", () => {
    expect(looksLikeToken("A".repeat(42))).toBe(false);
    expect(looksLikeToken(`${"A".repeat(42)}=`)).toBe(false);
    expect(looksLikeToken(`${"A".repeat(42)}/`)).toBe(false);
  });
});

describe("invitations", () => {
  const inv = (over: Partial<InvitationRow> = {}): InvitationRow => ({
    id: "i",
    team_id: "t",
    organization_id: "o",
    email: "x@example.com",
    role: "member",
    invited_by: "a",
    message: null,
    status: "pending",
    created_at: new Date(0),
    expires_at: new Date(Date.now() + 60_000),
    ...over,
  });

  it("shows a pending invitation past its expiry as expired", () => {
    expect(toInvitation(inv()).status).toBe("pending");
    expect(toInvitation(inv({ expires_at: new Date(Date.now() - 1) })).status).toBe("expired");
    expect(toInvitation(inv({ status: "revoked", expires_at: new Date(0) })).status).toBe("revoked");
  });

  it("includes the token only when issued", () => {
    expect(toInvitation(inv()).token).toBeUndefined();
    expect(toInvitation(inv(), "tok").token).toBe("tok");
  });

  it("writes an e-mail with a token placeholder (never the token), the link, the message and the expiry", () => {
    const m = invitationEmail(
      "Design",
      "admin",
      "https://app.example.com/accept",
      "hello",
      new Date(Date.UTC(2024, 5, 1)),
    );
    expect(m.subject).toBe("You are invited to join Design on CloudMatrix");
    expect(m.text).toContain("https://app.example.com/accept?token={{token}}");
    expect(m.text).toContain("hello");
    expect(m.text).toContain("2024-06-01T00:00:00.000Z");
    expect(invitationEmail("D", "member", undefined, undefined, new Date(0)).text).toContain("token: {{token}}");
  });

  it("normalises the invited address and bounds the expiry", () => {
    expect(invitationRequestSchema.parse({ teamId: "t", email: "Dee@Example.COM", inviterUserId: "u" })).toMatchObject({
      email: "dee@example.com",
      role: "member",
    });
    expect(
      invitationRequestSchema.safeParse({ teamId: "t", email: "d@example.com", inviterUserId: "u", expiresInDays: 31 })
        .success,
    ).toBe(false);
    expect(
      invitationRequestSchema.safeParse({ teamId: "t", email: "d@example.com", inviterUserId: "u", role: "king" })
        .success,
    ).toBe(false);
  });
});
