import type { BenchRedis } from './redis-server.js'
import type { Profile } from './profile.js'
import type { Check, Table } from './table.js'

/** What one section hands back: printed tables, checked targets and raw figures for the JSON file. */
export interface SectionReport {
  id: SectionId
  title: string
  tables: Table[]
  checks: Check[]
  /** Paragraphs printed after the tables: where the time goes, caveats. */
  notes: string[]
  data: unknown
  elapsedMs?: number
  /** The machine's 1-minute load average before and after the section (other work on the machine skews figures). */
  loadAverage?: { before: number; after: number }
}

export const SECTION_IDS = ['verify', 'http', 'peers', 'propagation', 'memory', 'argon2', 'proofs', 'credits', 'policy', 'allowlist-import'] as const
export type SectionId = (typeof SECTION_IDS)[number]

export interface RunContext {
  profile: Profile
  redis: BenchRedis
  /** Largest key count of the scale runs (`--max-keys`). */
  maxKeys: number
  /** HTTP section: only these frameworks (`--frameworks`); `undefined`: all. */
  frameworks?: readonly string[]
  log(message: string): void
}
