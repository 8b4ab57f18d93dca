import {
  parseRotationClientField,
  ROTATION_USAGE_LIMITS,
  rotationWindow,
  type RotationClient,
  type RotationTally,
  type RotationUsage,
  type RotationUsageQuery,
} from '@keyrot/core'
import { runScript } from './connection.js'
import type { KeyLayout } from './keys.js'
import type { RedisClient } from './options.js'
import { SCRIPTS } from './scripts.js'

const RETENTION_MS = ROTATION_USAGE_LIMITS.retentionMinutes * ROTATION_USAGE_LIMITS.bucketMs

/**
 * Adds one key's rotation uses gathered since the last flush to the shared
 * figures, in one script (both keys in the key family's slot). Part of the
 * usage flush: it is written, or dropped with the batch, never retried.
 */
export function writeRotationUsage(redis: RedisClient, layout: KeyLayout, keyId: string, tally: RotationTally): Promise<unknown> {
  const args: (string | number)[] = [
    ROTATION_USAGE_LIMITS.retentionMinutes,
    RETENTION_MS,
    ROTATION_USAGE_LIMITS.maxClientsPerKey,
    tally.omittedClients,
    tally.lastUsedAt ?? 0,
    tally.minutes.size,
  ]
  for (const [minute, count] of tally.minutes) args.push(minute, count)
  for (const [field, client] of tally.clients) args.push(field, client.requests, client.lastSeenAt)
  return runScript(redis, SCRIPTS.recordRotationUsage, [layout.rotationMinutes(keyId), layout.rotationClients(keyId)], args)
}

/** `<a>:<b>` as two numbers, or `null` for anything else (a reply is parsed defensively). */
function pair(value: unknown): [number, number] | null {
  if (typeof value !== 'string') return null
  const cut = value.indexOf(':')
  if (cut < 0) return null
  const a = Number(value.slice(0, cut))
  const b = Number(value.slice(cut + 1))
  return Number.isFinite(a) && Number.isFinite(b) ? [a, b] : null
}

/**
 * Reads the shared figures of `keyId` for the query's window: the minute
 * slots of the window (HMGET) and the clients (HGETALL, at most
 * `maxClientsPerKey` + 1 fields).
 */
export async function readRotationUsage(redis: RedisClient, layout: KeyLayout, keyId: string, query: RotationUsageQuery): Promise<RotationUsage> {
  const { first, span } = rotationWindow(query)
  const slots = Array.from({ length: span }, (_, index) => `m${(first + index) % ROTATION_USAGE_LIMITS.retentionMinutes}`)
  const [held, clientFields] = await Promise.all([
    redis.hmget(layout.rotationMinutes(keyId), 'last', ...slots),
    redis.hgetall(layout.rotationClients(keyId)),
  ])
  const last = Number(held[0])
  const counts = new Array<number>(span).fill(0)
  held.slice(1).forEach((value, index) => {
    const parsed = pair(value)
    if (parsed && parsed[0] === first + index && parsed[1] > 0) counts[index] = parsed[1]
  })
  const clients: RotationClient[] = []
  let omittedClients = 0
  for (const [field, value] of Object.entries(clientFields ?? {})) {
    if (field === 'omitted') {
      omittedClients = Number(value) || 0
      continue
    }
    const parsed = pair(value)
    if (!field.startsWith('c') || !parsed) continue
    clients.push({ ...parseRotationClientField(field.slice(1)), requests: parsed[0], lastSeenAt: parsed[1] })
  }
  clients.sort((a, b) => b.lastSeenAt - a.lastSeenAt)
  return {
    keyId,
    from: first * ROTATION_USAGE_LIMITS.bucketMs,
    bucketMs: ROTATION_USAGE_LIMITS.bucketMs,
    counts,
    clients,
    omittedClients,
    lastUsedAt: held[0] !== null && Number.isFinite(last) && last > 0 ? last : null,
  }
}
