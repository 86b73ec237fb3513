/**
 * Schemas of the auth plugin: the route-level `auth` policy (read from
 * `request.routeOptions.config.auth`) and the plugin options (`config.auth` of src/config.ts).
 */
import { Type, type Static } from '@sinclair/typebox'

export const AuthStrategySchema = Type.Union([Type.Literal('jwt'), Type.Literal('apiKey'), Type.Literal('introspection'), Type.Literal('forwardAuth'), Type.Literal('mtls')], {
  description: 'An authentication strategy: a JWT bearer token, an API key in `x-api-key`, an opaque bearer token checked by OAuth 2.0 token introspection (RFC 7662), the decision of an external forward-auth service, or a verified TLS client certificate (`mtls`).'
})
export type AuthStrategy = Static<typeof AuthStrategySchema>

/** RFC 6749 §3.3 scope-token characters. */
export const SCOPE_TOKEN_PATTERN = '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$'

export const AuthPolicySchema = Type.Object({
  strategies: Type.Optional(Type.Array(AuthStrategySchema, {
    minItems: 1,
    uniqueItems: true,
    description: 'Strategies accepted on this route; default: every strategy the gateway has configured.'
  })),
  relation: Type.Optional(Type.Union([Type.Literal('any'), Type.Literal('all')], {
    description: '`any` (default): one valid credential suffices; `all`: every listed strategy must pass.'
  })),
  scopes: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 256, pattern: SCOPE_TOKEN_PATTERN }), {
    uniqueItems: true,
    maxItems: 64,
    description: 'Scopes the caller must all hold (JWT `scope`/`scp`, introspection `scope`, or the API key\'s `scopes`); missing scopes answer 403.'
  }))
}, { additionalProperties: false })
export type AuthPolicy = Static<typeof AuthPolicySchema>

export const AuthRouteConfigSchema = Type.Union([Type.Literal(false), AuthPolicySchema], {
  description: '`false` makes the route public; an object requires authentication.'
})
export type AuthRouteConfig = Static<typeof AuthRouteConfigSchema>

/**
 * Rules shared with the environment (src/config-schema.ts, src/config.ts): each is written once,
 * here, and used by both the plugin options and the variables that feed them.
 */
/** A consumer name (API_KEYS, API_KEYS_FILE, `apiKeys[].consumer`). */
export const CONSUMER_PATTERN = '^[A-Za-z0-9._@-]{1,128}$'
/** An API key: printable ASCII without spaces or commas (API_KEYS, API_KEYS_FILE, `apiKeys[].key`). */
export const API_KEY = Object.freeze({ minLength: 16, maxLength: 512, pattern: '^[\\x21-\\x2B\\x2D-\\x7E]+$' })
/** Fewest bytes of an HMAC secret (JWT_SECRET, `jwtSecret`). */
export const JWT_SECRET_MIN_BYTES = 32
/** A JWKS endpoint (JWKS_URL, `jwksUrl`). */
export const JWKS_URL_PATTERN = '^https?://[^\\s]+$'
/** An OAuth 2.0 introspection endpoint or a forward-auth service (INTROSPECTION_URL, FORWARD_AUTH_URL). */
export const AUTH_SERVICE_URL_PATTERN = '^https?://[^\\s]+$'
/** A header name (RFC 9110 token), lower case. */
export const HEADER_NAME_PATTERN = '^[a-z0-9!#$%&\'*+.^_`|~-]{1,128}$'
/** Introspection settings shared with the environment. */
export const INTROSPECTION_TIMEOUT_MS = Object.freeze({ minimum: 100, maximum: 60_000, default: 2000 })
export const INTROSPECTION_CACHE_TTL_S = Object.freeze({ minimum: 0, maximum: 3600, default: 60 })
export const INTROSPECTION_NEGATIVE_CACHE_TTL_S = Object.freeze({ minimum: 0, maximum: 300, default: 5 })
/** Forward-auth settings shared with the environment. */
export const FORWARD_AUTH_TIMEOUT_MS = Object.freeze({ minimum: 100, maximum: 60_000, default: 2000 })
export const FORWARD_AUTH_REQUEST_HEADERS = Object.freeze(['authorization', 'cookie'])
export const FORWARD_AUTH_CONSUMER_HEADER = 'x-user-id'
/** Off by default: a service may decide on what the gateway cannot see (a revoked session, a quota). */
export const FORWARD_AUTH_CACHE_TTL_MS = Object.freeze({ minimum: 0, maximum: 3_600_000, default: 0 })
export const FORWARD_AUTH_CACHE_MAX = Object.freeze({ minimum: 1, maximum: 1_000_000, default: 10_000 })
/** Tolerance for exp/nbf/iat, seconds (JWT_CLOCK_SKEW_S, `clockSkewS`). */
export const CLOCK_SKEW_S = Object.freeze({ minimum: 0, maximum: 300, default: 30 })

/** An RFC 3339 timestamp with a time zone (`expires=` of an API key). */
export const TIMESTAMP_PATTERN = '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(?::\\d{2}(?:\\.\\d{1,9})?)?(?:Z|z|[+-]\\d{2}:\\d{2})$'
/** Most scopes one API key may carry. */
export const MAX_KEY_SCOPES = 64

const ScopeSchema = Type.String({ minLength: 1, maxLength: 256, pattern: SCOPE_TOKEN_PATTERN })

export const ApiKeyEntrySchema = Type.Object({
  consumer: Type.String({ pattern: CONSUMER_PATTERN, description: 'Consumer name, sent upstream as `x-consumer-id`.' }),
  key: Type.String({ ...API_KEY, description: 'The plain key (printable ASCII, no comma); hashed at registration, never kept.' }),
  scopes: Type.Optional(Type.Array(ScopeSchema, { uniqueItems: true, maxItems: MAX_KEY_SCOPES, description: 'Scopes the key grants (checked against a route\'s `auth.scopes`); none when omitted.' })),
  expires: Type.Optional(Type.String({ pattern: TIMESTAMP_PATTERN, description: 'RFC 3339 time (with a time zone) from which the key is refused like an unknown one; never when omitted.' }))
}, { additionalProperties: false })
/** One API key entry (plugin option `apiKeys[]`, a line of API_KEYS / API_KEYS_FILE). */
export type ApiKeyEntrySpec = Static<typeof ApiKeyEntrySchema>

/** Client-certificate fields that can name the consumer (TLS_CLIENT_CONSUMER_FIELD, `mtlsConsumerField`). */
export const MTLS_CONSUMER_FIELDS = ['subject.CN', 'san.dns', 'san.uri', 'san.email'] as const
export type MtlsConsumerField = typeof MTLS_CONSUMER_FIELDS[number]
export const DEFAULT_MTLS_CONSUMER_FIELD: MtlsConsumerField = 'subject.CN'

const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const
export type JwtAlgorithm = typeof JWT_ALGORITHMS[number]

export const AuthPluginOptionsSchema = Type.Object({
  jwtSecret: Type.Optional(Type.String({ minLength: JWT_SECRET_MIN_BYTES, description: `HMAC secret (HS256/384/512 only), at least ${JWT_SECRET_MIN_BYTES} bytes.` })),
  jwtPublicKey: Type.Optional(Type.String({ minLength: 1, description: 'PEM public key or certificate (RSA: RS*/PS*, EC: ES* by curve, Ed25519/Ed448: EdDSA).' })),
  jwksUrl: Type.Optional(Type.String({ pattern: JWKS_URL_PATTERN, description: 'Remote JWKS endpoint; keys are cached and refreshed on an unknown `kid`.' })),
  jwtAlgorithms: Type.Optional(Type.Array(Type.Union(JWT_ALGORITHMS.map((a) => Type.Literal(a))), {
    minItems: 1,
    uniqueItems: true,
    description: 'Narrow the accepted algorithms further (each must be allowed by the key type; default: all the key type allows).'
  })),
  issuer: Type.Optional(Type.String({ minLength: 1, description: 'Required `iss` (exact match).' })),
  audience: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Accepted `aud` values (one match suffices).' })),
  clockSkewS: Type.Integer({ ...CLOCK_SKEW_S, description: 'Tolerance in seconds for `exp`, `nbf` and `iat`.' }),
  maxLifetimeS: Type.Optional(Type.Integer({ minimum: 1, description: 'Reject tokens whose `exp` lies further than this after `iat` (or after now without `iat`).' })),
  maxTokenBytes: Type.Integer({ minimum: 128, maximum: 65_536, default: 8192, description: 'Largest bearer token accepted.' }),
  apiKeys: Type.Array(ApiKeyEntrySchema, { default: [], description: 'Consumers and their API keys (held only as SHA-256 digests); several keys per consumer are allowed (rotation).' }),
  apiKeysFile: Type.Optional(Type.String({ minLength: 1, description: 'File of more API keys, one `consumer:key [scopes=a,b] [expires=<RFC 3339>]` per line; read at registration and again by `reloadApiKeys()` (a bad file keeps the keys in use).' })),
  apiKeysWatch: Type.Boolean({ default: true, description: 'Re-read `apiKeysFile` when anything in its folder changes (fs.watch; Kubernetes Secret volumes swap a symlink there).' }),
  apiKeysReloadDelayMs: Type.Integer({ minimum: 0, maximum: 60_000, default: 200, description: 'Quiet time after the last change in the folder before `apiKeysFile` is re-read.' }),
  jwksCooldownMs: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 30_000, description: 'Least time between two JWKS fetches triggered by unknown `kid`s.' }),
  jwksMaxAgeMs: Type.Integer({ minimum: 1000, maximum: 86_400_000, default: 600_000, description: 'Age after which the JWKS is refreshed in the background.' }),
  jwksTimeoutMs: Type.Integer({ minimum: 100, maximum: 60_000, default: 5000, description: 'Deadline of one JWKS fetch (headers and body).' }),
  jwksMaxBytes: Type.Integer({ minimum: 1024, maximum: 4_194_304, default: 262_144, description: 'Largest JWKS document accepted.' }),
  tokenCacheSize: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 1000, description: 'Verified tokens remembered (LRU); 0 switches the cache off.' }),
  tokenCacheTtlMs: Type.Integer({ minimum: 1, maximum: 600_000, default: 10_000, description: 'Longest time a verified token is remembered (never past its `exp`).' }),
  introspectionUrl: Type.Optional(Type.String({ pattern: AUTH_SERVICE_URL_PATTERN, description: 'OAuth 2.0 token introspection endpoint (RFC 7662); enables the `introspection` strategy.' })),
  introspectionClientId: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Client id the gateway authenticates with at the introspection endpoint (HTTP Basic).' })),
  introspectionClientSecret: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'Client secret for the introspection endpoint (never logged).' })),
  introspectionIssuer: Type.Optional(Type.String({ minLength: 1, description: 'Required `iss` of introspected tokens, when the response carries one (absent: not checked).' })),
  introspectionAudience: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Accepted `aud` values of introspected tokens (one match suffices; the response must carry `aud`).' })),
  introspectionTimeoutMs: Type.Integer({ ...INTROSPECTION_TIMEOUT_MS, description: 'Deadline of one introspection call (connect, headers and body); past it the request gets 503.' }),
  introspectionCacheTtlS: Type.Integer({ ...INTROSPECTION_CACHE_TTL_S, description: 'Longest time an active token is remembered (never past its `exp`); 0 asks the endpoint on every request.' }),
  introspectionNegativeCacheTtlS: Type.Integer({ ...INTROSPECTION_NEGATIVE_CACHE_TTL_S, description: 'Time an inactive or refused token is remembered, so repeated bad tokens do not reach the endpoint; 0 = off.' }),
  introspectionCacheSize: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 10_000, description: 'Introspection results remembered (LRU, keyed by the token\'s SHA-256).' }),
  forwardAuthUrl: Type.Optional(Type.String({ pattern: AUTH_SERVICE_URL_PATTERN, description: 'External authorization service asked with a GET per request (Traefik forwardAuth, nginx auth_request, Envoy ext_authz HTTP); enables the `forwardAuth` strategy.' })),
  forwardAuthTimeoutMs: Type.Integer({ ...FORWARD_AUTH_TIMEOUT_MS, description: 'Deadline of one forward-auth call; past it the request gets 503.' }),
  forwardAuthRequestHeaders: Type.Array(Type.String({ pattern: HEADER_NAME_PATTERN }), { default: [...FORWARD_AUTH_REQUEST_HEADERS], uniqueItems: true, maxItems: 32, description: 'Client request headers copied to the forward-auth call (lower case; not host, forwarded, x-forwarded-* or framing headers, which the gateway writes on the check).' }),
  forwardAuthResponseHeaders: Type.Array(Type.String({ pattern: HEADER_NAME_PATTERN }), { default: [], uniqueItems: true, maxItems: 32, description: 'Headers of the service\'s 2xx answer sent upstream as identity (lower case); client-sent copies are always dropped.' }),
  forwardAuthConsumerHeader: Type.String({ pattern: HEADER_NAME_PATTERN, default: FORWARD_AUTH_CONSUMER_HEADER, description: 'Header of the service\'s 2xx answer naming the caller (becomes `x-consumer-id`); a 2xx without it is a 503.' }),
  forwardAuthCacheTtlMs: Type.Integer({ ...FORWARD_AUTH_CACHE_TTL_MS, description: 'Longest time a forward-auth decision (2xx with its identity headers, 401, 403) is remembered for an identical check (same method, URI, host, scheme, client address and chosen headers); shorter when the answer\'s Cache-Control or Expires says so, never with `no-store`/`no-cache`; failures never. 0 (default) asks the service on every request.' }),
  forwardAuthCacheMax: Type.Integer({ ...FORWARD_AUTH_CACHE_MAX, description: 'Forward-auth decisions remembered at most (LRU, keyed by the SHA-256 of the check).' }),
  mtlsConsumerField: Type.Optional(Type.Union(MTLS_CONSUMER_FIELDS.map((f) => Type.Literal(f)), {
    description: 'Switches the `mtls` strategy on: the field of the verified client certificate that names the consumer (`subject.CN`, or the first `san.dns`/`san.uri`/`san.email` entry; it must fit the consumer-name pattern). The server must ask for client certificates (`requestCert: true`, `rejectUnauthorized: false`, `ca`).'
  }))
}, { additionalProperties: false })

/** `T` with every array and object read-only (so frozen configs such as `config.auth` fit). */
export type ReadonlyDeep<T> = T extends ReadonlyArray<infer U>
  ? ReadonlyArray<ReadonlyDeep<U>>
  : T extends object ? { readonly [K in keyof T]: ReadonlyDeep<T[K]> } : T

/** Options of the auth plugin (defaults applied at registration; the caller's object is never changed). */
export type AuthPluginOptions = ReadonlyDeep<Partial<Static<typeof AuthPluginOptionsSchema>>>
/** Validated options with defaults. */
export type ResolvedAuthOptions = Static<typeof AuthPluginOptionsSchema>

/** Headers a forward-auth answer may never set upstream (framing, routing, credentials, the gateway's own). */
const RESERVED_IDENTITY_HEADERS: ReadonlySet<string> = new Set([
  'host', 'connection', 'content-length', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'keep-alive',
  'proxy-authorization', 'authorization', 'cookie', 'x-api-key', 'x-request-id', 'forwarded', 'traceparent', 'tracestate'
])

/** Headers of a forward-auth check that only the gateway writes (framing included). */
const FORWARD_AUTH_OWN_REQUEST_HEADERS: ReadonlySet<string> = new Set(['host', 'forwarded', 'x-real-ip', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'expect'])

/** Rules spanning several option fields; returns every problem found. */
export function crossFieldProblems (o: ResolvedAuthOptions): string[] {
  const problems: string[] = []
  const sources = [o.jwtSecret, o.jwtPublicKey, o.jwksUrl].filter((s) => s !== undefined).length
  if (sources > 1) problems.push('jwtSecret, jwtPublicKey, jwksUrl: set only one key source')
  if (o.jwtSecret !== undefined) {
    if (Buffer.byteLength(o.jwtSecret) < JWT_SECRET_MIN_BYTES) problems.push(`jwtSecret: must be at least ${JWT_SECRET_MIN_BYTES} bytes`)
    // A public key used as an HMAC secret is the RS->HS confusion; refuse it at the door.
    if (/-----BEGIN/.test(o.jwtSecret) || /^\s*[[{]/.test(o.jwtSecret)) problems.push('jwtSecret: looks like a PEM or JWK key; use jwtPublicKey or jwksUrl')
  }
  if (sources === 0 && o.jwtAlgorithms !== undefined) problems.push('jwtAlgorithms: needs a JWT key source')
  const introspection = [o.introspectionUrl, o.introspectionClientId, o.introspectionClientSecret].filter((s) => s !== undefined).length
  if (introspection !== 0 && introspection !== 3) problems.push('introspectionUrl, introspectionClientId, introspectionClientSecret: set all three or none')
  if (o.introspectionUrl === undefined && (o.introspectionIssuer !== undefined || o.introspectionAudience !== undefined)) problems.push('introspectionIssuer, introspectionAudience: need introspectionUrl')
  for (const name of [...o.forwardAuthResponseHeaders, o.forwardAuthConsumerHeader]) {
    if (RESERVED_IDENTITY_HEADERS.has(name) || name.startsWith('x-consumer-') || name.startsWith('x-forwarded-')) problems.push(`forwardAuthResponseHeaders, forwardAuthConsumerHeader: "${name}" is a header the gateway owns`)
  }
  for (const name of o.forwardAuthRequestHeaders) {
    // The check's own fields, and framing: a client's copy must never stand in for the gateway's.
    if (FORWARD_AUTH_OWN_REQUEST_HEADERS.has(name) || name.startsWith('x-forwarded-')) problems.push(`forwardAuthRequestHeaders: "${name}" is set by the gateway on the check (or is hop-by-hop) and cannot be copied from the client`)
  }
  const seen = new Set<string>()
  o.apiKeys.forEach((k, i) => {
    if (seen.has(k.key)) problems.push(`apiKeys.${i}: consumer "${k.consumer}" reuses another entry's key`)
    seen.add(k.key)
    if (k.expires !== undefined && Number.isNaN(Date.parse(k.expires))) problems.push(`apiKeys.${i}: expires is not a valid time`)
  })
  return problems
}
