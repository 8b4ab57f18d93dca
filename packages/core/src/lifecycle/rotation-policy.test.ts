import { describe, expect, it } from 'vitest'
import { MemoryHistoryLog } from '../audit/memory-history-log.js'
import { runAsActor } from '../audit/actor.js'
import { ManualClock } from '../clock.js'
import type { KeyringEvents } from '../events.js'
import { FastTestHasher } from '../hash/hasher.js'
import { authenticate } from '../http/authenticate.js'
import { buildEvidenceReport, evidenceCsv, evidenceJsonLines } from '../policy/evidence-report.js'
import { MemoryStore } from '../store/memory-store.js'
import type { KeyringOptions } from '../options.js'
import { createKeyring } from './keyring.js'

const DAY = 86_400_000

function setup(policy: KeyringOptions['policy'], extra: Partial<KeyringOptions> = {}) {
  const clock = new ManualClock(Date.UTC(2026, 0, 1))
  const store = (extra.store as MemoryStore | undefined) ?? new MemoryStore()
  const keyring = createKeyring({ clock, store, hasher: new FastTestHasher(), rateLimit: false, policy, ...extra })
  const due: KeyringEvents['key.rotation-due'][] = []
  keyring.on('key.rotation-due', (event) => due.push(event))
  return { clock, keyring, store, due }
}

describe('rotation policy at verify', () => {
  it('says nothing before maxAge - rotationWarning, then marks the key due, then overdue', async () => {
    const { clock, keyring } = setup({ maxAge: '90d', rotationWarning: '14d' })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    clock.advance(76 * DAY - 1)
    const before = await keyring.verify(token)
    expect(before.ok && before.rotation).toBeUndefined()

    clock.advance(1)
    const warned = await keyring.verify(token)
    expect(warned).toMatchObject({ ok: true, rotation: { dueAt: key.createdAt + 90 * DAY, warnFrom: key.createdAt + 76 * DAY, overdue: false, enforced: false } })

    clock.advance(14 * DAY)
    const overdue = await keyring.verify(token)
    // Without enforce an overdue key keeps working, with the warning.
    expect(overdue).toMatchObject({ ok: true, rotation: { overdue: true, enforced: false } })
  })

  it('expires an overdue key with enforce, only for a client that proved the secret', async () => {
    const { clock, keyring } = setup({ maxAge: '30d', rotationWarning: '7d', enforce: true })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    clock.advance(30 * DAY)
    const result = await keyring.verify(token)
    expect(result.ok).toBe(false)
    expect(!result.ok && result.error.code).toBe('KEYROT_KEY_EXPIRED')
    expect(!result.ok && (result.error as { expiredAt?: number }).expiredAt).toBe(key.createdAt + 30 * DAY)
    const wrong = `${token.slice(0, -8)}AAAAAAAA`
    const guessed = await keyring.verify(wrong)
    expect(!guessed.ok && guessed.error.code).not.toBe('KEYROT_KEY_EXPIRED')
  })

  it('leaves a rotated key in grace and revoked keys alone; the successor starts a new age', async () => {
    const { clock, keyring } = setup({ maxAge: '30d', rotationWarning: '7d', enforce: true }, { gracePeriod: '2d' })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    clock.advance(29 * DAY)
    const next = await keyring.rotate(key.id)
    clock.advance(1.5 * DAY)
    const old = await keyring.verify(token)
    expect(old).toMatchObject({ ok: true })
    expect(old.ok && old.rotation).toBeUndefined()
    const fresh = await keyring.verify(next.token)
    expect(fresh.ok && fresh.rotation).toBeUndefined()
  })

  it('fires key.rotation-due once per key, however many verifies, and once per fleet sharing a store', async () => {
    const store = new MemoryStore()
    const a = setup({ maxAge: '10d', rotationWarning: '2d' }, { store })
    const b = setup({ maxAge: '10d', rotationWarning: '2d' }, { store, clock: a.clock })
    const { token, key } = await a.keyring.create({ tenantId: 'acme', name: 'ci' })
    a.clock.advance(9 * DAY)
    for (let i = 0; i < 5; i++) {
      await a.keyring.verify(token)
      await b.keyring.verify(token)
    }
    a.clock.advance(2 * DAY)
    await a.keyring.verify(token)
    await new Promise((resolve) => setImmediate(resolve))
    expect([...a.due, ...b.due]).toEqual([
      { keyId: key.id, tenantId: 'acme', createdAt: key.createdAt, dueAt: key.createdAt + 10 * DAY, overdue: false, enforced: false, at: key.createdAt + 9 * DAY },
    ])
  })

  it('applies a tenant override at once on the replica that set it, and on others after tenantRefresh', async () => {
    const store = new MemoryStore()
    const a = setup({ maxAge: '90d', tenantRefresh: '30s' }, { store })
    const b = setup({ maxAge: '90d', tenantRefresh: '30s' }, { store, clock: a.clock })
    const { token } = await a.keyring.create({ tenantId: 'strict', name: 'ci' })
    const other = await a.keyring.create({ tenantId: 'relaxed', name: 'ci' })
    a.clock.advance(31 * DAY)
    expect(await b.keyring.verify(token)).toMatchObject({ ok: true })

    const view = await a.keyring.setTenantPolicy('strict', { maxAgeMs: 30 * DAY, enforce: true })
    expect(view).toEqual({ tenantId: 'strict', override: { maxAgeMs: 30 * DAY, enforce: true }, policy: { maxAgeMs: 30 * DAY, rotationWarningMs: 14 * DAY, enforce: true } })
    expect(await a.keyring.verify(token)).toMatchObject({ ok: false, error: { code: 'KEYROT_KEY_EXPIRED' } })
    // b still holds the tenant's old policy until its refresh, which runs in the background.
    expect(await b.keyring.verify(token)).toMatchObject({ ok: true })
    a.clock.advance(30_000)
    await b.keyring.verify(token)
    await new Promise((resolve) => setImmediate(resolve))
    expect(await b.keyring.verify(token)).toMatchObject({ ok: false, error: { code: 'KEYROT_KEY_EXPIRED' } })
    expect(await b.keyring.verify(other.token)).toMatchObject({ ok: true })
    expect((await b.keyring.tenantPolicy('relaxed')).override).toBeNull()
  })

  it('refuses a bad tenant policy with KEYROT_INVALID_INPUT naming the field', async () => {
    const { keyring } = setup({})
    await expect(keyring.setTenantPolicy('acme', { maxAgeMs: -1 })).rejects.toMatchObject({ code: 'KEYROT_INVALID_INPUT', field: 'maxAgeMs' })
    await expect(keyring.setTenantPolicy('acme', { enforce: 'yes' as unknown as boolean })).rejects.toMatchObject({ field: 'enforce' })
  })

  it('refuses a rotationWarning longer than maxAge, and a maxAge whose due date is no Date, with KEYROT_INVALID_INPUT', async () => {
    const { keyring } = setup({ maxAge: '90d' })
    await keyring.create({ tenantId: 'acme', name: 'ci' })
    await expect(keyring.setTenantPolicy('acme', { maxAgeMs: DAY, rotationWarningMs: 14 * DAY })).rejects.toMatchObject({ code: 'KEYROT_INVALID_INPUT', field: 'rotationWarning' })
    // Against the keyring's maxAge when the override leaves it out.
    await expect(keyring.setTenantPolicy('acme', { rotationWarningMs: 200 * DAY })).rejects.toMatchObject({ code: 'KEYROT_INVALID_INPUT', field: 'rotationWarning' })
    await expect(keyring.setTenantPolicy('acme', { maxAgeMs: 8.64e15 - 1 })).rejects.toMatchObject({ code: 'KEYROT_INVALID_INPUT', field: 'maxAgeMs' })
    expect((await keyring.tenantPolicy('acme')).override).toBeNull()
    // A short maxAge alone keeps the default warning capped at it; the report still prints.
    expect((await keyring.setTenantPolicy('acme', { maxAgeMs: 7 * DAY })).override).toEqual({ maxAgeMs: 7 * DAY })
    expect(evidenceCsv(await buildEvidenceReport(keyring, { tenantId: 'acme' }))).toContain('acme')
    expect(() => createKeyring({ policy: { maxAge: '1d', rotationWarning: '14d' } })).toThrow(/policy.rotationWarning/)
    expect(() => createKeyring({ policy: { maxAge: 8.64e15 } })).toThrow(/policy.maxAge/)
    expect(() => createKeyring({ policy: { maxAge: '7d' } })).not.toThrow()
  })

  it('rejects impossible options at construction', () => {
    expect(() => createKeyring({ policy: { maxAge: '-1d' } })).toThrow(/policy.maxAge/)
    expect(() => createKeyring({ policy: { tenantRefresh: 0 } })).toThrow(/tenantRefresh/)
    expect(() => createKeyring({ policy: { enforce: 'true' as unknown as boolean } })).toThrow(/policy.enforce/)
  })

  it('does no policy work without a policy, even if the store holds tenant overrides', async () => {
    let reads = 0
    class CountingStore extends MemoryStore {
      override getTenantPolicy(tenantId: string) {
        reads++
        return super.getTenantPolicy(tenantId)
      }
    }
    const counting = new CountingStore()
    await counting.setTenantPolicy('acme', { maxAgeMs: DAY, enforce: true })
    const { clock, keyring } = setup(undefined, { store: counting })
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    clock.advance(2 * DAY)
    expect(await keyring.verify(token)).toMatchObject({ ok: true })
    expect(reads).toBe(0)
  })

  it('keeps the defaults in force while the store cannot read tenant policies', async () => {
    class FailingStore extends MemoryStore {
      override getTenantPolicy(): Promise<null> {
        return Promise.reject(new Error('down'))
      }
    }
    const failing = new FailingStore()
    const { clock, keyring } = setup({ maxAge: '10d', rotationWarning: '1d' }, { store: failing })
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    clock.advance(9 * DAY)
    expect(await keyring.verify(token)).toMatchObject({ ok: true, rotation: { overdue: false } })
  })
})

describe('rotation headers', () => {
  it('carries Deprecation (RFC 9745) from the warning on, and Sunset (RFC 8594) only when enforced', async () => {
    const { clock, keyring } = setup({ maxAge: '90d', rotationWarning: '14d' })
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'ci' })
    const request = { authorization: `Bearer ${token}` }
    expect((await authenticate(keyring, request)).headers).not.toHaveProperty('deprecation')
    clock.advance(80 * DAY)
    const dueAt = key.createdAt + 90 * DAY
    const warned = await authenticate(keyring, request)
    expect(warned.headers).toMatchObject({ deprecation: `@${dueAt / 1000}` })
    expect(warned.headers).not.toHaveProperty('sunset')

    await keyring.setTenantPolicy('acme', { enforce: true })
    const enforced = await authenticate(keyring, request)
    expect(enforced.headers).toMatchObject({ deprecation: `@${dueAt / 1000}`, sunset: new Date(dueAt).toUTCString() })
  })
})

describe('evidence report', () => {
  it('lists every key with age, due date, compliance, usage and who rotated or revoked it; the summary is last', async () => {
    const history = new MemoryHistoryLog()
    const { clock, keyring } = setup({ maxAge: '90d', rotationWarning: '14d' }, { history })
    const fresh = await keyring.create({ tenantId: 'acme', name: '=cmd()' })
    const old = await runAsActor('api-key:admin1', () => keyring.create({ tenantId: 'acme', name: 'old, "quoted"' }))
    const gone = await keyring.create({ tenantId: 'beta', name: 'gone' })
    clock.advance(80 * DAY)
    const fresher = await keyring.create({ tenantId: 'beta', name: 'new' })
    await keyring.verify(old.token)
    await keyring.verify(old.token)
    await runAsActor('cli:ops', () => keyring.revoke(gone.key.id, { reason: 'left' }))
    clock.advance(11 * DAY)
    const rotated = await runAsActor('api-key:admin2', () => keyring.rotate(fresh.key.id))
    await keyring.verify(rotated.token)

    const report = await buildEvidenceReport(keyring)
    const byId = new Map(report.rows.map((row) => [row.keyId, row]))
    expect(byId.get(old.key.id)).toMatchObject({
      tenantId: 'acme',
      compliance: 'overdue',
      ageDays: 91,
      dueAt: new Date(old.key.createdAt + 90 * DAY).toISOString(),
      usesLast30Days: 2,
      lastRotatedAt: null,
      rotatedBy: null,
    })
    expect(byId.get(fresh.key.id)).toMatchObject({ compliance: 'retired', state: 'grace', rotatedBy: 'api-key:admin2', lastRotatedAt: new Date(clock.now()).toISOString() })
    expect(byId.get(rotated.key.id)).toMatchObject({ compliance: 'compliant', ageDays: 0, rotatedBy: 'api-key:admin2', lastRotatedAt: new Date(clock.now()).toISOString(), usesLast30Days: 1 })
    expect(byId.get(gone.key.id)).toMatchObject({ compliance: 'retired', revokedBy: 'cli:ops' })
    expect(byId.get(fresher.key.id)).toMatchObject({ compliance: 'compliant', usesLast30Days: 0 })
    expect(report.summary).toMatchObject({ keys: 5, compliant: 4, due: 0, overdue: 1 })

    const csv = evidenceCsv(report).trimEnd().split('\n')
    expect(csv[0]).toBe('key_id,tenant_id,name,state,created_at,last_rotated_at,age_days,due_at,compliance,last_used_at,uses_30d,rotated_by,revoked_by')
    expect(csv.at(-1)).toMatch(/^# summary: keys=5 compliant=4 due=0 overdue=1 generated_at=/)
    expect(csv.find((line) => line.startsWith(old.key.id))).toContain('"old, ""quoted"""')
    expect(csv.find((line) => line.startsWith(fresh.key.id))).toContain(",'=cmd(),")

    const lines = evidenceJsonLines(await buildEvidenceReport(keyring, { tenantId: 'beta' })).trimEnd().split('\n')
    expect(JSON.parse(lines.at(-1) as string)).toMatchObject({ summary: { keys: 2, compliant: 2, due: 0, overdue: 0 } })
    expect(lines.slice(0, -1).map((line) => (JSON.parse(line) as { tenantId: string }).tenantId)).toEqual(['beta', 'beta'])
  })

  it('counts a key due in its warning window, and nothing is due for a tenant whose override turns maxAge off', async () => {
    const { clock, keyring } = setup({ maxAge: '30d', rotationWarning: '10d' })
    await keyring.create({ tenantId: 'acme', name: 'a' })
    await keyring.create({ tenantId: 'free', name: 'b' })
    await keyring.setTenantPolicy('free', { maxAgeMs: 0 })
    clock.advance(25 * DAY)
    const report = await buildEvidenceReport(keyring)
    expect(report.rows.map((row) => [row.tenantId, row.compliance, row.dueAt === null]).sort()).toEqual([
      ['acme', 'due', false],
      ['free', 'no-policy', true],
    ])
    expect(report.summary).toMatchObject({ compliant: 1, due: 1, overdue: 0 })
  })
})
