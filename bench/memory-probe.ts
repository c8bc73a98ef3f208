import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { descendants, numArg, parseBenchArgs, wranglerDevCommand } from "./harness.ts";
import { Inspector } from "./inspector.ts";
import { percentile, round } from "./lib.ts";

/**
 * `node bench/memory-probe.ts --runtime wrangler|miniflare|workerd [--minutes 5] [--rate 35]
 * [--log] [--out name]`: where does `workerd` memory grow under a steady request rate?
 *
 * A trivial Worker (`fetch` answers "ok"; `--log`: one `console.log` per request, like the
 * project's request logger) runs under one runtime, and this process offers `--rate` GET requests
 * a second, open loop, for `--minutes`. Before the load and after every minute it records, for
 * every `workerd` process of the run, `VmRSS`, `RssAnon`, `RssFile` and open descriptors from
 * `/proc/<pid>/status`, labelled with its role:
 *
 *  - `wrangler`: `wrangler dev` in a scratch project (as `npm run chaos` starts the Worker). It
 *    runs two workerd processes: `proxy` (wrangler's ProxyWorker, on the public port, and its
 *    InspectorProxyWorker) and `worker` (the user Worker's Miniflare instance);
 *  - `miniflare`: `new Miniflare({ modules: true, script })` in this process — one workerd;
 *  - `workerd`: `workerd serve` with a one-worker, one-socket capnp config — no Node at all.
 *
 * The result goes to `bench/results/memory-probe-<runtime>[-log].json` (`--out` renames it).
 * Light on CPU (one Worker, ~35 req/s), but wrap runs over a minute in `flock /work/.bench.lock`.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = parseBenchArgs(process.argv.slice(2));
const runtime = String(args.runtime ?? "workerd");
if (!["wrangler", "miniflare", "workerd"].includes(runtime))
  throw new Error(`--runtime: wrangler, miniflare or workerd, got ${runtime}`);
const minutes = numArg(args, "minutes", 5);
const rate = numArg(args, "rate", 35);
const withLog = args.log === true;
const sampleMs = numArg(args, "sample-s", 60) * 1000;
// `--inspect` (workerd, miniflare): the isolate's V8 heap (used, committed) at each sample, as it is;
// `--gc`: then a full GC, the live heap and workerd's RSS again (tells uncollected garbage from native).
const gc = args.gc === true;
const inspect = args.inspect === true || gc;
if (inspect && runtime === "wrangler") throw new Error("--inspect/--gc: workerd or miniflare only");
const COMPAT_DATE = "2026-11-01";
const t0 = Date.now();
const log = (m: string) => process.stderr.write(`[memory-probe ${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const script = withLog
  ? `let n = 0;
export default { fetch(req) { console.log(JSON.stringify({ level: "info", msg: "request", n: n++, path: new URL(req.url).pathname, t: new Date().toISOString() })); return new Response("ok"); } };`
  : `export default { fetch() { return new Response("ok"); } };`;

// ─────────────────────────── /proc ───────────────────────────

const read = (file: string) => {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return "";
  }
};

interface ProcMem {
  pid: number;
  role: string;
  rss_mb: number;
  rss_anon_mb: number;
  rss_file_mb: number;
  fds: number;
}

function procMem(pid: number, role: string): ProcMem {
  const status = read(`/proc/${pid}/status`);
  const mb = (field: string) => {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
    return m ? round(Number(m[1]) / 1024, 1) : 0;
  };
  let fds = 0;
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {}
  return { pid, role, rss_mb: mb("VmRSS"), rss_anon_mb: mb("RssAnon"), rss_file_mb: mb("RssFile"), fds };
}

/** The run's workerd processes (descendants of `root` named workerd), with their role. */
function workerds(root: number, port: number): ProcMem[] {
  return descendants(root)
    .filter((p) => read(`/proc/${p}/comm`).trim() === "workerd")
    .map((p) => {
      const cmd = read(`/proc/${p}/cmdline`).split("\0").join(" ");
      // Under wrangler dev the workerd that owns the public port is the ProxyWorker's.
      const role = runtime !== "wrangler" ? "worker" : cmd.includes(`entry=127.0.0.1:${port} `) ? "proxy" : "worker";
      return procMem(p, role);
    });
}

// ─────────────────────────── the runtimes ───────────────────────────

interface HeapUsage {
  usedSize: number;
  totalSize: number;
  embedderHeapUsedSize?: number;
}

interface Running {
  url: string;
  inspectorPort?: number;
  /** The process whose descendants are the run's workerd processes. */
  root: number;
  stop: () => Promise<void>;
}

async function waitUp(url: string, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const ok = await fetch(url, { signal: AbortSignal.timeout(2000) })
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) return;
    if (child && child.exitCode !== null) break;
    await sleep(300);
  }
  throw new Error(`${runtime} did not answer on ${url}`);
}

function killGroup(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (!child.pid || child.exitCode !== null) return resolve();
    child.once("exit", () => resolve());
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {}
    setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {}
    }, 5000).unref();
  });
}

async function start(dir: string, port: number): Promise<Running> {
  const url = `http://127.0.0.1:${port}`;
  fs.writeFileSync(path.join(dir, "index.js"), script);
  const logFile = fs.openSync(path.join(dir, "runtime.log"), "a");
  if (runtime === "wrangler") {
    fs.writeFileSync(
      path.join(dir, "wrangler.toml"),
      `name = "memory-probe"\nmain = "index.js"\ncompatibility_date = "${COMPAT_DATE}"\n`,
    );
    // As bench/chaos.ts starts it (its own process group, warn level, no interactive session).
    const wrangler = wranglerDevCommand(port);
    const child = spawn(process.execPath, wrangler.argv, {
      cwd: dir,
      detached: true,
      stdio: ["ignore", logFile, logFile],
      env: wrangler.env,
    });
    await waitUp(url, child);
    return { url, root: child.pid!, stop: () => killGroup(child) };
  }
  if (runtime === "miniflare") {
    // Miniflare 5 takes `workers: [...]`; the v4 adapter keeps the classic one-script form.
    const { Miniflare, convertV4MiniflareOptions } = await import("miniflare");
    const mf = new Miniflare(
      convertV4MiniflareOptions({
        modules: true,
        script,
        compatibilityDate: COMPAT_DATE,
        host: "127.0.0.1",
        port,
        ...(inspect ? { inspectorPort: port + 1 } : {}),
      }),
    );
    await mf.ready;
    await waitUp(url);
    return { url, root: process.pid, stop: () => mf.dispose(), inspectorPort: inspect ? port + 1 : undefined };
  }
  fs.writeFileSync(
    path.join(dir, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .worker) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const worker :Workerd.Worker = (
  modules = [ (name = "index.js", esModule = embed "index.js") ],
  compatibilityDate = "${COMPAT_DATE}",
);
`,
  );
  const bin = path.join(ROOT, "node_modules", "@cloudflare", "workerd-linux-64", "bin", "workerd");
  const inspectorArgs = inspect ? [`--inspector-addr=127.0.0.1:${port + 1}`] : [];
  const child = spawn(bin, ["serve", path.join(dir, "config.capnp"), ...inspectorArgs], {
    cwd: dir,
    detached: true,
    stdio: ["ignore", logFile, logFile],
  });
  await waitUp(url, child);
  return { url, root: process.pid, stop: () => killGroup(child), inspectorPort: inspect ? port + 1 : undefined };
}

// ─────────────────────────── the run ───────────────────────────

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `memory-probe-${runtime}-`));
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  log(`${runtime}${withLog ? " (console.log per request)" : ""}: ${minutes} min at ${rate} req/s, scratch ${dir}`);
  const rt = await start(dir, port);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await rt.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void stop().finally(() => process.exit(130)));

  interface Heap {
    used_mb: number;
    committed_mb: number;
    /** workerd's C++ objects on V8's cppgc heap (request, response, headers wrappers…). */
    embedder_mb: number;
    live_after_gc_mb?: number;
    embedder_after_gc_mb?: number;
    committed_after_gc_mb?: number;
    workerd_after_gc?: ProcMem[];
  }
  const samples: {
    minute: number;
    n: number;
    errors: number;
    p50: number;
    p99: number;
    workerd: ProcMem[];
    heap?: Heap;
  }[] = [];
  const inspector = rt.inspectorPort ? await Inspector.connect(rt.inspectorPort) : undefined;
  const mb = (b: number) => round(b / 2 ** 20, 1);
  let lat: number[] = [];
  let errors = 0;
  const sample = async (minute: number) => {
    const s = {
      minute,
      n: lat.length,
      errors,
      p50: round(percentile(lat, 50), 2),
      p99: round(percentile(lat, 99), 2),
      workerd: workerds(rt.root, port),
      heap: undefined as Heap | undefined,
    };
    lat = [];
    errors = 0;
    if (inspector) {
      const h = await inspector.send<HeapUsage>("Runtime.getHeapUsage");
      s.heap = { used_mb: mb(h.usedSize), committed_mb: mb(h.totalSize), embedder_mb: mb(h.embedderHeapUsedSize ?? 0) };
      if (gc) {
        // workerd runs the GC task the next time the isolate has work: nudge it when idle.
        const done = inspector.send("HeapProfiler.collectGarbage");
        let collected = false;
        void done.finally(() => {
          collected = true;
        });
        for (let k = 0; k < 50 && !collected; k++) {
          await sleep(200);
          if (!collected)
            await fetch(rt.url, { signal: AbortSignal.timeout(2000) }).then(
              (r) => r.text(),
              () => "",
            );
        }
        await done;
        const g = await inspector.send<HeapUsage>("Runtime.getHeapUsage");
        Object.assign(s.heap, {
          live_after_gc_mb: mb(g.usedSize),
          embedder_after_gc_mb: mb(g.embedderHeapUsedSize ?? 0),
          committed_after_gc_mb: mb(g.totalSize),
          workerd_after_gc: workerds(rt.root, port),
        });
      }
    }
    samples.push(s);
    log(
      `minute ${minute}: ${s.n} ok, ${s.errors} errors; ${s.workerd.map((w) => `${w.role} ${w.rss_mb} MB (anon ${w.rss_anon_mb})`).join(", ")}${s.heap ? `; heap ${JSON.stringify({ ...s.heap, workerd_after_gc: s.heap.workerd_after_gc?.map((w) => w.rss_anon_mb) })}` : ""}`,
    );
  };
  try {
    await sleep(5000); // let startup settle
    await sample(0);
    const start = Date.now();
    const inflight = new Set<Promise<unknown>>();
    let i = 0;
    let next = 1;
    while (Date.now() - start < minutes * 60_000) {
      const due = Math.floor(((Date.now() - start) / 1000) * rate);
      while (i < due && inflight.size < 64) {
        i++;
        const began = performance.now();
        const p = fetch(`${rt.url}/healthz`, { signal: AbortSignal.timeout(10_000) })
          .then(async (r) => {
            await r.text();
            if (r.ok) lat.push(performance.now() - began);
            else errors++;
          })
          .catch(() => errors++);
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      }
      if (Date.now() - start >= next * sampleMs) await sample(round((next++ * sampleMs) / 60_000, 2));
      await sleep(10);
    }
    await Promise.all(inflight);
    if (lat.length || errors) await sample(minutes);
  } finally {
    inspector?.close();
    await stop();
  }
  const byRole = (role: string) =>
    samples.map((s) => s.workerd.find((w) => w.role === role)).filter((w): w is ProcMem => w !== undefined);
  const roles = [...new Set(samples.flatMap((s) => s.workerd.map((w) => w.role)))];
  const growth = Object.fromEntries(
    roles.map((role) => {
      const xs = byRole(role);
      const [first, second, last] = [xs[0], xs[1], xs.at(-1)];
      const span = samples.at(-1)!.minute - (samples[1]?.minute ?? 0);
      return [
        role,
        {
          rss_mb_series: xs.map((x) => x.rss_mb),
          rss_anon_mb_series: xs.map((x) => x.rss_anon_mb),
          // From the first loaded minute to the last: the trend, not the warm-up.
          anon_mb_per_min_after_minute_1:
            second && last && span > 0 ? round((last.rss_anon_mb - second.rss_anon_mb) / span, 1) : null,
          rss_last_over_idle: first && last && first.rss_mb ? round(last.rss_mb / first.rss_mb, 2) : null,
        },
      ];
    }),
  );
  const name = typeof args.out === "string" ? args.out : `memory-probe-${runtime}${withLog ? "-log" : ""}`;
  const result = {
    runtime,
    worker: withLog ? "trivial, one console.log per request" : "trivial (answers ok)",
    inspector: inspect ? (gc ? "heap read, then a full GC, each sample" : "heap read each sample") : "none",
    minutes,
    offered_req_per_s: rate,
    measured_at: new Date().toISOString(),
    growth,
    samples,
  };
  fs.writeFileSync(path.join(ROOT, "bench", "results", `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  log(`growth: ${JSON.stringify(growth)}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
