import { sign, verify } from "hono/jwt";
import { z } from "zod";
import type { Config } from "./config.ts";
import { ForbiddenError, NotFoundError, UnauthorizedError } from "./errors.ts";

/**
 * Bearer-JWT authentication (HS256 only) and tenancy. A token names one user (`sub`) in one
 * organization (`org`); `internal` tokens belong to other CloudMatrix services and may act for
 * any organization.
 */

/** Every scope a token may carry. */
export const scopes = [
  "usage:read",
  "usage:write",
  "teams:read",
  "teams:write",
  "webhooks:read",
  "webhooks:write",
  "admin",
  "internal",
] as const;

/** One of {@link scopes}. */
export type Scope = (typeof scopes)[number];

const scopeSet = new Set<string>(scopes);

const claimsSchema = z.object({
  sub: z.string().min(1).max(200),
  org: z.string().min(1).max(200),
  email: z.email().optional(),
  scope: z.string().default(""),
  exp: z.number(),
});

/** The authenticated caller of a request. */
export interface Principal {
  /** User id (`sub`). */
  userId: string;
  /** Organization the token belongs to (`org`). */
  organizationId: string;
  /** Verified e-mail, when the identity provider put one in the token. */
  email?: string;
  /** Granted scopes (unknown ones are dropped). */
  scopes: ReadonlySet<Scope>;
}

/**
 * Verifies a compact JWT and returns its principal.
 * Rejects: other algorithms than HS256 (incl. `none`), bad signatures, missing or past `exp`,
 * future `nbf`/`iat`, wrong `iss` or `aud`, malformed claims.
 * @throws {UnauthorizedError} whatever is wrong, with a short reason
 */
export async function verifyToken(token: string, auth: Config["auth"]): Promise<Principal> {
  let payload: unknown;
  try {
    payload = await verify(token, auth.secret, { alg: "HS256", iss: auth.issuer, aud: auth.audience });
  } catch (err) {
    throw new UnauthorizedError(`invalid token: ${jwtReason(err)}`);
  }
  const claims = claimsSchema.safeParse(payload);
  if (!claims.success) {
    throw new UnauthorizedError(
      `invalid token: claim ${claims.error.issues[0]?.path.join(".")} is missing or malformed`,
    );
  }
  const { sub, org, email, scope } = claims.data;
  return {
    userId: sub,
    organizationId: org,
    email,
    scopes: new Set(scope.split(/\s+/).filter((s): s is Scope => scopeSet.has(s))),
  };
}

function jwtReason(err: unknown): string {
  const name = err instanceof Error ? err.name : "";
  const reasons: Record<string, string> = {
    JwtTokenExpired: "expired",
    JwtTokenSignatureMismatched: "signature mismatch",
    JwtAlgorithmMismatch: "algorithm not allowed",
    JwtHeaderInvalid: "algorithm not allowed or header malformed",
    JwtTokenIssuer: "wrong issuer",
    JwtTokenAudience: "wrong audience",
    JwtPayloadRequiresAud: "wrong audience",
    JwtTokenNotBefore: "not yet valid",
    JwtTokenIssuedAt: "issued in the future",
  };
  return reasons[name] ?? "malformed";
}

/** Claims accepted by {@link signToken}. */
export interface TokenClaims {
  userId: string;
  organizationId: string;
  email?: string;
  scopes: readonly string[];
  /** Lifetime in seconds (default 1 h). */
  ttlSeconds?: number;
}

/** Signs an HS256 token the way the identity provider does (dev tokens, tests, benchmarks). */
export async function signToken(claims: TokenClaims, auth: Config["auth"], now = Date.now()): Promise<string> {
  const iat = Math.floor(now / 1000);
  return sign(
    {
      sub: claims.userId,
      org: claims.organizationId,
      ...(claims.email ? { email: claims.email } : {}),
      scope: claims.scopes.join(" "),
      iss: auth.issuer,
      aud: auth.audience,
      iat,
      exp: iat + (claims.ttlSeconds ?? 3600),
    },
    auth.secret,
    "HS256",
  );
}

/** Reads the token from an `Authorization: Bearer …` header value. */
export function bearerToken(header: string | undefined | null): string {
  const match = header?.match(/^Bearer\s+([A-Za-z0-9_\-.=]+)\s*$/i);
  if (!match?.[1]) throw new UnauthorizedError("missing bearer token");
  return match[1];
}

/**
 * Whether `principal` holds `scope`. `internal` (service-to-service) holds every scope;
 * `admin` holds every scope but `internal`.
 */
export function hasScope(principal: Principal, scope: Scope): boolean {
  const s = principal.scopes;
  return s.has(scope) || s.has("internal") || (scope !== "internal" && s.has("admin"));
}

/** @throws {ForbiddenError} unless the principal holds `scope` */
export function assertScope(principal: Principal, scope: Scope): void {
  if (!hasScope(principal, scope)) throw new ForbiddenError(`token lacks scope ${scope}`);
}

/**
 * Tenancy: a token acts only in its own organization, unless it is `internal`.
 * Another organization answers 404 so its existence is not revealed.
 * @throws {NotFoundError} on an organization mismatch
 */
export function assertTenant(principal: Principal, organizationId: string): void {
  if (principal.organizationId !== organizationId && !principal.scopes.has("internal")) {
    throw new NotFoundError(`organization ${organizationId} not found`);
  }
}
