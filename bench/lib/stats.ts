/**
 * Small statistics helpers for the benchmarks: percentiles (nearest rank),
 * best-of and spread over repeated measurements.
 */

/** Nearest-rank percentile of `values` (p in 0..100); NaN for an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** p50, p99, max and count of a latency sample, in the sample's unit. */
export function summarize(values: readonly number[]): { n: number; p50: number; p99: number; max: number; mean: number } {
  const n = values.length;
  let sum = 0;
  let max = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    sum += v;
    if (v > max) max = v;
  }
  return { n, p50: percentile(values, 50), p99: percentile(values, 99), max: n ? max : Number.NaN, mean: n ? sum / n : Number.NaN };
}

/** Best (by `better`) and spread (min..max) of repeated measurements of one figure. */
export function bestAndSpread(values: readonly number[], better: "higher" | "lower"): { best: number; min: number; max: number } {
  const min = Math.min(...values);
  const max = Math.max(...values);
  return { best: better === "higher" ? max : min, min, max };
}

/** Wall-clock time in ms with sub-ms resolution, comparable across processes on one machine. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Rounds for display. */
export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
