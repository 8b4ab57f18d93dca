import { InvalidInputError, parseDuration } from '@keyrot/core'
import { z } from 'zod'
import { adminAccessOf, assertTenant, listedTenant, manageableKey } from './admin-access.js'
import { defineRoute, type RouteSpec } from './route-spec.js'
import { endGraceWarningFor } from './rotation-routes.js'
import { assertSigningUsable, signingRoutes } from './signing-routes.js'
import { allowlistRoutes } from './allowlist-routes.js'
import { importRoutes } from './import-routes.js'
import {
  createKeyBody,
  emergencyResponse,
  emergencyRotateBody,
  errorSchema,
  expiringQuery,
  expiryBody,
  issuedResponse,
  keyParams,
  keyResponse,
  keysResponse,
  listQuery,
  revokeKeyBody,
  rotatedResponse,
  rotateKeyBody,
  unusedQuery,
} from './schemas.js'

const errors = {
  400: { description: 'KEYROT_INVALID_INPUT: a field is missing, of the wrong type, unknown, or not valid (`error.field` names it).', schema: errorSchema },
  401: { description: 'No key, or a key that is not valid (RFC 6750 challenge).', schema: errorSchema },
  403: {
    description: "KEYROT_INSUFFICIENT_SCOPE: the key has no admin scope; KEYROT_ADMIN_TENANT_FORBIDDEN: the request names a tenant other than the admin key's own (needs admin:*).",
    schema: errorSchema,
  },
  429: { description: 'KEYROT_RATE_LIMITED or KEYROT_IP_BLOCKED: too many requests or failed attempts (Retry-After).', schema: errorSchema },
  503: { description: 'KEYROT_STORE_UNAVAILABLE: the key store did not answer (Retry-After).', schema: errorSchema },
}
const bodyErrors = { 413: { description: 'KEYROT_PAYLOAD_TOO_LARGE: the body is over the limit.', schema: errorSchema } }
const notFound = { 404: { description: 'KEYROT_KEY_NOT_FOUND: no key with this id that this admin key may manage (another tenant\'s key reads the same).', schema: errorSchema } }
const signingErrors = { 501: { description: 'KEYROT_SIGNING_NOT_CONFIGURED: the key is a signing secret and the server has no master keys.', schema: errorSchema } }
const conflict = {
  409: { description: 'KEYROT_ALREADY_ROTATED, KEYROT_KEY_REVOKED or KEYROT_KEY_EXPIRED: the key is past the state this change needs.', schema: errorSchema },
}

/** `since` as an instant: an ISO 8601 date-time, or a duration ago ('30d'). */
function sinceInstant(since: string, now: number): number {
  if (/^\d{4}-\d{2}-\d{2}/.test(since)) {
    const at = Date.parse(since)
    if (Number.isFinite(at)) return at
  } else {
    try {
      return now - parseDuration(since, 'since')
    } catch {
      // reported below
    }
  }
  throw new InvalidInputError('since', "must be an ISO 8601 date-time or a duration ago such as '30d'")
}

/**
 * The admin API: every route needs a key with the admin scope, and manages
 * only the tenants that key may manage (its own, or every one with
 * `admin:*`): see `admin-access.ts`. A key of another tenant answers exactly
 * as an unknown key id does.
 */
export const adminRoutes: readonly RouteSpec[] = [
  defineRoute({
    method: 'post',
    path: '/v1/keys',
    operationId: 'createKey',
    summary: 'Create a key. The token is in this response only.',
    auth: 'admin',
    body: createKeyBody,
    responses: { 201: { description: 'The key and its token.', schema: issuedResponse }, ...errors, ...bodyErrors },
    async handler({ keyring, body, res }) {
      assertTenant(adminAccessOf(res), body.tenantId)
      const issued = await keyring.create(body)
      return { status: 201, body: { token: issued.token, key: issued.key } }
    },
  }),
  defineRoute({
    method: 'get',
    path: '/v1/keys',
    operationId: 'listKeys',
    summary: 'List keys, newest first.',
    auth: 'admin',
    query: listQuery,
    responses: { 200: { description: 'The keys.', schema: keysResponse }, ...errors },
    async handler({ keyring, query, res }) {
      const keys = await keyring.list({
        ...listedTenant(adminAccessOf(res), query.tenant),
        ...(query.state === undefined ? {} : { state: query.state }),
        ...(query.limit === undefined ? {} : { limit: query.limit }),
      })
      return { status: 200, body: { keys } }
    },
  }),
  defineRoute({
    method: 'get',
    path: '/v1/keys/expiring',
    operationId: 'listExpiringKeys',
    summary: 'Keys still working that stop within a window (grace periods and planned expiries), soonest first.',
    auth: 'admin',
    query: expiringQuery,
    responses: { 200: { description: 'The keys.', schema: keysResponse }, ...errors },
    async handler({ keyring, query, res }) {
      const keys = await keyring.expiringWithin(query.within, listedTenant(adminAccessOf(res), query.tenant))
      return { status: 200, body: { keys } }
    },
  }),
  defineRoute({
    method: 'get',
    path: '/v1/keys/unused',
    operationId: 'listUnusedKeys',
    summary: 'Working keys not used since an instant (never-used keys count when created before it).',
    auth: 'admin',
    query: unusedQuery,
    responses: { 200: { description: 'The keys.', schema: keysResponse }, ...errors },
    async handler({ keyring, query, res }) {
      const since = sinceInstant(query.since, keyring.clock.now())
      const keys = await keyring.unusedSince(since, listedTenant(adminAccessOf(res), query.tenant))
      return { status: 200, body: { keys } }
    },
  }),
  defineRoute({
    method: 'get',
    path: '/v1/keys/:id',
    operationId: 'getKey',
    summary: 'One key: state, expiry, usage, lineage links.',
    auth: 'admin',
    params: keyParams,
    responses: { 200: { description: 'The key.', schema: keyResponse }, ...errors, ...notFound },
    async handler({ keyring, params, res }) {
      return { status: 200, body: { key: await manageableKey(keyring, adminAccessOf(res), params.id) } }
    },
  }),
  defineRoute({
    method: 'post',
    path: '/v1/keys/:id/rotate',
    operationId: 'rotateKey',
    summary: 'Issue a successor; the old key keeps working for the grace period.',
    auth: 'admin',
    params: keyParams,
    body: rotateKeyBody,
    bodyOptional: true,
    responses: { 201: { description: 'The new key and its token; `previous` is the old key.', schema: rotatedResponse }, ...errors, ...notFound, ...conflict, ...bodyErrors, ...signingErrors },
    async handler({ keyring, params, body, res }) {
      assertSigningUsable(keyring, await manageableKey(keyring, adminAccessOf(res), params.id))
      const { gracePeriod, ...rest } = body
      const rotated = await keyring.rotate(params.id, { ...rest, ...(gracePeriod === undefined ? {} : { gracePeriod }) })
      return { status: 201, body: { token: rotated.token, key: rotated.key, previous: rotated.previous } }
    },
  }),
  defineRoute({
    method: 'post',
    path: '/v1/keys/:id/revoke',
    operationId: 'revokeKey',
    summary: 'Revoke a key at once, on every replica. Revoking a revoked key keeps the first reason.',
    auth: 'admin',
    params: keyParams,
    body: revokeKeyBody,
    responses: { 200: { description: 'The revoked key.', schema: keyResponse }, ...errors, ...notFound, ...bodyErrors },
    async handler({ keyring, params, body, res }) {
      await manageableKey(keyring, adminAccessOf(res), params.id)
      return { status: 200, body: { key: await keyring.revoke(params.id, { reason: body.reason }) } }
    },
  }),
  defineRoute({
    method: 'post',
    path: '/v1/keys/:id/emergency-rotate',
    operationId: 'emergencyRotateKey',
    summary: 'For a leaked key: revoke it now and issue its successor, with no grace period.',
    auth: 'admin',
    params: keyParams,
    body: emergencyRotateBody,
    responses: { 201: { description: 'The new key and its token; `revoked` is the old key.', schema: emergencyResponse }, ...errors, ...notFound, ...conflict, ...bodyErrors, ...signingErrors },
    async handler({ keyring, params, body, res }) {
      assertSigningUsable(keyring, await manageableKey(keyring, adminAccessOf(res), params.id))
      const result = await keyring.emergencyRotate(params.id, body)
      return { status: 201, body: { token: result.token, key: result.key, revoked: result.revoked } }
    },
  }),
  defineRoute({
    method: 'post',
    path: '/v1/keys/:id/expiry',
    operationId: 'setKeyExpiry',
    summary: 'Set, extend or end a deadline: `{expiresAt}`, `{extendBy}` or `{endNow: true}`.',
    auth: 'admin',
    params: keyParams,
    body: expiryBody,
    responses: {
      200: {
        description: 'The key with its new deadline; with `endNow`, `warning` says when replicas served the old key in the last 15 minutes.',
        schema: keyResponse.extend({ warning: z.string().optional() }),
      },
      ...errors,
      ...notFound,
      ...conflict,
      ...bodyErrors,
    },
    async handler({ keyring, params, body, res }) {
      await manageableKey(keyring, adminAccessOf(res), params.id)
      let key
      if (body.endNow) {
        const warning = await endGraceWarningFor(keyring, params.id)
        key = await keyring.endGrace(params.id)
        return { status: 200, body: warning === null ? { key } : { key, warning } }
      }
      else if (body.extendBy !== undefined) key = await keyring.extendGrace(params.id, body.extendBy)
      else key = await keyring.setExpiry(params.id, body.expiresAt ?? null)
      return { status: 200, body: { key } }
    },
  }),
  ...signingRoutes({ ...errors, ...bodyErrors }),
  ...allowlistRoutes({ ...errors, ...bodyErrors }),
  ...importRoutes({ ...errors, ...bodyErrors }),
]
