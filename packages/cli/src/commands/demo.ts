import type { Command } from 'commander'
import { CliError } from '../exit-codes.js'
import type { CliIo } from '../io.js'

export function registerDemo(program: Command, _io: CliIo): void {
  program
    .command('demo')
    .description('run the rotation demo: a client keeps calling an API while its key is rotated, with no failed request')
    .allowUnknownOption()
    .action(async () => {
      throw new CliError('the rotation demo is not available in this build')
    })
}
