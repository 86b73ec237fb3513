/**
 * portcullis-proxy: the shared proxy runtime that `defineRoute()` plugins register against.
 *
 * Decorates `fastify.portcullisProxy` with the shared undici Agents (one connection pool per
 * upstream origin, shared by every route), the body limit, the default route policies and the
 * table of registered routes. Closes agents and health-check timers in onClose.
 * Hooks: none of its own; each route adds preParsing (body limit) and, when capped, in-flight hooks.
 * Errors: GW_UPSTREAM_BAD_GATEWAY (502), GW_UPSTREAM_UNAVAILABLE (503), GW_UPSTREAM_TIMEOUT (504),
 * GW_ROUTE_OVERLOADED (503), GW_REQUEST_BODY_TOO_LARGE (413), GW_REQUEST_UPGRADE_NOT_ALLOWED (400).
 */
import fp from 'fastify-plugin'
import { Agent, type Dispatcher } from 'undici'
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyInstance } from 'fastify'
import { ConfigError } from '../../src/errors.js'
import { RequestHeaderFilter, stripNameProblem, trustedPeerMatcher, trustedProxyProblem } from './client-headers.js'
import type { UpstreamPool } from './upstream-pool.js'
import { setUpProxyScope } from './route.js'
import { BODY_LIMIT, RESPONSE_BUFFER_BYTES, SEND_TIMEOUT_MS } from './schema.js'
import { DEFAULT_ROUTE_RATE_LIMIT, type RateLimitRouteConfig } from '../rate-limit/schema.js'
import { DEFAULT_INSPECT_MODE, INSPECT_MODES, type InspectRouteConfig } from '../inspect/schema.js'

export const ProxyPluginOptionsSchema = Type.Object({
  bodyLimit: Type.Integer({ ...BODY_LIMIT, description: 'Request body bytes, enforced on streamed bodies too.' }),
  responseBufferBytes: Type.Integer({
    ...RESPONSE_BUFFER_BYTES,
    description: 'Upstream responses declaring at most this many bytes (and a Content-Type) are read whole and sent in one write; larger ones stream. 0 = stream every response.'
  }),
  sendTimeoutMs: Type.Integer({ minimum: 0, ...SEND_TIMEOUT_MS, description: 'A client that reads nothing of a streamed response for this long loses it: the upstream request ends and the client connection (HTTP/2: the stream) is reset (nginx send_timeout). 0 = never.' }),
  tls: Type.Boolean({ default: false, description: 'Whether clients reach the gateway over TLS (x-forwarded-proto).' }),
  upstreamKeepAliveTimeoutMs: Type.Integer({ minimum: 1, default: 30_000, description: 'Idle time before an upstream connection is closed.' }),
  upstreamConnectionsPerOrigin: Type.Optional(Type.Integer({ minimum: 1, description: 'Cap on connections per upstream origin (default unlimited).' })),
  upstreamPipelining: Type.Integer({ minimum: 1, maximum: 64, default: 1, description: 'HTTP/1.1 requests pipelined per upstream connection.' }),
  upstreamRejectUnauthorized: Type.Boolean({ default: true, description: 'Verify upstream TLS certificates.' }),
  upstreamCa: Type.Optional(Type.String({ description: 'Extra PEM CA bundle trusted for upstream TLS.' })),
  defaultRateLimit: Type.Union([Type.Literal(false), Type.Object({ max: Type.Integer({ minimum: 1 }), timeWindow: Type.Union([Type.Integer({ minimum: 1 }), Type.String()]) })], {
    default: { ...DEFAULT_ROUTE_RATE_LIMIT },
    description: 'Per-route limit for routes that do not set `rateLimit`.'
  }),
  defaultInspectMode: Type.Union(INSPECT_MODES.map((m) => Type.Literal(m)), { default: DEFAULT_INSPECT_MODE, description: 'Inspection mode for routes that do not set `inspect`.' }),
  stripRequestHeaders: Type.Array(Type.String({ minLength: 1 }), {
    default: [],
    description: 'Client request headers never forwarded upstream, besides the built-in list: names, or prefixes ending in `*`; case-insensitive, `_` read as `-` (STRIP_REQUEST_HEADERS).'
  }),
  trustProxy: Type.Array(Type.String({ minLength: 1 }), {
    default: [],
    description: 'Peer addresses (IPs/CIDRs) whose forwarding headers (X-Forwarded-For/-Proto/-Host/-Port, Forwarded) are kept: the list given to Fastify as `trustProxy` (TRUST_PROXY).'
  })
}, { additionalProperties: false })

export type ProxyPluginOptions = Partial<Static<typeof ProxyPluginOptionsSchema>>
type ResolvedProxyOptions = Static<typeof ProxyPluginOptionsSchema>

const checkOptions = TypeCompiler.Compile(ProxyPluginOptionsSchema)

/** One line of the route table printed at startup. */
export interface RouteSummary {
  readonly prefix: string
  readonly targets: readonly string[]
  readonly auth: string
  readonly rateLimit: string
  readonly inspect: string
  readonly websocket: boolean
}

/** The runtime shared by all proxied routes of one gateway. */
export interface ProxyRuntime {
  readonly options: Readonly<ResolvedProxyOptions>
  readonly routes: RouteSummary[]
  readonly pools: Set<UpstreamPool>
  readonly defaultRateLimit: RateLimitRouteConfig
  readonly defaultInspect: InspectRouteConfig
  /** The shared Agent for a connect timeout (routes with equal settings share pools per origin). */
  agentFor: (connectTimeoutMs: number) => Dispatcher
  /** Classifies client request headers: the built-in list plus `stripRequestHeaders`. */
  readonly requestHeaderFilter: RequestHeaderFilter
  /** Whether a socket peer is in `trustProxy` (undefined: none is). */
  readonly trustedPeer: ((address: string) => boolean) | undefined
  /** The shared proxy scope (proxyScopePlugin), and the instance it was registered on. */
  scope?: { readonly owner: FastifyInstance, readonly instance: FastifyInstance }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Shared proxy runtime (portcullis-proxy plugin). */
    portcullisProxy: ProxyRuntime
  }
}

function resolveOptions (opts: ProxyPluginOptions): ResolvedProxyOptions {
  const withDefaults = {
    bodyLimit: BODY_LIMIT.default,
    responseBufferBytes: RESPONSE_BUFFER_BYTES.default,
    sendTimeoutMs: SEND_TIMEOUT_MS.default,
    tls: false,
    upstreamKeepAliveTimeoutMs: 30_000,
    upstreamPipelining: 1,
    upstreamRejectUnauthorized: true,
    defaultRateLimit: { ...DEFAULT_ROUTE_RATE_LIMIT },
    defaultInspectMode: DEFAULT_INSPECT_MODE,
    stripRequestHeaders: [],
    trustProxy: [],
    ...opts
  }
  const problems = [...checkOptions.Errors(withDefaults)].map((e) => `${e.path.slice(1) || 'options'}: ${e.message}`)
  if (problems.length === 0) {
    for (const name of withDefaults.stripRequestHeaders) {
      const p = stripNameProblem(name)
      if (p !== undefined) problems.push(`stripRequestHeaders: ${p}`)
    }
    for (const entry of withDefaults.trustProxy) {
      const p = trustedProxyProblem(entry)
      if (p !== undefined) problems.push(`trustProxy: ${p}`)
    }
  }
  if (problems.length > 0) throw new ConfigError('invalid gateway-proxy options', problems)
  return Object.freeze({
    ...withDefaults,
    stripRequestHeaders: Object.freeze([...withDefaults.stripRequestHeaders]),
    trustProxy: Object.freeze([...withDefaults.trustProxy])
  } as ResolvedProxyOptions)
}

async function proxyRuntimePlugin (fastify: FastifyInstance, opts: ProxyPluginOptions): Promise<void> {
  const options = resolveOptions(opts)
  const agents = new Map<number, Agent>()
  const pools = new Set<UpstreamPool>()
  const runtime: ProxyRuntime = {
    options,
    routes: [],
    pools,
    defaultRateLimit: options.defaultRateLimit,
    defaultInspect: { mode: options.defaultInspectMode },
    requestHeaderFilter: new RequestHeaderFilter(options.stripRequestHeaders),
    trustedPeer: trustedPeerMatcher(options.trustProxy),
    agentFor (connectTimeoutMs: number): Dispatcher {
      let agent = agents.get(connectTimeoutMs)
      if (agent === undefined) {
        agent = new Agent({
          keepAliveTimeout: options.upstreamKeepAliveTimeoutMs,
          pipelining: options.upstreamPipelining,
          ...(options.upstreamConnectionsPerOrigin !== undefined ? { connections: options.upstreamConnectionsPerOrigin } : {}),
          connect: {
            timeout: connectTimeoutMs,
            rejectUnauthorized: options.upstreamRejectUnauthorized,
            ...(options.upstreamCa !== undefined ? { ca: options.upstreamCa } : {})
          }
        })
        agents.set(connectTimeoutMs, agent)
      }
      return agent
    }
  }
  fastify.decorate('portcullisProxy', runtime)
  fastify.addHook('onClose', async function proxyClose () {
    for (const pool of pools) pool.close()
    await Promise.all([...agents.values()].map(async (a) => { await a.destroy() }))
  })
}

/** Registers the shared proxy runtime; register it before any `defineRoute()` plugin. */
export const proxyPlugin = fp(proxyRuntimePlugin, { name: 'portcullis-proxy', fastify: '5.x', dependencies: [] })

async function proxyScope (fastify: FastifyInstance): Promise<void> {
  const runtime = fastify.portcullisProxy
  if (runtime.scope !== undefined) throw new ConfigError('gateway-proxy-scope', ['registered twice for one gateway-proxy runtime'])
  await fastify.register(async function portcullisProxyScope (instance: FastifyInstance) {
    await setUpProxyScope(instance)
    runtime.scope = { owner: fastify, instance }
  })
}

/**
 * Opens the shared proxy scope on the instance it is registered on: `defineRoute()` plugins
 * registered afterwards on that same instance put their HTTP routes in one context (flat cost
 * per request from 1 to thousands of prefixes). Needs `proxyPlugin` registered before it (a
 * declared dependency: Fastify refuses the other order); register it after the policy plugins,
 * right before the routes. Routes registered in other contexts keep their own.
 */
export const proxyScopePlugin = fp(proxyScope, { name: 'portcullis-proxy-scope', fastify: '5.x', dependencies: ['portcullis-proxy'] })
export default proxyPlugin
