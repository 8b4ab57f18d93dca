import type { Command } from 'commander'
import { UsageError } from '../exit-codes.js'
import type { CliIo } from '../io.js'
import { printable } from '../output/table.js'
import { parseListArg } from '../parse.js'
import type { StoreFlags } from '../store.js'
import { printJson, printNotice, withJsonOption, withKeyring, withStoreOptions, type OutputFlags } from './shared.js'

interface UpdateFlags extends StoreFlags, OutputFlags {
  allowedIps?: string[]
  anyIp?: boolean
}

/** `keyrot update <keyId>`: changes a key's settings in place (today its IP allowlist), on every replica at once. */
export function registerUpdate(program: Command, io: CliIo): void {
  const command = program
    .command('update')
    .description("change a key's settings in place: the client IP ranges it may be used from")
    .argument('<keyId>', 'the key to change')
    .option('--allowed-ips <list>', "comma-separated client IPs or CIDR ranges, e.g. '203.0.113.0/24,2001:db8::/32' (replaces the list)", parseListArg)
    .option('--any-ip', 'lift the IP restriction: the key works from any IP')
  withJsonOption(withStoreOptions(command))
  command.addHelpText(
    'after',
    `
Examples:
  $ keyrot update 3kTq9xY2Lm8Pz4Wb --allowed-ips 203.0.113.0/24,2001:db8::/32
  $ keyrot update 3kTq9xY2Lm8Pz4Wb --any-ip`,
  )
  command.action(async (keyId: string, flags: UpdateFlags) => {
    if ((flags.allowedIps === undefined) === (flags.anyIp !== true)) throw new UsageError('give exactly one of --allowed-ips and --any-ip')
    await withKeyring(io, flags, 'update', async (keyring) => {
      const key = await keyring.setAllowedIps(keyId, flags.anyIp ? null : (flags.allowedIps as string[]))
      if (flags.json) return printJson(io, { key })
      printNotice(io, printable(`Key ${key.id} now works from ${key.allowedIps ? key.allowedIps.join(', ') : 'any IP'}.`))
    })
  })
}
