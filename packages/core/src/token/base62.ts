export const BASE62_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
const BASE = 62n

/** Encodes bytes as a fixed-width base62 string (left-padded with '0'). */
export function encodeBase62(bytes: Uint8Array, width: number): string {
  let n = 0n
  for (const byte of bytes) n = (n << 8n) | BigInt(byte)
  return encodeBigInt(n, width)
}

export function encodeBigInt(value: bigint, width: number): string {
  let n = value
  let out = ''
  while (n > 0n) {
    out = BASE62_ALPHABET[Number(n % BASE)] + out
    n /= BASE
  }
  if (out.length > width) throw new RangeError(`value needs ${out.length} base62 digits, more than ${width}`)
  return out.padStart(width, '0')
}

/** Width in base62 digits needed for `byteLength` random bytes. */
export function base62Width(byteLength: number): number {
  return Math.ceil((byteLength * 8) / Math.log2(62))
}
