/**
 * BODY_LIMIT for streamed (proxied) bodies, which Fastify's own bodyLimit does not cover.
 * A declared Content-Length over the limit is refused before any byte is read; a chunked body is
 * counted as it streams and the upstream request is aborted at the limit, so the upstream never
 * receives a complete over-limit body.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import { BodyTooLargeError } from './errors.js'

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
}

/**
 * Past the limit with nobody reading this stream (Fastify hands no body to GET, HEAD and TRACE
 * handlers, nor an HTTP/2 body with neither Content-Type nor Content-Length), its error would be
 * unhandled and end the process. The client's request ends instead, and its connection with it.
 * With a reader (the upstream request), the reader handles the error: the client gets a 413.
 */
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
