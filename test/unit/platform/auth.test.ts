import { sign } from "hono/jwt";
import { describe, expect, it } from "vitest";
import type { Principal, Scope } from "../../../src/platform/auth.ts";
import {
  assertScope,
  assertTenant,
  bearerToken,
  hasScope,
  signToken,
  verifyToken,
} from "../../../src/platform/auth.ts";
import { UnauthorizedError } from "../../../src/platform/errors.ts";

const auth = { secret: "s".repeat(32), issuer: "cloudmatrix", audience: "cloudmatrix-edge" };
const now = () => Math.floor(Date.now() / 1000);
const b64url = (o: unknown) => btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");

const principal = (...scopes: Scope[]): Principal => ({
  userId: "u",
  organizationId: "org_1",
  scopes: new Set(scopes),
});

describe("verifyToken", () => {
  it("accepts a valid token and parses its claims", async () => {
    const token = await signToken(
      { userId: "u_1", organizationId: "org_1", email: "a@example.com", scopes: ["teams:read", "bogus"] },
      auth,
    );
    const p = await verifyToken(token, auth);
    expect(p).toEqual({
      userId: "u_1",
      organizationId: "org_1",
      email: "a@example.com",
      scopes: new Set(["teams:read"]),
    });
  });

  it("rejects an expired token", async () => {
    const token = await signToken({ userId: "u", organizationId: "o", scopes: [] }, auth, Date.now() - 7_200_000);
    await expect(verifyToken(token, auth)).rejects.toThrow(/expired/);
  });

  it("rejects a token signed with another secret", async () => {
    const token = await signToken(
      { userId: "u", organizationId: "o", scopes: [] },
      { ...auth, secret: "t".repeat(32) },
    );
    await expect(verifyToken(token, auth)).rejects.toThrow(/signature/);
  });

  it("rejects alg:none", async () => {
    const payload = { sub: "u", org: "o", scope: "admin", iss: auth.issuer, aud: auth.audience, exp: now() + 60 };
    const token = `${b64url({ alg: "none", typ: "JWT" })}.${b64url(payload)}.`;
    await expect(verifyToken(token, auth)).rejects.toBeInstanceOf(UnauthorizedError);
  });

  it("rejects other algorithms even with a valid HMAC", async () => {
    const token = await sign(
      { sub: "u", org: "o", iss: auth.issuer, aud: auth.audience, exp: now() + 60 },
      auth.secret,
      "HS512",
    );
    await expect(verifyToken(token, auth)).rejects.toThrow(/algorithm/);
  });

  it("rejects wrong audience and wrong issuer", async () => {
    const aud = await signToken({ userId: "u", organizationId: "o", scopes: [] }, { ...auth, audience: "other" });
    await expect(verifyToken(aud, auth)).rejects.toThrow(/audience/);
    const iss = await signToken({ userId: "u", organizationId: "o", scopes: [] }, { ...auth, issuer: "evil" });
    await expect(verifyToken(iss, auth)).rejects.toThrow(/issuer/);
  });

  it("requires exp, sub and org", async () => {
    const noExp = await sign({ sub: "u", org: "o", iss: auth.issuer, aud: auth.audience }, auth.secret, "HS256");
    await expect(verifyToken(noExp, auth)).rejects.toThrow(/exp/);
    const noOrg = await sign({ sub: "u", iss: auth.issuer, aud: auth.audience, exp: now() + 60 }, auth.secret, "HS256");
    await expect(verifyToken(noOrg, auth)).rejects.toThrow(/org/);
  });

  it("rejects garbage", async () => {
    await expect(verifyToken("a.b.c", auth)).rejects.toBeInstanceOf(UnauthorizedError);
    await expect(verifyToken("nope", auth)).rejects.toBeInstanceOf(UnauthorizedError);
  });
});

describe("scopes and tenancy", () => {
  it("reads bearer tokens strictly", () => {
    expect(bearerToken("Bearer abc.def.ghi")).toBe("abc.def.ghi");
    expect(() => bearerToken(undefined)).toThrow(UnauthorizedError);
    expect(() => bearerToken("Basic abc")).toThrow(UnauthorizedError);
  });

  it("lets admin hold every scope but internal, and internal every scope", () => {
    expect(hasScope(principal("teams:read"), "teams:read")).toBe(true);
    expect(hasScope(principal("teams:read"), "teams:write")).toBe(false);
    expect(hasScope(principal("admin"), "webhooks:write")).toBe(true);
    expect(hasScope(principal("admin"), "internal")).toBe(false);
    expect(hasScope(principal("internal"), "usage:write")).toBe(true);
    expect(() => assertScope(principal("usage:read"), "usage:write")).toThrow(/usage:write/);
  });

  it("hides other organizations unless internal", () => {
    expect(() => assertTenant(principal("admin"), "org_2")).toThrow(/not found/);
    expect(() => assertTenant(principal("internal"), "org_2")).not.toThrow();
    expect(() => assertTenant(principal(), "org_1")).not.toThrow();
  });
});
