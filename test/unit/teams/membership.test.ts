import { describe, expect, it } from "vitest";
import {
  hashToken,
  invitationEmail,
  looksLikeToken,
  newInvitationToken,
  toInvitation,
} from "../../../src/teams/invitation.ts";
import type { InvitationRow } from "../../../src/teams/invitation.ts";
import type { MembershipRow } from "../../../src/teams/membership.ts";
import { byRoleThenJoin, toMembership, touchesOwner, withUsers } from "../../../src/teams/membership.ts";
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

  it("flags changes that touch the owner role", () => {
    expect(touchesOwner("owner", "admin")).toBe(true);
    expect(touchesOwner("member", "owner")).toBe(true);
    expect(touchesOwner("member", "admin")).toBe(false);
    expect(touchesOwner("owner", null)).toBe(true);
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
  it("are 256-bit base64url strings, unique", () => {
    const tokens = new Set(Array.from({ length: 200 }, newInvitationToken));
    expect(tokens.size).toBe(200);
    for (const t of tokens) expect(looksLikeToken(t)).toBe(true);
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

  it("writes an e-mail with the link, the message and the expiry", () => {
    const m = invitationEmail(
      "Design",
      "admin",
      "TOKEN",
      "https://app.example.com/accept",
      "hello",
      new Date("2026-12-01T00:00:00Z"),
    );
    expect(m.subject).toBe("You are invited to join Design on CloudMatrix");
    expect(m.text).toContain("https://app.example.com/accept?token=TOKEN");
    expect(m.text).toContain("hello");
    expect(m.text).toContain("2026-12-01T00:00:00.000Z");
    expect(invitationEmail("D", "member", "T", undefined, undefined, new Date(0)).text).toContain("token: T");
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
