import { z } from 'zod'
import { adminAccessOf, assertTenant } from './admin-access.js'
import { defineRoute, type RouteSpec } from './route-spec.js'
import { allowedIpsSchema, durationSchema, errorSchema, keyResponse, metadata, scopes, tenantId, text, timestampSchema } from './schemas.js'

/** One key to import: `keyring.import()`'s input (as a line of `keyrot import --file`). */
const importKeyBody = z
  .strictObject({
    tenantId: tenantId.describe('Tenant the key belongs to.'),
    name: text.describe('A name people recognise, e.g. "ci".'),
    scopes: scopes.optional().describe('Scopes the key grants.'),
    expiresAt: timestampSchema.nullable().optional().describe('When the key stops working. Default: never.'),
    metadata: metadata.optional().describe('JSON object stored with the key (at most 8 KiB).'),
    rateLimit: z.strictObject({ limit: z.number().int().min(1).max(1e9), window: durationSchema }).optional().describe('Requests allowed per window.'),
    credits: z
      .strictObject({
        remaining: z.number().int().min(0).max(1e15),
        refill: z.strictObject({ amount: z.number().int().min(1).max(1e15), interval: durationSchema }).optional(),
      })
      .optional()
      .describe('Uses the key may spend. Default: unlimited.'),
    allowedIps: allowedIpsSchema.nullable().optional().describe('Client IPs or CIDR ranges the key may be used from. Default: any IP.'),
    token: z.string().min(1).max(512).optional().describe('The plaintext token in its existing format (one of the server\'s imported prefixes).'),
    legacy: z
      .strictObject({ sha256: z.string().max(64), tokenPrefix: z.string().min(1).max(32) })
      .optional()
      .describe('Instead of token: its unsalted SHA-256 (hex) and prefix; upgraded to Argon2id on the first successful verify.'),
  })
  .refine((body) => (body.token === undefined) !== (body.legacy === undefined), { message: 'give exactly one of token and legacy', path: ['token'] })

const importedResponse = keyResponse.extend({ created: z.boolean().describe('false: the token was imported before; the existing key is returned and nothing changed.') })

/**
 * `POST /v1/keys/import`: brings in one key from another system, verifying
 * in its existing format (docs/policies.md#importing-keys). Idempotent per
 * token: 201 when imported, 200 with the existing key when it was already.
 * The token (or its hash) is in the request only: never in the answer, logs
 * or errors. Needs the import key and prefixes (`KEYROT_IMPORT_KEY` or
 * `KEYROT_PROOF_KEY`, `KEYROT_IMPORTED_PREFIXES`): 501 without them.
 */
export function importRoutes(errors: RouteSpec['responses']): RouteSpec[] {
  return [
    defineRoute({
      method: 'post',
      path: '/v1/keys/import',
      operationId: 'importKey',
      summary: 'Import a key from another system (its plaintext token, or a legacy SHA-256); idempotent.',
      auth: 'admin',
      body: importKeyBody,
      responses: {
        200: { description: 'The token was imported before: the existing key.', schema: importedResponse },
        201: { description: 'The imported key.', schema: importedResponse },
        501: { description: 'KEYROT_IMPORT_NOT_CONFIGURED: the server has no import key or no imported prefixes.', schema: errorSchema },
        ...errors,
      },
      async handler({ keyring, body, res }) {
        assertTenant(adminAccessOf(res), body.tenantId)
        if (keyring.options.imports.prefixes.length === 0 || keyring.options.imports.key === null) {
          return {
            status: 501,
            body: { error: { code: 'KEYROT_IMPORT_NOT_CONFIGURED', message: 'This server imports no keys: set KEYROT_IMPORTED_PREFIXES and KEYROT_IMPORT_KEY (or KEYROT_PROOF_KEY).' } },
          }
        }
        const { key, created } = await keyring.import(body)
        return { status: created ? 201 : 200, body: { key, created } }
      },
    }),
  ]
}
