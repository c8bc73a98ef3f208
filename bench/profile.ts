import { Inspector } from "./inspector.ts";

/**
 * A CPU profile of the Worker's JavaScript thread during a benchmark, summarised: run a benchmark
 * with `BENCH_INSPECTOR=<port>`, then
 *
 *   node bench/profile.ts --port <port> [--seconds 10] [--top 40] [--callers exec ...]
 *
 * samples for that long and prints the functions by self time and by inclusive time (each a share
 * of the samples), plus the idle, GC and program shares — where the one thread's time goes.
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/** Self and inclusive sample counts per function (name + file:line), from a CDP profile. */
export function summarise(p: Profile): { total: number; self: Map<string, number>; inclusive: Map<string, number> } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n: ProfileNode) => {
    const file = n.callFrame.url.split("/").slice(-2).join("/");
    return `${n.callFrame.functionName || "(anonymous)"} ${file}:${n.callFrame.lineNumber + 1}`;
  };
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const s of p.samples) {
    const n = byId.get(s);
    if (!n) continue;
    self.set(label(n), (self.get(label(n)) ?? 0) + 1);
    const seen = new Set<string>();
    for (let id: number | undefined = s; id !== undefined; id = parent.get(id)) {
      const l = label(byId.get(id)!);
      if (seen.has(l)) continue; // recursion counts once
      seen.add(l);
      inclusive.set(l, (inclusive.get(l) ?? 0) + 1);
    }
  }
  return { total: p.samples.length, self, inclusive };
}

/** Who calls a native function (by name), two frames up: where the time of, say, SQLite's `exec` comes from. */
export function callers(p: Profile, name: string): Map<string, number> {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const where = (n: ProfileNode | undefined) =>
    n ? `${n.callFrame.functionName || "(anonymous)"}:${n.callFrame.lineNumber + 1}` : "-";
  const out = new Map<string, number>();
  for (const s of p.samples) {
    if (byId.get(s)?.callFrame.functionName !== name) continue;
    const up1 = parent.get(s);
    const up2 = up1 === undefined ? undefined : parent.get(up1);
    const key = `${where(up1 === undefined ? undefined : byId.get(up1))} < ${where(up2 === undefined ? undefined : byId.get(up2))}`;
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}

async function main(): Promise<void> {
  const port = arg("port", 9229);
  const seconds = arg("seconds", 10);
  const top = arg("top", 40);
  const callersOf = process.argv.flatMap((a, i) => (a === "--callers" ? [process.argv[i + 1] ?? ""] : []));
  const ins = await Inspector.connect(port);
  await ins.send("Profiler.enable");
  await ins.send("Profiler.setSamplingInterval", { interval: 200 });
  await ins.send("Profiler.start");
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const { profile } = await ins.send<{ profile: Profile }>("Profiler.stop");
  ins.close();
  const { total, self, inclusive } = summarise(profile);
  const show = (title: string, m: Map<string, number>) => {
    console.log(`\n${title} (of ${total} samples)`);
    for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${((100 * v) / total).toFixed(1).padStart(6)} %  ${k}`);
    }
  };
  show("self", self);
  show("inclusive", inclusive);
  for (const name of callersOf) show(`callers of ${name}`, callers(profile, name));
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
