/**
 * BODY_LIMIT for streamed (proxied) bodies, which Fastify's own bodyLimit does not cover.
 * A declared Content-Length over the limit is refused before any byte is read; a chunked body is
 * counted as it streams and the upstream request is aborted at the limit, so the upstream never
 * receives a complete over-limit body.
 */
import { Transform, type TransformCallback } from 'node:stream'
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
