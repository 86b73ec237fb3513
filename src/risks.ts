/**
 * Risky but valid choices in a configuration: the warnings `portcullis check` reports and the
 * gateway logs at startup (one function, so the two never disagree). Each names where the
 * choice is made and how to undo it.
 */
import type { GatewayConfig } from './config.js'
import type { RoutePlugin } from './route.js'
import { effectiveRoute, type EffectiveRoute } from './cli/effective.js'

export interface RiskWarning {
  /** Stable identifier (for `--json` consumers and allow-lists). */
  readonly id: string
  /** The route file, or the environment variable. */
  readonly source: string
  /** The option (`inspect`, `rateLimit.keyBy`) or variable concerned. */
  readonly option: string
  readonly message: string
  readonly fix: string
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

function origin (url: string): string {
  const u = new URL(url)
  return `${u.protocol}//${u.host}`
}

function where (r: EffectiveRoute): string {
  return `${r.file} (prefix ${r.prefix})`
}

function routeWarnings (routes: readonly EffectiveRoute[]): RiskWarning[] {
  const out: RiskWarning[] = []
  const protectedByOrigin = new Map<string, EffectiveRoute>()
  for (const r of routes) {
    if (r.auth !== false) for (const u of r.upstreams) if (!protectedByOrigin.has(origin(u))) protectedByOrigin.set(origin(u), r)
  }
  for (const r of routes) {
    if (r.auth === false) {
      const shared = r.upstreams.map((u) => protectedByOrigin.get(origin(u))).find((p) => p !== undefined)
      if (shared !== undefined) {
        out.push({
          id: 'public-route-shares-upstream',
          source: r.file,
          option: 'auth',
          message: `public route ${r.prefix} proxies to ${origin(r.upstreams[0] as string)}, which protected route ${shared.prefix} (${shared.file}) also reaches: anything the upstream serves under both paths is reachable without credentials`,
          fix: 'point the public route at a separate service, or make sure the upstream serves nothing protected under its path'
        })
      }
    }
    const takesBodies = r.methods.some((m) => BODY_METHODS.has(m))
    if (takesBodies && r.inspect === false) {
      out.push({ id: 'inspection-off', source: r.file, option: 'inspect', message: `${where(r)} accepts request bodies and has inspection turned off`, fix: 'remove `inspect: false`, or exclude the one rule that misfires (`inspect.exclude`)' })
    } else if (takesBodies && r.inspect !== false && r.inspect.mode === 'detect') {
      out.push({ id: 'inspection-detect', source: r.file, option: 'inspect.mode', message: `${where(r)} accepts request bodies and inspection only detects (attacks are logged, not blocked)`, fix: "set `inspect: { mode: 'block' }` once the logs show no false positives" })
    }
    if (r.auth !== false && r.rateLimit !== false && r.rateLimit.keyBy === 'ip') {
      out.push({ id: 'rate-limit-by-ip-on-authenticated-route', source: r.file, option: 'rateLimit.keyBy', message: `${where(r)} is authenticated but its limit counts per client IP: one consumer behind many addresses is not limited, many consumers behind one NAT share one budget`, fix: "remove `keyBy: 'ip'` (per consumer is the default on authenticated routes)" })
    }
    if (r.cors !== false && r.cors.credentials) {
      out.push({ id: 'cors-credentials', source: r.file, option: 'cors.credentials', message: `${where(r)} lets ${r.cors.origins.join(', ')} send cookies and credentials cross-origin`, fix: 'keep the origin list to sites you control, or drop `credentials: true`' })
    }
  }
  return out
}

function environmentRisks (config: GatewayConfig): RiskWarning[] {
  const out: RiskWarning[] = []
  const env = (variable: string, message: string, fix: string, id: string): void => { out.push({ id, source: variable, option: variable, message, fix }) }
  if (config.upstreamTls.insecure) env('UPSTREAM_TLS_INSECURE', 'certificates of https upstreams are not verified', 'remove it and set UPSTREAM_CA_FILE to the CA that signed the upstreams', 'upstream-tls-insecure')
  const jwt = config.auth.jwtSecret !== undefined || config.auth.jwtPublicKey !== undefined || config.auth.jwksUrl !== undefined
  if (jwt && config.auth.audience === undefined) env('JWT_AUDIENCE', 'JWTs are accepted without an audience check: a token issued for another service of the same issuer works here', 'set JWT_AUDIENCE to this API\'s audience', 'jwt-no-audience')
  if (jwt && config.auth.issuer === undefined && config.auth.jwksUrl !== undefined) env('JWT_ISSUER', 'JWTs are accepted without an issuer check', 'set JWT_ISSUER', 'jwt-no-issuer')
  if (jwt && config.auth.maxLifetimeS === undefined) env('JWT_MAX_LIFETIME_S', 'tokens of any lifetime are accepted (a leaked long-lived token stays valid)', 'set JWT_MAX_LIFETIME_S (for example 3600)', 'jwt-no-max-lifetime')
  if (config.rateLimit.redisUrl !== undefined && config.rateLimit.failureMode === 'open') env('REDIS_FAILURE_MODE', 'with Redis unreachable, rate limits admit every request (fail open)', 'set REDIS_FAILURE_MODE=closed unless availability matters more than the limits', 'redis-fail-open')
  if (config.inspect.mode === 'detect') env('INSPECT_MODE', 'routes without their own `inspect` only detect attacks (logged, not blocked)', 'set INSPECT_MODE=block', 'inspect-mode-detect')
  if (config.pathCheck === 'literal') env('PATH_CHECK', 'paths that backends read as another route (case, `;`, trailing dots) are not refused', 'set PATH_CHECK=strict unless every backend matches paths literally', 'path-check-literal')
  return out
}

/** Every risky choice in the configuration and its routes. */
export function riskWarnings (config: GatewayConfig, routes: readonly RoutePlugin[]): RiskWarning[] {
  return [...environmentRisks(config), ...routeWarnings(routes.map((r) => effectiveRoute(r, config)))]
}
