import { randomBytes } from "node:crypto";
import type { TestProject } from "vitest/node";
import { startLocalEnv } from "../../scripts/lib/local-env.ts";
import { startReceiver } from "./receiver.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** Worker bindings pointing at this run's database, Redis prefix and RabbitMQ names. */
    bindings: Record<string, string>;
    /** Server URLs of the local stack (for tooling tests that need a server of their own too). */
    stack: { postgresUrl: string; redisUrl: string; rabbitmqUrl: string };
    /** Base URL of the scriptable webhook receiver (test/setup/receiver.ts). */
    receiverUrl: string;
  }
}

/**
 * Brings the local stack up (reusing running servers), creates this run's database and names, and
 * tears them down afterwards, so concurrent runs never see each other's data.
 */
export default async function setup(project: TestProject) {
  const runId = `${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
  const env = await startLocalEnv({
    database: `cm_test_${runId}`,
    dropOnClose: true,
    redisKeyPrefix: `cm:test:${runId}:`,
    rabbitmqExchange: `cm.test.${runId}.events`,
    rabbitmqQueuePrefix: `cm.test.${runId}.`,
    log: (m) => process.env.DEBUG_STACK && console.log(`[stack] ${m}`),
  });
  const receiver = await startReceiver();
  project.provide("receiverUrl", receiver.url);
  project.provide("bindings", env.bindings);
  project.provide("stack", {
    postgresUrl: env.stack.postgresUrl,
    redisUrl: env.stack.redisUrl,
    rabbitmqUrl: env.stack.rabbitmqUrl,
  });
  return async () => {
    await receiver.close();
    await env.close();
  };
}
