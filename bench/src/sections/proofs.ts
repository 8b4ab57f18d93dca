import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { count, duration } from '../lib/format.js'
import { runWorker } from '../lib/processes.js'
import type { RunContext, SectionReport } from '../lib/report.js'
import type { ProofsConfig, ProofsReplicaResult, ProofsSetupResult } from '../workers/proofs.js'

/** Redis's own CPU seconds so far (user + system), from `INFO cpu`. */
function redisCpuSec(context: RunContext): number {
  let total = 0
  for (const line of context.redis.cli('INFO', 'cpu').split(/\r?\n/)) {
    const [name, value] = line.split(':')
    if (name === 'used_cpu_user' || name === 'used_cpu_sys') total += Number(value)
  }
  return total
}

/**
 * Section 7: the warm-up of a fresh replica with the fleet-wide proof cache.
 * Replica A has proven `keys` tokens; replica B (a fresh process, real
 * Argon2id behind its keyring) verifies every one of them once. Replica C
 * does the same without a proof key, on the sample of keys with real Argon2id
 * hashes, and its cost is scaled to all keys.
 */
export async function proofsSection(context: RunContext): Promise<SectionReport> {
  const quick = context.profile.name === 'quick'
  const keys = quick ? 1_000 : 10_000
  const sample = quick ? 40 : 400
  const concurrency = 32
  const directory = mkdtempSync(join(tmpdir(), 'keyrot-bench-proofs-'))
  const proofKey = randomBytes(32).toString('base64')
  const base: ProofsConfig = {
    mode: 'setup',
    redisUrl: context.redis.url,
    keyPrefix: 'proofs',
    proofKey,
    tokensFile: join(directory, 'tokens.json'),
    bulk: keys - sample,
    sample,
    which: 'all',
    concurrency,
  }
  try {
    context.log(`proofs: replica A creates ${count(keys)} keys (${count(sample)} with real Argon2id hashes) and proves them`)
    const setup = await runWorker<ProofsSetupResult>('proofs', { config: base, timeoutMs: 900_000 })
    if (setup.proofsWritten !== keys) throw new Error(`replica A shared ${setup.proofsWritten} proofs, expected ${keys}`)

    context.log(`proofs: fresh replica B (proof key) verifies all ${count(keys)} tokens`)
    const redisBefore = redisCpuSec(context)
    const withKey = await runWorker<ProofsReplicaResult>('proofs', { config: { ...base, mode: 'replica' }, timeoutMs: 900_000 })
    const redisWithKey = redisCpuSec(context) - redisBefore

    context.log(`proofs: fresh replica C (no proof key) verifies the ${count(sample)} Argon2id tokens`)
    const without = await runWorker<ProofsReplicaResult>('proofs', { config: { ...base, mode: 'replica', proofKey: null, which: 'sample' }, timeoutMs: 900_000 })
    const scale = keys / sample
    const scaledCpu = without.cpuSec * scale
    const scaledWall = without.wallMs * scale

    const row = (label: string, r: ProofsReplicaResult, extra: string) => [
      label,
      count(r.tokens),
      duration(r.wallMs),
      `${r.cpuSec.toFixed(2)} s`,
      duration(r.firstVerifyMs.p50),
      duration(r.firstVerifyMs.p99),
      count(r.argon2Runs),
      String(r.sharedProofs?.hit ?? 0),
      String(r.failed),
      extra,
    ]
    const met = withKey.failed === 0 && withKey.argon2Runs === 0 && withKey.cpuSec <= 2
    return {
      id: 'proofs',
      title: 'Warm-up of a fresh replica: shared proofs',
      tables: [
        {
          title: `A fresh replica verifies every token once (${concurrency} in flight, real Argon2id OWASP behind the keyring; Redis on loopback)`,
          columns: ['replica', 'tokens', 'wall', 'CPU', 'first verify p50', 'p99', 'Argon2 runs', 'shared-proof hits', 'failed', 'note'],
          rows: [
            row('B, proof key', withKey, `Redis CPU ${redisWithKey.toFixed(2)} s`),
            row('C, no proof key', without, 'measured'),
            [
              'C, no proof key',
              count(keys),
              duration(scaledWall),
              `${scaledCpu.toFixed(1)} s`,
              duration(without.firstVerifyMs.p50),
              'n/a',
              count(keys),
              '0',
              'n/a',
              `scaled x${scale} from the ${count(sample)}`,
            ],
          ],
          notes: [
            `Setup on replica A: ${count(keys)} keys created in ${duration(setup.createMs)}; ${count(sample)} of them hashed and then proven with real Argon2id (${duration(setup.argon2ProveMs)}), ` +
              `the other ${count(keys - sample)} hashed with the cheap test hasher and their proofs written with SharedProofs.make + putProof (the bytes A writes after Argon2): ` +
              'B reads no hash when a proof matches (0 Argon2 runs is checked), so the shortcut changes nothing B measures.',
            'CPU is the replica process only (user + system); Redis served the reads on the same machine.',
          ],
        },
      ],
      checks: [
        {
          name: `a fresh replica proves ${count(keys)} tokens the fleet proved before`,
          target: 'within 2 s of CPU, 0 failed, 0 Argon2 runs',
          measured: `${withKey.cpuSec.toFixed(2)} s CPU, ${duration(withKey.wallMs)} wall, ${withKey.failed} failed, ${withKey.argon2Runs} Argon2 runs (without a proof key: ~${scaledCpu.toFixed(0)} s CPU)`,
          met,
        },
      ],
      notes: [],
      data: { keys, sample, setup, withKey, without, redisWithKeyCpuSec: redisWithKey, scaledWithout: { cpuSec: scaledCpu, wallMs: scaledWall } },
    }
  } finally {
    rmSync(directory, { recursive: true, force: true })
  }
}
