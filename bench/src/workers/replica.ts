import type { AddressInfo } from 'node:net'
import { apiKeyAuth } from '@keyrot/express'
import express from 'express'
import { benchKeyring } from '../lib/keyrings.js'
import { preciseNow, sleep } from '../lib/timing.js'
import { exitWithParent, reportFailure, sendReady, workerConfig } from '../lib/worker-side.js'

/**
 * Section 4's replica: Express + apiKeyAuth + RedisStore, like one instance
 * of an application behind a load balancer, plus bench-only admin routes on
 * 127.0.0.1 (create, revoke, rotate, and a deadline watch).
 */

export interface ReplicaConfig {
  redisUrl: string
  keyPrefix: string
}

export interface WatchReply {
  /** Epoch ms (sub-ms precision) when the first refused verify started; null if none within the wait. */
  firstRejectAt: number | null
  lastOkAt: number | null
  code: string | null
  polls: number
}

const config = workerConfig<ReplicaConfig>()

async function start(): Promise<void> {
  const keyring = await benchKeyring({ store: 'redis', redisUrl: config.redisUrl, keyPrefix: config.keyPrefix })
  // When each key's invalidation message arrived here (epoch ms, sub-ms precision), for the controller's breakdown.
  const invalidatedAt = new Map<string, number>()
  keyring.on('invalidation.received', ({ keyId }) => {
    if (!invalidatedAt.has(keyId)) invalidatedAt.set(keyId, preciseNow())
  })
  const app = express()
  app.use('/admin', express.json())
  app.use('/bench', express.json())

  app.post('/admin/keys', async (_req, res) => {
    const { token, key } = await keyring.create({ tenantId: 'acme', name: 'propagation' })
    res.json({ token, id: key.id })
  })
  app.post('/admin/keys/:id/revoke', async (req, res) => {
    const key = await keyring.revoke(req.params.id as string, { reason: 'benchmark' })
    res.json({ revokedAt: key.revokedAt })
  })
  app.post('/admin/keys/:id/rotate', async (req, res) => {
    const { previous, token } = await keyring.rotate(req.params.id as string, { gracePeriod: `${Number(req.body.graceMs)}ms` })
    res.json({ deadline: previous.expiresAt, token })
  })
  // Polls the keyring itself every ~1 ms from shortly before the deadline until it refuses the token.
  app.post('/bench/watch', async (req, res) => {
    const { token, deadline, leadMs, maxWaitMs } = req.body as { token: string; deadline: number; leadMs: number; maxWaitMs: number }
    await sleep(Math.max(0, deadline - leadMs - Date.now()))
    const reply: WatchReply = { firstRejectAt: null, lastOkAt: null, code: null, polls: 0 }
    const stopAt = deadline + maxWaitMs
    for (;;) {
      const at = preciseNow()
      const result = await keyring.verify(token)
      reply.polls++
      if (!result.ok) {
        reply.firstRejectAt = at
        reply.code = result.error.code
        break
      }
      reply.lastOkAt = at
      if (at > stopAt) break
      await sleep(1)
    }
    res.json(reply)
  })
  app.post('/bench/invalidated/:id', (req, res) => {
    const at = invalidatedAt.get(req.params.id as string) ?? null
    invalidatedAt.delete(req.params.id as string)
    res.json({ at })
  })
  app.get('/hello', apiKeyAuth({ keyring }), (_req, res) => {
    res.send('ok')
  })

  const server = app.listen(0, '127.0.0.1')
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', reject)
  })
  exitWithParent(async () => {
    server.close()
    await keyring.close()
  })
  await sendReady({ port: (server.address() as AddressInfo).port })
}

start().catch(reportFailure)
