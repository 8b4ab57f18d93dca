import { createHash, randomBytes } from 'node:crypto'
import { apiKey } from '@better-auth/api-key'
import { Argon2Hasher, FastTestHasher, OWASP_ARGON2, type Hasher, type Keyring } from '@keyrot/core'
import { betterAuth } from 'better-auth'
import { memoryAdapter } from 'better-auth/adapters/memory'
import { benchKeyring, createKeys, proveAll } from '../lib/keyrings.js'
import { NodeRsArgon2Hasher } from '../lib/node-rs-hasher.js'
import { roundSummary, summarize, type Summary } from '../lib/stats.js'
import { throughput, timeEach } from '../lib/timing.js'
import { measure, workerConfig } from '../lib/worker-side.js'

/**
 * Section 3, in one process: the verify path of keyrot, of better-auth's
 * API-key plugin (in-memory adapter) and of a hand-rolled "SHA-256 + Map"
 * check, at a cache hit (a token verified before) and at first use.
 */

export interface PeersConfig {
  keys: number
  warmupOps: number
  samples: number
  firstUse: number
}

export interface PeerSeries {
  peer: 'keyrot' | 'better-auth' | 'hand-rolled'
  name: string
  path: 'hit' | 'first-use'
  latencyMs: Summary
  perSecond: number
}

export interface PeersResult {
  keys: number
  series: PeerSeries[]
  betterAuthWritesPerVerify: number
}

const config = workerConfig<PeersConfig>()

interface Verifier {
  verify(token: string): Promise<boolean>
}

/** The hand-rolled middleware's check: SHA-256 of the token, a Map lookup, revoked and expiry checks. */
function handRolled(): Verifier & { add(token: string): void } {
  const keys = new Map<string, { id: string; revokedAt: number | null; expiresAt: number | null }>()
  const digest = (token: string) => createHash('sha256').update(token).digest('base64url')
  return {
    add(token) {
      keys.set(digest(token), { id: randomBytes(8).toString('hex'), revokedAt: null, expiresAt: null })
    },
    async verify(token) {
      const key = keys.get(digest(token))
      return key !== undefined && key.revokedAt === null && (key.expiresAt === null || key.expiresAt > Date.now())
    },
  }
}

interface BetterAuthPeer extends Verifier {
  create(): Promise<string>
  writes(): number
}

async function betterAuthPeer(): Promise<BetterAuthPeer> {
  const db: Record<string, Record<string, unknown>[]> = { user: [], session: [], account: [], verification: [], apikey: [] }
  const adapter = memoryAdapter(db)
  let writes = 0
  // Count the adapter's writes: better-auth updates the key row on every verify.
  const counting: typeof adapter = (options) => {
    const inner = adapter(options)
    const count = <F extends (...args: never[]) => unknown>(fn: F): F =>
      ((...args: Parameters<F>) => {
        writes++
        return fn(...args)
      }) as F
    return { ...inner, update: count(inner.update), updateMany: count(inner.updateMany), incrementOne: inner.incrementOne ? count(inner.incrementOne) : inner.incrementOne } as typeof inner
  }
  const auth = betterAuth({
    secret: randomBytes(32).toString('hex'),
    baseURL: 'http://127.0.0.1:3000',
    database: counting,
    // better-auth's own request rate limit and the plugin's per-key limit are off: only the verify path is measured.
    rateLimit: { enabled: false },
    logger: { disabled: true },
    plugins: [apiKey({ rateLimit: { enabled: false } })],
  })
  const now = new Date()
  db['user']!.push({ id: 'bench-user', name: 'bench', email: 'bench@example.com', emailVerified: true, createdAt: now, updatedAt: now })
  return {
    async create() {
      const created = await auth.api.createApiKey({ body: { userId: 'bench-user', name: 'bench' } })
      return created.key
    },
    async verify(key) {
      const result = await auth.api.verifyApiKey({ body: { key } })
      return result.valid
    },
    writes: () => writes,
  }
}

function keyrotVerifier(keyring: Keyring): Verifier {
  return {
    async verify(token) {
      return (await keyring.verify(token)).ok
    },
  }
}

async function hitSeries(peer: PeerSeries['peer'], name: string, verifier: Verifier, tokens: string[]): Promise<PeerSeries> {
  let refused = 0
  const op = async (i: number) => {
    if (!(await verifier.verify(tokens[i % tokens.length] as string))) refused++
  }
  await throughput(config.warmupOps, 3_000, op)
  const latencies = await timeEach(config.samples, op, 20_000)
  const perSecond = await throughput(config.samples, 3_000, op)
  if (refused > 0) throw new Error(`${name}: ${refused} verifies refused`)
  return { peer, name, path: 'hit', latencyMs: roundSummary(summarize(latencies), 6), perSecond: Math.round(perSecond) }
}

/** Verifies each fresh token once, one at a time. */
async function firstUseSeries(peer: PeerSeries['peer'], name: string, verifier: Verifier, fresh: string[]): Promise<PeerSeries> {
  let refused = 0
  const latencies = await timeEach(fresh.length, async (i) => {
    if (!(await verifier.verify(fresh[i] as string))) refused++
  })
  if (refused > 0) throw new Error(`${name}: ${refused} first verifies refused`)
  const total = latencies.reduce((a, b) => a + b, 0)
  return { peer, name, path: 'first-use', latencyMs: roundSummary(summarize(latencies), 6), perSecond: Math.round((latencies.length * 1000) / total) }
}

async function run(): Promise<PeersResult> {
  const out: PeerSeries[] = []
  const n = config.keys

  // Hand-rolled SHA-256 + Map.
  const hand = handRolled()
  const handTokens = Array.from({ length: n + config.firstUse }, () => `hr_${randomBytes(32).toString('base64url')}`)
  handTokens.forEach((token) => hand.add(token))
  out.push(await hitSeries('hand-rolled', 'hand-rolled SHA-256 + Map', hand, handTokens.slice(0, n)))
  out.push(await firstUseSeries('hand-rolled', 'hand-rolled SHA-256 + Map', hand, handTokens.slice(n)))

  // better-auth API-key plugin, in-memory adapter.
  const ba = await betterAuthPeer()
  const baTokens: string[] = []
  for (let i = 0; i < n + config.firstUse; i++) baTokens.push(await ba.create())
  // Hits first, so the first-use series runs on warmed-up code, as keyrot's does.
  out.push(await hitSeries('better-auth', 'better-auth api-key (memory adapter)', ba, baTokens.slice(0, n)))
  out.push(await firstUseSeries('better-auth', 'better-auth api-key (memory adapter)', ba, baTokens.slice(n)))
  // Writes per verify, counted over one more batch.
  const probe = 1_000
  const before = ba.writes()
  for (let i = 0; i < probe; i++) await ba.verify(baTokens[i % n] as string)
  const writesPerVerify = (ba.writes() - before) / probe

  // keyrot, memory store, default abuse protection (per-key quota raised).
  const keyring = await benchKeyring({ store: 'memory' })
  const { tokens } = await createKeys(keyring, n)
  await proveAll(keyring, tokens)
  out.push(await hitSeries('keyrot', 'keyrot verify (memory store)', keyrotVerifier(keyring), tokens))
  await keyring.close()

  // keyrot at first use: a token never proven in this process runs the hasher once.
  const hashers: Array<{ name: string; hasher: Hasher }> = [
    { name: 'keyrot verify, Argon2id OWASP (argon2)', hasher: new Argon2Hasher() },
    { name: 'keyrot verify, Argon2id OWASP (@node-rs/argon2)', hasher: new NodeRsArgon2Hasher(OWASP_ARGON2) },
    { name: 'keyrot verify, FastTestHasher (tests only: no Argon2)', hasher: new FastTestHasher() },
  ]
  for (const { name, hasher } of hashers) {
    const first = await benchKeyring({ store: 'memory', hasher })
    const created = await createKeys(first, config.firstUse)
    out.push(await firstUseSeries('keyrot', name, keyrotVerifier(first), created.tokens))
    await first.close()
  }
  return { keys: n, series: out, betterAuthWritesPerVerify: writesPerVerify }
}

measure(run)
