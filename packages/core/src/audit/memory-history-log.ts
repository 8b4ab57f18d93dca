import {
  checkHistoryInput,
  GENESIS_HASH,
  HistoryChainCheck,
  historyEntryHash,
  matchesHistoryQuery,
  resolveHistoryQuery,
  type HistoryEntry,
  type HistoryEntryInput,
  type HistoryHead,
  type HistoryLog,
  type HistoryQuery,
  type HistoryVerification,
  unreadableReason,
} from './history.js'

export interface MemoryHistoryLogOptions {
  /**
   * Most entries kept; the oldest are dropped past it (that is not
   * tampering: `verify()` reports them as `trimmed`). Default 100,000.
   * Must be a positive integer.
   */
  maxEntries?: number
}

/** A memory log's whole state: to save it, and to load it again with `MemoryHistoryLog.fromSnapshot()`. */
export interface HistorySnapshot {
  entries: HistoryEntry[]
  head: HistoryHead | null
}

function copy(entry: HistoryEntry): HistoryEntry {
  return { ...entry }
}

/**
 * A `HistoryLog` in this process's memory: for a keyring on `MemoryStore`
 * and for tests. Forgotten at exit unless saved with `snapshot()`.
 *
 * @example
 * const keyring = createKeyring({ history: new MemoryHistoryLog() })
 * await keyring.rotate(keyId)
 * await keyring.history(keyId) // [key.created, key.rotated]
 */
export class MemoryHistoryLog implements HistoryLog {
  readonly maxEntries: number
  readonly #entries: HistoryEntry[] = []
  #head: HistoryHead | null = null

  constructor(options: MemoryHistoryLogOptions = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError('MemoryHistoryLog options must be an object')
    const maxEntries = options.maxEntries ?? 100_000
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new TypeError(`maxEntries must be a positive integer; got ${String(maxEntries)}`)
    this.maxEntries = maxEntries
  }

  /** A log holding a saved state as it is, unchecked: call `verify()` to check it. */
  static fromSnapshot(snapshot: HistorySnapshot, options: MemoryHistoryLogOptions = {}): MemoryHistoryLog {
    if (snapshot === null || typeof snapshot !== 'object' || !Array.isArray(snapshot.entries)) {
      throw new TypeError('snapshot must be { entries: [...], head }')
    }
    const log = new MemoryHistoryLog(options)
    for (const entry of snapshot.entries) log.#entries.push(copy(entry))
    log.#head = snapshot.head === null ? null : { ...snapshot.head }
    return log
  }

  async append(input: HistoryEntryInput): Promise<HistoryEntry> {
    const fields = checkHistoryInput(input)
    const head = this.#head
    const seq = (head?.seq ?? 0) + 1
    const prevHash = head?.hash ?? GENESIS_HASH
    const chained = { ...fields, seq, prevHash }
    const entry: HistoryEntry = { ...chained, id: String(seq), hash: historyEntryHash(chained) }
    this.#entries.push(entry)
    let trimmedThrough = head?.trimmedThrough ?? 0
    const excess = this.#entries.length - this.maxEntries
    if (excess > 0) {
      const removed = this.#entries.splice(0, excess)
      trimmedThrough = removed[removed.length - 1]?.seq ?? trimmedThrough
    }
    this.#head = { seq, hash: entry.hash, trimmedThrough }
    return copy(entry)
  }

  async read(query: HistoryQuery = {}): Promise<HistoryEntry[]> {
    const resolved = resolveHistoryQuery(query)
    const found: HistoryEntry[] = []
    for (let i = this.#entries.length - 1; i >= 0 && found.length < resolved.limit; i--) {
      const entry = this.#entries[i] as HistoryEntry
      if (matchesHistoryQuery(entry, resolved)) found.push(copy(entry))
    }
    return found.reverse()
  }

  async verify(): Promise<HistoryVerification> {
    const check = new HistoryChainCheck(this.#head?.trimmedThrough ?? 0)
    for (const entry of this.#entries) {
      const unreadable = unreadableReason(entry)
      check.add(unreadable === null ? entry : { id: String((entry as { id?: unknown }).id), unreadable })
    }
    return check.finish(this.#head)
  }

  /** Copies of every entry and the head. */
  snapshot(): HistorySnapshot {
    return { entries: this.#entries.map(copy), head: this.#head === null ? null : { ...this.#head } }
  }
}
