import { z } from 'zod'
import { adminAccessOf, manageableKey } from './admin-access.js'
import { defineRoute, type RouteSpec } from './route-spec.js'
import { allowedIpsSchema, errorSchema, keyParams, keyResponse } from './schemas.js'

const allowedIpsBody = z.strictObject({
  allowedIps: allowedIpsSchema.nullable().describe('Client IPs or CIDR ranges the key may be used from (replaces the list); null: any IP.'),
})

/**
 * `POST /v1/keys/:id/allowed-ips`: changes a key's IP allowlist in place, on
 * every replica at once (docs/policies.md#ip-allowlists). Same admin access
 * rules as the other key routes (admin-routes.ts).
 */
export function allowlistRoutes(errors: RouteSpec['responses']): RouteSpec[] {
  return [
    defineRoute({
      method: 'post',
      path: '/v1/keys/:id/allowed-ips',
      operationId: 'setKeyAllowedIps',
      summary: "Set or lift a key's IP allowlist: `{allowedIps: ['203.0.113.0/24']}` or `{allowedIps: null}`.",
      auth: 'admin',
      params: keyParams,
      body: allowedIpsBody,
      responses: {
        200: { description: 'The key with its new list.', schema: keyResponse },
        404: { description: 'KEYROT_KEY_NOT_FOUND: no key with this id that this admin key may manage.', schema: errorSchema },
        ...errors,
      },
      async handler({ keyring, params, body, res }) {
        await manageableKey(keyring, adminAccessOf(res), params.id)
        return { status: 200, body: { key: await keyring.setAllowedIps(params.id, body.allowedIps) } }
      },
    }),
  ]
}
