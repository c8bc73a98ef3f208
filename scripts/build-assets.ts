import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { CONSOLE_CLIENT_FILES, UPLOT_FILES } from "../src/console/assets.ts";
import { DOCS_ASSETS, DOCS_MOUNT_ID } from "../src/platform/docs-assets.ts";

/**
 * Fills the Worker's static assets folder (`[assets]` in wrangler.toml, git-ignored) with the API
 * reference's browser code, so `/docs` needs nothing but this Worker: Scalar's standalone bundle
 * copied from node_modules (the version pinned in package.json) and the page's start-up script;
 * and the console's (`/console`): its islands and stylesheet from `src/console/client/`, and uPlot.
 * `npm run dev`, `npm test` and `npm run deploy` run it first; it is cheap and idempotent.
 */

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The assets folder, as `[assets] directory` in wrangler.toml names it. */
export const ASSETS_DIR = join(REPO_ROOT, "build", "assets");

// Scalar's defaults would reach out: its fonts come from fonts.scalar.com, telemetry, the AI agent
// and MCP call scalar.com. The reference must work offline and keep every request on this origin.
const SCALAR_CONFIGURATION = {
  sources: [{ url: "/openapi.json", slug: "cloudmatrix-edge" }],
  withDefaultFonts: false,
  telemetry: false,
  agent: { disabled: true },
  mcp: { disabled: true },
  showDeveloperTools: "never",
};

/** Root folder of an installed package (exports maps may hide package.json and dist/). */
async function packageRoot(name: string): Promise<{ dir: string; version: string }> {
  let dir = dirname(fileURLToPath(import.meta.resolve(name)));
  while (!(await readFile(join(dir, "package.json"), "utf8").catch(() => ""))) dir = dirname(dir);
  const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as { name: string; version: string };
  if (pkg.name !== name) throw new Error(`expected ${name} at ${dir}`);
  return { dir, version: pkg.version };
}

/** The console's files: asset path → content (client islands as written, uPlot as published). */
async function consoleFiles(): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const client = join(REPO_ROOT, "src", "console", "client");
  for (const [asset, file] of Object.entries(CONSOLE_CLIENT_FILES))
    files.set(asset, await readFile(join(client, file)));
  const uplot = await packageRoot("uplot");
  for (const [asset, file] of Object.entries(UPLOT_FILES)) files.set(asset, await readFile(join(uplot.dir, file)));
  return files;
}

async function scalarBundle(): Promise<{ version: string; code: Buffer }> {
  // The package's exports map hides dist/browser, so locate the package root from its main entry.
  let dir = dirname(fileURLToPath(import.meta.resolve("@scalar/api-reference")));
  while (!(await readFile(join(dir, "package.json"), "utf8").catch(() => ""))) dir = dirname(dir);
  const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as { name: string; version: string };
  if (pkg.name !== "@scalar/api-reference") throw new Error(`expected @scalar/api-reference at ${dir}`);
  return { version: pkg.version, code: await readFile(join(dir, "dist", "browser", "standalone.js")) };
}

/** Writes `content` unless the file already holds exactly that (keeps wrangler's watcher quiet). */
async function put(path: string, content: Buffer | string): Promise<boolean> {
  const want = createHash("sha256").update(content).digest("hex");
  const have = await readFile(path).then(
    (b) => createHash("sha256").update(b).digest("hex"),
    () => "",
  );
  if (have === want) return false;
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, content);
  return true;
}

/** Builds the assets folder; returns the Scalar version it holds. */
export async function buildAssets(log: (m: string) => void = () => {}): Promise<{ version: string }> {
  const { version, code } = await scalarBundle();
  // Anything else in the folder would be served publicly: keep only what this build writes.
  const consoleAssets = await consoleFiles();
  const wanted = new Set(
    [DOCS_ASSETS.scalar, DOCS_ASSETS.init, ...consoleAssets.keys()].map((p) => join(ASSETS_DIR, p)),
  );
  await removeStray(ASSETS_DIR, wanted);
  const init = `// Written by scripts/build-assets.ts: starts the API reference (Scalar ${version}) on this origin only.
Scalar.createApiReference("#${DOCS_MOUNT_ID}", ${JSON.stringify(SCALAR_CONFIGURATION)});
`;
  const changed = [
    await put(join(ASSETS_DIR, DOCS_ASSETS.scalar), code),
    await put(join(ASSETS_DIR, DOCS_ASSETS.init), init),
    ...(await Promise.all([...consoleAssets].map(([asset, content]) => put(join(ASSETS_DIR, asset), content)))),
  ].some(Boolean);
  log(`assets: ${changed ? "built" : "up to date"} (${ASSETS_DIR}, Scalar ${version})`);
  return { version };
}

async function removeStray(dir: string, keep: Set<string>): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await removeStray(p, keep);
    else if (!keep.has(p)) await rm(p, { force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await buildAssets(console.log);
}
