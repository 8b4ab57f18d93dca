import type { Argon2Options } from '@keyrot/core'

/** How much of everything to run: `full` for the published figures, `quick` for a smoke run under a minute. */
export interface Profile {
  name: 'full' | 'quick'
  verify: { keys: number; warmupOps: number; latencySamples: number; throughputOps: number; throughputMaxMs: number; stateMissSamples: number; argonMissSamples: number }
  /**
   * `slices`: the measured seconds of each app process are cut into this many turns, interleaved with the other apps' (sections/http.ts).
   * `instances`: processes per round of each app in a target's ratio (bare, the Redis store; the hand-rolled check and the memory store on Express and Koa): identical
   * processes differ by a few percent for a whole run (memory layout, compiled code), so one process of each makes a noisy ratio.
   */
  http: { durationSec: number; warmupSec: number; connections: number; rounds: number; slices: number; instances: number }
  peers: { keys: number; warmupOps: number; samples: number; firstUse: number }
  propagation: { replicas: number; trials: number; graceMs: number; maxWaitMs: number }
  memory: { cacheEntries: number; redisSample: number }
  scale: { levels: number[]; opsPerLevel: number; fillBudgetMs: number }
  argon2: {
    pools: number[]
    params: Array<{ label: string } & Required<Argon2Options>>
    concurrency: number
    loadMs: number
    sequential: number
    warmupKeys: number[]
  }
  policy: { keys: number; warmupOps: number; latencySamples: number; rounds: number }
}

const OWASP = { label: 'OWASP m=19456 t=2 p=1', memoryCost: 19_456, timeCost: 2, parallelism: 1 }
const OWASP_ONE_PASS = { label: 'OWASP m=47104 t=1 p=1', memoryCost: 47_104, timeCost: 1, parallelism: 1 }
const RFC9106_LOW_MEMORY = { label: 'RFC 9106 m=65536 t=3 p=4', memoryCost: 65_536, timeCost: 3, parallelism: 4 }

export const FULL: Profile = {
  name: 'full',
  verify: { keys: 1_000, warmupOps: 50_000, latencySamples: 100_000, throughputOps: 1_000_000, throughputMaxMs: 3_000, stateMissSamples: 20_000, argonMissSamples: 60 },
  http: { durationSec: 2, warmupSec: 1, connections: 50, rounds: 4, slices: 8, instances: 3 },
  peers: { keys: 100, warmupOps: 20_000, samples: 50_000, firstUse: 40 },
  propagation: { replicas: 4, trials: 200, graceMs: 300, maxWaitMs: 3_000 },
  memory: { cacheEntries: 10_000, redisSample: 1_000 },
  // 1,000,000 Redis inserts take about 4.5 min on 2 busy cores: the budget leaves room for a loaded machine.
  scale: { levels: [10_000, 100_000, 1_000_000], opsPerLevel: 2_000, fillBudgetMs: 600_000 },
  argon2: { pools: [1, 2, 4], params: [OWASP, OWASP_ONE_PASS, RFC9106_LOW_MEMORY], concurrency: 32, loadMs: 2_500, sequential: 10, warmupKeys: [100, 400] },
  policy: { keys: 1_000, warmupOps: 50_000, latencySamples: 100_000, rounds: 5 },
}

export const QUICK: Profile = {
  name: 'quick',
  verify: { keys: 200, warmupOps: 5_000, latencySamples: 10_000, throughputOps: 50_000, throughputMaxMs: 300, stateMissSamples: 2_000, argonMissSamples: 5 },
  http: { durationSec: 1, warmupSec: 0.5, connections: 20, rounds: 1, slices: 4, instances: 2 },
  peers: { keys: 50, warmupOps: 2_000, samples: 5_000, firstUse: 5 },
  propagation: { replicas: 4, trials: 15, graceMs: 150, maxWaitMs: 2_000 },
  memory: { cacheEntries: 2_000, redisSample: 200 },
  scale: { levels: [1_000, 10_000], opsPerLevel: 200, fillBudgetMs: 20_000 },
  argon2: { pools: [1, 2], params: [OWASP], concurrency: 8, loadMs: 400, sequential: 3, warmupKeys: [20] },
  policy: { keys: 200, warmupOps: 5_000, latencySamples: 10_000, rounds: 2 },
}
