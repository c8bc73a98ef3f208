import { pathToFileURL } from "node:url";
import type { Topology } from "../src/events/rabbit.ts";
import { ensureTopology } from "../src/events/rabbit.ts";
import { parseRabbitmqConfig } from "../src/platform/config.ts";
import { readDevVars } from "./lib/dev-vars.ts";
import { closePgProxy } from "./lib/pg.ts";
import type { MigrateResult } from "./migrate.ts";
import { migrate } from "./migrate.ts";

/**
 * `npm run setup`: everything the backing services need before the Worker may report ready, in one
 * idempotent command for operators (and deploys): apply `migrations/` to `DATABASE_URL` and declare
 * the RabbitMQ topology (exchanges, inbound queues and their bindings, dead-letter exchange and
 * queue) on `RABBITMQ_URL`, under `RABBITMQ_EXCHANGE` / `RABBITMQ_QUEUE_PREFIX` when set. Without
 * either URL in the environment it reads `.dev.vars`, like `npm run migrate`.
 */

/** Outcome of {@link setup}. */
export interface SetupResult {
  migrations: MigrateResult;
  topology: Topology;
}

/** Migrates the database and declares the broker topology described by `env`. */
export async function setup(
  env: Record<string, string | undefined>,
  log: (m: string) => void = () => {},
): Promise<SetupResult> {
  if (!env.DATABASE_URL)
    throw new Error("DATABASE_URL is not set (export it, or run `npm run dev` once for .dev.vars)");
  if (!env.RABBITMQ_URL)
    throw new Error("RABBITMQ_URL is not set (export it, or run `npm run dev` once for .dev.vars)");
  const rabbit = parseRabbitmqConfig(env);
  const migrations = await migrate(env.DATABASE_URL, "migrations", log);
  log(`migrations: ${migrations.applied.length} applied, ${migrations.alreadyApplied.length} already applied`);
  const t = await ensureTopology(rabbit);
  for (const q of t.inbound) log(`rabbitmq: queue ${q.queue} bound to ${t.exchange} for ${q.bindings.join(" ")}`);
  log(`rabbitmq: dead letters ${t.deadLetterExchange} → ${t.deadLetterQueue}`);
  return { migrations, topology: t };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // The environment, or else .dev.vars (as `npm run migrate` does) — never a mix, so a deploy that
  // exports DATABASE_URL but forgets RABBITMQ_URL fails instead of declaring on the local broker.
  const fromEnv = Boolean(process.env.DATABASE_URL || process.env.RABBITMQ_URL);
  const source: Record<string, string | undefined> = fromEnv ? process.env : await readDevVars();
  const keys = ["DATABASE_URL", "RABBITMQ_URL", "RABBITMQ_EXCHANGE", "RABBITMQ_QUEUE_PREFIX"];
  const env = Object.fromEntries(keys.map((k) => [k, source[k]]));
  console.log(`setup: using ${fromEnv ? "the environment" : ".dev.vars"}`);
  try {
    await setup(env, console.log);
    console.log("setup: done");
  } catch (err) {
    console.error(`setup failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  } finally {
    await closePgProxy();
  }
}
