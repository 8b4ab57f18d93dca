import { createHash } from 'node:crypto'
import { isIP } from 'node:net'
import ipaddr from 'ipaddr.js'

/** Prefix lengths (bits) a client address is grouped by. */
export interface PrefixLengths {
  ipv4: number
  ipv6: number
}

/** The counter names of one client: its own (address or prefix) and its wider network's. */
export interface ClientCounters {
  /** The IP counter: an IPv4 address (or `/ipv4` prefix), an IPv6 `/ipv6` prefix. */
  ip: string
  /** The wider network's counter, `undefined` when not an IP address or no network budget applies. */
  network: string | undefined
}

/** Longest client IP used as is in a counter's name when it is not an IP address. */
const MAX_NAME_LENGTH = 64

/** A bounded counter name for a client id that is not an IP address: a `clientIp()` option may return anything. */
function opaque(id: string): string {
  return id.length <= MAX_NAME_LENGTH ? id : `sha256:${createHash('sha256').update(id).digest('base64url')}`
}

/** `address` with every bit after the first `bits` cleared, written as `a.b.c.d/bits` or `x:y::/bits`. */
function prefixOf(address: ipaddr.IPv4 | ipaddr.IPv6, bits: number): string {
  const bytes = address.toByteArray()
  for (let i = 0; i < bytes.length; i++) {
    const kept = Math.max(0, Math.min(8, bits - i * 8))
    bytes[i] = (bytes[i] as number) & ((0xff << (8 - kept)) & 0xff)
  }
  const masked = ipaddr.fromByteArray(bytes)
  return address.kind() === 'ipv4' && bits === 32 ? masked.toString() : `${masked.toString()}/${bits}`
}

/**
 * Names the counters of a client IP. IPv6 hands each customer a /64 or
 * wider, so counting exact IPv6 addresses lets one attacker make 2^64 fresh
 * starts: IPv6 is counted per `ip.ipv6` prefix (default /64) and IPv4 per
 * `ip.ipv4` prefix (default /32, the address). The wider network (default
 * IPv6 /48, IPv4 /24) has its own budget, so spreading over the /64s of one
 * site does not help either. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
 * what a dual-stack socket reports) counts as its IPv4 address; a zone id
 * is dropped.
 *
 * @param network prefix lengths of the wider budget, `null` when off.
 */
export function clientCounters(clientIp: string, ip: PrefixLengths, network: PrefixLengths | null): ClientCounters {
  const zone = clientIp.indexOf('%')
  const bare = zone === -1 ? clientIp : clientIp.slice(0, zone)
  // node:net is strict (ipaddr.js would also take `0x7f.1` or a bare number as IPv4).
  if (isIP(bare) === 0) return { ip: opaque(clientIp), network: undefined }
  let address: ipaddr.IPv4 | ipaddr.IPv6
  try {
    address = ipaddr.process(bare)
  } catch {
    return { ip: opaque(clientIp), network: undefined }
  }
  const family = address.kind() === 'ipv4' ? 'ipv4' : 'ipv6'
  const own = prefixOf(address, ip[family])
  if (network === null || network[family] >= ip[family]) return { ip: own, network: undefined }
  return { ip: own, network: prefixOf(address, network[family]) }
}
