import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { parseDuration, type WindowLimitOptions } from '@keyrot/core'
import { apiKeyAuth as expressAuth } from '@keyrot/express'
import { apiKeyAuth as koaAuth } from '@keyrot/koa'
import { apiKeyAuth as fastifyAuth } from '@keyrot/fastify'
import { apiKeyAuth as honoAuth } from '@keyrot/hono'
import { createAdaptorServer } from '@hono/node-server'
import express from 'express'
import Fastify from 'fastify'
import { Hono } from 'hono'
import Koa from 'koa'
import { spin } from '../lib/calibration.js'
import { HAND_ROLLED_FAILURE, HAND_ROLLED_QUOTA_SPENT, HandRolledKeys, HandRolledQuota } from '../lib/hand-rolled.js'
import { BENCH_RATE_LIMIT, benchKeyring, proveAll, type StoreKind } from '../lib/keyrings.js'
import { answerQuestions, exitWithParent, reportFailure, sendReady, workerConfig } from '../lib/worker-side.js'

/**
 * Section 2's server: a hello-world app in its own process, bare or behind
 * `apiKeyAuth`, on 127.0.0.1. Reports its port and a valid token.
 */

export interface HttpAppConfig {
  framework: 'express' | 'koa' | 'fastify' | 'hono'
  /**
   * `none`: the bare app. `spin`: the bare app plus one async middleware
   * that burns `SPIN_US` µs of CPU and does nothing else (see
   * lib/calibration.ts). `hand-rolled`: the bare app plus the reference
   * check of lib/hand-rolled.ts (SHA-256, a `Map`, revoked, expiry, scopes).
   * `hand-rolled-quota`: the same check plus a hand-rolled per-key quota
   * that sends keyrot's two quota headers (informational).
   */
  auth: 'none' | 'spin' | 'hand-rolled' | 'hand-rolled-quota' | StoreKind
  redisUrl: string
  /** Abuse protection of the keyring (default: the benchmark's, with a per-key quota that never refuses). */
  rateLimit?: false
}

export interface HttpAppReady {
  port: number
  token: string
}

const config = workerConfig<HttpAppConfig>()

async function start(): Promise<void> {
  const keyring = await benchKeyring({ store: config.auth === 'redis' ? 'redis' : 'memory', redisUrl: config.redisUrl, keyPrefix: 'bench-http', ...(config.rateLimit === false ? { rateLimit: false } : {}) })
  const { token, key } = await keyring.create({ tenantId: 'acme', name: 'load test' })
  await proveAll(keyring, [token])
  const handRolled = new HandRolledKeys()
  const perKey = BENCH_RATE_LIMIT.perKey as Required<WindowLimitOptions>
  // `hand-rolled-quota` only: the benchmark keyring's per-key limit and window.
  const quota = config.auth === 'hand-rolled-quota' ? new HandRolledQuota(perKey.limit, parseDuration(perKey.window, 'perKey.window')) : null
  const handRolledAuth = config.auth === 'hand-rolled' || config.auth === 'hand-rolled-quota'
  handRolled.add(token, { id: key.id, tenantId: key.tenantId, scopes: key.scopes, revokedAt: null, expiresAt: key.expiresAt })
  let server: Server
  if (config.framework === 'express') {
    const app = express()
    if (config.auth === 'spin') {
      app.use(function calibration(_req, _res, next) {
        void spin().then(() => next())
      })
    } else if (handRolledAuth) {
      app.use(function handRolledAuth(req, res, next) {
        const found = handRolled.check(req.headers.authorization)
        if (found === null) {
          res.status(401).type('application/json').send(HAND_ROLLED_FAILURE)
          return
        }
        if (quota !== null) {
          const taken = quota.take(found.id)
          if (taken === null) {
            res.status(429).type('application/json').send(HAND_ROLLED_QUOTA_SPENT)
            return
          }
          res.setHeader('ratelimit-policy', taken.policy)
          res.setHeader('ratelimit', taken.rateLimit)
        }
        ;(req as { apiKey?: unknown }).apiKey = found
        next()
      })
    } else if (config.auth !== 'none') app.use(expressAuth({ keyring }))
    app.get('/hello', (_req, res) => {
      res.send('hello world')
    })
    server = app.listen(0, '127.0.0.1')
  } else if (config.framework === 'fastify') {
    const app = Fastify()
    if (config.auth === 'spin') app.addHook('onRequest', () => spin())
    else if (handRolledAuth) {
      app.addHook('onRequest', function handRolledAuth(request, reply, done) {
        const found = handRolled.check(request.headers.authorization)
        if (found === null) {
          void reply.code(401).type('application/json').send(HAND_ROLLED_FAILURE)
          return
        }
        if (quota !== null) {
          const taken = quota.take(found.id)
          if (taken === null) {
            void reply.code(429).type('application/json').send(HAND_ROLLED_QUOTA_SPENT)
            return
          }
          void reply.header('ratelimit-policy', taken.policy)
          void reply.header('ratelimit', taken.rateLimit)
        }
        ;(request as { apiKey?: unknown }).apiKey = found
        done()
      })
    } else if (config.auth !== 'none') await app.register(fastifyAuth, { keyring })
    app.get('/hello', async () => 'hello world')
    await app.ready()
    server = app.server
    server.listen(0, '127.0.0.1')
  } else if (config.framework === 'hono') {
    const app = new Hono()
    if (config.auth === 'spin') {
      app.use(async function calibration(_c, next) {
        await spin()
        await next()
      })
    } else if (handRolledAuth) {
      app.use(async function handRolledAuth(c, next) {
        const found = handRolled.check(c.req.header('authorization'))
        if (found === null) return c.body(HAND_ROLLED_FAILURE, 401, { 'content-type': 'application/json' })
        if (quota !== null) {
          const taken = quota.take(found.id)
          if (taken === null) return c.body(HAND_ROLLED_QUOTA_SPENT, 429, { 'content-type': 'application/json' })
          c.header('ratelimit-policy', taken.policy)
          c.header('ratelimit', taken.rateLimit)
        }
        c.set('apiKey' as never, found as never)
        await next()
      })
    } else if (config.auth !== 'none') app.use(honoAuth({ keyring }))
    app.get('/hello', (c) => c.text('hello world'))
    server = createAdaptorServer({ fetch: app.fetch }) as Server
    server.listen(0, '127.0.0.1')
  } else {
    const app = new Koa()
    if (config.auth === 'spin') {
      app.use(async function calibration(_ctx, next) {
        await spin()
        await next()
      })
    } else if (handRolledAuth) {
      app.use(async function handRolledAuth(ctx, next) {
        const found = handRolled.check(ctx.get('authorization') || undefined)
        if (found === null) {
          ctx.status = 401
          ctx.type = 'application/json'
          ctx.body = HAND_ROLLED_FAILURE
          return
        }
        if (quota !== null) {
          const taken = quota.take(found.id)
          if (taken === null) {
            ctx.status = 429
            ctx.type = 'application/json'
            ctx.body = HAND_ROLLED_QUOTA_SPENT
            return
          }
          ctx.res.setHeader('ratelimit-policy', taken.policy)
          ctx.res.setHeader('ratelimit', taken.rateLimit)
        }
        ;(ctx.state as { apiKey?: unknown }).apiKey = found
        await next()
      })
    } else if (config.auth !== 'none') app.use(koaAuth({ keyring }))
    app.use((ctx) => {
      ctx.body = 'hello world'
    })
    server = app.listen(0, '127.0.0.1')
  }
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', reject)
  })
  // The parent reads this process's CPU time around a load run: CPU per request does not depend on how the cores were shared.
  answerQuestions(() => process.cpuUsage())
  exitWithParent(async () => {
    server.close()
    await keyring.close()
  })
  await sendReady({ port: (server.address() as AddressInfo).port, token } satisfies HttpAppReady)
}

start().catch(reportFailure)
