/**
 * Registers one `defineRoute()` definition: the route's upstream pool, its Fastify routes with the
 * route's policies on route `config` for the other plugins to read, and the proxy handler.
 *
 * One set of routes and one handler (addProxyRoutes), in one of two places:
 * - the gateway's shared proxy scope (proxyScopePlugin): the routes of every route module that
 *   streams its bodies live in one Fastify context with one @fastify/reply-from (one Reply class
 *   for all of them, so 1 or 1,000 prefixes cost about the same per request);
 * - anywhere else (a host app registering the route itself, WebSocket routes, routes that buffer
 *   bodies for inspection with Fastify's own bounded body parser): a context of the route's own,
 *   with a reply-from of its own, inheriting the hooks of the context it was registered in.
 * Either way the path sent upstream is the raw path with the prefix swapped for rewritePrefix,
 * query verbatim, and reply-from's dispatcher is the gateway's (dispatcher.ts).
 *
 * Route-level hooks: preParsing (BODY_LIMIT on streamed bodies), preHandler (buffered body ->
 * stream; in-flight cap), onResponse/onRequestAbort (in-flight release). OPTIONS with
 * Max-Forwards 0 is answered by the handler.
 */
import { Readable } from 'node:stream'
import replyFrom from '@fastify/reply-from'
import type {
  FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, HTTPMethods,
  onRequestAbortHookHandler, onResponseHookHandler, preHandlerHookHandler, preParsingHookHandler, RequestPayload
} from 'fastify'
import type { FastifyReplyFromHooks } from '@fastify/reply-from'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { constants as http2Constants, type Http2ServerRequest, type ServerHttp2Stream } from 'node:http2'
import { upstreamError } from '../../lib/signals.js'
import { bodyEndedByClient, limitedBody } from './body-limit.js'
import { BadGatewayError, BodyTooLargeError, ClientGoneError, ConfigError, NonCanonicalPathError, RouteOverloadedError, UpstreamTimeoutError, UpstreamUnavailableError } from '../../lib/errors.js'
import { redirectRewriter, rewriteClientResponseHeaders, rewriteUpstreamRequestHeaders, type ForwardPolicy } from './headers.js'
import { BAD_PATH } from '../../lib/path.js'
import { responseSender, type ProxyErrorMapper, type UpstreamResponse } from './response-buffer.js'
import { errorKind, UpstreamPool } from './upstream-pool.js'
import { proxyFrom, replyFromDispatcher } from './dispatcher.js'
import type { ProxyRouteInput, ProxyRuntime } from './schema.js'
import { createWebSocketProxy, isWebSocketUpgrade, takeBearerOffer, type WebSocketPolicy } from './websocket.js'
import '../../lib/consumer.js'
import type { ProxyRouteInfo } from '../../lib/route-contract.js'
import { routeConfigWith } from '../../lib/route-config.js'

export const DEFAULT_METHODS: readonly HTTPMethods[] = ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS']
export const DEFAULT_TIMEOUT_MS = 30_000
/** On a request of a route with `maxInFlight`: it holds one of the route's in-flight places. */
export const kInFlight: unique symbol = Symbol('portcullis.inFlight')
const ZEROS = /^0+$/

/** Proxy settings of a route, on `config.proxy` (the prefix is read by the access log and metrics). */
export interface ProxyRouteConfig extends ProxyRouteInfo {
  readonly pool: UpstreamPool
}

declare module 'fastify' {
  interface FastifyRequest {
    [kInFlight]?: boolean
  }
}

function noRetry (): null { return null }

/** Whether the client's request came over HTTP/2 (its `stream` is the HTTP/2 stream). */
function isHttp2 (raw: IncomingMessage | Http2ServerRequest): raw is Http2ServerRequest {
  return raw.httpVersionMajor === 2
}

/** The route's reply-from options, as the gateway's functions type them. */
interface ProxyFromHooks {
  readonly rewriteRequestHeaders: (request: FastifyRequest, headers: IncomingHttpHeaders) => IncomingHttpHeaders
  readonly rewriteHeaders: (headers: ResponseHeaders) => ResponseHeaders
  readonly onError: ProxyErrorMapper
  readonly onResponse: (request: FastifyRequest, reply: FastifyReply, res: UpstreamResponse) => void
  readonly retryDelay: () => null
}

/**
 * The one place the gateway's hook types meet reply-from's declarations, which differ in two ways
 * only: they take the request and reply of any server (`RawServerBase`: HTTP/1.1 or HTTP/2) where
 * the gateway's plugins type them with Fastify's defaults, and they declare `onResponse`'s
 * `res` as a server response while reply-from hands it `{ statusCode, headers, stream }`
 * (its lib/request.js), which is what `UpstreamResponse` says.
 */
function replyFromHooks (hooks: ProxyFromHooks): FastifyReplyFromHooks {
  return hooks as unknown as FastifyReplyFromHooks
}
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
  readonly methods: HTTPMethods[]
  readonly bufferBody: boolean
  readonly upstreamOrigin: string
  readonly basePath: string
  /**
   * reply-from's options for every request of the route: `rewriteRequestHeaders`, `rewriteHeaders`
   * (hop-by-hop and fingerprints out, redirects mapped to the public prefix), `onError`,
   * `onResponse` (small responses buffered and sent in one write, the rest streamed), no retries.
   */
  readonly fromHooks: FastifyReplyFromHooks
  /** OPTIONS with `Max-Forwards: 0`: answered by the gateway (RFC 9110 7.6.2); true when it did. */
  readonly answerMaxForwards: (request: FastifyRequest, reply: FastifyReply) => boolean
  /** WebSocket settings, when the route proxies upgrades. */
  readonly websocket: WebSocketPolicy | null
  readonly preParsing: preParsingHookHandler[]
  readonly preHandler: preHandlerHookHandler[]
  readonly release: Array<onResponseHookHandler & onRequestAbortHookHandler>
}

function buildProxyRoute (fastify: FastifyInstance, runtime: ProxyRuntime, route: ProxyRouteInput): ProxyRoute {
  const upstreams = Array.isArray(route.upstream) ? route.upstream : [route.upstream]
  const targets = upstreams.map((u) => new URL(u))
  const first = targets[0] as URL
  const t = route.timeout
  const connectMs = typeof t === 'number' ? t : (t?.connectMs ?? DEFAULT_TIMEOUT_MS)
  const headersMs = typeof t === 'number' ? t : (t?.headersMs ?? DEFAULT_TIMEOUT_MS)
  const bodyIdleMs = typeof t === 'number' ? Math.max(t, DEFAULT_TIMEOUT_MS) : (t?.bodyIdleMs ?? DEFAULT_TIMEOUT_MS)
  const bufferBody = route.bufferBody
  const routeLabel = route.prefix
  const bodyLimit = runtime.options.bodyLimit

  const pool = new UpstreamPool({
    targets,
    agent: runtime.agentFor(connectMs, route.upstreamTls),
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
  runtime.routes.push({ hosts: hostList(route), prefix: route.prefix, targets: [...upstreams], ...route.policy, websocket: websocketEnabled(route) })

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

  const methods = [...(route.methods ?? DEFAULT_METHODS)]
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
    return rewriteUpstreamRequestHeaders(request, headers, forward)
  }

  function proxyOnError (reply: FastifyReply, { error }: { error: Error & { cause?: unknown, code?: string } }): void {
    // An upstream request that failed before it took the whole request body (always so past
    // BODY_LIMIT) leaves the rest unread. Over HTTP/1.1 the connection closes after the answer (as
    // reply-from does for an upstream answer that comes early); over HTTP/2 the stream is reset
    // with NO_ERROR once the answer is out (RFC 9113 8.1), which Node does by itself only for
    // bodies never read. Either way the client stops sending, and a drain never waits for it.
    const raw = reply.request.raw
    if (!raw.complete) {
      if (isHttp2(raw)) raw.stream.once('finish', resetUnreadStream)
      else reply.header('connection', 'close')
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
    if (method === 'GET' || method === 'HEAD' || (declared === undefined && request.headers['transfer-encoding'] === undefined && !(isHttp2(request.raw) && !request.raw.stream.endAfterHeaders))) done(null, payload)
    else done(null, limitedBody(payload, bodyLimit, request.headers.expect !== undefined))
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
    pool.inFlight++
    request[kInFlight] = true
    done()
  }

  function proxyRelease (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
    if (request[kInFlight] === true) {
      request[kInFlight] = false
      pool.inFlight--
    }
    done()
  }

  const capped = pool.maxInFlight > 0
  return {
    pool,
    // One hidden class for every route's config (lib/route-config.ts).
    config: routeConfigWith<ProxyRoute['config']>(undefined, {
      ...route.config,
      websocket: websocketEnabled(route),
      proxy: { prefix: route.prefix, pool }
    }),
    methods,
    bufferBody,
    upstreamOrigin: first.origin,
    basePath,
    fromHooks: replyFromHooks({
      rewriteRequestHeaders: proxyRequestHeaders,
      rewriteHeaders: proxyResponseHeaders,
      onError: proxyOnError,
      onResponse: responseSender(proxyOnError),
      retryDelay: noRetry
    }),
    answerMaxForwards: proxyAnswerMaxForwards,
    websocket: websocketEnabled(route) ? websocketPolicy(route, runtime, forward, connectMs + headersMs) : null,
    preParsing: bufferBody ? [] : [proxyBodyLimit as preParsingHookHandler],
    preHandler: [...(bufferBody ? [proxyReplayBody as preHandlerHookHandler] : []), ...(capped ? [proxyAdmit as preHandlerHookHandler] : [])],
    release: capped ? [proxyRelease as onResponseHookHandler & onRequestAbortHookHandler] : []
  }
}

/** The host names a route is bound to (empty: any host). */
export function hostList (route: Pick<ProxyRouteInput, 'host'>): readonly string[] {
  return route.host === undefined ? [] : typeof route.host === 'string' ? [route.host] : route.host
}

/**
 * find-my-way's `host` constraint for a route's host names: one RegExp over the Host (HTTP/2
 * `:authority`) value as sent, in any letter case, with or without a port and a final dot;
 * `*.example.com` matches any subdomain, at any depth, not `example.com` itself.
 */
export function hostConstraint (hosts: readonly string[]): RegExp {
  const names = hosts.map((h) => h.startsWith('*.')
    ? '(?:[a-z0-9-]+\\.)+' + escapeRegExp(h.slice(2))
    : escapeRegExp(h))
  return new RegExp(`^(?:${names.join('|')})\\.?(?::\\d{1,5})?$`, 'i')
}

function escapeRegExp (s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** Whether two host lists can name one host (an exact name, or one under the other's wildcard). */
function hostsOverlap (a: readonly string[], b: readonly string[]): string | undefined {
  const covers = (w: string, h: string): boolean => w.startsWith('*.') && h.endsWith(w.slice(1))
  for (const x of a) {
    for (const y of b) {
      if (x === y || covers(x, y) || covers(y, x)) return x === y ? x : `${x} / ${y}`
    }
  }
  return undefined
}

interface HostBinding {
  readonly source: string
  readonly prefix: string
  readonly hosts: readonly string[]
  readonly methods: ReadonlySet<string>
}

/** The routes bound to hosts on each gateway, by the path they are routed at. */
const hostBindings = new WeakMap<ProxyRuntime, Map<string, HostBinding[]>>()

/**
 * Refuses a route whose paths another route already holds for one of its methods (a second
 * module with the same prefix and no host, or the gateway's /healthz and /readyz), with the
 * prefix named, instead of Fastify's duplicate-route error. Routes bound to hosts may share a
 * prefix when their host names differ; two that can answer one host name both route modules.
 */
function assertPathsFree (fastify: FastifyInstance, runtime: ProxyRuntime, route: ProxyRouteInput, methods: readonly HTTPMethods[], urls: readonly string[]): void {
  const hosts = hostList(route)
  if (hosts.length === 0) {
    for (const url of urls) {
      for (const method of methods) {
        if (fastify.hasRoute({ method, url })) {
          throw new ConfigError(`route ${route.prefix}`, [`prefix: ${method} ${url} is already routed by another route module, or is one of the gateway's own paths (/healthz, /readyz); choose another prefix`])
        }
      }
    }
    return
  }
  let table = hostBindings.get(runtime)
  if (table === undefined) {
    table = new Map()
    hostBindings.set(runtime, table)
  }
  const key = urls[0] as string
  const bound = table.get(key) ?? []
  for (const other of bound) {
    const shared = methods.filter((m) => other.methods.has(m))
    const host = shared.length === 0 ? undefined : hostsOverlap(hosts, other.hosts)
    if (host !== undefined) {
      throw new ConfigError(`route ${route.prefix}`, [`host: ${host} on prefix ${route.prefix} (${shared.join(', ')}) is already routed by ${other.source}; routes of one prefix and method need host names that cannot name one host`])
    }
  }
  bound.push({ source: route.source ?? `route ${route.prefix}`, prefix: route.prefix, hosts, methods: new Set(methods) })
  table.set(key, bound)
}

/** The paths a prefix is routed at: the prefix itself and everything under it. */
function prefixUrls (prefix: string): string[] {
  return prefix === '' ? ['/*'] : [prefix, `${prefix}/*`]
}

/** The gateway-proxy runtime a route registers against (GW_CONFIG_INVALID naming the prefix when the plugin is missing). */
export function proxyRuntimeOf (fastify: FastifyInstance, prefix: string): ProxyRuntime {
  if (!fastify.hasDecorator('portcullisProxy')) {
    throw new ConfigError(`route ${prefix}`, ['the gateway-proxy plugin (proxyPlugin) must be registered before defineRoute() plugins'])
  }
  return fastify.portcullisProxy
}

/**
 * Registers the proxy for one route definition inside `fastify`, which must be the route's own
 * encapsulated context (its hooks, content-type parsers and reply-from are local): the same
 * routes and handler as in the shared proxy scope (addProxyRoutes), plus WebSocket upgrades and,
 * for routes that inspect bodies, Fastify's bounded body parser.
 */
export async function registerProxyRoute (fastify: FastifyInstance, route: ProxyRouteInput): Promise<void> {
  const runtime = proxyRuntimeOf(fastify, route.prefix)
  const r = buildProxyRoute(fastify, runtime, route)
  assertPathsFree(fastify, runtime, route, r.methods, prefixUrls(fastify.prefix + (route.prefix === '/' ? '' : route.prefix)))
  if (r.bufferBody) {
    const bodyLimit = runtime.options.bodyLimit
    fastify.removeAllContentTypeParsers()
    fastify.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, function proxyBufferBody (_req, body, done) { done(null, body) })
  } else {
    passBodiesThrough(fastify)
  }
  // In the route's context, so it runs before the auth plugin's route-level hook.
  if (r.websocket?.bearerProtocol === true) fastify.addHook('onRequest', takeBearerOffer)
  await fastify.register(replyFrom, REPLY_FROM_OPTIONS)
  addProxyRoutes(fastify, r, route)
}

/**
 * Registers the routes of one HTTP route definition in the gateway's shared proxy scope.
 */
export function registerScopedProxyRoute (scope: FastifyInstance, runtime: ProxyRuntime, route: ProxyRouteInput): void {
  const r = buildProxyRoute(scope, runtime, route)
  assertPathsFree(scope, runtime, route, r.methods, prefixUrls(scope.prefix + (route.prefix === '/' ? '' : route.prefix)))
  addProxyRoutes(scope, r, route)
}

/**
 * The Fastify routes of one route definition, in the shared proxy scope or in the route's own
 * context alike: the prefix and everything under it, for the route's methods, with its `config`
 * and its route-level hooks. The handler swaps the prefix for the rewrite prefix on the raw path
 * (the query goes upstream verbatim) and hands the request to the context's @fastify/reply-from,
 * or, for a WebSocket upgrade on a route that proxies them, to websocket.ts.
 */
function addProxyRoutes (instance: FastifyInstance, r: ProxyRoute, route: ProxyRouteInput): void {
  const ownPrefix = route.prefix === '/' ? '' : route.prefix
  // The raw path spells the prefixes of the contexts above as well.
  const prefix = instance.prefix + ownPrefix
  const prefixLength = prefix.length
  // No trailing slash: the rest of the path brings its own.
  const rewritePrefix = (r.basePath + (route.rewritePrefix ?? '')).replace(/\/+$/, '')
  // With the request guard in front, every path that gets here is already canonical.
  const checkPath = !instance.hasPlugin('portcullis-request-guard')
  const upstreamOrigin = r.upstreamOrigin
  const answerMaxForwards = r.answerMaxForwards
  const pool = r.pool
  const release = r.release
  const ws = r.websocket === null ? null : createWebSocketProxy(instance, upstreamOrigin, r.websocket)

  const fromOptions: FastifyReplyFromHooks = {
    getUpstream: function upstreamOf (): string { return upstreamOrigin },
    ...r.fromHooks
  }

  function proxyHandler (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> | undefined {
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
    const joined = rewritePrefix + path.slice(prefixLength)
    const dest = joined === '' ? '/' : joined
    // Upgrades are proxied by websocket.ts, which answers 101 only once the upstream has.
    if (ws !== null && isWebSocketUpgrade(request)) {
      return ws.proxy(request, reply, dest, release.length === 0 ? undefined : () => { for (const hook of release) (hook as onResponseHookHandler).call(instance, request, reply, noop) })
    }
    proxyFrom(reply, pool, dest, fromOptions)
  }

  const hosts = hostList(route)
  const routeOptions = {
    method: r.methods,
    ...(hosts.length > 0 ? { constraints: { host: hostConstraint(hosts) } } : {}),
    config: r.config,
    handler: proxyHandler,
    ...(r.preParsing.length > 0 ? { preParsing: r.preParsing } : {}),
    ...(r.preHandler.length > 0 ? { preHandler: r.preHandler } : {}),
    ...(release.length > 0 ? { onResponse: release, onRequestAbort: release } : {})
  }
  // Under a register prefix, the route '/' is the prefix itself and everything under it.
  const urls = ownPrefix === '' && instance.prefix !== '' ? ['/', '/*'] : prefixUrls(ownPrefix)
  for (const url of urls) instance.route({ ...routeOptions, url })
}

/** Every request body goes upstream as the bytes the client sent (a stream, never parsed). */
function passBodiesThrough (instance: FastifyInstance): void {
  instance.removeAllContentTypeParsers()
  instance.addContentTypeParser('*', function proxyBody (_request: FastifyRequest, payload: RequestPayload, done: (err: Error | null, body?: unknown) => void) {
    done(null, payload)
  })
}

/**
 * The @fastify/reply-from of a proxy context: the gateway's dispatcher (dispatcher.ts); no URL
 * cache: with many prefixes its entries churn, outlive the young generation and make every
 * old-generation collection dearer (measured: GC went from 3 to 28 µs per request).
 */
const REPLY_FROM_OPTIONS = { undici: replyFromDispatcher, disableRequestLogging: true, disableCache: true }

/** Whether a route can live in the shared proxy scope: HTTP only, bodies streamed. */
export function fitsProxyScope (route: ProxyRouteInput): boolean {
  return !websocketEnabled(route) && !route.bufferBody
}

/** Whether the route proxies WebSocket upgrades. */
function websocketEnabled (route: ProxyRouteInput): boolean {
  return route.websocket !== undefined && route.websocket !== false
}

/** The route's WebSocket settings, resolved once. */
function websocketPolicy (route: ProxyRouteInput, runtime: ProxyRuntime, forward: ForwardPolicy, handshakeTimeoutMs: number): WebSocketPolicy {
  const o = typeof route.websocket === 'object' ? route.websocket : {}
  return Object.freeze({
    maxMessageBytes: o.maxMessageBytes ?? runtime.options.bodyLimit,
    allowedOrigins: o.allowedOrigins === undefined ? null : new Set(o.allowedOrigins),
    requireOrigin: o.requireOrigin ?? false,
    bearerProtocol: o.bearerProtocol ?? false,
    maxMessagesPerSecond: o.maxMessagesPerSecond ?? 0,
    idleTimeoutMs: o.idleTimeoutMs ?? 0,
    handshakeTimeoutMs,
    forward,
    rejectUnauthorized: runtime.options.upstreamRejectUnauthorized,
    ca: route.upstreamTls?.ca ?? runtime.options.upstreamCa,
    clientTls: route.upstreamTls
  })
}

/**
 * The gateway's shared proxy scope: one encapsulated context holding the routes of the gateway's
 * route modules that stream bodies, with one @fastify/reply-from whose dispatcher hands each
 * request to its route's UpstreamPool (dispatcher.ts), and one body parser that passes every body through untouched.
 */
export async function setUpProxyScope (scope: FastifyInstance): Promise<void> {
  passBodiesThrough(scope)
  await scope.register(replyFrom, REPLY_FROM_OPTIONS)
}
