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
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyInstance } from 'fastify'
import { ConfigError } from '../../lib/errors.js'
import { RequestHeaderFilter, stripNameProblem, trustedPeerMatcher, trustedProxyProblem } from './client-headers.js'
import type { UpstreamPool } from './upstream-pool.js'
import { kInFlight, setUpProxyScope } from './route.js'
import { DEFAULT_INSPECT_MODE, DEFAULT_ROUTE_RATE_LIMIT, kUpstreamTarget } from '../../lib/route-contract.js'
import { BODY_LIMIT, ProxyPluginOptionsSchema, RESPONSE_BUFFER_BYTES, SEND_TIMEOUT_MS, type ProxyPluginOptions, type ProxyRuntime, type ProxyUpstreamTls, type ResolvedProxyOptions } from './schema.js'

export { ProxyPluginOptionsSchema } from './schema.js'
export type { ProxyPluginOptions, ProxyRouteInput, ProxyRuntime, ProxyUpstreamTls, RouteSummary } from './schema.js'
export { proxyRuntimeOf } from './route.js'

const checkOptions = TypeCompiler.Compile(ProxyPluginOptionsSchema)

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
  /** Agents presenting a route's client certificate, per `upstreamTls` and connect timeout. */
  const tlsAgents = new Map<ProxyUpstreamTls, Map<number, Agent>>()
  const newAgent = (connectTimeoutMs: number, tls: ProxyUpstreamTls | undefined): Agent => {
    const ca = tls?.ca ?? options.upstreamCa
    return new Agent({
      keepAliveTimeout: options.upstreamKeepAliveTimeoutMs,
      pipelining: options.upstreamPipelining,
      ...(options.upstreamConnectionsPerOrigin !== undefined ? { connections: options.upstreamConnectionsPerOrigin } : {}),
      connect: {
        timeout: connectTimeoutMs,
        rejectUnauthorized: options.upstreamRejectUnauthorized,
        ...(ca !== undefined ? { ca } : {}),
        ...(tls !== undefined ? { cert: tls.cert, key: tls.key } : {}),
        ...(tls?.serverName !== undefined ? { servername: tls.serverName } : {})
      }
    })
  }
  const pools = new Set<UpstreamPool>()
  const runtime: ProxyRuntime = {
    options,
    routes: [],
    pools,
    defaultRateLimit: options.defaultRateLimit,
    defaultInspect: { mode: options.defaultInspectMode },
    requestHeaderFilter: new RequestHeaderFilter(options.stripRequestHeaders),
    trustedPeer: trustedPeerMatcher(options.trustProxy),
    agentFor (connectTimeoutMs: number, tls?: ProxyUpstreamTls): Dispatcher {
      let byTimeout = agents
      if (tls !== undefined) {
        byTimeout = tlsAgents.get(tls) ?? new Map<number, Agent>()
        tlsAgents.set(tls, byTimeout)
      }
      let agent = byTimeout.get(connectTimeoutMs)
      if (agent === undefined) {
        agent = newAgent(connectTimeoutMs, tls)
        byTimeout.set(connectTimeoutMs, agent)
      }
      return agent
    }
  }
  fastify.decorate('portcullisProxy', runtime)
  // Per-request marks the proxy sets, declared up front: setting them then never changes a
  // request object's shape (which would slow every other function that touches requests).
  if (!fastify.hasRequestDecorator(kUpstreamTarget)) fastify.decorateRequest(kUpstreamTarget, null)
  if (!fastify.hasRequestDecorator(kInFlight)) fastify.decorateRequest(kInFlight, false)
  fastify.addHook('onClose', async function proxyClose () {
    for (const pool of pools) pool.close()
    const all = [...agents.values(), ...[...tlsAgents.values()].flatMap((m) => [...m.values()])]
    await Promise.all(all.map(async (a) => { await a.destroy() }))
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
