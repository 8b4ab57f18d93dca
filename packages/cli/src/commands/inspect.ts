import { KeyNotFoundError, type ApiKey, type Keyring } from '@keyrot/core'
import type { Command } from 'commander'
import type { CliIo } from '../io.js'
import { graceRemainingMs, renderKeyDetails } from '../output/keys.js'
import { renderRotationUsage } from '../output/rotation.js'
import { rotationUsageOf } from '../server/rotation-routes.js'
import type { StoreFlags } from '../store.js'
import { printJson, withJsonOption, withKeyring, withStoreOptions, type OutputFlags } from './shared.js'

/** Window of the rotation figures `inspect` shows. */
const ROTATION_MINUTES = 60

/** Longest lineage walked each way: rotation chains are short; a cycle or corrupt record must not loop. */
const MAX_LINEAGE_STEPS = 50

/** Ids of the keys this key was rotated from and into, oldest first, itself included. */
export async function lineageOf(keyring: Keyring, key: ApiKey): Promise<string[]> {
  const seen = new Set([key.id])
  const before: string[] = []
  let from = key.rotatedFrom
  while (from !== null && !seen.has(from) && before.length < MAX_LINEAGE_STEPS) {
    seen.add(from)
    before.unshift(from)
    from = (await keyring.get(from))?.rotatedFrom ?? null
  }
  const after: string[] = []
  let to = key.rotatedTo
  while (to !== null && !seen.has(to) && after.length < MAX_LINEAGE_STEPS) {
    seen.add(to)
    after.push(to)
    to = (await keyring.get(to))?.rotatedTo ?? null
  }
  return [...before, key.id, ...after]
}

export function registerInspect(program: Command, io: CliIo): void {
  const command = program
    .command('inspect')
    .description('show one key: state, expiry, grace remaining, usage, last use, lineage')
    .argument('<keyId>', 'the key id (the 16 characters after the prefix in a token)')
  withJsonOption(withStoreOptions(command))
  command.action(async (keyId: string, flags: StoreFlags & OutputFlags) => {
    await withKeyring(io, flags, 'inspect', async (keyring) => {
      const key = await keyring.get(keyId)
      if (key === null) throw new KeyNotFoundError(keyId)
      const lineage = await lineageOf(keyring, key)
      const now = io.now()
      // A key in a rotation: how its traffic moves, as every replica counted it.
      const rotation = key.rotatedTo !== null || key.rotatedFrom !== null ? await rotationUsageOf(keyring, key, ROTATION_MINUTES) : null
      if (flags.json) printJson(io, { key, graceRemainingMs: graceRemainingMs(key, now), lineage, ...(rotation ? { rotationUsage: rotation } : {}) })
      else io.stdout.write(renderKeyDetails(key, lineage, now) + (rotation ? `\n${renderRotationUsage(rotation, ROTATION_MINUTES)}` : ''))
    })
  })
}
