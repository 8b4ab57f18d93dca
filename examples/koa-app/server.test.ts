import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startExample, type RunningExample } from '../../test/support/example-server.js'

// Runs the example as users do: `node server.mjs` on the built packages.

let example: RunningExample
let url: string
let token: string

beforeAll(async () => {
  example = await startExample(new URL('.', import.meta.url), { banner: 'stdout' })
  url = example.url
  token = example.token
})

afterAll(() => example?.stop())

describe('the Koa example', () => {
  it('serves the demo key and refuses a request without one', async () => {
    const ok = await fetch(`${url}/v1/whoami`, { headers: { authorization: `Bearer ${token}` } })
    expect(ok.status).toBe(200)
    expect(await ok.json()).toMatchObject({ tenantId: 'acme', scopes: ['read'] })
    const missing = await fetch(`${url}/v1/whoami`)
    expect(missing.status).toBe(401)
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="api"')
  })

  it('rotates the calling key: both work, the old one with Sunset, and it cannot rotate twice', async () => {
    const rotated = await fetch(`${url}/v1/keys/rotate`, { method: 'POST', headers: { 'x-api-key': token } })
    expect(rotated.status).toBe(201)
    const { token: next, previousExpiresAt } = (await rotated.json()) as { token: string; previousExpiresAt: number }
    const old = await fetch(`${url}/v1/whoami`, { headers: { authorization: `Bearer ${token}` } })
    expect(old.status).toBe(200)
    expect(Date.parse(old.headers.get('sunset') ?? '')).toBe(Math.floor(previousExpiresAt / 1000) * 1000)
    const fresh = await fetch(`${url}/v1/whoami`, { headers: { authorization: `Bearer ${next}` } })
    expect(fresh.status).toBe(200)
    expect(fresh.headers.get('sunset')).toBeNull()
    const again = await fetch(`${url}/v1/keys/rotate`, { method: 'POST', headers: { 'x-api-key': token } })
    expect(again.status).toBe(409)
    expect(((await again.json()) as { error: { code: string } }).error.code).toBe('KEYROT_ALREADY_ROTATED')
  })
})
