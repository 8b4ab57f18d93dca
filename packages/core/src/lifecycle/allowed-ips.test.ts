import { isIP } from 'node:net'
import fc from 'fast-check'
import ipaddr from 'ipaddr.js'
import { describe, expect, it } from 'vitest'
import { ManualClock } from '../clock.js'
import { InvalidInputError, publicCodeOf } from '../errors.js'
import { FastTestHasher } from '../hash/hasher.js'
import { MemoryStore } from '../store/memory-store.js'
import { generateToken } from '../token/format.js'
import { checkAllowedIps, compileAllowedIps, ipAllowed, matchesClient, parseClientIp } from './allowed-ips.js'
import { createKeyring, type VerifyResult } from './keyring.js'

function codeOf(result: VerifyResult): string {
  return result.ok ? 'ok' : result.error.code
}

function setup() {
  const clock = new ManualClock()
  const store = new MemoryStore()
  const keyring = createKeyring({ clock, store, hasher: new FastTestHasher(), gracePeriod: '1h' })
  return { clock, store, keyring }
}

describe('checkAllowedIps', () => {
  it('keeps addresses and ranges in canonical CIDR form, host bits cleared, mapped IPv6 ranges as IPv4', () => {
    expect(checkAllowedIps(['203.0.113.0/24', '2001:db8::/32', '10.1.2.3/8', '192.0.2.7', '::1', '::ffff:198.51.100.0/120'])).toEqual([
      '203.0.113.0/24',
      '2001:db8::/32',
      '10.0.0.0/8',
      '192.0.2.7/32',
      '::1/128',
      '198.51.100.0/24',
    ])
  })

  it('means any IP for undefined and null, and refuses an empty list', () => {
    expect(checkAllowedIps(undefined)).toBeNull()
    expect(checkAllowedIps(null)).toBeNull()
    expect(() => checkAllowedIps([])).toThrow(/use null to allow every IP/)
  })

  it.each([['10.0.0.0/33'], ['2001:db8::/129'], ['10.0.0'], ['0x7f.1'], ['010.0.0.1'], ['10.0.0.0/-1'], ['10.0.0.0/'], ['bad'], ['1::2::3'], ['']])(
    'refuses %j with an error naming the entry',
    (entry) => {
      let error: unknown
      try {
        checkAllowedIps([entry])
      } catch (caught) {
        error = caught
      }
      expect(error).toBeInstanceOf(InvalidInputError)
      expect((error as InvalidInputError).field).toBe('allowedIps')
      expect((error as Error).message).toContain(JSON.stringify(entry))
    },
  )

  it('refuses a non-string entry and a non-array', () => {
    expect(() => checkAllowedIps([42])).toThrow(InvalidInputError)
    expect(() => checkAllowedIps('10.0.0.0/8')).toThrow(InvalidInputError)
  })
})

describe('parseClientIp and the compiled matcher', () => {
  it('reads IPv4-mapped IPv6 addresses as IPv4, in both notations, and drops a zone', () => {
    expect(parseClientIp('::ffff:203.0.113.9')).toBe(parseClientIp('203.0.113.9'))
    expect(parseClientIp('::ffff:cb00:7109')).toBe(parseClientIp('203.0.113.9'))
    expect(parseClientIp('fe80::1%eth0')).toEqual(parseClientIp('fe80::1'))
    expect(parseClientIp('not an ip')).toBeNull()
    expect(parseClientIp('1.2.3.4.5')).toBeNull()
    expect(parseClientIp('1:2:3:4:5:6:7:8:9')).toBeNull()
  })

  it('matches exactly what ipaddr.js says is in the range, for random IPv4 and IPv6 addresses and ranges', () => {
    const v4 = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }), fc.integer({ min: 0, max: 0xffffffff }))
    fc.assert(
      fc.property(v4, ([network, bits, client]) => {
        const range = checkAllowedIps([`${ipv4(network)}/${bits}`]) as string[]
        const expected = ipaddr.parse(ipv4(client)).match(ipaddr.parseCIDR(range[0] as string))
        expect(matchesClient(compileAllowedIps(range), parseClientIp(ipv4(client)) as number)).toBe(expected)
      }),
    )
    const words = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 })
    fc.assert(
      fc.property(words, fc.integer({ min: 0, max: 128 }), words, fc.boolean(), (network, bits, client, sameTop) => {
        // Half the clients share the range's first 64 bits, so matches are not all misses.
        const clientWords = sameTop ? [...network.slice(0, 4), ...client.slice(4)] : client
        const text = ipv6(clientWords)
        const parsed = ipaddr.parse(text)
        if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) return
        const range = checkAllowedIps([`${ipv6(network)}/${bits}`]) as string[]
        const cidr = ipaddr.parseCIDR(range[0] as string)
        const expected = cidr[0].kind() === 'ipv6' && parsed.match(cidr)
        expect(ipAllowed(range, text)).toBe(expected)
        // The compressed form (`::`) parses to the same address.
        expect(parseClientIp(parsed.toString())).toEqual(parseClientIp(text))
      }),
    )
  })

  it('accepts exactly the strings node:net calls IP addresses, for random strings of address characters', () => {
    const chars = fc.constantFrom(...'0123456789abcdefABCDEF:.'.split(''))
    fc.assert(
      fc.property(fc.array(chars, { minLength: 0, maxLength: 45 }).map((list) => list.join('')), (text) => {
        expect(parseClientIp(text) !== null).toBe(isIP(text) !== 0)
      }),
      { numRuns: 5_000 },
    )
    for (const text of [':::', '1::2:', '::1.2.3.4.5', '12345::', '::ffff:1.2.3', '1:2:3:4:5:6:7::8', ':1::', '1.2.3.04', '::', '::1', '1::', 'a:b:c:d:e:f:1.2.3.4']) {
      expect(parseClientIp(text) !== null, text).toBe(isIP(text) !== 0)
    }
  })

  it('fails closed for an unknown or unparsable client IP', () => {
    expect(ipAllowed(['0.0.0.0/0'], undefined)).toBe(false)
    expect(ipAllowed(['0.0.0.0/0'], 'garbage')).toBe(false)
    expect(ipAllowed(['0.0.0.0/0'], '198.51.100.1')).toBe(true)
    expect(ipAllowed(['::/0'], '198.51.100.1')).toBe(false)
  })
})

describe('allowedIps on a key', () => {
  it('verifies from inside the list, IPv4-mapped IPv6 included, and answers 403 KEYROT_IP_NOT_ALLOWED from outside', async () => {
    const { keyring } = setup()
    const { token } = await keyring.create({ tenantId: 'acme', name: 'ci', allowedIps: ['203.0.113.0/24', '2001:db8::/32'] })
    expect(codeOf(await keyring.verify(token, { clientIp: '203.0.113.77' }))).toBe('ok')
    expect(codeOf(await keyring.verify(token, { clientIp: '::ffff:203.0.113.77' }))).toBe('ok')
    expect(codeOf(await keyring.verify(token, { clientIp: '2001:db8:1::5' }))).toBe('ok')
    const outside = await keyring.verify(token, { clientIp: '198.51.100.1' })
    expect(codeOf(outside)).toBe('KEYROT_IP_NOT_ALLOWED')
    expect(!outside.ok && outside.error.status).toBe(403)
    expect(codeOf(await keyring.verify(token, { clientIp: '2001:db9::1' }))).toBe('KEYROT_IP_NOT_ALLOWED')
    expect(codeOf(await keyring.verify(token, {}))).toBe('KEYROT_IP_NOT_ALLOWED')
  })

  it('answers a wrong secret from outside the list with the usual 401, never the 403', async () => {
    const { keyring } = setup()
    const { key } = await keyring.create({ tenantId: 'acme', name: 'ci', allowedIps: ['203.0.113.0/24'] })
    const forged = await keyring.verify(generateToken(key.prefix, key.id), { clientIp: '198.51.100.1' })
    expect(codeOf(forged)).toBe('KEYROT_INVALID_SECRET')
    expect(!forged.ok && publicCodeOf(forged.error.code)).toBe('KEYROT_INVALID_KEY')
  })

  it('refuses an invalid CIDR at create, and stores nothing', async () => {
    const { keyring, store } = setup()
    await expect(keyring.create({ tenantId: 'acme', name: 'ci', allowedIps: ['10.0.0.0/40'] })).rejects.toThrow(/allowedIps.*10\.0\.0\.0\/40/)
    expect(store.size).toBe(0)
  })

  it('is kept by rotation and emergency rotation, shown on the key, and changed or lifted later', async () => {
    const { keyring } = setup()
    const created = await keyring.create({ tenantId: 'acme', name: 'ci', allowedIps: ['203.0.113.0/24'] })
    expect(created.key.allowedIps).toEqual(['203.0.113.0/24'])
    const rotated = await keyring.rotate(created.key.id)
    expect(rotated.key.allowedIps).toEqual(['203.0.113.0/24'])
    expect(codeOf(await keyring.verify(rotated.token, { clientIp: '198.51.100.1' }))).toBe('KEYROT_IP_NOT_ALLOWED')
    const emergency = await keyring.emergencyRotate(rotated.key.id, { incidentId: 'inc-1' })
    expect(emergency.key.allowedIps).toEqual(['203.0.113.0/24'])

    // A cached state is dropped by the change: the next verify sees the new list.
    expect(codeOf(await keyring.verify(emergency.token, { clientIp: '203.0.113.1' }))).toBe('ok')
    const changed = await keyring.setAllowedIps(emergency.key.id, ['198.51.100.0/24'])
    expect(changed.allowedIps).toEqual(['198.51.100.0/24'])
    expect(codeOf(await keyring.verify(emergency.token, { clientIp: '203.0.113.1' }))).toBe('KEYROT_IP_NOT_ALLOWED')
    expect(codeOf(await keyring.verify(emergency.token, { clientIp: '198.51.100.1' }))).toBe('ok')
    const lifted = await keyring.setAllowedIps(emergency.key.id, null)
    expect(lifted.allowedIps).toBeUndefined()
    expect(codeOf(await keyring.verify(emergency.token, { clientIp: '203.0.113.1' }))).toBe('ok')
    await expect(keyring.setAllowedIps(emergency.key.id, ['nope'])).rejects.toThrow(InvalidInputError)
  })
})

function ipv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff].join('.')
}

function ipv6(words: number[]): string {
  return words.map((word) => word.toString(16)).join(':')
}
