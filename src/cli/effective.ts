/**
 * A route's effective policy: its options with every default resolved from the gateway's
 * configuration, as the plugins apply them. Used by `portcullis routes`, `check` and `diff`.
 */
import type { GatewayConfig } from '../config.js'
import type { RoutePlugin } from '../route.js'
import { DEFAULT_METHODS, DEFAULT_TIMEOUT_MS } from '../../plugins/proxy/route.js'
import { windowMs } from '../../plugins/rate-limit/schema.js'

export interface EffectiveRoute {
  readonly file: string
  /** Host names the route answers (empty: any host). */
  readonly hosts: readonly string[]
  readonly prefix: string
  readonly methods: readonly string[]
  readonly upstreams: readonly string[]
  readonly rewritePrefix: string | undefined
  /** `false` = public; otherwise the strategies that authenticate (every configured one by default) and the required scopes. */
  readonly auth: false | { readonly strategies: readonly string[], readonly scopes: readonly string[], readonly relation: string }
  readonly rateLimit: false | { readonly max: number, readonly window: string, readonly windowMs: number, readonly keyBy: 'consumer' | 'ip', readonly algorithm: string, readonly burst: number, readonly store: 'memory' | 'redis' }
  readonly inspect: false | { readonly mode: 'block' | 'detect', readonly body: boolean, readonly exclude: readonly string[] }
  /** The API contract: the document as written in the route, its mode, responses and unknown operations. */
  readonly openapi: false | { readonly spec: string, readonly mode: 'block' | 'detect', readonly responses: 'off' | 'detect' | 'block', readonly unknownOperations: 'refuse' | 'pass' }
  readonly body: { readonly limit: number, readonly handling: 'streamed' | 'buffered' }
  readonly timeouts: { readonly connectMs: number, readonly headersMs: number, readonly bodyIdleMs: number }
  readonly retries: number
  readonly websocket: boolean
  readonly cors: false | { readonly origins: readonly string[], readonly credentials: boolean }
  readonly ipFilter: { readonly allow: readonly string[], readonly deny: readonly string[] }
  readonly maxInFlight: number | undefined
}

/** The strategies the gateway has configured (what an omitted `auth.strategies` means). */
export function configuredStrategies (config: GatewayConfig): string[] {
  const s: string[] = []
  if (config.auth.jwtSecret !== undefined || config.auth.jwtPublicKey !== undefined || config.auth.jwksUrl !== undefined) s.push('jwt')
  if (config.auth.apiKeys.length > 0 || config.auth.apiKeysFile !== undefined) s.push('apiKey')
  return s
}

export function effectiveRoute (route: RoutePlugin, config: GatewayConfig): EffectiveRoute {
  const o = route.routeOptions
  const t = o.timeout
  const auth = o.auth === false
    ? false as const
    : {
        strategies: o.auth?.strategies ?? configuredStrategies(config),
        scopes: o.auth?.scopes ?? [],
        relation: o.auth?.relation ?? 'any'
      }
  const rl = o.rateLimit ?? { max: config.rateLimit.max, timeWindow: config.rateLimit.timeWindow }
  const rateLimit = rl === false
    ? false as const
    : {
        max: rl.max,
        window: String(rl.timeWindow),
        windowMs: windowMs(rl.timeWindow),
        keyBy: (rl.keyBy ?? (auth === false ? 'ip' : 'consumer')),
        algorithm: rl.algorithm ?? 'fixed',
        burst: rl.burst ?? 0,
        store: config.rateLimit.redisUrl !== undefined ? 'redis' as const : 'memory' as const
      }
  const ins = o.inspect ?? { mode: config.inspect.mode }
  const inspect = ins === false
    ? false as const
    : { mode: ins.mode ?? 'block', body: ins.body === true, exclude: [...(ins.exclude ?? []).map((e) => `${e.rule} on ${e.field}`), ...(ins.detect ?? []).map((id) => `${id} in detect mode`)] }
  return {
    file: route.routeFile,
    hosts: o.host === undefined ? [] : typeof o.host === 'string' ? [o.host] : [...o.host],
    prefix: o.prefix,
    methods: o.methods ?? DEFAULT_METHODS,
    upstreams: Array.isArray(o.upstream) ? o.upstream : [o.upstream],
    rewritePrefix: o.rewritePrefix,
    auth,
    rateLimit,
    inspect,
    openapi: o.openapi === undefined || o.openapi === false
      ? false
      : { spec: o.openapi.spec, mode: o.openapi.mode ?? 'block', responses: o.openapi.responses ?? 'off', unknownOperations: o.openapi.unknownOperations ?? 'refuse' },
    body: { limit: config.bodyLimit, handling: (inspect !== false && inspect.body) || (o.openapi !== undefined && o.openapi !== false) ? 'buffered' : 'streamed' },
    timeouts: {
      connectMs: typeof t === 'number' ? t : (t?.connectMs ?? DEFAULT_TIMEOUT_MS),
      headersMs: typeof t === 'number' ? t : (t?.headersMs ?? DEFAULT_TIMEOUT_MS),
      bodyIdleMs: typeof t === 'number' ? Math.max(t, DEFAULT_TIMEOUT_MS) : (t?.bodyIdleMs ?? DEFAULT_TIMEOUT_MS)
    },
    retries: o.retries ?? 1,
    websocket: o.websocket !== undefined && o.websocket !== false,
    cors: o.cors === undefined || o.cors === false ? false : { origins: o.cors.origins, credentials: o.cors.credentials === true },
    ipFilter: { allow: [...(o.ipFilter?.allow ?? [])], deny: [...(o.ipFilter?.deny ?? [])] },
    maxInFlight: o.maxInFlight
  }
}
