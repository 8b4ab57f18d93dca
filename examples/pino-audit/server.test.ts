import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// Runs the example as users do: `node server.mjs` on the built packages.

let child: ChildProcess
let url: string
let token: string
let stdout = ''

beforeAll(async () => {
  child = spawn(process.execPath, ['server.mjs'], {
    cwd: fileURLToPath(new URL('.', import.meta.url)),
    env: { ...process.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk))
  let banner = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the example did not start in 10s: ${banner}`)), 10_000)
    child.once('exit', (code) => reject(new Error(`the example exited with ${code}: ${banner}`)))
    child.stderr?.on('data', (chunk: Buffer) => {
      banner += chunk
      const address = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(banner)
      const key = /demo key: (\S+)/.exec(banner)
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

/** The JSON lines the example logged so far. */
function auditLines(): Array<Record<string, unknown>> {
  return stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>)
}

async function waitForLine(predicate: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  for (let i = 0; i < 50; i++) {
    const found = auditLines().find(predicate)
    if (found) return found
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`no such log line in:\n${stdout}`)
}

describe('the pino audit example', () => {
  it('audits verifications and a rotation, counts them in /metrics, and never logs a token', async () => {
    const agent = { 'user-agent': 'example-test/1.0' }
    expect((await fetch(`${url}/v1/whoami`, { headers: { ...agent, authorization: `Bearer ${token}` } })).status).toBe(200)
    expect((await fetch(`${url}/v1/whoami`, { headers: agent })).status).toBe(401)
    const rotated = await fetch(`${url}/v1/keys/rotate`, { method: 'POST', headers: { ...agent, 'x-api-key': token } })
    expect(rotated.status).toBe(201)
    const { token: next } = (await rotated.json()) as { token: string }
    const old = await fetch(`${url}/v1/whoami`, { headers: { ...agent, authorization: `Bearer ${token}` } })
    expect(old.status).toBe(200)
    expect(old.headers.get('sunset')).not.toBeNull()

    const metrics = await fetch(`${url}/metrics`)
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const text = await metrics.text()
    expect(text).toContain('keyrot_verifications_total{result="ok"} 3')
    expect(text).toContain('keyrot_verifications_total{result="KEYROT_MISSING_KEY"} 1')
    expect(text).toContain('keyrot_grace_verifications_total 1')
    expect(text).toContain('keyrot_keys{tenant="acme",state="grace"} 1')
    expect(text).toContain('process_cpu_user_seconds_total')

    const graceUse = await waitForLine((line) => line['event'] === 'verification.succeeded' && line['state'] === 'grace')
    expect(graceUse).toMatchObject({ level: 30, component: 'keyrot-audit', audit: 'verification', tenantId: 'acme', clientIp: '127.0.0.1', userAgent: 'example-test/1.0' })
    expect(await waitForLine((line) => line['event'] === 'key.used_in_grace')).toMatchObject({ level: 40, audit: 'notice' })
    expect(await waitForLine((line) => line['event'] === 'key.rotated')).toMatchObject({ audit: 'admin', tenantId: 'acme' })
    expect(await waitForLine((line) => line['event'] === 'verification.failed')).toMatchObject({ level: 40, code: 'KEYROT_MISSING_KEY' })
    expect(auditLines().filter((line) => line['event'] === 'key.created')).toHaveLength(1) // once: not also from the keyring's own logger

    expect(stdout).not.toContain(token)
    expect(stdout).not.toContain(next)
    expect(text).not.toContain(token)
  })
})
