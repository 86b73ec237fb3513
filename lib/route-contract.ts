/**
 * The parts of a route's Fastify `config` that more than one plugin reads, and what a proxied
 * request carries for the access log. Each plugin declares its own policy key (`auth`,
 * `rateLimit`, `inspect`, `cors`, `ipFilter`); the keys here are written by one plugin and read
 * by others:
 *
 * - `config.proxy`: set by the proxy on proxied routes; the metrics and the access log label a
 *   request by its route prefix.
 * - `config.websocket`: set by the proxy; the request guard lets an Upgrade through only there.
 * - `request[kUpstreamTarget]`: the upstream target a request went to, set by the proxy, read by
 *   the access log.
 */

/** Proxy settings of a route, on `config.proxy`. */
export interface ProxyRouteInfo {
  /** The route's public prefix (`/api/orders`). */
  readonly prefix: string
}

/** The upstream target a proxied request was sent to, as the access log reads it. */
export interface UpstreamTargetInfo {
  /** `host:port` of the target. */
  readonly host: string
}

/** Set on the request by the proxy when it picks a target. */
export const kUpstreamTarget: unique symbol = Symbol('portcullis.target')

/** Response headers of the CORS protocol (Fetch standard); the gateway owns all of them. */
export const CORS_RESPONSE_HEADERS = [
  'access-control-allow-origin', 'access-control-allow-credentials', 'access-control-allow-methods',
  'access-control-allow-headers', 'access-control-expose-headers', 'access-control-max-age',
  'access-control-allow-private-network'
] as const

/** How a route's policies read in the proxy's route summary (startup log line, route table). */
export interface RoutePolicySummary {
  /** `public`, or the strategies (`jwt|apiKey`, `any configured`) and ` scopes=a,b`. */
  readonly auth: string
  /** `off`, or `<max>/<window>`. */
  readonly rateLimit: string
  /** `off`, or the mode, with `+body` when bodies are inspected. */
  readonly inspect: string
  /** `off`, or the API contract's mode (`block`, `detect`). */
  readonly openapi: string
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Accept WebSocket upgrades on this route (set by the proxy, read by the request guard). */
    websocket?: boolean
    /** Set by the proxy on proxied routes. */
    proxy?: ProxyRouteInfo
  }
  interface FastifyRequest {
    /** Set by the proxy when it picks a target for the request (null or absent on requests not proxied). */
    [kUpstreamTarget]?: UpstreamTargetInfo | null
  }
}

/** The per-route limit of routes that set none (RATE_LIMIT_MAX per RATE_LIMIT_WINDOW; the proxy's `defaultRateLimit`). */
export const DEFAULT_ROUTE_RATE_LIMIT = Object.freeze({ max: 100, timeWindow: '1 minute' })

/** Inspection modes (INSPECT_MODE, `inspect.mode`, the proxy's `defaultInspectMode`). */
export const INSPECT_MODES = ['block', 'detect'] as const
export const DEFAULT_INSPECT_MODE = 'block'
