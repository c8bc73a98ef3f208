import * as fs from "node:fs";
import WebSocket from "ws";

/**
 * A minimal Chrome DevTools Protocol client for the Worker's isolate behind `wrangler dev
 * --inspector-port`: the soak's `--heap` asks it for the JavaScript heap after a full GC, which
 * tells a leak in our code (live heap growing) from memory workerd holds outside it (RSS growing,
 * live heap flat), and can write a heap snapshot to compare two minutes of a run.
 */
export class Inspector {
  private readonly ws: WebSocket;
  private next = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private chunks: string[] = [];

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("message", (data) => {
      const msg = JSON.parse(String(data)) as {
        id?: number;
        method?: string;
        params?: { chunk?: string };
        result?: unknown;
        error?: { message: string };
      };
      if (msg.method === "HeapProfiler.addHeapSnapshotChunk") this.chunks.push(msg.params?.chunk ?? "");
      if (msg.id === undefined) return;
      const w = this.waiting.get(msg.id);
      this.waiting.delete(msg.id);
      if (msg.error) w?.reject(new Error(msg.error.message));
      else w?.resolve(msg.result);
    });
  }

  /**
   * Connects to target `id` of the inspector at `port`, or to the first it lists (behind
   * wrangler's inspector proxy, the Worker's isolate; workerd's own inspector lists every
   * isolate of the process, Miniflare's included: name the Worker's, `core:user:<name>`).
   */
  static async connect(port: number, id?: string): Promise<Inspector> {
    const targets = (await (await fetch(`http://127.0.0.1:${port}/json`)).json()) as {
      id?: string;
      webSocketDebuggerUrl: string;
    }[];
    const url = (id === undefined ? targets[0] : targets.find((t) => t.id === id))?.webSocketDebuggerUrl;
    if (!url) throw new Error(`no inspector target ${id ?? ""} on port ${port}`);
    // wrangler's inspector proxy admits DevTools origins and localhost only.
    const ws = new WebSocket(url, { origin: "http://127.0.0.1", maxPayload: 2 ** 30 });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", (err) => reject(new Error(`inspector ${url} refused: ${err.message}`)));
    });
    return new Inspector(ws);
  }

  /** The ids of the targets the inspector at `port` lists (under Miniflare, one per isolate). */
  static async targets(port: number): Promise<string[]> {
    const list = (await (await fetch(`http://127.0.0.1:${port}/json`)).json()) as { id?: string }[];
    return list.flatMap((t) => (t.id ? [t.id] : []));
  }

  /** Sends one CDP command and waits for its answer. */
  send<T = unknown>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.next++;
    const answer = new Promise<T>((resolve, reject) =>
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject }),
    );
    this.ws.send(JSON.stringify({ id, method, params }));
    return answer;
  }

  /**
   * The heap as it is, no GC: `usedSize` (live and garbage), `totalSize` (committed) and
   * `embedderHeapUsedSize` (workerd's C++ objects on V8's cppgc heap, collected by full GCs only).
   */
  heapUsage(): Promise<{ usedSize: number; totalSize: number; embedderHeapUsedSize?: number }> {
    return this.send("Runtime.getHeapUsage");
  }

  /** Runs a full garbage collection of the isolate (workerd's C++ objects on cppgc included). */
  async collectGarbage(): Promise<void> {
    await this.send("HeapProfiler.collectGarbage");
  }

  /** Live JavaScript heap in bytes, measured after a full garbage collection. */
  async liveHeapBytes(): Promise<number> {
    await this.collectGarbage();
    return (await this.send<{ usedSize: number }>("Runtime.getHeapUsage")).usedSize;
  }

  /** Writes a heap snapshot (`.heapsnapshot`, readable by DevTools) to `file`. */
  async snapshot(file: string): Promise<void> {
    this.chunks = [];
    await this.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    fs.writeFileSync(file, this.chunks.join(""));
    this.chunks = [];
  }

  /** Closes the connection. */
  close(): void {
    this.ws.close();
  }
}
