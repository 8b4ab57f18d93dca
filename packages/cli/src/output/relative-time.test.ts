import { describe, expect, it } from 'vitest'
import { formatInstant, formatRelative, formatSpan } from './relative-time.js'

const now = Date.UTC(2030, 0, 1)
const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

describe('formatRelative', () => {
  it.each([
    [now + DAY - MINUTE, 'in 23h 59m'],
    [now + 90 * DAY, 'in 90d'],
    [now + 89 * DAY + 23 * HOUR + 59 * MINUTE, 'in 89d 23h'],
    [now - 3 * MINUTE - 12_000, '3m 12s ago'],
    [now + 45_000, 'in 45s'],
    [now + 999, 'now'],
    [now - 999, 'now'],
    [now + 1000, 'in 1s'],
  ])('%d -> %s', (at, expected) => {
    expect(formatRelative(at, now)).toBe(expected)
  })

  it('says never for no time, or what it is told', () => {
    expect(formatRelative(null, now)).toBe('never')
    expect(formatRelative(null, now, '-')).toBe('-')
  })
})

describe('formatSpan and formatInstant', () => {
  it('shows at most two units and never milliseconds', () => {
    expect(formatSpan(2 * DAY + 3 * HOUR + 4 * MINUTE)).toBe('2d 3h')
    expect(formatSpan(500)).toBe('0s')
    expect(formatSpan(-HOUR)).toBe('1h')
  })

  it('gives the UTC instant and the relative time', () => {
    expect(formatInstant(now + HOUR, now)).toBe('2030-01-01T01:00:00.000Z (in 1h)')
    expect(formatInstant(null, now)).toBe('never')
  })
})
