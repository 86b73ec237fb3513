/**
 * OAuth 2.0 Token Introspection (RFC 7662) for opaque bearer tokens: the gateway POSTs the token
 * to the authorization server's introspection endpoint (client_secret_basic) and accepts it when
 * the answer says `active: true` and its `exp`, `nbf`, `iss` and `aud` pass.
 *
 * Results are cached by the token's SHA-256 (the token itself is never kept): an active token at
 * most until its `exp` and the positive TTL, an inactive or refused one for the (short) negative
 * TTL, so a flood of made-up tokens reaches the endpoint once per token and TTL. Concurrent
 * lookups of one token share one call (single flight). An endpoint that is down, slow, answers
 * non-200 or an invalid document makes the lookup throw AuthUnavailableError (503, fail closed);
 * nothing of that answer is cached.
 *
 * Every refusal is an AuthFailure with a fixed reason token (never token material).
 */
import { createHash } from 'node:crypto'
import { Agent, request } from 'undici'
import type { FastifyBaseLogger } from 'fastify'
import type { Consumer, PortcullisClaims } from '../../lib/consumer.js'
import { AuthUnavailableError } from '../../lib/errors.js'
import { ExpiringLru } from './expiring-lru.js'
import { AuthFailure } from './jwt.js'

const MAX_RESPONSE_BYTES = 65_536
const MAX_SCOPES = 256
const SAFE_SUBJECT = /^[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?$/
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,256}$/

export interface IntrospectionOptions {
  readonly url: string
  readonly clientId: string
  readonly clientSecret: string
  readonly issuer: string | undefined
  readonly audience: readonly string[] | undefined
  readonly skewMs: number
  readonly timeoutMs: number
  readonly cacheTtlMs: number
  readonly negativeCacheTtlMs: number
  readonly cacheSize: number
  readonly log: FastifyBaseLogger
}

type Result = Consumer | AuthFailure

/** `form-urlencoded` as RFC 6749 §2.3.1 asks for client_secret_basic credentials. */
function formEncode (s: string): string {
  return encodeURIComponent(s).replace(/%20/g, '+')
}

function isDate (v: unknown): v is number | undefined {
  return v === undefined || (typeof v === 'number' && Number.isFinite(v))
}

/** The consumer an introspection answer describes, or a reason token. */
export function consumerFromIntrospection (doc: Record<string, unknown>, o: Pick<IntrospectionOptions, 'issuer' | 'audience' | 'skewMs'>, nowMs: number): Consumer | string {
  if (doc.active !== true) return 'inactive_token'
  const { exp, nbf, iss, aud, sub, client_id: clientId, scope } = doc
  if (!isDate(exp) || !isDate(nbf)) return 'invalid_claim'
  if (typeof exp === 'number' && exp * 1000 + o.skewMs <= nowMs) return 'expired'
  if (typeof nbf === 'number' && nbf * 1000 - o.skewMs > nowMs) return 'not_yet_valid'
  if (o.issuer !== undefined && iss !== undefined && iss !== o.issuer) return 'invalid_issuer'
  if (o.audience !== undefined) {
    const list = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : []
    if (!list.some((a) => typeof a === 'string' && o.audience?.includes(a) === true)) return 'invalid_audience'
  }
  const id = sub !== undefined ? sub : clientId
  if (typeof id !== 'string' || !SAFE_SUBJECT.test(id)) return 'unsafe_subject'
  let scopes: string[] = []
  if (scope !== undefined) {
    if (typeof scope !== 'string') return 'invalid_scope_claim'
    scopes = scope.split(' ').filter((s) => s !== '')
    if (scopes.length > MAX_SCOPES || !scopes.every((s) => SCOPE_TOKEN.test(s))) return 'invalid_scope_claim'
  }
  return Object.freeze({
    id,
    strategy: 'introspection' as const,
    scopes: Object.freeze(scopes),
    claims: Object.freeze({ ...doc }) as Readonly<PortcullisClaims>
  })
}

export class IntrospectionClient {
  readonly #o: IntrospectionOptions
  readonly #agent: Agent
  readonly #authorization: string
  readonly #cache: ExpiringLru<Result>
  readonly #inFlight = new Map<string, Promise<Result>>()
  /** Calls made to the endpoint (for tests and metrics). */
  calls = 0

  constructor (o: IntrospectionOptions) {
    this.#o = o
    this.#agent = new Agent({ connect: { timeout: o.timeoutMs }, keepAliveTimeout: 10_000 })
    this.#authorization = `Basic ${Buffer.from(`${formEncode(o.clientId)}:${formEncode(o.clientSecret)}`).toString('base64')}`
    this.#cache = new ExpiringLru(o.cacheSize)
  }

  /** The token's consumer or refusal; throws AuthUnavailableError when the endpoint gives no usable answer. */
  async check (token: string): Promise<Result> {
    const key = createHash('sha256').update(token).digest('base64url')
    const cached = this.#cache.get(key, Date.now())
    if (cached !== undefined) return cached
    let flight = this.#inFlight.get(key)
    if (flight === undefined) {
      flight = this.#lookup(key, token).finally(() => { this.#inFlight.delete(key) })
      this.#inFlight.set(key, flight)
    }
    return await flight
  }

  async #lookup (key: string, token: string): Promise<Result> {
    this.calls++
    let doc: Record<string, unknown>
    try {
      doc = await this.#call(token)
    } catch (err) {
      this.#o.log.warn({ reason: (err as { reason?: unknown }).reason ?? 'introspection_failed', code: (err as { code?: unknown }).code, introspectionUrl: this.#o.url }, 'token introspection failed; refusing with 503')
      throw new AuthUnavailableError()
    }
    const now = Date.now()
    const consumer = consumerFromIntrospection(doc, this.#o, now)
    if (typeof consumer === 'string') {
      const failure = new AuthFailure(consumer, true)
      this.#cache.set(key, failure, now + this.#o.negativeCacheTtlMs, now)
      return failure
    }
    const exp = doc.exp as number | undefined
    const until = Math.min(now + this.#o.cacheTtlMs, exp === undefined ? Number.POSITIVE_INFINITY : exp * 1000)
    this.#cache.set(key, consumer, until, now)
    return consumer
  }

  async #call (token: string): Promise<Record<string, unknown>> {
    const { url, timeoutMs } = this.#o
    const res = await request(url, {
      method: 'POST',
      dispatcher: this.#agent,
      headers: { authorization: this.#authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs)
    })
    // A destroyed body reports its abort as an error event; the failure is already being handled.
    res.body.on('error', () => {})
    if (res.statusCode !== 200) {
      res.body.destroy()
      throw Object.assign(new Error('introspection status'), { reason: `status_${res.statusCode}` })
    }
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length
      if (size > MAX_RESPONSE_BYTES) {
        res.body.destroy()
        throw Object.assign(new Error('introspection response too large'), { reason: 'response_too_large' })
      }
      chunks.push(chunk as Buffer)
    }
    let doc: unknown
    try {
      doc = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch {
      throw Object.assign(new Error('introspection response not JSON'), { reason: 'invalid_json' })
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc) || typeof (doc as { active?: unknown }).active !== 'boolean') {
      throw Object.assign(new Error('introspection response invalid'), { reason: 'invalid_response' })
    }
    return doc as Record<string, unknown>
  }

  async close (): Promise<void> {
    await this.#agent.destroy()
  }
}
