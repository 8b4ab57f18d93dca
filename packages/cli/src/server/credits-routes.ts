import { MAX_CREDITS } from '@keyrot/core'
import { z } from 'zod'
import { adminAccessOf, manageableKey } from './admin-access.js'
import { defineRoute, type RouteSpec } from './route-spec.js'
import { errorSchema, keyParams } from './schemas.js'

const errors = {
  400: { description: 'KEYROT_INVALID_INPUT: the body is not valid, or the key was created without credits (`error.field` names it).', schema: errorSchema },
  401: { description: 'No key, or a key that is not valid (RFC 6750 challenge).', schema: errorSchema },
  403: { description: 'KEYROT_INSUFFICIENT_SCOPE: the key has no admin scope.', schema: errorSchema },
  404: { description: "KEYROT_KEY_NOT_FOUND: no key with this id that this admin key may manage (another tenant's key reads the same).", schema: errorSchema },
  413: { description: 'KEYROT_PAYLOAD_TOO_LARGE: the body is over the limit.', schema: errorSchema },
  429: { description: 'KEYROT_RATE_LIMITED or KEYROT_IP_BLOCKED: too many requests or failed attempts (Retry-After).', schema: errorSchema },
  503: { description: 'KEYROT_STORE_UNAVAILABLE: the key store did not answer (Retry-After).', schema: errorSchema },
}

const count = z.number().int().min(0).max(MAX_CREDITS)

export const creditsSchema = z
  .object({
    keyId: z.string(),
    familyId: z.string().describe('Every key rotated from one another shares the family, and its balance.'),
    remaining: z.number().describe('Credits left now (refills due are counted).'),
    nextRefillAt: z.number().nullable().describe('Epoch ms of the next refill; null without refill.'),
    refill: z.object({ amount: z.number(), intervalMs: z.number() }).nullable(),
  })
  .meta({ id: 'KeyCredits' })

export const creditsResponse = z.object({ credits: creditsSchema.nullable().describe('null: the key has no credits (unlimited).') })

export const creditsBody = z
  .strictObject({
    set: count.optional().describe('The new balance.'),
    add: z.number().int().min(-MAX_CREDITS).max(MAX_CREDITS).optional().describe('Credits to add (negative takes away, never below 0).'),
  })
  .refine((body) => (body.set === undefined) !== (body.add === undefined), { message: 'send exactly one of set, add' })

/**
 * Credits of a key's family: read them, set them or add to them. Tenant
 * scoping as every admin route: another tenant's key answers as an unknown id.
 */
export function creditsRoutes(): RouteSpec[] {
  return [
    defineRoute({
      method: 'get',
      path: '/v1/keys/:id/credits',
      operationId: 'getKeyCredits',
      summary: "Credits left to a key's family and its next refill; null for a key without credits.",
      auth: 'admin',
      params: keyParams,
      responses: { 200: { description: 'The credits.', schema: creditsResponse }, ...errors },
      async handler({ keyring, params, res }) {
        await manageableKey(keyring, adminAccessOf(res), params.id)
        return { status: 200, body: { credits: await keyring.credits(params.id) } }
      },
    }),
    defineRoute({
      method: 'post',
      path: '/v1/keys/:id/credits',
      operationId: 'changeKeyCredits',
      summary: "Set (`{set}`) or add to (`{add}`) the credits of a key's family.",
      auth: 'admin',
      params: keyParams,
      body: creditsBody,
      responses: { 200: { description: 'The credits after the change.', schema: creditsResponse }, ...errors },
      async handler({ keyring, params, body, res }) {
        await manageableKey(keyring, adminAccessOf(res), params.id)
        const credits = body.set !== undefined ? await keyring.setCredits(params.id, body.set) : await keyring.addCredits(params.id, body.add as number)
        return { status: 200, body: { credits } }
      },
    }),
  ]
}
