/** Latency figures of one series of timed operations (all in ms). */
export interface Summary {
  count: number
  mean: number
  p50: number
  p90: number
  p99: number
  min: number
  max: number
}

/** Nearest-rank percentile of an ascending array. */
function rank(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return Number.NaN
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))
  return sorted[index] as number
}

export function summarize(samples: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(samples).sort()
  let total = 0
  for (const value of sorted) total += value
  return {
    count: sorted.length,
    mean: sorted.length === 0 ? Number.NaN : total / sorted.length,
    p50: rank(sorted, 0.5),
    p90: rank(sorted, 0.9),
    p99: rank(sorted, 0.99),
    min: sorted.length === 0 ? Number.NaN : (sorted[0] as number),
    max: sorted.length === 0 ? Number.NaN : (sorted[sorted.length - 1] as number),
  }
}

/**
 * The middle value; for an even count, the mean of the two middle ones. The
 * nearest-rank p50 of `summarize` takes the lower one, which for 4 rounds
 * reports the second-lowest of them, leaning one way for every figure.
 * (Latency series keep `summarize`'s p50, a value that was measured.)
 */
export function median(values: readonly number[]): number {
  const sorted = Float64Array.from(values).sort()
  if (sorted.length === 0) return Number.NaN
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

/** `a / b`, rounded for display and JSON. */
export function ratio(a: number, b: number, digits = 2): number {
  return round(a / b, digits)
}

export function round(value: number, digits = 3): number {
  if (!Number.isFinite(value)) return value
  const factor = 10 ** digits
  return Math.round(value * factor) / factor
}

/** Rounds every number of a summary for the JSON report (µs precision for ms values). */
export function roundSummary(summary: Summary, digits = 4): Summary {
  return {
    count: summary.count,
    mean: round(summary.mean, digits),
    p50: round(summary.p50, digits),
    p90: round(summary.p90, digits),
    p99: round(summary.p99, digits),
    min: round(summary.min, digits),
    max: round(summary.max, digits),
  }
}
