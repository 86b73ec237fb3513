/**
 * The one source of the gateway's configuration: every environment variable with its type,
 * range, default and description (`EnvSchema`, grouped in `ENV_SECTIONS`), and the shape of the
 * validated configuration (`GatewayConfigSchema`, from which the `GatewayConfig` type is derived).
 *
 * Rules an option of a plugin shares with the variable that feeds it (ranges, patterns,
 * defaults) are written once in the plugin's schema module and used here. Generated from these
 * schemas: docs/reference/environment.md and `.env.example` (`npm run docs`).
 */
import { Type, type Static, type TArray, type TLiteral, type TSchema, type TString, type TUndefined, type TUnion } from '@sinclair/typebox'
import {
  ApiKeyEntrySchema, AUTH_SERVICE_URL_PATTERN, CLOCK_SKEW_S, DEFAULT_MTLS_CONSUMER_FIELD, FORWARD_AUTH_CACHE_MAX, FORWARD_AUTH_CACHE_TTL_MS, FORWARD_AUTH_CONSUMER_HEADER, FORWARD_AUTH_REQUEST_HEADERS, FORWARD_AUTH_TIMEOUT_MS, HEADER_NAME_PATTERN,
  INTROSPECTION_CACHE_TTL_S, INTROSPECTION_NEGATIVE_CACHE_TTL_S, INTROSPECTION_TIMEOUT_MS, JWKS_URL_PATTERN, JWT_SECRET_MIN_BYTES, MTLS_CONSUMER_FIELDS, type ReadonlyDeep
} from '../plugins/auth/schema.js'
import { DEFAULT_INSPECT_MODE, INSPECT_MODES, INSPECT_TIMEOUT_MS, VERDICT_CACHE_SIZE } from '../plugins/inspect/schema.js'
import { DEFAULT_ADMIN_HOST, INSTANCE_PATTERN } from '../plugins/metrics/schema.js'
import { BODY_LIMIT, RESPONSE_BUFFER_BYTES, SEND_TIMEOUT_MS } from '../plugins/proxy/schema.js'
import { DEFAULT_FAILURE_MODE, DEFAULT_IP_RATE_LIMIT, DEFAULT_ROUTE_RATE_LIMIT, FAILURE_MODES, REDIS_KEY_PREFIX, REDIS_TIMEOUT_MS, REDIS_URL_PATTERN } from '../plugins/rate-limit/schema.js'

/** The port of the built-in demo upstream (development only). */
export const DEMO_UPSTREAM_DEFAULT_PORT = 8081

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
/** TLS_CLIENT_CERT_MODE values. */
export const CLIENT_CERT_MODES = ['request', 'require'] as const
const literals = <T extends string>(values: readonly T[]): Array<TLiteral<T>> => values.map((v) => Type.Literal(v))

const listener = {
  NODE_ENV: Type.String({ default: 'development', description: '`production` disables every demo default.' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: 'Public listen port.' }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Public listen address (the container sets 0.0.0.0).' }),
  ROUTES_DIR: Type.Optional(Type.String({ minLength: 1, description: 'Folder of route modules (default: the bundled routes/).' })),
  LOG_LEVEL: Type.Union(literals(LOG_LEVELS), { default: 'info', description: 'pino level.' }),
  LOG_BUFFER_BYTES: Type.Integer({ minimum: 0, maximum: 16_384, default: 4096, description: 'Log lines gathered per write to stdout (0 = one write per line); flushed at least every second and on exit.' }),
  BODY_LIMIT: Type.Integer({ ...BODY_LIMIT, description: 'Request body bytes, proxied bodies included (413 past it).' }),
  RESPONSE_BUFFER_BYTES: Type.Integer({ ...RESPONSE_BUFFER_BYTES, description: 'Upstream responses declaring at most this many bytes are read whole and sent in one write; larger ones stream (0 = stream all).' }),
  TRUST_PROXY: Type.Optional(Type.String({ examples: ['10.0.0.0/8'], description: 'Comma-separated proxy IPs/CIDRs whose x-forwarded-* headers are trusted ("all" and hop counts are refused).' })),
  PROXY_PROTOCOL: Type.Boolean({ default: false, description: 'Connections from TRUST_PROXY peers open with a PROXY protocol v1/v2 header announcing the client address (required from them; others connect directly).' }),
  STRIP_REQUEST_HEADERS: Type.String({ default: '', examples: ['X-Tenant-Id,X-Acme-*'], description: 'Comma-separated client request headers never forwarded upstream, besides the built-in identity/IP list (names, or prefixes ending in `*`).' }),
  SEND_TIMEOUT_MS: Type.Integer({ minimum: 1000, ...SEND_TIMEOUT_MS, description: 'A client that reads nothing of a streamed response for this long loses it (the upstream request ends; nginx send_timeout).' }),
  REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 3_600_000, default: 60_000, description: 'Whole client request (headers and body) deadline.' }),
  HEADERS_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 10_000, description: 'Deadline for the client to send all request headers (slowloris).' }),
  KEEP_ALIVE_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 10_000, description: 'Idle keep-alive connection lifetime.' }),
  DRAIN_DELAY_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 0, description: 'On SIGTERM, keep accepting this long while /readyz answers 503, so balancers that poll it stop sending first.' }),
  DRAIN_TIMEOUT_MS: Type.Integer({ minimum: 0, maximum: 600_000, default: 10_000, description: 'Longest wait for in-flight requests on SIGTERM.' }),
  DEMO_UPSTREAM_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: DEMO_UPSTREAM_DEFAULT_PORT, description: 'Port of the built-in demo upstream (development only); when another program holds it, the demo upstream and the routes pointing at it move to a free port.' })
}

const authentication = {
  JWT_SECRET: Type.Optional(Type.String({ minLength: 1, description: `HMAC secret for HS256/384/512 tokens (${JWT_SECRET_MIN_BYTES}+ bytes).` })),
  JWT_PUBLIC_KEY: Type.Optional(Type.String({ minLength: 1, examples: ['/run/secrets/jwt-public.pem'], description: 'PEM public key (RS/PS/ES/EdDSA), or a path to one.' })),
  JWKS_URL: Type.Optional(Type.String({ pattern: JWKS_URL_PATTERN, examples: ['https://idp.example.com/.well-known/jwks.json'], description: 'Remote JWKS endpoint.' })),
  JWT_ISSUER: Type.Optional(Type.String({ minLength: 1, examples: ['https://idp.example.com/'], description: 'Required `iss`.' })),
  JWT_AUDIENCE: Type.Optional(Type.String({ minLength: 1, examples: ['orders-api,billing-api'], description: 'Accepted `aud` values, comma separated.' })),
  JWT_CLOCK_SKEW_S: Type.Integer({ ...CLOCK_SKEW_S, description: 'Tolerance for exp/nbf/iat.' }),
  JWT_MAX_LIFETIME_S: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'Reject tokens whose exp - iat exceeds this.' })),
  API_KEYS: Type.Optional(Type.String({ description: '`consumer:key` pairs, comma separated; one pair may carry ` scopes=a,b expires=<RFC 3339>` (see API_KEYS_FILE).' })),
  API_KEYS_FILE: Type.Optional(Type.String({ minLength: 1, examples: ['/run/secrets/api-keys'], description: 'File with one `consumer:key [scopes=a,b] [expires=2027-01-31T00:00:00Z]` per line; re-read on SIGHUP and when its folder changes (a bad file keeps the keys in use).' })),
  INTROSPECTION_URL: Type.Optional(Type.String({ pattern: AUTH_SERVICE_URL_PATTERN, examples: ['https://idp.example.com/token/introspection'], description: 'OAuth 2.0 token introspection endpoint (RFC 7662): opaque bearer tokens are checked there (the `introspection` strategy). Needs INTROSPECTION_CLIENT_ID and a secret.' })),
  INTROSPECTION_CLIENT_ID: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'Client id of the gateway at the introspection endpoint (client_secret_basic).' })),
  INTROSPECTION_CLIENT_SECRET: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'Client secret for the introspection endpoint (prefer INTROSPECTION_CLIENT_SECRET_FILE).' })),
  INTROSPECTION_CLIENT_SECRET_FILE: Type.Optional(Type.String({ minLength: 1, examples: ['/run/secrets/introspection-secret'], description: 'File holding the introspection client secret on one line.' })),
  INTROSPECTION_ISSUER: Type.Optional(Type.String({ minLength: 1, description: 'Required `iss` of introspected tokens when the answer carries one (default: JWT_ISSUER).' })),
  INTROSPECTION_AUDIENCE: Type.Optional(Type.String({ minLength: 1, description: 'Accepted `aud` values of introspected tokens, comma separated; the answer must then carry one (default: JWT_AUDIENCE).' })),
  INTROSPECTION_TIMEOUT_MS: Type.Integer({ ...INTROSPECTION_TIMEOUT_MS, description: 'Deadline of one introspection call; past it, or with the endpoint down, the request gets 503 (fail closed).' }),
  INTROSPECTION_CACHE_TTL_S: Type.Integer({ ...INTROSPECTION_CACHE_TTL_S, description: 'Longest time an active token is remembered (never past its `exp`; 0 = ask every time).' }),
  INTROSPECTION_NEGATIVE_CACHE_TTL_S: Type.Integer({ ...INTROSPECTION_NEGATIVE_CACHE_TTL_S, description: 'Time an inactive or refused token is remembered, so repeated bad tokens do not reach the endpoint (0 = off).' }),
  FORWARD_AUTH_URL: Type.Optional(Type.String({ pattern: AUTH_SERVICE_URL_PATTERN, examples: ['http://authz:9000/check'], description: 'External authorization service asked with a GET per request on routes with the `forwardAuth` strategy (Traefik forwardAuth / nginx auth_request style).' })),
  FORWARD_AUTH_TIMEOUT_MS: Type.Integer({ ...FORWARD_AUTH_TIMEOUT_MS, description: 'Deadline of one forward-auth call; past it the request gets 503 (fail closed).' }),
  FORWARD_AUTH_REQUEST_HEADERS: Type.String({ default: FORWARD_AUTH_REQUEST_HEADERS.join(','), description: 'Client request headers copied to the forward-auth call, comma separated (not host, forwarded, x-forwarded-* or framing headers: the gateway writes those on the check).' }),
  FORWARD_AUTH_RESPONSE_HEADERS: Type.String({ default: '', examples: ['x-user-email,x-user-groups'], description: 'Headers of the service\'s 2xx answer sent upstream as identity, comma separated (client-sent copies are dropped).' }),
  FORWARD_AUTH_CONSUMER_HEADER: Type.String({ pattern: HEADER_NAME_PATTERN, default: FORWARD_AUTH_CONSUMER_HEADER, description: 'Header of the service\'s 2xx answer naming the caller (sent upstream as `x-consumer-id`).' }),
  FORWARD_AUTH_CACHE_TTL_MS: Type.Integer({ ...FORWARD_AUTH_CACHE_TTL_MS, examples: [5000], description: 'Longest time a forward-auth decision (allowed with its identity headers, 401, 403) is reused for an identical check: same method, URI, host, scheme, client address and chosen headers. Shorter when the service\'s Cache-Control/Expires says so, never with `no-store`/`no-cache`; failures are never kept. A revoked session can pass for up to this long. 0 (default) = ask on every request.' }),
  FORWARD_AUTH_CACHE_MAX: Type.Integer({ ...FORWARD_AUTH_CACHE_MAX, description: 'Forward-auth decisions remembered at most (LRU, keyed by the SHA-256 of the check; per gateway process, emptied by a reload).' })
}

const rateLimits = {
  RATE_LIMIT_MAX: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, default: DEFAULT_ROUTE_RATE_LIMIT.max, description: 'Default per-route limit per window.' }),
  RATE_LIMIT_WINDOW: Type.String({ minLength: 1, default: DEFAULT_ROUTE_RATE_LIMIT.timeWindow, description: 'Default window (e.g. `1 minute`, `30s`, `60000`).' }),
  IP_RATE_LIMIT_MAX: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, default: DEFAULT_IP_RATE_LIMIT.max, description: 'Per-client-IP limit applied before authentication.' }),
  IP_RATE_LIMIT_WINDOW: Type.String({ minLength: 1, default: DEFAULT_IP_RATE_LIMIT.timeWindow, description: 'Window of the per-IP limit.' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: REDIS_URL_PATTERN, examples: ['redis://redis:6379'], description: 'Redis for shared rate-limit state (unset: in memory).' })),
  REDIS_SENTINELS: Type.Optional(Type.String({ minLength: 1, examples: ['sentinel-1:26379,sentinel-2:26379,sentinel-3:26379'], description: 'Redis Sentinel addresses, `host:port` comma separated, instead of REDIS_URL: the counters live on the primary the sentinels name for REDIS_SENTINEL_NAME, followed through failovers.' })),
  REDIS_SENTINEL_NAME: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,100}$', examples: ['mymaster'], description: 'The primary group the sentinels monitor (the name in their `sentinel monitor <name> …`); needed with REDIS_SENTINELS.' })),
  REDIS_SENTINEL_PASSWORD_FILE: Type.Optional(Type.String({ minLength: 1, description: 'File holding the password of the sentinels themselves (their `requirepass`); with REDIS_SENTINELS.' })),
  REDIS_CLUSTER_NODES: Type.Optional(Type.String({ minLength: 1, examples: ['redis-1:6379,redis-2:6379,redis-3:6379'], description: 'Redis Cluster nodes, `host:port` comma separated (a few suffice; the rest are discovered), instead of REDIS_URL.' })),
  REDIS_PASSWORD_FILE: Type.Optional(Type.String({ minLength: 1, description: 'File holding the password of the Redis servers found through REDIS_SENTINELS or REDIS_CLUSTER_NODES (REDIS_URL carries its own).' })),
  REDIS_FAILURE_MODE: Type.Union(literals(FAILURE_MODES), { default: DEFAULT_FAILURE_MODE, description: 'With Redis unreachable: `closed` answers 503, `open` admits.' }),
  REDIS_KEY_PREFIX: Type.String({ ...REDIS_KEY_PREFIX, description: 'Prefix of every rate-limit key in Redis (gateway groups sharing one Redis use different prefixes).' }),
  REDIS_TIMEOUT_MS: Type.Integer({ ...REDIS_TIMEOUT_MS, description: 'Bound on one Redis command.' })
}

const inspection = {
  INSPECT_MODE: Type.Union(literals(INSPECT_MODES), { default: DEFAULT_INSPECT_MODE, description: 'Default inspection mode for routes that do not set one.' }),
  INSPECT_RULES_FILE: Type.Optional(Type.String({ minLength: 1, description: 'Additional ruleset (libddwaf JSON) loaded beside the built-in one.' })),
  INSPECT_DETECT_RULES: Type.Optional(Type.String({ examples: ['pc-sqli-010,pc-xss-001'], description: 'Rule ids in detect mode on every inspected route, comma separated: logged and counted, never blocking (shadow a rule before enforcing it).' })),
  INSPECT_TIMEOUT_MS: Type.Integer({ ...INSPECT_TIMEOUT_MS, description: 'Engine time budget per inspection; a request whose inspection runs past it is refused in block mode (fail closed) and logged in detect mode.' }),
  INSPECT_CACHE_SIZE: Type.Integer({ ...VERDICT_CACHE_SIZE, description: 'Clean values remembered per generation so repeated benign values skip the engine (0 = off).' })
}

const ipFilter = {
  IP_ALLOW: Type.Optional(Type.String({ examples: ['10.0.0.0/8,2001:db8::/32'], description: 'Gateway-wide allow list of IPs/CIDRs, comma separated (others get 403).' })),
  IP_DENY: Type.Optional(Type.String({ examples: ['192.0.2.0/24'], description: 'Gateway-wide deny list of IPs/CIDRs, comma separated; wins over IP_ALLOW.' }))
}

const paths = {
  PUBLIC_HOSTS: Type.Optional(Type.String({ examples: ['api.example.com,*.example.com'], description: 'Host names clients may address, comma separated (`api.example.com`, `*.example.com` for its subdomains; any port). A proxied request naming another `Host` or `:authority` gets 400 and is not forwarded. Unset = any well-formed host, which goes upstream as `x-forwarded-host`.' })),
  PATH_CHECK: Type.Union([Type.Literal('strict'), Type.Literal('literal')], { default: 'strict', description: '`strict` refuses paths that case-folding or path-normalising backends (IIS, Tomcat, Spring, Express) read as another route; `literal` routes the literal path only.' })
}

const processes = {
  WORKERS: Type.String({ pattern: '^(?:auto|[1-9][0-9]{0,2})$', default: '1', description: 'Gateway processes sharing the port (node:cluster): a count or `auto` (one per core). More than one needs REDIS_URL in production.' })
}

const edge = {
  TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1, examples: ['/run/secrets/tls.crt'], description: 'PEM certificate chain: serve HTTPS.' })),
  TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1, examples: ['/run/secrets/tls.key'], description: 'PEM private key for TLS_CERT_FILE.' })),
  HTTP2: Type.Boolean({ default: false, description: 'Serve HTTP/2 (with HTTP/1.1 fallback) when TLS is on.' }),
  TLS_CLIENT_CA_FILE: Type.Optional(Type.String({ minLength: 1, examples: ['/run/secrets/client-ca.pem'], description: 'PEM bundle of the CAs whose client certificates are accepted: asks clients for a certificate and switches the `mtls` auth strategy on (needs TLS_CERT_FILE and TLS_KEY_FILE). Re-read on SIGHUP, POST /reload and when its folder changes; new TLS connections use the new bundle.' })),
  TLS_CLIENT_CERT_MODE: Type.Optional(Type.Union(literals(CLIENT_CERT_MODES), { description: 'With TLS_CLIENT_CA_FILE: `request` (default) asks for a certificate but lets connections without a valid one reach routes that do not need `mtls` (those that do answer 401); `require` ends the TLS handshake of any client without a verified certificate (no HTTP answer at all).' })),
  TLS_CLIENT_CRL_FILE: Type.Optional(Type.String({ minLength: 1, examples: ['/run/secrets/client-ca.crl'], description: 'PEM certificate revocation list(s) of the client CAs, one per CA of the bundle, in one file: revoked client certificates are refused (with TLS_CLIENT_CA_FILE). Re-read on SIGHUP, POST /reload and when its folder changes; new TLS connections are verified against it, and a file that cannot be parsed keeps the one in use.' })),
  TLS_CLIENT_CONSUMER_FIELD: Type.Optional(Type.Union(literals(MTLS_CONSUMER_FIELDS), { description: `The client certificate field sent upstream as \`x-consumer-id\`: \`${DEFAULT_MTLS_CONSUMER_FIELD}\` (default), or the first \`san.dns\`, \`san.uri\` or \`san.email\` entry; a value outside the consumer-name pattern (letters, digits, \`._@-\`, 1-128) is refused with 401.` })),
  ADMIN_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, examples: [9090], description: 'Admin listener (metrics); unset = off.' })),
  ADMIN_HOST: Type.String({ minLength: 1, default: DEFAULT_ADMIN_HOST, description: 'Admin listen address.' }),
  INSTANCE_ID: Type.Optional(Type.String({ pattern: INSTANCE_PATTERN, description: 'The `instance` label on every metric; unset = `<hostname>-<pid>` of each process.' })),
  OTEL_ENABLED: Type.Boolean({ default: false, description: 'Switch on OpenTelemetry tracing.' }),
  UPSTREAM_CA_FILE: Type.Optional(Type.String({ minLength: 1, description: 'PEM CA bundle trusted (besides the system CAs) for https upstreams.' })),
  UPSTREAM_TLS_INSECURE: Type.Boolean({ default: false, description: 'Skip certificate verification of https upstreams (never in production).' })
}

/** The variables in the groups `.env.example` lists them in (`note`: said above the group). */
export const ENV_SECTIONS: ReadonlyArray<{ readonly title: string, readonly names: readonly string[], readonly note?: string }> = Object.freeze([
  { title: 'listener', names: Object.keys(listener) },
  {
    title: 'authentication (set at least one in production)',
    names: Object.keys(authentication),
    note: 'JWT_SECRET and API_KEYS ship empty on purpose: production refuses placeholders, example values and non-random secrets. Generate real ones into .env (created from this file when missing): `npm run secrets` (no npm install needed: `node scripts/secrets.mjs`).'
  },
  { title: 'rate limits', names: Object.keys(rateLimits) },
  { title: 'request inspection', names: Object.keys(inspection) },
  { title: 'IP filter', names: Object.keys(ipFilter) },
  { title: 'paths', names: Object.keys(paths) },
  { title: 'processes', names: Object.keys(processes) },
  { title: 'edge', names: Object.keys(edge) }
])

/** Every environment variable the gateway reads, with its type, range, default and description. */
export const EnvSchema = Type.Object({ ...listener, ...authentication, ...rateLimits, ...inspection, ...ipFilter, ...paths, ...processes, ...edge })

/** The environment as validated by EnvSchema (defaults applied, numbers and booleans coerced). */
export type GatewayEnv = Static<typeof EnvSchema>

/**
 * Left empty in `.env.example` for `npm run secrets` to fill: an empty value means unset. Every
 * other variable is listed commented out, with its default.
 */
export const EMPTY_MEANS_UNSET: readonly string[] = Object.freeze(['JWT_SECRET', 'API_KEYS'])

const env = EnvSchema.properties
/** `schema`, or undefined when its variable is unset. */
const unset = <T extends TSchema>(schema: T): TUnion<[T, TUndefined]> => Type.Union([schema, Type.Undefined()])
/** A comma-separated variable as its list of entries. */
const list = (description: string): TArray<TString> => Type.Array(Type.String(), { description })

/**
 * The validated configuration `loadConfig()` returns: one entry per setting, most of them the
 * variable's own schema; lists are split at commas, files already read.
 */
export const GatewayConfigSchema = Type.Object({
  production: Type.Boolean({ description: 'NODE_ENV is `production`: no demo defaults, demo and placeholder credentials refused.' }),
  port: env.PORT,
  host: env.HOST,
  routesDir: unset(env.ROUTES_DIR),
  logLevel: env.LOG_LEVEL,
  logBufferBytes: env.LOG_BUFFER_BYTES,
  bodyLimit: env.BODY_LIMIT,
  responseBufferBytes: env.RESPONSE_BUFFER_BYTES,
  sendTimeoutMs: env.SEND_TIMEOUT_MS,
  trustProxy: list('TRUST_PROXY entries.'),
  proxyProtocol: env.PROXY_PROTOCOL,
  drainDelayMs: env.DRAIN_DELAY_MS,
  stripRequestHeaders: list('STRIP_REQUEST_HEADERS entries.'),
  drainTimeoutMs: env.DRAIN_TIMEOUT_MS,
  requestTimeoutMs: env.REQUEST_TIMEOUT_MS,
  headersTimeoutMs: env.HEADERS_TIMEOUT_MS,
  keepAliveTimeoutMs: env.KEEP_ALIVE_TIMEOUT_MS,
  demoUpstreamPort: unset(env.DEMO_UPSTREAM_PORT),
  auth: Type.Object({
    jwtSecret: unset(Type.String({ description: 'JWT_SECRET, or the demo secret outside production when no credential is set.' })),
    jwtPublicKey: unset(Type.String({ description: 'JWT_PUBLIC_KEY as PEM (read from the file it names).' })),
    jwksUrl: unset(env.JWKS_URL),
    issuer: unset(env.JWT_ISSUER),
    audience: unset(list('JWT_AUDIENCE entries.')),
    clockSkewS: env.JWT_CLOCK_SKEW_S,
    maxLifetimeS: unset(env.JWT_MAX_LIFETIME_S),
    apiKeys: Type.Array(ApiKeyEntrySchema, { description: 'API_KEYS; the demo key outside production when no credential is set.' }),
    apiKeysFile: unset(Type.String({ description: 'API_KEYS_FILE (read, and re-read, by the auth plugin).' })),
    mtlsConsumerField: unset(Type.Union(literals(MTLS_CONSUMER_FIELDS), { description: 'TLS_CLIENT_CONSUMER_FIELD (default subject.CN) when TLS_CLIENT_CA_FILE is set; unset otherwise.' })),
    introspectionUrl: unset(env.INTROSPECTION_URL),
    introspectionClientId: unset(env.INTROSPECTION_CLIENT_ID),
    introspectionClientSecret: unset(Type.String({ description: 'INTROSPECTION_CLIENT_SECRET, or the content of INTROSPECTION_CLIENT_SECRET_FILE.' })),
    introspectionIssuer: unset(Type.String({ description: 'INTROSPECTION_ISSUER, else JWT_ISSUER (with INTROSPECTION_URL).' })),
    introspectionAudience: unset(list('INTROSPECTION_AUDIENCE entries, else JWT_AUDIENCE\'s (with INTROSPECTION_URL).')),
    introspectionTimeoutMs: env.INTROSPECTION_TIMEOUT_MS,
    introspectionCacheTtlS: env.INTROSPECTION_CACHE_TTL_S,
    introspectionNegativeCacheTtlS: env.INTROSPECTION_NEGATIVE_CACHE_TTL_S,
    forwardAuthUrl: unset(env.FORWARD_AUTH_URL),
    forwardAuthTimeoutMs: env.FORWARD_AUTH_TIMEOUT_MS,
    forwardAuthRequestHeaders: list('FORWARD_AUTH_REQUEST_HEADERS entries, lower case.'),
    forwardAuthResponseHeaders: list('FORWARD_AUTH_RESPONSE_HEADERS entries, lower case.'),
    forwardAuthConsumerHeader: env.FORWARD_AUTH_CONSUMER_HEADER,
    forwardAuthCacheTtlMs: env.FORWARD_AUTH_CACHE_TTL_MS,
    forwardAuthCacheMax: env.FORWARD_AUTH_CACHE_MAX
  }),
  rateLimit: Type.Object({
    max: env.RATE_LIMIT_MAX,
    timeWindow: env.RATE_LIMIT_WINDOW,
    ipMax: env.IP_RATE_LIMIT_MAX,
    ipTimeWindow: env.IP_RATE_LIMIT_WINDOW,
    redisUrl: unset(env.REDIS_URL),
    redisSentinels: unset(list('REDIS_SENTINELS entries (`host:port`).')),
    redisSentinelName: unset(env.REDIS_SENTINEL_NAME),
    redisSentinelPassword: unset(Type.String({ description: 'REDIS_SENTINEL_PASSWORD_FILE\'s content.' })),
    redisClusterNodes: unset(list('REDIS_CLUSTER_NODES entries (`host:port`).')),
    redisPassword: unset(Type.String({ description: 'REDIS_PASSWORD_FILE\'s content.' })),
    failureMode: env.REDIS_FAILURE_MODE,
    redisTimeoutMs: env.REDIS_TIMEOUT_MS,
    redisKeyPrefix: env.REDIS_KEY_PREFIX
  }),
  pathCheck: env.PATH_CHECK,
  publicHosts: unset(list('PUBLIC_HOSTS entries, lower case.')),
  inspect: Type.Object({
    rulesFile: unset(env.INSPECT_RULES_FILE),
    mode: env.INSPECT_MODE,
    detectRules: list('INSPECT_DETECT_RULES entries, each once.'),
    verdictCacheSize: env.INSPECT_CACHE_SIZE,
    timeoutMs: env.INSPECT_TIMEOUT_MS
  }),
  ipFilter: Type.Object({
    allow: list('IP_ALLOW entries.'),
    deny: list('IP_DENY entries.')
  }),
  admin: Type.Object({
    port: unset(env.ADMIN_PORT),
    host: env.ADMIN_HOST,
    instance: unset(env.INSTANCE_ID)
  }),
  workers: Type.Integer({ minimum: 1, description: 'WORKERS as a count (`auto`: one per core); 1 = no cluster.' }),
  tls: unset(Type.Object({
    certFile: Type.String({ description: 'TLS_CERT_FILE.' }),
    keyFile: Type.String({ description: 'TLS_KEY_FILE.' }),
    http2: env.HTTP2,
    clientCaFile: unset(Type.String({ description: 'TLS_CLIENT_CA_FILE.' })),
    clientCrlFile: unset(Type.String({ description: 'TLS_CLIENT_CRL_FILE.' })),
    clientCertMode: unset(Type.Union(literals(CLIENT_CERT_MODES), { description: 'TLS_CLIENT_CERT_MODE (default request) when TLS_CLIENT_CA_FILE is set.' }))
  })),
  otel: env.OTEL_ENABLED,
  upstreamTls: Type.Object({
    ca: unset(Type.String({ description: 'The PEM of UPSTREAM_CA_FILE.' })),
    insecure: env.UPSTREAM_TLS_INSECURE
  })
})

/** The typed, frozen gateway configuration. */
export type GatewayConfig = ReadonlyDeep<Static<typeof GatewayConfigSchema>>

/** One consumer and its (plain) API key as loaded; the auth plugin hashes it at registration. */
export type ApiKeyEntry = GatewayConfig['auth']['apiKeys'][number]
