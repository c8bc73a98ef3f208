import { createRoute, z } from "@hono/zod-openapi";
import { createRouter } from "./create-app.ts";
import { authErrors, jsonResponse } from "./openapi.ts";

/** The caller as the platform sees it: who, in which organization, with which scopes. */
export const principalSchema = z
  .object({
    userId: z.string(),
    organizationId: z.string(),
    email: z.string().optional(),
    scopes: z.array(z.string()),
  })
  .openapi("Principal");

const me = createRoute({
  method: "get",
  path: "/v1/me",
  tags: ["identity"],
  summary: "The authenticated caller",
  responses: { 200: jsonResponse(principalSchema, "The caller"), ...authErrors },
});

const orgMe = createRoute({
  method: "get",
  path: "/v1/orgs/{organizationId}/me",
  tags: ["identity"],
  summary: "The caller within an organization (tenancy check: another org answers 404)",
  request: { params: z.object({ organizationId: z.string().min(1).max(200) }) },
  responses: { 200: jsonResponse(principalSchema, "The caller"), ...authErrors },
});

const view = (p: { userId: string; organizationId: string; email?: string; scopes: ReadonlySet<string> }) => ({
  userId: p.userId,
  organizationId: p.organizationId,
  ...(p.email ? { email: p.email } : {}),
  scopes: [...p.scopes].sort(),
});

/** Identity routes. */
export const identityRoutes = createRouter()
  .openapi(me, (c) => c.json(view(c.var.principal), 200))
  .openapi(orgMe, (c) => c.json(view(c.var.principal), 200));
