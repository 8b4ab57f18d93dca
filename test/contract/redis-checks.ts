import {
  createKeyring,
  FastTestHasher,
  generateToken,
  parseToken,
  type Clock,
  type Keyring,
} from '@keyrot/core'
import { randomBytes } from 'node:crypto'
import { RedisStore, type RedisStoreOptions } from '@keyrot/redis'
import type { Cluster, Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { describeStoreContract, eventually } from './store-contract.js'

/**
 * Checks shared by the standalone and Cluster test files: the keyring end to
 * end over RedisStore, Redis-side TTLs, and the scan for leaked tokens.
 */

export interface RedisCheckContext {
  /** A new store on a fresh key prefix, closed by the caller's afterAll. */
  makeStore(options?: { clock?: Clock; retention?: number; keyPrefix?: string }): RedisStore
  /** A raw connection that reaches `key` (the server, or a Cluster client that routes by key). */
  raw(): Redis | Cluster
  /** `SCRIPT FLUSH` on every primary. */
  flushScripts(): Promise<void>
  onToken(token: string): void
}

/**
 * The stores one test file opens, each on a new lazy application client (as
 * an application passes its own) unless one is given; `close()` in the
 * file's `afterAll` closes stores and clients.
 */
export class RedisTestStores<C extends Redis | Cluster> {
  /** Every token minted on these stores: none may be found in Redis at the end. */
  readonly tokens: string[] = []
  readonly #newClient: () => C
  readonly #prefixLetter: string
  readonly #clients: C[] = []
  readonly #stores: RedisStore[] = []

  /** `prefixLetter` starts every fresh key prefix, telling the files' keys apart. */
  constructor(newClient: () => C, prefixLetter: string) {
    this.#newClient = newClient
    this.#prefixLetter = prefixLetter
  }

  freshPrefix(): string {
    return `${this.#prefixLetter}${randomBytes(6).toString('hex')}`
  }

  make(keyPrefix = this.freshPrefix(), extra: Partial<RedisStoreOptions> = {}, client: C = this.#newClient()): RedisStore {
    this.#clients.push(client)
    const store = new RedisStore({ client, keyPrefix, ...extra })
    this.#stores.push(store)
    return store
  }

  async close(): Promise<void> {
    for (const store of this.#stores) await store.close()
    for (const client of this.#clients) client.disconnect()
  }
}

/**
 * The store contract and the keyring checks on one Redis deployment: the
 * suites the standalone and Cluster files share. Test names say
 * `KeyStore contract: RedisStore (<name>)` and `keyring end to end on <name>`.
 */
export function describeRedisStoreSuites(
  names: { contract: string; keyring: string },
  stores: RedisTestStores<Redis> | RedisTestStores<Cluster>,
  context: Pick<RedisCheckContext, 'raw' | 'flushScripts'>,
): void {
  const onToken = (token: string) => stores.tokens.push(token)
  describeStoreContract(
    names.contract,
    async () => {
      const keyPrefix = stores.freshPrefix()
      const store = stores.make(keyPrefix)
      return {
        store,
        peer: stores.make(keyPrefix),
        reopen: async () => {
          await store.flushUsage()
          return stores.make(keyPrefix, { invalidation: false })
        },
      }
    },
    { onToken },
  )

  describeKeyringOnRedis(names.keyring, () => ({
    makeStore: (options = {}) =>
      stores.make(options.keyPrefix, {
        ...(options.clock ? { clock: options.clock } : {}),
        ...(options.retention !== undefined ? { retention: options.retention } : {}),
      }),
    raw: context.raw,
    flushScripts: context.flushScripts,
    onToken,
  }))
}

export function describeKeyringOnRedis(name: string, context: () => RedisCheckContext): void {
  describe(`keyring end to end on ${name}`, () => {
    const hasher = new FastTestHasher()

    function keyringOn(store: RedisStore, clock?: Clock, stateTtl?: number): Keyring {
      return createKeyring({
        store,
        hasher,
        gracePeriod: '1h',
        prefix: 'sk_test',
        ...(clock ? { clock } : {}),
        ...(stateTtl !== undefined ? { cache: { stateTtl } } : {}),
      })
    }

    async function issue(keyring: Keyring, input: Parameters<Keyring['create']>[0]) {
      const issued = await keyring.create(input)
      context().onToken(issued.token)
      return issued
    }

    it('creates, verifies, rotates with grace and revokes', async () => {
      const keyring = keyringOn(context().makeStore())
      try {
        const { token, key } = await issue(keyring, { tenantId: 'acme', name: 'deploy', scopes: ['read'] })
        expect(await keyring.verify(token, { scopes: ['read'] })).toMatchObject({ ok: true, key: { id: key.id } })
        const rotated = await keyring.rotate(key.id)
        context().onToken(rotated.token)
        expect(rotated.key.familyId).toBe(key.familyId)
        expect(rotated.previous.state).toBe('grace')
        expect(await keyring.verify(token)).toMatchObject({ ok: true, key: { id: key.id, rotatedTo: rotated.key.id } })
        expect(await keyring.verify(rotated.token)).toMatchObject({ ok: true })
        await keyring.revoke(key.id, { reason: 'grace cut short' })
        const refused = await keyring.verify(token)
        expect(refused.ok).toBe(false)
        if (!refused.ok) expect(refused.error.code).toBe('KEYROT_KEY_REVOKED')
        expect(await keyring.verify(rotated.token)).toMatchObject({ ok: true })
        const leaked = await keyring.emergencyRotate(rotated.key.id, { incidentId: 'INC-42' })
        context().onToken(leaked.token)
        const afterLeak = await keyring.verify(rotated.token)
        expect(afterLeak.ok === false && afterLeak.error.code).toBe('KEYROT_KEY_REVOKED')
        expect(await keyring.verify(leaked.token)).toMatchObject({ ok: true })
        const listed = await keyring.list({ tenantId: 'acme' })
        expect(listed.map((k) => k.id).sort()).toEqual([key.id, rotated.key.id, leaked.key.id].sort())
      } finally {
        await keyring.close()
      }
    })

    it('reports a key that Redis expired as expired to the holder of its secret only, even to a replica whose clock lags', async () => {
      // Both the keyring and the store run 2 s behind real time (and so behind
      // Redis). No state cache: a cached state is trusted up to cache.stateTtl
      // by the replica's own clock, which is the documented bound with skew.
      const lagging: Clock = { now: () => Date.now() - 2_000 }
      const store = context().makeStore({ clock: lagging })
      const keyring = keyringOn(store, lagging, 0)
      try {
        const deadline = Date.now() + 400
        const { token, key } = await issue(keyring, { tenantId: 'acme', name: 'short-lived', expiresAt: deadline })
        expect(await keyring.verify(token)).toMatchObject({ ok: true })
        const credential = store.layout.credential(key.id)
        const node = context().raw()
        expect(Number(await node.call('PEXPIRETIME', credential))).toBe(deadline)
        expect(Number(await node.call('PEXPIRETIME', store.layout.record(key.id)))).toBe(deadline + 30 * 86_400_000)
        await eventually(async () => expect(await node.exists(credential)).toBe(0), 3_000, 50)
        // By the lagging clock the key has 1.6 s left; Redis removed its credential, so it is expired.
        expect(lagging.now()).toBeLessThan(deadline)
        const holder = await keyring.verify(token)
        expect(holder.ok === false && holder.error.code).toBe('KEYROT_KEY_EXPIRED')
        const guess = generateToken('sk_test', parseToken(token).keyId)
        const guesser = await keyring.verify(guess)
        expect(guesser.ok === false && guesser.error.code).toBe('KEYROT_INVALID_SECRET')
        expect((await keyring.get(key.id))?.state).toBe('expired')
      } finally {
        await keyring.close()
      }
    })

    it('removes the record once its retention ends, then the key is unknown', async () => {
      const store = context().makeStore({ retention: 300 })
      // No state cache: a cached state would (rightly) keep saying revoked for up to stateTtl.
      const keyring = keyringOn(store, undefined, 0)
      try {
        const { token, key } = await issue(keyring, { tenantId: 'acme', name: 'to be forgotten' })
        await keyring.revoke(key.id)
        const revoked = await keyring.verify(token)
        expect(revoked.ok === false && revoked.error.code).toBe('KEYROT_KEY_REVOKED')
        const node = context().raw()
        await eventually(async () => expect(await node.exists(store.layout.record(key.id))).toBe(0), 3_000, 50)
        const gone = await keyring.verify(token)
        expect(gone.ok === false && gone.error.code).toBe('KEYROT_KEY_NOT_FOUND')
        expect(await keyring.list({ tenantId: 'acme' })).toEqual([])
      } finally {
        await keyring.close()
      }
    })

    it('keeps working after Redis forgets its scripts (NOSCRIPT is retried with EVAL)', async () => {
      const store = context().makeStore()
      const keyring = keyringOn(store)
      try {
        const { token, key } = await issue(keyring, { tenantId: 'acme', name: 'scripts' })
        await context().flushScripts()
        expect(await keyring.verify(token)).toMatchObject({ ok: true })
        await keyring.revoke(key.id)
        expect((await keyring.get(key.id))?.state).toBe('revoked')
      } finally {
        await keyring.close()
      }
    })

    it('counts usage in batches and writes them on close', async () => {
      const store = context().makeStore()
      const keyring = keyringOn(store)
      const { token, key } = await issue(keyring, { tenantId: 'acme', name: 'busy' })
      for (let i = 0; i < 50; i++) expect((await keyring.verify(token)).ok).toBe(true)
      const node = context().raw()
      await keyring.close()
      expect(Number(await node.hget(store.layout.record(key.id), 'u'))).toBe(50)
    })
  })
}

/** Every key name and value on `nodes`, for the leak scan. */
export async function dumpRedis(nodes: (Redis | Cluster)[]): Promise<string[]> {
  const out: string[] = []
  for (const node of nodes) {
    let cursor = '0'
    do {
      const [next, keys] = await (node as Redis).scan(cursor, 'COUNT', 500)
      cursor = next
      for (const key of keys) {
        out.push(key)
        const type = await (node as Redis).type(key)
        if (type === 'string') out.push(String(await (node as Redis).get(key)))
        else if (type === 'hash') out.push(...Object.entries(await (node as Redis).hgetall(key)).flat())
        else if (type === 'zset') out.push(...(await (node as Redis).zrange(key, 0, -1)))
        else if (type === 'set') out.push(...(await (node as Redis).smembers(key)))
        else out.push(`unexpected type ${type} at ${key}`)
      }
    } while (cursor !== '0')
  }
  return out
}

/** Asserts that no token, nor the secret part of one, appears in `dump`. */
export function expectNoTokens(dump: string[], tokens: string[]): void {
  expect(tokens.length).toBeGreaterThan(20)
  expect(dump.length).toBeGreaterThan(tokens.length)
  const text = dump.join('\n')
  for (const token of tokens) {
    const secret = token.slice(token.lastIndexOf('_') + 1)
    expect(text.includes(token), 'a token reached Redis').toBe(false)
    expect(text.includes(secret), 'a token secret reached Redis').toBe(false)
  }
  // Record format 2 keeps a test-hasher hash as parameter version 3 and the salt and digest in base64 (hash-codec.ts).
  expect(dump.some((value, i) => dump[i - 1] === 'h' && dump[i - 2] === '3' && dump[i - 3] === 'hv' && /^[\w+/]{64}$/.test(value)), 'hashes are stored').toBe(true)
}
