/**
 * Cloudflare Queue producers as the services use them, and the one way to hand a list of messages
 * to one: chunked under the per-call limits of `sendBatch`.
 */

/** A Cloudflare Queue producer, as far as the services use it (typed structurally, so fakes fit). */
export interface QueueProducer<T = unknown> {
  send(body: T, options?: { contentType?: "json" | "text"; delaySeconds?: number }): Promise<unknown>;
  sendBatch(messages: Iterable<{ body: T; contentType?: "json" | "text"; delaySeconds?: number }>): Promise<unknown>;
}

// Cloudflare Queues accept at most 100 messages and 256 KB per sendBatch.
const QUEUE_BATCH = 100;
const QUEUE_BATCH_BYTES = 250_000;

const encoder = new TextEncoder();

/** UTF-8 size of a text: the limits are in bytes (a regex test is far cheaper than encoding ASCII). */
export const utf8Length = (s: string): number => (/[\u0080-\uffff]/.test(s) ? encoder.encode(s).length : s.length);

/** Splits messages into sendBatch-sized chunks by count and serialized size. */
export function chunkForQueue<T>(items: readonly T[], size: (t: T) => number = (t) => JSON.stringify(t).length): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const b = size(item);
    if (current.length > 0 && (current.length === QUEUE_BATCH || bytes + b > QUEUE_BATCH_BYTES)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += b;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/** Sends JSON texts as text messages, in parallel sendBatch calls within the limits. */
export async function sendTexts(queue: QueueProducer, bodies: readonly string[]): Promise<void> {
  await Promise.all(
    chunkForQueue(bodies, utf8Length).map((chunk) =>
      queue.sendBatch(chunk.map((body) => ({ body, contentType: "text" as const }))),
    ),
  );
}
