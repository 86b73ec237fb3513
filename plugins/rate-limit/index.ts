/**
 * Rate limiting on @fastify/rate-limit, in two tiers (two plugins):
 *
 * - `ipRateLimitPlugin` (`portcullis-ip-rate-limit`): a cheap per-client-IP limit (IPv6 per /64,
 *   IPv4-mapped as IPv4) in a global `onRequest` hook (@fastify/rate-limit's handler), so it runs
 *   before authentication (a route-level hook) wherever it is registered: it throttles every
 *   request, unrouted ones (404, spelling variants) included, so invalid credentials cannot mint
 *   fresh buckets. Counters live in memory (LRU bounded), or
 *   with Redis in Redis under `<keyPrefix>ip|{<client>}`, shared by every instance. While Redis fails,
 *   each instance counts in its own memory instead (whatever REDIS_FAILURE_MODE says): this tier
 *   runs on every request, health probes included, so `closed` would answer 503 to all of them
 *   and `open` would drop the flood guard in front of auth. Options: IP_RATE_LIMIT_MAX/_WINDOW.
 * - `routeRateLimitPlugin` (`portcullis-route-rate-limit`): the per-route limit from each route's
 *   `config.rateLimit` (`{ max, timeWindow, keyBy, algorithm, burst }`; `false` or absent: no
 *   per-route limit; `algorithm`: `fixed` windows (default) or `gcra`, gcra.ts),
 *   keyed by `request.consumer.id`, or by client IP on public routes or with `keyBy: 'ip'`.
 *   Routes of one template sharing one policy object share one budget (a route and its HEAD twin,
 *   `/api`, `/api/` and `/api/*` of one `defineRoute` prefix); routes of one template bound to
 *   different hosts (`constraints.host`) never share one. The check is a route-level `onRequest` hook
 *   (`rateLimitRouteOnRequest`) appended in `onRoute`: route-level hooks run after every
 *   instance-level `onRequest` hook, and authentication prepends its own, so `request.consumer` is
 *   set when it runs (without an authentication plugin, requests count per IP); routes without a
 *   policy pay nothing. Counters live in memory, or in Redis for every instance.
 *   A Redis failure applies REDIS_FAILURE_MODE within REDIS_TIMEOUT_MS of the request asking:
 *   `closed` answers 503 GW_RATE_LIMIT_STORE_UNAVAILABLE with Retry-After, `open` admits. The
 *   outage is logged once per interval with a count (store.ts), not per request.
 *
 * Redis is one server (`redisUrl`), the primary Sentinel names (`redisSentinels`,
 * `redisSentinelName`; followed through failovers) or a Redis Cluster (`redisClusterNodes`);
 * each limit's keys are hash-tagged to one slot (redis-store.ts).
 *
 * Both answer 429 GW_RATE_LIMITED with `Retry-After` and the draft RateLimit headers
 * (`ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset`), publish `rateLimited`, and the
 * route tier publishes `storeState`. Startup errors: GW_RATE_LIMIT_CONFIG_INVALID.
 */
import fastifyRateLimit, { type RateLimitPluginOptions } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { clientKey, decorateClientKey } from '../../lib/client-ip.js'
import { rateLimited } from '../../lib/signals.js'
import { pluginConfigError, RateLimitedError, RateLimitStoreUnavailableError } from '../../lib/errors.js'

const invalid = pluginConfigError('Invalid rate-limit configuration', 'GW_RATE_LIMIT_CONFIG_INVALID')
import {
  IpRateLimitOptionsSchema,
  RateLimitRouteConfigSchema,
  RouteRateLimitOptionsSchema,
  burstProblem,
  redisProblems,
  windowMs,
  windowProblem,
  type IpRateLimitOptions,
  type IpRateLimitPluginOptions,
  type RateLimitPolicy,
  type RouteRateLimitOptions,
  type RouteRateLimitPluginOptions
} from './schema.js'
import { memoryGcraStore, redisGcraStore } from './gcra.js'
import { DeadlineQueue, redisFixedWindowStore } from './redis-store.js'
import { closeRedis, createRedisClient, redisTargetOf, StoreMonitor, waitReadyOnDatabase, type RedisClient, type RedisTarget } from './store.js'
import { compileOptions, schemaProblems } from '../../lib/validate.js'
import { appendHook, routeName } from '../../lib/route-hooks.js'

export type { IpRateLimitPluginOptions, RateLimitPolicy, RateLimitRouteConfig, RouteRateLimitPluginOptions } from './schema.js'
export { RateLimitRouteConfigSchema } from './schema.js'

declare module '@fastify/rate-limit' {
  // The gateway's route policy adds `keyBy`, `algorithm` and `burst` to the route-level `config.rateLimit` object that
  // @fastify/rate-limit declares on FastifyContextConfig (validated by RateLimitRouteConfigSchema).
  namespace fastifyRateLimit {
    interface RateLimitOptions {
      /** Count per authenticated consumer (default; by IP on public routes) or per client IP. */
      keyBy?: 'consumer' | 'ip'
      /** `fixed` windows (default) or `gcra` (no window-length span admits more than max + burst). */
      algorithm?: 'fixed' | 'gcra'
      /** With `gcra`: requests admitted ahead of the steady pace. Default 0. */
      burst?: number
    }
  }
}

type LimiterHandler = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

/** One per-route budget: the key prefix and its limits, precomputed in onRoute. */
interface Bucket {
  readonly prefix: string
  readonly max: number
  readonly windowMs: number
  readonly keyByIp: boolean
  /** GCRA only: `<burst>;`, the head of the store key that tells the store the burst. */
  readonly gcraHead: string | undefined
}

const kBucket = Symbol('portcullis.rateLimit.bucket')
const UNROUTED = '<unrouted>'

function bucketOf (request: FastifyRequest): Bucket {
  return (request as unknown as Record<symbol, Bucket>)[kBucket]
}

function publishLimited (request: FastifyRequest, tier: 'ip' | 'route'): void {
  if (rateLimited.hasSubscribers) rateLimited.publish({ route: request.routeOptions.url ?? UNROUTED, tier })
}

/**
 * Registers @fastify/rate-limit in its own encapsulated scope (so it attaches no hooks to any
 * route by itself) and returns its request handler built from `settings`.
 */
async function buildLimiter (fastify: FastifyInstance, settings: RateLimitPluginOptions): Promise<LimiterHandler> {
  let handler: LimiterHandler | undefined
  await fastify.register(async function rateLimitScope (scope) {
    await scope.register(fastifyRateLimit, { ...settings, global: false })
    handler = scope.rateLimit() as unknown as LimiterHandler
  })
  if (handler === undefined) throw invalid(['@fastify/rate-limit did not load'])
  return handler
}

/** Headers: the draft-spec names, and on a 429 also Retry-After. */
const HEADERS = {
  enableDraftSpec: true,
  addHeaders: { 'ratelimit-limit': true, 'ratelimit-remaining': true, 'ratelimit-reset': true, 'retry-after': true }
} as const

interface StoreOptions {
  readonly redisTimeoutMs: number
  readonly failureMode: 'open' | 'closed'
  readonly failureLogIntervalMs: number
  readonly unavailableRetryAfterS: number
}

interface SharedStore {
  readonly redis: RedisClient
  readonly monitor: StoreMonitor
  readonly deadlines: DeadlineQueue
}

/**
 * Connects to Redis for one tier (closed in onClose). Starts serving either way: with Redis down
 * the failure mode applies until it is back. A server that answers but refuses the URL's
 * database is a configuration error.
 */
async function openStore (fastify: FastifyInstance, target: RedisTarget, options: StoreOptions, tier: 'ip' | 'route'): Promise<SharedStore> {
  const redis = await createRedisClient(target, options.redisTimeoutMs)
  // The per-IP tier falls back to this instance's memory, whatever the failure mode.
  const monitor = new StoreMonitor(fastify.log, options.failureLogIntervalMs, tier === 'ip' ? 'local' : options.failureMode, tier)
  monitor.watch(redis)
  const deadlines = new DeadlineQueue(options.redisTimeoutMs)
  fastify.addHook('onClose', async function rateLimitCloseRedis () {
    monitor.close()
    deadlines.close()
    await closeRedis(redis)
  })
  let ready: boolean
  try {
    ready = await waitReadyOnDatabase(redis, Math.max(options.redisTimeoutMs * 5, 1000))
  } catch (err) {
    monitor.close()
    await closeRedis(redis)
    throw invalid([`redisUrl: the server refused the database it names (${(err as Error).message})`], err)
  }
  if (!ready) {
    fastify.log.warn({ tier, failureMode: tier === 'ip' ? 'local' : options.failureMode }, 'rate-limit store (redis) not reachable at startup')
  }
  return { redis, monitor, deadlines }
}

/**
 * Runs `limiter` and applies the failure mode to anything but a 429: `closed` answers 503 with
 * Retry-After, `open` admits. Store failures are counted by the monitor, not logged per request.
 */
function guarded (limiter: LimiterHandler, monitor: StoreMonitor, options: StoreOptions): LimiterHandler {
  const failClosed = options.failureMode === 'closed'
  const retryAfter = String(options.unavailableRetryAfterS)
  return async function rateLimitGuarded (request, reply) {
    try {
      await limiter(request, reply)
    } catch (err) {
      if (err instanceof RateLimitedError) throw err
      monitor.failure(err)
      if (failClosed) {
        reply.header('retry-after', retryAfter)
        throw new RateLimitStoreUnavailableError({ cause: err })
      }
    }
  }
}

async function gatewayIpRateLimit (fastify: FastifyInstance, rawOptions: IpRateLimitPluginOptions): Promise<void> {
  const options = compileOptions<IpRateLimitOptions>(IpRateLimitOptionsSchema, rawOptions ?? {}, invalid, (o, problems) => {
    const p = windowProblem('timeWindow', o.timeWindow)
    if (p !== undefined) problems.push(p)
    problems.push(...redisProblems(o))
  })
  const target = redisTargetOf(options)
  const shared = target === undefined ? undefined : await openStore(fastify, target, options, 'ip')
  decorateClientKey(fastify)
  const settings: RateLimitPluginOptions = {
    ...HEADERS,
    // On admitted requests the route tier's headers are the useful ones; this tier adds none.
    addHeadersOnExceeding: { 'ratelimit-limit': false, 'ratelimit-remaining': false, 'ratelimit-reset': false },
    max: options.max,
    timeWindow: windowMs(options.timeWindow),
    cache: options.cacheSize,
    skipOnError: false,
    keyGenerator: clientKey,
    errorResponseBuilder: (request) => {
      request.log.debug({ ip: request.ip }, 'per-IP rate limit exceeded')
      publishLimited(request, 'ip')
      return new RateLimitedError()
    }
  }
  const local = await buildLimiter(fastify, settings)
  if (shared === undefined) {
    // In memory mode @fastify/rate-limit's handler is itself the hook: no wrapper promise per request.
    fastify.addHook('onRequest', local as unknown as onRequestAsyncHookHandler)
    return
  }
  // Route keys start with the route template (`/...`): `ip|` cannot collide with them.
  const remote = await buildLimiter(fastify, { ...settings, store: redisFixedWindowStore(shared.redis, `${options.keyPrefix}ip|`, shared.deadlines) })
  const monitor = shared.monitor
  fastify.addHook('onRequest', async function ipRateLimitOnRequest (request, reply) {
    try {
      await remote(request, reply)
    } catch (err) {
      if (err instanceof RateLimitedError) throw err
      monitor.failure(err)
      await local(request, reply)
    }
  })
}

/**
 * The budget name of a route template: the routes one prefix registers (`/api`, `/api/`,
 * `/api/*`) and a GET route's HEAD twin share one budget when they share the policy object.
 */
function budgetName (url: string): string {
  let name = url.endsWith('/*') ? url.slice(0, -2) : url
  while (name.length > 1 && name.endsWith('/')) name = name.slice(0, -1)
  return name === '' ? '/' : name
}

/**
 * The host constraint of a route (routes of one template bound to different hosts keep separate
 * budgets), as a key part without Redis hash-tag braces; empty for a route of any host.
 */
function hostPart (routeOptions: RouteOptions): string {
  const host: unknown = (routeOptions.constraints as { host?: unknown } | undefined)?.host
  if (host === undefined) return ''
  const text = host instanceof RegExp ? host.source : String(host)
  return `@${text.replace(/[{}|\s]/g, '_')}`
}

async function gatewayRouteRateLimit (fastify: FastifyInstance, rawOptions: RouteRateLimitPluginOptions): Promise<void> {
  const options = compileOptions<RouteRateLimitOptions>(RouteRateLimitOptionsSchema, rawOptions ?? {}, invalid, (o, problems) => {
    problems.push(...redisProblems(o))
  })
  const target = redisTargetOf(options)
  const shared = target === undefined ? undefined : await openStore(fastify, target, options, 'route')

  fastify.decorateRequest(kBucket, null)
  decorateClientKey(fastify)
  /**
   * One limiter per algorithm over its store: the fixed window (@fastify/rate-limit's own memory
   * store, or Redis) and GCRA (`algorithm: 'gcra'`, keys headed by the burst, under `g|` in Redis).
   */
  async function routeLimiter (store: Pick<RateLimitPluginOptions, 'cache' | 'store'>, gcra: boolean): Promise<LimiterHandler> {
    return await buildLimiter(fastify, {
      ...HEADERS,
      ...store,
      skipOnError: false,
      max: (request) => bucketOf(request).max,
      timeWindow: (request) => bucketOf(request).windowMs,
      keyGenerator: (request) => {
        const bucket = bucketOf(request)
        const head = gcra ? bucket.gcraHead ?? '' : ''
        const consumer = request.consumer
        if (!bucket.keyByIp && consumer != null) return head + bucket.prefix + 'c:' + consumer.id
        return head + bucket.prefix + 'ip:' + clientKey(request)
      },
      errorResponseBuilder: (request) => {
        request.log.debug({ consumer: request.consumer?.id, ip: request.ip }, 'route rate limit exceeded')
        publishLimited(request, 'route')
        return new RateLimitedError()
      }
    })
  }

  const limiter = await routeLimiter(shared === undefined
    ? { cache: options.cacheSize }
    : { cache: options.cacheSize, store: redisFixedWindowStore(shared.redis, options.keyPrefix, shared.deadlines) }, false)
  const check = shared === undefined ? limiter : guarded(limiter, shared.monitor, options)
  const gcraLimiter = await routeLimiter({
    store: shared === undefined
      ? memoryGcraStore(options.cacheSize)
      : redisGcraStore(shared.redis, `${options.keyPrefix}g|`, shared.deadlines)
  }, true)
  const gcraCheck = shared === undefined ? gcraLimiter : guarded(gcraLimiter, shared.monitor, options)

  function hookFor (bucket: Bucket): onRequestAsyncHookHandler {
    const run = bucket.gcraHead === undefined ? check : gcraCheck
    return async function rateLimitRouteOnRequest (request, reply) {
      (request as unknown as Record<symbol, Bucket>)[kBucket] = bucket
      await run(request, reply)
    }
  }

  /** Budgets by route template (trailing `/` and `/*` removed): one per distinct policy object. */
  const budgets = new Map<string, Array<{ policy: RateLimitPolicy, hook: onRequestAsyncHookHandler }>>()

  fastify.addHook('onRoute', function rateLimitOnRoute (routeOptions) {
    const policy: unknown = routeOptions.config?.rateLimit
    if (policy === undefined || policy === false) return
    const template = budgetName(routeOptions.url ?? '') + hostPart(routeOptions)
    const siblings = budgets.get(template) ?? []
    let hook = siblings.find((b) => b.policy === policy)?.hook
    if (hook === undefined) {
      const where = routeName(routeOptions)
      const problems = schemaProblems(RateLimitRouteConfigSchema, policy, 'config.rateLimit')
      if (problems.length === 0) {
        const p = windowProblem('config.rateLimit.timeWindow', (policy as RateLimitPolicy).timeWindow)
        if (p !== undefined) problems.push(p)
        const b = burstProblem('config.rateLimit', policy as RateLimitPolicy)
        if (b !== undefined) problems.push(b)
      }
      if (problems.length > 0) throw invalid([`${where}: ${problems.join('; ')}`])
      const valid = policy as RateLimitPolicy
      // The template names the budget (in Redis keys too), so every instance with the same route
      // table derives the same names; another policy on the same template adds its methods.
      const prefix = siblings.length === 0 ? `${template}|` : `${template}|${String(routeOptions.method)}|`
      const bucket: Bucket = Object.freeze({
        prefix,
        max: valid.max,
        windowMs: windowMs(valid.timeWindow),
        keyByIp: valid.keyBy === 'ip',
        gcraHead: valid.algorithm === 'gcra' ? `${valid.burst ?? 0};` : undefined
      })
      hook = hookFor(bucket)
      siblings.push({ policy: valid, hook })
      budgets.set(template, siblings)
    }
    routeOptions.onRequest = appendHook(routeOptions.onRequest, hook)
  })
}

/**
 * Per-client-IP tier; needs no other plugin:
 * `app.register(ipRateLimitPlugin, { max: config.rateLimit.ipMax, timeWindow: config.rateLimit.ipTimeWindow })`.
 */
export const ipRateLimitPlugin = fp(gatewayIpRateLimit, {
  name: 'portcullis-ip-rate-limit',
  fastify: '5.x',
  dependencies: []
})

/**
 * Per-route tier; register it before the routes (onRoute):
 * `app.register(routeRateLimitPlugin, { redisUrl, redisTimeoutMs, failureMode })` from `config.rateLimit`.
 */
export const routeRateLimitPlugin = fp(gatewayRouteRateLimit, {
  name: 'portcullis-route-rate-limit',
  fastify: '5.x',
  dependencies: []
})
