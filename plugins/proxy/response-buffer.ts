/**
 * Response buffering for small upstream responses (what nginx's `proxy_buffering` does).
 *
 * A response that declares a Content-Length of at most the gateway's buffer size
 * (RESPONSE_BUFFER_BYTES, the proxy plugin's `responseBufferBytes`), and a
 * Content-Type (so Fastify adds none), is read whole from the upstream and sent to the client
 * in one write: no stream pipe, no per-chunk events towards the client. Everything else (no
 * declared length, larger bodies, HEAD, 1xx/204/304, a zero buffer size) streams with
 * backpressure as before.
 *
 * A buffered response that fails before its last byte (reset, body idle timeout) has sent the
 * client nothing yet: the upstream's headers are dropped and the route's error mapping answers
 * (502/504), instead of a truncated 200.
 *
 * Listeners are module-level functions with their state on the stream (no closure per request).
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Readable } from 'node:stream'
import { isForwardedResponseHeader } from './headers.js'

type UpstreamHeaders = Record<string, string | string[] | undefined>

/** What @fastify/reply-from hands its `onResponse` option. */
export interface UpstreamResponse {
  readonly statusCode: number
  readonly headers: UpstreamHeaders
  readonly stream: Readable
}

export type ProxyErrorMapper = (reply: FastifyReply, ctx: { error: Error & { cause?: unknown, code?: string } }) => void

/** Default bytes of one upstream response read whole before it is sent (RESPONSE_BUFFER_BYTES). */
export const DEFAULT_RESPONSE_BUFFER_BYTES = 16 * 1024
/** Largest buffer size accepted (RESPONSE_BUFFER_BYTES in src/config.ts states the same bound). */
export const MAX_RESPONSE_BUFFER_BYTES = 8 * 1024 * 1024

const kCollect = Symbol('portcullis.responseBuffer')

interface Collector {
  readonly reply: FastifyReply
  readonly headers: UpstreamHeaders
  readonly onError: ProxyErrorMapper
  chunks: Buffer[]
  length: number
}

type CollectingStream = Readable & { [kCollect]?: Collector }

function collectChunk (this: CollectingStream, chunk: Buffer): void {
  const c = this[kCollect] as Collector
  c.chunks.push(chunk)
  c.length += chunk.length
}

function collectEnd (this: CollectingStream): void {
  const c = this[kCollect] as Collector
  // The client went away while the body was read: nothing to send to.
  if (c.reply.raw.destroyed) return
  const chunks = c.chunks
  c.reply.send(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, c.length))
}

function collectError (this: CollectingStream, error: Error & { code?: string }): void {
  const c = this[kCollect] as Collector
  c.chunks = []
  const reply = c.reply
  if (reply.sent || reply.raw.destroyed) return
  // Nothing has reached the client: the error answer carries none of the upstream's headers
  // (the gateway's own, such as x-request-id, stay).
  for (const name in c.headers) if (isForwardedResponseHeader(name)) reply.removeHeader(name)
  c.onError(reply, { error })
}

/**
 * The `onResponse` option for @fastify/reply-from: buffers responses up to `limit` bytes
 * (0 = stream every response), streams the rest. Built once per route.
 */
export function responseSender (limit: number, onError: ProxyErrorMapper): (request: FastifyRequest, reply: FastifyReply, res: UpstreamResponse) => void {
  return function proxySendResponse (request: FastifyRequest, reply: FastifyReply, res: UpstreamResponse): void {
    const headers = res.headers
    const declared = headers['content-length']
    const status = res.statusCode
    if (typeof declared !== 'string' || !(Number(declared) <= limit) || headers['content-type'] === undefined ||
        request.method === 'HEAD' || status < 200 || status === 204 || status === 304) {
      reply.send(res.stream)
      return
    }
    const stream = res.stream as CollectingStream
    stream[kCollect] = { reply, headers, onError, chunks: [], length: 0 }
    stream.on('error', collectError)
    stream.on('end', collectEnd)
    stream.on('data', collectChunk)
  }
}
