import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { ensureBuilt, killChildren, runKeyrot, startServe, type ServeProcess } from './keyrot-bin.js'

/**
 * Rotation policies and evidence end to end, as an operator runs them:
 * `keyrot serve` on a real redis-server (the admin API sets a tenant's
 * policy, verifies carry the warning headers, enforcement expires), then the
 * evidence report from the admin API and from `keyrot report`, whose "who"
 * columns come from the history that serve and the CLI recorded.
 */

let redis: RedisServer
let serve: ServeProcess
let adminToken: string
let adminId: string

const store = () => ['--redis', redis.url]

async function api(method: string, path: string, token: string, body?: unknown) {
  const response = await fetch(`${serve.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await response.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: response.status, headers: response.headers, text, json }
}

beforeAll(async () => {
  ensureBuilt()
  redis = await startRedisServer()
  const created = await runKeyrot(['create', '--tenant', 'ops', '--name', 'admin', '--scopes', 'admin,admin:*', '--json', ...store()])
  expect(created.code, created.stderr).toBe(0)
  const body = JSON.parse(created.stdout)
  adminToken = body.token
  adminId = body.key.id
  serve = await startServe(store())
}, 90_000)

afterAll(async () => {
  killChildren()
  await redis?.stop()
})

describe('rotation policy and evidence through keyrot serve and the CLI', () => {
  it('sets a tenant policy through the admin API, warns, enforces, and reports who rotated and revoked what', async () => {
    const billing = await api('POST', '/v1/keys', adminToken, { tenantId: 'acme', name: 'billing' })
    const ci = await api('POST', '/v1/keys', adminToken, { tenantId: 'acme', name: 'ci' })
    const old = await api('POST', '/v1/keys', adminToken, { tenantId: 'acme', name: 'old' })
    expect([billing.status, ci.status, old.status]).toEqual([201, 201, 201])
    const token = billing.json.token as string
    const billingKey = billing.json.key as { id: string; createdAt: number }

    expect((await api('GET', '/v1/whoami', token)).headers.get('deprecation')).toBeNull()

    // Warnings start at once: the warning window is the whole maximum age (a longer one is refused).
    expect((await api('POST', '/v1/tenants/acme/policy', adminToken, { maxAge: '1h', rotationWarning: '2h' })).json.error).toMatchObject({ code: 'KEYROT_INVALID_INPUT', field: 'rotationWarning' })
    const set = await api('POST', '/v1/tenants/acme/policy', adminToken, { maxAge: '1h', rotationWarning: '1h' })
    expect(set.status, set.text).toBe(200)
    expect(set.json.policy).toEqual({ tenantId: 'acme', override: { maxAgeMs: 3_600_000, rotationWarningMs: 3_600_000 }, policy: { maxAgeMs: 3_600_000, rotationWarningMs: 3_600_000, enforce: false } })
    const warned = await api('GET', '/v1/whoami', token)
    expect(warned.status).toBe(200)
    expect(warned.headers.get('deprecation')).toBe(`@${Math.floor((billingKey.createdAt + 3_600_000) / 1000)}`)
    expect(warned.headers.get('sunset')).toBeNull()
    expect((await api('GET', '/v1/tenants/acme/policy', adminToken)).json.policy.override).toEqual({ maxAgeMs: 3_600_000, rotationWarningMs: 3_600_000 })
    expect((await api('POST', '/v1/tenants/acme/policy', adminToken, { maxAge: 'soon' })).status).toBe(400)
    // Out of range: 400 naming the body's field, not core's maxAgeMs.
    const huge = await api('POST', '/v1/tenants/acme/policy', adminToken, { maxAge: 8.64e15 })
    expect(huge.status).toBe(400)
    expect(huge.json.error).toMatchObject({ code: 'KEYROT_INVALID_INPUT', field: 'maxAge' })
    expect(huge.json.error.message).toMatch(/^Invalid maxAge: must be at most 100 years/)

    // Admin actions through the API, recorded with the admin key as actor; one through the CLI.
    expect((await api('POST', `/v1/keys/${ci.json.key.id}/rotate`, adminToken, { gracePeriod: '1h' })).status).toBe(201)
    expect((await api('POST', `/v1/keys/${old.json.key.id}/revoke`, adminToken, { reason: 'unused' })).status).toBe(200)
    const cliRevoke = await api('POST', '/v1/keys', adminToken, { tenantId: 'acme', name: 'cli-revoked' })
    const revoked = await runKeyrot(['revoke', cliRevoke.json.key.id, '--reason', 'offboarding', '--yes', ...store()], { env: { USER: 'auditor' } })
    expect(revoked.code, revoked.stderr).toBe(0)

    // Enforced and overdue (1 ms old is older than the maximum age): the proven key fails as expired.
    await new Promise((resolve) => setTimeout(resolve, 5))
    expect((await api('POST', '/v1/tenants/acme/policy', adminToken, { maxAge: 1, enforce: true })).status).toBe(200)
    const expired = await api('GET', '/v1/whoami', token)
    expect(expired.status).toBe(401)
    expect(expired.json.error.code).toBe('KEYROT_KEY_EXPIRED')

    // The report from the admin API, as CSV: the summary is the last line.
    const csv = await api('GET', '/v1/report?tenant=acme&format=csv', adminToken)
    expect(csv.status).toBe(200)
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/)
    const lines = csv.text.trimEnd().split('\n')
    expect(lines[0]).toContain('key_id,tenant_id,name,state,created_at,last_rotated_at,age_days,due_at,compliance,last_used_at,uses_30d,rotated_by,revoked_by')
    expect(lines.at(-1)).toMatch(/^# summary: keys=5 compliant=\d+ due=0 overdue=\d+ /)

    // The same report as JSON Lines from `keyrot report`, once serve flushed its usage counts (every second).
    await expect
      .poll(
        async () => {
          const report = await runKeyrot(['report', '--tenant', 'acme', '--format', 'json', ...store()])
          expect(report.code, report.stderr).toBe(0)
          const rows = report.stdout.trimEnd().split('\n').map((line) => JSON.parse(line))
          return rows.find((row) => row.keyId === billingKey.id)?.usesLast30Days
        },
        { timeout: 10_000, interval: 500 },
      )
      .toBe(2)
    const report = await runKeyrot(['report', '--tenant', 'acme', '--format', 'json', ...store()])
    const rows = report.stdout.trimEnd().split('\n').map((line) => JSON.parse(line))
    const summary = rows.pop()
    const byId = new Map(rows.map((row) => [row.keyId, row]))
    expect(byId.get(billingKey.id)).toMatchObject({ tenantId: 'acme', state: 'active', compliance: 'overdue', dueAt: new Date(billingKey.createdAt + 1).toISOString() })
    expect(byId.get(billingKey.id).lastUsedAt).not.toBeNull()
    expect(byId.get(ci.json.key.id)).toMatchObject({ state: 'grace', compliance: 'retired', rotatedBy: `api-key:${adminId}` })
    expect(byId.get(old.json.key.id)).toMatchObject({ state: 'revoked', revokedBy: `api-key:${adminId}` })
    expect(byId.get(cliRevoke.json.key.id)).toMatchObject({ state: 'revoked', revokedBy: 'cli:auditor' })
    const successor = rows.find((row) => row.name === 'ci' && row.keyId !== ci.json.key.id)
    expect(successor).toMatchObject({ rotatedBy: `api-key:${adminId}`, compliance: 'overdue' })
    expect(summary).toMatchObject({ summary: { keys: 5, compliant: 3, due: 0, overdue: 2 } })

    // Server policy flags out of range are a usage error (exit 2), not a crash printing a due date past the range of a Date.
    for (const flags of [['--max-age', '99999999d'], ['--max-age', '1d', '--rotation-warning', '14d']]) {
      const refused = await runKeyrot(['report', ...flags, ...store()])
      expect(refused.code, refused.stderr).toBe(2)
      expect(refused.stderr).toMatch(/--max-age|--rotation-warning/)
      expect(refused.stderr).not.toMatch(/RangeError|at .*\.js/)
    }

    // CLI: the tenant's policy as stored, then cleared.
    const shown = await runKeyrot(['policy', 'get', '--tenant', 'acme', '--json', ...store()])
    expect(JSON.parse(shown.stdout).policy.override).toEqual({ maxAgeMs: 1, enforce: true })
    expect((await runKeyrot(['policy', 'set', '--tenant', 'acme', '--clear', ...store()])).code).toBe(0)
    const cleared = await runKeyrot(['policy', 'get', '--tenant', 'acme', '--json', ...store()])
    expect(JSON.parse(cleared.stdout).policy.override).toBeNull()
  }, 90_000)
})
