/**
 * One request to an upstream target, as an undici dispatch handler.
 *
 * `UpstreamPool` dispatches every proxied request to the shared undici Agent with one
 * `UpstreamExchange` as its handler (no per-request closures: the state is on the object, the
 * callbacks are its methods). It implements undici's handler interface (`onRequestStart`,
 * `onResponseStart`, `onResponseData`, `onResponseEnd`, `onResponseError`, each given the
 * attempt's controller to abort, pause and resume the upstream request with), the only one
 * undici 8 accepts; undici 7 still takes the deprecated `onConnect`/`onHeaders`/... interface.
 * The exchange answers @fastify/reply-from the way undici's
 * `request()` does (`callback(err, { statusCode, headers, body })`, in the async context the
 * request was made in), and it owns what happens to the response body:
 *
 * - Response buffering (what nginx's `proxy_buffering` does): a response that declares a
 *   Content-Length of at most the gateway's buffer size (RESPONSE_BUFFER_BYTES, the proxy
 *   plugin's `responseBufferBytes`) and a Content-Type (so Fastify adds none) is collected
 *   chunk by chunk on the exchange itself and sent to the client in one write: no stream
 *   object, no pipe, no per-chunk events. A buffered response that fails before its last byte
 *   (reset, body idle timeout) has sent the client nothing yet: the upstream's headers are
 *   dropped and the route's error mapping answers (502/504) instead of a truncated 200.
 * - Everything else (no declared length, larger bodies, HEAD, 204/304, a zero buffer size)
 *   streams through an `UpstreamBody` Readable with backpressure: a full buffer pauses the
 *   upstream socket, the client's reads resume it; a client that goes away aborts the upstream.
 * - Before any response header: connection errors are counted against the target (passive
 *   health) and, when the request is safe to repeat, retried once per spare target.
 * - Timeouts: from the moment the request is on an upstream connection until its response
 *   headers (`headersTimeout`), then between two body chunks (`bodyTimeout`; while the client
 *   holds the body back, `sendTimeout` instead: nginx's `send_timeout`), as deadlines in
 *   the shared sweep of deadlines.ts. An expired exchange aborts its upstream request with
 *   undici's HeadersTimeoutError / BodyTimeoutError, exactly as undici's own timeouts (which the
 *   pool turns off) would; a streamed response cut this way is reset, never ended as complete.
 * - A client that leaves before the response headers: the same sweep ends the upstream request
 *   (within one tick), as nginx does by default, with ClientGoneError. That is not the target's
 *   fault: no passive-health failure, no retry, and nothing is sent (reply-from is not called
 *   back); the pool logs it at debug.
 */
import { AsyncResource } from 'node:async_hooks'
import type { IncomingMessage } from 'node:http'
import type { Http2ServerRequest } from 'node:http2'
import { Readable } from 'node:stream'
import { errors as undiciErrors, type Dispatcher } from 'undici'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { rewriteClientResponseHeaders } from './headers.js'
import type { Target } from './target.js'
import { upstreamDeadlines, type Deadlined } from './deadlines.js'
import { ClientGoneError } from '../../lib/errors.js'

type UpstreamHeaders = Record<string, string | string[] | undefined>

/** The client's request as Node gives it (HTTP/1.1 or HTTP/2). */
export type ClientRequest = IncomingMessage | Http2ServerRequest

/** The route's mapping of an upstream error to the client's answer (502/503/504/413). */
export type ProxyErrorMapper = (reply: FastifyReply, ctx: { error: Error & { cause?: unknown, code?: string } }) => void

/** What the exchange hands reply-from: undici's `request()` result shape. */
export interface ExchangeResponse {
  readonly statusCode: number
  readonly headers: UpstreamHeaders
  readonly body: Readable | UpstreamExchange
}

export type ExchangeCallback = (err: Error | null, data?: ExchangeResponse) => void

/** What the exchange needs of its pool (implemented by UpstreamPool). */
export interface ExchangeOwner {
  /** Bytes of a response read whole before it is sent; 0 = stream every response. */
  readonly responseBufferBytes: number
  /** Milliseconds from the request on a connection to its response headers (0 = none). */
  readonly headersTimeout: number
  /** Milliseconds between two response body chunks (0 = none). */
  readonly bodyTimeout: number
  /** Milliseconds a client may hold a streamed response back without reading (0 = none). */
  readonly sendTimeout: number
  /** Accounts an answer from the target (502/503/504 count as failures). */
  answered: (exchange: UpstreamExchange, statusCode: number) => void
  /** The client left before an answer and the upstream request was ended (not a failure of the target). */
  left: (exchange: UpstreamExchange) => void
  /** Accounts a failure before any answer; true when the pool sends the exchange to another target. */
  failed: (exchange: UpstreamExchange, err: Error & { code?: string }) => boolean
}

/** Request options as reply-from builds them (undici's dispatch options; a removed header is undefined). */
export type UpstreamRequest = Dispatcher.DispatchOptions & { headers: Record<string, string | string[] | number | undefined> }

const WAITING = 0
const BUFFERING = 1
const STREAMING = 2
const DONE = 3

export class UpstreamExchange extends AsyncResource implements Dispatcher.DispatchHandler, Deadlined {
  /** The target of the current attempt (set by the pool). */
  target: Target | null = null
  /** Further attempts allowed on other targets (set by the pool). */
  retriesLeft = 0
  deadline = 0
  prevDeadlined: Deadlined | null = null
  nextDeadlined: Deadlined | null = null
  armed = false
  private clientGone = false
  private phase = WAITING
  private callback: ExchangeCallback | null
  /** undici's controller of the current attempt: abort, pause and resume the upstream request. */
  private controller: Dispatcher.DispatchController | null = null
  private body: UpstreamBody | null = null
  private chunks: Buffer[] | null = null
  private length = 0
  private headers: UpstreamHeaders | null = null
  private reply: FastifyReply | null = null
  private onProxyError: ProxyErrorMapper | null = null

  /** The client's request as Node gives it: its connection (or HTTP/2 stream) closing before an answer abandons the exchange. */
  private readonly client: ClientRequest

  /** `request` is the request being proxied. */
  constructor (readonly owner: ExchangeOwner, readonly opts: UpstreamRequest, readonly request: FastifyRequest, callback: ExchangeCallback) {
    super('PORTCULLIS_UPSTREAM_REQUEST')
    this.callback = callback
    this.client = request.raw
  }

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.controller = controller
    const ms = this.owner.headersTimeout
    if (ms > 0) upstreamDeadlines.arm(this, Date.now() + ms)
  }

  /**
   * Waiting for the upstream's answer while the client's connection (or its HTTP/2 stream) is
   * already closed. Not `client.destroyed`: a request whose body has been read to its end is
   * destroyed (autoDestroy) while its connection still waits for the answer.
   */
  abandoned (): boolean {
    if (this.phase !== WAITING) return false
    const client = this.client
    if ('stream' in client) return client.stream.destroyed
    return client.socket?.destroyed === true
  }

  /** The deadline passed or the client left (deadlines.ts): the upstream request ends. */
  expire (): void {
    const controller = this.controller
    if (controller === null) return
    if (this.abandoned()) {
      this.clientGone = true
      controller.abort(new ClientGoneError())
    } else if (this.phase === WAITING) controller.abort(new undiciErrors.HeadersTimeoutError())
    else if (this.phase === BUFFERING || this.phase === STREAMING) controller.abort(new undiciErrors.BodyTimeoutError())
  }

  /** Body idle deadline from now (or none). */
  private bodyDeadline (): void {
    const ms = this.owner.bodyTimeout
    if (ms > 0) upstreamDeadlines.arm(this, Date.now() + ms)
    else upstreamDeadlines.disarm(this)
  }

  onResponseStart (controller: Dispatcher.DispatchController, statusCode: number, headers: UpstreamHeaders): void {
    // 1xx informational answers are not passed on (as with undici's request()).
    if (statusCode < 200) return
    this.owner.answered(this, statusCode)
    this.headers = headers
    const declared = headers['content-length']
    let body: Readable | UpstreamExchange
    if (typeof declared === 'string' && Number(declared) <= this.owner.responseBufferBytes &&
        headers['content-type'] !== undefined && statusCode !== 204 && statusCode !== 304 && this.opts.method !== 'HEAD') {
      this.phase = BUFFERING
      this.chunks = []
      body = this
    } else {
      this.phase = STREAMING
      body = this.body = new UpstreamBody(this)
    }
    this.bodyDeadline()
    const callback = this.callback as ExchangeCallback
    this.callback = null
    try {
      this.runInAsyncScope(callback, null, null, { statusCode, headers, body })
    } catch (err) {
      // As undici's request() does: the upstream request ends and the error is thrown again
      // outside undici's parser, where it is not swallowed.
      this.phase = DONE
      this.chunks = null
      upstreamDeadlines.disarm(this)
      controller.abort(err as Error)
      queueMicrotask(() => { throw err })
    }
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.phase === BUFFERING) {
      (this.chunks as Buffer[]).push(chunk)
      this.length += chunk.length
      if (this.armed) this.deadline = Date.now() + this.owner.bodyTimeout
      return
    }
    if (this.phase === STREAMING) {
      // A full body buffer pauses the upstream: the client, not the upstream, is idle then, so
      // the body deadline waits until the client reads again (resume()). The client gets its own
      // bound (nginx's send_timeout): one that reads nothing for sendTimeout loses the response.
      // Without it, an HTTP/2 client with a zero flow-control window, kept alive by PINGs, held
      // the upstream request open for as long as it liked.
      if ((this.body as UpstreamBody).push(chunk)) {
        if (this.armed) this.deadline = Date.now() + this.owner.bodyTimeout
        return
      }
      controller.pause()
      const ms = this.owner.sendTimeout
      if (ms > 0) upstreamDeadlines.arm(this, Date.now() + ms)
      else upstreamDeadlines.disarm(this)
    }
  }

  onResponseEnd (): void {
    upstreamDeadlines.disarm(this)
    const phase = this.phase
    this.phase = DONE
    if (phase === BUFFERING) {
      // Sent on the next tick, outside undici's parser callback (as a stream's 'end' would be).
      if (this.reply !== null) process.nextTick(sendBufferedTick, this)
      else this.chunks = null
    } else if (phase === STREAMING) {
      (this.body as UpstreamBody).push(null)
    }
  }

  /** `controller` is undefined when the request failed before it reached a connection. */
  onResponseError (_controller: Dispatcher.DispatchController | undefined, err: Error & { code?: string }): void {
    upstreamDeadlines.disarm(this)
    const phase = this.phase
    if (phase === WAITING && this.clientGone) {
      // Ended because the client left: nothing to count against the target and nobody to answer,
      // so reply-from is not called back (it would log the error and try to send one).
      this.phase = DONE
      this.callback = null
      destroyRequestBody(this.opts.body, err)
      this.owner.left(this)
      return
    }
    if (phase === WAITING) {
      // Before any answer: the pool counts the failure and may send the request elsewhere
      // (re-dispatched on the next tick, as undici reports errors from inside its own calls).
      if (this.owner.failed(this, err)) {
        this.controller = null
        return
      }
      this.phase = DONE
      destroyRequestBody(this.opts.body, err)
      process.nextTick(failExchange, this, err)
      return
    }
    this.phase = DONE
    destroyRequestBody(this.opts.body, err)
    if (phase === BUFFERING) {
      this.chunks = null
      if (this.reply !== null) this.runInAsyncScope(this.answerBufferedError, this, err)
    } else if (phase === STREAMING) {
      (this.body as UpstreamBody).destroy(err)
    }
  }

  /**
   * reply-from's `onResponse` hands a buffered exchange its reply: the body is sent there once
   * complete (or the route's error mapping answers if the upstream fails first).
   */
  deliverTo (reply: FastifyReply, onError: ProxyErrorMapper): void {
    this.reply = reply
    this.onProxyError = onError
  }

  /** Stream-like: reply-from destroys the body of a response whose client already left. */
  destroy (): void {
    if (this.phase === DONE) return
    this.phase = DONE
    this.chunks = null
    upstreamDeadlines.disarm(this)
    this.controller?.abort(new undiciErrors.RequestAbortedError())
  }

  /** UpstreamBody: the client reads again (the body deadline replaces a send deadline). */
  resume (): void {
    if (this.phase === STREAMING) this.bodyDeadline()
    this.controller?.resume()
  }

  /** UpstreamBody: the body was destroyed before its end (the client went away). */
  abort (err: Error): void {
    if (this.phase === DONE) return
    this.phase = DONE
    upstreamDeadlines.disarm(this)
    this.controller?.abort(err)
  }

  /** Answers reply-from with the error (once). */
  fail (err: Error): void {
    const callback = this.callback
    if (callback === null) return
    this.callback = null
    this.runInAsyncScope(callback, null, err)
  }

  /** Sends the collected body to the client (in the request's async context). */
  sendBuffered (): void {
    const reply = this.reply as FastifyReply
    const chunks = this.chunks as Buffer[]
    this.chunks = null
    // The client went away while the body was read, or an error answer went out: nothing to send.
    if (reply.sent || reply.raw.destroyed) return
    reply.send(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, this.length))
  }

  private answerBufferedError (error: Error & { code?: string }): void {
    const reply = this.reply as FastifyReply
    if (reply.sent || reply.raw.destroyed) return
    // Nothing has reached the client: the error answer carries none of the upstream's headers
    // (the gateway's own, such as x-request-id, stay).
    for (const name in rewriteClientResponseHeaders(this.headers as UpstreamHeaders)) reply.removeHeader(name)
    ;(this.onProxyError as ProxyErrorMapper)(reply, { error })
  }
}

function failExchange (exchange: UpstreamExchange, err: Error): void {
  exchange.fail(err)
}

function sendBufferedTick (exchange: UpstreamExchange): void {
  exchange.runInAsyncScope(exchange.sendBuffered, exchange)
}

function destroyRequestBody (body: unknown, err: Error): void {
  if (body instanceof Readable && !body.destroyed) {
    body.on('error', ignore)
    body.destroy(err)
  }
}

function ignore (): void {}

/** A streamed upstream response body: backpressure to the upstream socket, abort on early destroy. */
export class UpstreamBody extends Readable {
  constructor (private readonly exchange: UpstreamExchange) {
    super({ highWaterMark: 64 * 1024 })
  }

  override _read (): void {
    this.exchange.resume()
  }

  override _destroy (err: Error | null, callback: (error?: Error | null) => void): void {
    // Destroyed before its end: the upstream request is aborted (its connection is not reused).
    if (!this.readableEnded) this.exchange.abort(err ?? new undiciErrors.RequestAbortedError())
    callback(err)
  }
}
