import type { RedisStore } from '@keyrot/redis'
import type { Command } from 'commander'
import { confirm } from '../confirm.js'
import type { CliIo } from '../io.js'
import { printable } from '../output/table.js'
import { registerStoreMigrate } from './store-migrate.js'
import type { StoreFlags } from '../store.js'
import { printJson, withJsonOption, withKeyring, withStoreOptions, type OutputFlags } from './shared.js'

/**
 * `keyrot store accept-reset`: the operator's step after Redis came back
 * empty or rolled back. Until it runs, the store refuses admin writes and
 * unknown keys answer 503 `KEYROT_STORE_RESET`, so nobody builds on a store
 * that lost data by accident (docs/redis.md#restarts-and-rollbacks).
 */
export function registerStore(program: Command, io: CliIo): void {
  const store = program.command('store').description('the shared key store itself')
  registerStoreMigrate(store, io)
  const command = store
    .command('accept-reset')
    .description('after Redis came back empty or rolled back: allow admin writes again (keys it lost stay lost: reissue them)')
    .option('-y, --yes', 'do not ask for confirmation (required when no terminal is attached)')
  withJsonOption(withStoreOptions(command))
  command.action(async (flags: StoreFlags & OutputFlags & { yes?: boolean }) => {
    await withKeyring(io, flags, 'store accept-reset', async (keyring) => {
      const redisStore = keyring.store as RedisStore
      // Takes the store's identity, which reads the shared reset flag.
      await redisStore.waitUntilReady()
      const reset = redisStore.pendingReset()
      if (reset === null) {
        if (flags.json) return printJson(io, { accepted: false, pending: false })
        io.stdout.write('No store reset is pending: nothing to accept.\n')
        return
      }
      await confirm(
        io,
        'store accept-reset',
        printable(`The store came back ${reset.cause === 'empty' ? 'empty' : 'rolled back'}: ${reset.detail}. Accept it and allow admin writes again?`),
        flags.yes,
      )
      await keyring.acceptStoreReset()
      if (flags.json) return printJson(io, { accepted: true, pending: false, cause: reset.cause, detail: reset.detail, at: reset.at })
      io.stdout.write(`${printable(`Accepted the store reset (${reset.cause}). Admin writes are allowed again on every replica; reissue the keys reported lost.`)}\n`)
    })
  })
}
