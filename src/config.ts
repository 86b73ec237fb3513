/**
 * Environment -> one validated, frozen, typed gateway configuration.
 *
 * Plugins never read `process.env`; they receive the slices of this object as options.
 * Errors name the variable (GW_CONFIG_INVALID). With NODE_ENV=production there are no demo
 * defaults and the demo credentials are refused.
 */
import { statSync } from 'node:fs'
import { isIP } from 'node:net'
import { availableParallelism } from 'node:os'
import { createSecureContext } from 'node:tls'
import { Type, type Static } from '@sinclair/typebox'
import envSchema from 'env-schema'
import { HOST_PORT_PATTERN, windowProblem } from '../plugins/rate-limit/schema.js'
import { stripNameProblem } from '../plugins/proxy/client-headers.js'
import { unknownVariableWarnings } from './env-names.js'
import { ConfigError } from '../lib/errors.js'
import { readText } from '../lib/files.js'
import { PUBLISHED_PLACEHOLDERS, SECRETS_COMMAND, weakSecretReason } from './secrets.js'

/** Credentials used only when NODE_ENV is not production, so `npm start` works out of the box. */
export const DEMO_JWT_SECRET = 'portcullis-demo-secret-change-me-0123456789abcdef'
export const DEMO_API_KEY = 'demo-key-portcullis-0123456789'
export const DEMO_CONSUMER = 'demo'
export const DEMO_UPSTREAM_DEFAULT_PORT = 8081

/** Every environment variable the gateway reads, with its type, range, default and description. */
export const EnvSchema = Type.Object({
  NODE_ENV: Type.String({ default: 'development', description: '`production` disables every demo default.' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: 'Public listen port.' }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Public listen address (the container sets 0.0.0.0).' }),
  ROUTES_DIR: Type.Optional(Type.String({ minLength: 1, description: 'Folder of route modules (default: the bundled routes/).' })),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info', description: 'pino level.' }),
  LOG_BUFFER_BYTES: Type.Integer({ minimum: 0, maximum: 16_384, default: 4096, description: 'Log lines gathered per write to stdout (0 = one write per line); flushed at least every second and on exit.' }),
  BODY_LIMIT: Type.Integer({ minimum: 1, maximum: 1024 * 1024 * 1024, default: 1024 * 1024, description: 'Request body bytes, proxied bodies included.' }),
  RESPONSE_BUFFER_BYTES: Type.Integer({ minimum: 0, maximum: 8 * 1024 * 1024, default: 16_384, description: 'Upstream responses declaring at most this many bytes are read whole and sent in one write; larger ones stream (0 = stream all).' }),
  TRUST_PROXY: Type.Optional(Type.String({ description: 'Comma-separated proxy IPs/CIDRs whose x-forwarded-* headers are trusted.' })),
  PROXY_PROTOCOL: Type.Boolean({ default: false, description: 'Connections from TRUST_PROXY peers open with a PROXY protocol v1/v2 header announcing the client address (required from them; others connect directly).' }),
  DRAIN_DELAY_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 0, description: 'On SIGTERM, keep accepting this long while /readyz answers 503, so balancers that poll it stop sending first.' }),
  STRIP_REQUEST_HEADERS: Type.String({ default: '', description: 'Comma-separated client request headers never forwarded upstream, besides the built-in identity/IP list (names, or prefixes ending in `*`).' }),
  DRAIN_TIMEOUT_MS: Type.Integer({ minimum: 0, maximum: 600_000, default: 10_000, description: 'Longest wait for in-flight requests on SIGTERM.' }),
  SEND_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 3_600_000, default: 60_000, description: 'A client that reads nothing of a streamed response for this long loses it (the upstream request ends; nginx send_timeout).' }),
  REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 3_600_000, default: 60_000, description: 'Whole client request (headers and body) deadline.' }),
  HEADERS_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 10_000, description: 'Deadline for the client to send all request headers (slowloris).' }),
  KEEP_ALIVE_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 10_000, description: 'Idle keep-alive connection lifetime.' }),
  DEMO_UPSTREAM_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: DEMO_UPSTREAM_DEFAULT_PORT, description: 'Port of the built-in demo upstream (development only); when another program holds it, the demo upstream and the routes pointing at it move to a free port.' }),
  JWT_SECRET: Type.Optional(Type.String({ minLength: 1, description: 'HMAC secret for HS256/384/512 tokens (32+ bytes).' })),
  JWT_PUBLIC_KEY: Type.Optional(Type.String({ minLength: 1, description: 'PEM public key (RS/PS/ES/EdDSA), or a path to one.' })),
  JWKS_URL: Type.Optional(Type.String({ pattern: '^https?://', description: 'Remote JWKS endpoint.' })),
  JWT_ISSUER: Type.Optional(Type.String({ minLength: 1, description: 'Required `iss`.' })),
  JWT_AUDIENCE: Type.Optional(Type.String({ minLength: 1, description: 'Accepted `aud` values, comma separated.' })),
  JWT_CLOCK_SKEW_S: Type.Integer({ minimum: 0, maximum: 300, default: 30, description: 'Tolerance for exp/nbf/iat.' }),
  JWT_MAX_LIFETIME_S: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'Reject tokens whose exp - iat exceeds this.' })),
  API_KEYS: Type.Optional(Type.String({ description: '`consumer:key` pairs, comma separated.' })),
  API_KEYS_FILE: Type.Optional(Type.String({ minLength: 1, description: 'File with one `consumer:key` per line.' })),
  RATE_LIMIT_MAX: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, default: 100, description: 'Default per-route limit per window.' }),
  RATE_LIMIT_WINDOW: Type.String({ minLength: 1, default: '1 minute', description: 'Default window (e.g. `1 minute`, `30s`, `60000`).' }),
  IP_RATE_LIMIT_MAX: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, default: 1000, description: 'Per-client-IP limit applied before authentication.' }),
  IP_RATE_LIMIT_WINDOW: Type.String({ minLength: 1, default: '1 minute', description: 'Window of the per-IP limit.' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'Redis for shared rate-limit state.' })),
  REDIS_SENTINELS: Type.Optional(Type.String({ minLength: 1, description: 'Redis Sentinel addresses, `host:port` comma separated, instead of REDIS_URL: the counters live on the primary the sentinels name for REDIS_SENTINEL_NAME, followed through failovers.' })),
  REDIS_SENTINEL_NAME: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]{1,100}$', description: 'The primary group the sentinels monitor (the name in their `sentinel monitor <name> …`); needed with REDIS_SENTINELS.' })),
  REDIS_SENTINEL_PASSWORD_FILE: Type.Optional(Type.String({ minLength: 1, description: 'File holding the password of the sentinels themselves (their `requirepass`); with REDIS_SENTINELS.' })),
  REDIS_CLUSTER_NODES: Type.Optional(Type.String({ minLength: 1, description: 'Redis Cluster nodes, `host:port` comma separated (a few suffice; the rest are discovered), instead of REDIS_URL.' })),
  REDIS_PASSWORD_FILE: Type.Optional(Type.String({ minLength: 1, description: 'File holding the password of the Redis servers found through REDIS_SENTINELS or REDIS_CLUSTER_NODES (REDIS_URL carries its own).' })),
  REDIS_FAILURE_MODE: Type.Union([Type.Literal('closed'), Type.Literal('open')], { default: 'closed', description: 'With Redis unreachable: `closed` answers 503, `open` admits.' }),
  REDIS_KEY_PREFIX: Type.String({ pattern: '^[A-Za-z0-9:._-]{1,100}$', default: 'portcullis:rl:', description: 'Prefix of every rate-limit key in Redis (gateway groups sharing one Redis use different prefixes).' }),
  REDIS_TIMEOUT_MS: Type.Integer({ minimum: 10, maximum: 10_000, default: 200, description: 'Bound on one Redis command.' }),
  PUBLIC_HOSTS: Type.Optional(Type.String({ description: 'Host names clients may address, comma separated (`api.example.com`, `*.example.com` for its subdomains; any port). A proxied request naming another `Host` or `:authority` gets 400 and is not forwarded. Unset = any well-formed host, which goes upstream as `x-forwarded-host`.' })),
  PATH_CHECK: Type.Union([Type.Literal('strict'), Type.Literal('literal')], { default: 'strict', description: '`strict` refuses paths that case-folding or path-normalising backends (IIS, Tomcat, Spring, Express) read as another route; `literal` routes the literal path only.' }),
  INSPECT_RULES_FILE: Type.Optional(Type.String({ minLength: 1, description: 'Additional ruleset (libddwaf JSON) loaded beside the built-in one.' })),
  INSPECT_DETECT_RULES: Type.Optional(Type.String({ description: 'Rule ids in detect mode on every inspected route, comma separated: logged and counted, never blocking (shadow a rule before enforcing it).' })),
  INSPECT_MODE: Type.Union([Type.Literal('block'), Type.Literal('detect')], { default: 'block', description: 'Default inspection mode for routes that do not set one.' }),
  INSPECT_TIMEOUT_MS: Type.Integer({ minimum: 1, maximum: 10_000, default: 50, description: 'Engine time budget per inspection; a request whose inspection runs past it is refused in block mode (fail closed) and logged in detect mode.' }),
  INSPECT_CACHE_SIZE: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 10_000, description: 'Clean values remembered per generation so repeated benign values skip the engine (0 = off).' }),
  IP_ALLOW: Type.Optional(Type.String({ description: 'Gateway-wide allow list of IPs/CIDRs (others get 403).' })),
  IP_DENY: Type.Optional(Type.String({ description: 'Gateway-wide deny list of IPs/CIDRs.' })),
  ADMIN_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'Admin listener (metrics); unset = off.' })),
  ADMIN_HOST: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Admin listen address.' }),
  INSTANCE_ID: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,128}$', description: 'The `instance` label on every metric; unset = `<hostname>-<pid>` of each process.' })),
  TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1, description: 'PEM certificate chain: serve HTTPS.' })),
  TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1, description: 'PEM private key for TLS_CERT_FILE.' })),
  HTTP2: Type.Boolean({ default: false, description: 'Serve HTTP/2 (with HTTP/1.1 fallback) when TLS is on.' }),
  UPSTREAM_CA_FILE: Type.Optional(Type.String({ minLength: 1, description: 'PEM CA bundle trusted (besides the system CAs) for https upstreams.' })),
  UPSTREAM_TLS_INSECURE: Type.Boolean({ default: false, description: 'Skip certificate verification of https upstreams (never in production).' }),
  OTEL_ENABLED: Type.Boolean({ default: false, description: 'Switch on OpenTelemetry tracing.' }),
  WORKERS: Type.String({ pattern: '^(?:auto|[1-9][0-9]{0,2})$', default: '1', description: 'Gateway processes sharing the port (node:cluster): a count or `auto` (one per core). More than one needs REDIS_URL in production.' })
})

export type GatewayEnv = Static<typeof EnvSchema>

/** Every variable the gateway itself reads. */
export const GATEWAY_VARIABLES: readonly string[] = Object.freeze(Object.keys(EnvSchema.properties))

/**
 * Warnings about variables in `env` that look like the gateway's but are not read by it (typos);
 * variables read by route modules through `upstreamFromEnv()` are not warned about.
 */
export function environmentWarnings (env: NodeJS.ProcessEnv = process.env): string[] {
  return unknownVariableWarnings(env, GATEWAY_VARIABLES, routeVariables)
}

/** The allowed values of each enumerated variable (its schema is a union of literals). */
const CHOICES: Readonly<Record<string, readonly unknown[]>> = Object.fromEntries(
  Object.entries(EnvSchema.properties).flatMap(([name, schema]) => {
    const anyOf = (schema as { anyOf?: Array<{ const?: unknown }> }).anyOf
    return Array.isArray(anyOf) ? [[name, anyOf.map((s) => s.const)]] : []
  })
)

/** Left empty in `.env.example` for `npm run secrets` to fill: an empty value means unset. */
const EMPTY_MEANS_UNSET: readonly string[] = ['JWT_SECRET', 'API_KEYS']

/** Production refuses these exact values: anyone can read them. */
const PUBLISHED_SECRETS: ReadonlySet<string> = new Set([DEMO_JWT_SECRET, DEMO_API_KEY, ...PUBLISHED_PLACEHOLDERS])

/** Production: one problem per credential that is a placeholder, published or not random. */
function placeholderProblems (jwtSecret: string | undefined, keys: ReadonlyArray<readonly [string, ApiKeyEntry]>, redisUrl: string | undefined, problems: string[]): void {
  const fix = `refused in production; generate real ones with: ${SECRETS_COMMAND}`
  if (jwtSecret === DEMO_JWT_SECRET) problems.push(`JWT_SECRET: the demo secret is refused in production; generate a real one with: ${SECRETS_COMMAND}`)
  else if (jwtSecret !== undefined) {
    const reason = weakSecretReason(jwtSecret, PUBLISHED_SECRETS)
    if (reason !== undefined) problems.push(`JWT_SECRET: ${reason}, ${fix}`)
  }
  for (const [source, k] of keys) {
    if (k.key === DEMO_API_KEY) problems.push(`${source}: the demo key is refused in production (consumer "${k.consumer}"); generate a real one with: ${SECRETS_COMMAND}`)
    else {
      const reason = weakSecretReason(k.key, PUBLISHED_SECRETS)
      if (reason !== undefined) problems.push(`${source}: the key of consumer "${k.consumer}" ${reason}, ${fix}`)
    }
  }
  if (redisUrl !== undefined) {
    let password = ''
    try {
      password = decodeURIComponent(new URL(redisUrl).password)
    } catch {}
    const reason = password === '' ? undefined : weakSecretReason(password, PUBLISHED_SECRETS)
    if (reason !== undefined) problems.push(`REDIS_URL: its password ${reason}; refused in production (set the Redis server's real password)`)
  }
}

/** What each pattern-checked variable must look like, in words (never the raw pattern). */
const PATTERN_WORDS: Readonly<Record<string, string>> = {
  JWKS_URL: 'must be an http:// or https:// URL (the identity provider\'s JWKS endpoint)',
  REDIS_URL: 'must be a redis:// or rediss:// URL (for example redis://redis:6379)',
  REDIS_KEY_PREFIX: 'must be 1 to 100 letters, digits or :._-',
  REDIS_SENTINEL_NAME: 'must be 1 to 100 letters, digits or ._- (the name in the sentinels\' `sentinel monitor <name> …`)',
  WORKERS: 'must be "auto" (one per core) or a count from 1 to 999'
}

interface SchemaError { readonly instancePath: string, readonly keyword?: string, readonly message?: string }

/** One problem per offending variable, named as it is set (`LOG_LEVEL: must be one of ...`). */
function envProblems (err: unknown): string[] {
  const errors = (err as { errors?: unknown } | null)?.errors
  if (!Array.isArray(errors)) return [err instanceof Error ? err.message : String(err)]
  const byName = new Map<string, string>()
  for (const e of errors as SchemaError[]) {
    const name = e.instancePath.replace(/^\//, '')
    if (byName.has(name)) continue
    const choices = CHOICES[name]
    const words = PATTERN_WORDS[name]
    const message = choices !== undefined ? `must be one of ${choices.join(', ')}` : words !== undefined && e.keyword === 'pattern' ? words : e.message ?? 'is invalid'
    byName.set(name, `${name === '' ? 'environment' : name}: ${message}`)
  }
  return [...byName.values()]
}

/** A problem with a REDIS_URL (never echoing it: it may hold a password), or undefined. */
function redisUrlProblem (value: string): string | undefined {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return 'not a valid URL (redis[s]://[user:password@]host[:port][/db])'
  }
  if (url.hostname === '') return 'names no host'
  if (url.pathname !== '' && url.pathname !== '/' && !/^\/\d{1,5}$/.test(url.pathname)) return 'its path must be a database number'
  return undefined
}

/** Sentinel or Cluster connection settings, read from the environment. */
interface RedisHaSettings {
  readonly redisSentinels: readonly string[] | undefined
  readonly redisSentinelName: string | undefined
  readonly redisSentinelPassword: string | undefined
  readonly redisClusterNodes: readonly string[] | undefined
  readonly redisPassword: string | undefined
}

const HOST_PORT = new RegExp(HOST_PORT_PATTERN)

/**
 * REDIS_SENTINELS (+ REDIS_SENTINEL_NAME, REDIS_SENTINEL_PASSWORD_FILE), REDIS_CLUSTER_NODES and
 * REDIS_PASSWORD_FILE, checked against each other and REDIS_URL (at most one way to Redis).
 * Password files lose their trailing line break; their content is never echoed.
 */
function redisHaSettings (e: GatewayEnv, production: boolean, problems: string[]): RedisHaSettings {
  const sentinels = e.REDIS_SENTINELS === undefined ? undefined : list(e.REDIS_SENTINELS)
  const clusterNodes = e.REDIS_CLUSTER_NODES === undefined ? undefined : list(e.REDIS_CLUSTER_NODES)
  const named = ([['REDIS_URL', e.REDIS_URL], ['REDIS_SENTINELS', sentinels], ['REDIS_CLUSTER_NODES', clusterNodes]] as const).filter(([, v]) => v !== undefined).map(([n]) => n)
  if (named.length > 1) problems.push(`${named.join(' and ')}: set only one (one server, a Sentinel group or a Cluster)`)
  for (const [name, nodes] of [['REDIS_SENTINELS', sentinels], ['REDIS_CLUSTER_NODES', clusterNodes]] as const) {
    if (nodes === undefined) continue
    if (nodes.length === 0) problems.push(`${name}: lists no host:port`)
    for (const node of nodes) {
      const port = Number(node.slice(node.lastIndexOf(':') + 1))
      if (!HOST_PORT.test(node) || port < 1 || port > 65535) problems.push(`${name}: "${node}" is not host:port (IPv6 as [::1]:26379)`)
    }
  }
  if (sentinels !== undefined && e.REDIS_SENTINEL_NAME === undefined) problems.push('REDIS_SENTINEL_NAME: needed with REDIS_SENTINELS (the name in the sentinels\' `sentinel monitor <name> …`)')
  if (sentinels === undefined && e.REDIS_SENTINEL_NAME !== undefined) problems.push('REDIS_SENTINEL_NAME: only with REDIS_SENTINELS')
  if (sentinels === undefined && e.REDIS_SENTINEL_PASSWORD_FILE !== undefined) problems.push('REDIS_SENTINEL_PASSWORD_FILE: only with REDIS_SENTINELS')
  if (e.REDIS_PASSWORD_FILE !== undefined && sentinels === undefined && clusterNodes === undefined) problems.push('REDIS_PASSWORD_FILE: only with REDIS_SENTINELS or REDIS_CLUSTER_NODES (REDIS_URL carries its own password)')
  const secret = (name: string, file: string | undefined): string | undefined => {
    if (file === undefined) return undefined
    let text: string
    try {
      text = readText(file).replace(/[\r\n]+$/, '')
    } catch {
      problems.push(`${name}: cannot be read`)
      return undefined
    }
    if (text === '' || /[\r\n]/.test(text)) problems.push(`${name}: must hold the password on one line`)
    const reason = production ? weakSecretReason(text, PUBLISHED_SECRETS) : undefined
    if (reason !== undefined) problems.push(`${name}: the password ${reason}; refused in production (set the Redis server's real password)`)
    return text
  }
  return {
    redisSentinels: sentinels,
    redisSentinelName: sentinels === undefined ? undefined : e.REDIS_SENTINEL_NAME,
    redisSentinelPassword: secret('REDIS_SENTINEL_PASSWORD_FILE', e.REDIS_SENTINEL_PASSWORD_FILE),
    redisClusterNodes: clusterNodes,
    redisPassword: secret('REDIS_PASSWORD_FILE', e.REDIS_PASSWORD_FILE)
  }
}

/** A PUBLIC_HOSTS entry: a DNS name or IPv4 address, `*.` and a name, or a bracketed IPv6 address. */
const PUBLIC_HOST = /^(?:\*\.)?[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$|^\[[0-9a-f:.]+\]$/
const WILDCARD_HOSTS: ReadonlySet<string> = new Set(['0.0.0.0', '::', '[::]'])

/** Whether two listen hosts can collide on one port (equal, or either is a wildcard address). */
function sharesAddress (a: string, b: string): boolean {
  return a === b || WILDCARD_HOSTS.has(a) || WILDCARD_HOSTS.has(b)
}

/** TLS_CERT_FILE and TLS_KEY_FILE: both readable PEM that form one usable certificate and key. */
function tlsProblems (certFile: string, keyFile: string, problems: string[]): void {
  const read = (name: string, file: string): string | undefined => {
    try {
      return readText(file)
    } catch {
      problems.push(`${name}: cannot be read`)
      return undefined
    }
  }
  const cert = read('TLS_CERT_FILE', certFile)
  const key = read('TLS_KEY_FILE', keyFile)
  if (cert === undefined || key === undefined) return
  if (!cert.includes('-----BEGIN CERTIFICATE-----')) problems.push('TLS_CERT_FILE: no PEM certificate in the file')
  else if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) problems.push('TLS_KEY_FILE: no PEM private key in the file')
  else {
    try {
      createSecureContext({ cert, key })
    } catch {
      problems.push('TLS_CERT_FILE and TLS_KEY_FILE: not a usable certificate and private key pair (does the key match the certificate?)')
    }
  }
}

/** One consumer and its (plain) API key as loaded; the auth plugin hashes it at registration. */
export interface ApiKeyEntry {
  readonly consumer: string
  readonly key: string
}

/** The typed, frozen gateway configuration. */
export interface GatewayConfig {
  readonly production: boolean
  readonly port: number
  readonly host: string
  readonly routesDir: string | undefined
  readonly logLevel: string
  /** Bytes of log lines gathered per write to stdout by the process entry (0 = unbuffered). */
  readonly logBufferBytes: number
  readonly bodyLimit: number
  /** Upstream responses up to this declared size are buffered and sent in one write (0 = stream all). */
  readonly responseBufferBytes: number
  /** SEND_TIMEOUT_MS: how long a client may hold a streamed response back without reading. */
  readonly sendTimeoutMs: number
  readonly trustProxy: readonly string[]
  /** Connections from trustProxy peers carry a PROXY protocol header (PROXY_PROTOCOL). */
  readonly proxyProtocol: boolean
  /** SIGTERM: accepting continues this long with /readyz at 503 before the listener closes. */
  readonly drainDelayMs: number
  /** Client request headers stripped besides the built-in list (STRIP_REQUEST_HEADERS). */
  readonly stripRequestHeaders: readonly string[]
  readonly drainTimeoutMs: number
  readonly requestTimeoutMs: number
  readonly headersTimeoutMs: number
  readonly keepAliveTimeoutMs: number
  readonly demoUpstreamPort: number | undefined
  readonly auth: {
    readonly jwtSecret: string | undefined
    readonly jwtPublicKey: string | undefined
    readonly jwksUrl: string | undefined
    readonly issuer: string | undefined
    readonly audience: readonly string[] | undefined
    readonly clockSkewS: number
    readonly maxLifetimeS: number | undefined
    readonly apiKeys: readonly ApiKeyEntry[]
  }
  readonly rateLimit: {
    readonly max: number
    readonly timeWindow: string
    readonly ipMax: number
    readonly ipTimeWindow: string
    readonly redisUrl: string | undefined
    /** REDIS_SENTINELS (`host:port` each); with redisSentinelName instead of redisUrl. */
    readonly redisSentinels: readonly string[] | undefined
    readonly redisSentinelName: string | undefined
    /** REDIS_SENTINEL_PASSWORD_FILE's content. */
    readonly redisSentinelPassword: string | undefined
    /** REDIS_CLUSTER_NODES (`host:port` each), instead of redisUrl. */
    readonly redisClusterNodes: readonly string[] | undefined
    /** REDIS_PASSWORD_FILE's content: the servers found through sentinels or cluster nodes. */
    readonly redisPassword: string | undefined
    readonly failureMode: 'open' | 'closed'
    readonly redisTimeoutMs: number
    readonly redisKeyPrefix: string
  }
  /** PATH_CHECK: how the request guard treats paths that backends read as another route. */
  readonly pathCheck: 'strict' | 'literal'
  /** PUBLIC_HOSTS: the host names clients may address (lower case; `*.` = subdomains); undefined = any. */
  readonly publicHosts: readonly string[] | undefined
  readonly inspect: {
    readonly rulesFile: string | undefined
    readonly mode: 'block' | 'detect'
    /** Rule ids in detect mode on every inspected route (INSPECT_DETECT_RULES). */
    readonly detectRules: readonly string[]
    readonly verdictCacheSize: number
    /** Engine time budget per inspection, ms (INSPECT_TIMEOUT_MS). */
    readonly timeoutMs: number
    readonly ipAllow: readonly string[]
    readonly ipDeny: readonly string[]
  }
  readonly admin: { readonly port: number | undefined, readonly host: string, readonly instance: string | undefined }
  /** Worker processes (WORKERS); 1 = no cluster. */
  readonly workers: number
  readonly tls: { readonly certFile: string, readonly keyFile: string, readonly http2: boolean } | undefined
  readonly otel: boolean
  readonly upstreamTls: { readonly ca: string | undefined, readonly insecure: boolean }
}

function list (value: string | undefined): string[] {
  if (value === undefined) return []
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '')
}

const CIDR = /^(.+?)(?:\/(\d{1,3}))?$/

/** Validates an IP or CIDR list entry; returns a problem or undefined. */
export function cidrProblem (entry: string): string | undefined {
  const m = CIDR.exec(entry)
  const ip = m?.[1] ?? ''
  const version = isIP(ip)
  if (version === 0) return `"${entry}" is not an IP address or CIDR`
  if (m?.[2] !== undefined) {
    const bits = Number(m[2])
    if (bits > (version === 4 ? 32 : 128)) return `"${entry}" has an invalid prefix length`
  }
  return undefined
}

/** Parses `consumer:key` pairs; reports problems without ever echoing a key. */
export function parseApiKeys (text: string, source: string, problems: string[]): ApiKeyEntry[] {
  const out: ApiKeyEntry[] = []
  const entries = text.split(/[,\n]/).map((s) => s.trim()).filter((s) => s !== '' && !s.startsWith('#'))
  entries.forEach((entry, i) => {
    const at = entry.indexOf(':')
    const consumer = at > 0 ? entry.slice(0, at).trim() : ''
    const key = at > 0 ? entry.slice(at + 1).trim() : ''
    if (!/^[A-Za-z0-9._@-]{1,128}$/.test(consumer)) {
      problems.push(`${source}: entry ${i + 1} needs a consumer name of letters, digits, '._@-' before ':'`)
    } else if (key.length < 16 || key.length > 512 || !/^[\x21-\x7e]+$/.test(key)) {
      problems.push(`${source}: the key of consumer "${consumer}" must be 16-512 printable characters without spaces (generate one with: ${SECRETS_COMMAND})`)
    } else {
      out.push({ consumer, key })
    }
  })
  return out
}

/**
 * Loads and validates the configuration from an environment object (default `process.env`).
 * Throws ConfigError naming every offending variable.
 */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  let e: GatewayEnv
  try {
    const data = { ...env }
    for (const name of EMPTY_MEANS_UNSET) if (data[name] === '') delete data[name]
    e = envSchema<GatewayEnv>({ schema: EnvSchema, data, env: false, dotenv: false })
  } catch (err) {
    throw new ConfigError('invalid environment', envProblems(err), '')
  }
  const production = e.NODE_ENV === 'production'
  const problems: string[] = []

  const trustProxy = list(e.TRUST_PROXY)
  for (const t of trustProxy) {
    const p = cidrProblem(t)
    if (p !== undefined) problems.push(`TRUST_PROXY: ${p} (list proxy addresses; "all" and hop counts are not accepted)`)
  }
  if (e.PROXY_PROTOCOL && trustProxy.length === 0) problems.push('PROXY_PROTOCOL: needs TRUST_PROXY (the balancer addresses allowed to announce a client address)')
  const stripRequestHeaders = list(e.STRIP_REQUEST_HEADERS)
  for (const name of stripRequestHeaders) {
    const p = stripNameProblem(name)
    if (p !== undefined) problems.push(`STRIP_REQUEST_HEADERS: ${p}`)
  }
  const publicHosts = e.PUBLIC_HOSTS === undefined ? undefined : list(e.PUBLIC_HOSTS).map((h) => h.toLowerCase())
  if (publicHosts !== undefined) {
    if (publicHosts.length === 0) problems.push('PUBLIC_HOSTS: lists no host name')
    for (const h of publicHosts) if (!PUBLIC_HOST.test(h)) problems.push(`PUBLIC_HOSTS: "${h}" is not a host name, *.name or [IPv6] (no scheme, port or path)`)
  }
  const ipAllow = list(e.IP_ALLOW)
  const ipDeny = list(e.IP_DENY)
  for (const [name, entries] of [['IP_ALLOW', ipAllow], ['IP_DENY', ipDeny]] as const) {
    for (const t of entries) {
      const p = cidrProblem(t)
      if (p !== undefined) problems.push(`${name}: ${p}`)
    }
  }

  let jwtSecret = e.JWT_SECRET
  let apiKeys: ApiKeyEntry[] = []
  const keySources: Array<readonly [string, ApiKeyEntry]> = []
  if (e.API_KEYS !== undefined) apiKeys = apiKeys.concat(parseApiKeys(e.API_KEYS, 'API_KEYS', problems))
  for (const k of apiKeys) keySources.push(['API_KEYS', k])
  if (e.API_KEYS_FILE !== undefined) {
    try {
      const fromFile = parseApiKeys(readText(e.API_KEYS_FILE), 'API_KEYS_FILE', problems)
      for (const k of fromFile) keySources.push(['API_KEYS_FILE', k])
      apiKeys = apiKeys.concat(fromFile)
    } catch {
      problems.push('API_KEYS_FILE: cannot be read')
    }
  }
  const seenKeys = new Set<string>()
  for (const k of apiKeys) {
    if (seenKeys.has(k.key)) problems.push(`API_KEYS: consumer "${k.consumer}" reuses another consumer's key`)
    seenKeys.add(k.key)
  }

  let jwtPublicKey = e.JWT_PUBLIC_KEY
  if (jwtPublicKey !== undefined && !jwtPublicKey.includes('-----BEGIN')) {
    try {
      jwtPublicKey = readText(jwtPublicKey)
    } catch {
      problems.push('JWT_PUBLIC_KEY: neither a PEM key nor a readable file')
    }
  }
  if (jwtSecret !== undefined && Buffer.byteLength(jwtSecret) < 32) problems.push('JWT_SECRET: must be at least 32 bytes')
  const jwtSources = [jwtSecret, jwtPublicKey, e.JWKS_URL].filter((s) => s !== undefined).length
  if (jwtSources > 1) problems.push('JWT_SECRET, JWT_PUBLIC_KEY and JWKS_URL: set only one key source')

  if (production) {
    placeholderProblems(jwtSecret, keySources, e.REDIS_URL, problems)
    if (jwtSources === 0 && apiKeys.length === 0) {
      problems.push(`JWT_SECRET, JWT_PUBLIC_KEY, JWKS_URL or API_KEYS: production needs at least one credential source; generate a JWT secret and an API key with: ${SECRETS_COMMAND}`)
    }
  } else if (jwtSources === 0 && apiKeys.length === 0) {
    jwtSecret = DEMO_JWT_SECRET
    apiKeys = [{ consumer: DEMO_CONSUMER, key: DEMO_API_KEY }]
  }

  if ((e.TLS_CERT_FILE === undefined) !== (e.TLS_KEY_FILE === undefined)) {
    problems.push('TLS_CERT_FILE and TLS_KEY_FILE: set both or neither')
  } else if (e.TLS_CERT_FILE !== undefined && e.TLS_KEY_FILE !== undefined) {
    tlsProblems(e.TLS_CERT_FILE, e.TLS_KEY_FILE, problems)
  }

  for (const [name, window] of [['RATE_LIMIT_WINDOW', e.RATE_LIMIT_WINDOW], ['IP_RATE_LIMIT_WINDOW', e.IP_RATE_LIMIT_WINDOW]] as const) {
    const p = windowProblem(name, window)
    if (p !== undefined) problems.push(p.includes('such as') ? p : `${p} (for example "1 minute", "30s" or "60000")`)
  }
  if (e.REDIS_URL !== undefined) {
    const p = redisUrlProblem(e.REDIS_URL)
    if (p !== undefined) problems.push(`REDIS_URL: ${p}`)
  }
  const redisHa = redisHaSettings(e, production, problems)
  if (e.ADMIN_PORT !== undefined && e.ADMIN_PORT !== 0 && e.ADMIN_PORT === e.PORT && sharesAddress(e.HOST, e.ADMIN_HOST)) {
    problems.push('ADMIN_PORT: the same port as PORT on the same address (the admin listener needs its own)')
  }
  if (e.ROUTES_DIR !== undefined) {
    let dir = false
    try {
      dir = statSync(e.ROUTES_DIR).isDirectory()
    } catch {}
    if (!dir) problems.push('ROUTES_DIR: not a readable directory')
  }
  if (e.HTTP2 && e.TLS_CERT_FILE === undefined) problems.push('HTTP2: needs TLS_CERT_FILE and TLS_KEY_FILE')

  let upstreamCa: string | undefined
  if (e.UPSTREAM_CA_FILE !== undefined) {
    try {
      upstreamCa = readText(e.UPSTREAM_CA_FILE)
      if (!upstreamCa.includes('-----BEGIN CERTIFICATE-----')) problems.push('UPSTREAM_CA_FILE: no PEM certificate in the file')
    } catch {
      problems.push('UPSTREAM_CA_FILE: cannot be read')
    }
  }
  if (production && e.UPSTREAM_TLS_INSECURE) problems.push('UPSTREAM_TLS_INSECURE: not allowed in production (use UPSTREAM_CA_FILE)')

  const workers = e.WORKERS === 'auto' ? availableParallelism() : Number(e.WORKERS)
  // Per-process rate-limit state would multiply every limit by the number of workers.
  if (production && workers > 1 && e.REDIS_URL === undefined && redisHa.redisSentinels === undefined && redisHa.redisClusterNodes === undefined) {
    problems.push('WORKERS: more than one worker process needs REDIS_URL in production (or REDIS_SENTINELS or REDIS_CLUSTER_NODES: rate limits must be shared)')
  }

  if (problems.length > 0) throw new ConfigError('invalid environment', problems, '')

  const config: GatewayConfig = {
    production,
    port: e.PORT,
    host: e.HOST,
    routesDir: e.ROUTES_DIR,
    logLevel: e.LOG_LEVEL,
    logBufferBytes: e.LOG_BUFFER_BYTES,
    bodyLimit: e.BODY_LIMIT,
    responseBufferBytes: e.RESPONSE_BUFFER_BYTES,
    sendTimeoutMs: e.SEND_TIMEOUT_MS,
    trustProxy,
    proxyProtocol: e.PROXY_PROTOCOL,
    drainDelayMs: e.DRAIN_DELAY_MS,
    stripRequestHeaders,
    drainTimeoutMs: e.DRAIN_TIMEOUT_MS,
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    headersTimeoutMs: e.HEADERS_TIMEOUT_MS,
    keepAliveTimeoutMs: e.KEEP_ALIVE_TIMEOUT_MS,
    demoUpstreamPort: production ? undefined : e.DEMO_UPSTREAM_PORT,
    auth: {
      jwtSecret,
      jwtPublicKey,
      jwksUrl: e.JWKS_URL,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE === undefined ? undefined : list(e.JWT_AUDIENCE),
      clockSkewS: e.JWT_CLOCK_SKEW_S,
      maxLifetimeS: e.JWT_MAX_LIFETIME_S,
      apiKeys
    },
    rateLimit: {
      max: e.RATE_LIMIT_MAX,
      timeWindow: e.RATE_LIMIT_WINDOW,
      ipMax: e.IP_RATE_LIMIT_MAX,
      ipTimeWindow: e.IP_RATE_LIMIT_WINDOW,
      redisUrl: e.REDIS_URL,
      ...redisHa,
      failureMode: e.REDIS_FAILURE_MODE,
      redisTimeoutMs: e.REDIS_TIMEOUT_MS,
      redisKeyPrefix: e.REDIS_KEY_PREFIX
    },
    pathCheck: e.PATH_CHECK,
    publicHosts,
    inspect: { rulesFile: e.INSPECT_RULES_FILE, mode: e.INSPECT_MODE, detectRules: [...new Set(list(e.INSPECT_DETECT_RULES))], verdictCacheSize: e.INSPECT_CACHE_SIZE, timeoutMs: e.INSPECT_TIMEOUT_MS, ipAllow, ipDeny },
    admin: { port: e.ADMIN_PORT, host: e.ADMIN_HOST, instance: e.INSTANCE_ID },
    workers,
    tls: e.TLS_CERT_FILE !== undefined && e.TLS_KEY_FILE !== undefined
      ? { certFile: e.TLS_CERT_FILE, keyFile: e.TLS_KEY_FILE, http2: e.HTTP2 }
      : undefined,
    otel: e.OTEL_ENABLED,
    upstreamTls: { ca: upstreamCa, insecure: e.UPSTREAM_TLS_INSECURE }
  }
  return deepFreeze(config)
}

function deepFreeze<T> (o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o)) deepFreeze(v)
  }
  return o
}

/** Variables read by `upstreamFromEnv()` in this process (route settings, not typos of the gateway's). */
const routeVariables = new Set<string>()

/** The names route modules have read through `upstreamFromEnv()` so far. */
export function routeVariableNames (): ReadonlySet<string> {
  return routeVariables
}

/** Host of the stand-in upstream for a variable missing in production (RFC 6761: never resolves). */
const MISSING_HOST_SUFFIX = '.missing-upstream.invalid'

/**
 * The variable behind a stand-in upstream URL returned for a missing variable, or undefined.
 * `defineRoute()` refuses to register such a route; the route loader reports every one at once.
 */
export function missingUpstreamVariable (url: string): string | undefined {
  let host: string
  try {
    host = new URL(url).hostname
  } catch {
    return undefined
  }
  if (!host.endsWith(MISSING_HOST_SUFFIX)) return undefined
  return host.slice(0, -MISSING_HOST_SUFFIX.length).toUpperCase().replaceAll('-', '_').replaceAll('.', '-')
}

/**
 * For route modules: the upstream URL(s) from an environment variable. In development a missing
 * variable falls back to the built-in demo upstream. In production it gives a stand-in URL that
 * never resolves and that `defineRoute()` refuses to register: the gateway then stops at startup
 * naming every missing variable at once, with the route file that needs it.
 */
export function upstreamFromEnv (name: string, env: NodeJS.ProcessEnv = process.env): string | string[] {
  routeVariables.add(name)
  const value = env[name]
  if (value !== undefined && value.trim() !== '') {
    const urls = list(value)
    return urls.length === 1 ? urls[0] as string : urls
  }
  if (env.NODE_ENV === 'production') return `http://${name.toLowerCase().replaceAll('-', '.').replaceAll('_', '-')}${MISSING_HOST_SUFFIX}`
  if (demoUpstreamUrl !== undefined) return demoUpstreamUrl
  const port = env.DEMO_UPSTREAM_PORT ?? String(DEMO_UPSTREAM_DEFAULT_PORT)
  return `http://127.0.0.1:${port}`
}

let demoUpstreamUrl: string | undefined

/**
 * The address the built-in demo upstream really listens on, set by the process entry before the
 * route modules load (undefined: the DEMO_UPSTREAM_PORT address). When that port is taken by
 * another program the demo upstream moves to a free port, and the routes follow it instead of
 * sending requests to the other program.
 */
export function setDemoUpstreamUrl (url: string | undefined): void {
  demoUpstreamUrl = url
}
