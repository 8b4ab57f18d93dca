import { MemoryRateLimiter } from '@keyrot/core'
import { describeRateLimiterContract } from './rate-limiter-contract.js'

// One process: the limiter and its "peer" are the same object.
describeRateLimiterContract('MemoryRateLimiter', async () => {
  const limiter = new MemoryRateLimiter()
  return { limiter, peer: limiter }
})
