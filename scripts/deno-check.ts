import { spawnSync } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * Keeps "Deno-compatible" true: type-checks with Deno every domain module (every file under src/
 * that does not touch Workers-only APIs), then runs the Hono app itself under Deno.
 */
const WORKERS_ONLY =
  /CloudflareBindings|ExportedHandler|DurableObject(State|Namespace)?\b|MessageBatch|ScheduledController|from "cloudflare:/;

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

const files: string[] = [];
const skipped: string[] = [];
for (const f of (await walk("src")).sort()) (WORKERS_ONLY.test(await readFile(f, "utf8")) ? skipped : files).push(f);

const deno = (args: string[]) =>
  spawnSync("deno", args, { stdio: "inherit", env: { ...process.env, NO_COLOR: "1" } }).status ?? 1;

console.log(
  `deno check: ${files.length} domain modules (${skipped.length} Workers adapters skipped: ${skipped.join(", ")})`,
);
if (deno(["check", ...files]) !== 0) process.exit(1);
if (deno(["run", "--allow-env", "--allow-read", "--allow-net=127.0.0.1", "scripts/deno-smoke.ts"]) !== 0)
  process.exit(1);
