import { InvalidArgumentError } from 'commander'
import { describe, expect, it } from 'vitest'
import { parseDurationArg, parseExpiresArg, parseJsonObjectArg, parseListArg, parseRateLimitArg } from './parse.js'

describe('parseRateLimitArg', () => {
  it.each([
    ['100/min', 100, 60_000],
    ['100/m', 100, 60_000],
    ['10/s', 10, 1_000],
    ['10/sec', 10, 1_000],
    ['5000/hour', 5000, 3_600_000],
    ['5000/hours', 5000, 3_600_000],
    ['1/day', 1, 86_400_000],
    ['100/30s', 100, 30_000],
    [' 7 / MIN ', 7, 60_000],
  ])('%s', (value, limit, window) => {
    expect(parseRateLimitArg(value)).toEqual({ limit, window })
  })

  it.each(['fast', '100', '0/min', '-1/min', '100/ms', '100/fortnight', '1.5/min', '/min'])('refuses %s', (value) => {
    expect(() => parseRateLimitArg(value)).toThrow(InvalidArgumentError)
  })
})

describe('parseExpiresArg', () => {
  it('takes a lifetime (counted by the keyring from createdAt) or an ISO date', () => {
    expect(parseExpiresArg('90d')).toEqual({ expiresIn: 90 * 86_400_000 })
    expect(parseExpiresArg('2031-06-01T00:00:00Z')).toEqual({ expiresAt: Date.UTC(2031, 5, 1) })
  })

  it.each(['soon', '2031-13-45', '-5d', '', '0d'])('refuses %j', (value) => {
    expect(() => parseExpiresArg(value)).toThrow(InvalidArgumentError)
  })
})

describe('other arguments', () => {
  it('durations', () => {
    expect(parseDurationArg('24h')).toBe(86_400_000)
    expect(() => parseDurationArg('a while')).toThrow(InvalidArgumentError)
  })

  it('lists drop blanks', () => {
    expect(parseListArg('read, write,,')).toEqual(['read', 'write'])
  })

  it('metadata must be a JSON object', () => {
    expect(parseJsonObjectArg('{"team":"infra"}')).toEqual({ team: 'infra' })
    for (const value of ['[1]', 'null', '"x"', '{bad']) expect(() => parseJsonObjectArg(value)).toThrow(InvalidArgumentError)
  })
})
