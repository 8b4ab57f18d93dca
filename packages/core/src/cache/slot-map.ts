/**
 * A bounded map from string keys to small integer slots, for caches that
 * keep their values in parallel arrays (one typed array per number field)
 * rather than in an object per entry: an entry then costs its `Map` entry
 * and a few array cells, not an object header, a boxed number per time
 * field and a node in a linked list. The verification cache and the
 * in-process quota counters keep one entry per key, so these bytes are
 * multiplied by every key a replica serves.
 *
 * Eviction is CLOCK (second chance), the usual approximation of LRU: a hit
 * sets one byte instead of moving a node, and when the map is full the hand
 * sweeps the slots, sparing each recently used one once. Slots are handed
 * out from a free list first, then by growing the arrays (doubling, up to
 * `max`), then by evicting.
 */
export interface SlotMapOptions {
  /** Most keys held. */
  max: number
  /** Called before a slot is given to another key: the owner clears its arrays at `slot`. */
  evict: (slot: number) => void
  /** Called when the slot arrays grow: the owner grows its own typed arrays to `capacity`. */
  grow: (capacity: number) => void
}

const INITIAL_CAPACITY = 256

export class SlotMap {
  readonly #slots = new Map<string, number>()
  readonly #max: number
  readonly #evict: (slot: number) => void
  readonly #grow: (capacity: number) => void
  /** The key in each slot (`undefined` when free). */
  #keys: Array<string | undefined> = []
  #used: Uint8Array
  #free: number[] = []
  #capacity: number
  #hand = 0

  constructor(options: SlotMapOptions) {
    this.#max = Math.max(1, options.max)
    this.#evict = options.evict
    this.#grow = options.grow
    this.#capacity = Math.min(this.#max, INITIAL_CAPACITY)
    this.#used = new Uint8Array(this.#capacity)
    options.grow(this.#capacity)
  }

  get size(): number {
    return this.#slots.size
  }

  /** The slot of `key`, or -1; marks it recently used. */
  get(key: string): number {
    const slot = this.#slots.get(key)
    if (slot === undefined) return -1
    this.#used[slot] = 1
    return slot
  }

  /** The key held in `slot` (the string it was claimed with, not the one it was looked up by). */
  keyAt(slot: number): string | undefined {
    return this.#keys[slot]
  }

  /** The slot of `key`, or -1, without marking it used. */
  peek(key: string): number {
    return this.#slots.get(key) ?? -1
  }

  /** The slot of `key`, taking one (free, grown or evicted) if it has none. */
  claim(key: string): number {
    const held = this.#slots.get(key)
    if (held !== undefined) return held
    const slot = this.#take()
    this.#keys[slot] = key
    this.#used[slot] = 0
    this.#slots.set(key, slot)
    return slot
  }

  /** Frees the slot of `key` (the owner has cleared it). */
  delete(key: string): void {
    const slot = this.#slots.get(key)
    if (slot === undefined) return
    this.#slots.delete(key)
    this.#keys[slot] = undefined
    this.#free.push(slot)
  }

  /** Every held key with its slot. */
  *entries(): IterableIterator<[string, number]> {
    yield* this.#slots
  }

  clear(): void {
    this.#slots.clear()
    this.#keys = []
    this.#free = []
    this.#hand = 0
    this.#capacity = Math.min(this.#max, INITIAL_CAPACITY)
    this.#used = new Uint8Array(this.#capacity)
    this.#grow(this.#capacity)
  }

  #take(): number {
    const free = this.#free.pop()
    if (free !== undefined) return free
    const next = this.#slots.size
    if (next < this.#capacity) return next
    if (this.#capacity < this.#max) {
      this.#capacity = Math.min(this.#max, this.#capacity * 2)
      const used = new Uint8Array(this.#capacity)
      used.set(this.#used)
      this.#used = used
      this.#grow(this.#capacity)
      return next
    }
    // Full: the hand passes recently used slots once (clearing their mark) and takes the first that was not.
    for (;;) {
      const slot = this.#hand
      this.#hand = slot + 1 === this.#capacity ? 0 : slot + 1
      if (this.#used[slot] === 1) {
        this.#used[slot] = 0
        continue
      }
      const key = this.#keys[slot] as string
      this.#evict(slot)
      this.#slots.delete(key)
      return slot
    }
  }
}

/** A copy of `array` with room for `capacity` numbers (typed arrays do not grow). */
export function grown<T extends Float64Array | Uint8Array>(array: T, capacity: number): T {
  if (array.length >= capacity) return array
  const next = new (array.constructor as new (length: number) => T)(capacity)
  next.set(array)
  return next
}
