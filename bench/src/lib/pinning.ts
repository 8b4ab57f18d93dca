import { execFileSync } from 'node:child_process'
import { cpus } from 'node:os'

/**
 * CPU pinning for the HTTP runs: the app process on one core, the load
 * generator (this process) on another, so neither steals the other's core
 * and server CPU per request is not inflated by migrations. Uses `taskset`
 * (util-linux) on every thread of the process (`-a`). Without `taskset` or
 * with fewer than two cores nothing is pinned and `pinned` says so.
 */

let available: boolean | undefined

function tasksetWorks(): boolean {
  if (available === undefined) {
    try {
      execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' })
      available = cpus().length >= 2
    } catch {
      available = false
    }
  }
  return available
}

/** The cores used: the app on `server`, the load generator on `client`. */
export const CORES = { server: 0, client: 1 } as const

/** Pins every thread of `pid` to `core` (a list such as `0-1` undoes it); false when pinning is not possible. */
export function pin(pid: number, core: number | string): boolean {
  if (!tasksetWorks()) return false
  try {
    execFileSync('taskset', ['-a', '-p', '-c', String(core), String(pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Every core of the machine, as a taskset list: to undo a pin (not `availableParallelism()`, which a pin narrows). */
export function allCores(): string {
  return `0-${cpus().length - 1}`
}
