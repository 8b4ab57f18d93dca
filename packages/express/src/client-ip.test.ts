import http from 'node:http'
import { createKeyring, FastTestHasher, type Keyring } from '@keyrot/core'
import express5 from 'express'
import express4 from 'express4'
import type { RequestHandler } from 'express'
import { describe, expect, it } from 'vitest'
import { loopbackTestServers } from '../../../test/support/listen.js'
import { apiKeyAuth } from './api-key-auth.js'

const { serve, cleanups } = loopbackTestServers()

/** A keyring, a valid token, and the client IP of each verification it saw. */
async function keyringSeeingIps(): Promise<{ keyring: Keyring; token: string; ips: Array<string | undefined> }> {
  const keyring = createKeyring({ hasher: new FastTestHasher() })
  cleanups.push(() => keyring.close())
  const ips: Array<string | undefined> = []
  keyring.on('verification.succeeded', (event) => ips.push(event.clientIp))
  const { token } = await keyring.create({ tenantId: 'acme', name: 'ci' })
  return { keyring, token, ips }
}

const FORWARDED = '203.0.113.5'

describe.each([
  ['Express 5', express5],
  ['Express 4', express4 as unknown as typeof express5],
])('apiKeyAuth on %s: the client IP', (_name, createApp) => {
  async function ipSeen(setup: (app: ReturnType<typeof createApp>, auth: RequestHandler) => http.RequestListener): Promise<string | undefined> {
    const { keyring, token, ips } = await keyringSeeingIps()
    const app = createApp()
    const url = await serve(setup(app, apiKeyAuth({ keyring })))
    for (let i = 0; i < 2; i++) {
      // The second request is a cache hit.
      const response = await fetch(`${url}/hello`, { headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': FORWARDED } })
      expect(response.status).toBe(200)
    }
    expect(ips).toHaveLength(2)
    expect(ips[1]).toBe(ips[0])
    return ips[0]
  }
  const hello: RequestHandler = (_req, res) => {
    res.send('hello')
  }

  it("is the socket's with trust proxy off (the default): X-Forwarded-For is ignored", async () => {
    expect(await ipSeen((app, auth) => app.use(auth).get('/hello', hello))).toBe('127.0.0.1')
  })

  it("is X-Forwarded-For's with trust proxy on, also for a mounted app that inherits it", async () => {
    expect(await ipSeen((app, auth) => app.set('trust proxy', 'loopback').use(auth).get('/hello', hello))).toBe(FORWARDED)
    expect(
      await ipSeen((app, auth) => {
        const child = createApp().use(auth).get('/hello', hello)
        return app.set('trust proxy', 'loopback').use('/', child)
      }),
    ).toBe(FORWARDED)
  })

  it("is an override's of req.ip on app.request (Express's guide to overriding its API)", async () => {
    expect(
      await ipSeen((app, auth) => {
        Object.defineProperty(app.request, 'ip', { configurable: true, enumerable: true, get: () => '192.0.2.45' })
        return app.use(auth).get('/hello', hello)
      }),
    ).toBe('192.0.2.45')
  })

  it('is the ip a middleware before it set on the request', async () => {
    const setIp: RequestHandler = (req, _res, next) => {
      Object.defineProperty(req, 'ip', { value: '192.0.2.44' })
      next()
    }
    expect(await ipSeen((app, auth) => app.use(setIp).use(auth).get('/hello', hello))).toBe('192.0.2.44')
  })
})
