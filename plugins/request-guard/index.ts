/**
 * portcullis-request-guard: refuses ambiguous or oversized requests before any policy runs.
 *
 * Hook: onRequest (instance-level, so before every route-level policy hook).
 * - framing: Content-Length with Transfer-Encoding, Transfer-Encoding other than exactly
 *   `chunked`, repeated or non-numeric Content-Length -> 400 (request smuggling shapes);
 * - path: dot segments (plain, encoded, `..;`), encoded `/` `\` NUL and controls, `//`, `\`,
 *   encoded unreserved characters, overlong/fullwidth encodings of `.` `/` `\`, raw non-ASCII
 *   (HTTP/2 :path; also in its query) -> 400, so routing,
 *   policy and the path sent upstream are one canonical path;
 * - path readings (`pathCheck: 'strict'`, the default): a path that a lenient backend reads as
 *   the path of another route (letter case, `;` parameters, trailing dots or spaces, Unicode
 *   look-alikes, NTFS streams and short names, suffix patterns; see canonical.ts) -> 400, and
 *   route paths that read as one another stop startup (GW_CONFIG_INVALID). The routes are
 *   collected in onRoute, so register this plugin before the routes it guards;
 * - Host: more than one, or a value that is not `host[:port]` -> 400 (RFC 9112 3.2; the value
 *   goes upstream as x-forwarded-host, where links and redirects are built from it); with
 *   `publicHosts`, a proxied request naming a host not listed -> 400;
 * - URL length -> 414, header count -> 431 (Node enforces header bytes with 431 itself);
 * - Upgrade requests outside WebSocket routes -> 400;
 * - HTTP/2 requests with a body but no Content-Length are marked `transfer-encoding: chunked`
 *   so Fastify reads the body (the proxy streams it upstream, ending it only on END_STREAM).
 * Server events: checkContinue / checkExpectation (expect.ts): the gateway answers `Expect` itself,
 * `100 Continue` only once the body is read, 417 for other expectations.
 * Malformed HTTP/2 fields (RFC 9113 8.2) are refused or dropped by Node's HTTP/2 layer before
 * this hook runs.
 * Config read: `config.websocket`. Errors: GW_REQUEST_FRAMING, GW_REQUEST_PATH,
 * GW_REQUEST_URI_TOO_LONG, GW_REQUEST_HEADERS_TOO_LARGE, GW_REQUEST_UPGRADE_NOT_ALLOWED,
 * GW_REQUEST_INVALID (Host), GW_REQUEST_EXPECTATION_FAILED (417, answered outside the hooks); at startup GW_CONFIG_INVALID (route paths that read alike, options).
 */
import fp from 'fastify-plugin'
import { constants as h2constants, type Http2ServerRequest, type ServerHttp2Stream } from 'node:http2'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { BadRequestFramingError, ConfigError, HeadersTooLargeError, InvalidRequestError, NonCanonicalPathError, UpgradeNotAllowedError, UriTooLongError } from '../../lib/errors.js'
import { BAD_PATH } from '../../lib/path.js'
import { RouteTable } from './route-table.js'
import { ownExpectations } from './expect.js'

export interface RequestGuardOptions {
  /** Longest request target in bytes (default 8192). */
  maxUrlLength?: number
  /** Most header fields per request (default 100). */
  maxHeaders?: number
  /**
   * `strict` (default): refuse a path that backends which fold case, strip `;` parameters,
   * trailing dots and spaces (IIS, Tomcat, Spring, Express) read as another route's path.
   * `literal`: route the literal path only; safe only when every backend matches paths literally.
   */
  pathCheck?: 'strict' | 'literal'
  /**
   * Host names clients may address on proxied routes (lower case; `*.example.com` = any subdomain;
   * ports ignored). Another Host or :authority -> 400 before it can become x-forwarded-host.
   * Default: any well-formed host.
   */
  publicHosts?: readonly string[]
  /**
   * HTTP/2 only: milliseconds from the request headers until the client has sent the whole body;
   * past it the stream is reset (CANCEL). Node enforces its `requestTimeout` on HTTP/1.1 only.
   * Default 0 (none); the gateway passes REQUEST_TIMEOUT_MS.
   */
  http2RequestTimeoutMs?: number
}

/** A body still arriving when the deadline passes: the stream is reset (the upstream request with it). */
function cutSlowHttp2Request (stream: ServerHttp2Stream): void {
  if (!stream.destroyed && stream.state.remoteClose !== 1) stream.close(h2constants.NGHTTP2_CANCEL)
}

function armHttp2RequestDeadline (stream: ServerHttp2Stream, ms: number): void {
  const timer = setTimeout(cutSlowHttp2Request, ms, stream)
  timer.unref()
  stream.once('close', () => { clearTimeout(timer) })
}

/** Whether `value` (`host[:port]`, already well-formed) names one of `exact` or a subdomain of one of `suffixes`. */
function isPublicHost (value: string, exact: ReadonlySet<string>, suffixes: readonly string[]): boolean {
  let end = value.length
  if (value.charCodeAt(0) === 91) end = value.indexOf(']') + 1
  else {
    const colon = value.lastIndexOf(':')
    if (colon !== -1) end = colon
  }
  // `example.com.` is the same DNS name as `example.com`.
  if (value.charCodeAt(end - 1) === 46) end--
  const name = value.slice(0, end).toLowerCase()
  if (exact.has(name)) return true
  for (const suffix of suffixes) if (name.length > suffix.length && name.endsWith(suffix)) return true
  return false
}

function countHeader (raw: string[], lower: string): number {
  let n = 0
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    if (name.length === lower.length && name.toLowerCase() === lower) n++
  }
  return n
}

const DIGITS = /^\d{1,15}$/
const NON_ASCII = /[\x80-\uffff]/
/** `uri-host [":" port]`: a DNS name or IPv4 address, or an IPv6 literal; empty is allowed (RFC 9112 3.2). */
const HOST = /^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])?(?::\d{1,5})?$/

async function requestGuardPlugin (fastify: FastifyInstance, opts: RequestGuardOptions): Promise<void> {
  const maxUrlLength = opts.maxUrlLength ?? 8192
  const maxHeaderFields = (opts.maxHeaders ?? 100) * 2
  const pathCheck = opts.pathCheck ?? 'strict'
  if (pathCheck !== 'strict' && pathCheck !== 'literal') throw new ConfigError('gateway-request-guard', ['pathCheck: must be strict or literal'])
  const routes = pathCheck === 'strict' ? new RouteTable() : undefined
  const publicHosts = opts.publicHosts === undefined ? undefined : new Set(opts.publicHosts.filter((h) => !h.startsWith('*.')))
  const publicSuffixes = (opts.publicHosts ?? []).filter((h) => h.startsWith('*.')).map((h) => h.slice(1))
  const http2RequestTimeoutMs = opts.http2RequestTimeoutMs ?? 0
  if (routes !== undefined) {
    fastify.addHook('onRoute', function requestGuardRoutes (route) {
      routes.add(route.method, route.url)
    })
  }
  ownExpectations(fastify.server, fastify.log)

  fastify.addHook('onRequest', function requestGuard (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
    const raw = request.raw
    const url = raw.url ?? '/'
    if (url.length > maxUrlLength) throw new UriTooLongError()
    if (raw.rawHeaders.length > maxHeaderFields) throw new HeadersTooLargeError()
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    if (path.charCodeAt(0) !== 47 || BAD_PATH.test(path)) throw new NonCanonicalPathError()
    // HTTP/2 carries :path octets the HTTP/1 parser would refuse (RFC 3986 2: a URI is ASCII);
    // the query must not reach the upstream re-encoded, unseen as what it is.
    if (q !== -1 && raw.httpVersionMajor === 2 && NON_ASCII.test(url)) throw new InvalidRequestError()
    if (routes !== undefined && routes.needsReading(path)) {
      const literal = request.is404 ? null : routes.idOf(request.routeOptions.url ?? '')
      if (literal !== undefined && routes.readsAsOtherRoute(raw.method ?? 'GET', path, literal)) {
        request.log.debug({ route: literal }, 'request guard: the path reads as another route on lenient backends')
        throw new NonCanonicalPathError()
      }
    }

    const headers = raw.headers
    const host = headers.host
    if (host !== undefined && (!HOST.test(host) || countHeader(raw.rawHeaders, 'host') !== 1)) throw new InvalidRequestError()
    // RFC 9112 3.2: an HTTP/1.1 request without Host is answered 400.
    if (host === undefined && raw.httpVersionMajor === 1 && raw.httpVersionMinor === 1) throw new InvalidRequestError()
    if (raw.httpVersionMajor === 2) {
      // A body trickled in (slow POST) would hold the upstream request open for as long as the
      // client keeps the connection alive with PINGs: the whole request gets REQUEST_TIMEOUT_MS,
      // as on HTTP/1.1 (RFC 9113 8.1 lets a server reset a stream it will not complete).
      const stream = (raw as unknown as Http2ServerRequest).stream
      if (http2RequestTimeoutMs > 0 && stream.endAfterHeaders === false) armHttp2RequestDeadline(stream, http2RequestTimeoutMs)
      // HTTP/2: :authority is the host; a Host field beside it must name the same (RFC 9113 8.3.1).
      const authority = headers[':authority']
      if (typeof authority === 'string' && (!HOST.test(authority) || (host !== undefined && host !== authority))) throw new InvalidRequestError()
    }
    if (publicHosts !== undefined && request.routeOptions.config.proxy !== undefined) {
      // The host goes upstream as x-forwarded-host, which backends build links and password-reset
      // URLs from: only the names the gateway serves (Django's ALLOWED_HOSTS, also a 400).
      const named = host ?? headers[':authority']
      if (typeof named === 'string' && !isPublicHost(named, publicHosts, publicSuffixes)) throw new InvalidRequestError()
    }
    const te = headers['transfer-encoding']
    const cl = headers['content-length']
    if (te !== undefined) {
      // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
      if (cl !== undefined || raw.httpVersionMinor === 0 || te !== 'chunked' || countHeader(raw.rawHeaders, 'transfer-encoding') !== 1) {
        throw new BadRequestFramingError()
      }
    } else if (cl !== undefined) {
      if (!DIGITS.test(cl) || countHeader(raw.rawHeaders, 'content-length') !== 1) throw new BadRequestFramingError()
    } else if (raw.httpVersionMajor === 2 && (raw as unknown as Http2ServerRequest).stream.endAfterHeaders === false) {
      // An HTTP/2 body needs no Content-Length (RFC 9113 8.1), but Fastify reads a body only when
      // Content-Length or Transfer-Encoding says there is one, and would forward the request
      // without it. Marked here (HTTP/2 itself never carries the field), the body is read and
      // streamed upstream, where the proxy drops this field and frames the body itself.
      headers['transfer-encoding'] = 'chunked'
    }
    if (headers.upgrade !== undefined && request.routeOptions.config.websocket !== true) {
      throw new UpgradeNotAllowedError()
    }
    done()
  })
}

export const requestGuardPlugin_ = fp(requestGuardPlugin, { name: 'portcullis-request-guard', fastify: '5.x', dependencies: [] })
export { requestGuardPlugin_ as requestGuardPlugin }
export default requestGuardPlugin_
