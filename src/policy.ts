/**
 * Typed route policies for host apps: `routePolicy()` returns its argument unchanged, but its
 * parameter type rejects wrong policy at compile time (a public route counted per consumer, an
 * unknown auth strategy, misspelt keys). The plugins still validate every policy at registration.
 */
import type { AuthPolicy } from '../plugins/auth/schema.js'
import type { RateLimitPolicy, RateLimitRouteConfig } from '../plugins/rate-limit/schema.js'
import type { InspectRouteConfig } from '../plugins/inspect/schema.js'
import type { OpenApiRouteConfig } from '../plugins/openapi/schema.js'

/** Rate limit of a public route: there is no consumer, so it can only count per client IP. */
export type PublicRateLimitConfig = false | (Omit<RateLimitPolicy, 'keyBy'> & { keyBy?: 'ip' })

/** Policy of a public route (`auth: false`). */
export interface PublicRoutePolicy {
  auth: false
  rateLimit?: PublicRateLimitConfig
  inspect?: InspectRouteConfig
  /** The route's OpenAPI contract; a relative `spec` path is read from the working folder. */
  openapi?: OpenApiRouteConfig
}

/** Policy of an authenticated route (`auth` omitted means every configured strategy). */
export interface ProtectedRoutePolicy {
  auth?: AuthPolicy
  rateLimit?: RateLimitRouteConfig
  inspect?: InspectRouteConfig
  /** The route's OpenAPI contract; a relative `spec` path is read from the working folder. */
  openapi?: OpenApiRouteConfig
}

/** A route's `config` policy: public or protected. */
export type RoutePolicy = PublicRoutePolicy | ProtectedRoutePolicy

/**
 * Identity helper for a host route's `config`, e.g.
 * `config: routePolicy({ auth: { strategies: ['apiKey'] }, rateLimit: { max: 3, timeWindow: '1 minute' } })`.
 */
export function routePolicy<P extends RoutePolicy> (policy: P): P {
  return policy
}
