import { readFile, writeFile } from "node:fs/promises";

/** Reads `.dev.vars` (KEY=value lines) if it exists. */
export async function readDevVars(path = ".dev.vars"): Promise<Record<string, string>> {
  const text = await readFile(path, "utf8").catch(() => "");
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Z0-9_]+)\s*=\s*(.*)\s*$/.exec(line);
    if (m) out[m[1]!] = m[2]!.replace(/^"(.*)"$/, "$1");
  }
  return out;
}

/** Writes `.dev.vars` for `wrangler dev`. */
export async function writeDevVars(vars: Record<string, string>, path = ".dev.vars"): Promise<void> {
  const body = Object.entries(vars)
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
  await writeFile(path, `# Written by npm run dev from the running local stack; do not commit.\n${body}\n`);
}
