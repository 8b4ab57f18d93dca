import { readFileSync } from 'node:fs'
import { availableParallelism, cpus, release, totalmem } from 'node:os'

export interface Machine {
  cpuModel: string
  cores: number
  memoryGiB: number
  node: string
  kernel: string
  redis: string
}

/** What the figures were measured on. */
export function describeMachine(redisVersion: string): Machine {
  let cpuModel = cpus()[0]?.model ?? 'unknown'
  try {
    cpuModel = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpuModel
  } catch {
    // not Linux: keep os.cpus()
  }
  return {
    cpuModel,
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 1024 ** 3),
    node: process.version,
    kernel: release(),
    redis: redisVersion,
  }
}
