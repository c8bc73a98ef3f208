import { parentPort, workerData } from "node:worker_threads";
import { startWsProxy } from "./ws-proxy.ts";

/**
 * Worker-thread body of `startWsProxyInThread`: runs the proxy on its own event loop (so a busy
 * main thread — a benchmark's receiver and load generator — does not delay Postgres traffic, as it
 * would not in production), posts its port, closes on "close".
 */
const proxy = await startWsProxy(workerData as { port?: number });
parentPort!.postMessage({ port: proxy.port, address: proxy.address });
parentPort!.on("message", async (m: unknown) => {
  if (m === "close") {
    await proxy.close().catch(() => undefined);
    parentPort!.postMessage("closed");
  }
});
