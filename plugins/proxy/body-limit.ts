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

  constructor (limit: number) {
    super()
    this.limit = limit
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
 * A BodyLimitStream that starts reading its source only when its own reader first asks (the
 * upstream request, once it has a connection): for requests with `Expect: 100-continue`, whose
 * `100 Continue` goes out on that first read (request-guard/expect.ts), so it follows every hook
 * that runs before the handler (the route's in-flight cap included) and a working upstream.
 */
export class DeferredBodyLimitStream extends BodyLimitStream {
  private source: Readable | null

  constructor (limit: number, source: Readable) {
    super(limit)
    this.source = source
  }

  override _read (size: number): void {
    const source = this.source
    if (source !== null) {
      this.source = null
      source.pipe(this)
    }
    super._read(size)
  }
}
