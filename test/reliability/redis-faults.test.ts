import { generateToken, newKeyId } from '@keyrot/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt } from '../support/build.js'
import { FaultProxy, type FaultMode } from '../support/fault-proxy.js'
import { countBy, outcome, steadyLoad, type Tagged } from '../support/load.js'
import { ControlledRedis } from '../support/redis-process.js'
import { admin, callWithKey, closeAgents, percentile, sleep, startReplica, type IssuedKeyBody, type Replica } from '../support/replicas.js'
import { corpusBytes, SecretLedger, suiteArtefacts } from '../support/secret-scan.js'

/**
 * Redis faults under load. A and B talk to Redis directly with the default
 * cache; S talks to it through a loopback fault proxy and reads Redis on
 * every request (`cache.stateTtl: 0`), so every one of its answers depends
 * on the link, but for the valid key it confirmed, which keeps working for
 * `cache.staleIfError` while the link fails. Redis keeps an fsynced append-only file, as a key store's
 * Redis would: a SIGKILL loses no acknowledged write.
 *
 * Each client alternates the valid key and well-formed tokens of unknown
 * key ids (which always need a store read).
 */

const STORE_TIMEOUT_MS = 300
/** Scheduling slack on a loaded 2-core machine on top of the store timeout. */
const MARGIN_MS = 500

let redis: ControlledRedis
let proxy: FaultProxy
let A: Replica
let B: Replica
let S: Replica
let replicas: Replica[]
let valid: IssuedKeyBody
const ledger = new SecretLedger()

const unknownToken = () => generateToken('sk_live', newKeyId())

beforeAll(async () => {
  await ensureBuilt()
  redis = await ControlledRedis.start({ persistent: true })
  proxy = await FaultProxy.start(redis.port)
  replicas = await Promise.all([
    startReplica({ name: 'A', redisUrl: redis.url, storeTimeoutMs: STORE_TIMEOUT_MS }),
    startReplica({ name: 'B', redisUrl: redis.url, storeTimeoutMs: STORE_TIMEOUT_MS }),
    startReplica({ name: 'S', redisUrl: `redis://127.0.0.1:${proxy.port}`, storeTimeoutMs: STORE_TIMEOUT_MS, stateTtlMs: 0 }),
  ])
  ;[A, B, S] = replicas as [Replica, Replica, Replica]
  valid = await admin<IssuedKeyBody>(A, 'create', { tenantId: 'acme', name: 'redis-faults' })
  ledger.addToken(valid.token)
}, 120_000)

afterAll(async () => {
  closeAgents()
  await Promise.all((replicas ?? []).map((replica) => replica.stop()))
  await proxy?.close()
  await redis?.stop()
})

/** Two clients per replica: the valid key, and unknown key ids. */
function mixedLoad(targets: readonly Replica[], intervalMs: number) {
  return steadyLoad(
    targets.flatMap((replica) => [
      { tag: `valid@${replica.name}`, target: () => replica, token: () => valid.token },
      { tag: `unknown@${replica.name}`, target: () => replica, token: unknownToken },
    ]),
    { intervalMs, maxRequests: 5_000 },
  )
}

/** Polls each replica until it answers the valid key 200 and an unknown key 401 again; ms after `since` per replica. */
async function recoveryTimes(targets: readonly Replica[], since: number, limitMs: number): Promise<Map<string, number>> {
  const recovered = new Map<string, number>()
  while (recovered.size < targets.length && Date.now() < since + limitMs) {
    for (const replica of targets) {
      if (recovered.has(replica.name)) continue
      const ok = await callWithKey(replica, valid.token)
      const unknown = await callWithKey(replica, unknownToken())
      if (ok.status === 200 && unknown.status === 401) recovered.set(replica.name, unknown.receivedAt - since)
    }
    await sleep(20)
  }
  return recovered
}

function expectOnlyKnownAnswers(exchanges: readonly Tagged[]): void {
  expect(exchanges.filter((exchange) => exchange.failure !== undefined)).toEqual([])
  for (const exchange of exchanges) {
    expect([200, 401, 503]).toContain(exchange.status)
    if (exchange.status === 503) {
      expect(exchange.code).toBe('KEYROT_STORE_UNAVAILABLE')
      expect(exchange.headers['retry-after']).toBe('1')
    }
    if (exchange.status === 401) expect(exchange.code).toBe('KEYROT_INVALID_KEY')
  }
}

describe('Redis faults under load', () => {
  it('Redis SIGKILLed and restarted mid-load: 503 within the timeout, no hang, no crash, recovery within seconds', async () => {
    const load = mixedLoad(replicas, 25)
    await sleep(1_500)
    const killedAt = Date.now()
    await redis.kill()
    await sleep(3_000)
    await redis.restart()
    const restartedAt = Date.now()
    const recovered = await recoveryTimes(replicas, restartedAt, 10_000)
    await sleep(1_500)
    await load.stop()

    // Before: answered before the kill. Down: sent before the restart. After: the rest.
    const phase = (e: Tagged) => (e.receivedAt < killedAt ? 'before' : e.sentAt < restartedAt ? 'down' : 'after')
    const counts = countBy(load.exchanges, (e) => `${phase(e)} ${outcome(e)}`)
    const slowest = Math.max(...load.exchanges.map((e) => e.ms))
    console.log(`[redis-faults] Redis SIGKILL for 3 s under ${load.exchanges.length} requests: ${JSON.stringify(counts)}`)
    console.log(`[redis-faults] slowest answer ${slowest.toFixed(0)} ms (store timeout ${STORE_TIMEOUT_MS} ms); recovered after restart in ms ${JSON.stringify(Object.fromEntries(recovered))}`)

    expectOnlyKnownAnswers(load.exchanges)
    expect(slowest).toBeLessThan(STORE_TIMEOUT_MS + MARGIN_MS)
    expect(load.exchanges.filter((e) => phase(e) === 'before' && e.status === 503)).toEqual([])
    // While Redis is gone nothing that needs it succeeds or is called unknown.
    const down = load.exchanges.filter((e) => e.sentAt > killedAt + 50 && e.receivedAt < restartedAt && e.tag.startsWith('unknown'))
    expect(down.length).toBeGreaterThan(50)
    expect(down.every((e) => e.status === 503)).toBe(true)
    for (const replica of replicas) expect(replica.alive()).toBe(true)
    expect([...recovered.keys()].sort()).toEqual(['A', 'B', 'S'])
    for (const ms of recovered.values()) expect(ms).toBeLessThan(5_000)
    for (const replica of replicas) {
      const back = restartedAt + (recovered.get(replica.name) as number)
      expect(load.exchanges.filter((e) => e.replica === replica.name && e.sentAt > back && e.status === 503)).toEqual([])
    }
  }, 60_000)

  it('a slow Redis (fault proxy: latency, stall, reset) hits the store timeout, never hangs a request, and recovers', async () => {
    const phases: Array<{ mode: FaultMode; ms: number }> = [
      { mode: { kind: 'pass' }, ms: 1_500 },
      { mode: { kind: 'delay', ms: 50 }, ms: 2_000 },
      { mode: { kind: 'delay', ms: 400 }, ms: 2_000 },
      { mode: { kind: 'blackhole' }, ms: 2_000 },
      { mode: { kind: 'pass' }, ms: 2_000 },
      { mode: { kind: 'reset' }, ms: 1_500 },
      { mode: { kind: 'pass' }, ms: 0 },
    ]
    const load = mixedLoad([S], 20)
    const switches: Array<{ at: number; name: string }> = []
    for (const { mode, ms } of phases) {
      proxy.setMode(mode)
      switches.push({ at: Date.now(), name: mode.kind === 'delay' ? `delay ${mode.ms} ms` : mode.kind })
      await sleep(ms)
    }
    const lastPassAt = (switches.at(-1) as { at: number }).at
    const recovered = await recoveryTimes([S], lastPassAt, 10_000)
    await sleep(1_000)
    await load.stop()

    // Judged: requests sent after a switch settled (the store timeout plus slack) and answered before the next one.
    const settleMs = STORE_TIMEOUT_MS + 300
    const byPhase = switches.map((current, i) => {
      const next = switches[i + 1]?.at ?? Number.POSITIVE_INFINITY
      const judged = load.exchanges.filter((e) => e.sentAt >= current.at + settleMs && e.receivedAt < next)
      return { name: current.name, judged, ms: judged.map((e) => e.ms) }
    })
    for (const { name, judged, ms } of byPhase) {
      if (judged.length === 0) continue
      console.log(
        `[redis-faults] proxy ${name}: ${JSON.stringify(countBy(judged, outcome))}, latency p50 ${percentile(ms, 50).toFixed(0)} ms, max ${Math.max(...ms).toFixed(0)} ms`,
      )
    }
    console.log(`[redis-faults] S recovered ${recovered.get('S')} ms after the proxy passed traffic again`)

    expectOnlyKnownAnswers(load.exchanges)
    expect(Math.max(...load.exchanges.map((e) => e.ms))).toBeLessThan(STORE_TIMEOUT_MS + MARGIN_MS)
    const phase = (index: number) => byPhase[index] as (typeof byPhase)[number]
    // pass and a small delay: every request answered normally; the delay shows in every store round trip.
    for (const index of [0, 1]) {
      expect(phase(index).judged.length).toBeGreaterThan(20)
      expect(phase(index).judged.every((e) => e.status !== 503)).toBe(true)
    }
    expect(Math.min(...phase(1).ms)).toBeGreaterThanOrEqual(100)
    // A delay over the timeout, a stall, connections reset: unknown keys are refused as unavailable; the
    // valid key, confirmed by S before, keeps working (cache.staleIfError). Once the first read timed out,
    // the store circuit is open: requests no longer wait the timeout.
    for (const index of [2, 3, 5]) {
      const unknown = phase(index).judged.filter((e) => e.tag.startsWith('unknown'))
      const known = phase(index).judged.filter((e) => e.tag.startsWith('valid'))
      expect(unknown.length).toBeGreaterThan(5)
      expect(unknown.every((e) => e.status === 503)).toBe(true)
      expect(known.length).toBeGreaterThan(5)
      expect(known.every((e) => e.status === 200)).toBe(true)
      expect(percentile(phase(index).ms, 50)).toBeLessThan(STORE_TIMEOUT_MS / 2)
    }
    expect(S.alive()).toBe(true)
    expect(recovered.get('S')).toBeLessThan(5_000)
    // A and B, on their own connections, never noticed.
    expect((await callWithKey(A, valid.token)).status).toBe(200)
    expect((await callWithKey(B, valid.token)).status).toBe(200)
  }, 60_000)

  it('leaves no token in Redis, replica logs, events, error answers or metrics', async () => {
    const corpora = await suiteArtefacts(redis.port, replicas)
    const hits = ledger.scan(corpora)
    console.log(`[redis-faults] secrets scan: ${ledger.tokens} tokens in ${corpora.length} sources, ${corpusBytes(corpora)} bytes: ${hits.length} hits`)
    expect(ledger.tokens).toBe(1)
    expect(hits).toEqual([])
  }, 60_000)
})
