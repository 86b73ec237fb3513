/**
 * Response buffering for small upstream responses (what nginx's `proxy_buffering` does): the
 * buffer size and reply-from's `onResponse` that sends a response either way.
 *
 * Which responses are buffered, and how, is the upstream exchange's business (exchange.ts): a
 * response that declares a Content-Length of at most RESPONSE_BUFFER_BYTES (the proxy plugin's
 * `responseBufferBytes`) and a Content-Type is collected whole and sent in one write;
 * everything else streams with backpressure.
 */
import { constants as h2, type ServerHttp2Stream } from 'node:http2'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Readable } from 'node:stream'
import { UpstreamExchange, type ProxyErrorMapper } from './exchange.js'

export type { ProxyErrorMapper } from './exchange.js'

const NGHTTP2_INTERNAL_ERROR = h2.NGHTTP2_INTERNAL_ERROR

/** What @fastify/reply-from hands its `onResponse` option. */
export interface UpstreamResponse {
  readonly statusCode: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly stream: Readable | UpstreamExchange
}

/**
 * The `onResponse` option for @fastify/reply-from: a buffered exchange gets the reply to send
 * its body to once complete; a streamed body is sent as a stream. Built once per route.
 */
export function responseSender (onError: ProxyErrorMapper): (request: FastifyRequest, reply: FastifyReply, res: UpstreamResponse) => void {
  return function proxySendResponse (_request: FastifyRequest, reply: FastifyReply, res: UpstreamResponse): void {
    const body = res.stream
    if (body instanceof UpstreamExchange) {
      body.deliverTo(reply, onError)
      return
    }
    const stream = (reply.raw as { stream?: ServerHttp2Stream }).stream
    // HTTP/2: a body the upstream cut short (reset, idle timeout) must not end with END_STREAM or
    // RST_STREAM(NO_ERROR), which clients take for a complete response (RFC 9113 8.1); Fastify
    // destroys the response without an error. Registered before Fastify's own listener, this resets
    // the stream with INTERNAL_ERROR first. (HTTP/1.1 closes the connection before the body's end.)
    if (stream !== undefined) body.once('error', () => { if (!stream.destroyed) stream.close(NGHTTP2_INTERNAL_ERROR) })
    reply.send(body)
  }
}
