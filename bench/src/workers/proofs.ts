import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { Argon2Hasher, createKeyring, FastTestHasher, SharedProofs, type Hasher } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { createKeys } from '../lib/keyrings.js'
import { roundSummary, summarize, type Summary } from '../lib/stats.js'
import { underLoad } from '../lib/timing.js'
import { measure, workerConfig } from '../lib/worker-side.js'

/**
 * The proofs section, one process per replica:
 * - `setup` (replica A): `bulk` keys hashed with a cheap test hasher, whose
 *   proofs A writes with `SharedProofs.make` + `putProof` (the bytes A writes
 *   after an Argon2 run), and `sample` keys with real OWASP Argon2id hashes
 *   that A proves with real Argon2 (writing their proofs the normal way);
 * - `replica` (a fresh replica B or C): verifies every listed token once, with
 *   real Argon2 behind the keyring, and reports wall time, its CPU time,
 *   first-verify latencies, Argon2 runs and shared-proof outcomes.
 */

export interface ProofsConfig {
  mode: 'setup' | 'replica'
  redisUrl: string
  keyPrefix: string
  /** base64 proof key; `null`: the replica runs without one. */
  proofKey: string | null
  /** File with the tokens (setup writes it, replicas read it). */
  tokensFile: string
  bulk: number
  sample: number
  /** replica: which tokens to verify. */
  which: 'all' | 'sample'
  concurrency: number
}

export interface ProofsSetupResult {
  createMs: number
  argon2ProveMs: number
  proofsWritten: number
}

export interface ProofsReplicaResult {
  tokens: number
  failed: number
  wallMs: number
  cpuSec: number
  firstVerifyMs: Summary
  argon2Runs: number
  sharedProofs: Record<string, number> | null
}

const config = workerConfig<ProofsConfig>()

class CountingHasher implements Hasher {
  runs = 0
  constructor(readonly inner: Hasher) {}
  hash(token: string): Promise<string> {
    return this.inner.hash(token)
  }
  verify(hash: string, token: string): Promise<boolean> {
    this.runs++
    return this.inner.verify(hash, token)
  }
}

function open(hasher: Hasher) {
  const store = new RedisStore({ client: new Redis(config.redisUrl, { lazyConnect: true }), keyPrefix: config.keyPrefix, timeout: '5s' })
  const proofKey = config.proofKey === null ? null : Buffer.from(config.proofKey, 'base64')
  // No overload bound: the bench measures the whole cost of proving, as a replica paid it before the bound existed.
  return { store, keyring: createKeyring({ store, hasher, proofKey, rateLimit: false, argon2: { maxWait: 0 } }) }
}

async function setup(): Promise<ProofsSetupResult> {
  const created = performance.now()
  const cheap = open(new FastTestHasher())
  await cheap.store.waitUntilReady()
  const bulk = await createKeys(cheap.keyring, config.bulk)
  const argon = open(new Argon2Hasher())
  const sample = await createKeys(argon.keyring, config.sample)
  const createMs = performance.now() - created
  const proofs = new SharedProofs(Buffer.from(config.proofKey ?? randomBytes(32).toString('base64'), 'base64'))
  let written = 0
  for (let i = 0; i < bulk.ids.length; i += 200) {
    const batch = bulk.ids.slice(i, i + 200)
    const kept = await Promise.all(batch.map((id, j) => cheap.store.putProof(id, proofs.make(id, bulk.tokens[i + j] as string))))
    written += kept.filter(Boolean).length
  }
  // The sample is proven the real way: Argon2 on replica A, which then shares the proof.
  const proving = performance.now()
  await underLoad(8, sample.tokens.length, 600_000, async (i) => {
    const result = await argon.keyring.verify(sample.tokens[i] as string)
    if (!result.ok) throw new Error(`replica A refused a sample token: ${result.error.code}`)
  })
  const argon2ProveMs = performance.now() - proving
  for (let tries = 0; tries < 500 && (argon.keyring.proofStats().sharedProofs?.shared ?? 0) < sample.tokens.length; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  written += argon.keyring.proofStats().sharedProofs?.shared ?? 0
  writeFileSync(config.tokensFile, JSON.stringify({ bulk: bulk.tokens, sample: sample.tokens }), { mode: 0o600 })
  await cheap.keyring.close()
  await argon.keyring.close()
  return { createMs: Math.round(createMs), argon2ProveMs: Math.round(argon2ProveMs), proofsWritten: written }
}

async function replica(): Promise<ProofsReplicaResult> {
  const file = JSON.parse(readFileSync(config.tokensFile, 'utf8')) as { bulk: string[]; sample: string[] }
  const tokens = config.which === 'all' ? [...file.bulk, ...file.sample] : file.sample
  const hasher = new CountingHasher(new Argon2Hasher())
  const { store, keyring } = open(hasher)
  await store.waitUntilReady()
  await store.invalidationReady()
  let failed = 0
  const cpu = process.cpuUsage()
  const run = await underLoad(config.concurrency, tokens.length, 900_000, async (i) => {
    if (!(await keyring.verify(tokens[i] as string)).ok) failed++
  })
  const used = process.cpuUsage(cpu)
  const result = {
    tokens: tokens.length,
    failed,
    wallMs: Math.round(run.elapsedMs),
    cpuSec: Math.round((used.user + used.system) / 1e4) / 100,
    firstVerifyMs: roundSummary(summarize(run.latencies)),
    argon2Runs: hasher.runs,
    sharedProofs: keyring.proofStats().sharedProofs,
  }
  await keyring.close()
  return result
}

measure(() => (config.mode === 'setup' ? setup() : replica()))
