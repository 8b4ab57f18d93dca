import type { ApiKey } from '@keyrot/core'
import { Option, type Command } from 'commander'
import type { CliIo } from '../io.js'
import { renderKeyTable } from '../output/keys.js'
import { parseDurationArg } from '../parse.js'
import type { StoreFlags } from '../store.js'
import { printJson, printNotice, withJsonOption, withKeyring, withStoreOptions, type OutputFlags } from './shared.js'

const STATES = ['active', 'grace', 'expired', 'revoked'] as const

function printKeys(io: CliIo, keys: ApiKey[], flags: OutputFlags, empty: string): void {
  if (flags.json) printJson(io, { keys })
  else if (keys.length === 0) printNotice(io, empty)
  else io.stdout.write(renderKeyTable(keys, io.now()))
}

export function registerList(program: Command, io: CliIo): void {
  const command = program
    .command('list')
    .description('list keys, newest first')
    .option('--tenant <id>', 'only this tenant')
    .addOption(new Option('--state <state>', 'only keys in this state').choices(STATES))
  withJsonOption(withStoreOptions(command))
  command.action(async (flags: StoreFlags & OutputFlags & { tenant?: string; state?: ApiKey['state'] }) => {
    const keys = await withKeyring(io, flags, 'list', (keyring) =>
      keyring.list({ ...(flags.tenant !== undefined ? { tenantId: flags.tenant } : {}), ...(flags.state ? { state: flags.state } : {}) }),
    )
    printKeys(io, keys, flags, 'No keys.')
  })
}

export function registerExpiring(program: Command, io: CliIo): void {
  const command = program
    .command('expiring')
    .description('keys still working that stop within a window (grace periods and planned expiries), soonest first')
    .requiredOption('--within <duration>', "window from now, e.g. '7d'", parseDurationArg)
    .option('--tenant <id>', 'only this tenant')
  withJsonOption(withStoreOptions(command))
  command.action(async (flags: StoreFlags & OutputFlags & { within: number; tenant?: string }) => {
    const keys = await withKeyring(io, flags, 'expiring', (keyring) =>
      keyring.expiringWithin(flags.within, flags.tenant !== undefined ? { tenantId: flags.tenant } : {}),
    )
    printKeys(io, keys, flags, 'No key stops working in that window.')
  })
}
