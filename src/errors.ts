/**
 * The one error handler that owns the client-visible body, over the catalogue of lib/errors.ts.
 *
 * Body: `{ statusCode, code, error, message }` (plus `requestId` for codes whose entry says so).
 * 5xx messages are generic; the cause goes to the log. Codes written here: GW_ROUTE_NOT_FOUND,
 * GW_INTERNAL, Fastify's codes mapped by the catalogue (else GW_REQUEST_INVALID), and the raw
 * answers to what Node's parser refuses: GW_REQUEST_INVALID, GW_REQUEST_TIMEOUT,
 * GW_REQUEST_HEADERS_TOO_LARGE.
 */
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyError } from '@fastify/error'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { errorBody, errorEntry, FASTIFY_CODE_MAP, rawResponse } from '../lib/errors.js'

export { ConfigError } from '../lib/errors.js'

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
  const code = ownCode ? err.code : (FASTIFY_CODE_MAP[err.code] ?? (statusCode >= 500 ? 'GW_INTERNAL' : 'GW_REQUEST_INVALID'))
  const entry = ownCode ? errorEntry(code) : undefined
  const error = STATUS_CODES[statusCode] ?? 'Error'
  let message: string
  if (statusCode >= GENERIC_MESSAGE_MIN_STATUS) {
    message = ownCode ? err.message : error
    if (statusCode === 500 && !ownCode) request.log.error({ err }, 'unhandled gateway error')
    else if (entry?.reported === true) request.log.debug({ code }, 'request failed (condition logged by its plugin)')
    else request.log.warn({ err, code }, 'request failed')
  } else {
    // Our own 4xx messages are written for clients; third-party 4xx text is replaced.
    message = ownCode ? err.message : error
    request.log.debug({ err, code }, 'request rejected')
  }
  impliedHeaders(reply, statusCode)
  if (entry?.requestId === true) {
    // E.g. a block by inspection: the request id lets a customer quote it to support.
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

const NOT_FOUND: unknown = JSON.parse(errorBody('GW_ROUTE_NOT_FOUND'))

/** 404 for anything that did not route: same shape, no echo of the path. */
export function gatewayNotFoundHandler (request: FastifyRequest, reply: FastifyReply): void {
  reply.code(404).send(NOT_FOUND)
}

const CLIENT_TIMEOUT = rawResponse('GW_REQUEST_TIMEOUT')
const CLIENT_HEADERS_TOO_LARGE = rawResponse('GW_REQUEST_HEADERS_TOO_LARGE')
const CLIENT_BAD_REQUEST = rawResponse('GW_REQUEST_INVALID')

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
