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
import { Transform, type TransformCallback } from 'node:stream'
import { BodyTooLargeError, ClientGoneError } from './errors.js'

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
  private readonly source: unknown

  constructor (limit: number, source?: unknown) {
    super()
    this.limit = limit
    this.source = source
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
    callback(this.source === undefined || bodyEndedByClient(this.source) ? null : new ClientGoneError())
  }
}

/** `payload` (the client's request) through a BodyLimitStream that errors if the client aborts. */
export function limitedBody (payload: NodeJS.ReadableStream, limit: number): BodyLimitStream {
  const out = new BodyLimitStream(limit, payload)
  // The upstream request listens for this stream's errors while it sends the body. An error after
  // it stopped (or when nothing ever read the body) must not become an uncaught exception, which
  // stops the process: one client's oversized or reset body would take the gateway down.
  out.on('error', ignoreError)
  function clientAborted (): void { out.destroy(new ClientGoneError()) }
  payload.once('aborted', clientAborted)
  out.once('close', () => { payload.removeListener('aborted', clientAborted) })
  return payload.pipe(out)
}

function ignoreError (): void {}
