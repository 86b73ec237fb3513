/**
 * Remote JWKS for the auth plugin: the whole key set is fetched (bounded in time and size, no
 * redirects), each usable signature key is compiled into a pinned fast-jwt verifier, and the set
 * is replaced atomically. An unknown `kid` triggers at most one fetch per cooldown (single
 * flight), so a flood of made-up kids cannot hammer the IdP; a stale set is refreshed in the
 * background. Symmetric (`oct`) and encryption keys are ignored; `jku`/`x5u`/`jwk` in a token are
 * never consulted (only this URL is).
 *
 * get-jwks fetches per `kid` with no cooldown and no size bound, hence this small client.
 */
import { Agent, request } from 'undici'
import type { FastifyBaseLogger } from 'fastify'
import { compileVerifier, narrow, parseJwk, type ClaimRules, type CompiledVerifier } from './jwt.js'
import type { JwtAlgorithm } from './schema.js'

const MAX_KEYS = 100

/** One verification key of the set. */
export interface JwksKey {
  readonly algorithms: readonly JwtAlgorithm[]
  readonly verify: CompiledVerifier
}

export interface JwksClientOptions {
  readonly url: string
  readonly cooldownMs: number
  readonly maxAgeMs: number
  readonly timeoutMs: number
  readonly maxBytes: number
  readonly rules: ClaimRules
  readonly algorithms: readonly JwtAlgorithm[] | undefined
  readonly log: FastifyBaseLogger
  /** Called after the key set changed (the plugin drops its verified-token cache). */
  readonly onChange: () => void
}

export class JwksClient {
  readonly #o: JwksClientOptions
  readonly #agent: Agent
  #byKid = new Map<string, JwksKey[]>()
  #all: JwksKey[] = []
  #fingerprint = ''
  #fetchedAt = 0
  #lastAttempt = Number.NEGATIVE_INFINITY
  #inFlight: Promise<void> | undefined
  /** Number of fetches started (for tests and metrics). */
  fetches = 0

  constructor (o: JwksClientOptions) {
    this.#o = o
    this.#agent = new Agent({ connect: { timeout: o.timeoutMs }, keepAliveTimeout: 10_000 })
  }

  /** Candidate keys for a token's `kid` (kid-less tokens only when the set has one key). */
  lookup (kid: unknown): readonly JwksKey[] | undefined {
    if (Date.now() - this.#fetchedAt > this.#o.maxAgeMs) this.#backgroundRefresh()
    if (kid === undefined) return this.#all.length === 1 ? this.#all : undefined
    return typeof kid === 'string' ? this.#byKid.get(kid) : undefined
  }

  /**
   * Refreshes for an unknown kid: joins a fetch in flight, else fetches unless one was
   * attempted within the cooldown. Never throws.
   */
  async refreshForUnknownKid (): Promise<void> {
    if (this.#inFlight !== undefined) return await this.#inFlight
    if (Date.now() - this.#lastAttempt < this.#o.cooldownMs) return
    await this.refresh()
  }

  /** Fetches the key set now (single flight). Never throws; failures keep the previous set. */
  async refresh (): Promise<void> {
    if (this.#inFlight !== undefined) return await this.#inFlight
    this.#lastAttempt = Date.now()
    this.fetches++
    this.#inFlight = this.#fetch().then((ok) => {
      if (ok) this.#fetchedAt = Date.now()
    }, (err: unknown) => {
      this.#o.log.warn({ err: { message: (err as Error)?.message, code: (err as { code?: unknown })?.code }, jwksUrl: this.#o.url }, 'JWKS fetch failed; keeping the previous key set')
    }).finally(() => { this.#inFlight = undefined })
    return await this.#inFlight
  }

  #backgroundRefresh (): void {
    if (this.#inFlight !== undefined || Date.now() - this.#lastAttempt < this.#o.cooldownMs) return
    this.refresh().catch(() => {})
  }

  async #fetch (): Promise<boolean> {
    const { url, timeoutMs, maxBytes } = this.#o
    const res = await request(url, {
      method: 'GET',
      dispatcher: this.#agent,
      headers: { accept: 'application/jwk-set+json, application/json' },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs)
    })
    if (res.statusCode !== 200) {
      await res.body.dump()
      throw new Error(`JWKS answered ${res.statusCode}`)
    }
    const declared = Number(res.headers['content-length'] ?? 0)
    if (declared > maxBytes) {
      res.body.destroy()
      throw new Error('JWKS document too large')
    }
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length
      if (size > maxBytes) {
        res.body.destroy()
        throw new Error('JWKS document too large')
      }
      chunks.push(chunk as Buffer)
    }
    const text = Buffer.concat(chunks).toString('utf8')
    const doc = JSON.parse(text) as unknown
    const keys = (doc !== null && typeof doc === 'object' && Array.isArray((doc as { keys?: unknown }).keys))
      ? (doc as { keys: unknown[] }).keys.slice(0, MAX_KEYS)
      : undefined
    if (keys === undefined) throw new Error('JWKS document has no keys array')
    if (text === this.#fingerprint) return true
    const byKid = new Map<string, JwksKey[]>()
    const all: JwksKey[] = []
    for (const jwk of keys) {
      if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) continue
      const info = parseJwk(jwk as Record<string, unknown>)
      if (info === undefined) continue
      const algorithms = narrow(info.algorithms, this.#o.algorithms)
      if (algorithms.length === 0) continue
      const key: JwksKey = { algorithms, verify: compileVerifier(info.pem, algorithms, this.#o.rules) }
      all.push(key)
      if (info.kid !== undefined) {
        const list = byKid.get(info.kid)
        if (list === undefined) byKid.set(info.kid, [key])
        else list.push(key)
      }
    }
    if (all.length === 0) throw new Error('JWKS document has no usable signature key')
    this.#byKid = byKid
    this.#all = all
    this.#fingerprint = text
    this.#o.onChange()
    return true
  }

  async close (): Promise<void> {
    await this.#agent.destroy()
  }
}
