/**
 * Request and response header hygiene for proxied traffic.
 *
 * Upstream gets: no hop-by-hop headers, no client-sent identity (`x-consumer-*`), no API key,
 * no method-override headers, no credentials unless the route forwards them, gateway-set
 * `x-forwarded-*`, `x-request-id` and `x-consumer-id`. The client gets no upstream fingerprints.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyRequest } from 'fastify'
import { applyTraceHeaders } from '../tracing/propagation.js'

/**
 * Headers never forwarded upstream (hop-by-hop per RFC 9110 7.6.1, proxy credentials, overrides).
 * `expect`: the gateway answers the expectation itself (request-guard/expect.ts), as nginx and
 * Envoy do; the upstream request carries the whole body (and undici refuses the field).
 */
const DROP_REQUEST = [
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect',
  'proxy-authorization', 'x-api-key', 'forwarded', 'x-real-ip',
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-prefix',
  'x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-url', 'x-rewrite-url',
  'x-request-id'
] as const

/** Fingerprint and hop-by-hop headers removed from upstream responses. */
const DROP_RESPONSE = [
  'server', 'x-powered-by', 'x-aspnet-version', 'x-aspnetmvc-version', 'x-runtime', 'x-generator',
  'x-backend-server', 'x-upstream', 'via', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer',
  'upgrade', 'proxy-authenticate', 'x-request-id'
] as const

const CONSUMER_PREFIX = 'x-consumer-'

/** Name -> true lookups: one pass over the (few) headers present instead of one probe per name. */
const DROP_REQUEST_SET: ReadonlySet<string> = new Set(DROP_REQUEST)
const DROP_RESPONSE_SET: ReadonlySet<string> = new Set(DROP_RESPONSE)

export interface ForwardPolicy {
  /** Forward the client's Authorization header upstream (default false). */
  readonly forwardAuthorization: boolean
  /** Whether the connection from the client is TLS (sets x-forwarded-proto). */
  readonly tls: boolean
}

/**
 * The headers that go upstream, built from the client's (a new object: copying what is kept is
 * cheaper than deleting, which turns an object into a slow dictionary).
 * reply-from has already removed `connection` and the headers it names, so a client cannot use
 * Connection to strip what is set here.
 */
export function rewriteUpstreamRequestHeaders (request: FastifyRequest, incoming: IncomingHttpHeaders, policy: ForwardPolicy): IncomingHttpHeaders {
  const incomingXff = incoming['x-forwarded-for']
  const incomingProto = incoming['x-forwarded-proto']
  const incomingHost = incoming['x-forwarded-host']
  const headers: IncomingHttpHeaders = {}
  // Node lower-cases header names.
  for (const name in incoming) {
    if (DROP_REQUEST_SET.has(name) || name.startsWith(CONSUMER_PREFIX) || (name === 'authorization' && !policy.forwardAuthorization)) continue
    headers[name] = incoming[name]
  }

  const peer = request.socket.remoteAddress ?? ''
  // request.ip differs from the socket peer only when the peer is a trusted proxy (TRUST_PROXY):
  // only then is the incoming chain kept.
  const trustedChain = request.ip !== peer && typeof incomingXff === 'string'
  headers['x-forwarded-for'] = trustedChain ? `${incomingXff}, ${peer}` : request.ip
  headers['x-forwarded-proto'] = trustedChain && typeof incomingProto === 'string' ? incomingProto : (policy.tls ? 'https' : 'http')
  // HTTP/2 carries the host as :authority (a client may send both; they must then agree).
  const host = trustedChain && typeof incomingHost === 'string' ? incomingHost : (request.headers.host ?? request.headers[':authority'] as string | undefined)
  if (host !== undefined) headers['x-forwarded-host'] = host
  headers['x-request-id'] = request.id
  // W3C trace context: the gateway's continuation replaces whatever the client sent.
  applyTraceHeaders(request, headers)

  const consumer = request.consumer
  if (consumer !== null && consumer !== undefined) {
    headers['x-consumer-id'] = consumer.id
    headers['x-consumer-strategy'] = consumer.strategy
    if (consumer.scopes.length > 0) headers['x-consumer-scopes'] = consumer.scopes.join(' ')
  }
  return headers
}

/** Whether an upstream response header of this name is passed to the client. */
export function isForwardedResponseHeader (name: string): boolean {
  return !DROP_RESPONSE_SET.has(name)
}

/** Characters not allowed in a header value (HTAB, SP..~ and obs-text are). */
const INVALID_HEADER_VALUE = /[^\t\x20-\x7E\x80-\xFF]/
const INVALID_HEADER_VALUE_G = /[^\t\x20-\x7E\x80-\xFF]/g

/**
 * The upstream's response headers without fingerprints and hop-by-hop headers (a new object),
 * values stripped of characters an upstream should not have sent, so a bad header cannot fail
 * the reply.
 */
export function rewriteClientResponseHeaders (upstream: Record<string, string | string[] | undefined>): Record<string, string | string[] | undefined> {
  const headers: Record<string, string | string[] | undefined> = {}
  // undici lower-cases response header names.
  for (const name in upstream) {
    if (DROP_RESPONSE_SET.has(name)) continue
    const value = upstream[name]
    if (typeof value === 'string') {
      headers[name] = INVALID_HEADER_VALUE.test(value) ? value.replace(INVALID_HEADER_VALUE_G, '') : value
    } else if (Array.isArray(value)) {
      headers[name] = value.map((v) => v.replace(INVALID_HEADER_VALUE_G, ''))
    } else {
      headers[name] = value
    }
  }
  return headers
}
