import { spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { writeDevVars } from "./lib/dev-vars.ts";
import { startLocalEnv } from "./lib/local-env.ts";

/**
 * `npm run dev`: brings the local stack up (reusing running servers, else starting its own),
 * migrates the dev database, starts the Neon WebSocket proxy and the Upstash adapter, writes
 * `.dev.vars`, and runs `wrangler dev` with Queues, Cron Triggers (`/__scheduled?cron=…`) and
 * Durable Objects. Ctrl-C stops everything this command started.
 *
 * Flags (defaults are the developer's dev data; tests pass throwaway names):
 *   --port N                   HTTP port (default $PORT or 8787)
 *   --persist-to DIR           wrangler's local state (Durable Objects, Queues); default .wrangler/state
 *   --database NAME            Postgres database (default cloudmatrix_dev)
 *   --redis-prefix P           Redis key prefix (default cm:dev:)
 *   --rabbitmq-exchange X      platform exchange (default cloudmatrix.events)
 *   --rabbitmq-queue-prefix P  prefix of this project's queues (default cloudmatrix-edge.)
 *   --dev-vars FILE            where to write the Worker's secrets (default .dev.vars)
 *   --drop-on-exit             drop the database, Redis keys and RabbitMQ names on exit (the RabbitMQ
 *                              names only when both are given, so shared defaults are never deleted)
 */
const { values } = parseArgs({
  options: {
    port: { type: "string", default: process.env.PORT ?? "8787" },
    "persist-to": { type: "string" },
    database: { type: "string", default: "cloudmatrix_dev" },
    "redis-prefix": { type: "string", default: "cm:dev:" },
    "rabbitmq-exchange": { type: "string" },
    "rabbitmq-queue-prefix": { type: "string" },
    "dev-vars": { type: "string", default: ".dev.vars" },
    "drop-on-exit": { type: "boolean", default: false },
  },
});
const log = (m: string) => console.log(`[dev] ${m}`);
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const port = Number(values.port);

let stopping = false;
let wrangler: ReturnType<typeof spawn> | undefined;
let closeEnv: (() => Promise<void>) | undefined;

const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  if (wrangler && wrangler.exitCode === null && wrangler.signalCode === null) {
    const exited = new Promise((r) => wrangler!.once("exit", r));
    wrangler.kill("SIGINT");
    // Wrangler winds workerd down on SIGINT; don't let a wedged one keep the database open forever.
    const timer = setTimeout(() => wrangler!.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
  await closeEnv?.().catch((e) => log(`cleanup failed: ${e}`));
  log("stopped");
  process.exit(code);
};
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));

const env = await startLocalEnv({
  database: values.database!,
  redisKeyPrefix: values["redis-prefix"]!,
  rabbitmqExchange: values["rabbitmq-exchange"],
  rabbitmqQueuePrefix: values["rabbitmq-queue-prefix"],
  dropOnClose: values["drop-on-exit"],
  log,
});
closeEnv = () => env.close();
const devVars = resolve(values["dev-vars"]!);
await writeDevVars({ ...env.bindings, ENVIRONMENT: "development", WEBHOOK_ALLOW_LOCAL_HTTP: "true" }, devVars);
log(
  `stack: postgres ${env.stack.postgresUrl}, redis ${env.stack.redisUrl}, rabbitmq ${env.stack.rabbitmqUrl.replace(/\/\/[^@]*@/, "//")}`,
);
log(`dev token: npm run token -- --org org_1 --user u_1 --email a@example.com`);

const args = ["dev", "--ip", "127.0.0.1", "--port", String(port), "--test-scheduled"];
if (values["persist-to"]) args.push("--persist-to", resolve(values["persist-to"]));
// With --env-file wrangler reads that file instead of .dev.vars (a test must not clobber the developer's).
if (devVars !== resolve(REPO_ROOT, ".dev.vars")) args.push("--env-file", devVars);
// On this Node (wrangler needs ≥ 22; a bare `wrangler` would take the first `node` on PATH).
wrangler = spawn(process.execPath, [join(REPO_ROOT, "node_modules", "wrangler", "bin", "wrangler.js"), ...args], {
  cwd: REPO_ROOT,
  stdio: "inherit",
  env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
});
// Wrangler ending on its own (a crash, a port in use) ends dev too, failing when wrangler did.
wrangler.on("exit", (code) => void stop(code ?? 1));
