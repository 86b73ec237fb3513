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
 */
import { Agent, request } from 'undici'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Consumer } from '../../lib/consumer.js'
import { AuthUnavailableError } from '../../lib/errors.js'
import { AuthFailure } from './jwt.js'

const SAFE_SUBJECT = /^[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?$/
/** A header value safe to send upstream: visible ASCII and spaces, bounded. */
const SAFE_VALUE = /^[\x20-\x7e]{0,4096}$/

export interface ForwardAuthOptions {
  readonly url: string
  readonly timeoutMs: number
  readonly requestHeaders: readonly string[]
  readonly responseHeaders: readonly string[]
  readonly consumerHeader: string
  readonly log: FastifyBaseLogger
}

/** What the service decided: a consumer, a refusal (401), or `forbidden` (403). */
export type ForwardAuthDecision = Consumer | AuthFailure | 'forbidden'

export class ForwardAuthClient {
  readonly #o: ForwardAuthOptions
  readonly #agent: Agent
  /** Every header name whose client-sent copy is dropped on forward-auth routes. */
  readonly identityHeaders: readonly string[]
  /** Calls made to the service (for tests and metrics). */
  calls = 0

  constructor (o: ForwardAuthOptions) {
    this.#o = o
    this.#agent = new Agent({ connect: { timeout: o.timeoutMs }, keepAliveTimeout: 10_000 })
    this.identityHeaders = Object.freeze([...new Set([o.consumerHeader, ...o.responseHeaders])])
  }

  /** Asks the service about `req`; throws AuthUnavailableError when it gives no usable answer. */
  async decide (req: FastifyRequest, clientHeaders: Readonly<Record<string, string | string[] | undefined>>): Promise<ForwardAuthDecision> {
    const { url, timeoutMs, requestHeaders } = this.#o
    const headers: Record<string, string> = {
      'x-forwarded-method': req.method,
      'x-forwarded-uri': req.url,
      'x-forwarded-proto': req.protocol,
      'x-forwarded-for': req.ip
    }
    const host = req.headers.host
    if (typeof host === 'string') headers['x-forwarded-host'] = host
    for (const name of requestHeaders) {
      const v = clientHeaders[name]
      if (typeof v === 'string') headers[name] = v
      else if (Array.isArray(v)) headers[name] = v.join(name === 'cookie' ? '; ' : ', ')
    }
    this.calls++
    let status: number
    let answer: Record<string, string | string[] | undefined>
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
    if (status === 401) return new AuthFailure('forward_auth_denied', false)
    if (status === 403) return 'forbidden'
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
    return Object.freeze({ id, strategy: 'forwardAuth' as const, scopes: Object.freeze([]), headers: Object.freeze(identity) })
  }

  async close (): Promise<void> {
    await this.#agent.destroy()
  }
}
