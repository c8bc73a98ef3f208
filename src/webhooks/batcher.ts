/**
 * Group commit: callers submit items one by one; the batcher runs them in batches, one batch at a
 * time, each with everything that queued up while the previous one ran (no timer, so a lone item
 * goes at once). The writer objects batch fan-out and attempt results across callers with it.
 */

/** A running batcher. */
export interface Batcher<I, O> {
  /** Queues `item`; resolves with its result once its batch ran, rejects if the batch failed. */
  submit(item: I): Promise<O>;
  /** Items waiting or running. */
  readonly pending: number;
}

/**
 * @param run - processes one batch; returns one result per item, in order (throwing fails the batch)
 * @param maxBatch - most items per batch
 */
export function createBatcher<I, O>(run: (items: I[]) => Promise<O[]>, maxBatch = 500): Batcher<I, O> {
  const queue: { item: I; resolve: (o: O) => void; reject: (e: unknown) => void }[] = [];
  let running = false;
  let inBatch = 0;
  const loop = async () => {
    await null; // let the submitters of this tick join the first batch
    while (queue.length > 0) {
      const batch = queue.splice(0, maxBatch);
      inBatch = batch.length;
      try {
        const out = await run(batch.map((b) => b.item));
        for (const [i, b] of batch.entries()) b.resolve(out[i] as O);
      } catch (err) {
        for (const b of batch) b.reject(err);
      }
      inBatch = 0;
    }
    // Cleared in the same turn as the empty check: a later submit always starts a new loop.
    running = false;
  };
  return {
    submit(item) {
      const p = new Promise<O>((resolve, reject) => queue.push({ item, resolve, reject }));
      if (!running) {
        running = true;
        void loop();
      }
      return p;
    },
    get pending() {
      return queue.length + inBatch;
    },
  };
}
