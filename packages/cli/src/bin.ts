#!/usr/bin/env node
import { runCli } from './program.js'

runCli(process.argv.slice(2)).then(
  (code) => {
    // Long-running commands (serve) set their own exit code when they stop.
    process.exitCode = code
  },
  (error: unknown) => {
    process.stderr.write(`keyrot: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exitCode = 1
  },
)
