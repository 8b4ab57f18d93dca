import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { normaliseLua, SCRIPTS } from './scripts.js'

describe('SCRIPTS', () => {
  it('are whitespace-normalised, with the SHA1 of their source', () => {
    for (const script of Object.values(SCRIPTS)) {
      expect(script.source).toBe(normaliseLua(script.source))
      expect(script.source).not.toMatch(/^\s|^--|\n\n/m)
      expect(script.sha).toBe(createHash('sha1').update(script.source).digest('hex'))
    }
  })

  it('give the same SHA whatever the indentation and comments', () => {
    expect(normaliseLua('  -- why\n\n  return 1\n')).toBe(normaliseLua('return 1'))
  })

  it('touch only the keys they are given (no key names built in Lua)', () => {
    for (const script of Object.values(SCRIPTS)) {
      expect(script.source).not.toMatch(/redis\.call\('[A-Z]+', '/)
      expect(script.source).not.toMatch(/\.\. *':/)
    }
  })
})
