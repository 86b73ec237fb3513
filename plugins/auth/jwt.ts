/**
 * JWT verification for the auth plugin: algorithms pinned by key type, precompiled fast-jwt
 * verifiers, and the claim checks fast-jwt does not do (iat in the future, max lifetime, finite
 * dates, a single-string `iss`, header-safe `sub` and scopes).
 *
 * Every failure is an AuthFailure carrying a fixed reason token (never token material).
 */
import { createPublicKey, type KeyObject, type JsonWebKey } from 'node:crypto'
import { createVerifier, TokenError } from 'fast-jwt'
import type { Consumer, PortcullisClaims } from '../../lib/consumer.js'
import type { JwtAlgorithm, ResolvedAuthOptions } from './schema.js'

/** A rejected credential; `reason` is a fixed token for logs and metrics. */
export class AuthFailure {
  readonly reason: string
  readonly tokenPresented: boolean
  constructor (reason: string, tokenPresented: boolean) {
    this.reason = reason
    this.tokenPresented = tokenPresented
  }
}

export const HS_ALGORITHMS: readonly JwtAlgorithm[] = ['HS256', 'HS384', 'HS512']
const RSA_ALGORITHMS: readonly JwtAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']
const PSS_ALGORITHMS: readonly JwtAlgorithm[] = ['PS256', 'PS384', 'PS512']
const EC_ALGORITHMS: Readonly<Record<string, JwtAlgorithm>> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' }
const MIN_RSA_BITS = 2048

/** The algorithms a public key allows, or a problem (unsupported type, weak key). */
export function algorithmsForKey (key: KeyObject): JwtAlgorithm[] | string {
  const type = key.asymmetricKeyType
  const details = key.asymmetricKeyDetails ?? {}
  if (type === 'rsa' || type === 'rsa-pss') {
    if ((details.modulusLength ?? 0) < MIN_RSA_BITS) return `RSA keys need at least ${MIN_RSA_BITS} bits`
    return [...(type === 'rsa' ? RSA_ALGORITHMS : PSS_ALGORITHMS)]
  }
  if (type === 'ec') {
    const alg = EC_ALGORITHMS[details.namedCurve ?? '']
    return alg === undefined ? `unsupported EC curve ${details.namedCurve ?? 'unknown'}` : [alg]
  }
  if (type === 'ed25519' || type === 'ed448') return ['EdDSA']
  return `unsupported key type ${type ?? 'unknown'}`
}

/** Intersects the key's algorithms with an optional configured list. */
export function narrow (allowed: JwtAlgorithm[], configured: readonly JwtAlgorithm[] | undefined): JwtAlgorithm[] {
  return configured === undefined ? allowed : allowed.filter((a) => configured.includes(a))
}

/** A precompiled, synchronous verifier returning the decoded token (header and payload). */
export type CompiledVerifier = (token: string) => { header: Record<string, unknown>, payload: Record<string, unknown> }

/** Claim-check settings shared by every verifier of one plugin instance. */
export interface ClaimRules {
  readonly skewMs: number
  readonly maxLifetimeS: number | undefined
  readonly issuer: string | undefined
  readonly audience: readonly string[] | undefined
}

export function claimRules (o: ResolvedAuthOptions): ClaimRules {
  return { skewMs: o.clockSkewS * 1000, maxLifetimeS: o.maxLifetimeS, issuer: o.issuer, audience: o.audience }
}

/** Compiles a fast-jwt verifier for one key with the algorithms pinned. */
export function compileVerifier (key: string, algorithms: readonly JwtAlgorithm[], rules: ClaimRules): CompiledVerifier {
  const requiredClaims = ['exp']
  if (rules.issuer !== undefined) requiredClaims.push('iss')
  if (rules.audience !== undefined) requiredClaims.push('aud')
  return createVerifier({
    key,
    algorithms: [...algorithms],
    complete: true,
    cache: false,
    clockTolerance: rules.skewMs,
    requiredClaims,
    allowedCritHeaders: [],
    ...(rules.issuer !== undefined ? { allowedIss: rules.issuer } : {}),
    ...(rules.audience !== undefined ? { allowedAud: [...rules.audience] } : {})
  }) as unknown as CompiledVerifier
}

/** A public key (PEM, certificate or JWK) normalised to SPKI PEM, with its allowed algorithms. */
export interface PublicKeyInfo { readonly pem: string, readonly algorithms: JwtAlgorithm[] }

/** Parses a configured PEM public key; returns a problem for private keys and unusable keys. */
export function parsePublicKeyPem (pem: string): PublicKeyInfo | string {
  if (/PRIVATE KEY-----/.test(pem)) return 'a private key was given; configure the public key'
  let key: KeyObject
  try {
    key = createPublicKey(pem)
  } catch {
    return 'not a PEM public key or certificate'
  }
  const algorithms = algorithmsForKey(key)
  if (typeof algorithms === 'string') return algorithms
  return { pem: key.export({ type: 'spki', format: 'pem' }) as string, algorithms }
}

/** Parses one JWK of a remote JWKS; undefined when it is not a usable signature-verification key. */
export function parseJwk (jwk: Record<string, unknown>): (PublicKeyInfo & { kid: string | undefined }) | undefined {
  // Symmetric keys never come from a remote JWKS (HS confusion), nor do encryption keys.
  if (jwk.kty !== 'RSA' && jwk.kty !== 'EC' && jwk.kty !== 'OKP') return undefined
  if (jwk.use !== undefined && jwk.use !== 'sig') return undefined
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) return undefined
  if (jwk.kid !== undefined && (typeof jwk.kid !== 'string' || jwk.kid.length > 256)) return undefined
  let key: KeyObject
  try {
    const { d, p, q, dp, dq, qi, ...publicPart } = jwk
    key = createPublicKey({ key: publicPart as JsonWebKey, format: 'jwk' })
  } catch {
    return undefined
  }
  let algorithms = algorithmsForKey(key)
  if (typeof algorithms === 'string') return undefined
  if (jwk.alg !== undefined) {
    // A JWK that names its algorithm pins it (RFC 7517 §4.4).
    if (typeof jwk.alg !== 'string' || !algorithms.includes(jwk.alg as JwtAlgorithm)) return undefined
    algorithms = [jwk.alg as JwtAlgorithm]
  }
  return { pem: key.export({ type: 'spki', format: 'pem' }) as string, algorithms, kid: jwk.kid as string | undefined }
}

const TOKEN_ERROR_REASONS: Readonly<Record<string, string>> = {
  [TokenError.codes.malformed]: 'malformed_token',
  [TokenError.codes.invalidType]: 'malformed_token',
  [TokenError.codes.invalidPayload]: 'malformed_token',
  [TokenError.codes.invalidAlgorithm]: 'invalid_algorithm',
  [TokenError.codes.invalidSignature]: 'invalid_signature',
  [TokenError.codes.missingSignature]: 'invalid_signature',
  [TokenError.codes.verifyError]: 'invalid_signature',
  [TokenError.codes.invalidKey]: 'invalid_signature',
  [TokenError.codes.expired]: 'expired',
  [TokenError.codes.inactive]: 'not_yet_valid',
  [TokenError.codes.missingRequiredClaim]: 'missing_claim',
  [TokenError.codes.invalidClaimType]: 'invalid_claim',
  [TokenError.codes.invalidClaimValue]: 'invalid_claim',
  [TokenError.codes.invalidCritHeader]: 'unsupported_crit'
}

/** Maps anything a verifier throws to a fixed reason token. */
export function reasonOf (err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  return (typeof code === 'string' ? TOKEN_ERROR_REASONS[code] : undefined) ?? 'invalid_token'
}

/** Printable ASCII, no leading/trailing space, 1-256 characters: safe as a header value. */
const SAFE_SUBJECT = /^[\x21-\x7e](?:[\x20-\x7e]{0,254}[\x21-\x7e])?$/
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,256}$/
const MAX_SCOPES = 256

function scopesOf (payload: Record<string, unknown>): string[] | undefined {
  let raw: unknown = payload.scope
  if (raw === undefined) raw = payload.scp
  if (raw === undefined) return []
  let list: unknown[]
  if (typeof raw === 'string') list = raw.split(' ').filter((s) => s !== '')
  else if (Array.isArray(raw)) list = raw
  else return undefined
  if (list.length > MAX_SCOPES) return undefined
  for (const s of list) if (typeof s !== 'string' || !SCOPE_TOKEN.test(s)) return undefined
  return list as string[]
}

function isDate (v: unknown): boolean {
  return v === undefined || (typeof v === 'number' && Number.isFinite(v))
}

function deepFreeze<T> (o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o)) deepFreeze(v)
  }
  return o
}

/**
 * The checks after a successful signature and standard-claim verification. Returns the
 * consumer or a reason token.
 */
export function consumerFromPayload (payload: Record<string, unknown>, rules: ClaimRules, nowMs: number): Consumer | string {
  const { exp, nbf, iat, iss, sub } = payload
  if (!isDate(exp) || !isDate(nbf) || !isDate(iat)) return 'invalid_claim'
  if (iss !== undefined && typeof iss !== 'string') return 'invalid_issuer'
  if (typeof iat === 'number' && iat * 1000 - rules.skewMs > nowMs) return 'issued_in_future'
  if (rules.maxLifetimeS !== undefined) {
    const from = typeof iat === 'number' ? iat : nowMs / 1000
    if ((exp as number) - from > rules.maxLifetimeS) return 'lifetime_exceeded'
  }
  if (typeof sub !== 'string' || !SAFE_SUBJECT.test(sub)) return 'unsafe_subject'
  const scopes = scopesOf(payload)
  if (scopes === undefined) return 'invalid_scope_claim'
  return Object.freeze({
    id: sub,
    strategy: 'jwt' as const,
    scopes: Object.freeze(scopes),
    claims: deepFreeze(payload) as Readonly<PortcullisClaims>
  })
}
