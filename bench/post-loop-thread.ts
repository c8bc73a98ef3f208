import { parentPort, workerData } from "node:worker_threads";
import type { PostLoopOptions } from "./lib.ts";
import { postLoop } from "./lib.ts";

/** Worker-thread body of `postLoopInThread` (bench/harness.ts): runs one {@link postLoop} and posts the result. */
parentPort!.postMessage(await postLoop(workerData as PostLoopOptions));
