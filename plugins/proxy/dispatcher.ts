/**
 * The dispatcher every @fastify/reply-from of the proxy is given, and the channel that brings it
 * each request's own data: the route's UpstreamPool and the request being proxied.
 *
 * reply-from calls its dispatcher as `request(options, callback)` with undici dispatch options of
 * its own making (origin, path, method, a copy of the headers `rewriteRequestHeaders` returned,
 * body, timeouts). None of them is the caller's to fill, and the options object is new on every
 * call, so nothing can be keyed on it. What reply-from does guarantee is the order: `reply.from()`
 * builds those options and calls the dispatcher before it returns, with no await in between, and
 * calls it once (its own retries are off: every route's `retryDelay` answers null; the pool
 * retries itself). So `proxyFrom()` leaves the pool and the request in a slot right before
 * `reply.from()`, the dispatcher takes them out, and `proxyFrom()` empties the slot however
 * `reply.from()` ends. JavaScript runs one call at a time, so the slot never holds another
 * request's data.
 *
 * A dispatcher called with an empty slot (reply-from changed so that it calls later, or calls
 * twice) throws HandoffError instead of guessing: every proxied request would then fail with a
 * 500, which the proxy tests catch at once.
 *
 * docs/internals/proxy.md compares the other channels (symbol keys on the headers, which this
 * replaced, a WeakMap, AsyncLocalStorage).
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { FastifyReplyFromHooks, FastifyReplyFromOptions } from '@fastify/reply-from'
import type { ExchangeCallback, UpstreamRequest } from './exchange.js'
import type { UpstreamPool } from './upstream-pool.js'

/** reply-from called its dispatcher outside `proxyFrom()`: a programming error (answered 500), never a client's. */
export class HandoffError extends Error {
  constructor () {
    super('reply-from called the upstream dispatcher outside proxyFrom()')
    this.name = 'HandoffError'
  }
}

/** The request being handed to the dispatcher: set by `proxyFrom()`, emptied by `take()`. */
let pendingPool: UpstreamPool | null = null
let pendingRequest: FastifyRequest | null = null

/**
 * `reply.from(dest, options)` for a request of the route whose pool is `pool`: the pool gets the
 * request through the dispatcher below.
 */
export function proxyFrom (reply: FastifyReply, pool: UpstreamPool, dest: string, options: FastifyReplyFromHooks): void {
  pendingPool = pool
  pendingRequest = reply.request
  try {
    reply.from(dest, options)
  } finally {
    pendingPool = null
    pendingRequest = null
  }
}

/** What reply-from calls: its `undici` option (an object with undici's `request(options, callback)`). */
export interface UpstreamDispatcher {
  request: (opts: UpstreamRequest, callback: ExchangeCallback) => void
}

export const upstreamDispatcher: UpstreamDispatcher = {
  request (opts: UpstreamRequest, callback: ExchangeCallback): void {
    const pool = pendingPool
    const request = pendingRequest
    if (pool === null || request === null) throw new HandoffError()
    pendingPool = null
    pendingRequest = null
    pool.request(opts, request, callback)
  }
}

/**
 * The dispatcher as reply-from's `undici` option. Its type declares undici's whole overloaded
 * `Dispatcher['request']`; reply-from only ever calls the callback form, which is what this has.
 */
export const replyFromDispatcher = upstreamDispatcher as NonNullable<FastifyReplyFromOptions['undici']>
