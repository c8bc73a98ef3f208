import { env } from "cloudflare:workers";
import { sign } from "hono/jwt";
import { describe, expect, it } from "vitest";
import { signToken } from "../../../src/platform/auth.ts";
import { getConfig } from "../../../src/platform/config.ts";
import { api, tokenFor } from "../support/api.ts";

const auth = () => getConfig(env).auth;
const b64url = (o: unknown) => btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
const code = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;

describe("authentication and tenancy on /v1", () => {
  it("returns the caller for a valid token", async () => {
    const res = await api("/v1/me", { org: "org_7", user: "u_7", email: "u7@example.com", scopes: ["teams:read"] });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      userId: "u_7",
      organizationId: "org_7",
      email: "u7@example.com",
      scopes: ["teams:read"],
    });
  });

  it("rejects a missing token with 401", async () => {
    const res = await api("/v1/me", { token: null });
    expect(res.status).toBe(401);
    expect(await code(res)).toBe("unauthorized");
  });

  it("rejects an expired token", async () => {
    const token = await signToken(
      { userId: "u", organizationId: "org_1", scopes: [] },
      auth(),
      Date.now() - 3 * 3600_000,
    );
    const res = await api("/v1/me", { token });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/expired/);
  });

  it("rejects a wrong signature", async () => {
    const token = await signToken(
      { userId: "u", organizationId: "org_1", scopes: [] },
      { ...auth(), secret: "z".repeat(40) },
    );
    expect((await api("/v1/me", { token })).status).toBe(401);
  });

  it("rejects alg:none", async () => {
    const claims = {
      sub: "u",
      org: "org_1",
      scope: "internal",
      iss: auth().issuer,
      aud: auth().audience,
      exp: Math.floor(Date.now() / 1000) + 60,
    };
    const res = await api("/v1/me", { token: `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims)}.` });
    expect(res.status).toBe(401);
  });

  it("rejects a wrong audience", async () => {
    const token = await sign(
      { sub: "u", org: "org_1", iss: auth().issuer, aud: "someone-else", exp: Math.floor(Date.now() / 1000) + 60 },
      auth().secret,
      "HS256",
    );
    const res = await api("/v1/me", { token });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/audience/);
  });

  it("answers 404 for another organization's routes", async () => {
    const res = await api("/v1/orgs/org_2/me", { org: "org_1", scopes: ["admin"] });
    expect(res.status).toBe(404);
    expect(await code(res)).toBe("not_found");
  });

  it("lets its own organization in", async () => {
    const res = await api("/v1/orgs/org_1/me", { org: "org_1" });
    expect(res.status).toBe(200);
  });

  it("lets internal tokens act for any organization", async () => {
    const res = await api("/v1/orgs/org_99/me", { token: await tokenFor({ org: "svc", scopes: ["internal"] }) });
    expect(res.status).toBe(200);
  });
});
