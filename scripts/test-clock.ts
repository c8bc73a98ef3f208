import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * `npm run test:clock -- <shift> [command…]`: runs `npm test` (or the given command) with the wall
 * clock of every process it starts moved by `<shift>` (`+1y`, `-1y`, `+90d`, `-36h`, seconds…):
 * Node, workerd, Deno and a private Postgres whose now() moves with them. Redis and RabbitMQ are
 * reused as they are: their clocks never enter a result (TTLs and timeouts are relative). A test
 * that pins a calendar date fails here even if it still passes today.
 */
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const [shiftArg, ...command] = process.argv.slice(2);

/** Parses `+1y`, `-30d`, `+12h`, `-5m`, `+3600s` or plain seconds. */
function parseShift(text: string): number {
  const m = /^([+-]?)(\d+)([ydhms]?)$/.exec(text.trim());
  if (!m) throw new Error(`cannot read the clock shift "${text}": use e.g. +1y, -1y, +90d, -36h`);
  const unit = { y: 365 * 86_400, d: 86_400, h: 3_600, m: 60, s: 1, "": 1 }[m[3] as "y"];
  return (m[1] === "-" ? -1 : 1) * Number(m[2]) * unit;
}

if (!shiftArg) {
  console.error("usage: npm run test:clock -- <shift> [command…]   e.g. npm run test:clock -- +1y");
  process.exit(2);
}
const seconds = parseShift(shiftArg);
const source = join(root, "scripts", "clock-shift.c");
const dir = join(root, ".stack", `clock${seconds >= 0 ? "+" : ""}${seconds}`);
const lib = join(root, ".stack", "clock-shift.so");
mkdirSync(dir, { recursive: true });
if (!existsSync(lib) || statSync(lib).mtimeMs < statSync(source).mtimeMs) {
  const cc = spawnSync("cc", ["-shared", "-fPIC", "-O2", "-o", lib, source], { stdio: "inherit" });
  if (cc.status !== 0) {
    console.error("test:clock needs a C compiler for its clock shim: apt-get install gcc");
    process.exit(1);
  }
}

// Miniflare refuses a compatibility date after "today": behind wrangler.toml's, use the moved today.
const shiftedToday = new Date(Date.now() + seconds * 1000).toISOString().slice(0, 10);
const configured = /compatibility_date\s*=\s*"(\d{4}-\d{2}-\d{2})"/.exec(
  readFileSync(join(root, "wrangler.toml"), "utf8"),
)?.[1];
const preload = [lib, process.env.LD_PRELOAD].filter(Boolean).join(":");
const [cmd, ...args] = command.length > 0 ? command : ["npm", "test"];
// `npm test`: vitest's own process keeps the real clock and preloads the shim into every process it
// starts (workerd, the Node test workers, Postgres, dev servers: test/vitest.config.ts). Its
// Miniflare then accepts wrangler.toml's compatibility date, so workerd runs the production
// runtime behaviour — an older date changes it (at 2026-03-01 a fold error caught by the code was
// still reported as an unhandled rejection). Any other command is preloaded whole.
const viaVitest = command.length === 0;
const env = {
  ...process.env,
  ...(configured && shiftedToday < configured ? { TEST_COMPATIBILITY_DATE: shiftedToday } : {}),
  CLOCK_SHIFT_SECONDS: String(seconds),
  ...(viaVitest ? { CLOCK_SHIFT_PRELOAD: preload } : { LD_PRELOAD: preload }),
  // A Postgres of our own under the shifted clock, kept apart from the unshifted ones.
  LOCAL_STACK_OWN: "postgres",
  LOCAL_STACK_DIR: dir,
};
const shown = new Date(Date.now() + seconds * 1000).toISOString();
console.log(
  `[test:clock] clock moved by ${shiftArg} (${seconds} s): the tests see ${shown}; running ${[cmd, ...args].join(" ")}`,
);
const child = spawn(cmd!, args, { stdio: "inherit", env, cwd: root });
const code: number = await new Promise((done) => child.on("exit", (c, sig) => done(c ?? (sig ? 1 : 0))));
// Stop the private Postgres this shift used (the state under `dir` records only servers we started).
spawnSync(process.execPath, [join(root, "scripts", "stack.ts"), "down", "--data-dir", dir], { stdio: "inherit" });
console.log(`[test:clock] ${shiftArg}: exit ${code}`);
process.exit(code);
