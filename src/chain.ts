/**
 * The gateway's plugin chain, declared once: `gatewayApp()` (src/app.ts) registers the plugins by
 * walking `GATEWAY_CHAIN`, scripts/gen-docs.mjs writes docs/reference/chain.md from it, and
 * test/chain.test.ts fails when the order, the names or the declared dependencies drift.
 *
 * Order matters where hooks of one phase meet: instance-level hooks run in registration order,
 * and route-level hooks in the order their plugins' onRoute hooks attach them (auth prepends its
 * own; the route rate limit and inspection append theirs). The order puts the cheap refusals
 * first: a request refused by the request guard, an IP list or a rate limit costs nothing of
 * authentication or inspection. Every plugin reading route `config` does so in `onRoute`, so all
 * of them come before the routes.
 */
import type { FastifyContextConfig, FastifyInstance, FastifyPluginAsync, FastifyPluginOptions } from 'fastify'
import type { GatewayConfig } from './config.js'
import { observabilityPlugin } from '../plugins/observability/index.js'
import { requestGuardPlugin } from '../plugins/request-guard/index.js'
import { proxyPlugin, proxyScopePlugin, type ProxyPluginOptions } from '../plugins/proxy/index.js'
import { securityHeadersPlugin } from '../plugins/security-headers/index.js'
import { corsPlugin } from '../plugins/cors/index.js'
import { metricsPlugin } from '../plugins/metrics/index.js'
import { tracingPlugin } from '../plugins/tracing/index.js'
import { authPlugin } from '../plugins/auth/index.js'
import { overloadPlugin } from '../plugins/overload/index.js'
import { ipFilterPlugin } from '../plugins/ip-filter/index.js'
import { ipRateLimitPlugin, routeRateLimitPlugin, type IpRateLimitPluginOptions } from '../plugins/rate-limit/index.js'
import { inspectPlugin } from '../plugins/inspect/index.js'
import { openApiPlugin } from '../plugins/openapi/index.js'

/**
 * Where a plugin acts. Plain hook names are instance-level hooks (every request); `route ...`
 * hooks are attached in `onRoute` to the routes whose `config` asks for them.
 */
export type ChainPhase =
  | 'onRequest'
  | 'route onRequest'
  | 'preParsing'
  | 'route preValidation'
  | 'preHandler'
  | 'handler'
  | 'onSend'
  | 'route onSend'
  | 'onResponse'
  | 'onRequestAbort'
  | 'server events'

/** A route `config` key (as declared on Fastify's FastifyContextConfig by the plugins). */
export type ChainConfigKey = Extract<keyof FastifyContextConfig, string>

/** One plugin of the chain, with its options typed against the plugin. */
export interface ChainEntry<O extends FastifyPluginOptions> {
  /** The fastify-plugin wrapper; its meta name is `name`. */
  readonly plugin: FastifyPluginAsync<O>
  /** The plugin's fastify-plugin name (`portcullis-<x>`). */
  readonly name: string
  /** The phases it hooks (empty: a decorator or a context only). */
  readonly phases: readonly ChainPhase[]
  /** The route `config` keys it reads (empty: none). */
  readonly configKeys: readonly ChainConfigKey[]
  /** Its options from the gateway's config; undefined = not registered with this config. */
  readonly options: (config: GatewayConfig) => O | undefined
  /** What it does, one line (docs/reference/chain.md). */
  readonly description: string
}

/** An entry of `GATEWAY_CHAIN`: the entry's facts, and how to register it. */
export interface ChainLink {
  readonly plugin: FastifyPluginAsync<never>
  readonly name: string
  readonly phases: readonly ChainPhase[]
  readonly configKeys: readonly ChainConfigKey[]
  readonly options: (config: GatewayConfig) => object | undefined
  readonly description: string
  /** Registers the plugin on `fastify` with the options `config` gives; false when it leaves it out. */
  readonly register: (fastify: FastifyInstance, config: GatewayConfig) => Promise<boolean>
}

/** Checks an entry's options against its plugin, and keeps the pair together for registration. */
function link<O extends FastifyPluginOptions> (entry: ChainEntry<O>): ChainLink {
  return Object.freeze({
    ...entry,
    async register (fastify: FastifyInstance, config: GatewayConfig): Promise<boolean> {
      const options = entry.options(config)
      if (options === undefined) return false
      await fastify.register(entry.plugin, options)
      return true
    }
  })
}

/** The store settings both rate-limit tiers take. */
type RateLimitStoreOptions = Pick<IpRateLimitPluginOptions, 'redisUrl' | 'redisSentinels' | 'redisSentinelName' | 'redisSentinelPassword' | 'redisClusterNodes' | 'redisPassword' | 'redisTimeoutMs' | 'failureMode' | 'keyPrefix'>

/** The Redis store options both rate-limit tiers share. */
function rateLimitStore (config: GatewayConfig): RateLimitStoreOptions {
  const { redisUrl, redisSentinels, redisSentinelName, redisSentinelPassword, redisClusterNodes, redisPassword } = config.rateLimit
  return {
    // Unset settings are left out: the plugins' options name only what is configured.
    ...(redisUrl !== undefined ? { redisUrl } : {}),
    ...(redisSentinels !== undefined ? { redisSentinels } : {}),
    ...(redisSentinelName !== undefined ? { redisSentinelName } : {}),
    ...(redisSentinelPassword !== undefined ? { redisSentinelPassword } : {}),
    ...(redisClusterNodes !== undefined ? { redisClusterNodes } : {}),
    ...(redisPassword !== undefined ? { redisPassword } : {}),
    redisTimeoutMs: config.rateLimit.redisTimeoutMs,
    failureMode: config.rateLimit.failureMode,
    keyPrefix: config.rateLimit.redisKeyPrefix
  }
}

function proxyOptions (config: GatewayConfig): ProxyPluginOptions {
  return {
    bodyLimit: config.bodyLimit,
    responseBufferBytes: config.responseBufferBytes,
    sendTimeoutMs: config.sendTimeoutMs,
    tls: config.tls !== undefined,
    upstreamRejectUnauthorized: !config.upstreamTls.insecure,
    ...(config.upstreamTls.ca !== undefined ? { upstreamCa: config.upstreamTls.ca } : {}),
    defaultRateLimit: { max: config.rateLimit.max, timeWindow: config.rateLimit.timeWindow },
    defaultInspectMode: config.inspect.mode,
    stripRequestHeaders: [...config.stripRequestHeaders],
    trustProxy: [...config.trustProxy]
  }
}

/** The plugin chain in registration order (the routes come after it). */
export const GATEWAY_CHAIN: readonly ChainLink[] = Object.freeze([
  link({
    plugin: observabilityPlugin,
    name: 'portcullis-observability',
    phases: ['onRequest', 'onSend', 'onResponse'],
    configKeys: [],
    options: () => ({}),
    description: 'Request id (`x-request-id` on every answer), one access line per request, `Connection: close` while draining; `/healthz` and `/readyz`. First, so every later refusal carries the id.'
  }),
  link({
    plugin: metricsPlugin,
    name: 'portcullis-metrics',
    phases: ['onRequest', 'onResponse', 'onRequestAbort'],
    configKeys: ['proxy'],
    options: (config) => config.admin.port === undefined
      ? undefined
      : { port: config.admin.port, host: config.admin.host, ...(config.admin.instance !== undefined ? { instance: config.admin.instance } : {}) },
    description: 'Only with `ADMIN_PORT`: request counters and latency by route template (a proxied route is labelled by its prefix), served on a separate admin listener (`/metrics`). Early, so the in-flight gauge sees every request.'
  }),
  link({
    plugin: tracingPlugin,
    name: 'portcullis-tracing',
    phases: ['onRequest'],
    configKeys: [],
    options: (config) => ({ otel: config.otel }),
    description: 'W3C `traceparent` / `tracestate` continued (or a trace started) for the upstream request; with `OTEL_ENABLED`, a span per request through @fastify/otel.'
  }),
  link({
    plugin: securityHeadersPlugin,
    name: 'portcullis-security-headers',
    phases: ['onSend'],
    configKeys: ['cors'],
    options: (config) => ({ tls: config.tls !== undefined }),
    description: 'The gateway\'s security headers win over the upstream\'s; HSTS only with TLS; `access-control-*` removed unless the route has a CORS policy.'
  }),
  link({
    plugin: overloadPlugin,
    name: 'portcullis-overload',
    phases: ['onRequest'],
    configKeys: ['overload'],
    options: () => ({}),
    description: '503 with `Retry-After` under event-loop delay or memory pressure (`overload: false` exempts a route, the health routes use it).'
  }),
  link({
    plugin: ipFilterPlugin,
    name: 'portcullis-ip-filter',
    phases: ['onRequest'],
    configKeys: ['ipFilter', 'allowedContentTypes'],
    options: (config) => config.ipFilter,
    description: 'Gateway-wide (`IP_ALLOW`, `IP_DENY`) and per-route IP allow/deny lists; per-route allowed body media types (415). Before the per-IP limit, so a denied client spends no budget.'
  }),
  link({
    plugin: ipRateLimitPlugin,
    name: 'portcullis-ip-rate-limit',
    phases: ['onRequest'],
    configKeys: [],
    options: (config) => ({ max: config.rateLimit.ipMax, timeWindow: config.rateLimit.ipTimeWindow, ...rateLimitStore(config) }),
    description: 'Per client IP (IPv6 per /64), every request including unrouted ones, before authentication; in Redis with `REDIS_URL` (in memory while Redis fails).'
  }),
  link({
    plugin: requestGuardPlugin,
    name: 'portcullis-request-guard',
    phases: ['onRequest', 'server events'],
    configKeys: ['websocket', 'proxy'],
    options: (config) => ({ pathCheck: config.pathCheck, http2RequestTimeoutMs: config.requestTimeoutMs, ...(config.publicHosts !== undefined ? { publicHosts: config.publicHosts } : {}) }),
    description: 'Framing, canonical paths (and paths that read as another route), Host (`PUBLIC_HOSTS` on proxied routes), URL and header sizes, upgrades outside WebSocket routes; `Expect` answered by the server.'
  }),
  link({
    plugin: corsPlugin,
    name: 'portcullis-cors',
    phases: ['onRequest', 'route onSend'],
    configKeys: ['cors'],
    options: () => ({}),
    description: 'Preflights answered (or refused) here, before any route-level hook; the CORS headers of actual requests set on routes with a policy.'
  }),
  link({
    plugin: authPlugin,
    name: 'portcullis-auth',
    phases: ['route onRequest'],
    configKeys: ['auth'],
    options: (config) => config.auth,
    description: 'JWT bearer token or API key, then scopes; sets `request.consumer`. Its hook goes first among a route\'s hooks.'
  }),
  link({
    plugin: routeRateLimitPlugin,
    name: 'portcullis-route-rate-limit',
    phases: ['route onRequest'],
    configKeys: ['rateLimit'],
    options: rateLimitStore,
    description: 'Per route, per consumer (per IP on public routes or with `keyBy: \'ip\'`), after authentication; fixed window or GCRA, in Redis with `REDIS_URL`.'
  }),
  link({
    plugin: inspectPlugin,
    name: 'portcullis-inspect',
    phases: ['route onRequest', 'route preValidation'],
    configKeys: ['inspect'],
    options: (config) => ({ mode: config.inspect.mode, detectRules: [...config.inspect.detectRules], verdictCacheSize: config.inspect.verdictCacheSize, timeoutMs: config.inspect.timeoutMs, ...(config.inspect.rulesFile !== undefined ? { rulesFile: config.inspect.rulesFile } : {}) }),
    description: 'Request inspection (libddwaf): path, query, headers and cookies, then the body on routes with `inspect.body`. After the route rate limit, so a limited client costs no inspection.'
  }),
  link({
    plugin: openApiPlugin,
    name: 'portcullis-openapi',
    phases: ['route onRequest', 'route preValidation', 'route onSend'],
    configKeys: ['openapi', 'openapiPaths'],
    options: () => ({}),
    description: 'API contracts (OpenAPI 3.0/3.1) on routes with `openapi`: the operation, its security requirements against `request.consumer` and its parameters, then the body (buffered), and with `responses` the upstream\'s answer. After inspection, before the proxy.'
  }),
  link({
    plugin: proxyPlugin,
    name: 'portcullis-proxy',
    phases: ['preParsing', 'preHandler', 'handler'],
    configKeys: ['proxy'],
    options: proxyOptions,
    description: 'The proxy runtime (`fastify.portcullisProxy`): upstream pools and route defaults; proxied routes get the body limit (preParsing), the upstream request headers (preHandler) and the handler.'
  }),
  link({
    plugin: proxyScopePlugin,
    name: 'portcullis-proxy-scope',
    phases: [],
    configKeys: [],
    options: () => ({}),
    description: 'One shared context for every proxied HTTP route (@fastify/reply-from, the raw-body parser); the routes (`ROUTES_DIR` or `routes`) are registered after it.'
  })
])
