import { parseArgs } from "node:util";
import { signToken } from "../src/platform/auth.ts";
import { readDevVars } from "./lib/dev-vars.ts";

/**
 * Prints a dev token signed with the local secret:
 *   npm run token -- --org org_1 --user u_1 --email a@example.com --scope "teams:write webhooks:write"
 * The token goes to stdout (so `TOKEN=$(npm run -s token)` works); a console link that signs in with
 * it goes to stderr (`--origin`, default http://127.0.0.1:$PORT or :8787).
 */
const { values } = parseArgs({
  options: {
    org: { type: "string", default: "org_1" },
    user: { type: "string", default: "u_1" },
    email: { type: "string" },
    scope: { type: "string", default: "usage:read usage:write teams:read teams:write webhooks:read webhooks:write" },
    ttl: { type: "string", default: "86400" },
    origin: { type: "string" },
  },
});
const vars = { ...(await readDevVars(".dev.vars.example")), ...(await readDevVars()), ...process.env };
const token = await signToken(
  {
    userId: values.user!,
    organizationId: values.org!,
    email: values.email,
    scopes: values.scope!.split(/\s+/).filter(Boolean),
    ttlSeconds: Number(values.ttl),
  },
  {
    secret: vars.AUTH_JWT_SECRET!,
    issuer: vars.AUTH_JWT_ISSUER ?? "cloudmatrix",
    audience: vars.AUTH_JWT_AUDIENCE ?? "cloudmatrix-edge",
  },
);
console.log(token);
const origin = values.origin ?? `http://127.0.0.1:${process.env.PORT ?? "8787"}`;
// The token rides in the fragment: browsers never send it to the server or keep it in history.
console.error(`console: ${origin}/console/login#token=${token}`);
