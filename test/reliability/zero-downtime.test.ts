import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'
import { ensureBuilt } from '../support/build.js'
import {
  admin,
  callWithKey,
  closeAgents,
  percentile,
  sleep,
  startReplicas,
  type Exchange,
  type IssuedKeyBody,
  type Replica,
} from '../support/replicas.js'
import { corpusBytes, SecretLedger, suiteArtefacts } from '../support/secret-scan.js'

/**
 * Zero downtime under load: three replicas on one Redis, six clients at a
 * steady 10 requests/s each for 30 s, round-robin over the replicas. At 10 s
 * the key is rotated on A with a 10 s grace period; five clients move to
 * the new key at spread-out moments within the grace period, the sixth
 * never does. Replicas run with the default cache settings.
 *
 * Each old-key request is judged by the real time it was sent and answered
 * against the deadline from the rotate response (`previous.expiresAt`),
 * with the skew the rotation demo documents (±50 ms): answered at least
 * 50 ms before the deadline → must succeed; sent at least 50 ms after it →
 * must be refused with KEYROT_KEY_EXPIRED; in between: in flight across the
 * deadline, counted and judged by neither rule. Every new-key request must
 * succeed.
 */

const SKEW_MS = 50
const RUN_MS = 30_000
const ROTATE_AT_MS = 10_000
const GRACE_MS = 10_000
const CLIENTS = 6
const INTERVAL_MS = 100

let redis: RedisServer
let replicas: Replica[]
const ledger = new SecretLedger()

beforeAll(async () => {
  await ensureBuilt()
  redis = await startRedisServer()
  replicas = await startReplicas(3, { redisUrl: redis.url })
}, 120_000)

afterAll(async () => {
  closeAgents()
  await Promise.all((replicas ?? []).map((replica) => replica.stop()))
  await redis?.stop()
})

interface Sent extends Exchange {
  client: number
  key: 'old' | 'new'
}

describe('zero downtime under load', () => {
  it('a rotation under steady traffic fails no request inside its key validity and accepts none after the deadline', async () => {
    const [A] = replicas as [Replica]
    const original = await admin<IssuedKeyBody>(A, 'create', { tenantId: 'acme', name: 'zero-downtime' })
    ledger.addToken(original.token)
    let next: { token: string; at: number } | null = null
    let deadline = Number.POSITIVE_INFINITY
    let rotatedAt = Number.POSITIVE_INFINITY
    const start = Date.now()
    const exchanges: Sent[] = []

    const client = async (index: number) => {
      for (let n = 0; ; n++) {
        const due = start + n * INTERVAL_MS + (index * INTERVAL_MS) / CLIENTS
        if (due >= start + RUN_MS) return
        await sleep(due - Date.now())
        // Client 5 never migrates; clients 0-4 move at 0 %, 20 %... 80 % of the grace period.
        const switchAt = next && index < CLIENTS - 1 ? next.at + (GRACE_MS * index) / (CLIENTS - 1) : Number.POSITIVE_INFINITY
        const useNew = next !== null && Date.now() >= switchAt
        const replica = replicas[(n + index) % replicas.length] as Replica
        const exchange = await callWithKey(replica, useNew ? (next as { token: string }).token : original.token)
        exchanges.push({ ...exchange, client: index, key: useNew ? 'new' : 'old' })
      }
    }
    const rotation = (async () => {
      await sleep(start + ROTATE_AT_MS - Date.now())
      const rotated = await admin<IssuedKeyBody & { previous: IssuedKeyBody['key'] }>(A, 'rotate', { keyId: original.key.id, gracePeriodMs: GRACE_MS })
      ledger.addToken(rotated.token)
      deadline = rotated.previous.expiresAt as number
      rotatedAt = Date.now()
      next = { token: rotated.token, at: rotatedAt }
    })()
    await Promise.all([rotation, ...Array.from({ length: CLIENTS }, (_, i) => client(i))])

    const counts = {
      requests: exchanges.length,
      oldValidOk: 0,
      oldValidFailed: 0,
      oldAfterDeadlineRefused: 0,
      oldAfterDeadlineAccepted: 0,
      oldInFlightAcrossDeadline: 0,
      newOk: 0,
      newFailed: 0,
    }
    const failures: Sent[] = []
    for (const exchange of exchanges) {
      const ok = exchange.status === 200
      if (exchange.key === 'new') {
        if (ok) counts.newOk++
        else (counts.newFailed++, failures.push(exchange))
      } else if (exchange.receivedAt <= deadline - SKEW_MS) {
        if (ok) counts.oldValidOk++
        else (counts.oldValidFailed++, failures.push(exchange))
        // During grace every success tells the client when the old key stops.
        if (ok && exchange.sentAt > rotatedAt) expect(exchange.headers.sunset).toBe(new Date(deadline).toUTCString())
      } else if (exchange.sentAt >= deadline + SKEW_MS) {
        if (exchange.status === 401 && exchange.code === 'KEYROT_KEY_EXPIRED') counts.oldAfterDeadlineRefused++
        else (counts.oldAfterDeadlineAccepted++, failures.push(exchange))
      } else {
        counts.oldInFlightAcrossDeadline++
      }
    }
    const oldKey = exchanges.filter((exchange) => exchange.key === 'old')
    const lastAccepted = Math.max(...oldKey.filter((e) => e.status === 200).map((e) => e.sentAt)) - deadline
    const firstRefused = Math.min(...oldKey.filter((e) => e.status !== 200).map((e) => e.sentAt)) - deadline
    const latencies = exchanges.map((exchange) => exchange.ms)
    console.log(`[zero-downtime] ${CLIENTS} clients x ${1000 / INTERVAL_MS}/s for ${RUN_MS / 1000} s, rotation at ${ROTATE_AT_MS / 1000} s, grace ${GRACE_MS / 1000} s, skew ±${SKEW_MS} ms`)
    console.log(`[zero-downtime] counts ${JSON.stringify(counts)}`)
    console.log(`[zero-downtime] old key: last success sent ${lastAccepted} ms from the deadline, first refusal sent ${firstRefused} ms from it`)
    console.log(`[zero-downtime] latency p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms`)
    for (const failure of failures.slice(0, 5)) {
      console.log(`[zero-downtime] wrong answer: ${failure.key} key, sent ${failure.sentAt - deadline} ms from the deadline, ${failure.status || failure.failure} ${failure.code ?? ''}`)
    }

    expect(failures).toEqual([])
    expect(counts.oldValidFailed + counts.newFailed).toBe(0)
    expect(counts.oldAfterDeadlineAccepted).toBe(0)
    // Every rule was exercised, and the load was steady: no client fell behind.
    expect(counts.oldValidOk).toBeGreaterThan(500)
    expect(counts.newOk).toBeGreaterThan(300)
    expect(counts.oldAfterDeadlineRefused).toBeGreaterThan(50)
    expect(counts.requests).toBeGreaterThan(CLIENTS * (RUN_MS / INTERVAL_MS) * 0.95)
  }, 90_000)

  it('leaves no token in Redis, replica logs, events, error answers or metrics', async () => {
    const corpora = await suiteArtefacts(redis.port, replicas)
    const hits = ledger.scan(corpora)
    console.log(`[zero-downtime] secrets scan: ${ledger.tokens} tokens (${ledger.needles} needles) in ${corpora.length} sources, ${corpusBytes(corpora)} bytes: ${hits.length} hits`)
    expect(ledger.tokens).toBe(2)
    expect(hits).toEqual([])
  }, 60_000)
})
