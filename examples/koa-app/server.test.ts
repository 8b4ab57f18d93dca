import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// Runs the example as users do: `node server.mjs` on the built packages.

let child: ChildProcess
let url: string
let token: string

beforeAll(async () => {
  child = spawn(process.execPath, ['server.mjs'], {
    cwd: fileURLToPath(new URL('.', import.meta.url)),
    env: { ...process.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  let errors = ''
  child.stderr?.on('data', (chunk: Buffer) => (errors += chunk))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the example did not start in 10s: ${errors}`)), 10_000)
    child.once('exit', (code) => reject(new Error(`the example exited with ${code}: ${errors}`)))
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk
      const address = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
      const key = /demo key: (\S+)/.exec(output)
      if (address && key) {
        clearTimeout(timer)
        url = address[1] as string
        token = key[1] as string
        resolve()
      }
    })
  })
})

afterAll(async () => {
  if (!child || child.exitCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  await exited
})

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
