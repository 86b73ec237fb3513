/**
 * Request and response header hygiene for proxied traffic.
 *
 * Upstream gets: no hop-by-hop headers, no client-sent identity, client-address, certificate or
 * routing headers (client-headers.ts: the built-in list plus STRIP_REQUEST_HEADERS, in any
 * spelling), no API key, no credentials unless the route forwards them, `Max-Forwards`
 * decremented on OPTIONS and TRACE, gateway-set `x-forwarded-*` (the incoming chain and
 * `Forwarded` kept only from a TRUST_PROXY peer), `x-request-id` and, from a verified credential
 * only, `x-consumer-*`.
 * The client gets no upstream fingerprints, no hop-by-hop headers (those the upstream's
 * Connection names included), and redirects into the upstream's origin mapped to the public prefix.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyRequest } from 'fastify'
import { applyTraceHeaders } from '../../lib/trace-propagation.js'
import { AUTHORIZATION, defaultRequestHeaderFilter, KEEP, MAX_FORWARDS, type RequestHeaderFilter } from './client-headers.js'

/** Fingerprint and hop-by-hop headers removed from upstream responses (and every `proxy-*`). */
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
  const incomingXff = incoming['x-forwarded-for']
  const incomingProto = incoming['x-forwarded-proto']
  const incomingHost = incoming['x-forwarded-host']
  // Forwarding headers from the client are believed only when its peer is a TRUST_PROXY address
  // (asked only when it sent some); identity and client-address headers never are (dropped above).
  const trusted = policy.trustedPeer !== undefined &&
    (incomingXff !== undefined || incomingProto !== undefined || incomingHost !== undefined || incoming['x-forwarded-port'] !== undefined || incoming.forwarded !== undefined) &&
    policy.trustedPeer(peer)
  headers['x-forwarded-for'] = trusted && typeof incomingXff === 'string' ? `${incomingXff}, ${peer}` : request.ip
  headers['x-forwarded-proto'] = trusted && typeof incomingProto === 'string' ? incomingProto : (policy.tls ? 'https' : 'http')
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
    // Identity headers of a forward-auth service's answer (their client-sent copies were dropped by the auth plugin).
    if (consumer.headers !== undefined) for (const name in consumer.headers) headers[name] = consumer.headers[name]
  }
  return headers
}

/** Characters not allowed in a header value (HTAB, SP..~ and obs-text are). */
const INVALID_HEADER_VALUE = /[^\t\x20-\x7E\x80-\xFF]/
const INVALID_HEADER_VALUE_G = /[^\t\x20-\x7E\x80-\xFF]/g

/** The field names listed by a Connection header (lower case), or null. */
function connectionOptions (value: string | string[] | undefined): string[] | null {
  if (value === undefined) return null
  const names: string[] = []
  for (const line of Array.isArray(value) ? value : [value]) {
    for (const token of line.split(',')) {
      const name = token.trim().toLowerCase()
      if (name !== '') names.push(name)
    }
  }
  return names
}

/**
 * The upstream's response headers without fingerprints and hop-by-hop headers (a new object),
 * values stripped of characters an upstream should not have sent, so a bad header cannot fail
 * the reply. Hop-by-hop: the fixed set, every `proxy-*`, and what the upstream's own Connection
 * field names (RFC 9110 7.6.1). That only ever removes the upstream's copy of a name: the
 * gateway's own headers (request id, RateLimit, security and CORS headers) are set on the reply
 * by the gateway and stay whatever the upstream names.
 */
export function rewriteClientResponseHeaders (upstream: Record<string, string | string[] | undefined>): Record<string, string | string[] | undefined> {
  const headers: Record<string, string | string[] | undefined> = {}
  const connection = upstream.connection
  // Nearly every upstream says only keep-alive or close: nothing more to remove then.
  const named = connection === undefined || connection === 'keep-alive' || connection === 'close' ? null : connectionOptions(connection)
  // undici lower-cases response header names.
  for (const name in upstream) {
    if (DROP_RESPONSE_SET.has(name) || (name.charCodeAt(0) === 112 && name.startsWith('proxy-')) || (named !== null && named.includes(name))) continue
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

type ResponseHeaders = Record<string, string | string[] | undefined>

const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '[::1]', '0.0.0.0']
const ABSOLUTE = /^(?:[a-z][a-z0-9+.-]*:|\/\/)/i
/** A path whose start a browser reads as `//` (an authority): `/` then `/`, `\\`, tab or newline. */
const LEADING_SLASHES = /^\/[/\\\t\n\r][/\\\t\n\r]*/
const REFRESH = /^(\s*[0-9.]*\s*[;,]\s*url\s*=\s*)(['"]?)(.*?)\2(\s*)$/is

/** Where a route's upstream lives, and where the client reaches it. */
export interface RedirectMapping {
  /** Every target of the route (load balanced routes have several; they share one path). */
  readonly targets: readonly URL[]
  /** The upstream path prefix the public prefix maps to (base path + rewritePrefix, no trailing slash). */
  readonly upstreamPrefix: string
  /** The public prefix ('' for `/`). */
  readonly publicPrefix: string
}

/**
 * Maps redirects into the upstream back to the gateway, as nginx's `proxy_redirect default`
 * does (the proxy_pass URL, i.e. upstream origin + rewritePrefix, becomes the location prefix):
 * - an absolute URL on the origin of any target of the route, also spelled `localhost`,
 *   `127.0.0.1`, `[::1]` or `0.0.0.0` for a loopback target, with or without its default port,
 *   either scheme, whose path is under the upstream prefix, becomes the public path
 *   (path-absolute, so the client stays on whatever host it used: RFC 9110 10.2.2 allows a
 *   relative Location; no Host-derived URL is built);
 * - a path-absolute reference under the upstream prefix becomes the public path;
 * - anything else (other origins, paths outside the prefix, relative paths) stays unchanged.
 * Applies to Location, Content-Location and the URL of a Refresh header. Returns the function
 * that rewrites a response's (already copied) headers in place.
 */
export function redirectRewriter (m: RedirectMapping): (headers: ResponseHeaders) => void {
  const origins = new Set<string>()
  for (const target of m.targets) {
    const port = target.port !== '' ? target.port : (target.protocol === 'https:' ? '443' : '80')
    const hosts = LOOPBACK_HOSTS.includes(target.hostname) ? LOOPBACK_HOSTS : [target.hostname]
    for (const host of hosts) {
      for (const scheme of ['http:', 'https:']) origins.add(new URL(`${scheme}//${host}:${port}`).origin)
    }
  }
  const base = (m.targets[0] as URL).origin
  const up = m.upstreamPrefix
  const pub = m.publicPrefix

  /** The public form of an upstream path-absolute reference, or undefined when outside the prefix. */
  function publicPath (path: string): string | undefined {
    if (!path.startsWith(up)) return undefined
    const next = path.charCodeAt(up.length)
    // At a segment boundary: end, '/', '?' or '#'.
    if (path.length !== up.length && next !== 47 && next !== 63 && next !== 35) return undefined
    const mapped = pub + path.slice(up.length)
    if (mapped === '' || mapped.charCodeAt(0) !== 47) return '/' + mapped
    // `/api//evil.example` under a `/` prefix maps to `//evil.example`: a reference to another
    // host (RFC 3986 4.2), and so is `/\evil.example` or `/<TAB>/evil.example` to a browser
    // (WHATWG URL reads `\` as `/` and removes tabs and newlines). The upstream named a path on
    // its own host; the rewrite must not name another host, so the leading run is one `/`.
    return LEADING_SLASHES.test(mapped) ? mapped.replace(LEADING_SLASHES, '/') : mapped
  }

  function map (value: string): string {
    if (ABSOLUTE.test(value)) {
      let url: URL
      try {
        url = new URL(value, base)
      } catch {
        return value
      }
      if (!origins.has(url.origin)) return value
      return publicPath(url.pathname + url.search + url.hash) ?? value
    }
    if (value.charCodeAt(0) === 47) return publicPath(value) ?? value
    return value
  }

  return function rewriteRedirects (headers: ResponseHeaders): void {
    const location = headers.location
    if (typeof location === 'string') headers.location = map(location)
    const contentLocation = headers['content-location']
    if (typeof contentLocation === 'string') headers['content-location'] = map(contentLocation)
    const refresh = headers.refresh
    if (typeof refresh === 'string') {
      const r = REFRESH.exec(refresh)
      if (r !== null) headers.refresh = `${r[1] as string}${r[2] as string}${map(r[3] as string)}${r[2] as string}${r[4] as string}`
    }
  }
}
