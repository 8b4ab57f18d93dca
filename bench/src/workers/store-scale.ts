import { familyOf, FastTestHasher, generateToken, newKeyId, type KeyRecord, type KeyStore } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'
import { benchKeyring, openStore, type StoreKind } from '../lib/keyrings.js'
import { roundSummary, summarize, type Summary } from '../lib/stats.js'
import { timeEach } from '../lib/timing.js'
import { measure, workerConfig } from '../lib/worker-side.js'

/**
 * Section 5b: store operations as the number of keys grows. The store is
 * filled through its public `insert` (records hashed with the fast test
 * hasher, 1,000 inserts in flight), then at each level the benchmark times
 * `keyring.create`, `keyring.rotate` and a verify that misses the cache (one
 * store read plus the test hash) on keys spread over the whole store.
 */

export interface StoreScaleConfig {
  store: StoreKind
  redisUrl: string
  levels: number[]
  opsPerLevel: number
  fillBudgetMs: number
  redisSample: number
}

export interface ScaleOperation {
  name: 'create' | 'rotate' | 'verify miss'
  latencyMs: Summary
  perSecond: number
}

export interface ScaleLevel {
  keys: number
  fillSec: number
  operations: ScaleOperation[]
  /** Redis: used_memory per key (whole server, index included); memory store: JS heap per key. */
  bytesPerKey: number
  /** Redis only: MEMORY USAGE of a key's record and credential, mean over a sample. */
  memoryUsage?: { record: number; credential: number; sample: number }
}

export interface StoreScaleResult {
  store: StoreKind
  levels: ScaleLevel[]
  /** Levels not reached within the fill budget. */
  skipped: number[]
}

const config = workerConfig<StoreScaleConfig>()
const RESERVOIR = 5_000
const TENANTS = 1_000
const BATCH = 1_000

const testHasher = new FastTestHasher()

async function buildRecord(index: number, now: number): Promise<{ token: string; record: KeyRecord }> {
  const id = newKeyId()
  const token = generateToken('sk_live', id)
  const record: KeyRecord = {
    id,
    familyId: familyOf(id),
    tenantId: `tenant-${index % TENANTS}`,
    name: `bulk ${index}`,
    prefix: 'sk_live',
    scopes: ['read'],
    metadata: {},
    createdAt: now,
    expiresAt: null,
    revokedAt: null,
    revokedReason: null,
    incidentId: null,
    rotatedFrom: null,
    rotatedTo: null,
    rotatedAt: null,
    rateLimit: null,
    usageCount: 0,
    lastUsedAt: null,
    lastUsedInGraceAt: null,
    hash: await testHasher.hash(token),
  }
  return { token, record }
}

function heapUsed(): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc) for (let i = 0; i < 3; i++) gc()
  return process.memoryUsage().heapUsed
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory')
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN)
}

async function run(): Promise<StoreScaleResult> {
  const store: KeyStore = await openStore(config.store, config.redisUrl, 'bench-scale')
  const keyring = await benchKeyring({ store: config.store, shared: store })
  // A keyring with no cache: every verify reads the store (and runs the test hash).
  const missKeyring = await benchKeyring({ store: config.store, shared: store, cache: { maxEntries: 0 }, rateLimit: false })
  const stats = config.store === 'redis' ? new Redis(config.redisUrl) : null
  const layout = store instanceof RedisStore ? store.layout : null
  const baseline = stats ? await usedMemory(stats) : heapUsed()

  // A uniform sample of every key inserted so far (reservoir sampling).
  const reservoir: Array<{ token: string; id: string; rotated: boolean }> = []
  let inserted = 0
  /** Keys made by create and rotate at earlier levels. */
  let made = 0
  let seen = 0
  const levels: ScaleLevel[] = []
  const skipped: number[] = []
  const fillStarted = performance.now()
  for (const level of config.levels) {
    if (performance.now() - fillStarted > config.fillBudgetMs) {
      skipped.push(level)
      continue
    }
    const levelStarted = performance.now()
    while (inserted < level) {
      const now = Date.now()
      const size = Math.min(BATCH, level - inserted)
      const built = await Promise.all(Array.from({ length: size }, (_, j) => buildRecord(inserted + j, now)))
      await Promise.all(built.map(({ record }) => store.insert(record)))
      for (const { token, record } of built) {
        seen++
        const entry = { token, id: record.id, rotated: false }
        if (reservoir.length < RESERVOIR) reservoir.push(entry)
        else {
          const slot = Math.floor(Math.random() * seen)
          if (slot < RESERVOIR) reservoir[slot] = entry
        }
      }
      inserted += size
      if (performance.now() - fillStarted > config.fillBudgetMs * 1.5) throw new Error(`filling the ${config.store} store to ${level} keys took over ${(config.fillBudgetMs * 1.5) / 1000} s`)
    }
    const fillSec = (performance.now() - levelStarted) / 1000

    const pick = () => reservoir[Math.floor(Math.random() * reservoir.length)]!
    const operations: ScaleOperation[] = []
    const timed = async (name: ScaleOperation['name'], op: (i: number) => Promise<unknown>) => {
      await timeEach(Math.min(50, config.opsPerLevel), op)
      const latencies = await timeEach(config.opsPerLevel, op, 30_000)
      const total = latencies.reduce((a, b) => a + b, 0)
      operations.push({ name, latencyMs: roundSummary(summarize(latencies), 5), perSecond: Math.round((latencies.length * 1000) / total) })
    }
    await timed('create', async (i) => {
      await keyring.create({ tenantId: `tenant-${i % TENANTS}`, name: 'scale' })
      made++
    })
    await timed('rotate', async () => {
      let entry = pick()
      for (let tries = 0; entry.rotated && tries < 100; tries++) entry = pick()
      if (entry.rotated) throw new Error('no unrotated key left in the sample')
      entry.rotated = true
      await keyring.rotate(entry.id, { gracePeriod: '1h' })
      made++
    })
    await timed('verify miss', async () => {
      const result = await missKeyring.verify(pick().token)
      if (!result.ok) throw new Error(`verify miss refused a key: ${result.error.code}`)
    })

    const total = inserted + made
    const result: ScaleLevel = {
      keys: level,
      fillSec: Math.round(fillSec * 10) / 10,
      operations,
      bytesPerKey: Math.round(((stats ? await usedMemory(stats) : heapUsed()) - baseline) / total),
    }
    if (stats && layout) {
      const sample = reservoir.slice(0, config.redisSample)
      let record = 0
      let credential = 0
      for (const { id } of sample) {
        record += Number(await stats.call('MEMORY', 'USAGE', layout.record(id), 'SAMPLES', '0'))
        // A key without a deadline has no credential key (record format 2): MEMORY USAGE answers nil, counted as 0.
        credential += Number(await stats.call('MEMORY', 'USAGE', layout.credential(id), 'SAMPLES', '0'))
      }
      result.memoryUsage = { record: Math.round(record / sample.length), credential: Math.round(credential / sample.length), sample: sample.length }
    }
    levels.push(result)
  }
  stats?.disconnect()
  await missKeyring.close()
  await keyring.close()
  return { store: config.store, levels, skipped }
}

measure(run)
