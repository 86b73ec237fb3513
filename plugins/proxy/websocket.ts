/**
 * WebSocket proxying for routes with `websocket` set.
 *
 * An upgrade request is dispatched through the Fastify router, so every onRequest policy (request
 * guard, auth, rate limit, inspection) judges the handshake like any request. Then, in the route
 * handler:
 * - the handshake is checked (RFC 6455 4.2.1) and the route's Origin allow-list applied
 *   (RFC 6455 10.2, cross-site WebSocket hijacking): 400 / 403 and the upstream receives nothing;
 * - the upstream handshake is made first, with the client's end-to-end headers (Origin, Cookie,
 *   User-Agent, subprotocols...) and the gateway's own (x-forwarded-*, x-consumer-* and a
 *   forward-auth service's identity headers, x-request-id: headers.ts, as for any request),
 *   never hop-by-hop headers, the API key or Authorization;
 * - only when the upstream has answered 101 does the client get its 101, with the subprotocol the
 *   upstream chose; an upstream refusal (4xx/5xx) is passed on with its WWW-Authenticate and a
 *   small body, anything else is 502 (504 on timeout), as nginx and Envoy pass a non-101 answer on;
 * - messages are relayed one by one, each bounded by the route's `maxMessageBytes` in both
 *   directions (close 1009 past it, RFC 6455 7.4.1), and a side is paused while the other side's
 *   send buffer is full, so memory per connection stays bounded whatever the peers send.
 * - with `maxMessagesPerSecond`, a client sending faster is closed with 1008; with `idleTimeoutMs`,
 *   a connection without messages either way for that long is closed with 1001 on both sides;
 * - with `bearerProtocol`, the token of a `portcullis.bearer.<jwt>` subprotocol offer authenticates
 *   the handshake (takeBearerOffer); such offers are never forwarded or chosen, on any route.
 * Ping/pong is answered per leg. On close the connections are closed with 1001 (going away).
 * Errors: GW_WEBSOCKET_HANDSHAKE (400), GW_WEBSOCKET_ORIGIN (403), GW_UPSTREAM_BAD_GATEWAY (502),
 * GW_UPSTREAM_TIMEOUT (504).
 */
import { ServerResponse, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import WebSocket, { WebSocketServer } from 'ws'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { BadGatewayError, UpstreamTimeoutError, WebSocketHandshakeError, WebSocketOriginError } from '../../lib/errors.js'
import { rewriteClientResponseHeaders, rewriteUpstreamRequestHeaders, type ForwardPolicy } from './headers.js'
import type { ProxyUpstreamTls } from './schema.js'
import { BEARER_PROTOCOL_PREFIX, kUpgradeBearer } from '../../lib/upgrade-credential.js'

/** Settings of one WebSocket route, resolved at startup. */
export interface WebSocketPolicy {
  /** Largest message relayed, in either direction (ws `maxPayload`). */
  readonly maxMessageBytes: number
  /** Exact origins (`scheme://host[:port]`) allowed to open a connection; null = any. */
  readonly allowedOrigins: ReadonlySet<string> | null
  /** Refuse handshakes that carry no Origin (default: allowed, non-browser clients send none). */
  readonly requireOrigin: boolean
  /** Take a bearer token from a `portcullis.bearer.<jwt>` subprotocol offer (takeBearerOffer). */
  readonly bearerProtocol: boolean
  /** Messages a client may send per second on one connection (0: unlimited); past it: close 1008. */
  readonly maxMessagesPerSecond: number
  /** Close both sides with 1001 after this long without a message either way (0: never). */
  readonly idleTimeoutMs: number
  /** Upstream handshake timeout (connect + response). */
  readonly handshakeTimeoutMs: number
  readonly forward: ForwardPolicy
  readonly rejectUnauthorized: boolean
  readonly ca: string | undefined
  /** The route's client certificate and server name toward the upstream (`upstreamTls`). */
  readonly clientTls: ProxyUpstreamTls | undefined
}

/** Options of the TLS connection to an upstream (wss://). */
function tlsOptions (policy: WebSocketPolicy): { rejectUnauthorized: boolean, ca?: string, cert?: string, key?: string, servername?: string } {
  const c = policy.clientTls
  return {
    rejectUnauthorized: policy.rejectUnauthorized,
    ...(policy.ca !== undefined ? { ca: policy.ca } : {}),
    ...(c !== undefined ? { cert: c.cert, key: c.key } : {}),
    ...(c?.serverName !== undefined ? { servername: c.serverName } : {})
  }
}

const kSocket = Symbol('portcullis.wsSocket')
const kHead = Symbol('portcullis.wsHead')
const kProtocol = Symbol('portcullis.wsProtocol')
const kUpgradeState = Symbol('portcullis.wsUpgrade')

type UpgradeRequest = IncomingMessage & { [kSocket]?: Duplex, [kHead]?: Buffer, [kProtocol]?: string }

interface UpgradeState {
  readonly prefixes: string[]
  readonly open: Set<WebSocket>
}

/** Bytes of an upstream refusal body passed on to the client; a larger one gets 502. */
const REFUSAL_BODY_BYTES = 16 * 1024
/** A side stops being read while the other side has more than this queued for sending. */
const HIGH_WATER_BYTES = 1024 * 1024
const KEY = /^[+/0-9A-Za-z]{22}==$/
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** Headers of the client's handshake that the upstream handshake makes itself. */
const HANDSHAKE_ONLY = ['host', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'sec-websocket-accept', 'content-length'] as const
/** Headers of an upstream refusal that describe the upgrade or its framing, not the refusal. */
const REFUSAL_DROP = new Set(['content-length', 'transfer-encoding', 'sec-websocket-accept', 'sec-websocket-protocol', 'sec-websocket-extensions', 'set-cookie'])

/** Whether a request is a WebSocket upgrade dispatched by this module. */
export function isWebSocketUpgrade (request: FastifyRequest): boolean {
  return (request.raw as UpgradeRequest)[kSocket] !== undefined
}

/** The subprotocols a client offers (RFC 6455 4.1: tokens, no duplicates), or null when malformed. */
function offeredProtocols (header: string | undefined): string[] | null {
  if (header === undefined) return []
  const out: string[] = []
  for (const part of header.split(',')) {
    const p = part.trim()
    if (!TOKEN.test(p) || out.includes(p)) return null
    // A credential, never a subprotocol: not forwarded upstream, so never chosen for the 101.
    if (!p.startsWith(BEARER_PROTOCOL_PREFIX)) out.push(p)
  }
  return out
}

/**
 * onRequest hook of the context of a route with `bearerProtocol`: takes the one
 * `portcullis.bearer.<token>` offer out of an upgrade request's `Sec-WebSocket-Protocol`
 * (browsers cannot set `Authorization` on a handshake) and hands the token to the auth plugin
 * (lib/upgrade-credential.ts). Two such offers: 400. Other requests are untouched.
 */
export function takeBearerOffer (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void {
  const header = request.headers['sec-websocket-protocol']
  if (typeof header !== 'string' || !header.includes(BEARER_PROTOCOL_PREFIX) || !isWebSocketUpgrade(request)) {
    done()
    return
  }
  const rest: string[] = []
  let token: string | undefined
  for (const part of header.split(',')) {
    const p = part.trim()
    if (!p.startsWith(BEARER_PROTOCOL_PREFIX)) rest.push(p)
    else if (token === undefined && p.length > BEARER_PROTOCOL_PREFIX.length) token = p.slice(BEARER_PROTOCOL_PREFIX.length)
    else {
      done(new WebSocketHandshakeError())
      return
    }
  }
  request[kUpgradeBearer] = token
  if (rest.length === 0) delete request.headers['sec-websocket-protocol']
  else request.headers['sec-websocket-protocol'] = rest.join(', ')
  done()
}

/** RFC 6455 4.2.1: GET, Upgrade: websocket, a 16-byte base64 key, version 13. */
function validHandshake (request: FastifyRequest): boolean {
  const h = request.headers
  // RFC 6455 4.1 / 4.2.1: an HTTP/1.1 GET, with no content. Node hands every byte after the header
  // block to the upgrade as WebSocket data, whatever Content-Length or Transfer-Encoding said.
  return request.method === 'GET' && request.raw.httpVersion === '1.1' &&
    h['transfer-encoding'] === undefined && (h['content-length'] === undefined || h['content-length'] === '0') &&
    typeof h.upgrade === 'string' && h.upgrade.toLowerCase() === 'websocket' &&
    typeof h['sec-websocket-key'] === 'string' && KEY.test(h['sec-websocket-key']) &&
    h['sec-websocket-version'] === '13'
}

/** The client's headers for the upstream: the gateway's header policy, minus what Connection names. */
function upstreamHeaders (request: FastifyRequest, forward: ForwardPolicy): Record<string, string | string[]> {
  let incoming: IncomingHttpHeaders = request.headers
  const connection = incoming.connection
  if (typeof connection === 'string') {
    // RFC 9110 7.6.1: the fields Connection names are hop-by-hop too.
    incoming = { ...incoming }
    for (const name of connection.split(',')) delete incoming[name.trim().toLowerCase()]
  }
  const headers = rewriteUpstreamRequestHeaders(request, incoming, forward)
  for (const name of HANDSHAKE_ONLY) delete headers[name]
  const out: Record<string, string | string[]> = {}
  for (const name in headers) {
    const v = headers[name]
    if (v !== undefined) out[name] = v
  }
  return out
}

/** Closes a connection with a code it may send (1005/1006 are only ever reported, RFC 6455 7.4.1). */
function closeWith (ws: WebSocket, code: number, reason?: Buffer): void {
  if (ws.readyState !== WebSocket.OPEN) return
  if (code === 1005) ws.close()
  else if (code === 1006) ws.close(1001)
  else ws.close(code, reason)
}

/** Relays messages from `from` to `to`, pausing `from` while `to` has too much queued. */
function relay (from: WebSocket, to: WebSocket, admit?: () => boolean): void {
  function resumeWhenDrained (): void {
    if (from.isPaused && to.bufferedAmount <= HIGH_WATER_BYTES) from.resume()
  }
  from.on('message', function wsRelayMessage (data: WebSocket.RawData, isBinary: boolean) {
    if (to.readyState !== WebSocket.OPEN || (admit !== undefined && !admit())) return
    to.send(data, { binary: isBinary }, resumeWhenDrained)
    if (to.bufferedAmount > HIGH_WATER_BYTES) from.pause()
  })
  from.on('error', function wsRelayError (err: Error & { code?: string }) {
    // ws already answered the sender with 1009 (message too big) or 1002/1007 (protocol).
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') closeWith(to, 1009)
  })
  from.on('close', function wsRelayClose (code: number, reason: Buffer) {
    closeWith(to, code, reason)
    if (to.readyState === WebSocket.CONNECTING) to.terminate()
  })
}

/**
 * The client's message budget: at most `max` messages per second (one-second windows); the
 * message past it is not relayed and the client is closed with 1008 (policy violation, RFC 6455
 * 7.4.1), which the relay passes on to the upstream. Undefined when unlimited.
 */
function messageRate (client: WebSocket, max: number): (() => boolean) | undefined {
  if (max === 0) return undefined
  let windowStart = performance.now()
  let count = 0
  return function wsMessageRate (): boolean {
    const now = performance.now()
    if (now - windowStart >= 1000) {
      windowStart = now
      count = 0
    }
    if (++count <= max) return true
    closeWith(client, 1008, Buffer.from('message rate exceeded'))
    return false
  }
}

/** Closes both sides with 1001 (going away) once no message has passed either way for `ms`. */
function closeWhenIdle (client: WebSocket, upstream: WebSocket, ms: number): void {
  const timer = setTimeout(function wsIdle () {
    closeWith(client, 1001, Buffer.from('idle'))
    closeWith(upstream, 1001)
  }, ms)
  timer.unref()
  function active (): void { timer.refresh() }
  client.on('message', active)
  upstream.on('message', active)
  client.once('close', () => { clearTimeout(timer) })
}

/** Reads at most `limit` bytes of a response body; null when it is longer. */
async function smallBody (res: IncomingMessage, limit: number): Promise<Buffer | null> {
  return await new Promise((resolve) => {
    const chunks: Buffer[] = []
    let size = 0
    res.on('data', (c: Buffer) => {
      size += c.length
      if (size > limit) { resolve(null); res.destroy(); return }
      chunks.push(c)
    })
    res.on('end', () => { resolve(Buffer.concat(chunks)) })
    res.on('error', () => { resolve(null) })
    res.on('close', () => { resolve(null) })
  })
}

/**
 * Installs the server's one 'upgrade' listener (shared by every WebSocket route of the server):
 * it routes the upgrade request through Fastify with a response bound to the socket, so hooks
 * and error replies work as for any request. Connections still open are closed with 1001 when
 * the gateway closes.
 */
function upgradeState (fastify: FastifyInstance): UpgradeState {
  const server = fastify.server as typeof fastify.server & { [kUpgradeState]?: UpgradeState }
  const existing = server[kUpgradeState]
  if (existing !== undefined) return existing
  const state: UpgradeState = { prefixes: [], open: new Set() }
  server[kUpgradeState] = state
  function within (url: string): boolean {
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    return state.prefixes.some((p) => p === '' || path === p || path.startsWith(`${p}/`))
  }
  server.on('upgrade', function wsUpgrade (raw: UpgradeRequest, socket: Duplex, head: Buffer) {
    // Beside other upgrade listeners of a host app, only this gateway's prefixes are taken.
    if (server.listenerCount('upgrade') > 1 && !within(raw.url ?? '/')) return
    socket.on('error', () => {})
    raw[kSocket] = socket
    raw[kHead] = head
    const res = new ServerResponse(raw)
    res.assignSocket(socket as never)
    res.shouldKeepAlive = false
    res.on('finish', () => { socket.destroy() })
    fastify.routing(raw, res)
  })
  fastify.addHook('preClose', function wsGoingAway (done) {
    for (const ws of state.open) closeWith(ws, 1001)
    done()
  })
  return state
}

/** The WebSocket side of one route: call `proxy` from the route handler for upgrade requests. */
export interface WebSocketProxy {
  /** `onClosed` runs once the client connection of a switched handshake has closed. */
  proxy: (request: FastifyRequest, reply: FastifyReply, dest: string, onClosed?: () => void) => Promise<FastifyReply | undefined>
}

/** Sets up WebSocket proxying for one route whose upstream is `upstreamOrigin`. */
export function createWebSocketProxy (fastify: FastifyInstance, upstreamOrigin: string, policy: WebSocketPolicy): WebSocketProxy {
  const state = upgradeState(fastify)
  state.prefixes.push(fastify.prefix)
  const wsOrigin = upstreamOrigin.replace(/^http/, 'ws')
  const secure = wsOrigin.startsWith('wss:')
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: policy.maxMessageBytes,
    handleProtocols: (_offered, req) => (req as UpgradeRequest)[kProtocol] ?? false
  })

  function track (ws: WebSocket): void {
    state.open.add(ws)
    ws.once('close', () => { state.open.delete(ws) })
  }

  async function proxy (request: FastifyRequest, reply: FastifyReply, dest: string, onClosed?: () => void): Promise<FastifyReply | undefined> {
    const raw = request.raw as UpgradeRequest
    const socket = raw[kSocket] as Duplex
    const protocols = offeredProtocols(request.headers['sec-websocket-protocol'])
    if (!validHandshake(request) || protocols === null) throw new WebSocketHandshakeError()
    const origin = request.headers.origin
    if (origin === undefined
      ? policy.requireOrigin
      : policy.allowedOrigins !== null && !policy.allowedOrigins.has(origin.toLowerCase())) {
      request.log.debug({ origin }, 'websocket origin refused')
      throw new WebSocketOriginError()
    }

    const q = (raw.url ?? '').indexOf('?')
    const url = wsOrigin + dest + (q === -1 ? '' : (raw.url as string).slice(q))
    const upstream = new WebSocket(url, protocols, {
      headers: upstreamHeaders(request, policy.forward),
      followRedirects: false,
      perMessageDeflate: false,
      maxPayload: policy.maxMessageBytes,
      handshakeTimeout: policy.handshakeTimeoutMs,
      ...(secure ? tlsOptions(policy) : {})
    })
    function clientLeft (): void { upstream.terminate() }
    socket.once('close', clientLeft)

    const outcome = await new Promise<{ open: true } | { res: IncomingMessage } | { err: Error }>((resolve) => {
      upstream.once('open', () => {
        // Nothing is read from the upstream until the client side is connected and relayed.
        upstream.pause()
        resolve({ open: true })
      })
      upstream.once('unexpected-response', (_req, res) => { resolve({ res }) })
      upstream.on('error', (err) => { resolve({ err }) })
    })
    socket.removeListener('close', clientLeft)

    if ('err' in outcome) {
      request.log.warn({ err: outcome.err }, 'websocket upstream handshake failed')
      throw /timed out/.test(outcome.err.message) ? new UpstreamTimeoutError({ cause: outcome.err }) : new BadGatewayError({ cause: outcome.err })
    }
    if ('res' in outcome) {
      const res = outcome.res
      const status = res.statusCode ?? 0
      const body = status >= 400 && status <= 599 ? await smallBody(res, REFUSAL_BODY_BYTES) : null
      upstream.terminate()
      if (body === null) {
        request.log.warn({ statusCode: status }, 'websocket upstream answered without switching protocols')
        throw new BadGatewayError()
      }
      const headers = rewriteClientResponseHeaders(res.headers)
      for (const name of REFUSAL_DROP) delete headers[name]
      return reply.code(status).headers(headers).header('connection', 'close').send(body)
    }

    reply.hijack()
    if (socket.destroyed) {
      upstream.terminate()
      onClosed?.()
      return undefined
    }
    // A hijacked reply never finishes: what the route counts per request is released here.
    if (onClosed !== undefined) socket.once('close', onClosed)
    track(upstream)
    if (upstream.protocol !== '') raw[kProtocol] = upstream.protocol
    let connected = false
    // ws answers a handshake it refuses itself and drops the socket: the upstream goes too.
    socket.once('close', () => { if (!connected) upstream.close(1001) })
    wss.handleUpgrade(raw, socket, raw[kHead] as Buffer, (client) => {
      connected = true
      track(client)
      relay(client, upstream, messageRate(client, policy.maxMessagesPerSecond))
      relay(upstream, client)
      if (policy.idleTimeoutMs > 0) closeWhenIdle(client, upstream, policy.idleTimeoutMs)
      upstream.resume()
    })
    return undefined
  }

  return { proxy }
}
