import type { Command } from 'commander'
import type { CliIo } from '../io.js'
import { formatInstant } from '../output/relative-time.js'
import { parseExpiresArg, parseJsonObjectArg, parseListArg, parseRateLimitArg } from '../parse.js'
import type { StoreFlags } from '../store.js'
import { parseCreditsArg, parseRefillArg } from './credits.js'
import { printJson, printNewToken, withJsonOption, withKeyring, withStoreOptions, type OutputFlags } from './shared.js'

interface CreateFlags extends StoreFlags, OutputFlags {
  tenant: string
  name: string
  scopes?: string[]
  expires?: ReturnType<typeof parseExpiresArg>
  rateLimit?: { limit: number; window: number }
  prefix?: string
  metadata?: Record<string, unknown>
  credits?: number
  refill?: { amount: number; interval: string }
  allowedIp?: string[]
}

/** `--allowed-ip` given several times, or with a comma-separated list: one list. */
export function collectAllowedIps(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...parseListArg(value)]
}

export function registerCreate(program: Command, io: CliIo): void {
  const command = program
    .command('create')
    .description('create a key; its token is printed once, alone on stdout')
    .requiredOption('--tenant <id>', 'tenant the key belongs to')
    .requiredOption('--name <name>', 'a name people recognise, e.g. "ci"')
    .option('--scopes <list>', 'comma-separated scopes, e.g. read,write', parseListArg)
    .option('--expires <when>', "lifetime from now ('90d') or an ISO 8601 date", parseExpiresArg)
    .option('--rate-limit <rate>', "requests per window, e.g. '100/min'", parseRateLimitArg)
    .option('--prefix <prefix>', "token prefix, e.g. 'sk_test' (default: sk_live)")
    .option('--metadata <json>', 'a JSON object stored with the key', parseJsonObjectArg)
    .option('--credits <n>', 'uses the key (and its successors) may spend; default: unlimited', parseCreditsArg)
    .option('--refill <amount/interval>', "with --credits: top up to <amount> every <interval>, e.g. '1000/1d'", parseRefillArg)
    .option('--allowed-ip <cidr>', "client IP or CIDR range the key may be used from, e.g. '203.0.113.0/24' (repeat for more; default: any IP)", collectAllowedIps)
  withJsonOption(withStoreOptions(command))
  command.addHelpText(
    'after',
    `
Examples:
  $ keyrot create --tenant acme --name ci --scopes read,write --expires 90d
  $ keyrot create --tenant acme --name ci --allowed-ip 203.0.113.0/24 --allowed-ip 2001:db8::/32
  $ TOKEN=$(keyrot create --tenant acme --name ci --json | jq -r .token)
  $ keyrot create --tenant ops --name admin --scopes admin   # the first admin key for keyrot serve`,
  )
  command.action(async (flags: CreateFlags) => {
    await withKeyring(io, flags, 'create', async (keyring) => {
      const now = io.now()
      const { token, key } = await keyring.create({
        tenantId: flags.tenant,
        name: flags.name,
        ...(flags.scopes ? { scopes: flags.scopes } : {}),
        ...flags.expires,
        ...(flags.rateLimit ? { rateLimit: flags.rateLimit } : {}),
        ...(flags.prefix ? { prefix: flags.prefix } : {}),
        ...(flags.metadata ? { metadata: flags.metadata } : {}),
        ...(flags.credits !== undefined || flags.refill ? { credits: { remaining: flags.credits ?? flags.refill?.amount ?? 0, ...(flags.refill ? { refill: flags.refill } : {}) } } : {}),
        ...(flags.allowedIp ? { allowedIps: flags.allowedIp } : {}),
      })
      if (flags.json) {
        printJson(io, { token, key })
        return
      }
      printNewToken(
        io,
        token,
        `Created key ${key.id} for tenant ${key.tenantId} (${key.name}), scopes: ${key.scopes.join(',') || '(none)'}, expires: ${formatInstant(key.expiresAt, now)}.`,
      )
    })
  })
}
