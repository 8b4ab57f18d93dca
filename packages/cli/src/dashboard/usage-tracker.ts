import type { Keyring } from '@keyrot/core'

const MINUTE_MS = 60_000

export interface UsageTrackerOptions {
  /**
   * Most keys whose traffic is remembered; the key used least recently is
   * forgotten first. Each key costs about 8 bytes per minute of `retention`
   * (11.5 KB for 24 hours) plus its clients. Default 1000.
   */
  maxKeys?: number
  /** How many minutes of per-minute counts are kept for each key. Default 1440 (24 hours). */
  retentionMinutes?: number
  /**
   * Distinct clients (IP and user agent) remembered for each key in its grace
   * period; past that, the client seen least recently is dropped and counted
   * in `omittedClients`. Default 50.
   */
  maxClientsPerKey?: number
  /** Longest user agent kept, in characters; longer ones are cut. Default 256. */
  maxUserAgentLength?: number
}

/** A client that used a key during its grace period, as seen by this process. */
export interface GraceClient {
  /** `null` when the request's IP was not known (a `verify()` call outside HTTP). */
  clientIp: string | null
  userAgent: string | null
  requests: number
  firstSeenAt: number
  lastSeenAt: number
}

export interface PerMinuteUsage {
  /** Start of the first minute, epoch ms (a multiple of 60,000). */
  from: number
  bucketMs: number
  /** Successful verifications per minute, oldest first; the last one is the current, unfinished minute. */
  counts: number[]
}

interface KeyTraffic {
  /** Slot `minute % retention` holds the count of `minutes[slot]`; a stale minute there means 0. */
  counts: Uint32Array
  minutes: Int32Array
  lastMinute: number
  clients: Map<string, GraceClient> | null
  omittedClients: number
}

function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`${name} must be a positive integer; got ${String(value)}`)
  return value
}

/**
 * Per-minute request counts and the clients still using keys in their grace
 * period, kept in this process's memory from the keyring's
 * `verification.succeeded` events. The store only keeps totals (usage count,
 * last use); this is what draws a rotation's traffic moving from the old key
 * to the new one. Each replica counts its own requests, and counts start
 * when the process starts.
 *
 * Memory is bounded: `maxKeys` keys (least recently used forgotten first),
 * `retentionMinutes` per key, `maxClientsPerKey` clients per key.
 */
export class UsageTracker {
  readonly retentionMinutes: number
  readonly maxKeys: number
  readonly maxClientsPerKey: number
  readonly maxUserAgentLength: number
  /** When this tracker started counting (epoch ms, keyring clock). */
  readonly trackedSince: number
  /** Map order is recency order: a key is moved to the end when a new minute of its traffic starts. */
  readonly #keys = new Map<string, KeyTraffic>()

  constructor(trackedSince: number, options: UsageTrackerOptions = {}) {
    this.trackedSince = trackedSince
    this.retentionMinutes = positiveInteger(options.retentionMinutes, 1440, 'retentionMinutes')
    this.maxKeys = positiveInteger(options.maxKeys, 1000, 'maxKeys')
    this.maxClientsPerKey = positiveInteger(options.maxClientsPerKey, 50, 'maxClientsPerKey')
    this.maxUserAgentLength = positiveInteger(options.maxUserAgentLength, 256, 'maxUserAgentLength')
  }

  /**
   * Counts every successful verification of `keyring` from now on. Returns a
   * function that stops counting.
   */
  attach(keyring: Keyring): () => void {
    return keyring.on('verification.succeeded', (event) => {
      this.record(event.keyId, event.at, event.state === 'grace', event.clientIp, event.userAgent)
    })
  }

  /** Counts one successful request of `keyId` at `at` (epoch ms). */
  record(keyId: string, at: number, inGrace: boolean, clientIp?: string, userAgent?: string): void {
    if (!(at >= 0)) return
    const minute = Math.floor(at / MINUTE_MS)
    let traffic = this.#keys.get(keyId)
    if (!traffic) {
      traffic = {
        counts: new Uint32Array(this.retentionMinutes),
        minutes: new Int32Array(this.retentionMinutes).fill(-1),
        lastMinute: minute,
        clients: null,
        omittedClients: 0,
      }
      this.#keys.set(keyId, traffic)
      if (this.#keys.size > this.maxKeys) this.#keys.delete(this.#keys.keys().next().value as string)
    } else if (minute > traffic.lastMinute) {
      // Re-inserting once per key and minute keeps the map in recency order at little cost.
      this.#keys.delete(keyId)
      this.#keys.set(keyId, traffic)
      traffic.lastMinute = minute
    }
    const slot = minute % this.retentionMinutes
    if (traffic.minutes[slot] === minute) {
      traffic.counts[slot] = (traffic.counts[slot] as number) + 1
    } else if ((traffic.minutes[slot] as number) < minute) {
      traffic.minutes[slot] = minute
      traffic.counts[slot] = 1
    }
    // (A request stamped older than the slot's minute, beyond retention, is dropped.)
    if (inGrace) this.#noteClient(traffic, at, clientIp, userAgent)
  }

  /**
   * Requests per minute of `keyId` over the `minutes` minutes ending with the
   * one holding `now` (at most `retentionMinutes`). Minutes without traffic,
   * and keys never seen, count 0.
   */
  perMinute(keyId: string, minutes: number, now: number): PerMinuteUsage {
    const span = Math.min(Math.max(1, Math.floor(minutes)), this.retentionMinutes)
    const last = Math.floor(now / MINUTE_MS)
    const first = last - span + 1
    const counts = new Array<number>(span).fill(0)
    const traffic = this.#keys.get(keyId)
    if (traffic) {
      for (let minute = first; minute <= last; minute++) {
        const slot = minute % this.retentionMinutes
        if (traffic.minutes[slot] === minute) counts[minute - first] = traffic.counts[slot] as number
      }
    }
    return { from: first * MINUTE_MS, bucketMs: MINUTE_MS, counts }
  }

  /** Clients seen on `keyId` during its grace period, most recent first. */
  graceClients(keyId: string): { clients: GraceClient[]; omittedClients: number } {
    const traffic = this.#keys.get(keyId)
    if (!traffic?.clients) return { clients: [], omittedClients: 0 }
    const clients = [...traffic.clients.values()].map((client) => ({ ...client })).reverse()
    return { clients, omittedClients: traffic.omittedClients }
  }

  /** Number of keys currently remembered. */
  get size(): number {
    return this.#keys.size
  }

  #noteClient(traffic: KeyTraffic, at: number, clientIp: string | undefined, userAgent: string | undefined): void {
    const agent = userAgent === undefined || userAgent === '' ? null : userAgent.slice(0, this.maxUserAgentLength)
    const ip = clientIp === undefined || clientIp === '' ? null : clientIp
    const id = `${ip ?? ''}\n${agent ?? ''}`
    traffic.clients ??= new Map()
    const known = traffic.clients.get(id)
    if (known) {
      known.requests++
      known.lastSeenAt = Math.max(known.lastSeenAt, at)
      // Most recently seen last: the first entry is the one to drop when full.
      traffic.clients.delete(id)
      traffic.clients.set(id, known)
      return
    }
    traffic.clients.set(id, { clientIp: ip, userAgent: agent, requests: 1, firstSeenAt: at, lastSeenAt: at })
    if (traffic.clients.size > this.maxClientsPerKey) {
      traffic.clients.delete(traffic.clients.keys().next().value as string)
      traffic.omittedClients++
    }
  }
}
