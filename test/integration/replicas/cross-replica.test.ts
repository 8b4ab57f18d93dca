import { randomBytes } from 'node:crypto'
import { generateToken, newKeyId } from '@keyrot/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt } from '../../support/build.js'
import { ControlledRedis } from '../../support/redis-process.js'
import {
  admin,
  callWithKey,
  closeAgents,
  errorAnswers,
  percentile,
  request,
  sleep,
  startReplicas,
  type Exchange,
  type IssuedKeyBody,
  type Replica,
} from '../../support/replicas.js'
import { corpusBytes, SecretLedger, suiteArtefacts } from '../../support/secret-scan.js'

/**
 * Three Express replicas (separate processes, built packages) share one
 * redis-server, over real HTTP on loopback. Cached key states are trusted
 * for 60 s here, so every change seen by another replica within the bounds
 * below came through the invalidation feed, not a cache expiry.
 */

const STATE_TTL_MS = 60_000
const STORE_TIMEOUT_MS = 300
/** How far from the deadline (or from a revocation) a replica may still disagree. */
const BOUND_MS = 50
const MASTER_KEY = randomBytes(32).toString('base64')

let redis: ControlledRedis
let replicas: Replica[]
let A: Replica
let B: Replica
let C: Replica
const ledger = new SecretLedger()
ledger.addRaw(MASTER_KEY, 'master key')

async function createKey(on: Replica): Promise<IssuedKeyBody> {
  const issued = await admin<IssuedKeyBody>(on, 'create', { tenantId: 'acme', name: 'cross-replica' })
  ledger.addToken(issued.token)
  return issued
}

async function expectAccepted(on: Replica, token: string, keyId: string): Promise<Exchange> {
  const exchange = await callWithKey(on, token)
  expect({ replica: on.name, status: exchange.status, body: exchange.status === 200 ? JSON.parse(exchange.body).keyId : exchange.body }).toEqual({
    replica: on.name,
    status: 200,
    body: keyId,
  })
  return exchange
}

function summary(values: number[]): string {
  return `p50 ${percentile(values, 50).toFixed(1)} ms, p99 ${percentile(values, 99).toFixed(1)} ms, max ${Math.max(...values).toFixed(1)} ms (n=${values.length})`
}

beforeAll(async () => {
  await ensureBuilt()
  redis = await ControlledRedis.start()
  replicas = await startReplicas(3, {
    redisUrl: redis.url,
    stateTtlMs: STATE_TTL_MS,
    storeTimeoutMs: STORE_TIMEOUT_MS,
    masterKeys: `test-1:${MASTER_KEY}`,
  })
  ;[A, B, C] = replicas as [Replica, Replica, Replica]
}, 120_000)

afterAll(async () => {
  closeAgents()
  await Promise.all((replicas ?? []).map((replica) => replica.stop()))
  await redis?.stop()
})

describe('three replicas sharing one Redis, over HTTP', () => {
  it('a key rotated on A works on B and C on the next request, and they see the old key in grace', async () => {
    const original = await createKey(A)
    for (const replica of replicas) await expectAccepted(replica, original.token, original.key.id)

    const rotated = await admin<IssuedKeyBody & { previous: IssuedKeyBody['key'] }>(A, 'rotate', { keyId: original.key.id, gracePeriodMs: 60_000 })
    ledger.addToken(rotated.token)
    for (const replica of [B, C]) await expectAccepted(replica, rotated.token, rotated.key.id)
    // B and C had the old key cached as active: the rotation reached them, so they answer with its deadline.
    for (const replica of [B, C]) {
      const old = await expectAccepted(replica, original.token, original.key.id)
      expect(JSON.parse(old.body).state).toBe('grace')
      expect(old.headers.sunset).toBe(new Date(rotated.previous.expiresAt as number).toUTCString())
    }
  })

  it(`a key revoked on B is refused by A and C within ${BOUND_MS} ms (100 trials)`, async () => {
    const fromSend: number[] = []
    const fromReturn: number[] = []
    let acceptedAfterReturn = 0
    const revokedIds = new Set<string>()
    for (let trial = 0; trial < 100; trial++) {
      const issued = await createKey(A)
      revokedIds.add(issued.key.id)
      // Cached on A and C: without the invalidation message they would accept it for 60 s.
      await expectAccepted(A, issued.token, issued.key.id)
      await expectAccepted(C, issued.token, issued.key.id)
      const sentAt = performance.now()
      await admin(B, 'revoke', { keyId: issued.key.id, reason: 'cross-replica test' })
      const returnedAt = performance.now()
      await Promise.all(
        [A, C].map(async (replica) => {
          for (let attempt = 0; ; attempt++) {
            const exchange = await callWithKey(replica, issued.token)
            const answeredAt = performance.now()
            if (exchange.status === 401 && exchange.code === 'KEYROT_KEY_REVOKED') {
              fromSend.push(answeredAt - sentAt)
              fromReturn.push(answeredAt - returnedAt)
              break
            }
            expect(exchange.status, `${replica.name}: ${exchange.body}`).toBe(200)
            acceptedAfterReturn++
            if (answeredAt - returnedAt > 2_000) throw new Error(`${replica.name} still accepted a key revoked on B 2 s later`)
          }
          // Once refused, refused for good.
          const again = await callWithKey(replica, issued.token)
          expect([again.status, again.code]).toEqual([401, 'KEYROT_KEY_REVOKED'])
        }),
      )
    }
    const lags = replicas
      .flatMap((replica) => replica.logs())
      .filter((line) => line.keyrotEvent === 'invalidation.received' && revokedIds.has((line.payload as { keyId: string }).keyId))
      .map((line) => (line.payload as { lagMs: number }).lagMs)
    console.log(`[cross-replica] revoke sent to B -> refused by A and C (client side, includes the revoke call): ${summary(fromSend)}`)
    console.log(`[cross-replica] revoke answered by B -> refused by A and C (first request after it): ${summary(fromReturn)}`)
    console.log(`[cross-replica] invalidation message delivery lag (replica logs, invalidation.received lagMs): ${summary(lags)}`)
    console.log(`[cross-replica] requests still accepted after the revoke call returned: ${acceptedAfterReturn}`)
    expect(fromSend).toHaveLength(200)
    expect(percentile(fromSend, 99)).toBeLessThan(BOUND_MS)
    expect(lags.length).toBeGreaterThanOrEqual(200)
  }, 120_000)

  it(`at the grace deadline all three refuse the old key, cached or not, within ${BOUND_MS} ms`, async () => {
    const lastAcceptedSent: number[] = []
    const firstRefusedSent: number[] = []
    const firstRefusedAnswered: number[] = []
    const uncachedAnswers: number[] = []
    for (let trial = 0; trial < 5; trial++) {
      const original = await createKey(A)
      // Cached on A and B; C never sees the old key before its deadline.
      await expectAccepted(A, original.token, original.key.id)
      await expectAccepted(B, original.token, original.key.id)
      const rotated = await admin<IssuedKeyBody & { previous: IssuedKeyBody['key'] }>(A, 'rotate', { keyId: original.key.id, gracePeriodMs: 800 })
      ledger.addToken(rotated.token)
      const deadline = rotated.previous.expiresAt as number
      const poll = async (replica: Replica) => {
        const seen: Exchange[] = []
        while (Date.now() < deadline + 3 * BOUND_MS) seen.push(await callWithKey(replica, original.token))
        return seen
      }
      const uncached = (async () => {
        await sleep(deadline + 5 - Date.now())
        return callWithKey(C, original.token)
      })()
      const [onA, onB, onC] = await Promise.all([poll(A), poll(B), uncached])
      uncachedAnswers.push(onC.sentAt - deadline)
      expect([onC.status, onC.code], 'first request on C, 5 ms after the deadline').toEqual([401, 'KEYROT_KEY_EXPIRED'])
      for (const [name, seen] of [['A', onA], ['B', onB]] as const) {
        expect(seen.length).toBeGreaterThan(10)
        for (const exchange of seen) {
          if (exchange.receivedAt <= deadline - BOUND_MS) expect(exchange.status, `${name} before the deadline`).toBe(200)
          if (exchange.sentAt >= deadline + BOUND_MS) expect([exchange.status, exchange.code], `${name} after the deadline`).toEqual([401, 'KEYROT_KEY_EXPIRED'])
          expect([200, 401]).toContain(exchange.status)
        }
        const accepted = seen.filter((exchange) => exchange.status === 200)
        const refused = seen.filter((exchange) => exchange.status === 401)
        expect(accepted.length).toBeGreaterThan(0)
        expect(refused.length).toBeGreaterThan(0)
        lastAcceptedSent.push(Math.max(...accepted.map((exchange) => exchange.sentAt)) - deadline)
        firstRefusedSent.push(Math.min(...refused.map((exchange) => exchange.sentAt)) - deadline)
        // A loaded machine can hold a request sent before the deadline until after it: judge
        // an early refusal by when its answer came back, which is after the replica decided.
        firstRefusedAnswered.push(Math.min(...refused.map((exchange) => exchange.receivedAt)) - deadline)
        // No flapping: once refused, every later request is refused.
        const firstRefusal = seen.findIndex((exchange) => exchange.status === 401)
        expect(seen.slice(firstRefusal).every((exchange) => exchange.status === 401)).toBe(true)
      }
    }
    console.log(
      `[cross-replica] grace deadline, cached replicas: last accepted request sent at deadline ${signed(lastAcceptedSent)} ms; first refused sent at deadline ${signed(firstRefusedSent)} ms`,
    )
    console.log(`[cross-replica] grace deadline, uncached replica: refused a first request sent at deadline ${signed(uncachedAnswers)} ms`)
    expect(Math.max(...lastAcceptedSent)).toBeLessThan(BOUND_MS)
    expect(Math.min(...firstRefusedAnswered)).toBeGreaterThan(-BOUND_MS)
  }, 60_000)

  it('after the pub/sub connections are killed (CLIENT KILL TYPE pubsub) no replica accepts a revoked key', async () => {
    const issued = await createKey(A)
    for (const replica of replicas) await expectAccepted(replica, issued.token, issued.key.id)
    const killed = Number(redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub').trim())
    expect(killed).toBe(3)
    await admin(B, 'revoke', { keyId: issued.key.id, reason: 'pubsub test' })
    const revokedAt = Date.now()
    const accepted: Exchange[] = []
    let requests = 0
    while (Date.now() < revokedAt + 1_500) {
      const answers = await Promise.all(replicas.map((replica) => callWithKey(replica, issued.token)))
      for (const exchange of answers) {
        requests++
        if (exchange.status === 200) accepted.push(exchange)
        else expect([exchange.replica, exchange.status, exchange.code]).toEqual([exchange.replica, 401, 'KEYROT_KEY_REVOKED'])
      }
    }
    console.log(
      `[cross-replica] after CLIENT KILL TYPE pubsub: ${requests} requests with a revoked key, ${accepted.length} accepted` +
        (accepted.length ? ` (last sent ${Math.max(...accepted.map((e) => e.sentAt)) - revokedAt} ms after the revoke returned)` : ''),
    )
    expect(accepted).toEqual([])

    // The feed is back: the next revocation reaches the others through it again.
    const next = await createKey(A)
    for (const replica of [A, C]) await expectAccepted(replica, next.token, next.key.id)
    await admin(B, 'revoke', { keyId: next.key.id })
    for (const replica of [A, C]) {
      const exchange = await callWithKey(replica, next.token)
      expect([exchange.status, exchange.code]).toEqual([401, 'KEYROT_KEY_REVOKED'])
    }
  }, 30_000)

  it('with Redis frozen mid-traffic, requests get 503 within the timeout, none hangs, no replica crashes, and they recover alone', async () => {
    const issued = await createKey(A)
    for (const replica of replicas) await expectAccepted(replica, issued.token, issued.key.id)
    // Well-formed tokens of unknown key ids: each one needs a store read.
    const unknownToken = () => generateToken('sk_live', newKeyId())
    const seen: Exchange[] = []
    let frozenAt = Number.POSITIVE_INFINITY
    let thawedAt = Number.POSITIVE_INFINITY
    let stopAt = Number.POSITIVE_INFINITY
    const clients = replicas.map(async (replica) => {
      for (let i = 0; Date.now() < stopAt && i < 20_000; i++) {
        seen.push(await callWithKey(replica, i % 2 === 0 ? issued.token : unknownToken()))
        await sleep(5)
      }
    })
    await sleep(1_000)
    frozenAt = Date.now()
    redis.freeze()
    await sleep(4_000)
    redis.thaw()
    thawedAt = Date.now()
    // Recovered once every replica answers both kinds of request as before the freeze.
    const recovered = new Map<string, number>()
    while (recovered.size < replicas.length && Date.now() < thawedAt + 10_000) {
      for (const replica of replicas) {
        if (recovered.has(replica.name)) continue
        const [valid, unknown] = [await callWithKey(replica, issued.token), await callWithKey(replica, unknownToken())]
        if (valid.status === 200 && unknown.status === 401) recovered.set(replica.name, unknown.receivedAt - thawedAt)
      }
      await sleep(20)
    }
    stopAt = Math.max(Date.now(), thawedAt + 1_000) + 1_000
    await Promise.all(clients)

    // Before: answered before the freeze. Frozen: sent before the thaw. After: the rest.
    const phase = (e: Exchange) => (e.receivedAt < frozenAt ? 'before' : e.sentAt < thawedAt ? 'frozen' : 'after')
    const counts: Record<string, Record<string, number>> = { before: {}, frozen: {}, after: {} }
    for (const exchange of seen) {
      const bucket = counts[phase(exchange)] as Record<string, number>
      const key = exchange.failure ?? String(exchange.status)
      bucket[key] = (bucket[key] ?? 0) + 1
    }
    const slowest = Math.max(...seen.map((exchange) => exchange.ms))
    console.log(`[cross-replica] Redis frozen (SIGSTOP) for 4 s mid-traffic: ${JSON.stringify(counts)}; slowest answer ${slowest.toFixed(0)} ms (store timeout ${STORE_TIMEOUT_MS} ms)`)
    console.log(`[cross-replica] recovered after SIGCONT (valid key 200 and unknown key 401 again) in ms: ${JSON.stringify(Object.fromEntries(recovered))}`)

    expect(seen.filter((exchange) => exchange.failure !== undefined)).toEqual([])
    expect(slowest).toBeLessThan(STORE_TIMEOUT_MS + 500)
    for (const exchange of seen) {
      expect([200, 401, 503]).toContain(exchange.status)
      if (exchange.status === 503) {
        expect(exchange.code).toBe('KEYROT_STORE_UNAVAILABLE')
        expect(exchange.headers['retry-after']).toBe('1')
      }
    }
    // Unknown keys need Redis: refused as unavailable, never as unknown, while it is frozen.
    const needStore = seen.filter((e) => e.sentAt > frozenAt + 20 && e.receivedAt < thawedAt && !e.body.includes(issued.key.id))
    expect(needStore.length).toBeGreaterThan(20)
    expect(needStore.every((exchange) => exchange.status === 503)).toBe(true)
    expect(counts.before?.['503']).toBeUndefined()
    for (const replica of replicas) expect(replica.alive()).toBe(true)
    expect(recovered.size).toBe(3)
    for (const ms of recovered.values()) expect(ms).toBeLessThan(5_000)
    const lastRecovery = thawedAt + Math.max(...recovered.values())
    expect(seen.filter((exchange) => exchange.sentAt > lastRecovery && exchange.status === 503)).toEqual([])
  }, 60_000)

  it('leaves no token or signing secret in Redis, replica logs, events, error answers or metrics', async () => {
    const signing = await admin<{ secret: string; key: { id: string } }>(A, 'signing-secret', { name: 'webhooks' })
    ledger.addSigningSecret(signing.secret)
    const rotated = await admin<{ token: string }>(B, 'rotate', { keyId: signing.key.id, gracePeriodMs: 60_000 })
    ledger.addSigningSecret(rotated.token)
    const corpora = await suiteArtefacts(redis.port, replicas)
    // The scan finds a secret that is there (it is not blind).
    expect(ledger.scan([{ source: 'control', content: `log line ${signing.secret} end` }])).toHaveLength(2)
    const hits = ledger.scan(corpora)
    console.log(
      `[cross-replica] secrets scan: ${ledger.tokens} tokens, 2 signing secrets, 1 master key (${ledger.needles} needles) in ${corpora.length} sources, ${corpusBytes(corpora)} bytes: ${hits.length} hits`,
    )
    expect(ledger.tokens).toBeGreaterThan(100)
    expect(hits).toEqual([])
  }, 60_000)
})

function signed(values: number[]): string {
  const fmt = (n: number) => (n >= 0 ? `+${n}` : String(n))
  return `${fmt(Math.min(...values))}..${fmt(Math.max(...values))}`
}
