/**
 * Measuring loops. Each is bounded by a count and, where it can run long, a
 * time budget. Per-operation timings use `performance.now()` around each
 * call, so they include one timer read (about 30-60 ns here), the same for
 * every series compared.
 */

/** Times `op` once per sample, awaiting each call. */
export async function timeEach(samples: number, op: (i: number) => Promise<unknown>, maxMs = Number.POSITIVE_INFINITY): Promise<number[]> {
  const out: number[] = []
  const stopAt = performance.now() + maxMs
  for (let i = 0; i < samples; i++) {
    const started = performance.now()
    await op(i)
    const ended = performance.now()
    out.push(ended - started)
    if (ended > stopAt) break
  }
  return out
}

/** Times a synchronous `op` once per sample (no `await` in the loop). */
export function timeEachSync(samples: number, op: (i: number) => unknown): number[] {
  const out = new Array<number>(samples)
  let sink: unknown
  for (let i = 0; i < samples; i++) {
    const started = performance.now()
    sink = op(i)
    out[i] = performance.now() - started
  }
  keep(sink)
  return out
}

/** Calls `op` back to back (awaiting each) for at most `maxOps` calls or `maxMs`; returns calls per second. */
export async function throughput(maxOps: number, maxMs: number, op: (i: number) => Promise<unknown>): Promise<number> {
  const started = performance.now()
  const stopAt = started + maxMs
  let done = 0
  while (done < maxOps) {
    await op(done)
    done++
    if ((done & 255) === 0 && performance.now() > stopAt) break
  }
  return (done * 1000) / (performance.now() - started)
}

/** Like {@link throughput} for a synchronous `op`. */
export function throughputSync(maxOps: number, maxMs: number, op: (i: number) => unknown): number {
  const started = performance.now()
  const stopAt = started + maxMs
  let done = 0
  let sink: unknown
  while (done < maxOps) {
    sink = op(done)
    done++
    if ((done & 1023) === 0 && performance.now() > stopAt) break
  }
  keep(sink)
  return (done * 1000) / (performance.now() - started)
}

/**
 * Runs `op` with `concurrency` calls in flight until `maxMs` has passed (or
 * `maxOps` calls were started); returns the latency of each call and the
 * completed calls per second.
 */
export async function underLoad(
  concurrency: number,
  maxOps: number,
  maxMs: number,
  op: (i: number) => Promise<unknown>,
): Promise<{ latencies: number[]; perSecond: number; elapsedMs: number }> {
  const latencies: number[] = []
  const started = performance.now()
  const stopAt = started + maxMs
  let next = 0
  const lane = async () => {
    while (next < maxOps && performance.now() < stopAt) {
      const i = next++
      const t = performance.now()
      await op(i)
      latencies.push(performance.now() - t)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane))
  const elapsedMs = performance.now() - started
  return { latencies, perSecond: (latencies.length * 1000) / elapsedMs, elapsedMs }
}

/** The last value kept: read by nobody, but the JIT cannot know that. */
export let kept: unknown
/** Keeps a value alive so the JIT cannot drop the work that made it. */
export function keep(value: unknown): void {
  kept = value
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Epoch ms with sub-ms precision, comparable across processes on one machine. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now()
}
