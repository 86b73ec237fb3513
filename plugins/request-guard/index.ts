/**
 * gateway-request-guard: refuses ambiguous or oversized requests before any policy runs.
 *
 * Hook: onRequest (first after the request id).
 * - framing: Content-Length with Transfer-Encoding, Transfer-Encoding other than exactly
 *   `chunked`, repeated or non-numeric Content-Length -> 400 (request smuggling shapes);
 * - path: dot segments (plain, encoded, `..;`), encoded `/` `\` NUL and controls, `//`, `\`,
 *   encoded unreserved characters, overlong/fullwidth encodings of `.` `/` `\` -> 400, so routing,
 *   policy and the path sent upstream are one canonical path;
 * - Host: more than one, or a value that is not `host[:port]` -> 400 (RFC 9112 3.2; the value
 *   goes upstream as x-forwarded-host, where links and redirects are built from it);
 * - URL length -> 414, header count -> 431 (Node enforces header bytes with 431 itself);
 * - Upgrade requests outside WebSocket routes -> 400.
 * Server events: checkContinue / checkExpectation (expect.ts): the gateway answers `Expect` itself,
 * `100 Continue` only once the body is read, 417 for other expectations.
 * Config read: `config.websocket`. Errors: GW_REQUEST_FRAMING, GW_REQUEST_PATH,
 * GW_REQUEST_URI_TOO_LONG, GW_REQUEST_HEADERS_TOO_LARGE, GW_REQUEST_UPGRADE_NOT_ALLOWED,
 * GW_REQUEST_INVALID (Host), GW_REQUEST_EXPECTATION_FAILED (417, answered outside the hooks).
 */
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { UpgradeNotAllowedError } from '../proxy/errors.js'
import { BadRequestFramingError, HeadersTooLargeError, InvalidHostError, NonCanonicalPathError, UriTooLongError } from './errors.js'
import { BAD_PATH } from './path.js'
import { ownExpectations } from './expect.js'

export interface RequestGuardOptions {
  /** Longest request target in bytes (default 8192). */
  maxUrlLength?: number
  /** Most header fields per request (default 100). */
  maxHeaders?: number
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
/** `uri-host [":" port]`: a DNS name or IPv4 address, or an IPv6 literal; empty is allowed (RFC 9112 3.2). */
const HOST = /^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])?(?::\d{1,5})?$/

async function requestGuardPlugin (fastify: FastifyInstance, opts: RequestGuardOptions): Promise<void> {
  const maxUrlLength = opts.maxUrlLength ?? 8192
  const maxHeaderFields = (opts.maxHeaders ?? 100) * 2
  ownExpectations(fastify.server, fastify.log)

  fastify.addHook('onRequest', function requestGuard (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
    const raw = request.raw
    const url = raw.url ?? '/'
    if (url.length > maxUrlLength) throw new UriTooLongError()
    if (raw.rawHeaders.length > maxHeaderFields) throw new HeadersTooLargeError()
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    if (path.charCodeAt(0) !== 47 || BAD_PATH.test(path)) throw new NonCanonicalPathError()

    const headers = raw.headers
    const host = headers.host
    if (host !== undefined && (!HOST.test(host) || countHeader(raw.rawHeaders, 'host') !== 1)) throw new InvalidHostError()
    if (raw.httpVersionMajor === 2) {
      // HTTP/2: :authority is the host; a Host field beside it must name the same (RFC 9113 8.3.1).
      const authority = headers[':authority']
      if (typeof authority === 'string' && (!HOST.test(authority) || (host !== undefined && host !== authority))) throw new InvalidHostError()
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
    }
    if (headers.upgrade !== undefined && request.routeOptions.config.websocket !== true) {
      throw new UpgradeNotAllowedError()
    }
    done()
  })
}

export const requestGuardPlugin_ = fp(requestGuardPlugin, { name: 'gateway-request-guard', fastify: '5.x' })
export { requestGuardPlugin_ as requestGuardPlugin }
export default requestGuardPlugin_
