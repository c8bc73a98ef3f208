/**
 * Per-endpoint rate limit as a sliding window: at most `rate` attempts may start in any 1,000 ms.
 * The window is the start times of the most recent attempts (at most `rate` of them), kept by the
 * endpoint object; work over the limit stays queued and the object's alarm is armed for the moment
 * a slot frees. Pure functions over a plain array.
 */

const WINDOW_MS = 1_000;

/** Start times (epoch ms) still inside the window at `now`, oldest first. */
export function live(starts: readonly number[], now: number): number[] {
  return starts.filter((t) => t > now - WINDOW_MS);
}

/** How many attempts may start at `now` (Infinity when `rate` is 0: no limit). */
export function slotsFree(starts: readonly number[], now: number, rate: number): number {
  if (rate <= 0) return Number.POSITIVE_INFINITY;
  return Math.max(0, rate - live(starts, now).length);
}

/** When the next slot frees (epoch ms): now if one is free, else when the oldest start leaves the window. */
export function nextSlotAt(starts: readonly number[], now: number, rate: number): number {
  if (slotsFree(starts, now, rate) > 0) return now;
  const inWindow = live(starts, now);
  // The (rate)-th most recent start must leave the window before another may start.
  return inWindow[inWindow.length - rate]! + WINDOW_MS;
}

/** The window after an attempt started at `now` (trimmed to what can still matter). */
export function recordStart(starts: readonly number[], now: number, rate: number): number[] {
  if (rate <= 0) return [];
  return [...live(starts, now), now].slice(-rate);
}
