import { createKeyring, FastTestHasher, MemoryStore, type Hasher, type Keyring, type KeyringOptions, type KeyStore, type RateLimitOptions } from '@keyrot/core'
import { RedisStore } from '@keyrot/redis'
import { Redis } from 'ioredis'

/**
 * The keyring configuration the benchmark measures by default: keyrot's
 * default abuse protection (failures per IP and per key id, IP blocks, the
 * negative cache) and a per-key quota that is counted on every request but
 * set high enough never to refuse a benchmark's traffic (the default is 100
 * requests per minute per key).
 */
export const BENCH_RATE_LIMIT: RateLimitOptions = { perKey: { limit: 1_000_000_000, window: '1m' } }

export type StoreKind = 'memory' | 'redis'

export interface BenchKeyringOptions {
  store: StoreKind
  redisUrl?: string
  /** Key prefix in Redis, so sections do not see each other's keys. */
  keyPrefix?: string
  hasher?: Hasher
  rateLimit?: RateLimitOptions | false
  cache?: KeyringOptions['cache']
  /** Share this store instead of opening one. */
  shared?: KeyStore
  /** Default `null`: no shared proofs (whatever KEYROT_PROOF_KEY says), so first uses cost what they measure. */
  proofKey?: KeyringOptions['proofKey']
  /** Default `{ maxWait: 0 }`: Argon2 runs queue without being refused, so a section measures their whole cost. */
  argon2?: KeyringOptions['argon2']
}

export async function openStore(kind: StoreKind, redisUrl: string | undefined, keyPrefix = 'bench'): Promise<KeyStore> {
  if (kind === 'memory') return new MemoryStore()
  if (!redisUrl) throw new Error('the Redis store needs the benchmark redis-server URL')
  // The application's client is only a template: the store opens its own connections.
  const client = new Redis(redisUrl, { lazyConnect: true })
  const store = new RedisStore({ client, keyPrefix, timeout: '5s' })
  await store.waitUntilReady()
  return store
}

export async function benchKeyring(options: BenchKeyringOptions): Promise<Keyring> {
  const store = options.shared ?? (await openStore(options.store, options.redisUrl, options.keyPrefix))
  const keyring = createKeyring({
    store,
    hasher: options.hasher ?? new FastTestHasher(),
    rateLimit: options.rateLimit ?? BENCH_RATE_LIMIT,
    ...(options.cache ? { cache: options.cache } : {}),
    proofKey: options.proofKey ?? null,
    argon2: options.argon2 ?? { maxWait: 0 },
  })
  if (store instanceof RedisStore) await store.invalidationReady()
  return keyring
}

/** Creates `count` keys and returns their tokens (and ids). */
export async function createKeys(keyring: Keyring, count: number, tenants = 10): Promise<{ tokens: string[]; ids: string[] }> {
  const tokens: string[] = []
  const ids: string[] = []
  const batch = 50
  for (let start = 0; start < count; start += batch) {
    const issued = await Promise.all(
      Array.from({ length: Math.min(batch, count - start) }, (_, j) => keyring.create({ tenantId: `tenant-${(start + j) % tenants}`, name: `bench ${start + j}` })),
    )
    for (const { token, key } of issued) {
      tokens.push(token)
      ids.push(key.id)
    }
  }
  return { tokens, ids }
}

/** Verifies every token once and fails loudly if any is refused. */
export async function proveAll(keyring: Keyring, tokens: readonly string[]): Promise<void> {
  for (const token of tokens) {
    const result = await keyring.verify(token)
    if (!result.ok) throw new Error(`a benchmark key was refused: ${result.error.code}`)
  }
}
