import { describe, expect, it } from 'vitest'
import { formatDuration, parseDuration } from './duration.js'

describe('parseDuration', () => {
  it.each([
    [0, 0],
    [1500, 1500],
    [1500.9, 1500],
    ['250ms', 250],
    ['30s', 30_000],
    ['10m', 600_000],
    ['24h', 86_400_000],
    ['7d', 604_800_000],
    ['2w', 1_209_600_000],
    ['1.5h', 5_400_000],
    [' 5 s ', 5_000],
    ['0s', 0],
  ] as const)('reads %j as %d ms', (input, ms) => {
    expect(parseDuration(input, 'gracePeriod')).toBe(ms)
  })

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY, '', '24', 'h', '-5s', '1e3ms', '24 hours', '1y', '5S', '0x10s', '1.s'])(
    'refuses %j with a TypeError naming the option',
    (input) => {
      expect(() => parseDuration(input, 'gracePeriod')).toThrow(TypeError)
      expect(() => parseDuration(input, 'gracePeriod')).toThrow(/^gracePeriod must be/)
    },
  )

  it('refuses values that are neither numbers nor strings', () => {
    for (const input of [null, undefined, {}, [], true, 10n]) {
      expect(() => parseDuration(input as never, 'cache.stateTtl')).toThrow(/^cache\.stateTtl must be/)
    }
  })

  it('refuses a string so long it overflows', () => {
    expect(() => parseDuration(`${'9'.repeat(400)}w`, 'window')).toThrow(TypeError)
  })
})

describe('formatDuration', () => {
  it.each([
    [0, '0ms'],
    [999, '999ms'],
    [1_000, '1s'],
    [90_000, '1m 30s'],
    [86_400_000, '1d'],
    [90_061_000, '1d 1h'],
    [-5_000, '-5s'],
  ])('writes %d ms as %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text)
  })

  it('round-trips whole units through parseDuration', () => {
    for (const text of ['1s', '5m', '3h', '3d']) expect(formatDuration(parseDuration(text, 'd'))).toBe(text)
  })
})
