import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startExample, type RunningExample } from '../../test/support/example-server.js'

// Runs the example as users do: `node server.mjs` on the built packages.

let example: RunningExample
let url: string
let token: string

beforeAll(async () => {
  // The example logs its banner on stderr: stdout carries only the audit's JSON lines.
  example = await startExample(new URL('.', import.meta.url), { banner: 'stderr' })
  url = example.url
  token = example.token
})

afterAll(() => example?.stop())

/** The JSON lines the example logged so far. */
function auditLines(): Array<Record<string, unknown>> {
  return example.stdout()
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
  throw new Error(`no such log line in:\n${example.stdout()}`)
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

    const stdout = example.stdout()
    expect(stdout).not.toContain(token)
    expect(stdout).not.toContain(next)
    expect(text).not.toContain(token)
  })
})
