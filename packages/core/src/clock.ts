/** Source of time, in epoch milliseconds. Inject a fake one in tests. */
export interface Clock {
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

/**
 * A clock that moves only when told to: for tests of grace periods and
 * expiry to the millisecond, without sleeping.
 */
export class ManualClock implements Clock {
  #now: number
  constructor(start = Date.UTC(2030, 0, 1)) {
    this.#now = start
  }
  now(): number {
    return this.#now
  }
  advance(ms: number): number {
    this.#now += ms
    return this.#now
  }
  set(epochMs: number): void {
    this.#now = epochMs
  }
}
