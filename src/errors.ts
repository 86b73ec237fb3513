/**
 * Gateway-wide error taxonomy and the one error handler that owns the client-visible body.
 *
 * Body: `{ statusCode, code, error, message }`. 5xx messages are generic; the cause goes to the log.
 * Codes: GW_CONFIG_INVALID, GW_ROUTE_NOT_FOUND, GW_REQUEST_INVALID, GW_REQUEST_TIMEOUT,
 * GW_REQUEST_HEADERS_TOO_LARGE (requests Node's parser refuses), GW_INTERNAL; raw answers written
 * before HTTP parsing: GW_PROXY_PROTOCOL_INVALID (src/proxy-protocol.ts), GW_REQUEST_TLS_REQUIRED
 * (src/tls-plain-http.ts).
 */
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import createError, { type FastifyError } from '@fastify/error'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'

/**
 * Thrown at startup when the environment or a route definition is invalid. `where` is what every
 * problem is about (a route file); `''` when each problem already names its variable or file.
 */
export class ConfigError extends Error {
  readonly code = 'GW_CONFIG_INVALID'
  readonly problems: readonly string[]
  readonly context: string
  readonly where: string | undefined
  constructor (context: string, problems: readonly string[], where?: string) {
    super(`${context}: ${problems.join('; ')}`)
    this.name = 'ConfigError'
    this.context = context
    this.problems = problems
    this.where = where
  }

  /** One printable line per problem, each naming its variable or file. */
  lines (): string[] {
    const subject = this.where ?? this.context
    return this.problems.map((p) => subject === '' ? p : `${subject}: ${p}`)
  }
}

/** Nothing routes there (the path is not echoed). */
export const RouteNotFoundError = createError('GW_ROUTE_NOT_FOUND', 'Route not found', 404)
/** A failure inside the gateway itself (a bug); the cause is logged at error. */
export const InternalError = createError('GW_INTERNAL', 'Internal error', 500)

/**
 * Marks an error whose condition the throwing plugin already logs, rate-limited (e.g. a store
 * outage, once per interval with a count): the handler logs each occurrence at debug only, so an
 * outage does not become a log flood. Set on the error class's prototype.
 */
export const kReported = Symbol('portcullis.error.reported')

/** Statuses whose client message is always the generic reason phrase. */
const GENERIC_MESSAGE_MIN_STATUS = 500

/** Headers a status implies (RFC 9110): set by whoever throws, defaulted here when missing. */
function impliedHeaders (reply: FastifyReply, statusCode: number): void {
  if ((statusCode === 503 || statusCode === 429) && !reply.hasHeader('retry-after')) {
    reply.header('retry-after', '5')
  }
  if (statusCode === 401 && !reply.hasHeader('www-authenticate')) {
    reply.header('www-authenticate', 'Bearer')
  }
}

/** Maps Fastify's own client-error codes to the gateway's stable codes. */
const fastifyCodeMap: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'GW_REQUEST_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'GW_REQUEST_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'GW_REQUEST_INVALID',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'GW_REQUEST_INVALID',
  FST_ERR_CTP_INVALID_JSON_BODY: 'GW_REQUEST_INVALID',
  FST_ERR_BAD_URL: 'GW_REQUEST_PATH',
  FST_ERR_VALIDATION: 'GW_REQUEST_INVALID',
  FST_ERR_ASYNC_CONSTRAINT: 'GW_REQUEST_INVALID'
}

function statusOf (err: FastifyError): number {
  const s = err.statusCode
  return typeof s === 'number' && s >= 400 && s < 600 ? s : 500
}

/**
 * The gateway's error handler: one body shape, generic 5xx messages, and the cause in the log.
 * Client errors (4xx) are logged at debug: an attack must not become a log flood.
 */
export function gatewayErrorHandler (this: unknown, err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const statusCode = statusOf(err)
  const ownCode = typeof err.code === 'string' && err.code.startsWith('GW_')
  const code = ownCode ? err.code : (fastifyCodeMap[err.code] ?? (statusCode >= 500 ? 'GW_INTERNAL' : 'GW_REQUEST_INVALID'))
  const error = STATUS_CODES[statusCode] ?? 'Error'
  let message: string
  if (statusCode >= GENERIC_MESSAGE_MIN_STATUS) {
    message = ownCode ? err.message : error
    if (statusCode === 500 && !ownCode) request.log.error({ err }, 'unhandled gateway error')
    else if ((err as unknown as Record<symbol, unknown>)[kReported] === true) request.log.debug({ code }, 'request failed (condition logged by its plugin)')
    else request.log.warn({ err, code }, 'request failed')
  } else {
    // Our own 4xx messages are written for clients; third-party 4xx text is replaced.
    message = ownCode ? err.message : error
    request.log.debug({ err, code }, 'request rejected')
  }
  impliedHeaders(reply, statusCode)
  if (code === 'GW_INSPECT_BLOCKED') {
    // A block carries the request id so a customer can quote it to support.
    reply.code(statusCode).send({ statusCode, code, error, message, requestId: request.id })
    return
  }
  const violations = (err as { violations?: unknown }).violations
  if (code === 'GW_CONTRACT_VIOLATION' && Array.isArray(violations)) {
    // Each failing field's JSON pointer and rule (`/query/limit: maximum`), never its value.
    reply.code(statusCode).send({ statusCode, code, error, message, violations })
    return
  }
  reply.code(statusCode).send({ statusCode, code, error, message })
}

/** 404 for anything that did not route: same shape, no echo of the path. */
export function gatewayNotFoundHandler (request: FastifyRequest, reply: FastifyReply): void {
  reply.code(404).send({ statusCode: 404, code: 'GW_ROUTE_NOT_FOUND', error: 'Not Found', message: 'Route not found' })
}

/** A raw HTTP/1.1 error response in the gateway's body shape; the connection closes after it. */
export function rawResponse (statusCode: number, code: string, message: string): string {
  const body = JSON.stringify({ statusCode, code, error: STATUS_CODES[statusCode], message })
  return `HTTP/1.1 ${statusCode} ${STATUS_CODES[statusCode] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n${body}`
}

const CLIENT_TIMEOUT = rawResponse(408, 'GW_REQUEST_TIMEOUT', 'Request timeout')
const CLIENT_HEADERS_TOO_LARGE = rawResponse(431, 'GW_REQUEST_HEADERS_TOO_LARGE', 'Request header fields too large')
const CLIENT_BAD_REQUEST = rawResponse(400, 'GW_REQUEST_INVALID', 'Bad request')

/**
 * Fastify's `clientErrorHandler`: what Node's HTTP parser refuses (malformed request line or
 * headers, header overflow, header timeout) gets the gateway's body, not the framework's text.
 * Logged at debug, as other client errors: an attack must not become a log flood.
 */
export function gatewayClientErrorHandler (this: { log: FastifyBaseLogger }, err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  this.log.debug({ err: { code: err.code, message: err.message } }, 'client error')
  if (socket.writable) {
    socket.write(err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? CLIENT_TIMEOUT : err.code === 'HPE_HEADER_OVERFLOW' ? CLIENT_HEADERS_TOO_LARGE : CLIENT_BAD_REQUEST)
  }
  socket.destroy(err)
}

/**
 * CONNECT (a tunnel request) has no place at a reverse proxy; without a listener Node drops the
 * socket without a word. It gets the gateway's 400 and the connection closes: no tunnel opens.
 */
export function gatewayConnectRefusal (_request: unknown, socket: Duplex): void {
  socket.on('error', () => {})
  if (socket.writable) socket.end(CLIENT_BAD_REQUEST)
  else socket.destroy()
}
