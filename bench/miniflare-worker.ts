import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * `node bench/miniflare-worker.ts <options.json>`: the project's Worker in workerd through
 * Miniflare alone — no `wrangler dev` (its ProxyWorker in a second workerd, the inspector proxy,
 * the local trace collector) — with what `npm run chaos` needs of a dev server: the Durable
 * Objects, Queues (producers, consumers, dead-letter queues) and `[assets]` of wrangler.toml,
 * their state persisted under `persistTo` (a killed process comes back with it), and Cron
 * Triggers fired over HTTP (`/cdn-cgi/local/scheduled?cron=…`, Miniflare's trigger handler).
 *
 * `options.json`: `{ port, persistTo, vars, bundleDir, inspectorPort?, allLogs? }` — `vars` are added to the
 * `[vars]` of wrangler.toml like `wrangler dev --env-file`; `bundleDir` holds `index.js` from
 * `bundle()` below (`wrangler deploy --dry-run --outdir`: the bundle a deploy would upload).
 * Runs until killed; the caller starts it in its own process group, so SIGKILL of the group
 * takes workerd with it, like a kill of `wrangler dev`. Console output at warn and error goes to
 * stderr (what `wrangler dev --log-level warn` shows); the rest is dropped unless `allLogs`.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const WORKER_NAME = "cloudmatrix-edge";

export interface MiniflareWorkerOptions {
  port: number;
  persistTo: string;
  vars: Record<string, string>;
  bundleDir: string;
  inspectorPort?: number;
  /** Every console line, not only warn and error. */
  allLogs?: boolean;
}

/** The path that fires a cron under this runner (wrangler dev's `--test-scheduled` is `/__scheduled`). */
export const SCHEDULED_PATH = "/cdn-cgi/local/scheduled";

/** The inspector target of the Worker's isolate (what `bench/inspector.ts` should connect to). */
export const INSPECTOR_TARGET = `core:user:${WORKER_NAME}`;

/** Bundles the Worker as a deploy would (`wrangler deploy --dry-run`) into `outDir`. */
export function bundle(outDir: string): void {
  const r = spawnSync(
    process.execPath,
    [path.join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js"), "deploy", "--dry-run", "--outdir", outDir],
    { cwd: ROOT, encoding: "utf8", env: { ...process.env, WRANGLER_SEND_METRICS: "false" } },
  );
  if (r.status !== 0 || !fs.existsSync(path.join(outDir, "index.js")))
    throw new Error(`wrangler deploy --dry-run failed: ${r.stderr || r.stdout}`);
}

async function main(file: string): Promise<void> {
  // Imported here, not at the top: bench/chaos.ts imports this file for `bundle()` only.
  const { convertV4MiniflareOptions, Log, LogLevel, Miniflare } = await import("miniflare");
  const { unstable_getMiniflareWorkerOptions } = await import("wrangler");
  const opts = JSON.parse(fs.readFileSync(file, "utf8")) as MiniflareWorkerOptions;
  // The one-file bundle needs no module rules (and Miniflare 5 refuses the v4 form of them).
  const { modulesRules: _rules, ...workerOptions } = unstable_getMiniflareWorkerOptions(
    path.join(ROOT, "wrangler.toml"),
  ).workerOptions;
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      host: "127.0.0.1",
      port: opts.port,
      inspectorPort: opts.inspectorPort,
      rootPath: ROOT,
      // As wrangler dev lays out `--persist-to`.
      resourcePersistencePath: path.join(opts.persistTo, "v3"),
      unsafeTriggerHandlers: true,
      cf: false, // no fetch of the Request.cf object from the internet
      logRequests: false,
      log: new Log(LogLevel.WARN),
      handleStructuredLogs: ({ level, message }) => {
        if (opts.allLogs || level === "warn" || level === "error") process.stderr.write(`[${level}] ${message}\n`);
      },
      workers: [
        {
          ...workerOptions,
          name: WORKER_NAME,
          rootPath: ROOT,
          bindings: { ...(workerOptions.bindings as Record<string, string> | undefined), ...opts.vars },
          modulesRoot: opts.bundleDir,
          modules: [{ type: "ESModule", path: path.join(opts.bundleDir, "index.js") }],
        },
      ],
    }),
  );
  const url = await mf.ready;
  process.stdout.write(`ready ${url.href}\n`);
  const stop = () => void mf.dispose().finally(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: node bench/miniflare-worker.ts <options.json>");
  main(file).catch((err) => {
    process.stderr.write(`miniflare-worker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
