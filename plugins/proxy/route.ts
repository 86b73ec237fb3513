/**
 * Registers one `defineRoute()` definition: the route's upstream pool, its Fastify routes with the
 * route's policies on route `config` for the other plugins to read, and the proxy handler.
 *
 * Two ways, one behaviour:
 * - in the gateway's shared proxy scope (proxyScopePlugin): the routes of every route module that
 *   streams its bodies live in one Fastify context with one @fastify/reply-from (one Reply class
 *   for all of them, so 1 or 1,000 prefixes cost about the same per request), and the path sent
 *   upstream is the raw path with the prefix swapped for rewritePrefix, query verbatim;
 * - anywhere else (a host app registering the route itself, WebSocket routes, routes that buffer
 *   bodies for inspection with Fastify's own bounded body parser): @fastify/http-proxy in the
 *   route's own encapsulated context, inheriting the hooks of the context it was registered in.
 *
 * Route-level hooks: preParsing (BODY_LIMIT on streamed bodies), preHandler (buffered body ->
 * stream; in-flight cap; on @fastify/http-proxy routes, OPTIONS with Max-Forwards 0, which the
 * shared scope's handler answers itself), onResponse/onRequestAbort (in-flight release).
 */
import { Readable } from 'node:stream'
import httpProxy from '@fastify/http-proxy'
import replyFrom from '@fastify/reply-from'
import type {
  FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction,
  onRequestAbortHookHandler, onResponseHookHandler, preHandlerHookHandler, preParsingHookHandler, RequestPayload
} from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import { constants as http2Constants, type Http2ServerRequest, type ServerHttp2Stream } from 'node:http2'
import { ConfigError } from '../../src/errors.js'
import type { RouteOptions } from '../../src/route.js'
import type { AuthRouteConfig } from '../auth/schema.js'
import type { RateLimitRouteConfig } from '../rate-limit/schema.js'
import type { InspectRouteConfig } from '../inspect/schema.js'
import { upstreamError } from '../observability/signals.js'
import { NonCanonicalPathError } from '../request-guard/errors.js'
import { bodyEndedByClient, limitedBody } from './body-limit.js'
import { BadGatewayError, BodyTooLargeError, ClientGoneError, RouteOverloadedError, UpstreamTimeoutError, UpstreamUnavailableError } from './errors.js'
import { redirectRewriter, rewriteClientResponseHeaders, rewriteUpstreamRequestHeaders, type ForwardPolicy } from './headers.js'
import { BAD_PATH } from '../request-guard/path.js'
import { responseSender, type UpstreamResponse } from './response-buffer.js'
import { errorKind, kProxyPool, kProxyRequest, UpstreamPool } from './upstream-pool.js'
import type { ProxyRuntime } from './index.js'
import { createWebSocketProxy, isWebSocketUpgrade, type WebSocketPolicy } from './websocket.js'
import '../auth/consumer.js'
import { routeConfigWith } from '../../src/route-config.js'

export const DEFAULT_METHODS = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS']
export const DEFAULT_TIMEOUT_MS = 30_000
const kInFlight = Symbol('portcullis.inFlight')
const ZEROS = /^0+$/

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
function noop (): void {}

function resetUnreadStream (this: ServerHttp2Stream): void {
  this.close(http2Constants.NGHTTP2_NO_ERROR)
  // The unread rest of the body keeps a closed stream alive (and its session open): release it.
  this.destroy()
}

type ResponseHeaders = Record<string, string | string[] | undefined>

/** Everything about one route that does not depend on how its Fastify routes are registered. */
interface ProxyRoute {
  readonly pool: UpstreamPool
  readonly config: Record<string, unknown> & { proxy: ProxyRouteConfig }
  readonly methods: string[]
  readonly bufferBody: boolean
  readonly upstreamOrigin: string
  readonly basePath: string
  readonly rewriteRequestHeaders: (request: FastifyRequest, headers: IncomingHttpHeaders) => IncomingHttpHeaders
  /** reply-from's `rewriteHeaders`: hop-by-hop and fingerprints out, redirects mapped to the public prefix. */
  readonly rewriteResponseHeaders: (headers: ResponseHeaders) => ResponseHeaders
  /** OPTIONS with `Max-Forwards: 0`: answered by the gateway (RFC 9110 7.6.2); true when it did. */
  readonly answerMaxForwards: (request: FastifyRequest, reply: FastifyReply) => boolean
  /** WebSocket settings, when the route proxies upgrades. */
  readonly websocket: WebSocketPolicy | null
  readonly onError: (reply: FastifyReply, ctx: { error: Error & { cause?: unknown, code?: string } }) => void
  /** reply-from's `onResponse`: small responses buffered and sent in one write, the rest streamed. */
  readonly onResponse: (request: FastifyRequest, reply: FastifyReply, res: UpstreamResponse) => void
  readonly preParsing: preParsingHookHandler[]
  readonly preHandler: preHandlerHookHandler[]
  readonly release: Array<onResponseHookHandler & onRequestAbortHookHandler>
}

function buildProxyRoute (fastify: FastifyInstance, runtime: ProxyRuntime, route: Readonly<RouteOptions>): ProxyRoute {
  const upstreams = Array.isArray(route.upstream) ? route.upstream : [route.upstream]
  const targets = upstreams.map((u) => new URL(u))
  const first = targets[0] as URL
  const t = route.timeout
  const connectMs = typeof t === 'number' ? t : (t?.connectMs ?? DEFAULT_TIMEOUT_MS)
  const headersMs = typeof t === 'number' ? t : (t?.headersMs ?? DEFAULT_TIMEOUT_MS)
  const bodyIdleMs = typeof t === 'number' ? Math.max(t, DEFAULT_TIMEOUT_MS) : (t?.bodyIdleMs ?? DEFAULT_TIMEOUT_MS)
  const rateLimit = route.rateLimit ?? runtime.defaultRateLimit
  const inspect = route.inspect ?? runtime.defaultInspect
  const bufferBody = buffersBodies(route, runtime)
  const routeLabel = route.prefix
  const bodyLimit = runtime.options.bodyLimit

  const pool = new UpstreamPool({
    targets,
    agent: runtime.agentFor(connectMs),
    headersTimeoutMs: headersMs,
    bodyIdleTimeoutMs: bodyIdleMs,
    sendTimeoutMs: runtime.options.sendTimeoutMs,
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
    responseBufferBytes: runtime.options.responseBufferBytes,
    log: fastify.log,
    onUpstreamError (kind: string) {
      if (upstreamError.hasSubscribers) upstreamError.publish({ route: routeLabel, kind })
    }
  })
  runtime.pools.add(pool)
  const policy = describePolicy(route, rateLimit, inspect)
  runtime.routes.push({ prefix: route.prefix, targets: upstreams, ...policy, websocket: websocketEnabled(route) })

  const forward: ForwardPolicy = { forwardAuthorization: false, tls: runtime.options.tls, filter: runtime.requestHeaderFilter, trustedPeer: runtime.trustedPeer }
  const basePath = first.pathname.replace(/\/+$/, '')
  const rewriteRedirects = redirectRewriter({
    targets,
    upstreamPrefix: (basePath + (route.rewritePrefix ?? '')).replace(/\/+$/, ''),
    publicPrefix: fastify.prefix + (route.prefix === '/' ? '' : route.prefix)
  })

  function proxyResponseHeaders (headers: ResponseHeaders): ResponseHeaders {
    const out = rewriteClientResponseHeaders(headers)
    rewriteRedirects(out)
    return out
  }

  const methods = route.methods ?? DEFAULT_METHODS
  const allow = [...new Set(methods.includes('GET') ? [...methods, 'HEAD'] : methods)].join(', ')

  // RFC 9110 7.6.2: a recipient of OPTIONS with Max-Forwards 0 must not forward it and answers
  // as the final recipient: here, with the methods of the route. (TRACE is never routed.)
  function proxyAnswerMaxForwards (request: FastifyRequest, reply: FastifyReply): boolean {
    if (request.method !== 'OPTIONS') return false
    const value = request.headers['max-forwards']
    if (typeof value !== 'string' || !ZEROS.test(value)) return false
    reply.code(200).header('allow', allow).header('content-length', '0').send()
    return true
  }

  function proxyRequestHeaders (request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders {
    const out = rewriteUpstreamRequestHeaders(request, headers, forward) as Record<string | symbol, unknown>
    // Symbol keys survive reply-from's copy and are invisible to undici's header iteration.
    out[kProxyRequest] = request
    out[kProxyPool] = pool
    return out as IncomingHttpHeaders
  }

  function proxyOnError (reply: FastifyReply, { error }: { error: Error & { cause?: unknown, code?: string } }): void {
    // An upstream request that failed before it took the whole request body (always so past
    // BODY_LIMIT) leaves the rest unread. Over HTTP/1.1 the connection closes after the answer (as
    // reply-from does for an upstream answer that comes early); over HTTP/2 the stream is reset
    // with NO_ERROR once the answer is out (RFC 9113 8.1), which Node does by itself only for
    // bodies never read. Either way the client stops sending, and a drain never waits for it.
    const raw = reply.request.raw
    if (!raw.complete) {
      if (raw.httpVersionMajor === 1) reply.header('connection', 'close')
      else (raw as unknown as Http2ServerRequest).stream.once('finish', resetUnreadStream)
    }
    reply.send(upstreamFailure(reply, error))
  }

  function upstreamFailure (reply: FastifyReply, error: Error & { cause?: unknown, code?: string }): Error {
    const inner = (error.cause instanceof Error ? error.cause : error) as Error & { code?: string }
    if (inner instanceof BodyTooLargeError) {
      if (reply.request.raw.httpVersionMajor === 1) reply.header('connection', 'close')
      return inner
    }
    if (inner.code === 'GW_UPSTREAM_UNAVAILABLE' || error.code === 'FST_REPLY_FROM_SERVICE_UNAVAILABLE') {
      reply.header('retry-after', String(pool.retryAfterSeconds()))
      return new UpstreamUnavailableError({ cause: inner })
    }
    const kind = errorKind(inner)
    if (kind === 'timeout' || error.code === 'FST_REPLY_FROM_GATEWAY_TIMEOUT' || error.code === 'UND_ERR_CONNECT_TIMEOUT') {
      return new UpstreamTimeoutError({ cause: inner })
    }
    return new BadGatewayError({ cause: inner })
  }

  // Streamed bodies: Fastify's bodyLimit does not see them, so enforce BODY_LIMIT here.
  function proxyBodyLimit (request: FastifyRequest, reply: FastifyReply, payload: RequestPayload, done: (err: Error | null, payload?: RequestPayload) => void): void {
    const declared = request.headers['content-length']
    if (declared !== undefined && Number(declared) > bodyLimit) {
      reply.header('connection', 'close')
      throw new BodyTooLargeError()
    }
    // The client reset its HTTP/2 stream before the handler ran: nothing is forwarded.
    if ((payload as RequestPayload & { aborted?: boolean }).aborted === true) throw new ClientGoneError()
    // GET and HEAD content is never forwarded (reply-from drops it; RFC 9110 9.3.1 gives it no
    // meaning): left unread here, Node discards it once the answer is sent. Counted through a
    // stream nobody reads, its limit or a client reset would be an error with no listener.
    // HTTP/2 frames a body without Content-Length or Transfer-Encoding: a stream that its HEADERS
    // frame did not end carries content (RFC 9113 8.1), which BODY_LIMIT must count as well.
    const method = request.method
    if (method === 'GET' || method === 'HEAD' || (declared === undefined && request.headers['transfer-encoding'] === undefined && !(request.raw.httpVersionMajor === 2 && !(request.raw as unknown as Http2ServerRequest).stream.endAfterHeaders))) done(null, payload)
    else done(null, limitedBody(payload as unknown as Readable, bodyLimit, request.headers.expect !== undefined))
  }

  // Bodies the inspection plugin judges are buffered (bounded by bodyLimit) and forwarded byte
  // for byte from that buffer, so the upstream sees exactly what was inspected.
  function proxyReplayBody (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
    // A reset HTTP/2 request's buffered body may be cut short: never forward it as complete.
    if (!bodyEndedByClient(request.raw)) throw new ClientGoneError()
    if (Buffer.isBuffer(request.body)) request.body = Readable.from([request.body])
    done()
  }

  function proxyAdmit (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    if (pool.inFlight >= pool.maxInFlight) {
      reply.header('retry-after', '1')
      if (upstreamError.hasSubscribers) upstreamError.publish({ route: routeLabel, kind: 'overload' })
      throw new RouteOverloadedError()
    }
    pool.inFlight++;
    (request as unknown as Record<symbol, boolean>)[kInFlight] = true
    done()
  }

  function proxyRelease (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const r = request as unknown as Record<symbol, boolean>
    if (r[kInFlight] === true) {
      r[kInFlight] = false
      pool.inFlight--
    }
    done()
  }

  const capped = pool.maxInFlight > 0
  return {
    pool,
    // One hidden class for every route's config (src/route-config.ts).
    config: routeConfigWith<ProxyRoute['config']>(undefined, {
      auth: route.auth ?? {},
      rateLimit,
      inspect,
      websocket: websocketEnabled(route),
      proxy: { prefix: route.prefix, pool },
      cors: route.cors ?? false,
      // Read by the ip-filter plugin; always present (possibly undefined) for one hidden class.
      ipFilter: route.ipFilter,
      allowedContentTypes: route.allowedContentTypes,
      // Read by the openapi plugin: the contract, and how the public path maps to the upstream's.
      openapi: route.openapi ?? false,
      openapiPaths: { strip: fastify.prefix + (route.prefix === '/' ? '' : route.prefix), add: basePath + (route.rewritePrefix ?? '') }
    }),
    methods,
    bufferBody,
    upstreamOrigin: first.origin,
    basePath,
    rewriteRequestHeaders: proxyRequestHeaders,
    rewriteResponseHeaders: proxyResponseHeaders,
    answerMaxForwards: proxyAnswerMaxForwards,
    websocket: websocketEnabled(route) ? websocketPolicy(route, runtime, forward, connectMs + headersMs) : null,
    onError: proxyOnError,
    onResponse: responseSender(proxyOnError),
    preParsing: bufferBody ? [] : [proxyBodyLimit as preParsingHookHandler],
    preHandler: [...(bufferBody ? [proxyReplayBody as preHandlerHookHandler] : []), ...(capped ? [proxyAdmit as preHandlerHookHandler] : [])],
    release: capped ? [proxyRelease as onResponseHookHandler & onRequestAbortHookHandler] : []
  }
}

/**
 * Refuses a route whose paths another route already holds for one of its methods (a second
 * module with the same prefix, or the gateway's /healthz and /readyz), with the prefix named,
 * instead of Fastify's duplicate-route error.
 */
function assertPathsFree (fastify: FastifyInstance, route: Readonly<RouteOptions>, methods: readonly string[], urls: readonly string[]): void {
  for (const url of urls) {
    for (const method of methods) {
      if (fastify.hasRoute({ method: method as never, url })) {
        throw new ConfigError(`route ${route.prefix}`, [`prefix: ${method} ${url} is already routed by another route module, or is one of the gateway's own paths (/healthz, /readyz); choose another prefix`])
      }
    }
  }
}

/** The paths a prefix is routed at: the prefix itself and everything under it. */
function prefixUrls (prefix: string): string[] {
  return prefix === '' ? ['/*'] : [prefix, `${prefix}/*`]
}

function runtimeOf (fastify: FastifyInstance, route: Readonly<RouteOptions>): ProxyRuntime {
  if (!fastify.hasDecorator('portcullisProxy')) {
    throw new ConfigError(`route ${route.prefix}`, ['the gateway-proxy plugin (proxyPlugin) must be registered before defineRoute() plugins'])
  }
  return fastify.portcullisProxy
}

/**
 * Registers the proxy for one route definition through @fastify/http-proxy inside `fastify`,
 * which must be the route's own encapsulated context (its hooks and content-type parsers are local).
 */
export async function registerProxyRoute (fastify: FastifyInstance, route: Readonly<RouteOptions>): Promise<void> {
  const runtime = runtimeOf(fastify, route)
  const r = buildProxyRoute(fastify, runtime, route)
  assertPathsFree(fastify, route, r.methods, prefixUrls(fastify.prefix + (route.prefix === '/' ? '' : route.prefix)))

  for (const hook of r.preParsing) fastify.addHook('preParsing', hook)
  if (r.bufferBody) {
    const bodyLimit = runtime.options.bodyLimit
    fastify.removeAllContentTypeParsers()
    fastify.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, function proxyBufferBody (_req, body, done) { done(null, body) })
  }
  for (const hook of r.preHandler) fastify.addHook('preHandler', hook)
  if (r.methods.includes('OPTIONS')) {
    fastify.addHook('preHandler', function proxyMaxForwards (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
      if (!r.answerMaxForwards(request, reply)) done()
    })
  }
  for (const hook of r.release) {
    fastify.addHook('onResponse', hook)
    fastify.addHook('onRequestAbort', hook as onRequestAbortHookHandler)
  }

  const ws = r.websocket === null ? null : createWebSocketProxy(fastify, r.upstreamOrigin, r.websocket)
  // Upgrades are handled here rather than by @fastify/http-proxy, which answers 101 before it
  // has reached the upstream (see websocket.ts).
  function proxyHandler (request: FastifyRequest, reply: FastifyReply, dest: string, options: unknown): unknown {
    if (ws !== null && isWebSocketUpgrade(request)) {
      return ws.proxy(request, reply, dest, r.release.length === 0 ? undefined : () => { for (const release of r.release) (release as onResponseHookHandler).call(fastify, request, reply, noop) })
    }
    return reply.from(dest, options as never)
  }

  const proxyOptions = {
    upstream: r.upstreamOrigin,
    prefix: route.prefix === '/' ? '' : route.prefix,
    rewritePrefix: r.basePath + (route.rewritePrefix ?? ''),
    httpMethods: r.methods,
    websocket: false,
    handler: proxyHandler,
    proxyPayloads: !r.bufferBody,
    undici: r.pool as never,
    disableRequestLogging: true,
    internalRewriteLocationHeader: false,
    config: r.config,
    replyOptions: {
      rewriteRequestHeaders: r.rewriteRequestHeaders,
      rewriteHeaders: r.rewriteResponseHeaders as never,
      onError: r.onError as never,
      onResponse: r.onResponse as never,
      retryDelay: noRetry
    }
  }
  await fastify.register(httpProxy as unknown as FastifyPluginAsync<typeof proxyOptions>, proxyOptions)
}

/**
 * Registers the routes of one HTTP route definition in the gateway's shared proxy scope.
 * The handler swaps the prefix for the rewrite prefix on the raw path (the query goes upstream
 * verbatim) and hands the request to the scope's @fastify/reply-from.
 */
export function registerScopedProxyRoute (scope: FastifyInstance, runtime: ProxyRuntime, route: Readonly<RouteOptions>): void {
  const r = buildProxyRoute(scope, runtime, route)
  const prefix = route.prefix === '/' ? '' : route.prefix
  const prefixLength = prefix.length
  // No trailing slash: the rest of the path brings its own (as @fastify/http-proxy does it).
  const rewritePrefix = (r.basePath + (route.rewritePrefix ?? '')).replace(/\/+$/, '')
  // With the request guard in front, every path that gets here is already canonical.
  const checkPath = !scope.hasPlugin('gateway-request-guard')
  const upstreamOrigin = r.upstreamOrigin
  const answerMaxForwards = r.answerMaxForwards

  const fromOptions = {
    getUpstream: function upstreamOf (): string { return upstreamOrigin },
    rewriteRequestHeaders: r.rewriteRequestHeaders,
    rewriteHeaders: r.rewriteResponseHeaders,
    onError: r.onError,
    onResponse: r.onResponse,
    retryDelay: noRetry
  }

  function proxyHandler (request: FastifyRequest, reply: FastifyReply): void {
    const url = request.raw.url as string
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    // The router matched this route; the raw path must spell the prefix itself, at a segment
    // boundary, and the rest must be canonical (the request guard refuses the rest earlier).
    const next = path.charCodeAt(prefixLength)
    if (!path.startsWith(prefix) || (next !== 47 && path.length !== prefixLength) || (checkPath && BAD_PATH.test(path))) {
      reply.send(new NonCanonicalPathError())
      return
    }
    if (request.method === 'OPTIONS' && answerMaxForwards(request, reply)) return
    const rest = path.slice(prefixLength)
    const dest = rewritePrefix + rest
    reply.from(dest === '' ? '/' : dest, fromOptions as never)
  }

  const routeOptions = {
    method: r.methods as never,
    config: r.config,
    handler: proxyHandler,
    ...(r.preParsing.length > 0 ? { preParsing: r.preParsing } : {}),
    ...(r.preHandler.length > 0 ? { preHandler: r.preHandler } : {}),
    ...(r.release.length > 0 ? { onResponse: r.release, onRequestAbort: r.release } : {})
  }
  const urls = prefixUrls(prefix)
  assertPathsFree(scope, route, r.methods, urls)
  for (const url of urls) scope.route({ ...routeOptions, url })
}

/**
 * Whether the route buffers request bodies (for inspection, or for its OpenAPI contract, which
 * needs the whole body) instead of streaming them.
 */
function buffersBodies (route: Readonly<RouteOptions>, runtime: ProxyRuntime): boolean {
  const inspect = route.inspect ?? runtime.defaultInspect
  return (inspect !== false && inspect.body === true) || (route.openapi !== undefined && route.openapi !== false)
}

/** Whether a route can live in the shared proxy scope: HTTP only, bodies streamed. */
export function fitsProxyScope (route: Readonly<RouteOptions>, runtime: ProxyRuntime): boolean {
  return !websocketEnabled(route) && !buffersBodies(route, runtime)
}

/** Whether the route proxies WebSocket upgrades. */
function websocketEnabled (route: Readonly<RouteOptions>): boolean {
  return route.websocket !== undefined && route.websocket !== false
}

/** The route's WebSocket settings, resolved once. */
function websocketPolicy (route: Readonly<RouteOptions>, runtime: ProxyRuntime, forward: ForwardPolicy, handshakeTimeoutMs: number): WebSocketPolicy {
  const o = typeof route.websocket === 'object' ? route.websocket : {}
  return Object.freeze({
    maxMessageBytes: o.maxMessageBytes ?? runtime.options.bodyLimit,
    allowedOrigins: o.allowedOrigins === undefined ? null : new Set(o.allowedOrigins),
    requireOrigin: o.requireOrigin ?? false,
    handshakeTimeoutMs,
    forward,
    rejectUnauthorized: runtime.options.upstreamRejectUnauthorized,
    ca: runtime.options.upstreamCa
  })
}

/**
 * The gateway's shared proxy scope: one encapsulated context holding the routes of the gateway's
 * route modules that stream bodies, with one @fastify/reply-from whose dispatcher hands each
 * request to its route's UpstreamPool, and one body parser that passes every body through untouched.
 */
export async function setUpProxyScope (scope: FastifyInstance): Promise<void> {
  scope.removeAllContentTypeParsers()
  scope.addContentTypeParser('*', function proxyBody (_request: FastifyRequest, payload: RequestPayload, done: (err: Error | null, body?: unknown) => void) {
    done(null, payload)
  })
  const dispatcher = {
    request (opts: { headers: Record<string | symbol, unknown> }, callback: (err: Error | null, data?: unknown) => void): void {
      (opts.headers[kProxyPool] as UpstreamPool).request(opts as never, callback as never)
    }
  }
  // No URL cache: with many prefixes its entries churn, outlive the young generation and make
  // every old-generation collection dearer (measured: GC went from 3 to 28 µs per request).
  await scope.register(replyFrom, { undici: dispatcher as never, disableRequestLogging: true, disableCache: true })
}
