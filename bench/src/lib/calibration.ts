/**
 * The HTTP section's calibration middleware: it burns this much CPU per
 * request and does nothing else, about what apiKeyAuth costs per call in
 * process. What it does to req/s shows what any middleware of that cost does
 * on the machine at hand.
 */
export const SPIN_US = 5

export function spin(): Promise<void> {
  const until = performance.now() + SPIN_US / 1000
  while (performance.now() < until) {
    // burn CPU, as a middleware that works for SPIN_US would
  }
  return Promise.resolve()
}
