/**
 * Forward auth: the decision is delegated to an external authorization service, the way Traefik
 * forwardAuth, nginx auth_request and Envoy ext_authz (HTTP) do it. Per request the gateway sends
 * the service a GET (no body) carrying the original method (`x-forwarded-method`), URI
 * (`x-forwarded-uri`), host (`x-forwarded-host`), scheme (`x-forwarded-proto`), client address
 * (`x-forwarded-for`) and the chosen client headers (default `authorization`, `cookie`).
 *
 * 2xx: allowed; the consumer header names the caller (`x-consumer-id`) and the chosen response
 * headers go upstream as identity. 401: refused (GW_AUTH_UNAUTHORIZED). 403: forbidden
 * (GW_AUTH_FORBIDDEN). Anything else, a 2xx without a usable identity, a timeout or a connection
 * failure: GW_AUTH_UNAVAILABLE (503, fail closed). Redirects are never followed.
 *
 * Decision cache (`cacheTtlMs` > 0): allowed (with their identity headers), 401 and 403 answers
 * are remembered in a bounded LRU keyed by the SHA-256 of everything the call carries (the
 * forwarded method, URI, host, scheme, client address and every chosen client header, names and
 * values), so two requests that would show the service anything different never share a
 * decision, and no credential is kept as a key. An answer is kept for `cacheTtlMs`, less when
 * its Cache-Control (`max-age`, `s-maxage`) or Expires says so, and not at all with `no-store`,
 * `no-cache` or a lifetime that does not parse. Failures (503) are never kept. Concurrent
 * identical checks share one call (single flight); its failure reaches only those waiting on it.
 */
import { createHash } from 'node:crypto'
import { Agent, request } from 'undici'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Consumer } from '../../lib/consumer.js'
import { AuthUnavailableError } from '../../lib/errors.js'
import { ExpiringLru } from './expiring-lru.js'
import { AuthFailure } from './jwt.js'

const SAFE_SUBJECT = /^[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?$/
/** A header value safe to send upstream: visible ASCII and spaces, bounded. */
const SAFE_VALUE = /^[\x20-\x7e]{0,4096}$/
/** A delta-seconds value (RFC 9111 §1.2.2); larger ones count as 2^31 s. */
const DELTA_SECONDS = /^\d+$/
const MAX_DELTA_S = 2_147_483_648

export interface ForwardAuthOptions {
  readonly url: string
  readonly timeoutMs: number
  readonly requestHeaders: readonly string[]
  readonly responseHeaders: readonly string[]
  readonly consumerHeader: string
  /** Longest time a decision is remembered; 0 switches the cache (and single flight) off. */
  readonly cacheTtlMs: number
  /** Decisions remembered at most (LRU). */
  readonly cacheMax: number
  readonly log: FastifyBaseLogger
  /** The clock of the cache (default Date.now). */
  readonly now?: () => number
}

/** What the service decided: a consumer, a refusal (401), or `forbidden` (403). */
export type ForwardAuthDecision = Consumer | AuthFailure | 'forbidden'

/** The parts of the client's request the check is built from. */
export type ForwardAuthRequest = Pick<FastifyRequest, 'method' | 'url' | 'protocol' | 'ip' | 'headers'>

type Headers = Readonly<Record<string, string | string[] | undefined>>

function oneValue (v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v
}

/**
 * How long the service lets its answer be reused, in ms after `now` (RFC 9111 §4.2.1, read as a
 * private cache whose key holds the caller's credentials, so `private` does not forbid it):
 * 0 with `no-store`, `no-cache`, a lifetime that does not parse or an Expires in the past;
 * the least of `max-age` and `s-maxage` when given, else what Expires leaves; undefined when
 * the answer sets no limit.
 */
export function answerLifetimeMs (answer: Headers, now: number): number | undefined {
  const cacheControl = oneValue(answer['cache-control'])
  let lifetimeS: number | undefined
  if (cacheControl !== undefined) {
    for (const directive of cacheControl.split(',')) {
      const eq = directive.indexOf('=')
      const name = (eq === -1 ? directive : directive.slice(0, eq)).trim().toLowerCase()
      if (name === 'no-store' || name === 'no-cache') return 0
      if (name !== 'max-age' && name !== 's-maxage') continue
      const raw = eq === -1 ? '' : directive.slice(eq + 1).trim()
      const value = raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw
      if (!DELTA_SECONDS.test(value)) return 0
      lifetimeS = Math.min(lifetimeS ?? MAX_DELTA_S, Number(value), MAX_DELTA_S)
    }
  }
  if (lifetimeS !== undefined) return lifetimeS * 1000
  const expires = oneValue(answer.expires)
  if (expires === undefined) return undefined
  const at = Date.parse(expires)
  if (Number.isNaN(at)) return 0
  const date = Date.parse(oneValue(answer.date) ?? '')
  return Math.max(0, at - (Number.isNaN(date) ? now : date))
}

interface Answer {
  readonly decision: ForwardAuthDecision
  /** The answer's own limit on reuse (undefined: none). */
  readonly lifetimeMs: number | undefined
}

export class ForwardAuthClient {
  readonly #o: ForwardAuthOptions
  readonly #agent: Agent
  readonly #now: () => number
  readonly #cache: ExpiringLru<ForwardAuthDecision> | undefined
  readonly #inFlight = new Map<string, Promise<ForwardAuthDecision>>()
  /** Every header name whose client-sent copy is dropped on forward-auth routes. */
  readonly identityHeaders: readonly string[]
  /** Calls made to the service (for tests and metrics). */
  calls = 0

  constructor (o: ForwardAuthOptions) {
    this.#o = o
    this.#agent = new Agent({ connect: { timeout: o.timeoutMs }, keepAliveTimeout: 10_000 })
    this.#now = o.now ?? Date.now
    this.#cache = o.cacheTtlMs > 0 ? new ExpiringLru(o.cacheMax) : undefined
    this.identityHeaders = Object.freeze([...new Set([o.consumerHeader, ...o.responseHeaders])])
  }

  /** Decisions held by the cache (0 when it is off). */
  get cacheSize (): number { return this.#cache?.size ?? 0 }

  /** Forgets every remembered decision. */
  clearCache (): void { this.#cache?.clear() }

  /**
   * The service's decision about `req` (remembered, or shared with an identical check in
   * flight, when the cache is on); throws AuthUnavailableError when it gives no usable answer.
   */
  async decide (req: ForwardAuthRequest, clientHeaders: Headers): Promise<ForwardAuthDecision> {
    const headers = this.#checkHeaders(req, clientHeaders)
    const cache = this.#cache
    if (cache === undefined) return (await this.#ask(headers)).decision
    // Everything the call carries, in a fixed order (the object is built the same way each
    // time): two checks with one key would show the service the very same request.
    const key = createHash('sha256').update(JSON.stringify(headers)).digest('base64url')
    const cached = cache.get(key, this.#now())
    if (cached !== undefined) return cached
    let flight = this.#inFlight.get(key)
    if (flight === undefined) {
      flight = this.#askAndRemember(cache, key, headers).finally(() => { this.#inFlight.delete(key) })
      this.#inFlight.set(key, flight)
    }
    return await flight
  }

  /** The headers of the check: the forwarded facts, then the chosen client headers. */
  #checkHeaders (req: ForwardAuthRequest, clientHeaders: Headers): Record<string, string> {
    const headers: Record<string, string> = {
      'x-forwarded-method': req.method,
      'x-forwarded-uri': req.url,
      'x-forwarded-proto': req.protocol,
      'x-forwarded-for': req.ip
    }
    const host = req.headers.host
    if (typeof host === 'string') headers['x-forwarded-host'] = host
    for (const name of this.#o.requestHeaders) {
      const v = clientHeaders[name]
      if (typeof v === 'string') headers[name] = v
      else if (Array.isArray(v)) headers[name] = v.join(name === 'cookie' ? '; ' : ', ')
    }
    return headers
  }

  async #askAndRemember (cache: ExpiringLru<ForwardAuthDecision>, key: string, headers: Record<string, string>): Promise<ForwardAuthDecision> {
    const { decision, lifetimeMs } = await this.#ask(headers)
    const now = this.#now()
    cache.set(key, decision, now + Math.min(this.#o.cacheTtlMs, lifetimeMs ?? Number.POSITIVE_INFINITY), now)
    return decision
  }

  async #ask (headers: Record<string, string>): Promise<Answer> {
    const { url, timeoutMs } = this.#o
    this.calls++
    let status: number
    let answer: Headers
    try {
      const res = await request(url, {
        method: 'GET',
        dispatcher: this.#agent,
        headers,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs)
      })
      status = res.statusCode
      answer = res.headers
      // Only the status and headers count; the body is dropped (its abort is not an error here).
      res.body.on('error', () => {})
      res.body.destroy()
    } catch (err) {
      this.#o.log.warn({ reason: 'forward_auth_unreachable', code: (err as { code?: unknown }).code, forwardAuthUrl: url }, 'forward-auth service failed; refusing with 503')
      throw new AuthUnavailableError()
    }
    if (status === 401) return { decision: new AuthFailure('forward_auth_denied', false), lifetimeMs: this.#lifetime(answer) }
    if (status === 403) return { decision: 'forbidden', lifetimeMs: this.#lifetime(answer) }
    if (status < 200 || status > 299) {
      this.#o.log.warn({ reason: `status_${status}`, forwardAuthUrl: url }, 'forward-auth service failed; refusing with 503')
      throw new AuthUnavailableError()
    }
    const id = answer[this.#o.consumerHeader]
    if (typeof id !== 'string' || !SAFE_SUBJECT.test(id)) {
      this.#o.log.warn({ reason: 'forward_auth_no_identity', forwardAuthUrl: url }, 'forward-auth service allowed without a usable identity header; refusing with 503')
      throw new AuthUnavailableError()
    }
    const identity: Record<string, string> = {}
    for (const name of this.identityHeaders) {
      const v = answer[name]
      if (typeof v === 'string' && SAFE_VALUE.test(v)) identity[name] = v
    }
    const consumer = Object.freeze({ id, strategy: 'forwardAuth' as const, scopes: Object.freeze([]), headers: Object.freeze(identity) })
    return { decision: consumer, lifetimeMs: this.#lifetime(answer) }
  }

  /** The answer's limit on reuse; only read when the cache is on. */
  #lifetime (answer: Headers): number | undefined {
    return this.#cache === undefined ? undefined : answerLifetimeMs(answer, this.#now())
  }

  async close (): Promise<void> {
    await this.#agent.destroy()
  }
}
