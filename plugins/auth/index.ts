/**
 * portcullis-auth: who the caller is (JWT bearer token, API key, opaque bearer token checked by
 * token introspection, or an external forward-auth service's decision) and whether they may pass.
 *
 * Config key: `config.auth` on each route (`false` = public; `{ strategies?, relation?, scopes? }`),
 * validated and precomputed in an onRoute hook. A route without `config.auth` is untouched.
 * Hook: route-level onRequest `authOnRequest`, prepended so nothing route-specific runs before
 * authentication; it sets `request.consumer` ({ id, strategy, scopes, claims? }).
 * Credentials: `Authorization: Bearer <jwt>` (scheme case-insensitive, RFC 9110 §11.1; exactly one
 * header, one token, never the query), `x-api-key` (exactly one header, one key) and a client
 * certificate verified by the TLS layer (`mtls`, mtls.ts). A bearer token goes to `jwt` when it
 * is shaped like a JWT (three base64url parts, a JSON object header) and the route accepts `jwt`;
 * otherwise to `introspection` (introspection.ts). `forwardAuth` (forward-auth.ts) runs last,
 * only when still needed (its decisions cached with `forwardAuthCacheTtlMs`). A WebSocket handshake's `bearerProtocol` token offer
 * (lib/upgrade-credential.ts) counts as `Authorization: Bearer`, for the forward-auth service too.
 * API keys carry optional scopes and an expiry; `apiKeysFile` is re-read
 * by `reloadApiKeys()` and on changes (api-keys-reload.ts).
 * Errors: GW_AUTH_UNAUTHORIZED (401 + WWW-Authenticate: Bearer, or ClientCert where only a
 * certificate is accepted), GW_AUTH_FORBIDDEN (403; for a bearer token with the RFC 6750
 * insufficient_scope challenge, for an API key naming the missing scope, no challenge; a
 * forward-auth refusal without either), GW_AUTH_UNAVAILABLE (503: introspection endpoint or
 * forward-auth service unusable; fail closed), GW_CONFIG_INVALID at startup (bad options, bad key
 * file, bad route policy, strategy not configured).
 * Signals: `authFailure` (route template, status, fixed reason token).
 */
import fp from 'fastify-plugin'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions, onRequestHookHandler } from 'fastify'
import { authFailure } from '../../lib/signals.js'
import { errorLines } from '../../lib/validate.js'
import { ApiKeyStore, KEY_EXPIRED } from './api-keys.js'
import { ApiKeysFileSource, type ApiKeysReloadResult } from './api-keys-reload.js'
import type { Consumer } from '../../lib/consumer.js'
import { ConfigError, ForbiddenError, UnauthorizedError } from '../../lib/errors.js'
import { ExpiringLru } from './expiring-lru.js'
import { ForwardAuthClient } from './forward-auth.js'
import { IntrospectionClient } from './introspection.js'
import { JwksClient, type JwksKey } from './jwks.js'
import { mtlsCredential } from './mtls.js'
import { AuthFailure, HS_ALGORITHMS, claimRules, compileVerifier, consumerFromPayload, narrow, parsePublicKeyPem, reasonOf, type ClaimRules, type CompiledVerifier } from './jwt.js'
import {
  AuthPluginOptionsSchema, AuthPolicySchema, crossFieldProblems,
  type AuthPluginOptions, type AuthPolicy, type AuthRouteConfig, type AuthStrategy, type JwtAlgorithm, type ResolvedAuthOptions
} from './schema.js'
import '../../lib/consumer.js'
import { kUpgradeBearer } from '../../lib/upgrade-credential.js'
import { hookList, prependHook } from '../../lib/route-hooks.js'

export type { AuthPluginOptions } from './schema.js'
export type { ApiKeysReloadResult } from './api-keys-reload.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's authentication policy (`false` = public). */
    auth?: AuthRouteConfig
  }
}

const REALM = 'portcullis'
const CHALLENGE = `Bearer realm="${REALM}"`
const CHALLENGE_INVALID = `Bearer realm="${REALM}", error="invalid_token"`
/**
 * No HTTP scheme is registered for TLS client certificates; RFC 9110 §11.6.1 still wants a
 * challenge on every 401, and a Bearer one would send clients after a token the route refuses.
 */
const CHALLENGE_CERT = `ClientCert realm="${REALM}"`
/** RFC 6750 §2.1 b64token after a case-insensitive `Bearer` and one or more spaces. */
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*)$/i
const BEARER_SCHEME = /^bearer(?:[ \t]|$)/i
const BASE64URL_SEGMENT = /^[A-Za-z0-9_-]+$/

const checkOptions = TypeCompiler.Compile(AuthPluginOptionsSchema)
const checkPolicy = TypeCompiler.Compile(AuthPolicySchema)

const DEFAULTS = {
  clockSkewS: 30,
  maxTokenBytes: 8192,
  apiKeys: [],
  apiKeysWatch: true,
  apiKeysReloadDelayMs: 200,
  jwksCooldownMs: 30_000,
  jwksMaxAgeMs: 600_000,
  jwksTimeoutMs: 5000,
  jwksMaxBytes: 262_144,
  tokenCacheSize: 1000,
  tokenCacheTtlMs: 10_000,
  introspectionTimeoutMs: 2000,
  introspectionCacheTtlS: 60,
  introspectionNegativeCacheTtlS: 5,
  introspectionCacheSize: 10_000,
  forwardAuthTimeoutMs: 2000,
  forwardAuthRequestHeaders: ['authorization', 'cookie'],
  forwardAuthResponseHeaders: [],
  forwardAuthConsumerHeader: 'x-user-id',
  forwardAuthCacheTtlMs: 0,
  forwardAuthCacheMax: 10_000
}

/**
 * Applies defaults, validates, and returns a new frozen options object (the caller's is untouched).
 * `apiKeys` is not copied: it is only read, once, into the key store's digests (a copy of a
 * million entries costs seconds and hundreds of MB at startup). The compiled check runs first;
 * the error walk, which is slower, only when something is wrong.
 */
export function resolveAuthOptions (opts: AuthPluginOptions): ResolvedAuthOptions {
  const merged: Record<string, unknown> = { ...DEFAULTS }
  for (const [k, v] of Object.entries(opts ?? {})) if (v !== undefined) merged[k] = k === 'apiKeys' ? v : structuredClone(v)
  const problems = checkOptions.Check(merged) ? [] : errorLines(checkOptions.Errors(merged), 'options')
  const resolved = merged as ResolvedAuthOptions
  if (problems.length === 0) problems.push(...crossFieldProblems(resolved))
  if (problems.length > 0) throw new ConfigError('invalid gateway-auth options', problems)
  return Object.freeze(resolved)
}

/** Decodes only the JOSE header (for `kid`); undefined when it is not a JSON object. */
function joseHeader (token: string): Record<string, unknown> | undefined {
  const dot = token.indexOf('.')
  if (dot <= 0) return undefined
  const segment = token.slice(0, dot)
  if (!BASE64URL_SEGMENT.test(segment)) return undefined
  try {
    const h = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as unknown
    return h !== null && typeof h === 'object' && !Array.isArray(h) ? h as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

/** Number of raw header lines named `name` (lower case): Node keeps only one `authorization`. */
function headerCount (raw: readonly string[], name: string): number {
  let n = 0
  for (let i = 0; i < raw.length; i += 2) {
    const h = raw[i] as string
    if (h.length === name.length && h.toLowerCase() === name) n++
  }
  return n
}

type JwtResult = Consumer | AuthFailure | undefined

/** A JWT's shape: three base64url parts whose first decodes to a JSON object. */
function looksLikeJwt (token: string): boolean {
  const first = token.indexOf('.')
  const second = first === -1 ? -1 : token.indexOf('.', first + 1)
  return second !== -1 && token.indexOf('.', second + 1) === -1 && joseHeader(token) !== undefined
}

/** The verification engine of one plugin instance (JWT key source, API keys, token cache). */
class Authenticator {
  readonly strategies: ReadonlySet<AuthStrategy>
  readonly #rules: ClaimRules
  readonly #maxHeaderLength: number
  readonly #staticVerifier: CompiledVerifier | undefined
  readonly #jwks: JwksClient | undefined
  #apiKeys: ApiKeyStore
  /** Verified tokens; each ends at min(exp + skew, verified + tokenCacheTtlMs). */
  readonly #cache: ExpiringLru<Consumer> | undefined
  readonly #cacheTtlMs: number
  readonly introspection: IntrospectionClient | undefined
  readonly forwardAuth: ForwardAuthClient | undefined
  readonly mtlsField: ResolvedAuthOptions['mtlsConsumerField']

  constructor (o: ResolvedAuthOptions, staticVerifier: CompiledVerifier | undefined, jwks: JwksClient | undefined, cache: ExpiringLru<Consumer> | undefined,
    apiKeys: ApiKeyStore, introspection: IntrospectionClient | undefined, forwardAuth: ForwardAuthClient | undefined) {
    this.#rules = claimRules(o)
    this.#maxHeaderLength = o.maxTokenBytes + 'Bearer '.length
    this.#staticVerifier = staticVerifier
    this.#jwks = jwks
    this.#apiKeys = apiKeys
    this.#cache = cache
    this.#cacheTtlMs = o.tokenCacheTtlMs
    this.introspection = introspection
    this.forwardAuth = forwardAuth
    this.mtlsField = o.mtlsConsumerField
    const s = new Set<AuthStrategy>()
    if (staticVerifier !== undefined || jwks !== undefined) s.add('jwt')
    if (introspection !== undefined) s.add('introspection')
    // A key file configures the strategy even while it holds no key: a reload may add some.
    if (this.#apiKeys.size > 0 || o.apiKeysFile !== undefined) s.add('apiKey')
    if (o.mtlsConsumerField !== undefined) s.add('mtls')
    if (forwardAuth !== undefined) s.add('forwardAuth')
    this.strategies = s
  }

  /** Keys in use. */
  get apiKeyCount (): number { return this.#apiKeys.size }

  /** Puts a new key table in use (one assignment: a lookup sees the old table or the new one). */
  setApiKeys (store: ApiKeyStore): void { this.#apiKeys = store }

  /** The bearer token presented (undefined: none), or why the header is refused. */
  bearer (request: FastifyRequest): string | AuthFailure | undefined {
    const q = request.query as Record<string, unknown> | null | undefined
    if (q !== null && typeof q === 'object' && q.access_token !== undefined) return new AuthFailure('token_in_query', true)
    // A WebSocket handshake's token from its subprotocol offers (lib/upgrade-credential.ts).
    const offered = request[kUpgradeBearer]
    if (offered !== undefined && request.headers.authorization !== undefined) return new AuthFailure('duplicate_header', true)
    const value = offered === undefined ? request.headers.authorization : `Bearer ${offered}`
    if (value === undefined) return undefined
    if (typeof value !== 'string' || (offered === undefined && headerCount(request.raw.rawHeaders, 'authorization') !== 1)) return new AuthFailure('duplicate_header', true)
    const presented = BEARER_SCHEME.test(value)
    if (value.length > this.#maxHeaderLength) return new AuthFailure('token_too_large', presented)
    const m = BEARER.exec(value)
    if (m === null) return new AuthFailure(presented ? 'malformed_header' : 'unsupported_scheme', presented)
    return m[1] as string
  }

  /**
   * Verifies a bearer token as a JWT. Synchronous except when an unknown `kid` makes it wait
   * for a JWKS refresh.
   */
  jwt (token: string): JwtResult | Promise<JwtResult> {
    const now = Date.now()
    const cached = this.#cache?.get(token, now)
    if (cached !== undefined) return cached
    if (this.#staticVerifier !== undefined) return this.#verify(this.#staticVerifier, token, now)

    const jwks = this.#jwks as JwksClient
    const header = joseHeader(token)
    if (header === undefined) return new AuthFailure('malformed_token', true)
    const keys = jwks.lookup(header.kid)
    if (keys !== undefined) return this.#verifyWithKeys(keys, header.alg, token, now)
    if (header.kid !== undefined && typeof header.kid !== 'string') return new AuthFailure('unknown_kid', true)
    return this.#afterRefresh(jwks, header, token)
  }

  async #afterRefresh (jwks: JwksClient, header: Record<string, unknown>, token: string): Promise<JwtResult> {
    await jwks.refreshForUnknownKid()
    const keys = jwks.lookup(header.kid)
    return keys === undefined ? new AuthFailure('unknown_kid', true) : this.#verifyWithKeys(keys, header.alg, token, Date.now())
  }

  #verifyWithKeys (keys: readonly JwksKey[], alg: unknown, token: string, now: number): Consumer | AuthFailure {
    for (const k of keys) {
      if (k.algorithms.includes(alg as JwtAlgorithm)) return this.#verify(k.verify, token, now)
    }
    return new AuthFailure('invalid_algorithm', true)
  }

  #verify (verifier: CompiledVerifier, token: string, now: number): Consumer | AuthFailure {
    let payload: Record<string, unknown>
    try {
      payload = verifier(token).payload
    } catch (err) {
      return new AuthFailure(reasonOf(err), true)
    }
    const consumer = consumerFromPayload(payload, this.#rules, now)
    if (typeof consumer === 'string') return new AuthFailure(consumer, true)
    this.#cache?.set(token, consumer, Math.min((payload.exp as number) * 1000 + this.#rules.skewMs, now + this.#cacheTtlMs), now)
    return consumer
  }

  /** The API-key credential: undefined when none was presented. */
  apiKey (request: FastifyRequest): Consumer | AuthFailure | undefined {
    const value = request.headers['x-api-key']
    if (value === undefined) return undefined
    if (typeof value !== 'string' || headerCount(request.raw.rawHeaders, 'x-api-key') !== 1) return new AuthFailure('duplicate_header', false)
    if (value === '') return new AuthFailure('empty_api_key', false)
    if (value.includes(',')) return new AuthFailure('multiple_api_keys', false)
    const found = this.#apiKeys.lookup(value)
    if (found === KEY_EXPIRED) return new AuthFailure('key_expired', false)
    return found ?? new AuthFailure('invalid_api_key', false)
  }
}

/** A route's policy, precomputed at registration. */
interface CompiledPolicy {
  readonly route: string
  readonly jwt: boolean
  readonly apiKey: boolean
  readonly introspection: boolean
  readonly forwardAuth: boolean
  readonly mtls: boolean
  readonly all: boolean
  /** The route's strategies, in the order their consumer identifies the caller. */
  readonly order: readonly AuthStrategy[]
  /** Strategy whose consumer identifies the caller when several pass. */
  readonly primary: AuthStrategy
  readonly scopes: readonly string[]
  readonly forbiddenChallenge: string
  /** The challenge of a 401 without any credential: ClientCert when a certificate is the only way in. */
  readonly missingChallenge: string
}

/** How to configure each strategy (the process entry's variables). */
const STRATEGY_FIX: Readonly<Record<AuthStrategy, string>> = {
  jwt: 'set JWT_SECRET, JWT_PUBLIC_KEY or JWKS_URL',
  apiKey: 'set API_KEYS or API_KEYS_FILE',
  introspection: 'set INTROSPECTION_URL, INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET (or _FILE)',
  forwardAuth: 'set FORWARD_AUTH_URL',
  mtls: 'set TLS_CLIENT_CA_FILE (with TLS_CERT_FILE and TLS_KEY_FILE)'
}

/** Which strategy's consumer identifies the caller when several pass. */
const PRIORITY: readonly AuthStrategy[] = ['jwt', 'introspection', 'apiKey', 'mtls', 'forwardAuth']

/** Strategies whose credential carries scopes. */
const SCOPED: ReadonlySet<AuthStrategy> = new Set(['jwt', 'introspection', 'apiKey'])

function compilePolicy (policy: AuthPolicy, configured: ReadonlySet<AuthStrategy>, where: string, route: string): CompiledPolicy {
  const problems: string[] = []
  const strategies = policy.strategies ?? [...configured]
  if (policy.strategies === undefined && strategies.length === 0) {
    problems.push('auth: the route requires authentication but no strategy is configured; set JWT_SECRET, JWT_PUBLIC_KEY, JWKS_URL, API_KEYS, API_KEYS_FILE, INTROSPECTION_URL, FORWARD_AUTH_URL or TLS_CLIENT_CA_FILE, or make the route public with auth: false')
  }
  for (const s of policy.strategies ?? []) {
    if (!configured.has(s)) problems.push(`auth.strategies: "${s}" is not configured on this gateway; ${STRATEGY_FIX[s]}, or remove "${s}" from the route's auth.strategies`)
  }
  const scopes = policy.scopes ?? []
  // Only JWTs, introspected tokens and API keys carry scopes: a route whose strategies carry none would refuse everyone.
  if (scopes.length > 0 && !strategies.some((s) => SCOPED.has(s))) problems.push('auth.scopes: scopes come from JWTs, introspected tokens and API keys; add the "jwt", "introspection" or "apiKey" strategy')
  const all = policy.relation === 'all' && strategies.length > 1
  if (all && strategies.includes('jwt') && strategies.includes('introspection')) problems.push('auth.relation: "jwt" and "introspection" read the same bearer token, so both can never pass; use relation "any"')
  if (problems.length > 0) throw new ConfigError(`invalid auth policy of route ${where}`, problems)
  const order = PRIORITY.filter((s) => strategies.includes(s))
  const jwt = strategies.includes('jwt')
  const apiKey = strategies.includes('apiKey')
  const introspection = strategies.includes('introspection')
  const forwardAuth = strategies.includes('forwardAuth')
  const mtls = strategies.includes('mtls')
  return Object.freeze({
    route,
    jwt,
    apiKey,
    introspection,
    forwardAuth,
    mtls,
    all,
    order: Object.freeze(order),
    primary: order[0] as AuthStrategy,
    scopes: Object.freeze([...scopes]),
    forbiddenChallenge: `Bearer realm="${REALM}", error="insufficient_scope", scope="${scopes.join(' ')}"`,
    missingChallenge: mtls && strategies.length === 1 ? CHALLENGE_CERT : CHALLENGE
  })
}

const kAuthHook = Symbol('portcullis.authHook')

function reject (request: FastifyRequest, reply: FastifyReply, policy: CompiledPolicy, failure: AuthFailure): never {
  reply.header('www-authenticate', failure.tokenPresented ? CHALLENGE_INVALID : policy.missingChallenge)
  request.log.debug({ reason: failure.reason, route: policy.route }, 'authentication failed')
  if (authFailure.hasSubscribers) authFailure.publish({ route: policy.route, status: 401, reason: failure.reason })
  throw new UnauthorizedError()
}

/**
 * 403 for a missing scope: a bearer token (JWT or introspected) gets the RFC 6750 §3.1
 * challenge, an API key the scope's name. Without a scope (a forward-auth refusal): neither.
 */
function forbid (request: FastifyRequest, reply: FastifyReply, policy: CompiledPolicy, consumer: Consumer | undefined, scope: string | undefined): never {
  const err = new ForbiddenError()
  const reason = scope === undefined ? 'forward_auth_forbidden' : 'insufficient_scope'
  // RFC 6750 §3.1: the insufficient_scope challenge (and its `scope`) belongs to bearer tokens.
  // An API key is no bearer token; its caller learns the missing scope from the message, which
  // discloses no more than the challenge would (the route's required scopes).
  if (scope !== undefined) {
    if (consumer?.strategy === 'jwt' || consumer?.strategy === 'introspection') reply.header('www-authenticate', policy.forbiddenChallenge)
    else err.message = `Forbidden: missing scope ${scope}`
  }
  request.log.debug({ reason, scope, strategy: consumer?.strategy, route: policy.route }, 'authorization failed')
  if (authFailure.hasSubscribers) authFailure.publish({ route: policy.route, status: 403, reason })
  throw err
}

type Outcome = Consumer | AuthFailure | undefined

/**
 * The client headers the forward-auth service may be shown. A WebSocket handshake's token from
 * its subprotocol offers (`bearerProtocol`: browsers cannot set headers on a handshake) is shown
 * as `Authorization: Bearer`, as the jwt and introspection strategies read it; with an
 * `Authorization` header as well, the credential is ambiguous and refused.
 */
function forwardAuthHeaders (request: FastifyRequest, reply: FastifyReply, policy: CompiledPolicy): FastifyRequest['headers'] {
  const offered = request[kUpgradeBearer]
  if (offered === undefined) return request.headers
  if (request.headers.authorization !== undefined) reject(request, reply, policy, new AuthFailure('duplicate_header', true))
  return { ...request.headers, authorization: `Bearer ${offered}` }
}

function makeHook (engine: Authenticator, policy: CompiledPolicy): onRequestHookHandler {
  const identityHeaders = policy.forwardAuth ? (engine.forwardAuth as ForwardAuthClient).identityHeaders : []
  const authOnRequest = async function authOnRequest (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    // Only the forward-auth service's answer may carry these upstream.
    for (const name of identityHeaders) delete request.headers[name]
    const results = new Map<AuthStrategy, Outcome>()
    if (policy.jwt || policy.introspection) {
      const token = engine.bearer(request)
      if (token === undefined || token instanceof AuthFailure) {
        results.set(policy.jwt ? 'jwt' : 'introspection', token)
      } else if (policy.jwt && (!policy.introspection || looksLikeJwt(token))) {
        let viaJwt = engine.jwt(token)
        if (viaJwt instanceof Promise) viaJwt = await viaJwt
        results.set('jwt', viaJwt)
      } else {
        results.set('introspection', await (engine.introspection as IntrospectionClient).check(token))
      }
    }
    if (policy.apiKey) results.set('apiKey', engine.apiKey(request))
    if (policy.mtls) results.set('mtls', mtlsCredential(request, engine.mtlsField ?? 'subject.CN'))
    // A presented but invalid credential always fails, whatever the others say.
    for (const r of results.values()) if (r instanceof AuthFailure) reject(request, reply, policy, r)
    let consumer: Consumer | undefined
    if (policy.forwardAuth && (policy.all || !policy.order.some((s) => results.get(s) !== undefined))) {
      const decision = await (engine.forwardAuth as ForwardAuthClient).decide(request, forwardAuthHeaders(request, reply, policy))
      if (decision === 'forbidden') forbid(request, reply, policy, undefined, undefined)
      if (decision instanceof AuthFailure) reject(request, reply, policy, decision)
      results.set('forwardAuth', decision)
    }
    if (policy.all) {
      if (policy.order.some((s) => results.get(s) === undefined)) reject(request, reply, policy, new AuthFailure('missing_credentials', false))
      consumer = results.get(policy.primary) as Consumer
      const forwarded = results.get('forwardAuth') as Consumer | undefined
      if (forwarded !== undefined && forwarded !== consumer) consumer = Object.freeze({ ...consumer, headers: forwarded.headers })
    } else {
      for (const s of policy.order) {
        consumer = results.get(s) as Consumer | undefined
        if (consumer !== undefined) break
      }
      if (consumer === undefined) reject(request, reply, policy, new AuthFailure('missing_credentials', false))
    }
    // The first strategy in PRIORITY order (jwt, introspection, apiKey, mtls, forwardAuth) names the caller.
    for (const scope of policy.scopes) {
      if (!consumer.scopes.includes(scope)) forbid(request, reply, policy, consumer, scope)
    }
    request.consumer = consumer
  }
  Object.defineProperty(authOnRequest, kAuthHook, { value: true })
  return authOnRequest
}

function isAuthHook (fn: unknown): boolean {
  return typeof fn === 'function' && (fn as unknown as Record<symbol, unknown>)[kAuthHook] === true
}

async function authPluginImpl (fastify: FastifyInstance, opts: AuthPluginOptions): Promise<void> {
  const o = resolveAuthOptions(opts)
  const rules = claimRules(o)
  const problems: string[] = []
  let staticVerifier: CompiledVerifier | undefined
  if (o.jwtSecret !== undefined) {
    const algorithms = narrow([...HS_ALGORITHMS], o.jwtAlgorithms)
    if (algorithms.length === 0) problems.push('jwtAlgorithms: none of them is an HMAC algorithm (jwtSecret allows HS256/384/512)')
    else staticVerifier = compileVerifier(o.jwtSecret, algorithms, rules)
  } else if (o.jwtPublicKey !== undefined) {
    const info = parsePublicKeyPem(o.jwtPublicKey)
    if (typeof info === 'string') {
      problems.push(`jwtPublicKey: ${info}`)
    } else {
      const algorithms = narrow(info.algorithms, o.jwtAlgorithms)
      if (algorithms.length === 0) problems.push(`jwtAlgorithms: the key allows only ${info.algorithms.join(', ')}`)
      else staticVerifier = compileVerifier(info.pem, algorithms, rules)
    }
  }
  let keySource: ApiKeysFileSource | undefined
  let apiKeys: ApiKeyStore | undefined
  if (o.apiKeysFile !== undefined && problems.length === 0) {
    keySource = new ApiKeysFileSource({
      file: o.apiKeysFile,
      staticEntries: o.apiKeys,
      log: fastify.log,
      swap: (store) => { engine.setApiKeys(store) },
      delayMs: o.apiKeysReloadDelayMs
    })
    const first = keySource.initial()
    if (Array.isArray(first)) problems.push(...first.map((p) => `apiKeysFile: ${p}`))
    else apiKeys = first
  }
  if (problems.length > 0) throw new ConfigError('invalid gateway-auth options', problems)

  const cache = o.tokenCacheSize > 0 ? new ExpiringLru<Consumer>(o.tokenCacheSize) : undefined
  let jwks: JwksClient | undefined
  if (o.jwksUrl !== undefined) {
    jwks = new JwksClient({
      url: o.jwksUrl,
      cooldownMs: o.jwksCooldownMs,
      maxAgeMs: o.jwksMaxAgeMs,
      timeoutMs: o.jwksTimeoutMs,
      maxBytes: o.jwksMaxBytes,
      rules,
      algorithms: o.jwtAlgorithms,
      log: fastify.log,
      onChange: () => { cache?.clear() }
    })
    const client = jwks
    fastify.addHook('onClose', async function authClose () { await client.close() })
    await client.refresh()
  }
  let introspection: IntrospectionClient | undefined
  if (o.introspectionUrl !== undefined && o.introspectionClientId !== undefined && o.introspectionClientSecret !== undefined) {
    const client = new IntrospectionClient({
      url: o.introspectionUrl,
      clientId: o.introspectionClientId,
      clientSecret: o.introspectionClientSecret,
      issuer: o.introspectionIssuer,
      audience: o.introspectionAudience,
      skewMs: rules.skewMs,
      timeoutMs: o.introspectionTimeoutMs,
      cacheTtlMs: o.introspectionCacheTtlS * 1000,
      negativeCacheTtlMs: o.introspectionNegativeCacheTtlS * 1000,
      cacheSize: o.introspectionCacheSize,
      log: fastify.log
    })
    introspection = client
    fastify.addHook('onClose', async function authIntrospectionClose () { await client.close() })
  }
  let forwardAuth: ForwardAuthClient | undefined
  if (o.forwardAuthUrl !== undefined) {
    const client = new ForwardAuthClient({
      url: o.forwardAuthUrl,
      timeoutMs: o.forwardAuthTimeoutMs,
      requestHeaders: o.forwardAuthRequestHeaders,
      responseHeaders: o.forwardAuthResponseHeaders,
      consumerHeader: o.forwardAuthConsumerHeader,
      cacheTtlMs: o.forwardAuthCacheTtlMs,
      cacheMax: o.forwardAuthCacheMax,
      log: fastify.log
    })
    forwardAuth = client
    fastify.addHook('onClose', async function authForwardAuthClose () { await client.close() })
  }
  const engine = new Authenticator(o, staticVerifier, jwks, cache, apiKeys ?? new ApiKeyStore(o.apiKeys), introspection, forwardAuth)
  if (keySource !== undefined) {
    const source = keySource
    if (o.apiKeysWatch) source.watch()
    fastify.addHook('onClose', async function authCloseKeyWatch () { source.close() })
  }
  const compiled = new WeakMap<object, CompiledPolicy>()

  fastify.decorateRequest('consumer', null)
  fastify.decorate('portcullisAuth', Object.freeze({
    strategies: Object.freeze([...engine.strategies]),
    jwksFetches: () => jwks?.fetches ?? 0,
    introspectionCalls: () => introspection?.calls ?? 0,
    forwardAuthCalls: () => forwardAuth?.calls ?? 0,
    apiKeyCount: () => engine.apiKeyCount,
    reloadApiKeys: (): ApiKeysReloadResult => keySource?.reload() ?? { status: 'static', keys: engine.apiKeyCount }
  }))

  fastify.addHook('onRoute', function authOnRoute (routeOptions: RouteOptions) {
    const auth = (routeOptions.config as { auth?: unknown } | undefined)?.auth
    if (auth === undefined || auth === false) return
    const where = `${String(routeOptions.method)} ${routeOptions.url ?? ''}`
    if (!checkPolicy.Check(auth)) {
      throw new ConfigError(`invalid auth policy of route ${where}`, errorLines(checkPolicy.Errors(auth), 'auth'))
    }
    const route = routeOptions.url ?? ''
    let policy = compiled.get(auth)
    if (policy === undefined || policy.route !== route) {
      policy = compilePolicy(auth, engine.strategies, where, route)
      compiled.set(auth, policy)
    }
    if (hookList(routeOptions.onRequest).some(isAuthHook)) return
    routeOptions.onRequest = prependHook(routeOptions.onRequest, makeHook(engine, policy))
  })
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Facts about the auth plugin (configured strategies, calls to the JWKS, introspection and forward-auth endpoints, API keys in use) and the key reload. */
    portcullisAuth: {
      readonly strategies: readonly AuthStrategy[]
      readonly jwksFetches: () => number
      readonly introspectionCalls: () => number
      readonly forwardAuthCalls: () => number
      /** API keys in use (the `apiKeys` option and `apiKeysFile`). */
      readonly apiKeyCount: () => number
      /** Re-reads `apiKeysFile` now (SIGHUP in the process entry); a bad file keeps the keys in use. */
      readonly reloadApiKeys: () => ApiKeysReloadResult
    }
  }
}

/** Registers authentication; register it before any route (its onRoute hook must see them). */
export const authPlugin = fp(authPluginImpl, { name: 'portcullis-auth', fastify: '5.x', dependencies: [] })
export default authPlugin
