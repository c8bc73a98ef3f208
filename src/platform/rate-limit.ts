import type { Redis } from "./redis.ts";

/** Outcome of a rate-limit check. */
export interface RateDecision {
  allowed: boolean;
  remaining: number;
  /** Seconds until a slot frees up (when not allowed). */
  retryAfterSeconds: number;
}

/**
 * Sliding-window limiter on a Redis sorted set (score = time): trims what left the window, adds
 * this hit, counts — atomically in one MULTI/EXEC — and takes the hit back if it is over the limit.
 */
export async function slidingWindow(
  redis: Redis,
  key: string,
  limit: number,
  windowMs: number,
  now = Date.now(),
  weight = 1,
): Promise<RateDecision> {
  const members = Array.from({ length: weight }, (_, i) => ({
    score: now,
    member: `${now}:${crypto.randomUUID()}:${i}`,
  }));
  const tx = redis.multi();
  tx.zremrangebyscore(key, 0, now - windowMs);
  tx.zadd(key, ...(members as [{ score: number; member: string }]));
  tx.zcard(key);
  tx.zrange(key, 0, 0, { withScores: true });
  tx.pexpire(key, windowMs);
  const [, , count, oldest] = (await tx.exec()) as [unknown, unknown, number, (string | number)[], unknown];
  if (count <= limit) return { allowed: true, remaining: limit - count, retryAfterSeconds: 0 };
  await redis.zrem(key, ...members.map((m) => m.member));
  const oldestAt = Number(oldest?.[1] ?? now);
  return {
    allowed: false,
    remaining: 0,
    retryAfterSeconds: Math.max(1, Math.ceil((oldestAt + windowMs - now) / 1000)),
  };
}
