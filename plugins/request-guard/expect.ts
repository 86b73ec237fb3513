/**
 * `Expect` (RFC 9110 10.1.1), answered by the gateway itself: the field never goes upstream (undici
 * refuses it, and the gateway's upstream request is its own), as nginx's proxy module and Envoy
 * (without `proxy_100_continue`) do.
 *
 * - `100-continue` on a request with content: `100 Continue` goes out the first time the gateway
 *   reads the body, that is once every policy that runs before the body has passed (for streamed
 *   routes: once the upstream request starts to read it; for routes that buffer bodies: when the
 *   buffering starts). A request refused before that (401, 403, 413 on its declared length, 429,
 *   503...) gets its final status without `100 Continue`, its body is never read, and Node closes
 *   the connection after the answer (the client may still send the body; nginx closes too).
 *   Body bytes that arrive before the first read mean the client did not wait: no 100 is needed
 *   (RFC 9110 10.1.1 lets a server omit it once content has arrived).
 * - `100-continue` without content (no Content-Length above 0, no Transfer-Encoding, HTTP/2
 *   END_STREAM on the headers): no 100 is sent (RFC 9110 10.1.1: the framing says no content).
 * - Any other expectation, alone or beside `100-continue`: 417 `GW_REQUEST_EXPECTATION_FAILED`
 *   (RFC 9110 10.1.1 allows 417; the gateway cannot tell whether the upstream would meet an
 *   expectation it never sees, so it fails closed, as Node and Apache do), connection closed.
 * - HTTP/1.0: Node never consults `Expect` there (RFC 9110 10.1.1: a server MUST ignore it).
 *
 * Requests without `Expect` never reach this code: Node emits these events only for them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2'
import type { EventEmitter } from 'node:events'
import type { FastifyBaseLogger } from 'fastify'
import { errorBody } from '../../lib/errors.js'

type ClientRequest = IncomingMessage | Http2ServerRequest
type ClientResponse = ServerResponse | Http2ServerResponse
type ReadFn = (size: number) => void

/** Exactly the one expectation defined by RFC 9110 (a case-insensitive token, OWS around it). */
const CONTINUE = /^[\t ]*100-continue[\t ]*$/i

const kInstalled = Symbol('portcullis.expect')

const EXPECTATION_FAILED = errorBody('GW_REQUEST_EXPECTATION_FAILED')

/** Whether the request's framing announces content. */
function hasContent (req: ClientRequest): boolean {
  if (req.httpVersionMajor === 2) return !(req as Http2ServerRequest).stream.endAfterHeaders
  const headers = req.headers
  if (headers['transfer-encoding'] !== undefined) return true
  const length = headers['content-length']
  return length !== undefined && Number(length) > 0
}

/**
 * Sends `100 Continue` on the first read of the body (by the gateway's body parser or by the
 * upstream request), unless the answer has started or body bytes have already arrived.
 */
function continueOnFirstRead (req: ClientRequest, res: ClientResponse): void {
  const readable = req as unknown as { _read: ReadFn, readableLength: number }
  const read = readable._read
  readable._read = function expectContinueRead (this: typeof readable, size: number): void {
    this._read = read
    if (this.readableLength === 0 && !res.headersSent && !res.writableEnded) res.writeContinue()
    read.call(this, size)
  }
}

/** 417 in the gateway's error shape; an HTTP/1 connection closes after it (its body is not read). */
function refuseExpectation (req: ClientRequest, res: ClientResponse): void {
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(EXPECTATION_FAILED),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff'
  }
  if (req.httpVersionMajor === 1) headers.connection = 'close'
  ;(res as ServerResponse).writeHead(417, headers)
  ;(res as ServerResponse).end(EXPECTATION_FAILED)
}

/**
 * Makes `server` (HTTP/1 or HTTP/2) leave `Expect` to the gateway instead of Node's defaults
 * (an immediate `100 Continue`, or a bare 417). Installed once per server.
 */
export function ownExpectations (server: EventEmitter, log: FastifyBaseLogger): void {
  const marked = server as EventEmitter & { [kInstalled]?: true }
  if (marked[kInstalled] === true) return
  marked[kInstalled] = true

  function gatewayExpect (this: EventEmitter, req: ClientRequest, res: ClientResponse): void {
    // Node's HTTP/1 test finds `100-continue` anywhere in the field; HTTP/2's is case-sensitive.
    if (!CONTINUE.test(req.headers.expect ?? '')) {
      log.debug({ code: 'GW_REQUEST_EXPECTATION_FAILED' }, 'request rejected')
      refuseExpectation(req, res)
      return
    }
    if (hasContent(req)) continueOnFirstRead(req, res)
    this.emit('request', req, res)
  }

  server.on('checkContinue', gatewayExpect)
  server.on('checkExpectation', gatewayExpect)
}
