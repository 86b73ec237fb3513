/**
 * Request and response header hygiene for proxied traffic.
 *
 * Upstream gets: no hop-by-hop headers, no client-sent identity, client-address, certificate or
 * routing headers (client-headers.ts: the built-in list plus STRIP_REQUEST_HEADERS, in any
 * spelling), no API key, no credentials unless the route forwards them, `Max-Forwards`
 * decremented on OPTIONS and TRACE, gateway-set `x-forwarded-*` (the incoming chain and
 * `Forwarded` kept only from a TRUST_PROXY peer), `x-request-id` and, from a verified credential
 * only, `x-consumer-*`.
 * The client gets no upstream fingerprints.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyRequest } from 'fastify'
import { applyTraceHeaders } from '../tracing/propagation.js'
import { AUTHORIZATION, defaultRequestHeaderFilter, KEEP, MAX_FORWARDS, type RequestHeaderFilter } from './client-headers.js'

/** Fingerprint and hop-by-hop headers removed from upstream responses. */
const DROP_RESPONSE = [
  'server', 'x-powered-by', 'x-aspnet-version', 'x-aspnetmvc-version', 'x-runtime', 'x-generator',
  'x-backend-server', 'x-upstream', 'via', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer',
  'upgrade', 'proxy-authenticate', 'x-request-id'
] as const

/** Name -> true lookups: one pass over the (few) headers present instead of one probe per name. */
const DROP_RESPONSE_SET: ReadonlySet<string> = new Set(DROP_RESPONSE)

export interface ForwardPolicy {
  /** Forward the client's Authorization header upstream (default false). */
  readonly forwardAuthorization: boolean
  /** Whether the connection from the client is TLS (sets x-forwarded-proto). */
  readonly tls: boolean
  /** The gateway's request header filter (default: the built-in list alone). */
  readonly filter?: RequestHeaderFilter
  /** Whether a socket peer is a TRUST_PROXY address (absent: no peer is). */
  readonly trustedPeer?: ((address: string) => boolean) | undefined
}

const DIGITS = /^\d{1,15}$/

/** RFC 7239 6: an IPv6 node is quoted and bracketed. */
function forwardedNode (address: string): string {
  return address.includes(':') ? `"[${address}]"` : address
}

/**
 * The headers that go upstream, built from the client's (a new object: copying what is kept is
 * cheaper than deleting, which turns an object into a slow dictionary).
 * reply-from has already removed `connection` and the headers it names, so a client cannot use
 * Connection to strip what is set here.
 */
export function rewriteUpstreamRequestHeaders (request: FastifyRequest, incoming: IncomingHttpHeaders, policy: ForwardPolicy): IncomingHttpHeaders {
  const filter = policy.filter ?? defaultRequestHeaderFilter
  const headers: IncomingHttpHeaders = {}
  // Node lower-cases header names; one memoised lookup per name (client-headers.ts).
  for (const name in incoming) {
    const verdict = filter.classify(name)
    if (verdict === KEEP) {
      headers[name] = incoming[name]
    } else if (verdict === AUTHORIZATION) {
      if (policy.forwardAuthorization) headers[name] = incoming[name]
    } else if (verdict === MAX_FORWARDS) {
      const value = incoming[name]
      const method = request.method
      // RFC 9110 7.6.2: on OPTIONS and TRACE each forwarder decrements it (0 is answered by the
      // gateway itself, before the proxy); other methods may ignore it and carry it unchanged.
      if (method !== 'OPTIONS' && method !== 'TRACE') headers[name] = value
      else if (typeof value === 'string' && DIGITS.test(value)) headers[name] = String(Math.max(Number(value) - 1, 0))
    }
  }

  const peer = request.socket.remoteAddress ?? ''
  // Forwarding headers from the client are believed only when its peer is a TRUST_PROXY address;
  // identity and client-address headers never are (they were dropped above).
  const trusted = policy.trustedPeer !== undefined && policy.trustedPeer(peer)
  const incomingXff = incoming['x-forwarded-for']
  headers['x-forwarded-for'] = trusted && typeof incomingXff === 'string' ? `${incomingXff}, ${peer}` : request.ip
  const incomingProto = incoming['x-forwarded-proto']
  headers['x-forwarded-proto'] = trusted && typeof incomingProto === 'string' ? incomingProto : (policy.tls ? 'https' : 'http')
  const incomingHost = incoming['x-forwarded-host']
  // HTTP/2 carries the host as :authority (a client may send both; they must then agree).
  const host = trusted && typeof incomingHost === 'string' ? incomingHost : (request.headers.host ?? request.headers[':authority'] as string | undefined)
  if (host !== undefined) headers['x-forwarded-host'] = host
  if (trusted) {
    const port = incoming['x-forwarded-port']
    if (typeof port === 'string') headers['x-forwarded-port'] = port
    const forwarded = incoming.forwarded
    // RFC 7239 4: each proxy appends its own element (here: the peer it received the request from).
    if (typeof forwarded === 'string') headers.forwarded = `${forwarded}, for=${forwardedNode(peer)}`
  }
  headers['x-request-id'] = request.id
  // W3C trace context: the gateway's continuation replaces whatever the client sent.
  applyTraceHeaders(request, headers)

  // Set only here, only from the credential the auth plugin verified (request.consumer).
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
