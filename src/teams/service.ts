import { hasScope } from "../platform/auth.ts";
import type { Principal } from "../platform/auth.ts";
import { createEmailClient } from "../platform/email.ts";
import type { Platform } from "../platform/platform.ts";
import { TeamManagementService } from "./team.ts";
import { httpUsersClient, noUsers } from "./users.ts";

/** Builds the teams service for one invocation; `principal` is the caller (absent for cron jobs). */
export function createTeamService(platform: Platform, principal?: Principal): TeamManagementService {
  return new TeamManagementService({
    db: platform.db,
    redis: platform.redis,
    keys: platform.keys,
    eventBus: platform.events,
    emailClient: createEmailClient(platform.db),
    users: platform.config.usersServiceUrl ? httpUsersClient(platform.config.usersServiceUrl) : noUsers,
    config: platform.config.teams,
    viewer: principal
      ? { userId: principal.userId, orgAdmin: hasScope(principal, "admin"), email: principal.email }
      : undefined,
    acceptUrl: platform.config.teams.acceptUrl,
    tokenSecret: platform.config.tokenSecret,
    waitUntil: (p) => platform.waitUntil(p),
  });
}
