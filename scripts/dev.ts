import { spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildAssets } from "./build-assets.ts";
import { firesEveryMinute, parseCron, startCronScheduler } from "./lib/cron.ts";
import type { CronScheduler } from "./lib/cron.ts";
import { writeDevVars } from "./lib/dev-vars.ts";
import { startLocalEnv } from "./lib/local-env.ts";
import { readCrons } from "./lib/wrangler-config.ts";

/**
 * `npm run dev`: brings the local stack up (reusing running servers, else starting its own),
 * migrates the dev database, declares the RabbitMQ topology, starts the Neon WebSocket proxy and
 * the Upstash adapter, builds the static assets, writes `.dev.vars`, and runs `wrangler dev` with
 * Queues and Durable Objects. Wrangler fires Cron Triggers only on `/__scheduled`, so this command
 * fires every cron of `wrangler.toml` itself at its minutes (UTC), and the every-minute ones once
 * as soon as the server answers (the inbound drainer starts at once). Ctrl-C stops everything this
 * command started.
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
const origin = `http://127.0.0.1:${port}`;

let stopping = false;
let scheduler: CronScheduler | undefined;
let wrangler: ReturnType<typeof spawn> | undefined;
let closeEnv: (() => Promise<void>) | undefined;
// Aborts in-flight cron calls and the readiness wait when we stop.
const shutdown = new AbortController();

const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  scheduler?.stop();
  shutdown.abort();
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

// wrangler's config reader takes seconds to load: read the crons while the stack comes up.
const cronsRead = readCrons(join(REPO_ROOT, "wrangler.toml"));
cronsRead.catch(() => undefined);
await buildAssets(log);
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

// Parsed before wrangler starts, so a cron the local scheduler cannot run fails loudly and early.
const crons = (await cronsRead).map(parseCron);
log(
  `cron schedule (wrangler.toml, UTC): ${crons
    .map(
      (c) =>
        `"${c.expression}"${firesEveryMinute(c) ? " (every minute; also once as soon as the server answers)" : ""}`,
    )
    .join(", ")}`,
);
const fire = async (expr: string, at: Date) => {
  const started = Date.now();
  const label = `cron "${expr}" (${at.toISOString().slice(11, 16)} UTC)`;
  try {
    const res = await fetch(`${origin}/__scheduled?cron=${encodeURIComponent(expr)}`, {
      signal: AbortSignal.any([shutdown.signal, AbortSignal.timeout(300_000)]),
    });
    const body = res.ok ? "" : `: ${(await res.text()).slice(0, 300)}`;
    log(`${label} fired: ${res.status} in ${Date.now() - started} ms${body}`);
  } catch (err) {
    if (!stopping) log(`${label} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
};

const args = ["dev", "--ip", "127.0.0.1", "--port", String(port), "--test-scheduled"];
// Set by `npm run test:clock` when it moves the clock behind wrangler.toml's compatibility date,
// which Miniflare refuses as "in the future".
if (process.env.TEST_COMPATIBILITY_DATE) args.push("--compatibility-date", process.env.TEST_COMPATIBILITY_DATE);
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

// As soon as the Worker answers, run the every-minute crons: the outbox sweep, the webhook sweep
// and the kick that starts the RabbitMQ inbound drainer.
while (!stopping) {
  const up = await fetch(`${origin}/healthz`, {
    signal: AbortSignal.any([shutdown.signal, AbortSignal.timeout(2_000)]),
  })
    .then((r) => r.ok)
    .catch(() => false);
  if (up) break;
  await new Promise((r) => setTimeout(r, 250));
}
if (!stopping) {
  log(`server answers on ${origin}; firing crons on schedule`);
  scheduler = startCronScheduler({ crons: crons.map((c) => c.expression), fire });
  await scheduler.fireEveryMinuteNow();
}
