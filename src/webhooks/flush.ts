import type { ResultBuffer } from "./queue.ts";

/**
 * Moves an endpoint object's buffered attempt results to Postgres in batches. A result leaves the
 * buffer only after the sink (the writer object, or Postgres itself) has committed it, so a crash
 * or a failed flush sends it again — the sink is idempotent on (delivery, attempt number). One
 * flush at a time; results settled while it runs go in the next batch of the same flush.
 */
export class Flusher<T> {
  private readonly buffer: ResultBuffer<T>;
  private readonly sink: (records: T[]) => Promise<void>;
  private readonly batchSize: number;
  private running: Promise<void> | undefined;
  /** The last flush's error, until a flush succeeds. */
  lastError: unknown;

  /**
   * @param buffer - where settled results wait
   * @param sink - commits a batch to Postgres (idempotently)
   * @param batchSize - most results per sink call
   */
  constructor(buffer: ResultBuffer<T>, sink: (records: T[]) => Promise<void>, batchSize = 500) {
    this.buffer = buffer;
    this.sink = sink;
    this.batchSize = batchSize;
  }

  /** Starts a flush unless one runs (which then takes the new results too); resolves when the buffer is empty. */
  flush(): Promise<void> {
    if (this.running) return this.running;
    let current: Promise<void> | undefined;
    const done = () => {
      if (this.running === current) this.running = undefined;
    };
    current = (async () => {
      await null; // `running` is set before the first batch is taken
      try {
        for (;;) {
          const batch = this.buffer.unflushed(this.batchSize);
          if (batch.length === 0) {
            done(); // same turn as the empty check: a later kick starts a new flush
            this.lastError = undefined;
            return;
          }
          await this.sink(batch.map((b) => b.record));
          this.buffer.markFlushed(batch.map((b) => b.id));
        }
      } catch (err) {
        done();
        this.lastError = err;
        throw err;
      }
    })();
    this.running = current;
    return current;
  }

  /** Starts a flush in the background (errors stay in {@link lastError}). */
  kick(): void {
    this.flush().catch(() => undefined);
  }

  /** Waits for the flush in progress, if any; never throws. */
  async idle(): Promise<void> {
    await this.running?.catch(() => undefined);
  }
}
