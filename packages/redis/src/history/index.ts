export { RedisHistoryLog } from './redis-history-log.js'
export type { RedisHistoryLogOptions } from './redis-history-log.js'
export { HISTORY_SCRIPTS } from './scripts.js'
export { encodeHistoryEntry, decodeHistoryItem } from './codec.js'
