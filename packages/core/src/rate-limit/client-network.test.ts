import { describe, expect, it } from 'vitest'
import { clientCounters } from './client-network.js'

const DEFAULT_IP = { ipv4: 32, ipv6: 64 }
const DEFAULT_NETWORK = { ipv4: 24, ipv6: 48 }

describe('clientCounters', () => {
  it('counts IPv6 per /64 and its /48 network', () => {
    expect(clientCounters('2001:db8:1:2:aaaa::5', DEFAULT_IP, DEFAULT_NETWORK)).toEqual({ ip: '2001:db8:1:2::/64', network: '2001:db8:1::/48' })
    expect(clientCounters('2001:db8:1:2:ffff::9', DEFAULT_IP, DEFAULT_NETWORK).ip).toBe('2001:db8:1:2::/64')
    expect(clientCounters('2001:DB8:1:2::1', DEFAULT_IP, DEFAULT_NETWORK).ip).toBe('2001:db8:1:2::/64')
  })

  it('counts IPv4 per address and its /24 network, or per /24 when told', () => {
    expect(clientCounters('203.0.113.7', DEFAULT_IP, DEFAULT_NETWORK)).toEqual({ ip: '203.0.113.7', network: '203.0.113.0/24' })
    expect(clientCounters('203.0.113.7', { ipv4: 24, ipv6: 64 }, DEFAULT_NETWORK)).toEqual({ ip: '203.0.113.0/24', network: undefined })
  })

  it('counts an IPv4-mapped IPv6 address as its IPv4 address', () => {
    expect(clientCounters('::ffff:203.0.113.7', DEFAULT_IP, DEFAULT_NETWORK)).toEqual(clientCounters('203.0.113.7', DEFAULT_IP, DEFAULT_NETWORK))
  })

  it('drops a zone id, and names a non-address by itself (hashed when long)', () => {
    expect(clientCounters('fe80::1%eth0', DEFAULT_IP, null)).toEqual({ ip: 'fe80::/64', network: undefined })
    expect(clientCounters('0x7f.1', DEFAULT_IP, DEFAULT_NETWORK)).toEqual({ ip: '0x7f.1', network: undefined })
    expect(clientCounters('x'.repeat(200), DEFAULT_IP, DEFAULT_NETWORK).ip).toMatch(/^sha256:/)
  })

  it('honours any prefix length, including ones not on a byte boundary', () => {
    expect(clientCounters('2001:db8:abcd:ef12::1', { ipv4: 32, ipv6: 56 }, { ipv4: 24, ipv6: 36 })).toEqual({
      ip: '2001:db8:abcd:ef00::/56',
      network: '2001:db8:a000::/36',
    })
  })
})
