import { buildEvidenceReport, InvalidInputError, evidenceCsv, evidenceJsonLines, keysDueForRotation, parseDuration, type TenantPolicy } from '@keyrot/core'
import { z } from 'zod'
import { adminAccessOf, assertTenant, listedTenant } from './admin-access.js'
import { defineRoute, type RouteSpec } from './route-spec.js'
import { apiKeySchema, durationSchema, errorSchema } from './schemas.js'

const errors = {
  400: { description: 'KEYROT_INVALID_INPUT: a field is missing, of the wrong type, unknown, or not valid (`error.field` names it).', schema: errorSchema },
  401: { description: 'No key, or a key that is not valid (RFC 6750 challenge).', schema: errorSchema },
  403: { description: "KEYROT_INSUFFICIENT_SCOPE, or KEYROT_ADMIN_TENANT_FORBIDDEN: a tenant other than the admin key's own (needs admin:*).", schema: errorSchema },
  503: { description: 'KEYROT_STORE_UNAVAILABLE: the key store did not answer (Retry-After).', schema: errorSchema },
}

const tenantParams = z.strictObject({ tenantId: z.string().min(1).max(128) })

const policyShape = z.object({ maxAgeMs: z.number().int(), rotationWarningMs: z.number().int(), enforce: z.boolean() })
const policyResponse = z.object({
  policy: z.object({
    tenantId: z.string(),
    override: policyShape.partial().nullable().describe('The tenant override; null when the tenant follows the server policy.'),
    policy: policyShape.describe('The policy in force. maxAgeMs 0: no maximum age.'),
  }),
})

export const tenantPolicyBody = z
  .strictObject({
    maxAge: durationSchema.optional().describe("Age at which a key is due, e.g. '90d'. 0 turns the maximum age off for the tenant."),
    rotationWarning: durationSchema.optional().describe("How long before maxAge warnings start, e.g. '14d'."),
    enforce: z.boolean().optional().describe('Overdue keys fail verification as KEYROT_KEY_EXPIRED.'),
    clear: z.literal(true).optional().describe('Remove the override: the tenant follows the server policy again. Alone.'),
  })
  .refine((body) => body.clear === undefined || Object.keys(body).length === 1, { message: 'clear takes no other field', path: ['clear'] })

const BODY_FIELDS: Record<string, string> = { maxAgeMs: 'maxAge', rotationWarningMs: 'rotationWarning' }

export const reportQuery = z.strictObject({
  tenant: z.string().min(1).max(128).optional().describe("Only this tenant's keys. Default: the admin key's tenant, or every tenant with admin:*."),
  format: z.enum(['json', 'csv']).optional().describe('json (JSON Lines, one key a line; default) or csv. Either way the last line is the summary.'),
})

/** The body of `POST /v1/tenants/:tenantId/policy` as the override to store. */
export function overrideOf(body: z.output<typeof tenantPolicyBody>): TenantPolicy | null {
  if (body.clear) return null
  const override: TenantPolicy = {}
  if (body.maxAge !== undefined) override.maxAgeMs = parseDuration(body.maxAge, 'maxAge')
  if (body.rotationWarning !== undefined) override.rotationWarningMs = parseDuration(body.rotationWarning, 'rotationWarning')
  if (body.enforce !== undefined) override.enforce = body.enforce
  return override
}

/**
 * Rotation policies and the evidence report (docs/policies.md). Tenant
 * scoping as everywhere in the admin API: a tenant's admin key reads and
 * sets its own tenant's policy and reports on its own keys.
 */
export function policyRoutes(): RouteSpec[] {
  return [
    defineRoute({
      method: 'get',
      path: '/v1/tenants/:tenantId/policy',
      operationId: 'getTenantPolicy',
      summary: "A tenant's rotation policy: its override and the policy in force.",
      auth: 'admin',
      params: tenantParams,
      responses: { 200: { description: 'The policy.', schema: policyResponse }, ...errors },
      async handler({ keyring, params, res }) {
        assertTenant(adminAccessOf(res), params.tenantId)
        return { status: 200, body: { policy: await keyring.tenantPolicy(params.tenantId) } }
      },
    }),
    defineRoute({
      method: 'post',
      path: '/v1/tenants/:tenantId/policy',
      operationId: 'setTenantPolicy',
      summary: "Set a tenant's rotation policy override (fields left out follow the server policy), or remove it with {clear: true}.",
      auth: 'admin',
      params: tenantParams,
      body: tenantPolicyBody,
      responses: { 200: { description: 'The policy after the change.', schema: policyResponse }, ...errors },
      async handler({ keyring, params, body, res }) {
        assertTenant(adminAccessOf(res), params.tenantId)
        try {
          return { status: 200, body: { policy: await keyring.setTenantPolicy(params.tenantId, overrideOf(body)) } }
        } catch (error) {
          // Core names the stored fields (maxAgeMs); the caller sent maxAge.
          if (!(error instanceof InvalidInputError) || BODY_FIELDS[error.field] === undefined) throw error
          throw new InvalidInputError(BODY_FIELDS[error.field] as string, error.message.replace(/^Invalid \w+: (tenant policy \w+ )?/, ''))
        }
      },
    }),
    defineRoute({
      method: 'get',
      path: '/v1/keys/due',
      operationId: 'listKeysDueForRotation',
      summary: 'Active keys due for rotation (in the warning window) or overdue under their tenant\'s rotation policy, soonest due first.',
      auth: 'admin',
      query: z.strictObject({ tenant: z.string().min(1).max(128).optional().describe('Only this tenant.') }),
      responses: {
        200: {
          description: 'The keys, each with `dueAt` (epoch ms) and `compliance` (`due` or `overdue`).',
          schema: z.object({ keys: z.array(apiKeySchema.extend({ dueAt: z.number(), compliance: z.enum(['due', 'overdue']) })) }),
        },
        ...errors,
      },
      async handler({ keyring, query, res }) {
        return { status: 200, body: { keys: await keysDueForRotation(keyring, listedTenant(adminAccessOf(res), query.tenant)) } }
      },
    }),
    defineRoute({
      method: 'get',
      path: '/v1/report',
      operationId: 'evidenceReport',
      summary: 'The compliance evidence report: every key with age, due date, state, usage and who rotated or revoked it; the last line is the summary.',
      auth: 'admin',
      query: reportQuery,
      responses: {
        200: { description: 'JSON Lines (application/x-ndjson) or CSV (text/csv); the last line is the summary.', contentType: 'application/x-ndjson' },
        ...errors,
      },
      async handler({ keyring, query, res }) {
        const scope = listedTenant(adminAccessOf(res), query.tenant)
        const report = await buildEvidenceReport(keyring, scope)
        if (query.format === 'csv') res.status(200).type('text/csv; charset=utf-8').send(evidenceCsv(report))
        else res.status(200).type('application/x-ndjson; charset=utf-8').send(evidenceJsonLines(report))
      },
    }),
  ]
}
