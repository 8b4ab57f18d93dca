import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt, ROOT } from '../support/build.js'
import { ControlledRedis } from '../support/redis-process.js'
import { corpusBytes, SecretLedger, suiteArtefacts } from '../support/secret-scan.js'
import {
  admin,
  callWithKey,
  closeAgents,
  request,
  sleep,
  startReplica,
  startReplicas,
  type Exchange,
  type IssuedKeyBody,
  type Replica,
} from '../support/replicas.js'

/**
 * Redis restarted from an older snapshot, and restarted empty, under three
 * replica processes (test/support/replica.mjs, the built packages, real
 * HTTP). Redis runs without an append-only file, as a cache-style Redis
 * would: what survives a restart is the last RDB snapshot, or nothing.
 */

const CLI = fileURLToPath(new URL('../../packages/cli/dist/bin.js', import.meta.url))
const CLOSE_SCRIPT = fileURLToPath(new URL('../support/revoke-then-close.mjs', import.meta.url))

let redis: ControlledRedis
const ledger = new SecretLedger()
let replicas: Replica[] = []
const extra: Replica[] = []

beforeAll(async () => {
  await ensureBuilt()
  redis = await ControlledRedis.start({ persistent: false })
  replicas = await startReplicas(3, { redisUrl: redis.url, storeTimeoutMs: 300 })
}, 120_000)

afterAll(async () => {
  closeAgents()
  await Promise.all([...replicas, ...extra].map((replica) => replica.stop()))
  await redis?.stop()
})

/** A key created on `target`, its token added to the secrets scan. */
async function issued(target: Replica, action: 'create', body: Record<string, unknown>): Promise<IssuedKeyBody> {
  const key = await admin<IssuedKeyBody>(target, action, body)
  ledger.addToken(key.token)
  return key
}

function recordKey(keyId: string): string {
  return `keyrot:{${keyId.slice(0, 10)}}:rec:${keyId}`
}

/** Sends `token` to every replica every `intervalMs` for `durationMs`; every answer. */
async function hammer(targets: readonly Replica[], tokens: readonly string[], durationMs: number, intervalMs = 50): Promise<Map<string, Exchange[]>> {
  const answers = new Map<string, Exchange[]>(tokens.map((token) => [token, []]))
  const until = Date.now() + durationMs
  while (Date.now() < until) {
    const round = targets.flatMap((replica) => tokens.map(async (token) => answers.get(token)?.push(await callWithKey(replica, token, 2_000))))
    await Promise.all([...round, sleep(intervalMs)])
  }
  return answers
}

function tally(exchanges: readonly Exchange[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const exchange of exchanges) {
    const label = exchange.status === 200 ? '200' : `${exchange.status || exchange.failure} ${exchange.code ?? ''}`.trim()
    counts[label] = (counts[label] ?? 0) + 1
  }
  return counts
}

/** When each replica logged `store.reset` after `since` (ms after it), or undefined. */
function resetSeenAfter(replica: Replica, since: number): number | undefined {
  const line = replica.logs().find((entry) => entry['event'] === 'store.reset' && typeof entry['time'] === 'number' && (entry['time'] as number) >= since)
  return line ? (line['time'] as number) - since : undefined
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(25)
  }
}

function acceptReset(): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, 'store', 'accept-reset', '--redis', redis.url, '--yes', '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

describe('Redis rolled back to a snapshot taken before a revoke', () => {
  it('never accepts the revoked key again, writes the revocation back, reports KEYROT_STORE_RESET and the lost key', async () => {
    const [A, B, C] = replicas as [Replica, Replica, Replica]
    const revoked = await issued(A, 'create', { name: 'revoked after the snapshot' })
    const kept = await issued(A, 'create', { name: 'kept' })
    for (const replica of replicas) for (const key of [revoked, kept]) expect((await callWithKey(replica, key.token)).status).toBe(200)
    redis.snapshot()
    const lost = await issued(B, 'create', { name: 'created after the snapshot' })
    for (const replica of replicas) expect((await callWithKey(replica, lost.token)).status).toBe(200)
    await admin(C, 'revoke', { keyId: revoked.key.id, reason: 'leaked' })
    // Every replica hears of the revoke (invalidation) before Redis goes.
    await sleep(300)
    for (const replica of replicas) expect((await callWithKey(replica, revoked.token)).status).toBe(401)

    await redis.kill()
    redis.restoreSnapshot()
    await redis.restart()
    const healedAt = Date.now()

    const answers = await hammer(replicas, [revoked.token, kept.token, lost.token], 3_000)
    const detection = replicas.map((replica) => resetSeenAfter(replica, healedAt))
    console.log(`[store-reset] rollback detected after ${detection.map((ms, i) => `${replicas[i]?.name}=${ms ?? 'never'} ms`).join(', ')}`)
    console.log(`[store-reset] rollback, revoked key: ${JSON.stringify(tally(answers.get(revoked.token) ?? []))}`)
    console.log(`[store-reset] rollback, key kept by the snapshot: ${JSON.stringify(tally(answers.get(kept.token) ?? []))}`)
    console.log(`[store-reset] rollback, key the snapshot lost: ${JSON.stringify(tally(answers.get(lost.token) ?? []))}`)
    for (const ms of detection) {
      expect(ms).toBeDefined()
      expect(ms as number).toBeLessThan(2_500)
    }
    expect((answers.get(revoked.token) ?? []).filter((exchange) => exchange.status === 200)).toHaveLength(0)
    expect((answers.get(revoked.token) ?? []).length).toBeGreaterThan(30)
    // The lost key's client is never told its key is invalid: replicas that confirmed it keep serving it
    // for cache.staleIfError; an answer they cannot give is 503 + Retry-After.
    const lostAnswers = answers.get(lost.token) ?? []
    expect(lostAnswers.filter((exchange) => exchange.status === 401)).toHaveLength(0)
    expect(lostAnswers.every((exchange) => exchange.status === 200 || (exchange.status === 503 && exchange.headers['retry-after'] === '1'))).toBe(true)
    // The replicas wrote the revocation back: Redis has it again.
    await waitFor('the revocation to be written back', () => redis.cli('HGET', recordKey(revoked.key.id), 'r').trim() !== '')
    for (const replica of replicas) {
      const logs = replica.logs()
      expect(logs.some((entry) => entry['event'] === 'store.reset' && entry['cause'] === 'rollback')).toBe(true)
      expect(logs.some((entry) => entry['event'] === 'keys.lost' && (entry['keyIds'] as string[]).includes(lost.key.id))).toBe(true)
    }

    // A replica started after the heal never saw the revoke, and refuses the key too.
    const fresh = await startReplica({ name: 'D', redisUrl: redis.url, storeTimeoutMs: 300 })
    extra.push(fresh)
    const freshAnswers = await hammer([fresh], [revoked.token, lost.token], 500)
    console.log(`[store-reset] rollback, revoked key on a replica started after the heal: ${JSON.stringify(tally(freshAnswers.get(revoked.token) ?? []))}`)
    console.log(`[store-reset] rollback, lost key on a replica started after the heal: ${JSON.stringify(tally(freshAnswers.get(lost.token) ?? []))}`)
    // It never proved the lost key: its client hears 503 KEYROT_STORE_RESET (retry later), not 401.
    const freshLost = freshAnswers.get(lost.token) ?? []
    expect(freshLost.length).toBeGreaterThan(0)
    expect(freshLost.every((exchange) => exchange.status === 503 && exchange.code === 'KEYROT_STORE_RESET' && exchange.headers['retry-after'] === '1')).toBe(true)
    expect((freshAnswers.get(revoked.token) ?? []).filter((exchange) => exchange.status === 200)).toHaveLength(0)
    expect((freshAnswers.get(revoked.token) ?? []).every((exchange) => exchange.status === 401)).toBe(true)

    // Admin writes wait for the operator; the CLI accepts the reset for every replica.
    const refused = await request(A, { method: 'POST', path: '/admin/create', body: { name: 'on a reset store' }, timeoutMs: 10_000 })
    expect(refused).toMatchObject({ status: 503, code: 'KEYROT_STORE_RESET' })
    const accepted = acceptReset()
    expect(accepted.status, accepted.stderr).toBe(0)
    expect(JSON.parse(accepted.stdout)).toMatchObject({ accepted: true, cause: 'rollback' })
    await issued(A, 'create', { name: 'after accept-reset' })
    expect(JSON.parse(acceptReset().stdout)).toEqual({ accepted: false, pending: false })
    // Once accepted, an unknown key is "not found" again (401), on every replica within a look.
    await sleep(1_500)
    for (const replica of replicas) expect((await callWithKey(replica, lost.token)).status).toBe(401)
  }, 120_000)
})

describe('Redis restarted empty', () => {
  it('tells no client its key is invalid: keys the store lost answer 503 KEYROT_STORE_RESET', async () => {
    // A key every replica proved and confirmed keeps working from its confirmed state
    // (cache.staleIfError, 30 s by default); a key never used gets 503, never 401.
    const [A] = replicas as [Replica]
    // Independent of the test before: the store starts accepted.
    expect(acceptReset().status).toBe(0)
    const everywhere = await issued(A, 'create', { name: 'used on every replica' })
    const unused = await issued(A, 'create', { name: 'never used before the restart' })
    for (const replica of replicas) expect((await callWithKey(replica, everywhere.token)).status).toBe(200)

    await redis.kill()
    redis.forgetData()
    await redis.restart()
    const restartedAt = Date.now()
    const answers = await hammer(replicas, [everywhere.token, unused.token], 3_000)
    const detection = replicas.map((replica) => resetSeenAfter(replica, restartedAt))
    console.log(`[store-reset] empty restart detected after ${detection.map((ms, i) => `${replicas[i]?.name}=${ms ?? 'never'} ms`).join(', ')}`)
    console.log(`[store-reset] empty restart, key cached on every replica: ${JSON.stringify(tally(answers.get(everywhere.token) ?? []))}`)
    console.log(`[store-reset] empty restart, key never used: ${JSON.stringify(tally(answers.get(unused.token) ?? []))}`)
    for (const ms of detection) expect(ms as number).toBeLessThan(2_500)
    const usedAnswers = answers.get(everywhere.token) ?? []
    const unusedAnswers = answers.get(unused.token) ?? []
    expect(usedAnswers.length + unusedAnswers.length).toBeGreaterThan(60)
    // The key in use keeps working through the restart (stale-if-error)...
    expect(usedAnswers.every((exchange) => exchange.status === 200)).toBe(true)
    // ...and the unused one is answered 503 + Retry-After: KEYROT_STORE_UNAVAILABLE while the replicas reconnect, KEYROT_STORE_RESET once Redis answers.
    expect(unusedAnswers.every((exchange) => exchange.status === 503 && exchange.headers['retry-after'] === '1')).toBe(true)
    expect(unusedAnswers.filter((exchange) => exchange.code === 'KEYROT_STORE_RESET').length).toBeGreaterThan(unusedAnswers.length * 0.8)
    for (const replica of replicas) {
      expect(replica.logs().some((entry) => entry['event'] === 'store.reset' && entry['cause'] === 'empty' && (entry['time'] as number) >= restartedAt)).toBe(true)
    }
    expect(acceptReset().status).toBe(0)
  }, 120_000)
})

describe('close() right after an un-awaited revoke', () => {
  it('lands the revoke in Redis and exits cleanly', async () => {
    const [A] = replicas as [Replica]
    expect(acceptReset().status).toBe(0)
    const key = await issued(A, 'create', { name: 'revoked during shutdown' })
    const run = spawnSync(process.execPath, [CLOSE_SCRIPT], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, REDIS_URL: redis.url, KEY_ID: key.key.id },
      encoding: 'utf8',
      timeout: 30_000,
    })
    console.log(`[store-reset] un-awaited revoke then close(): exit ${run.status}, revokedAt in Redis ${redis.cli('HGET', recordKey(key.key.id), 'r').trim() || 'none'}`)
    expect(run.status, run.stderr).toBe(0)
    expect(redis.cli('HGET', recordKey(key.key.id), 'w').trim()).toBe('revoked during shutdown')
    await sleep(300)
    expect((await callWithKey(A, key.token)).status).toBe(401)
  }, 60_000)
})

describe('secrets', () => {
  it('never reach Redis, the replicas\' logs, metrics or error answers, through resets, write-backs and lost-key reports', async () => {
    const corpora = await suiteArtefacts(redis.port, [...replicas, ...extra])
    const hits = ledger.scan(corpora)
    console.log(`[store-reset] secrets scan: ${ledger.tokens} tokens in ${corpora.length} sources, ${corpusBytes(corpora)} bytes: ${hits.length} hits`)
    expect(ledger.tokens).toBeGreaterThanOrEqual(6)
    expect(hits).toEqual([])
  }, 60_000)
})
