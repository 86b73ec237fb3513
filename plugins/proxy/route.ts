/**
 * Registers one `defineRoute()` definition: @fastify/http-proxy in front of an UpstreamPool,
 * with the route's policies on Fastify route `config` for the other plugins to read.
 *
 * Hooks (route-local): preParsing (BODY_LIMIT on streamed bodies), preHandler (buffered body ->
 * stream; in-flight cap), onResponse/onRequestAbort (in-flight release).
 */
import { Readable } from 'node:stream'
import httpProxy from '@fastify/http-proxy'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, RequestPayload } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import { ConfigError } from '../../src/errors.js'
import type { RouteOptions } from '../../src/route.js'
import type { AuthRouteConfig } from '../auth/schema.js'
import type { RateLimitRouteConfig } from '../rate-limit/schema.js'
import type { InspectRouteConfig } from '../inspect/schema.js'
import { upstreamError } from '../observability/signals.js'
import { BodyLimitStream } from './body-limit.js'
import { BadGatewayError, BodyTooLargeError, RouteOverloadedError, UpstreamTimeoutError, UpstreamUnavailableError } from './errors.js'
import { rewriteClientResponseHeaders, rewriteUpstreamRequestHeaders, type ForwardPolicy } from './headers.js'
import { errorKind, kProxyRequest, UpstreamPool } from './upstream-pool.js'
import '../auth/consumer.js'

const DEFAULT_METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS']
const DEFAULT_TIMEOUT_MS = 30_000
const kInFlight = Symbol('portcullis.inFlight')

/** Proxy settings of a route, on `config.proxy` (read by the access log and metrics). */
export interface ProxyRouteConfig {
  readonly prefix: string
  readonly pool: UpstreamPool
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set by defineRoute(): the route's authentication policy. */
    auth?: AuthRouteConfig
    /** Set by defineRoute(): the route's rate limit policy. */
    rateLimit?: RateLimitRouteConfig
    /** Set by defineRoute(): the route's inspection policy. */
    inspect?: InspectRouteConfig
    /** Accept WebSocket upgrades on this route. */
    websocket?: boolean
    /** Set by defineRoute() on proxied routes. */
    proxy?: ProxyRouteConfig
  }
}

function describePolicy (route: RouteOptions, rateLimit: RateLimitRouteConfig, inspect: InspectRouteConfig): { auth: string, rateLimit: string, inspect: string } {
  const auth = route.auth === false ? 'public' : (route.auth?.strategies?.join('|') ?? 'any configured') + (route.auth?.scopes !== undefined ? ` scopes=${route.auth.scopes.join(',')}` : '')
  const rl = rateLimit === false ? 'off' : `${rateLimit.max}/${String(rateLimit.timeWindow)}`
  const ins = inspect === false ? 'off' : `${inspect.mode ?? 'block'}${inspect.body === true ? '+body' : ''}`
  return { auth, rateLimit: rl, inspect: ins }
}

function noRetry (): null { return null }

/** Registers the proxy for one route definition inside the route plugin's own context. */
export async function registerProxyRoute (fastify: FastifyInstance, route: Readonly<RouteOptions>): Promise<void> {
  if (!fastify.hasDecorator('portcullisProxy')) {
    throw new ConfigError(`route ${route.prefix}`, ['the gateway-proxy plugin (proxyPlugin) must be registered before defineRoute() plugins'])
  }
  const runtime = fastify.portcullisProxy
  const upstreams = Array.isArray(route.upstream) ? route.upstream : [route.upstream]
  const targets = upstreams.map((u) => new URL(u))
  const first = targets[0] as URL
  const basePath = first.pathname.replace(/\/+$/, '')
  const t = route.timeout
  const connectMs = typeof t === 'number' ? t : (t?.connectMs ?? DEFAULT_TIMEOUT_MS)
  const headersMs = typeof t === 'number' ? t : (t?.headersMs ?? DEFAULT_TIMEOUT_MS)
  const bodyIdleMs = typeof t === 'number' ? Math.max(t, DEFAULT_TIMEOUT_MS) : (t?.bodyIdleMs ?? DEFAULT_TIMEOUT_MS)
  const rateLimit = route.rateLimit ?? runtime.defaultRateLimit
  const inspect = route.inspect ?? runtime.defaultInspect
  const inspectBody = inspect !== false && inspect.body === true
  const routeLabel = route.prefix
  const bodyLimit = runtime.options.bodyLimit

  const pool = new UpstreamPool({
    targets,
    agent: runtime.agentFor(connectMs),
    headersTimeoutMs: headersMs,
    bodyIdleTimeoutMs: bodyIdleMs,
    retries: route.retries ?? 1,
    circuit: route.circuitBreaker === false
      ? false
      : { failureThreshold: route.circuitBreaker?.failureThreshold ?? 5, cooldownMs: route.circuitBreaker?.cooldownMs ?? 10_000 },
    healthCheck: route.healthCheck === undefined || route.healthCheck === false
      ? false
      : {
          path: route.healthCheck.path,
          intervalMs: route.healthCheck.intervalMs ?? 5000,
          timeoutMs: route.healthCheck.timeoutMs ?? 2000,
          healthyThreshold: route.healthCheck.healthyThreshold ?? 2,
          unhealthyThreshold: route.healthCheck.unhealthyThreshold ?? 2
        },
    maxInFlight: route.maxInFlight ?? 0,
    log: fastify.log,
    onUpstreamError (kind: string) {
      if (upstreamError.hasSubscribers) upstreamError.publish({ route: routeLabel, kind })
    }
  })
  runtime.pools.add(pool)
  const policy = describePolicy(route, rateLimit, inspect)
  runtime.routes.push({ prefix: route.prefix, targets: upstreams, ...policy, websocket: route.websocket === true })

  const forward: ForwardPolicy = { forwardAuthorization: false, tls: runtime.options.tls }

  function proxyRequestHeaders (request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders {
    const out = rewriteUpstreamRequestHeaders(request, headers, forward);
    // Symbol keys survive reply-from's copy and are invisible to undici's header iteration.
    (out as Record<symbol, unknown>)[kProxyRequest] = request
    return out
  }

  function proxyWsHeaders (_headers: IncomingHttpHeaders, request: FastifyRequest): IncomingHttpHeaders {
    const headers: IncomingHttpHeaders = {}
    if (request.headers.cookie !== undefined) headers.cookie = request.headers.cookie
    return rewriteUpstreamRequestHeaders(request, headers, forward)
  }

  function proxyOnError (reply: FastifyReply, { error }: { error: Error & { cause?: unknown, code?: string } }): void {
    const inner = (error.cause instanceof Error ? error.cause : error) as Error & { code?: string }
    if (inner instanceof BodyTooLargeError) {
      reply.header('connection', 'close')
      reply.send(inner)
      return
    }
    if (inner.code === 'GW_UPSTREAM_UNAVAILABLE' || error.code === 'FST_REPLY_FROM_SERVICE_UNAVAILABLE') {
      reply.header('retry-after', String(pool.retryAfterSeconds()))
      reply.send(new UpstreamUnavailableError({ cause: inner }))
      return
    }
    const kind = errorKind(inner)
    if (kind === 'timeout' || error.code === 'FST_REPLY_FROM_GATEWAY_TIMEOUT' || error.code === 'UND_ERR_CONNECT_TIMEOUT') {
      reply.send(new UpstreamTimeoutError({ cause: inner }))
      return
    }
    reply.send(new BadGatewayError({ cause: inner }))
  }

  // Streamed bodies: Fastify's bodyLimit does not see them, so enforce BODY_LIMIT here.
  function proxyBodyLimit (request: FastifyRequest, reply: FastifyReply, payload: RequestPayload, done: (err: Error | null, payload?: RequestPayload) => void): void {
    const declared = request.headers['content-length']
    if (declared !== undefined && Number(declared) > bodyLimit) {
      reply.header('connection', 'close')
      throw new BodyTooLargeError()
    }
    if (declared === undefined && request.headers['transfer-encoding'] === undefined) done(null, payload)
    else done(null, payload.pipe(new BodyLimitStream(bodyLimit)))
  }

  if (!inspectBody) {
    fastify.addHook('preParsing', proxyBodyLimit)
  } else {
    // Bodies the inspection plugin judges are buffered (bounded by bodyLimit) and forwarded
    // byte for byte from that buffer, so the upstream sees exactly what was inspected.
    fastify.removeAllContentTypeParsers()
    fastify.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, function proxyBufferBody (_req, body, done) { done(null, body) })
    fastify.addHook('preHandler', async function proxyReplayBody (request: FastifyRequest) {
      if (Buffer.isBuffer(request.body)) request.body = Readable.from([request.body])
    })
  }

  if (pool.maxInFlight > 0) {
    fastify.addHook('preHandler', async function proxyAdmit (request: FastifyRequest, reply: FastifyReply) {
      if (pool.inFlight >= pool.maxInFlight) {
        reply.header('retry-after', '1')
        if (upstreamError.hasSubscribers) upstreamError.publish({ route: routeLabel, kind: 'overload' })
        throw new RouteOverloadedError()
      }
      pool.inFlight++;
      (request as unknown as Record<symbol, boolean>)[kInFlight] = true
    })
    const release = async function proxyRelease (request: FastifyRequest): Promise<void> {
      const r = request as unknown as Record<symbol, boolean>
      if (r[kInFlight] === true) {
        r[kInFlight] = false
        pool.inFlight--
      }
    }
    fastify.addHook('onResponse', release)
    fastify.addHook('onRequestAbort', release)
  }

  const proxyOptions = {
    upstream: first.origin,
    prefix: route.prefix === '/' ? '' : route.prefix,
    rewritePrefix: basePath + (route.rewritePrefix ?? ''),
    httpMethods: route.methods ?? DEFAULT_METHODS,
    websocket: route.websocket === true,
    proxyPayloads: !inspectBody,
    undici: pool as never,
    disableRequestLogging: true,
    internalRewriteLocationHeader: true,
    config: {
      auth: route.auth ?? {},
      rateLimit,
      inspect,
      websocket: route.websocket === true,
      proxy: { prefix: route.prefix, pool },
      cors: route.cors ?? false
    },
    replyOptions: {
      rewriteRequestHeaders: proxyRequestHeaders,
      rewriteHeaders: rewriteClientResponseHeaders as never,
      onError: proxyOnError as never,
      retryDelay: noRetry
    },
    ...(route.websocket === true ? { wsClientOptions: { rewriteRequestHeaders: proxyWsHeaders as never } } : {})
  }
  await fastify.register(httpProxy as unknown as FastifyPluginAsync<typeof proxyOptions>, proxyOptions)
}
