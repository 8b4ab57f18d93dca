import { describe, expect, it } from 'vitest'
import { FastTestHasher } from '../hash/hasher.js'
import { createKeyring } from '../lifecycle/keyring.js'
import type { Logger } from '../logger.js'

describe('a keyring without a proof key', () => {
  it('logs once per process that each replica will re-prove every key', async () => {
    const lines: Array<{ fields: Record<string, unknown>; message: string }> = []
    const logger: Logger = {
      info: (fields: Record<string, unknown>, message: string) => lines.push({ fields, message }),
      warn: () => {},
      error: () => {},
    } as unknown as Logger
    const first = createKeyring({ hasher: new FastTestHasher(), logger, proofKey: null })
    const second = createKeyring({ hasher: new FastTestHasher(), logger, proofKey: null })
    const notes = lines.filter((line) => line.fields.event === 'proofs.off')
    expect(notes).toHaveLength(1)
    expect(notes[0]?.message).toMatch(/each replica will re-prove every key/)
    expect(first.proofStats().sharedProofs).toBeNull()
    await Promise.all([first.close(), second.close()])
  })
})
