import type { rotationUsageOf } from '../server/rotation-routes.js'
import { formatRelative } from './relative-time.js'
import { renderDetails, renderTable } from './table.js'

type RotationFigures = Awaited<ReturnType<typeof rotationUsageOf>>

const sum = (counts: readonly number[]) => counts.reduce((total, count) => total + count, 0)
const requests = (n: number) => `${n} ${n === 1 ? 'request' : 'requests'}`

/**
 * The rotation block of `keyrot inspect`: old-key and new-key requests over
 * the window and the clients still on the old key, as every replica counted
 * them through the shared store.
 */
export function renderRotationUsage(figures: RotationFigures, minutes: number): string {
  const { oldKey, newKey, now } = figures
  const details = renderDetails([
    ['Rotation', `last ${minutes} min, every replica (through the store)${figures.scope === 'unavailable' ? ': this store keeps no rotation telemetry' : ''}`],
    ['Old key', `${oldKey.keyId}: ${requests(sum(oldKey.counts))}, last ${formatRelative(oldKey.lastUsedAt, now)}`],
    ['New key', newKey === null ? undefined : `${newKey.keyId}: ${requests(sum(newKey.counts))}, last ${formatRelative(newKey.lastUsedAt, now)}`],
    ['End grace', figures.endGraceWarning ?? 'no replica served the old key in the last 15 minutes'],
    ['Clients', `${oldKey.clients.length + oldKey.omittedClients} still on the old key${oldKey.omittedClients > 0 ? ` (${oldKey.omittedClients} not listed)` : ''}`],
  ])
  const clients =
    oldKey.clients.length === 0
      ? ''
      : renderTable(
          ['CLIENT IP', 'USER AGENT', 'REQUESTS', 'LAST SEEN'],
          oldKey.clients.map((client) => [client.clientIp ?? '(unknown)', client.userAgent ?? '(none)', String(client.requests), formatRelative(client.lastSeenAt, now)]),
        )
  return `${details}${clients}(${figures.caveat})\n`
}
