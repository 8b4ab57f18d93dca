import { authenticate, createKeyring, DailyUsage, FastTestHasher, ManualClock, MemoryStore, type Keyring } from '@keyrot/core'
import { roundSummary, summarize, type Summary } from '../lib/stats.js'
import { timeEach, timeEachSync, throughput } from '../lib/timing.js'
import { measure, workerConfig } from '../lib/worker-side.js'

/**
 * The cost of rotation policies on a cache-hit verify (memory store, abuse
 * protection off so the policy is what differs): no policy, a policy with
 * every key before its warning (the common case), every key in its warning
 * window (result carries `rotation`), and the same through `authenticate()`
 * (the adapters' path, which adds the Deprecation header). Series run in
 * alternating rounds so drift on a shared machine hits each alike.
 */

export interface PolicyBenchConfig {
  keys: number
  warmupOps: number
  latencySamples: number
  rounds: number
}

export interface PolicySeries {
  name: string
  latencyMs: Summary
  perSecond: number
}

export interface PolicyBenchResult {
  keys: number
  rounds: number
  series: PolicySeries[]
}

const config = workerConfig<PolicyBenchConfig>()
const DAY = 86_400_000

async function setup(policy: boolean, ageDays: number): Promise<{ keyring: Keyring; tokens: string[] }> {
  const clock = new ManualClock(Date.now())
  const keyring = createKeyring({
    store: new MemoryStore(),
    hasher: new FastTestHasher(),
    rateLimit: false,
    clock,
    // The state TTL outlasts the run: every verify is a cache hit.
    cache: { stateTtl: '1h' },
    ...(policy ? { policy: { maxAge: '90d', rotationWarning: '14d' } } : {}),
  })
  const tokens: string[] = []
  for (let i = 0; i < config.keys; i++) tokens.push((await keyring.create({ tenantId: `tenant-${i % 10}`, name: `bench ${i}` })).token)
  clock.advance(ageDays * DAY)
  for (const token of tokens) {
    const result = await keyring.verify(token)
    if (!result.ok) throw new Error(`policy bench: setup verify refused (${result.error.code})`)
  }
  return { keyring, tokens }
}

async function run(): Promise<PolicyBenchResult> {
  const setups = [
    { name: 'verify, no policy', ...(await setup(false, 80)), via: 'verify' as const },
    // The same setup again: how far two identical series differ on this machine (the noise floor of the deltas).
    { name: 'verify, no policy (control: a second identical keyring)', ...(await setup(false, 80)), via: 'verify' as const },
    { name: 'verify, policy, key before its warning', ...(await setup(true, 10)), via: 'verify' as const },
    { name: 'verify, policy, key due (rotation in the result)', ...(await setup(true, 80)), via: 'verify' as const },
    { name: 'authenticate(), no policy', ...(await setup(false, 80)), via: 'authenticate' as const },
    { name: 'authenticate(), policy, key due (Deprecation header)', ...(await setup(true, 80)), via: 'authenticate' as const },
  ]
  const samples = new Map<string, number[]>(setups.map((s) => [s.name, []]))
  const rates = new Map<string, number[]>(setups.map((s) => [s.name, []]))
  for (const s of setups) {
    const k = s.tokens.length
    const requests = s.tokens.map((token) => ({ authorization: `Bearer ${token}` }))
    const op =
      s.via === 'verify'
        ? async (i: number) => {
            if (!(await s.keyring.verify(s.tokens[i % k] as string)).ok) throw new Error(`${s.name}: refused`)
          }
        : async (i: number) => {
            if (!(await authenticate(s.keyring, requests[i % k]!)).ok) throw new Error(`${s.name}: refused`)
          }
    ;(s as { op?: typeof op }).op = op
    await throughput(config.warmupOps, 2_000, op)
  }
  const perRound = Math.ceil(config.latencySamples / config.rounds)
  for (let round = 0; round < config.rounds; round++) {
    for (const s of setups) {
      const op = (s as unknown as { op: (i: number) => Promise<void> }).op
      samples.get(s.name)!.push(...(await timeEach(perRound, op, 20_000)))
      rates.get(s.name)!.push(await throughput(perRound, 1_000, op))
    }
  }
  const series: PolicySeries[] = setups.map((s) => {
    const r = rates.get(s.name)!
    return { name: s.name, latencyMs: roundSummary(summarize(samples.get(s.name)!), 6), perSecond: Math.round(r.reduce((a, b) => a + b, 0) / r.length) }
  })
  // The per-day usage counter runs on every successful verify, policy or not: measured alone.
  const daily = new DailyUsage()
  const ids = Array.from({ length: config.keys }, (_, i) => `key${String(i).padStart(13, '0')}`)
  const now = Date.now()
  const add = (i: number) => daily.add(ids[i % ids.length] as string, now)
  for (let i = 0; i < config.warmupOps; i++) add(i)
  const addSamples = timeEachSync(config.latencySamples, add)
  series.push({ name: 'part: per-day usage count (memory store, every verify)', latencyMs: roundSummary(summarize(addSamples), 6), perSecond: 0 })
  for (const s of setups) await s.keyring.close()
  return { keys: config.keys, rounds: config.rounds, series }
}

measure(run)
