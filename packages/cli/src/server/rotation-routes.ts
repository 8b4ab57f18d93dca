import { ROTATION_USAGE_LIMITS, emptyRotationUsage, type ApiKey, type Keyring, type RotationUsage } from '@keyrot/core'
import { z } from 'zod'
import { adminAccessOf, manageableKey } from './admin-access.js'
import { defineRoute, type RouteSpec } from './route-spec.js'
import { errorSchema, keyParams, minutesQuery } from './schemas.js'

const errors = {
  400: { description: 'KEYROT_INVALID_INPUT: a path or query parameter is not valid (`error.field` names it).', schema: errorSchema },
  401: { description: 'No key, or a key that is not valid (RFC 6750 challenge).', schema: errorSchema },
  403: { description: 'KEYROT_INSUFFICIENT_SCOPE: the key has no admin scope.', schema: errorSchema },
  404: { description: 'KEYROT_KEY_NOT_FOUND: no key with this id.', schema: errorSchema },
  429: { description: 'KEYROT_RATE_LIMITED or KEYROT_IP_BLOCKED: too many requests or failed attempts (Retry-After).', schema: errorSchema },
  503: { description: 'KEYROT_STORE_UNAVAILABLE: the key store did not answer (Retry-After).', schema: errorSchema },
}

/** What the figures can miss, stated in every answer so that no reader takes them for exact. */
export const ROTATION_USAGE_CAVEAT =
  'Counted by every replica sharing the store, each flushing its counts every usage flush interval (1 s by default): ' +
  "the latest interval's uses of each replica are not in yet, a replica that crashed lost its last interval, " +
  'and a flush that failed while the store was down was dropped. Replicas on a store without rotation telemetry are not counted.'

const RECENT_MINUTES = ROTATION_USAGE_LIMITS.recentUseMs / 60_000

const clientSchema = z.object({
  clientIp: z.string().nullable().describe(`Cut to ${ROTATION_USAGE_LIMITS.maxClientIpLength} characters; null when unknown.`),
  userAgent: z.string().nullable().describe(`Cut to ${ROTATION_USAGE_LIMITS.maxUserAgentLength} characters.`),
  requests: z.number(),
  lastSeenAt: z.number(),
})

const sideSchema = z.object({
  keyId: z.string(),
  counts: z.array(z.number()).describe('Successful requests per minute, oldest first; the last is the current minute.'),
  lastUsedAt: z.number().nullable().describe('Latest counted use in the last 24 hours, epoch ms.'),
})

export const rotationUsageResponse = z
  .object({
    keyId: z.string(),
    from: z.number().describe('Start of the first minute, epoch ms.'),
    bucketMs: z.number().describe('Length of a bucket: 60000.'),
    oldKey: sideSchema
      .extend({
        clients: z.array(clientSchema).describe(`Clients seen while the key was in grace, most recent first (at most ${ROTATION_USAGE_LIMITS.maxClientsPerKey}).`),
        omittedClients: z.number().describe('Clients dropped because more distinct clients used the key than are kept.'),
      })
      .describe('The key in grace (or this key, when it is in no rotation).'),
    newKey: sideSchema.nullable().describe('Its successor, or null.'),
    oldKeyUsedRecently: z.boolean().describe(`Whether any replica served the old key in the last ${RECENT_MINUTES} minutes.`),
    endGraceWarning: z.string().nullable().describe('Why ending the grace now would break clients, or null.'),
    scope: z.enum(['store', 'unavailable']).describe('`store`: counted by every replica through the shared store; `unavailable`: this store keeps no rotation telemetry.'),
    caveat: z.string().describe('What the figures can miss.'),
    now: z.number().describe("The server's clock when it answered, epoch ms."),
  })
  .meta({ id: 'RotationUsage' })

/** The (old, new) pair of a key: itself in grace, or the key it replaced. */
function rotationPair(key: ApiKey): { oldKeyId: string; newKeyId: string | null } {
  if (key.rotatedTo !== null) return { oldKeyId: key.id, newKeyId: key.rotatedTo }
  if (key.rotatedFrom !== null) return { oldKeyId: key.rotatedFrom, newKeyId: key.id }
  return { oldKeyId: key.id, newKeyId: null }
}

/** The warning "End grace now" shows, or `null` when no replica served the old key recently. */
export function endGraceWarning(oldKeyId: string, usage: RotationUsage, now: number): string | null {
  if (usage.lastUsedAt === null || usage.lastUsedAt < now - ROTATION_USAGE_LIMITS.recentUseMs) return null
  const recent = usage.counts.slice(-RECENT_MINUTES).reduce((sum, count) => sum + count, 0)
  const clients = usage.clients.length + usage.omittedClients
  return (
    `Key ${oldKeyId} was served ${recent} times in the last ${RECENT_MINUTES} minutes, by the replicas sharing this store` +
    (clients > 0 ? `, to ${clients} client${clients === 1 ? '' : 's'}` : '') +
    ': ending the grace now breaks them.'
  )
}

/** Rotation uses of the old and new key of `keyId`'s rotation, from the shared store. */
export async function rotationUsageOf(keyring: Keyring, key: ApiKey, minutes: number) {
  const now = keyring.clock.now()
  const { oldKeyId, newKeyId } = rotationPair(key)
  // Read at least the warning's window; answer the window asked for.
  const query = { minutes: Math.max(minutes, RECENT_MINUTES), now }
  const trim = (counts: number[]) => counts.slice(-minutes)
  const read = keyring.store.rotationUsage?.bind(keyring.store)
  const [oldUsage, newUsage] = await Promise.all([
    read ? read(oldKeyId, query) : emptyRotationUsage(oldKeyId, query),
    newKeyId === null ? null : read ? read(newKeyId, query) : emptyRotationUsage(newKeyId, query),
  ])
  const warning = endGraceWarning(oldKeyId, oldUsage, now)
  return {
    keyId: key.id,
    from: oldUsage.from + (oldUsage.counts.length - trim(oldUsage.counts).length) * oldUsage.bucketMs,
    bucketMs: oldUsage.bucketMs,
    oldKey: { keyId: oldKeyId, counts: trim(oldUsage.counts), lastUsedAt: oldUsage.lastUsedAt, clients: oldUsage.clients, omittedClients: oldUsage.omittedClients },
    newKey: newUsage === null ? null : { keyId: newUsage.keyId, counts: trim(newUsage.counts), lastUsedAt: newUsage.lastUsedAt },
    oldKeyUsedRecently: warning !== null,
    endGraceWarning: warning,
    scope: read ? ('store' as const) : ('unavailable' as const),
    caveat: ROTATION_USAGE_CAVEAT,
    now,
  }
}

/**
 * The warning for ending `keyId`'s grace now, read just before it ends (the
 * `warning` field of `POST /v1/keys/:id/expiry` with `endNow`). Telemetry
 * never blocks the change: a store that cannot answer gives no warning.
 */
export async function endGraceWarningFor(keyring: Keyring, keyId: string): Promise<string | null> {
  if (!keyring.store.rotationUsage) return null
  const now = keyring.clock.now()
  try {
    return endGraceWarning(keyId, await keyring.store.rotationUsage(keyId, { minutes: RECENT_MINUTES, now }), now)
  } catch {
    return null
  }
}

const query = minutesQuery(ROTATION_USAGE_LIMITS.retentionMinutes)

/**
 * `GET /v1/keys/:id/rotation-usage`: how a rotation's traffic moves, as
 * every replica saw it (through the shared store), and whether ending the
 * grace now would break clients. What the dashboard and `keyrot inspect`
 * show.
 */
export function rotationRoutes(): RouteSpec[] {
  return [
    defineRoute({
      method: 'get',
      path: '/v1/keys/:id/rotation-usage',
      operationId: 'getRotationUsage',
      summary:
        "Old-key and new-key requests per minute of a key's rotation, and the clients still on the old key, as counted by every replica through the shared store.",
      auth: 'admin',
      params: keyParams,
      query,
      responses: { 200: { description: 'The rotation figures.', schema: rotationUsageResponse }, ...errors },
      async handler({ keyring, params, query, res }) {
        // Another tenant's key answers exactly as an unknown id does.
        const key = await manageableKey(keyring, adminAccessOf(res), params.id)
        return { status: 200, body: await rotationUsageOf(keyring, key, query.minutes ?? 60) }
      },
    }),
  ]
}
