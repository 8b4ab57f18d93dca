import { randomBytes } from 'node:crypto'
import {
  checkHistoryInput,
  GENESIS_HASH,
  HistoryChainCheck,
  historyEntryHash,
  matchesHistoryQuery,
  resolveHistoryQuery,
  StoreUnavailableError,
  type Duration,
  type HistoryEntry,
  type HistoryEntryInput,
  type HistoryHead,
  type HistoryLog,
  type HistoryQuery,
  type HistoryVerification,
} from '@keyrot/core'
import { FailFastConnection, resolveCompanionOptions } from '../companion.js'
import { runScript } from '../connection.js'
import type { RedisClient } from '../options.js'
import type { RedisStore } from '../redis-store.js'
import { decodeHistoryItem, encodeHistoryEntry } from './codec.js'
import { HISTORY_SCRIPTS } from './scripts.js'

export interface RedisHistoryLogOptions {
  /**
   * The application's ioredis `Redis` or `Cluster`, used as a template: the
   * log opens its own fail-fast duplicate, never sends a command on `client`
   * and never closes it.
   */
  client: RedisClient
  /**
   * Prefix of the log's keys: `<prefix>:{history}:stream`,
   * `<prefix>:{history}:head` and `<prefix>:{history}:turn`. Letters, digits and `: . _ -`, at most 64.
   * Default `'keyrot'`.
   */
  keyPrefix?: string
  /**
   * About how many entries the stream keeps (`XADD ... MAXLEN ~`): Redis
   * drops the oldest in whole blocks, so it keeps at least this many and a
   * little more. Dropping them is not tampering (`verify()` reports them as
   * `trimmed`). Default 100,000. Must be a positive integer.
   */
  maxLength?: number
  /**
   * Longest one Redis call may take (an append, a page of a read or of a
   * verification). Past it the call fails with `StoreUnavailableError`.
   * ms or `'1s'`. Default `'1s'`. Must be greater than 0.
   */
  timeout?: Duration
}

/** Entries per `XRANGE`/`XREVRANGE` page. */
const PAGE = 500
/**
 * Appends of one log run one at a time, so only replicas compete for the
 * head, and the first loser of a round takes the next turn: an append waits
 * for about as many appends as there are competing replicas. 100 tries is a
 * head that something keeps moving.
 */
const MAX_APPEND_ATTEMPTS = 100
/** Reads of the stream's end with its head, when entries keep arriving while a verification reaches it. */
const MAX_SNAPSHOTS = 100

type StreamItem = [string, string[]]
type PipelineReply = [Error | null, unknown][] | null

function unexpected(what: string, reply: unknown): StoreUnavailableError {
  return new StoreUnavailableError(`The Redis admin history gave an unexpected reply to ${what}: ${JSON.stringify(reply)?.slice(0, 80)}`)
}

function items(reply: unknown, what: string): StreamItem[] {
  if (!Array.isArray(reply)) throw unexpected(what, reply)
  return reply as StreamItem[]
}

/** The head hash as `HGETALL` returns it; `null` when there is none or it cannot be read (verify then reports the log). */
function parseHead(reply: unknown): HistoryHead | null {
  if (reply === null || typeof reply !== 'object') return null
  const fields = reply as Record<string, unknown>
  const seq = Number(fields.seq)
  const trimmedThrough = fields.trimmedThrough === undefined ? 0 : Number(fields.trimmedThrough)
  if (typeof fields.hash !== 'string' || !Number.isSafeInteger(seq) || seq < 1 || !Number.isSafeInteger(trimmedThrough)) return null
  return { seq, hash: fields.hash, trimmedThrough }
}

function transactionResults(results: PipelineReply, length: number, what: string): unknown[] {
  if (!Array.isArray(results) || results.length !== length) throw unexpected(what, results)
  return results.map(([error, value]) => {
    if (error) throw error
    return value
  })
}

/**
 * The shared admin history on a Redis Stream, for every replica and the
 * operator: each keyring's create, rotate, revoke, emergency rotation and
 * expiry change, as hash-chained entries (see `HistoryLog` in core).
 *
 * - `<prefix>:{history}:stream`: the entries, `XADD ... MAXLEN ~ maxLength`.
 * - `<prefix>:{history}:head`: the newest entry's `hash`, `seq` and `id`,
 *   and `trimmedThrough` (the last seq the length bound removed).
 * - `<prefix>:{history}:turn`: for a moment after a lost compare-and-set,
 *   which appender goes next (fairness between replicas).
 *
 * The keys share the `{history}` hash tag: one Cluster slot, so one script
 * updates them atomically. The SHA-256 of each entry is computed here; the
 * script appends only if the head is still the one the entry was chained to
 * (compare-and-set) and otherwise hands back the new head to chain to.
 *
 * @example
 * const store = new RedisStore({ client })
 * const keyring = createKeyring({ store, history: RedisHistoryLog.forStore(store) })
 * await keyring.history(keyId)       // the family's admin actions, newest last
 * await keyring.verifyHistory()      // { ok, checked, problems, trimmed, ... }
 */
export class RedisHistoryLog implements HistoryLog {
  readonly keyPrefix: string
  readonly streamKey: string
  readonly headKey: string
  /** Short-lived: which appender goes next after losing a round (see the append script). */
  readonly turnKey: string
  readonly maxLength: number
  readonly timeoutMs: number
  readonly #connection: FailFastConnection
  /** The head after this log's last append or refusal: the first guess of the next append. */
  #head: { hash: string; seq: number } | null = null
  /** Names this log when it holds the turn. */
  readonly #token = randomBytes(9).toString('base64url')
  /** How long a turn is held at most: an appender that stops after taking it delays others by this much. */
  readonly #turnMs: number
  #queue: Promise<unknown> = Promise.resolve()

  constructor(options: RedisHistoryLogOptions) {
    const resolved = resolveCompanionOptions('RedisHistoryLog', options, '1s')
    const { keyPrefix, timeoutMs } = resolved
    const maxLength = options.maxLength ?? 100_000
    if (!Number.isSafeInteger(maxLength) || maxLength < 1) throw new TypeError(`maxLength must be a positive integer; got ${String(maxLength)}`)
    this.keyPrefix = keyPrefix
    this.streamKey = `${keyPrefix}:{history}:stream`
    this.headKey = `${keyPrefix}:{history}:head`
    this.turnKey = `${keyPrefix}:{history}:turn`
    this.maxLength = maxLength
    this.timeoutMs = timeoutMs
    this.#turnMs = Math.round(Math.min(Math.max(timeoutMs / 4, 50), 1_000))
    this.#connection = new FailFastConnection(resolved, 'The Redis admin history is closed.')
  }

  /** A history log on the same Redis (client and key prefix) as a `RedisStore`. */
  static forStore(store: RedisStore, options: Omit<RedisHistoryLogOptions, 'client' | 'keyPrefix'> = {}): RedisHistoryLog {
    return new RedisHistoryLog({ ...options, client: store.options.client, keyPrefix: store.options.keyPrefix })
  }

  /**
   * Appends after the current head. This log's appends run one at a time in
   * call order; against other processes the head is taken by
   * compare-and-set, retried (up to 100 times) when another appended first.
   * Not retried after a timeout: the entry may have been written.
   */
  append(input: HistoryEntryInput): Promise<HistoryEntry> {
    let fields: HistoryEntryInput
    try {
      fields = checkHistoryInput(input)
    } catch (error) {
      return Promise.reject(error)
    }
    const appended = this.#queue.then(() => this.#append(fields))
    this.#queue = appended.catch(() => {})
    return appended
  }

  async #append(fields: HistoryEntryInput): Promise<HistoryEntry> {
    this.#assertOpen()
    let head = this.#head ?? (await this.#readHead())
    for (let attempt = 1; attempt <= MAX_APPEND_ATTEMPTS; attempt++) {
      const chained = { ...fields, seq: head.seq + 1, prevHash: head.hash === '' ? GENESIS_HASH : head.hash }
      const hash = historyEntryHash(chained)
      const args = [head.hash, hash, chained.seq, this.maxLength, this.#turnMs, this.#token, ...encodeHistoryEntry({ ...chained, hash })]
      let reply: unknown
      try {
        reply = await this.#call('append to the admin history', (redis) =>
          runScript(redis, HISTORY_SCRIPTS.append, [this.streamKey, this.headKey, this.turnKey], args),
        )
      } catch (error) {
        this.#head = null
        throw error
      }
      if (Array.isArray(reply) && reply[0] === 'ok' && typeof reply[1] === 'string') {
        this.#head = { hash, seq: chained.seq }
        return { ...chained, id: reply[1], hash }
      }
      const moved = Array.isArray(reply) && reply[0] === 'moved'
      if (!Array.isArray(reply) || !(moved || reply[0] === 'wait') || typeof reply[1] !== 'string' || !/^\d+$/.test(String(reply[2]))) {
        this.#head = null
        throw unexpected('an append', reply)
      }
      head = { hash: reply[1], seq: Number(reply[2]) }
      this.#head = head
      // 'moved': this log now holds the turn and retries at once. 'wait': another holds it, for about one round trip.
      if (!moved) await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(attempt, 20)))
    }
    this.#head = null
    throw new StoreUnavailableError(`The Redis admin history could not append: the head moved ${MAX_APPEND_ATTEMPTS} times in a row.`)
  }

  async #readHead(): Promise<{ hash: string; seq: number }> {
    const reply = await this.#call('read the admin history head', (redis) => redis.hmget(this.headKey, 'hash', 'seq'))
    if (!Array.isArray(reply) || reply.length !== 2) throw unexpected('HMGET', reply)
    const [hash, seq] = reply as [string | null, string | null]
    // A head that cannot be read is appended to as it stands; the script refuses a stale guess and says what it holds.
    return { hash: hash ?? '', seq: seq !== null && /^\d+$/.test(seq) ? Number(seq) : 0 }
  }

  /** Matching entries, newest last: reads the stream newest first, a page at a time, until `limit` are found or it ends. */
  async read(query: HistoryQuery = {}): Promise<HistoryEntry[]> {
    const resolved = resolveHistoryQuery(query)
    this.#assertOpen()
    const found: HistoryEntry[] = []
    let end = '+'
    while (found.length < resolved.limit) {
      const page = items(
        await this.#call('read the admin history', (redis) => redis.xrevrange(this.streamKey, end, '-', 'COUNT', PAGE)),
        'XREVRANGE',
      )
      for (const item of page) {
        const entry = decodeHistoryItem(item)
        // An unreadable entry is not about any key; verify() reports it.
        if ('unreadable' in entry || !matchesHistoryQuery(entry, resolved)) continue
        found.push(entry)
        if (found.length === resolved.limit) break
      }
      if (page.length < PAGE) break
      end = `(${(page[page.length - 1] as StreamItem)[0]}`
    }
    return found.reverse()
  }

  /**
   * Walks the whole stream oldest first, a page at a time, recomputing every
   * hash and link (`HistoryChainCheck`). The head and the first page are read
   * in one transaction, and so are the head and the end of the stream: an
   * append or a trim by another replica while the walk runs is never taken
   * for tampering.
   */
  async verify(): Promise<HistoryVerification> {
    this.#assertOpen()
    const [firstHead, firstPage] = await this.#snapshot('-')
    const check = new HistoryChainCheck(parseHead(firstHead)?.trimmedThrough ?? 0)
    let head = firstHead
    let page = items(firstPage, 'XRANGE')
    let fromSnapshot = true
    let cursor = '-'
    for (let snapshots = 1; ; ) {
      for (const item of page) check.add(decodeHistoryItem(item))
      if (page.length > 0) cursor = `(${(page[page.length - 1] as StreamItem)[0]}`
      if (page.length === PAGE) {
        page = items(await this.#call('verify the admin history', (redis) => redis.xrange(this.streamKey, cursor, '+', 'COUNT', PAGE)), 'XRANGE')
        fromSnapshot = false
        continue
      }
      // The end of the stream, read with the head in one transaction: the head must be its newest entry.
      if (fromSnapshot) return check.finish(parseHead(head))
      if (++snapshots > MAX_SNAPSHOTS) {
        throw new StoreUnavailableError('The Redis admin history grew faster than it could be verified; try again.')
      }
      ;[head, page] = await this.#snapshot(cursor).then(([h, p]) => [h, items(p, 'XRANGE')] as const)
      fromSnapshot = true
    }
  }

  /** The head and one page from `start`, in one transaction (both keys are in one slot). */
  async #snapshot(start: string): Promise<[unknown, unknown]> {
    const results = await this.#call('verify the admin history', (redis) =>
      redis.multi().hgetall(this.headKey).xrange(this.streamKey, start, '+', 'COUNT', PAGE).exec(),
    )
    const [head, page] = transactionResults(results as PipelineReply, 2, 'MULTI')
    return [head, page]
  }

  /** Waits for pending appends, then closes the log's own connection (never the application's client). Idempotent. */
  async close(): Promise<void> {
    if (this.#connection.closed) return
    await this.#queue
    this.#connection.close()
  }

  #call<T>(what: string, work: (redis: RedisClient) => Promise<T>): Promise<T> {
    return this.#connection.call(what, undefined, work)
  }

  #assertOpen(): void {
    this.#connection.assertOpen()
  }
}
