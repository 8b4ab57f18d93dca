import { formatDuration, type KeyCredits } from '@keyrot/core'
import { InvalidArgumentError, type Command } from 'commander'
import type { CliIo } from '../io.js'
import { formatInstant } from '../output/relative-time.js'
import type { StoreFlags } from '../store.js'
import { printJson, withJsonOption, withKeyring, withStoreOptions, type OutputFlags } from './shared.js'

/** `--credits 1000`, `set <keyId> 1000`: a whole number of credits, 0 or more. */
export function parseCreditsArg(value: string): number {
  const n = /^\d{1,16}$/.test(value.trim()) ? Number(value.trim()) : Number.NaN
  if (!Number.isSafeInteger(n) || n > 1e15) throw new InvalidArgumentError('expected a whole number of credits from 0 to 1e15.')
  return n
}

/** `add <keyId> -50`: a whole number, negative to take credits away. */
export function parseCreditsDeltaArg(value: string): number {
  const match = /^(-?)(\d{1,16})$/.exec(value.trim())
  const n = match ? Number(match[2]) * (match[1] === '-' ? -1 : 1) : Number.NaN
  if (!Number.isSafeInteger(n) || Math.abs(n) > 1e15) throw new InvalidArgumentError('expected a whole number of credits, e.g. 500 or -50.')
  return n
}

/** `--refill 1000/1d`: top up to 1,000 credits every day. */
export function parseRefillArg(value: string): { amount: number; interval: string } {
  const match = /^(\d{1,16})\s*\/\s*(\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w))$/.exec(value.trim())
  if (!match) throw new InvalidArgumentError("expected <amount>/<interval>, such as '1000/1d' or '50/1h'.")
  return { amount: Number(match[1]), interval: match[2] as string }
}

/** A line for people: `740 credits left (family AbC...), refill to 1000 every 1d, next in 3h.` */
export function describeCredits(credits: KeyCredits | null, keyId: string, now: number): string {
  if (credits === null) return `Key ${keyId} has no credits: it is unlimited.`
  const refill = credits.refill ? `, refilled to ${credits.refill.amount} every ${formatDuration(credits.refill.intervalMs)}, next ${formatInstant(credits.nextRefillAt, now)}` : ', no refill'
  return `Key ${keyId}: ${credits.remaining} credit(s) left (shared by key family ${credits.familyId})${refill}.`
}

/** `keyrot credits show|set|add <keyId> ...`: the balance of a key's family. */
export function registerCredits(program: Command, io: CliIo): void {
  const credits = program.command('credits').description("show, set or add to the credits of a key (shared by every key rotated from one another)")
  const run = (name: string, work: (keyring: Parameters<Parameters<typeof withKeyring>[3]>[0], keyId: string) => Promise<KeyCredits | null>) =>
    async (keyId: string, flags: StoreFlags & OutputFlags) => {
      await withKeyring(io, flags, `credits ${name}`, async (keyring) => {
        const result = await work(keyring, keyId)
        if (flags.json) return printJson(io, { credits: result })
        io.stdout.write(`${describeCredits(result, keyId, io.now())}\n`)
      })
    }
  withJsonOption(withStoreOptions(credits.command('show').description('credits left and the next refill').argument('<keyId>', 'the key'))).action(
    run('show', (keyring, keyId) => keyring.credits(keyId)),
  )
  const set = withJsonOption(withStoreOptions(credits.command('set').description('set the credits left').argument('<keyId>', 'the key').argument('<credits>', 'the new balance', parseCreditsArg)))
  set.action(async (keyId: string, n: number, flags: StoreFlags & OutputFlags) => run('set', (keyring) => keyring.setCredits(keyId, n))(keyId, flags))
  const add = withJsonOption(
    withStoreOptions(credits.command('add').description('add credits (negative takes away, never below 0)').argument('<keyId>', 'the key').argument('<credits>', 'credits to add', parseCreditsDeltaArg)),
  )
  add.action(async (keyId: string, n: number, flags: StoreFlags & OutputFlags) => run('add', (keyring) => keyring.addCredits(keyId, n))(keyId, flags))
  credits.addHelpText(
    'after',
    `
Examples:
  $ keyrot create --tenant acme --name metered --credits 1000 --refill 1000/1d
  $ keyrot credits show <keyId>
  $ keyrot credits add <keyId> 500`,
  )
}
