import {
  createLeakReportHandler,
  LEAK_PROVIDERS,
  type Keyring,
  type LeakAction,
  type LeakActionRules,
  type LeakProvider,
  type Logger,
  type PublicKeySource,
} from '@keyrot/core'
import { leakReportRoute } from '@keyrot/express'
import type { Request, Response } from 'express'
import { z } from 'zod'
import { defineRoute, type RouteSpec } from './route-spec.js'
import { emptyObject, errorSchema } from './schemas.js'

/**
 * The leak-report routes of `keyrot serve` (docs/leak-response.md):
 * `POST /v1/leak-reports/github` and `POST /v1/leak-reports/gitlab`. They
 * need no API key (the provider's signature is the authentication), are
 * rate-limited per client IP, and refuse a body over `maxBodyBytes` from
 * `Content-Length` before reading it.
 */
export interface LeakRoutesOptions {
  /** Where GitHub's public keys come from. Default: GitHub's published URL. `false`: no GitHub route. */
  github?: PublicKeySource | false
  /** Where GitLab's public keys come from. No default: without it there is no GitLab route. */
  gitlab?: PublicKeySource | false
  /** What to do with a leaked key. Default `'revoke'`. (`emergencyRotate` needs a way to hand over the successor: use the library.) */
  action?: Exclude<LeakAction, 'emergencyRotate'> | LeakActionRules
  /** Reports accepted per client IP per minute, valid or not. Default 120. */
  perMinute?: number
  /** Largest report body, in bytes. Default 1 MiB. */
  maxBodyBytes?: number
  /** Fetch for the keys URLs. Default: the global one. */
  fetch?: typeof fetch
}

const ACTIONS = ['revoke', 'notify']

/**
 * Reads the routes' settings from the environment: `KEYROT_GITHUB_KEYS_URL`
 * (default GitHub's URL), `KEYROT_GITLAB_KEYS_URL` (required for the GitLab
 * route), `KEYROT_LEAK_ACTION` (`revoke` or `notify`). Throws a TypeError
 * naming the variable for a bad value.
 */
export function leakRoutesFromEnv(env: NodeJS.ProcessEnv): LeakRoutesOptions {
  const action = env.KEYROT_LEAK_ACTION
  if (action !== undefined && action !== '' && !ACTIONS.includes(action)) {
    throw new TypeError(`KEYROT_LEAK_ACTION must be one of ${ACTIONS.join(', ')}; got ${JSON.stringify(action)}`)
  }
  return {
    github: env.KEYROT_GITHUB_KEYS_URL || LEAK_PROVIDERS.github.defaultKeysUrl,
    gitlab: env.KEYROT_GITLAB_KEYS_URL || false,
    ...(action ? { action: action as 'revoke' | 'notify' } : {}),
  }
}

/** A fixed one-minute window per client IP, bounded in memory: enough to keep a flood of forged reports off the keys fetcher and the store. */
function perIpLimit(perMinute: number): (req: Request, res: Response) => boolean {
  const windows = new Map<string, { start: number; count: number }>()
  return function admitLeakReport(req, res) {
    const now = Date.now()
    const ip = req.ip ?? req.socket.remoteAddress ?? 'unknown'
    let window = windows.get(ip)
    if (!window || now - window.start >= 60_000) {
      // Bounded: past 10,000 addresses the windows start over (a flood from that many addresses is the network's to stop).
      if (windows.size >= 10_000) windows.clear()
      windows.set(ip, (window = { start: now, count: 0 }))
    }
    if (++window.count <= perMinute) return true
    const retryAfter = Math.max(1, Math.ceil((window.start + 60_000 - now) / 1000))
    res.status(429).set({ 'retry-after': String(retryAfter), 'cache-control': 'no-store' })
    res.json({ error: { code: 'KEYROT_RATE_LIMITED', message: 'Too many requests.' } })
    return false
  }
}

const labels = z
  .array(
    z.object({
      token_hash: z.string().describe('SHA-256 (hex) of the reported token.'),
      token_type: z.string().describe('The type the provider reported.'),
      label: z.enum(['true_positive', 'false_positive']),
    }),
  )
  .describe('One entry per reported token, in order.')

/**
 * The configured leak-report routes, as route specs: the server registers
 * them and the OpenAPI document lists them. Each reads the raw body itself
 * (the signature covers the exact bytes), after the per-IP limit.
 */
export function leakRoutes(keyring: Keyring, options: LeakRoutesOptions, logger: Logger): RouteSpec[] {
  const perMinute = options.perMinute ?? 120
  if (!Number.isSafeInteger(perMinute) || perMinute < 1) throw new TypeError('leakReports.perMinute must be a positive integer')
  const admit = perIpLimit(perMinute)
  const routes: RouteSpec[] = []
  for (const provider of ['github', 'gitlab'] as const) {
    const keys = options[provider]
    if (keys === undefined || keys === false) continue
    const handler = createLeakReportHandler({
      keyring,
      provider,
      keys,
      logger,
      ...(options.action === undefined ? {} : { action: options.action }),
      ...(options.maxBodyBytes === undefined ? {} : { maxBodyBytes: options.maxBodyBytes }),
      ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
    })
    const route = leakReportRoute(handler)
    routes.push(
      defineRoute({
        method: 'post',
        path: `/v1/leak-reports/${provider}`,
        operationId: `leakReport${provider === 'github' ? 'GitHub' : 'GitLab'}`,
        summary: `Leak reports from ${provider === 'github' ? "GitHub's secret scanning partner program" : "GitLab's secret detection partner API"}: signed by the provider (no API key); live keys found are acted on (docs/leak-response.md).`,
        auth: 'none',
        query: emptyObject,
        responses: {
          200: { description: 'The labels.', schema: labels },
          400: { description: 'A signed body that is not a batch of tokens.', schema: errorSchema },
          401: { description: 'Missing, unknown or wrong provider signature: nothing was read.', schema: errorSchema },
          413: { description: 'Body over the limit (1 MiB).', schema: errorSchema },
          429: { description: 'Too many reports from this address.', schema: errorSchema },
          503: { description: "The provider's keys cannot be fetched, or the store is down: retry.", schema: errorSchema },
        },
        async handler({ req, res }) {
          if (!admit(req, res)) return
          await new Promise<void>((resolve, reject) => {
            res.once('finish', () => resolve())
            void route(req, res, (error?: unknown) => (error ? reject(error) : resolve()))
          })
        },
      }),
    )
  }
  return routes
}
