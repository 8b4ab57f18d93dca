import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes } from 'node:crypto'
import {
  createKeyring,
  FastTestHasher,
  rewrapSigningSecrets,
  signRequest,
  signWebhook,
  type Keyring,
  type MasterKey,
} from '@keyrot/core'
import { signedRequest } from '@keyrot/express'
import { RedisReplayStore, RedisStore } from '@keyrot/redis'
import express from 'express'
import { Redis } from 'ioredis'
import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.js'

/**
 * Two replicas of one API, each its own Redis connections, RedisStore,
 * keyring and Express app, sharing one real redis-server.
 */
interface Replica {
  keyring: Keyring
  store: RedisStore
  port: number
  close(): Promise<void>
}

const oldMaster: MasterKey = { id: 'mk-1', key: randomBytes(32) }
const newMaster: MasterKey = { id: 'mk-2', key: randomBytes(32) }

let server: RedisServer
let raw: Redis
const replicas: Replica[] = []
const cleanup: (() => Promise<void> | void)[] = []
/** Every signing secret minted here: none may be found in Redis. */
const secrets: string[] = []

async function startReplica(masterKeys: MasterKey[]): Promise<Replica> {
  const client = new Redis(server.port, '127.0.0.1', { lazyConnect: true })
  const store = new RedisStore({ client, keyPrefix: 'sig' })
  const keyring = createKeyring({ store, hasher: new FastTestHasher(), gracePeriod: '10m', signing: { masterKeys } })
  const replayStore = RedisReplayStore.forStore(store)
  const app = express()
  app.post('/v1/payments', signedRequest({ keyring, replayStore }), (req, res) => {
    res.json({ tenant: req.signedRequest?.key.tenantId })
  })
  const httpServer = http.createServer(app)
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', () => resolve()))
  const replica: Replica = {
    keyring,
    store,
    port: (httpServer.address() as AddressInfo).port,
    async close() {
      httpServer.closeAllConnections()
      await new Promise<void>((resolve) => httpServer.close(() => resolve()))
      await replayStore.close()
      await keyring.close()
      client.disconnect()
    },
  }
  cleanup.push(() => replica.close())
  return replica
}

beforeAll(async () => {
  server = await startRedisServer()
  raw = new Redis(server.port, '127.0.0.1')
  replicas.push(await startReplica([oldMaster]), await startReplica([oldMaster]))
})

afterAll(async () => {
  for (const close of cleanup.reverse()) await close()
  raw?.disconnect()
  await server?.stop()
})

async function post(replica: Replica, headers: Record<string, string>, body: string): Promise<{ status: number; code: string | undefined }> {
  const response = await fetch(`http://127.0.0.1:${replica.port}/v1/payments`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body,
  })
  const json = (await response.json()) as { error?: { code: string } }
  return { status: response.status, code: json.error?.code }
}

function sign(credentials: { keyId: string; secret: string }, body: string) {
  return signRequest({ ...credentials, method: 'POST', url: '/v1/payments', body })
}

/** Every key, field and value in Redis, as text. */
async function dumpRedis(): Promise<string> {
  const out: string[] = []
  let cursor = '0'
  do {
    const [next, keys] = await raw.scan(cursor, 'COUNT', 500)
    cursor = next
    for (const key of keys) {
      out.push(key)
      const type = await raw.type(key)
      if (type === 'string') out.push(String(await raw.get(key)))
      else if (type === 'hash') out.push(...Object.entries(await raw.hgetall(key)).flat())
      else if (type === 'zset') out.push(...(await raw.zrange(key, 0, -1)))
      else if (type === 'set') out.push(...(await raw.smembers(key)))
      else out.push(`unexpected type ${type} at ${key}`)
    }
  } while (cursor !== '0')
  return out.join('\n')
}

/** The forms a leaked secret could take: as issued, its base64 body, the key bytes in hex, base64url and latin1. */
function formsOf(secret: string): string[] {
  const body = secret.slice('whsec_'.length)
  const bytes = Buffer.from(body, 'base64')
  return [secret, body, bytes.toString('hex'), bytes.toString('base64url'), bytes.toString('latin1')]
}

describe('signed requests across two replicas sharing one redis-server', () => {
  it('refuses on replica B a request already accepted by replica A', async () => {
    const [a, b] = replicas as [Replica, Replica]
    const { key, secret } = await a.keyring.createSigningSecret({ tenantId: 'acme', name: 'payments client' })
    secrets.push(secret)
    const credentials = { keyId: key.id, secret }
    const body = '{"amount":42}'
    const headers = sign(credentials, body)
    expect(await post(a, headers, body)).toEqual({ status: 200, code: undefined })
    expect(await post(b, headers, body)).toEqual({ status: 401, code: 'KEYROT_REPLAYED_REQUEST' })
    expect(await post(a, headers, body)).toEqual({ status: 401, code: 'KEYROT_REPLAYED_REQUEST' })
    expect(await post(b, sign(credentials, body), body)).toEqual({ status: 200, code: undefined })
  })

  it('accepts one request sent to both replicas at once exactly once', async () => {
    const [a, b] = replicas as [Replica, Replica]
    const { key, secret } = await a.keyring.createSigningSecret({ tenantId: 'acme', name: 'racer' })
    secrets.push(secret)
    for (let round = 0; round < 5; round++) {
      const body = `{"round":${round}}`
      const headers = sign({ keyId: key.id, secret }, body)
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => post(i % 2 === 0 ? a : b, headers, body)))
      expect(results.filter((result) => result.status === 200)).toHaveLength(1)
      expect(results.filter((result) => result.code === 'KEYROT_REPLAYED_REQUEST')).toHaveLength(7)
    }
  })

  it('accepts the old secret on the other replica during a rotation made on one', async () => {
    const [a, b] = replicas as [Replica, Replica]
    const { key, secret } = await a.keyring.createSigningSecret({ tenantId: 'acme', name: 'rotating client' })
    const rotated = await a.keyring.rotate(key.id)
    secrets.push(secret, rotated.token)
    const body = '{}'
    expect(await post(b, sign({ keyId: key.id, secret }, body), body)).toEqual({ status: 200, code: undefined })
    expect(await post(b, sign({ keyId: rotated.key.id, secret: rotated.token }, body), body)).toEqual({ status: 200, code: undefined })
    await a.keyring.endGrace(key.id)
    // Replica B may hold no cached state for signed requests: it reads the store on every request.
    expect(await post(b, sign({ keyId: key.id, secret }, body), body)).toMatchObject({ status: 401 })
  })

  it('signs webhooks on one replica with secrets created on the other, verified by standardwebhooks', async () => {
    const [a, b] = replicas as [Replica, Replica]
    const { key, secret } = await a.keyring.createSigningSecret({ tenantId: 'acme', name: 'webhooks' })
    const rotated = await a.keyring.rotate(key.id)
    secrets.push(secret, rotated.token)
    const payload = '{"type":"ping"}'
    const headers = await signWebhook(b.keyring, { secretId: key.id, id: 'msg_redis', payload })
    expect(new Webhook(secret).verify(payload, headers)).toEqual({ type: 'ping' })
    expect(new Webhook(rotated.token).verify(payload, headers)).toEqual({ type: 'ping' })
  })

  it('re-wraps every secret in Redis under a new master key, after which the old key can be dropped with nothing lost', async () => {
    const [a] = replicas as [Replica, Replica]
    const body = '{"after":"rewrap"}'
    const issued = []
    for (let i = 0; i < 3; i++) {
      const created = await a.keyring.createSigningSecret({ tenantId: `rewrap-${i}`, name: 'client' })
      secrets.push(created.secret)
      issued.push(created)
    }
    const both = await startReplica([newMaster, oldMaster])
    const report = await rewrapSigningSecrets(both.keyring)
    expect(report.failed).toEqual([])
    expect(report.masterKeyId).toBe('mk-2')
    expect(report.rewrapped).toBeGreaterThanOrEqual(secrets.length)

    const dump = await dumpRedis()
    expect(dump).not.toContain('$keyrot-sealed$v1$mk-1$')
    expect(dump).toContain('$keyrot-sealed$v1$mk-2$')

    const onlyNew = await startReplica([newMaster])
    for (const created of issued) {
      expect(await post(onlyNew, sign({ keyId: created.key.id, secret: created.secret }, body), body)).toEqual({ status: 200, code: undefined })
    }
    const webhook = await signWebhook(onlyNew.keyring, { secretId: issued[0]!.key.id, id: 'msg_after', payload: body })
    expect(new Webhook(issued[0]!.secret).verify(body, webhook)).toEqual({ after: 'rewrap' })
  })

  it('leaves no plaintext signing secret anywhere in Redis', async () => {
    for (const replica of replicas) await replica.store.flushUsage()
    const dump = await dumpRedis()
    expect(secrets.length).toBeGreaterThanOrEqual(9)
    expect(dump).toContain('$keyrot-sealed$')
    for (const secret of secrets) {
      for (const form of formsOf(secret)) expect(dump.includes(form), 'a signing secret reached Redis').toBe(false)
    }
  })
})
