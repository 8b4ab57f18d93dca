import { createMetrics, generateToken, MemoryStore, newKeyId } from '@keyrot/core'
import { metricsHandler } from '@keyrot/express'
import { Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import { CountingArgon2, serve, type Server } from './support.js'

/**
 * Issue 14, finding 2 (labels): every failure reads `KEYROT_INVALID_KEY`
 * over HTTP, but `keyrot_verifications_total` said `KEYROT_KEY_NOT_FOUND` or
 * `KEYROT_INVALID_SECRET`, so scraping before and after one probe told
 * whether a key id exists. The failure duration histogram and the cached
 * states gauge told it too (an unknown id runs no Argon2 and caches no
 * state). As it was is `splitInvalidKey: true`; now is the default.
 *
 * The probe: scrape, send a wrong secret for an existing key id, scrape,
 * send one for an unknown id, scrape. The oracle works when the two probes
 * move the scrape differently.
 */

const servers: Server[] = []
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close()
})

/** The series lines that changed between two scrapes, with their value stripped. */
function moved(before: string, after: string): string[] {
  const old = new Set(before.split('\n'))
  return after
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#') && !old.has(line))
    .map((line) => line.slice(0, line.lastIndexOf(' ')))
    .sort()
}

describe('finding 2: metrics labels are no existence oracle', () => {
  it.each([
    ['as it was', true],
    ['now', false],
  ] as const)('a probe of an existing and of an unknown key id move /metrics alike (%s)', async (label, splitInvalidKey) => {
    const registry = new Registry()
    const server = await serve({ store: new MemoryStore(), hasher: new CountingArgon2() }, (app, keyring) => {
      createMetrics({ keyring, registry, splitInvalidKey })
      app.get('/metrics', metricsHandler(registry))
    })
    servers.push(server)
    const { key } = await server.keyring.create({ tenantId: 'acme', name: 'ci' })
    const scrape = async () => (await fetch(`${server.url}/metrics`)).text()
    const probe = async (keyId: string, ip: string) => {
      const response = await fetch(`${server.url}/v1/ping`, { headers: { authorization: `Bearer ${generateToken('sk_live', keyId)}`, 'x-forwarded-for': ip } })
      return { status: response.status, body: await response.text() }
    }
    const first = await scrape()
    const existing = await probe(key.id, '203.0.113.1')
    const second = await scrape()
    const unknown = await probe(newKeyId(), '203.0.113.2')
    const third = await scrape()
    const byExisting = moved(first, second)
    const byUnknown = moved(second, third)
    const tells = JSON.stringify(byExisting) !== JSON.stringify(byUnknown)
    console.log(
      `[security] finding 2, metrics labels (${label}): HTTP answers alike: ${existing.status === unknown.status && existing.body === unknown.body}; ` +
        `series moved by an existing id: ${byExisting.length} [${byExisting.join(', ')}], by an unknown id: ${byUnknown.length} [${byUnknown.join(', ')}]; ` +
        `scrape tells them apart: ${tells}`,
    )
    expect(existing).toEqual(unknown)
    expect(tells).toBe(label === 'as it was')
  })
})
