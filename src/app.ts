import { consoleLinkRoutes } from "./console/links.tsx";
import { consoleRoutes } from "./console/routes.tsx";
import { eventRoutes } from "./events/routes.ts";
import { createApp } from "./platform/create-app.ts";
import { healthRoutes } from "./platform/health.ts";
import { identityRoutes } from "./platform/me.ts";
import { mountOpenApi } from "./platform/openapi.ts";
import { emailRoutes } from "./platform/email-routes.ts";
import { authzRoutes } from "./teams/authz/routes.ts";
import { teamRoutes } from "./teams/routes.ts";
import { planRoutes } from "./usage/plan-routes.ts";
import { usageRoutes } from "./usage/routes.ts";
import { webhookRoutes } from "./webhooks/routes.ts";

/** The HTTP API: the platform shell with every service's routes mounted. */
export function buildApp() {
  const app = createApp();
  app.route("/", healthRoutes);
  app.route("/", identityRoutes);
  app.route("/", eventRoutes);
  app.route("/", webhookRoutes);
  app.route("/", usageRoutes);
  app.route("/", planRoutes);
  app.route("/", teamRoutes);
  app.route("/", authzRoutes);
  app.route("/", emailRoutes);
  app.route("/", consoleLinkRoutes);
  // The console calls this same app's /v1 routes for everything it shows or does.
  app.route(
    "/",
    consoleRoutes((req, env, ctx) => app.fetch(req, env, ctx)),
  );
  mountOpenApi(app);
  return app;
}

/** The application instance the Worker serves. */
export const app = buildApp();
