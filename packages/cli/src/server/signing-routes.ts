import { KeyrotError, SIGNING_PREFIX, type ApiKey, type Keyring } from '@keyrot/core'
import { z } from 'zod'
import { adminAccessOf, assertTenant } from './admin-access.js'
import { defineRoute, type RouteSpec } from './route-spec.js'
import { apiKeySchema, durationSchema, errorSchema, timestampSchema } from './schemas.js'

/** The server has no master keys, so it can neither seal a new signing secret nor open an old one. */
export class SigningNotConfiguredError extends KeyrotError {
  constructor() {
    super(
      'KEYROT_SIGNING_NOT_CONFIGURED',
      'Signing secrets need master keys: start the server with KEYROT_MASTER_KEYS="id:base64key" (docs/signing.md). Nothing was changed.',
    )
  }
}

/**
 * Throws `SigningNotConfiguredError` when `key` is a signing secret and the
 * keyring has no master keys: rotating one would otherwise fail deep in the
 * keyring with an error that reads like a store outage.
 */
export function assertSigningUsable(keyring: Keyring, key: Pick<ApiKey, 'prefix'>): void {
  if (key.prefix === SIGNING_PREFIX && keyring.options.signing === null) throw new SigningNotConfiguredError()
}

export const createSigningSecretBody = z
  .strictObject({
    tenantId: z.string().min(1).max(128).describe('Tenant the secret belongs to.'),
    name: z.string().min(1).max(200).describe('A name people recognise, e.g. "webhooks".'),
    expiresAt: timestampSchema.nullable().optional().describe('When the secret stops working. Default: never.'),
    expiresIn: durationSchema.optional().describe("Lifetime from now, e.g. '365d' (instead of expiresAt)."),
    metadata: z.record(z.string(), z.unknown()).optional().describe('JSON object stored with the secret (at most 8 KiB).'),
  })
  .refine((body) => !(body.expiresAt !== undefined && body.expiresAt !== null && body.expiresIn !== undefined), {
    message: 'send expiresAt or expiresIn, not both',
    path: ['expiresIn'],
  })

export const issuedSecretResponse = z.object({ secret: z.string().describe('The plaintext signing secret (whsec_...): shown only in this response.'), key: apiKeySchema })

/**
 * `POST /v1/signing-secrets`: signing secrets for HMAC webhooks and signed
 * requests. Rotate, revoke and inspect them through the `/v1/keys/:id`
 * routes, like API keys.
 */
export function signingRoutes(errors: RouteSpec['responses']): RouteSpec[] {
  return [
    defineRoute({
      method: 'post',
      path: '/v1/signing-secrets',
      operationId: 'createSigningSecret',
      summary: 'Create a signing secret (needs KEYROT_MASTER_KEYS). The secret is in this response only.',
      auth: 'admin',
      body: createSigningSecretBody,
      responses: {
        201: { description: 'The secret and its record.', schema: issuedSecretResponse },
        ...errors,
        501: { description: 'KEYROT_SIGNING_NOT_CONFIGURED: the server has no master keys.', schema: errorSchema },
      },
      async handler({ keyring, body, res }) {
        assertTenant(adminAccessOf(res), body.tenantId)
        if (keyring.options.signing === null) throw new SigningNotConfiguredError()
        const issued = await keyring.createSigningSecret(body)
        return { status: 201, body: { secret: issued.secret, key: issued.key } }
      },
    }),
  ]
}
