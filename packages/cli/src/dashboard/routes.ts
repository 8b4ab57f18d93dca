import { z } from 'zod'
import { adminAccessOf, manageableKey } from '../server/admin-access.js'
import { defineRoute, type RouteSpec } from '../server/route-spec.js'
import { errorSchema, keyParams, minutesQuery } from '../server/schemas.js'
import type { UsageTracker } from './usage-tracker.js'

const errors = {
  400: { description: 'KEYROT_INVALID_INPUT: a path or query parameter is not valid (`error.field` names it).', schema: errorSchema },
  401: { description: 'No key, or a key that is not valid (RFC 6750 challenge).', schema: errorSchema },
  403: { description: 'KEYROT_INSUFFICIENT_SCOPE: the key has no admin scope.', schema: errorSchema },
  404: { description: "KEYROT_KEY_NOT_FOUND: no key with this id that this admin key may manage (another tenant's key reads the same).", schema: errorSchema },
  429: { description: 'KEYROT_RATE_LIMITED or KEYROT_IP_BLOCKED: too many requests or failed attempts (Retry-After).', schema: errorSchema },
  503: { description: 'KEYROT_STORE_UNAVAILABLE: the key store did not answer (Retry-After).', schema: errorSchema },
}

const tracked = {
  trackedSince: z.number().describe('Epoch ms when this server process started counting: earlier traffic is not in these figures.'),
  scope: z.literal('process').describe('Counted by the server process that answered; each replica counts its own requests.'),
  now: z.number().describe("The server's clock when it answered, epoch ms."),
}

export const keyUsageResponse = z
  .object({
    keyId: z.string(),
    from: z.number().describe('Start of the first minute, epoch ms.'),
    bucketMs: z.number().describe('Length of a bucket: 60000.'),
    counts: z.array(z.number()).describe('Successful requests per minute, oldest first; the last is the current minute.'),
    ...tracked,
  })
  .meta({ id: 'KeyUsagePerMinute' })

export const graceClientsResponse = z
  .object({
    keyId: z.string(),
    clients: z.array(
      z.object({
        clientIp: z.string().nullable(),
        userAgent: z.string().nullable().describe('Cut to 256 characters.'),
        requests: z.number(),
        firstSeenAt: z.number(),
        lastSeenAt: z.number(),
      }),
    ),
    omittedClients: z.number().describe('Clients forgotten because more distinct clients used the key than the server keeps (50 by default).'),
    ...tracked,
  })
  .meta({ id: 'GraceClients' })

/**
 * Admin routes over the usage tracker: requests per minute of a key, and the
 * clients still using a key in its grace period. What the dashboard draws a
 * rotation with.
 */
export function usageRoutes(tracker: UsageTracker): RouteSpec[] {
  const usageQuery = minutesQuery(tracker.retentionMinutes)

  return [
    defineRoute({
      method: 'get',
      path: '/v1/keys/:id/usage',
      operationId: 'getKeyUsage',
      summary: 'Successful requests per minute of a key, as counted by this server process since it started.',
      auth: 'admin',
      params: keyParams,
      query: usageQuery,
      responses: { 200: { description: 'Counts per minute.', schema: keyUsageResponse }, ...errors },
      async handler({ keyring, params, query, res }) {
        await manageableKey(keyring, adminAccessOf(res), params.id)
        const now = keyring.clock.now()
        const usage = tracker.perMinute(params.id, query.minutes ?? 60, now)
        return { status: 200, body: { keyId: params.id, ...usage, trackedSince: tracker.trackedSince, scope: 'process', now } }
      },
    }),
    defineRoute({
      method: 'get',
      path: '/v1/keys/:id/grace-clients',
      operationId: 'getGraceClients',
      summary: 'Clients (IP, user agent) that used a key during its grace period, most recent first, as seen by this server process.',
      auth: 'admin',
      params: keyParams,
      query: z.strictObject({}),
      responses: { 200: { description: 'The clients.', schema: graceClientsResponse }, ...errors },
      async handler({ keyring, params, res }) {
        await manageableKey(keyring, adminAccessOf(res), params.id)
        const { clients, omittedClients } = tracker.graceClients(params.id)
        return {
          status: 200,
          body: { keyId: params.id, clients, omittedClients, trackedSince: tracker.trackedSince, scope: 'process', now: keyring.clock.now() },
        }
      },
    }),
  ]
}
