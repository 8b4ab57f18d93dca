import type { Keyring } from '@keyrot/core'
import type { RouteSpec } from '../server/route-spec.js'
import { pageRoutes } from './page.js'
import { usageRoutes } from './routes.js'
import { UsageTracker, type UsageTrackerOptions } from './usage-tracker.js'

/** Options of the operator dashboard; see `UsageTrackerOptions` for the memory bounds. */
export type DashboardOptions = UsageTrackerOptions

export interface Dashboard {
  /** Per-minute counts and grace-period clients, fed by the keyring's events. */
  tracker: UsageTracker
  /**
   * The page (`/dashboard/`, public: it holds no data) and the admin routes
   * it reads besides the admin API (`/v1/keys/:id/usage`, `/v1/keys/:id/grace-clients`).
   */
  routes: RouteSpec[]
}

/**
 * The operator dashboard: a static page (HTML, one JavaScript module, CSS)
 * that signs in with an admin key and drives the admin API, plus the two
 * usage routes it draws rotations with. It starts counting requests now.
 */
export function createDashboard(keyring: Keyring, options: DashboardOptions = {}): Dashboard {
  const tracker = new UsageTracker(keyring.clock.now(), options)
  tracker.attach(keyring)
  return { tracker, routes: [...pageRoutes(), ...usageRoutes(tracker)] }
}

export { UsageTracker } from './usage-tracker.js'
export type { UsageTrackerOptions, GraceClient, PerMinuteUsage } from './usage-tracker.js'
export { DASHBOARD_CSP } from './page.js'
