export { apiKeyAuth } from './api-key-auth.js'
export type { ApiKeyAuthOptions } from './api-key-auth.js'
export { metricsHandler } from './metrics.js'
