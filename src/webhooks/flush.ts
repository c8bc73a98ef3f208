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
  private readonly minIntervalMs: number;
  private running: Promise<void> | undefined;
  // Ends the pause between two batches early (an urgent flush was asked for).
  private wake: (() => void) | undefined;
  /** The last flush's error, until a flush succeeds. */
  lastError: unknown;

  /**
   * @param buffer - where settled results wait
   * @param sink - commits a batch to Postgres (idempotently)
   * @param batchSize - most results per sink call
   * @param minIntervalMs - under continuous load, at least this long between the starts of two
   *   batches, so results accumulate into fewer, larger writes (an urgent flush does not wait)
   */
  constructor(
    buffer: ResultBuffer<T>,
    sink: (records: T[]) => Promise<void>,
    options: { batchSize?: number; minIntervalMs?: number } = {},
  ) {
    this.buffer = buffer;
    this.sink = sink;
    this.batchSize = options.batchSize ?? 500;
    this.minIntervalMs = options.minIntervalMs ?? 0;
  }

  /**
   * Starts a flush unless one runs (which then takes the new results too); resolves when the
   * buffer is empty. `urgent`: no pause between batches (callers about to read Postgres).
   */
  flush(urgent = false): Promise<void> {
    if (urgent) {
      this.urgent = true;
      this.wake?.();
    }
    if (this.running) return this.running;
    let current: Promise<void> | undefined;
    const done = () => {
      if (this.running === current) this.running = undefined;
    };
    let started = 0;
    current = (async () => {
      await null; // `running` is set before the first batch is taken
      try {
        for (let first = true; ; first = false) {
          if (!first && !this.urgent && this.minIntervalMs > 0) await this.pause(started);
          const batch = this.buffer.unflushed(this.batchSize);
          if (batch.length === 0) {
            done(); // same turn as the empty check: a later kick starts a new flush
            this.urgent = false;
            this.lastError = undefined;
            return;
          }
          started = Date.now();
          await this.sink(batch.map((b) => b.record));
          this.buffer.markFlushed(batch.map((b) => b.id));
        }
      } catch (err) {
        done();
        this.urgent = false;
        this.lastError = err;
        throw err;
      }
    })();
    this.running = current;
    return current;
  }

  private urgent = false;

  /** Waits until `minIntervalMs` after `since`, or until an urgent flush is asked for. */
  private pause(since: number): Promise<void> {
    const left = since + this.minIntervalMs - Date.now();
    if (left <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, left);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
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
