import { KeyrotError } from '../errors.js'
import type { TypedEmitter } from '../events.js'
import { errorFields } from '../logger.js'
import type { ResolvedKeyringOptions } from '../options.js'
import { FallbackRateLimiter } from '../rate-limit/fallback-limiter.js'
import type { RateLimiter } from '../rate-limit/limiter.js'
import { Circuit } from '../store/circuit.js'
import { newKeyId } from '../token/format.js'

/**
 * The circuit in front of the verify path's key reads. An outage opens it
 * (one `store.down` event and error log per outage, not one per request);
 * from then on reads fail at once and a background probe (a read of a key
 * id that cannot exist) closes it again (`store.up`). `onOpen` runs once per
 * outage too.
 */
export function openStoreCircuit(options: ResolvedKeyringOptions, events: TypedEmitter, onOpen: () => void): Circuit {
  const probeId = newKeyId()
  return new Circuit({
    clock: options.clock,
    // A refusal the store gave (a reset it detected, bad input) is an answer, not an outage.
    isOutage: (error) => !(error instanceof KeyrotError) || error.code === 'KEYROT_STORE_UNAVAILABLE',
    probe: () => options.store.get(probeId),
    onOpen: (error, at) => {
      const code = error instanceof KeyrotError ? error.code : 'KEYROT_STORE_UNAVAILABLE'
      options.logger.error({ event: 'store.down', code, ...errorFields(error) }, 'keyrot lost the key store; answering from confirmed states')
      events.emit('store.down', { code, at })
      onOpen()
    },
    onClose: (downtimeMs, at) => {
      options.logger.warn({ event: 'store.up', downtimeMs }, 'keyrot reaches the key store again')
      events.emit('store.up', { downtimeMs, at })
    },
  })
}

/**
 * The shared rate limiter with this replica's own counters behind it: when
 * the shared one cannot answer, limits keep working locally instead of
 * turning every request into a 503 (`ratelimit.fallback` start and end).
 */
export function fallbackLimiter(shared: RateLimiter, options: ResolvedKeyringOptions, events: TypedEmitter): FallbackRateLimiter {
  return new FallbackRateLimiter(shared, {
    clock: options.clock,
    onFallback: (at) => {
      options.logger.error({ event: 'ratelimit.fallback', phase: 'start' }, "keyrot lost the shared rate limiter; limits use this replica's counters")
      events.emit('ratelimit.fallback', { phase: 'start', downtimeMs: undefined, at })
    },
    onRecover: (downtimeMs, at) => {
      options.logger.warn({ event: 'ratelimit.fallback', phase: 'end', downtimeMs }, 'keyrot reaches the shared rate limiter again')
      events.emit('ratelimit.fallback', { phase: 'end', downtimeMs, at })
    },
  })
}
