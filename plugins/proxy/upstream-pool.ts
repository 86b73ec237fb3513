/**
 * Targets of one route: round-robin load balancing, passive health (a per-target circuit
 * breaker), optional active health checks, safe retries and the per-route in-flight cap.
 *
 * `UpstreamPool.request` takes one proxied request from the dispatcher @fastify/reply-from
 * calls (dispatcher.ts, which brings it the route's pool and the client's request) and
 * dispatches it to the gateway's shared undici Agent (one connection pool per upstream origin,
 * whatever the number of routes) with an UpstreamExchange as the handler (exchange.ts: response
 * buffering and streaming), choosing the target per attempt.
 */
import type { Dispatcher } from 'undici'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { BodyTooLargeError, UpstreamUnavailableError } from '../../lib/errors.js'
import { UpstreamExchange, type ExchangeCallback, type ExchangeOwner, type UpstreamRequest } from './exchange.js'
import { upstreamDeadlines } from './deadlines.js'
import { Target } from './target.js'
import { kUpstreamTarget } from '../../lib/route-contract.js'

export { Target } from './target.js'

/** The target that served (or last failed) a request; read by the access log. */
export const kTarget: typeof kUpstreamTarget = kUpstreamTarget

export interface CircuitOptions { readonly failureThreshold: number, readonly cooldownMs: number }
export interface HealthCheckOptions {
  readonly path: string
  readonly intervalMs: number
  readonly timeoutMs: number
  readonly healthyThreshold: number
  readonly unhealthyThreshold: number
}

const RETRYABLE_CONNECT = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND'])
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])

export interface PoolOptions {
  readonly targets: readonly URL[]
  readonly agent: Dispatcher
  readonly headersTimeoutMs: number
  readonly bodyIdleTimeoutMs: number
  /** A client that reads nothing of a streamed response for this long loses it (0 = never). */
  readonly sendTimeoutMs: number
  readonly retries: number
  readonly circuit: CircuitOptions | false
  readonly healthCheck: HealthCheckOptions | false
  readonly maxInFlight: number
  /** Responses declaring at most this many bytes are read whole, then sent (0 = stream all). */
  readonly responseBufferBytes: number
  readonly log: FastifyBaseLogger
  readonly onUpstreamError: (kind: string) => void
}

export function errorKind (err: Error & { code?: string }): 'timeout' | 'unavailable' | 'refused' | 'reset' | 'invalid' | 'too-large' {
  if (err instanceof BodyTooLargeError) return 'too-large'
  const code = err.code ?? ''
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') return 'timeout'
  if (code === 'GW_UPSTREAM_UNAVAILABLE' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'unavailable'
  if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'refused'
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE' || code === 'UND_ERR_CLOSED') return 'reset'
  return 'invalid'
}

export class UpstreamPool implements ExchangeOwner {
  readonly targets: readonly Target[]
  readonly responseBufferBytes: number
  /** The exchanges' response-header and body-idle timeouts (ms; deadlines.ts). */
  readonly headersTimeout: number
  readonly bodyTimeout: number
  readonly sendTimeout: number
  inFlight = 0
  private next = 0
  private readonly agent: Dispatcher
  private readonly retries: number
  private readonly circuit: CircuitOptions | false
  private readonly log: FastifyBaseLogger
  private readonly onUpstreamError: (kind: string) => void
  private readonly timers: NodeJS.Timeout[] = []
  readonly maxInFlight: number

  constructor (o: PoolOptions) {
    this.targets = o.targets.map((u) => new Target(u))
    this.agent = o.agent
    this.headersTimeout = o.headersTimeoutMs
    this.bodyTimeout = o.bodyIdleTimeoutMs
    this.sendTimeout = o.sendTimeoutMs
    upstreamDeadlines.register(o.sendTimeoutMs)
    upstreamDeadlines.register(o.headersTimeoutMs)
    upstreamDeadlines.register(o.bodyIdleTimeoutMs)
    this.retries = o.retries
    this.circuit = o.circuit
    this.log = o.log
    this.onUpstreamError = o.onUpstreamError
    this.maxInFlight = o.maxInFlight
    this.responseBufferBytes = o.responseBufferBytes
    if (o.healthCheck !== false) this.startHealthChecks(o.healthCheck)
  }

  /** Picks the next available target round-robin; null when none is. Admits one trial per open circuit. */
  pick (exclude?: Target): Target | null {
    const n = this.targets.length
    const now = Date.now()
    for (let i = 0; i < n; i++) {
      const t = this.targets[(this.next + i) % n] as Target
      if (t === exclude || !t.healthy) continue
      if (t.openUntil !== 0) {
        if (now < t.openUntil || t.trial) continue
        t.trial = true
      }
      this.next = (this.next + i + 1) % n
      return t
    }
    return null
  }

  /** Seconds until a target may be tried again (for Retry-After). */
  retryAfterSeconds (): number {
    let soonest = Infinity
    const now = Date.now()
    for (const t of this.targets) {
      if (t.healthy && t.openUntil > now) soonest = Math.min(soonest, t.openUntil - now)
    }
    return Number.isFinite(soonest) ? Math.max(1, Math.ceil(soonest / 1000)) : 5
  }

  private success (t: Target): void {
    if (t.failures !== 0 || t.openUntil !== 0) {
      if (t.openUntil !== 0) this.log.info({ target: t.host }, 'upstream target recovered')
      t.failures = 0
      t.openUntil = 0
    }
    t.trial = false
  }

  private failure (t: Target): void {
    t.failures++
    const wasTrial = t.trial
    t.trial = false
    if (this.circuit !== false && (wasTrial || t.failures >= this.circuit.failureThreshold)) {
      t.openUntil = Date.now() + this.circuit.cooldownMs
      this.log.warn({ target: t.host, failures: t.failures }, 'upstream target ejected')
    }
  }

  /**
   * Sends one request (reply-from's dispatch options) to a target, and answers `callback` as
   * undici's `request()` would; `client` is the request being proxied.
   */
  request (opts: UpstreamRequest, client: FastifyRequest, callback: ExchangeCallback): void {
    const target = this.pick()
    if (target === null) {
      this.onUpstreamError('unavailable')
      callback(new UpstreamUnavailableError())
      return
    }
    const exchange = new UpstreamExchange(this, opts, client, callback)
    const body = opts.body
    exchange.retriesLeft = this.retries > 0 && IDEMPOTENT.has(opts.method) &&
      (body === undefined || body === null || body === '') && opts.headers['content-length'] === undefined
      ? this.retries
      : 0
    exchange.target = target
    this.dispatch(exchange)
  }

  dispatch (exchange: UpstreamExchange): void {
    const opts = exchange.opts
    const target = exchange.target as Target
    opts.origin = target.origin
    opts.headers.host = target.host
    // The exchange keeps these timeouts itself (deadlines.ts): undici's would cost a timer object
    // per request.
    opts.headersTimeout = 0
    opts.bodyTimeout = 0
    exchange.request[kTarget] = target
    this.agent.dispatch(opts, exchange)
  }

  answered (exchange: UpstreamExchange, statusCode: number): void {
    const target = exchange.target as Target
    if (statusCode === 502 || statusCode === 503 || statusCode === 504) this.failure(target)
    else this.success(target)
  }

  left (exchange: UpstreamExchange): void {
    this.log.debug({ target: exchange.target?.host }, 'client left before the upstream answered; upstream request ended')
  }

  failed (exchange: UpstreamExchange, err: Error & { code?: string }): boolean {
    const target = exchange.target as Target
    if (err instanceof BodyTooLargeError) {
      // The client's fault, not the target's.
      target.trial = false
      return false
    }
    this.failure(target)
    this.onUpstreamError(errorKind(err))
    if (exchange.retriesLeft > 0 && RETRYABLE_CONNECT.has(err.code ?? '')) {
      const other = this.pick(target)
      if (other !== null) {
        this.log.debug({ target: target.host, code: err.code }, 'retrying on another target')
        exchange.retriesLeft--
        exchange.target = other
        process.nextTick(redispatch, this, exchange)
        return true
      }
    }
    return false
  }

  private startHealthChecks (hc: HealthCheckOptions): void {
    for (const t of this.targets) {
      const timer = setInterval(() => { this.probe(t, hc) }, hc.intervalMs)
      timer.unref()
      this.timers.push(timer)
      this.probe(t, hc)
    }
  }

  private probe (t: Target, hc: HealthCheckOptions): void {
    this.agent.request({
      origin: t.origin,
      path: hc.path,
      method: 'GET',
      headers: { host: t.host, 'user-agent': 'portcullis-health-check' },
      headersTimeout: hc.timeoutMs,
      bodyTimeout: hc.timeoutMs
    }, (err, data) => {
      const ok = err === null && data.statusCode >= 200 && data.statusCode < 400
      if (err === null) data.body.resume()
      this.recordProbe(t, ok, hc)
    })
  }

  private recordProbe (t: Target, ok: boolean, hc: HealthCheckOptions): void {
    if (ok === t.healthy) {
      t.probeStreak = 0
      return
    }
    t.probeStreak++
    if (t.probeStreak >= (ok ? hc.healthyThreshold : hc.unhealthyThreshold)) {
      t.healthy = ok
      t.probeStreak = 0
      if (ok) {
        t.failures = 0
        t.openUntil = 0
      }
      this.log[ok ? 'info' : 'warn']({ target: t.host }, ok ? 'upstream target healthy' : 'upstream target unhealthy')
    }
  }

  close (): void {
    for (const timer of this.timers) clearInterval(timer)
    this.timers.length = 0
  }
}

function redispatch (pool: UpstreamPool, exchange: UpstreamExchange): void {
  pool.dispatch(exchange)
}
