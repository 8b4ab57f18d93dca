import { isIP } from 'node:net'
import ipaddr from 'ipaddr.js'
import { InvalidInputError } from '../errors.js'

/** Most ranges one key's `allowedIps` may hold. */
export const MAX_ALLOWED_IPS = 256

/**
 * Checks and canonicalises a key's `allowedIps` once, at `create` or
 * `setAllowedIps`: each entry is an IPv4 or IPv6 address (a /32 or /128) or a
 * CIDR range. Host bits after the prefix are cleared (`10.1.2.3/8` is kept as
 * `10.0.0.0/8`); an IPv4-mapped IPv6 range (`::ffff:10.0.0.0/104`) is kept as
 * its IPv4 range, as a mapped client address counts as IPv4. `undefined` and
 * `null` mean "any IP" and return `null`; an empty list is refused (it would
 * lock the key out everywhere: pass `null` to lift the restriction).
 */
export function checkAllowedIps(value: unknown, field = 'allowedIps'): string[] | null {
  if (value === undefined || value === null) return null
  if (!Array.isArray(value)) throw new InvalidInputError(field, 'must be an array of IP addresses or CIDR ranges, or null for any IP')
  if (value.length === 0) throw new InvalidInputError(field, 'must hold at least one range; use null to allow every IP')
  if (value.length > MAX_ALLOWED_IPS) throw new InvalidInputError(field, `at most ${MAX_ALLOWED_IPS} ranges`)
  const out: string[] = []
  for (const entry of value) {
    const range = canonicalRange(entry)
    if (range === null) {
      const shown = typeof entry === 'string' ? JSON.stringify(entry.slice(0, 64)) : typeof entry
      throw new InvalidInputError(field, `${shown} is not an IP address or CIDR range (e.g. '203.0.113.0/24', '2001:db8::/32')`)
    }
    if (!out.includes(range)) out.push(range)
  }
  return out
}

/** `a.b.c.d/n` or `x::/n` with host bits cleared; `null` when `entry` is no address or range. */
function canonicalRange(entry: unknown): string | null {
  if (typeof entry !== 'string' || entry.length === 0 || entry.length > 64) return null
  const slash = entry.indexOf('/')
  const address = slash === -1 ? entry : entry.slice(0, slash)
  const family = isIP(address)
  // node:net is strict: ipaddr.js alone would take `0x7f.1` or a bare number as IPv4.
  if (family === 0) return null
  const width = family === 4 ? 32 : 128
  let bits = width
  if (slash !== -1) {
    const text = entry.slice(slash + 1)
    if (!/^\d{1,3}$/.test(text)) return null
    bits = Number(text)
    if (bits > width) return null
  }
  let parsed: ipaddr.IPv4 | ipaddr.IPv6 = ipaddr.parse(address)
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address()
    bits -= 96
  }
  const network = parsed.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(`${parsed.toString()}/${bits}`) : ipaddr.IPv6.networkAddressFromCIDR(`${parsed.toString()}/${bits}`)
  return `${network.toString()}/${bits}`
}

/**
 * A key's ranges compiled for the verify path: IPv4 as `(network, mask)`
 * uint32 pairs, IPv6 as four uint32 words of network then four of mask. A
 * check is then a linear scan of integer ANDs, with no parsing or allocation.
 */
export interface IpMatcher {
  readonly v4: Uint32Array
  readonly v6: Uint32Array
}

/** A client address parsed once per request: a uint32 for IPv4 (and IPv4-mapped IPv6), four uint32 words for IPv6. */
export type ClientAddress = number | Uint32Array

/** Compiled matchers by list, so a cached key state compiles its list once (the list array is the cached record's own). */
const compiled = new WeakMap<readonly string[], IpMatcher>()

/** Compiles canonical ranges (see {@link checkAllowedIps}). Entries that do not parse are skipped (they match nothing). */
export function compileAllowedIps(ranges: readonly string[]): IpMatcher {
  const v4: number[] = []
  const v6: number[] = []
  for (const range of ranges) {
    const slash = range.indexOf('/')
    const bits = Number(range.slice(slash + 1))
    const address = parseClientIp(range.slice(0, slash))
    if (address === null || !Number.isInteger(bits)) continue
    if (typeof address === 'number') {
      const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
      v4.push((address & mask) >>> 0, mask)
    } else {
      const masks = [0, 1, 2, 3].map((word) => {
        const kept = Math.max(0, Math.min(32, bits - word * 32))
        return kept === 0 ? 0 : (0xffffffff << (32 - kept)) >>> 0
      })
      for (let word = 0; word < 4; word++) v6.push(((address[word] as number) & (masks[word] as number)) >>> 0)
      v6.push(...masks)
    }
  }
  return { v4: Uint32Array.from(v4), v6: Uint32Array.from(v6) }
}

/** Whether `address` is in one of the matcher's ranges. */
export function matchesClient(matcher: IpMatcher, address: ClientAddress): boolean {
  if (typeof address === 'number') {
    const v4 = matcher.v4
    for (let i = 0; i < v4.length; i += 2) if (((address & (v4[i + 1] as number)) >>> 0) === v4[i]) return true
    return false
  }
  const v6 = matcher.v6
  const a0 = address[0] as number
  const a1 = address[1] as number
  const a2 = address[2] as number
  const a3 = address[3] as number
  for (let i = 0; i < v6.length; i += 8) {
    if (
      ((a0 & (v6[i + 4] as number)) >>> 0) === v6[i] &&
      ((a1 & (v6[i + 5] as number)) >>> 0) === v6[i + 1] &&
      ((a2 & (v6[i + 6] as number)) >>> 0) === v6[i + 2] &&
      ((a3 & (v6[i + 7] as number)) >>> 0) === v6[i + 3]
    ) {
      return true
    }
  }
  return false
}

/**
 * Whether a request from `clientIp` may use a key with these `allowedIps`.
 * Fails closed: an unknown or unparsable client IP is outside every list.
 * The list is compiled on its first check and kept as long as the list
 * (the cached key state) lives.
 */
export function ipAllowed(allowedIps: readonly string[], clientIp: string | undefined): boolean {
  if (clientIp === undefined) return false
  let matcher = compiled.get(allowedIps)
  if (matcher === undefined) {
    matcher = compileAllowedIps(allowedIps)
    compiled.set(allowedIps, matcher)
  }
  const address = parseClientIp(clientIp)
  return address !== null && matchesClient(matcher, address)
}

/** A dotted IPv4 address in `text[from, to)` as a uint32, or -1. Leading zeros are refused, as by node:net (`010` is octal to some parsers). */
function parseIPv4(text: string, from: number, to: number): number {
  let value = 0
  let octets = 0
  let i = from
  while (octets < 4) {
    let octet = 0
    let digits = 0
    while (i < to) {
      const c = text.charCodeAt(i)
      if (c < 48 || c > 57) break
      if (digits === 1 && octet === 0) return -1
      octet = octet * 10 + (c - 48)
      digits++
      i++
    }
    if (digits === 0 || digits > 3 || octet > 255) return -1
    value = value * 256 + octet
    octets++
    if (octets < 4) {
      if (i >= to || text.charCodeAt(i) !== 46) return -1
      i++
    }
  }
  return i === to ? value >>> 0 : -1
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}

/** Groups of the address being parsed (one parse at a time: the verify path is synchronous here). */
const groups = new Uint16Array(8)

/** An IPv6 address in `text[0, to)` as four uint32 words, or `null`. One pass over the characters, no intermediate strings. */
function parseIPv6(text: string, to: number): Uint32Array | null {
  let count = 0
  let gap = -1
  let i = 0
  if (to < 2) return null
  if (text.charCodeAt(0) === 58) {
    if (text.charCodeAt(1) !== 58) return null
    gap = 0
    i = 2
  }
  while (i < to) {
    const start = i
    let value = 0
    let digits = 0
    while (i < to) {
      const h = hexDigit(text.charCodeAt(i))
      if (h === -1) break
      value = value * 16 + h
      digits++
      i++
    }
    if (i < to && text.charCodeAt(i) === 46) {
      // An embedded IPv4 tail (`::ffff:1.2.3.4`): the last 32 bits.
      if (count > 6) return null
      const v4 = parseIPv4(text, start, to)
      if (v4 === -1) return null
      groups[count++] = v4 >>> 16
      groups[count++] = v4 & 0xffff
      i = to
      break
    }
    if (digits === 0 || digits > 4 || count === 8) return null
    groups[count++] = value
    if (i === to) break
    if (text.charCodeAt(i) !== 58) return null
    i++
    if (i < to && text.charCodeAt(i) === 58) {
      if (gap !== -1) return null
      gap = count
      i++
    } else if (i === to) {
      return null
    }
  }
  if (gap === -1 ? count !== 8 : count > 7) return null
  const words = new Uint32Array(4)
  const tail = gap === -1 ? 0 : count - gap
  for (let g = 0; g < 8; g++) {
    let group = 0
    if (gap === -1 || g < gap) group = groups[g] as number
    else if (g >= 8 - tail) group = groups[gap + g - (8 - tail)] as number
    words[g >> 1] = g & 1 ? ((words[g >> 1] as number) | group) >>> 0 : (group << 16) >>> 0
  }
  return words
}

/**
 * Parses a client IP in one pass, allocating at most one small array: a dotted
 * IPv4 address, or an IPv6 address (with `::`, an embedded IPv4 tail, a
 * `%zone` that is dropped). An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
 * what a dual-stack socket reports) comes back as its IPv4 uint32.
 * Returns `null` for anything else.
 */
export function parseClientIp(text: string): ClientAddress | null {
  if (text.length > 64) return null
  if (text.indexOf(':') === -1) {
    const v4 = parseIPv4(text, 0, text.length)
    return v4 === -1 ? null : v4
  }
  const zone = text.indexOf('%')
  const words = parseIPv6(text, zone === -1 ? text.length : zone)
  if (words === null) return null
  if (words[0] === 0 && words[1] === 0 && words[2] === 0xffff) return words[3] as number
  return words
}
