#!/usr/bin/env node
import { runCli } from './program.js'

// `keyrot list | head -1`: the reader went away; stop quietly instead of
// crashing with an EPIPE stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error
    process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0)
  })
}

runCli(process.argv.slice(2)).then(
  (code) => {
    // Let the event loop drain (stdout to a pipe is asynchronous) rather than exit at once.
    process.exitCode = code
  },
  (error: unknown) => {
    process.stderr.write(`keyrot: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exitCode = 1
  },
)
