/**
 * BODY_LIMIT for streamed (proxied) bodies, which Fastify's own bodyLimit does not cover.
 * A declared Content-Length over the limit is refused before any byte is read; a chunked body is
 * counted as it streams and the upstream request is aborted at the limit, so the upstream never
 * receives a complete over-limit body.
 *
 * A body also ends only when the client ended it: Node's HTTP/2 compatibility layer ends a
 * request's body when the client resets the stream (RST_STREAM) and reports the abort only later,
 * so a chunked upstream request would be finished with a truncated body that looks complete.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import { BodyTooLargeError, ClientGoneError } from '../../lib/errors.js'

interface Http2Source { stream?: { aborted?: boolean, state?: { remoteClose?: number } } }

/**
 * Whether the client ended the request body itself: always for HTTP/1.1 (Node's parser errors on
 * a cut body); for HTTP/2, when END_STREAM arrived (RFC 9113 8.1) and the stream was not reset.
 */
export function bodyEndedByClient (raw: unknown): boolean {
  const stream = (raw as Http2Source).stream
  return stream === undefined || (stream.aborted !== true && stream.state?.remoteClose === 1)
}

export class BodyLimitStream extends Transform {
  private received = 0
  private readonly limit: number
  /** The client's request body this stream reads. */
  readonly client: Readable

  constructor (limit: number, client: Readable) {
    super()
    this.limit = limit
    this.client = client
    this.on('error', endUnreadBody)
  }

  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length
    if (this.received > this.limit) {
      callback(new BodyTooLargeError())
      return
    }
    callback(null, chunk)
  }

  override _flush (callback: TransformCallback): void {
    if (bodyEndedByClient(this.client)) {
      callback(null)
      return
    }
    // The end of the body can be read in the same turn as the frame that carries END_STREAM,
    // before the session records the remote close: look again once that turn is over.
    setImmediate(() => { callback(bodyEndedByClient(this.client) ? null : new ClientGoneError()) })
  }
}

/**
 * `payload` (the client's request) through a BodyLimitStream that errors if the client aborts;
 * `deferred` (a request with `Expect: 100-continue`): read only when the upstream request asks.
 */
export function limitedBody (payload: Readable, limit: number, deferred: boolean): BodyLimitStream {
  const out = deferred ? new DeferredBodyLimitStream(limit, payload) : new BodyLimitStream(limit, payload)
  function clientAborted (): void { out.destroy(new ClientGoneError()) }
  payload.once('aborted', clientAborted)
  out.once('close', () => { payload.removeListener('aborted', clientAborted) })
  return deferred ? out : payload.pipe(out)
}

/**
 * Past the limit with nobody reading this stream (Fastify hands no body to GET, HEAD and TRACE
 * handlers, nor an HTTP/2 body with neither Content-Type nor Content-Length), its error would be
 * unhandled and end the process. The client's request ends instead, and its connection with it.
 * With a reader (the upstream request), the reader handles the error: the client gets a 413.
 */
// Always listening, it also keeps an error after the upstream request stopped reading (or a
// client reset) from becoming an uncaught exception that would stop the process.
function endUnreadBody (this: BodyLimitStream): void {
  if (this.listenerCount('error') === 1) this.client.destroy()
}

/**
 * A BodyLimitStream that starts reading its source only when its own reader first asks (the
 * upstream request, once it has a connection): for requests with `Expect: 100-continue`, whose
 * `100 Continue` goes out on that first read (request-guard/expect.ts), so it follows every hook
 * that runs before the handler (the route's in-flight cap included) and a working upstream.
 */
export class DeferredBodyLimitStream extends BodyLimitStream {
  private pending: Readable | null

  constructor (limit: number, client: Readable) {
    super(limit, client)
    this.pending = client
  }

  override _read (size: number): void {
    const source = this.pending
    if (source !== null) {
      this.pending = null
      source.pipe(this)
    }
    super._read(size)
  }
}
