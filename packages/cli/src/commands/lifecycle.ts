import { KeyNotFoundError, type Keyring } from '@keyrot/core'
import type { Command } from 'commander'
import { confirm } from '../confirm.js'
import type { CliIo } from '../io.js'
import { formatInstant, formatSpan } from '../output/relative-time.js'
import { parseDurationArg } from '../parse.js'
import type { StoreFlags } from '../store.js'
import { printable } from '../output/table.js'
import { printJson, printNewToken, withJsonOption, withKeyring, withStoreOptions, type OutputFlags } from './shared.js'

interface DestructiveFlags extends StoreFlags, OutputFlags {
  yes?: boolean
}

function withYesOption(command: Command): Command {
  return command.option('-y, --yes', 'do not ask for confirmation (required when no terminal is attached)')
}

/** The key, or KEYROT_KEY_NOT_FOUND before anyone is asked to confirm. */
async function describeKey(keyring: Keyring, keyId: string): Promise<string> {
  const key = await keyring.get(keyId)
  if (key === null) throw new KeyNotFoundError(keyId)
  return printable(`${key.id} (tenant ${key.tenantId}, "${key.name}", ${key.state})`)
}

export function registerRotate(program: Command, io: CliIo): void {
  const command = program
    .command('rotate')
    .description('issue a successor key; the old one keeps working for a grace period')
    .argument('<keyId>', 'the key to rotate')
    .option('--grace <duration>', "how long the old key keeps working (default: 24h; '0s' ends it now)", parseDurationArg)
  withYesOption(withJsonOption(withStoreOptions(command)))
  command.action(async (keyId: string, flags: DestructiveFlags & { grace?: number }) => {
    await withKeyring(io, flags, 'rotate', async (keyring) => {
      const label = await describeKey(keyring, keyId)
      const grace = flags.grace ?? keyring.options.gracePeriodMs
      await confirm(io, 'rotate', `Rotate key ${label}? The old key stops working in ${formatSpan(grace)}.`, flags.yes)
      // With its unit: a grace under 1 s given as a bare number would be refused.
      const { token, key, previous } = await keyring.rotate(keyId, { gracePeriod: `${grace}ms` })
      if (flags.json) return printJson(io, { token, key, previous })
      printNewToken(
        io,
        token,
        `Rotated ${previous.id} -> ${key.id}. The old key keeps working until ${formatInstant(previous.expiresAt, io.now())}.`,
      )
    })
  })
}

export function registerRevoke(program: Command, io: CliIo): void {
  const command = program
    .command('revoke')
    .description('stop a key at once, on every replica')
    .argument('<keyId>', 'the key to revoke')
    .requiredOption('--reason <text>', 'why, for the audit trail')
  withYesOption(withJsonOption(withStoreOptions(command)))
  command.action(async (keyId: string, flags: DestructiveFlags & { reason: string }) => {
    await withKeyring(io, flags, 'revoke', async (keyring) => {
      const label = await describeKey(keyring, keyId)
      await confirm(io, 'revoke', `Revoke key ${label} now?`, flags.yes)
      const key = await keyring.revoke(keyId, { reason: flags.reason })
      if (flags.json) return printJson(io, { key })
      io.stdout.write(`${printable(`Revoked ${key.id}${key.revokedReason ? ` (${key.revokedReason})` : ''}.`)}\n`)
    })
  })
}

export function registerEmergencyRotate(program: Command, io: CliIo): void {
  const command = program
    .command('emergency-rotate')
    .description('for a leaked key: revoke it now and issue its successor, with no grace period')
    .argument('<keyId>', 'the leaked key')
    .requiredOption('--incident <id>', 'incident id for the audit trail, e.g. INC-42')
    .option('--reason <text>', 'why (default: "emergency rotation (<incident>)")')
  withYesOption(withJsonOption(withStoreOptions(command)))
  command.action(async (keyId: string, flags: DestructiveFlags & { incident: string; reason?: string }) => {
    await withKeyring(io, flags, 'emergency-rotate', async (keyring) => {
      const label = await describeKey(keyring, keyId)
      await confirm(io, 'emergency-rotate', `Revoke key ${label} NOW and issue a successor?`, flags.yes)
      const { token, key, revoked } = await keyring.emergencyRotate(keyId, {
        incidentId: flags.incident,
        ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
      })
      if (flags.json) return printJson(io, { token, key, revoked })
      printNewToken(io, token, `Revoked ${revoked.id} (incident ${flags.incident}) and issued ${key.id}.`)
    })
  })
}
