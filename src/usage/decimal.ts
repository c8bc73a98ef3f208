/**
 * Decimal arithmetic on quantities carried as JavaScript numbers. A quantity arrives as a JSON
 * number, so what its sender wrote is the shortest decimal that reads back as that double
 * (`String(0.1)` is "0.1"). These functions add, subtract and multiply those decimals exactly and
 * round once, to the nearest double: the result is the exact decimal whenever that has at most 15
 * significant digits (every such decimal survives a double), and the closest double otherwise —
 * never the drift of binary fractions (0.1 + 0.2 = 0.30000000000000004; ten times 0.1 summed =
 * 0.9999999999999999). Postgres keeps the same quantities as `numeric`, exact at any size.
 */

/** `m × 10^-e`: a decimal as an integer and a power of ten. */
interface Decimal {
  m: bigint;
  e: number;
}

function toDecimal(n: number): Decimal {
  if (!Number.isFinite(n)) throw new RangeError(`not a finite quantity: ${n}`);
  const [mantissa = "0", exponent = "0"] = String(n).split("e");
  const negative = mantissa.startsWith("-");
  const [whole = "0", fraction = ""] = (negative ? mantissa.slice(1) : mantissa).split(".");
  const m = BigInt(whole + fraction);
  return { m: negative ? -m : m, e: fraction.length - Number(exponent) };
}

/** The nearest double (ECMAScript's string-to-number conversion rounds correctly). */
const toNumber = (d: Decimal): number => Number(`${d.m}e${-d.e}`);

const scaled = (d: Decimal, e: number): bigint => d.m * 10n ** BigInt(e - d.e);

const exactlyInteger = (n: number) => Number.isSafeInteger(n);

/**
 * The sum of `values`, decimal-exact (see the module's note).
 * @param values - quantities
 */
export function decimalSum(values: Iterable<number>): number {
  let fast = 0;
  let slow: Decimal | undefined;
  for (const v of values) {
    // Integers add exactly as doubles while they stay safe: the common case costs nothing extra.
    if (slow === undefined && exactlyInteger(v) && exactlyInteger(fast + v)) {
      fast += v;
      continue;
    }
    const d = toDecimal(v);
    slow ??= { m: BigInt(fast), e: 0 };
    const e = Math.max(slow.e, d.e);
    slow = { m: scaled(slow, e) + scaled(d, e), e };
  }
  return slow === undefined ? fast : toNumber(slow);
}

/** `a + b`, decimal-exact. */
export function decimalAdd(a: number, b: number): number {
  const s = a + b;
  return exactlyInteger(a) && exactlyInteger(b) && exactlyInteger(s) ? s : decimalSum([a, b]);
}

/** `a − b`, decimal-exact. */
export const decimalSub = (a: number, b: number): number => decimalAdd(a, -b);

/** `a × b`, decimal-exact (0.7 × 0.1 is 0.07, not 0.06999999999999999). */
export function decimalMul(a: number, b: number): number {
  if (exactlyInteger(a) && exactlyInteger(b) && exactlyInteger(a * b)) return a * b;
  const x = toDecimal(a);
  const y = toDecimal(b);
  return toNumber({ m: x.m * y.m, e: x.e + y.e });
}

/**
 * `n` rounded to `places` decimal places, half away from zero, on its decimal (1.005 → 1.01,
 * where `Math.round(1.005 * 100) / 100` gives 1).
 */
export function decimalRound(n: number, places: number): number {
  const d = toDecimal(n);
  if (d.e <= places) return n;
  const unit = 10n ** BigInt(d.e - places);
  const magnitude = d.m < 0n ? -d.m : d.m;
  const rounded = (magnitude + unit / 2n) / unit;
  return toNumber({ m: d.m < 0n ? -rounded : rounded, e: places });
}
