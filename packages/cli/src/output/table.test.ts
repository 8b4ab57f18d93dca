import { describe, expect, it } from 'vitest'
import { printable, renderDetails, renderTable } from './table.js'

describe('renderTable', () => {
  it('aligns columns two spaces apart, with no trailing spaces', () => {
    expect(renderTable(['ID', 'STATE', 'NAME'], [['a1', 'active', 'ci'], ['b22222', 'grace', '']])).toBe(
      'ID      STATE   NAME\n' + 'a1      active  ci\n' + 'b22222  grace\n',
    )
  })

  it('counts code points, so accented names stay aligned', () => {
    const lines = renderTable(['NAME', 'X'], [['équipe', '1'], ['ab', '2']]).split('\n')
    expect([...(lines[1] as string)].indexOf('1')).toBe([...(lines[2] as string)].indexOf('2'))
  })

  it('prints only the header for no rows', () => {
    expect(renderTable(['ID', 'STATE'], [])).toBe('ID  STATE\n')
  })
})

describe('printable', () => {
  it('replaces C0, C1 and bidirectional control characters', () => {
    expect(printable('ok\u001b[31mred\u009b2J\u202eevil\u0007')).toBe('ok?[31mred?2J?evil?')
  })

  it('keeps ordinary text', () => {
    expect(printable('équipe ci: read, write')).toBe('équipe ci: read, write')
  })
})

describe('renderDetails', () => {
  it('aligns values and leaves out undefined ones', () => {
    expect(renderDetails([['Key', 'a1'], ['Revoked', undefined], ['Last used', 'never']])).toBe('Key        a1\nLast used  never\n')
  })

  it('cleans values of control characters', () => {
    expect(renderDetails([['Name', 'x\u001b]0;owned\u0007']])).toBe('Name  x?]0;owned?\n')
  })
})
