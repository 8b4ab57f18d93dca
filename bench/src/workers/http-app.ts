import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { apiKeyAuth as expressAuth } from '@keyrot/express'
import { apiKeyAuth as koaAuth } from '@keyrot/koa'
import express from 'express'
import Koa from 'koa'
import { benchKeyring, proveAll, type StoreKind } from '../lib/keyrings.js'
import { answerQuestions, exitWithParent, reportFailure, sendReady, workerConfig } from '../lib/worker-side.js'

/**
 * Section 2's server: a hello-world app in its own process, bare or behind
 * `apiKeyAuth`, on 127.0.0.1. Reports its port and a valid token.
 */

export interface HttpAppConfig {
  framework: 'express' | 'koa'
  /** `none`: the bare app. */
  auth: 'none' | StoreKind
  redisUrl: string
}

export interface HttpAppReady {
  port: number
  token: string
}

const config = workerConfig<HttpAppConfig>()

async function start(): Promise<void> {
  const keyring = await benchKeyring({ store: config.auth === 'redis' ? 'redis' : 'memory', redisUrl: config.redisUrl, keyPrefix: 'bench-http' })
  const { token } = await keyring.create({ tenantId: 'acme', name: 'load test' })
  await proveAll(keyring, [token])
  let server: Server
  if (config.framework === 'express') {
    const app = express()
    if (config.auth !== 'none') app.use(expressAuth({ keyring }))
    app.get('/hello', (_req, res) => {
      res.send('hello world')
    })
    server = app.listen(0, '127.0.0.1')
  } else {
    const app = new Koa()
    if (config.auth !== 'none') app.use(koaAuth({ keyring }))
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
