import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import { CliError } from '../exit-codes.js'
import type { CliIo } from '../io.js'
import { parseDurationArg } from '../parse.js'

/**
 * The rotation demo lives in the repository (examples/rotation-demo), not in
 * the published package: it is a private workspace package, so the CLI runs
 * its built entry point from a checkout rather than depending on it.
 */
export function demoEntry(): { entry: string; sources: string } {
  return {
    entry: fileURLToPath(new URL('../../../examples/rotation-demo/dist/index.js', import.meta.url)),
    sources: fileURLToPath(new URL('../../../examples/rotation-demo/src/index.ts', import.meta.url)),
  }
}

export function registerDemo(program: Command, io: CliIo): void {
  // Published without the demo (it lives in the repository): keep the command,
  // which says where to find it, but out of the help.
  program
    .command('demo', { hidden: !existsSync(demoEntry().sources) })
    .description('run the rotation demo: clients keep calling an API while its key is rotated and then leaked; checks that no valid request failed')
    .option('--grace <duration>', "grace period of the rotation, at least 1s (default: 10s)", parseDurationArg)
    .option('--quiet', "print a client's request only when its outcome changes")
    .addHelpText('after', '\nRuns from a keyrot checkout after `npm run build` (examples/rotation-demo). Needs no Redis.\nExit codes: 0 every check passed, 1 a check failed, 2 bad usage.')
    .action(async (flags: { grace?: number; quiet?: boolean }) => {
      const { entry, sources } = demoEntry()
      if (!existsSync(entry)) {
        throw new CliError(
          existsSync(sources)
            ? 'the rotation demo is not built: run `npm run build` (or `npm run demo`) at the root of the keyrot checkout first'
            : 'the rotation demo ships with the keyrot repository, not with the published package: clone it and run `npm run demo`',
        )
      }
      const args = [entry]
      if (flags.grace !== undefined) args.push('--grace', `${flags.grace}ms`)
      if (flags.quiet) args.push('--quiet')
      const code = await new Promise<number>((resolve, reject) => {
        const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
        child.stdout.on('data', (chunk: Buffer) => io.stdout.write(chunk.toString()))
        child.stderr.on('data', (chunk: Buffer) => io.stderr.write(chunk.toString()))
        const forward = (signal: NodeJS.Signals) => child.kill(signal)
        process.on('SIGINT', forward)
        process.on('SIGTERM', forward)
        child.on('error', reject)
        child.on('close', (status, signal) => {
          process.off('SIGINT', forward)
          process.off('SIGTERM', forward)
          resolve(status ?? (signal ? 1 : 0))
        })
      })
      if (code !== 0) throw new CliError(`the rotation demo failed (exit ${code})`, { exitCode: code === 2 ? 2 : 1, code: 'KEYROT_CLI_DEMO_FAILED' })
    })
}
