import type { KeyRecord } from '../types.js'

/**
 * Rotation telemetry: how traffic moves from a key in its grace period to
 * its successor, and which clients still use the old key. Every replica
 * hands its uses to the shared store (batched with the usage counts), so an
 * operator deciding to end a grace period sees what ALL replicas served, not
 * only the process that draws the dashboard.
 *
 * What is kept is bounded and holds no secret: per-minute counts, and for
 * uses in grace the client's IP and user agent (cut to a fixed length,
 * control characters removed), at most `maxClientsPerKey` clients per key.
 * A token never reaches it.
 */
export const ROTATION_USAGE_LIMITS = Object.freeze({
  /** Width of one count: a minute. */
  bucketMs: 60_000,
  /** Minutes of per-minute counts kept per key (24 hours); the store drops them this long after the last use. */
  retentionMinutes: 1440,
  /** Distinct clients (IP and user agent) kept per key; past that the client seen least recently is dropped and counted in `omittedClients`. */
  maxClientsPerKey: 50,
  /** Longest client IP kept, in characters (an IPv6 address with a zone fits). */
  maxClientIpLength: 64,
  /** Longest user agent kept, in characters. */
  maxUserAgentLength: 256,
  /**
   * A successor's uses are counted per minute for this long after it was
   * created (7 days), so that the chart shows traffic arriving on the new
   * key while the old one is in grace. Grace periods longer than this lose
   * the new key's curve, not the old key's.
   */
  recentSuccessorMs: 7 * 24 * 60 * 60_000,
  /** "End grace now" warns when the old key was served within this window (15 minutes). */
  recentUseMs: 15 * 60_000,
})

/**
 * The context of one use of a key in a rotation, the optional 4th argument
 * of `KeyStore.recordUsage`. Given only when the key is in grace or is a
 * recent successor; the store keeps the client only for uses in grace.
 */
export interface RotationUse {
  clientIp?: string | undefined
  userAgent?: string | undefined
}

/** A client that used a key during its grace period, as seen by every replica. */
export interface RotationClient {
  /** `null` when the request's IP was not known (a `verify()` call outside HTTP). */
  clientIp: string | null
  userAgent: string | null
  requests: number
  lastSeenAt: number
}

/** What `KeyStore.rotationUsage` answers for one key. */
export interface RotationUsage {
  keyId: string
  /** Start of the first minute, epoch ms (a multiple of 60,000). */
  from: number
  bucketMs: number
  /** Uses per minute, oldest first; the last is the current, unfinished minute. */
  counts: number[]
  /** Clients seen while the key was in grace, most recent first (at most `maxClientsPerKey`). */
  clients: RotationClient[]
  /** Clients dropped because more distinct clients used the key than are kept. */
  omittedClients: number
  /** Latest counted use (any minute still kept), epoch ms, or `null`. */
  lastUsedAt: number | null
}

export interface RotationUsageQuery {
  /** Minutes ending with the one holding `now` (1 to `retentionMinutes`). */
  minutes: number
  now: number
}

/** The 4th argument of `recordUsage` for a use of `record` at `now`: only for a key in grace or a recent successor. */
export function rotationUseOf(
  record: Pick<KeyRecord, 'rotatedTo' | 'rotatedFrom' | 'createdAt'>,
  now: number,
  clientIp: string | undefined,
  userAgent: string | undefined,
): RotationUse | undefined {
  const inGrace = record.rotatedTo !== null
  const recentSuccessor = record.rotatedFrom !== null && now - record.createdAt <= ROTATION_USAGE_LIMITS.recentSuccessorMs
  return inGrace || recentSuccessor ? { clientIp, userAgent } : undefined
}

// Control characters would let a client forge a line in a log or split the store's field.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/g

function bounded(value: string | undefined, max: number): string | null {
  if (value === undefined) return null
  const clean = value.replace(CONTROL, '').slice(0, max)
  return clean === '' ? null : clean
}

/** The client of a use as it is kept: IP and user agent cut to length, without control characters. */
export function rotationClientOf(use: RotationUse): { clientIp: string | null; userAgent: string | null } {
  return {
    clientIp: bounded(use.clientIp, ROTATION_USAGE_LIMITS.maxClientIpLength),
    userAgent: bounded(use.userAgent, ROTATION_USAGE_LIMITS.maxUserAgentLength),
  }
}

/** One field per client: IP and user agent joined by a newline (neither holds one). */
export function rotationClientField(client: { clientIp: string | null; userAgent: string | null }): string {
  return `${client.clientIp ?? ''}\n${client.userAgent ?? ''}`
}

/** The inverse of `rotationClientField`. */
export function parseRotationClientField(field: string): { clientIp: string | null; userAgent: string | null } {
  const cut = field.indexOf('\n')
  const ip = cut < 0 ? field : field.slice(0, cut)
  const agent = cut < 0 ? '' : field.slice(cut + 1)
  return { clientIp: ip === '' ? null : ip, userAgent: agent === '' ? null : agent }
}

/** The first minute (index) of a query's window, and its length. */
export function rotationWindow(query: RotationUsageQuery): { first: number; span: number } {
  const span = Math.min(Math.max(1, Math.floor(query.minutes)), ROTATION_USAGE_LIMITS.retentionMinutes)
  const last = Math.floor(query.now / ROTATION_USAGE_LIMITS.bucketMs)
  return { first: last - span + 1, span }
}

/**
 * Rotation uses of one key, counted in memory: what MemoryStore keeps, and
 * what a batching store gathers between two flushes. Bounded: minutes older
 * than `retentionMinutes` behind the newest are dropped, and at most
 * `maxClientsPerKey` clients are kept (least recently seen dropped first).
 */
export class RotationTally {
  /** Uses per minute index (`floor(at / 60,000)`). */
  readonly minutes = new Map<number, number>()
  /** By `rotationClientField`; map order is recency order (least recent first). */
  readonly clients = new Map<string, RotationClient>()
  omittedClients = 0
  lastUsedAt: number | null = null

  add(at: number, inGrace: boolean, use: RotationUse): void {
    const minute = Math.floor(at / ROTATION_USAGE_LIMITS.bucketMs)
    this.minutes.set(minute, (this.minutes.get(minute) ?? 0) + 1)
    if (this.lastUsedAt === null || at > this.lastUsedAt) this.lastUsedAt = at
    if (this.minutes.size > ROTATION_USAGE_LIMITS.retentionMinutes) {
      const oldest = (this.lastUsedAt === null ? minute : Math.floor(this.lastUsedAt / ROTATION_USAGE_LIMITS.bucketMs)) - ROTATION_USAGE_LIMITS.retentionMinutes
      for (const kept of this.minutes.keys()) if (kept <= oldest) this.minutes.delete(kept)
    }
    if (!inGrace) return
    const client = rotationClientOf(use)
    const field = rotationClientField(client)
    const known = this.clients.get(field)
    if (known) {
      known.requests++
      known.lastSeenAt = Math.max(known.lastSeenAt, at)
      this.clients.delete(field)
      this.clients.set(field, known)
      return
    }
    this.clients.set(field, { ...client, requests: 1, lastSeenAt: at })
    if (this.clients.size > ROTATION_USAGE_LIMITS.maxClientsPerKey) {
      this.clients.delete(this.clients.keys().next().value as string)
      this.omittedClients++
    }
  }

  /** The figures for `keyId` over the query's window. */
  read(keyId: string, query: RotationUsageQuery): RotationUsage {
    const { first, span } = rotationWindow(query)
    const counts = Array.from({ length: span }, (_, index) => this.minutes.get(first + index) ?? 0)
    const clients = [...this.clients.values()].map((client) => ({ ...client })).sort((a, b) => b.lastSeenAt - a.lastSeenAt)
    return {
      keyId,
      from: first * ROTATION_USAGE_LIMITS.bucketMs,
      bucketMs: ROTATION_USAGE_LIMITS.bucketMs,
      counts,
      clients,
      omittedClients: this.omittedClients,
      lastUsedAt: this.lastUsedAt,
    }
  }
}

/** An empty answer, for a key without rotation uses. */
export function emptyRotationUsage(keyId: string, query: RotationUsageQuery): RotationUsage {
  return new RotationTally().read(keyId, query)
}
