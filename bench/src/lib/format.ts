/** Display helpers: every figure printed with its unit. */

/** A duration given in ms, printed in ns, µs, ms or s. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return 'n/a'
  if (ms === 0) return '0'
  if (ms < 0.001) return `${(ms * 1e6).toFixed(0)} ns`
  if (ms < 1) return `${(ms * 1e3).toFixed(ms < 0.01 ? 2 : 1)} µs`
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`
  return `${(ms / 1000).toFixed(1)} s`
}

/** Operations per second with a thousands separator. */
export function rate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return 'n/a'
  if (perSecond >= 100) return Math.round(perSecond).toLocaleString('en-US')
  return perSecond.toFixed(1)
}

export function count(value: number): string {
  return Math.round(value).toLocaleString('en-US')
}

export function bytes(value: number): string {
  if (!Number.isFinite(value)) return 'n/a'
  if (Math.abs(value) < 10_000) return `${Math.round(value)} B`
  if (Math.abs(value) < 10_000_000) return `${(value / 1024).toFixed(1)} KiB`
  return `${(value / 1024 / 1024).toFixed(1)} MiB`
}

export function times(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : 'n/a'
}

export function percent(value: number): string {
  return Number.isFinite(value) ? `${(value * 100).toFixed(1)}%` : 'n/a'
}
