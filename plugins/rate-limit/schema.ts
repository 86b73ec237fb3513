/**
 * Route-level `rateLimit` policy schema (read by the rate-limit plugin from the route's
 * `config.rateLimit`), and the options of the two rate-limit plugins (per-IP tier, per-route tier).
 */
import { Type, type Static } from '@sinclair/typebox'

const WINDOW_PATTERN = '^\\s*\\d+\\s*(ms|s|sec|second|seconds|m|min|minute|minutes|h|hour|hours|d|day|days)?\\s*$'
/** What a window must look like, in words (used instead of the pattern in messages). */
const WINDOW_WORDS = 'must be a duration such as "1 minute", "30s" or 60000 (milliseconds)'

export const TimeWindowSchema = Type.Union([
  Type.Integer({ minimum: 1, description: 'Window length in milliseconds.' }),
  Type.String({ pattern: WINDOW_PATTERN, patternMessage: WINDOW_WORDS, description: 'Window as text, e.g. `1 minute`, `30s`, `60000` (ms).' })
], { description: 'Length of the window: milliseconds, or text such as `1 minute`, `30s`; 1 ms to 1 day.' })

export const RateLimitPolicySchema = Type.Object({
  max: Type.Integer({ minimum: 1, description: 'Requests admitted per window and key.' }),
  timeWindow: TimeWindowSchema,
  keyBy: Type.Optional(Type.Union([Type.Literal('consumer'), Type.Literal('ip')], {
    description: 'Count per authenticated consumer (default; by IP on public routes) or per client IP.'
  })),
  algorithm: Type.Optional(Type.Union([Type.Literal('fixed'), Type.Literal('gcra')], {
    description: '`fixed` (default): a counter per fixed window, so up to twice `max` can pass across a window boundary. `gcra`: a token bucket that admits one request per `timeWindow / max` plus `burst` ahead of that pace, so no span of one window admits more than `max + burst`.'
  })),
  burst: Type.Optional(Type.Integer({
    minimum: 0,
    maximum: 1_000_000,
    description: 'With `algorithm: \'gcra\'` only: requests admitted ahead of the steady pace (a fresh client may send `burst + 1` at once). Default 0.'
  }))
}, { additionalProperties: false })
export type RateLimitPolicy = Static<typeof RateLimitPolicySchema>

export const RateLimitRouteConfigSchema = Type.Union([Type.Literal(false), RateLimitPolicySchema], {
  description: '`false` disables the per-route limit; omitted uses the gateway default.'
})
export type RateLimitRouteConfig = Static<typeof RateLimitRouteConfigSchema>

const UNIT_MS: Record<string, number> = {
  '': 1,
  ms: 1,
  s: 1000,
  sec: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000
}
const WINDOW_RE = /^\s*(\d+)\s*([a-z]*)\s*$/

/** A validated time window in milliseconds (0 when the text does not parse). */
export function windowMs (window: number | string): number {
  if (typeof window === 'number') return window
  const m = WINDOW_RE.exec(window)
  const unit = m === null ? undefined : UNIT_MS[m[2]]
  return m === null || unit === undefined ? 0 : Number(m[1]) * unit
}

/** Largest window: a day (a longer one is almost certainly a unit mistake). */
export const MAX_WINDOW_MS = 86_400_000

/**
 * Rules shared with the environment (src/config-schema.ts): each is written once, here, and used
 * by both the plugin options and the variable that feeds them.
 */
export { DEFAULT_ROUTE_RATE_LIMIT } from '../../lib/route-contract.js'
/** Default per-IP limit (IP_RATE_LIMIT_MAX per IP_RATE_LIMIT_WINDOW). */
export const DEFAULT_IP_RATE_LIMIT = Object.freeze({ max: 1000, timeWindow: '1 minute' })
/** A Redis URL (REDIS_URL, `redisUrl`). */
export const REDIS_URL_PATTERN = '^rediss?://'
/** Bound on one Redis command, ms (REDIS_TIMEOUT_MS, `redisTimeoutMs`). */
export const REDIS_TIMEOUT_MS = Object.freeze({ minimum: 10, maximum: 10_000, default: 200 })
/** Prefix of every Redis key (REDIS_KEY_PREFIX, `keyPrefix`). */
export const REDIS_KEY_PREFIX = Object.freeze({ pattern: '^[A-Za-z0-9:._-]{1,100}$', default: 'portcullis:rl:' })
/** What the per-route tier does while Redis fails (REDIS_FAILURE_MODE, `failureMode`). */
export const FAILURE_MODES = ['closed', 'open'] as const
export const DEFAULT_FAILURE_MODE = 'closed'

/** `host:port` of a Sentinel or Cluster node (IPv6 in brackets, `[::1]:26379`). */
export const HOST_PORT_PATTERN = '^(?:\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9._-]+):[0-9]{1,5}$'

function NodeListSchema (description: string) {
  return Type.Array(
    Type.String({ pattern: HOST_PORT_PATTERN, patternMessage: 'must be host:port' }),
    { minItems: 1, maxItems: 100, description }
  )
}

/** Options of the Redis store, the same for both tiers. */
const StoreOptionProperties = {
  redisUrl: Type.Optional(Type.String({ pattern: REDIS_URL_PATTERN, description: 'Redis for counters shared by every gateway instance; unset = in memory. From REDIS_URL.' })),
  redisSentinels: Type.Optional(NodeListSchema('Redis Sentinel addresses (`host:port`), instead of `redisUrl`: counters live on the primary the sentinels name for `redisSentinelName`, followed through failovers. From REDIS_SENTINELS.')),
  redisSentinelName: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,100}$', description: 'The primary group the sentinels monitor (`sentinel monitor <name> …`); with `redisSentinels`. From REDIS_SENTINEL_NAME.' })),
  redisSentinelPassword: Type.Optional(Type.String({ minLength: 1, description: 'Password of the sentinels themselves; with `redisSentinels`. From REDIS_SENTINEL_PASSWORD_FILE.' })),
  redisClusterNodes: Type.Optional(NodeListSchema('Redis Cluster nodes (`host:port`; a few suffice, the rest are discovered), instead of `redisUrl`. From REDIS_CLUSTER_NODES.')),
  redisPassword: Type.Optional(Type.String({ minLength: 1, description: 'Password of the Redis servers found through `redisSentinels` or `redisClusterNodes` (with `redisUrl` it is in the URL). From REDIS_PASSWORD_FILE.' })),
  redisTimeoutMs: Type.Integer({ ...REDIS_TIMEOUT_MS, description: 'Bound on one request\'s wait for Redis; a slower answer is a store failure. From REDIS_TIMEOUT_MS.' }),
  failureMode: Type.Union(FAILURE_MODES.map((m) => Type.Literal(m)), { default: DEFAULT_FAILURE_MODE, description: 'With Redis failing, the per-route tier: `closed` answers 503, `open` admits (the per-IP tier counts in memory instead). From REDIS_FAILURE_MODE.' }),
  keyPrefix: Type.String({ ...REDIS_KEY_PREFIX, description: 'Prefix of every Redis key (the per-IP tier adds `ip|`, route keys start with `/`; the limit key follows in a hash tag, `{…}`).' }),
  failureLogIntervalMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 30_000, description: 'Store failures are logged once per interval, with their count.' }),
  unavailableRetryAfterS: Type.Integer({ minimum: 1, maximum: 3600, default: 5, description: '`Retry-After` of the fail-closed 503.' })
}

export const IpRateLimitOptionsSchema = Type.Object({
  max: Type.Integer({ minimum: 1, default: DEFAULT_IP_RATE_LIMIT.max, description: 'Requests admitted per client IP (IPv6: per /64) and window, before authentication. From IP_RATE_LIMIT_MAX.' }),
  timeWindow: Type.Union(TimeWindowSchema.anyOf, { default: DEFAULT_IP_RATE_LIMIT.timeWindow, description: 'Window of the per-IP limit. From IP_RATE_LIMIT_WINDOW.' }),
  cacheSize: Type.Integer({ minimum: 100, maximum: 10_000_000, default: 100_000, description: 'Most client IPs tracked at once in memory mode (LRU); bounds memory.' }),
  ...StoreOptionProperties
}, { additionalProperties: false })

/** Validated options of the per-IP tier (`gateway-ip-rate-limit`). */
export type IpRateLimitOptions = Static<typeof IpRateLimitOptionsSchema>

/** The Redis settings both tiers take (the same store: one server, Sentinel or Cluster). */
export interface RedisStorePluginOptions {
  /** REDIS_SENTINELS (`host:port` each), instead of `redisUrl`: the primary Sentinel names for `redisSentinelName`. */
  readonly redisSentinels?: readonly string[] | undefined
  /** REDIS_SENTINEL_NAME: the group the sentinels monitor. */
  readonly redisSentinelName?: string | undefined
  /** REDIS_SENTINEL_PASSWORD_FILE's content: the sentinels' own password. */
  readonly redisSentinelPassword?: string | undefined
  /** REDIS_CLUSTER_NODES (`host:port` each), instead of `redisUrl`. */
  readonly redisClusterNodes?: readonly string[] | undefined
  /** REDIS_PASSWORD_FILE's content: password of the servers found through sentinels or cluster nodes. */
  readonly redisPassword?: string | undefined
  /** REDIS_TIMEOUT_MS. Default 200. */
  readonly redisTimeoutMs?: number
}

/** Options accepted by `register(ipRateLimitPlugin, …)`. */
export interface IpRateLimitPluginOptions extends RedisStorePluginOptions {
  /** Requests per client IP and window (IP_RATE_LIMIT_MAX). Default 1000. */
  readonly max?: number
  /** Window, ms or text (IP_RATE_LIMIT_WINDOW). Default `1 minute`. */
  readonly timeWindow?: number | string
  /** Most client IPs tracked at once (LRU, memory mode). Default 100,000. */
  readonly cacheSize?: number
  /** REDIS_URL: the per-IP counters are shared through it too; unset = in memory. */
  readonly redisUrl?: string | undefined
  /** Accepted for symmetry with the route tier; while Redis fails this tier counts in memory. */
  readonly failureMode?: 'closed' | 'open'
  /** Prefix of every Redis key (this tier's keys are `<prefix>ip|<client>`). Default `portcullis:rl:`. */
  readonly keyPrefix?: string
  /** Store failures are logged once per interval with their count. Default 30,000 ms. */
  readonly failureLogIntervalMs?: number
  /** Retry-After (s) of the fail-closed 503. Default 5. */
  readonly unavailableRetryAfterS?: number
}

export const RouteRateLimitOptionsSchema = Type.Object({
  cacheSize: Type.Integer({ minimum: 100, maximum: 10_000_000, default: 100_000, description: 'Most (route, client) counters kept in memory mode (LRU); bounds memory.' }),
  ...StoreOptionProperties
}, { additionalProperties: false })

/** Validated options of the per-route tier (`gateway-route-rate-limit`). */
export type RouteRateLimitOptions = Static<typeof RouteRateLimitOptionsSchema>

/** Options accepted by `register(routeRateLimitPlugin, …)`. */
export interface RouteRateLimitPluginOptions extends RedisStorePluginOptions {
  /** REDIS_URL; unset = in-memory counters. */
  readonly redisUrl?: string | undefined
  /** REDIS_FAILURE_MODE. Default `closed`. */
  readonly failureMode?: 'closed' | 'open'
  /** Prefix of every Redis key. Default `portcullis:rl:`. */
  readonly keyPrefix?: string
  /** LRU size in memory mode. Default 100,000. */
  readonly cacheSize?: number
  /** Store failures are logged once per interval with their count. Default 30,000 ms. */
  readonly failureLogIntervalMs?: number
  /** Retry-After (s) of the fail-closed 503. Default 5. */
  readonly unavailableRetryAfterS?: number
}

/** Cross-field rule of a route policy: `burst` belongs to `gcra`. */
export function burstProblem (where: string, policy: RateLimitPolicy): string | undefined {
  if (policy.burst !== undefined && policy.algorithm !== 'gcra') return `${where}.burst: only with algorithm 'gcra'`
  return undefined
}

/** Cross-field rule: a text window must parse to 1 ms .. MAX_WINDOW_MS. */
export function windowProblem (where: string, window: number | string): string | undefined {
  if (typeof window === 'string' && !new RegExp(WINDOW_PATTERN).test(window)) return `${where}: ${WINDOW_WORDS}`
  const ms = windowMs(window)
  if (ms < 1 || ms > MAX_WINDOW_MS) return `${where}: must be between 1 ms and 1 day`
  return undefined
}

/** The Redis options of both tiers, as validated. */
export interface RedisConnectionOptions {
  readonly redisUrl?: string | undefined
  readonly redisSentinels?: readonly string[] | undefined
  readonly redisSentinelName?: string | undefined
  readonly redisSentinelPassword?: string | undefined
  readonly redisClusterNodes?: readonly string[] | undefined
  readonly redisPassword?: string | undefined
}

/**
 * Cross-field rules of the Redis options: at most one of `redisUrl`, `redisSentinels` and
 * `redisClusterNodes`; a sentinel group needs its name; the passwords belong to the modes that
 * use them; ports 1 to 65535.
 */
export function redisProblems (o: RedisConnectionOptions): string[] {
  const problems: string[] = []
  const modes = [o.redisUrl, o.redisSentinels, o.redisClusterNodes].filter((m) => m !== undefined).length
  if (modes > 1) problems.push('redisUrl, redisSentinels and redisClusterNodes: set only one')
  if ((o.redisSentinels === undefined) !== (o.redisSentinelName === undefined)) problems.push('redisSentinels and redisSentinelName: set both or neither')
  if (o.redisSentinelPassword !== undefined && o.redisSentinels === undefined) problems.push('redisSentinelPassword: only with redisSentinels')
  if (o.redisPassword !== undefined && o.redisSentinels === undefined && o.redisClusterNodes === undefined) problems.push('redisPassword: only with redisSentinels or redisClusterNodes (a redisUrl carries its own password)')
  for (const [name, nodes] of [['redisSentinels', o.redisSentinels], ['redisClusterNodes', o.redisClusterNodes]] as const) {
    for (const node of nodes ?? []) {
      const port = Number(node.slice(node.lastIndexOf(':') + 1))
      if (!(port >= 1 && port <= 65535)) problems.push(`${name}: "${node}" has a port outside 1-65535`)
    }
  }
  return problems
}
