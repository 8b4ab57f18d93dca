import { LRUCache } from 'lru-cache'
import type { Clock } from '../clock.js'

/** Why a token was refused: the only failures worth remembering. */
export interface KnownBadToken {
  code: 'KEYROT_KEY_NOT_FOUND' | 'KEYROT_INVALID_SECRET'
  tenantId: string | undefined
}

/**
 * Digests of tokens that just failed (unknown key id, wrong secret), kept
 * for a few seconds so the same wrong token sent again and again costs a
 * map lookup, not a store read and an Argon2 run.
 *
 * Why it is safe: a key's secret never changes, so a token that failed its
 * proof fails it forever; and a key id unknown now cannot become the id of a
 * token that was refused, since `create()` hands a token out only after its
 * key is stored. Nothing is cleared on `create` or `rotate` for that reason.
 * The TTL bounds memory and staleness anyway (a store that briefly answered
 * "not found" by mistake).
 *
 * Keys are the verification cache's peppered digests: no plaintext is held.
 */
export class NegativeCache {
  readonly #entries: LRUCache<string, KnownBadToken>
  #hits = 0

  constructor(options: { ttlMs: number; maxEntries: number; clock: Clock }) {
    this.#entries = new LRUCache({ max: options.maxEntries, ttl: options.ttlMs, ttlResolution: 0, perf: options.clock })
  }

  get(digest: string): KnownBadToken | undefined {
    const entry = this.#entries.get(digest)
    if (entry !== undefined) this.#hits++
    return entry
  }

  remember(digest: string, entry: KnownBadToken): void {
    this.#entries.set(digest, entry)
  }

  stats(): { size: number; hits: number } {
    return { size: this.#entries.size, hits: this.#hits }
  }
}
