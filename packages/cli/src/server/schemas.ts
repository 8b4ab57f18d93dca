import { z } from 'zod'

/**
 * Shapes of the admin API's input. They check structure, types and sizes and
 * reject unknown fields; the keyring then checks content (tenant id
 * characters, scope syntax, metadata size, dates in the future), so the rules
 * live in one place. Each schema also feeds the OpenAPI document.
 */

const DURATION_PATTERN = '^\\d+(\\.\\d+)?\\s*(ms|s|m|h|d|w)$'

const DURATION_ERROR = "must be milliseconds or a duration such as '30s', '24h' or '7d'"

// The string branch repeats the message: a string that fails the pattern is reported by that branch, not by the union.
export const durationSchema = z.union(
  [z.number().int().nonnegative().max(8.64e15), z.string().max(32, DURATION_ERROR).regex(new RegExp(DURATION_PATTERN), DURATION_ERROR)],
  { error: DURATION_ERROR },
)

const durationQuery = z
  .string({ error: "must be a duration such as '24h' or '7d'" })
  .max(32)
  .regex(new RegExp(DURATION_PATTERN), "must be a duration such as '24h' or '7d'")

export const timestampSchema = z.union([z.number().int().nonnegative().max(8.64e15), z.iso.datetime({ offset: true })], {
  error: 'must be epoch milliseconds or an ISO 8601 date-time such as 2030-01-01T00:00:00Z',
})

export const keyIdSchema = z.string().regex(/^[0-9A-Za-z]{16}$/, 'must be a 16-character key id')

export const tenantId = z.string().min(1).max(128)
export const text = z.string().min(1).max(200)
export const scopes = z.array(z.string().min(1).max(64)).max(64)
export const metadata = z.record(z.string(), z.unknown())

export const keyParams = z.strictObject({ id: keyIdSchema })
/** A key's IP allowlist as sent; the keyring checks each entry (KEYROT_INVALID_INPUT names the bad one). */
export const allowedIpsSchema = z.array(z.string().min(1).max(64)).min(1).max(256)

/** `?minutes=`: how many minutes of per-minute figures, ending with the current one (1 to `max`, default 60). */
export function minutesQuery(max: number) {
  return z.strictObject({
    minutes: z
      .string()
      .regex(/^\d{1,6}$/, `must be a whole number of minutes from 1 to ${max}`)
      .transform(Number)
      .refine((minutes) => minutes >= 1 && minutes <= max, `must be a whole number of minutes from 1 to ${max}`)
      .optional()
      .describe(`How many minutes, ending with the current one. Default 60, at most ${max}.`),
  })
}

export const createKeyBody = z
  .strictObject({
    tenantId: tenantId.describe('Tenant the key belongs to.'),
    name: text.describe('A name people recognise, e.g. "ci".'),
    scopes: scopes.optional().describe('Scopes the key grants.'),
    expiresAt: timestampSchema.nullable().optional().describe('When the key stops working. Default: never.'),
    expiresIn: durationSchema.optional().describe("Lifetime from now, e.g. '90d' (instead of expiresAt)."),
    prefix: z.string().min(1).max(32).optional().describe("Token prefix, e.g. 'sk_test'. Default: the server's."),
    metadata: metadata.optional().describe('JSON object stored with the key (at most 8 KiB).'),
    rateLimit: z
      .strictObject({ limit: z.number().int().min(1).max(1e9), window: durationSchema })
      .optional()
      .describe('Requests allowed per window, kept across rotations.'),
    credits: z
      .strictObject({
        remaining: z.number().int().min(0).max(1e15),
        refill: z.strictObject({ amount: z.number().int().min(1).max(1e15), interval: durationSchema }).optional(),
      })
      .optional()
      .describe("Uses the key's family may spend; each successful verify spends 1 (or the route's cost). Default: unlimited."),
    allowedIps: allowedIpsSchema.nullable().optional().describe("Client IPs or CIDR ranges the key may be used from, e.g. ['203.0.113.0/24']. Default: any IP."),
  })
  .refine((body) => !(body.expiresAt !== undefined && body.expiresAt !== null && body.expiresIn !== undefined), {
    message: 'send expiresAt or expiresIn, not both',
    path: ['expiresIn'],
  })

export const rotateKeyBody = z.strictObject({
  gracePeriod: durationSchema.optional().describe("How long the old key keeps working. Default: the server's (24h). 0 ends it now."),
  name: text.optional(),
  scopes: scopes.optional(),
  metadata: metadata.optional(),
  expiresAt: timestampSchema.nullable().optional().describe("Expiry of the new key. Default: the old key's lifetime again, from now."),
})

export const revokeKeyBody = z.strictObject({
  reason: text.describe('Why, for the audit trail.'),
})

export const emergencyRotateBody = z.strictObject({
  incidentId: text.describe('Incident id, e.g. INC-42.'),
  reason: text.optional(),
})

export const expiryBody = z
  .strictObject({
    expiresAt: timestampSchema.nullable().optional().describe('New deadline; null removes it (not allowed during a grace period).'),
    extendBy: durationSchema.optional().describe('Move the deadline this much later (from now if it has passed).'),
    endNow: z.literal(true).optional().describe('End the key (its grace period) now.'),
  })
  .refine((body) => [body.expiresAt !== undefined, body.extendBy !== undefined, body.endNow !== undefined].filter(Boolean).length === 1, {
    message: 'send exactly one of expiresAt, extendBy, endNow',
  })

const STATES = ['active', 'grace', 'expired', 'revoked'] as const

export const listQuery = z.strictObject({
  tenant: tenantId.optional(),
  state: z.enum(STATES).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
})

export const expiringQuery = z.strictObject({
  within: durationQuery.describe("Window from now, e.g. '7d'."),
  tenant: tenantId.optional(),
})

export const unusedQuery = z.strictObject({
  since: z
    .string({ error: "must be an ISO 8601 date-time or a duration ago such as '30d'" })
    .max(64)
    .describe("An ISO 8601 date-time, or a duration ago such as '30d'."),
  tenant: tenantId.optional(),
})

export const emptyObject = z.strictObject({})

// ----------------------------------------------------------------- responses (OpenAPI only)

export const apiKeySchema = z
  .object({
    id: z.string(),
    familyId: z.string(),
    tenantId: z.string(),
    name: z.string(),
    prefix: z.string(),
    scopes: z.array(z.string()),
    metadata: metadata,
    state: z.enum(STATES),
    createdAt: z.number().describe('Epoch ms.'),
    expiresAt: z.number().nullable(),
    revokedAt: z.number().nullable(),
    revokedReason: z.string().nullable(),
    incidentId: z.string().nullable(),
    rotatedFrom: z.string().nullable(),
    rotatedTo: z.string().nullable(),
    rotatedAt: z.number().nullable(),
    rateLimit: z.object({ limit: z.number(), windowMs: z.number() }).nullable(),
    usageCount: z.number(),
    lastUsedAt: z.number().nullable(),
    lastUsedInGraceAt: z.number().nullable(),
    credits: z
      .object({ refill: z.object({ amount: z.number(), intervalMs: z.number() }).nullable() })
      .optional()
      .describe('Present when the key spends credits (the balance: GET /v1/keys/{id}/credits).'),
    allowedIps: z.array(z.string()).optional().describe('Client IP ranges the key may be used from; absent: any IP.'),
  })
  .meta({ id: 'ApiKey' })

export const errorSchema = z
  .object({
    error: z.object({
      code: z.string().describe('Stable KEYROT_* code (docs/errors.md).'),
      message: z.string(),
      field: z.string().optional().describe('The input field at fault, for KEYROT_INVALID_INPUT.'),
    }),
  })
  .meta({ id: 'Error' })

export const keyResponse = z.object({ key: apiKeySchema })
export const keysResponse = z.object({ keys: z.array(apiKeySchema) })
export const issuedResponse = z.object({ token: z.string().describe('The plaintext token: shown only in this response.'), key: apiKeySchema })
export const rotatedResponse = issuedResponse.extend({ previous: apiKeySchema })
export const emergencyResponse = issuedResponse.extend({ revoked: apiKeySchema })
export const whoamiResponse = z.object({ keyId: z.string(), tenantId: z.string(), name: z.string(), scopes: z.array(z.string()), state: z.enum(STATES) })
export const healthResponse = z.object({ status: z.enum(['ok', 'unavailable']) })
