/**
 * Operations started and not yet settled, so that `close()` can let them land
 * before it releases the store: a `revoke()` that began before `close()` must
 * reach the store (and the admin history), not fail on a closed connection.
 */
export class InFlight {
  readonly #pending = new Set<Promise<unknown>>()

  get size(): number {
    return this.#pending.size
  }

  /** Returns `promise`, remembered until it settles. */
  track<T>(promise: Promise<T>): Promise<T> {
    this.#pending.add(promise)
    const forget = () => {
      this.#pending.delete(promise)
    }
    promise.then(forget, forget)
    return promise
  }

  /**
   * Wraps the named methods of `target` so each call is tracked. Done on the
   * instance (own properties shadow the prototype's), so the methods' bodies
   * stay as they are.
   */
  trackMethods<T extends object>(target: T, names: readonly (keyof T & string)[]): void {
    for (const name of names) {
      const original = target[name]
      if (typeof original !== 'function') continue
      const tracked = (...args: unknown[]): unknown => {
        const result: unknown = (original as (...a: unknown[]) => unknown).apply(target, args)
        return result instanceof Promise ? this.track(result) : result
      }
      Object.defineProperty(target, name, { value: tracked, writable: true, configurable: true, enumerable: false })
    }
  }

  /**
   * Waits until everything tracked has settled (also what starts meanwhile),
   * or `timeoutMs` passed. Resolves to the number still pending (0: drained).
   */
  async drain(timeoutMs: number): Promise<number> {
    if (this.#pending.size === 0 || timeoutMs <= 0) return this.#pending.size
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs)
    })
    try {
      while (this.#pending.size > 0) {
        const all = Promise.allSettled([...this.#pending])
        if ((await Promise.race([all, timedOut])) === 'timeout') break
      }
    } finally {
      clearTimeout(timer)
    }
    return this.#pending.size
  }
}
