import { spawn } from "node:child_process";
import { parseArgs } from "node:util";
import { writeDevVars } from "./lib/dev-vars.ts";
import { startLocalEnv } from "./lib/local-env.ts";

/**
 * `npm run dev`: brings the local stack up (reusing running servers, else starting its own),
 * migrates the dev database, starts the Neon WebSocket proxy and the Upstash adapter, writes
 * `.dev.vars`, and runs `wrangler dev` with Queues, Cron Triggers (`/__scheduled?cron=…`) and
 * Durable Objects. Ctrl-C stops everything this command started.
 */
const { values } = parseArgs({ options: { port: { type: "string", default: process.env.PORT ?? "8787" } } });
const log = (m: string) => console.log(`[dev] ${m}`);

const env = await startLocalEnv({ database: "cloudmatrix_dev", redisKeyPrefix: "cm:dev:", log });
await writeDevVars({ ...env.bindings, ENVIRONMENT: "development", WEBHOOK_ALLOW_LOCAL_HTTP: "true" });
log(
  `stack: postgres ${env.stack.postgresUrl}, redis ${env.stack.redisUrl}, rabbitmq ${env.stack.rabbitmqUrl.replace(/\/\/[^@]*@/, "//")}`,
);
log(`dev token: npm run token -- --org org_1 --user u_1 --email a@example.com`);

const wrangler = spawn("wrangler", ["dev", "--ip", "127.0.0.1", "--port", values.port!, "--test-scheduled"], {
  stdio: "inherit",
  env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
});

let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  if (wrangler.exitCode === null) wrangler.kill("SIGINT");
  await env.close();
  log("stopped");
  process.exit(code);
};
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
wrangler.on("exit", (code) => void stop(code ?? 0));
