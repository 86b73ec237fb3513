/**
 * Environment -> one validated, frozen, typed gateway configuration.
 *
 * The variables, their defaults and the shape of the result are defined once, in
 * src/config-schema.ts. Loading runs in steps: parse the environment through the schema (pure),
 * derive the settings and check the values (pure), read the files the variables name (API keys,
 * PEM keys and certificates, the routes folder), check the rules that span variables (production
 * refuses demo and placeholder credentials), then freeze. `checkConfig()` runs the steps and
 * returns every problem without throwing; `loadConfig()` throws them all at once
 * (GW_CONFIG_INVALID), each naming its variable.
 *
 * Plugins never read `process.env`; they receive the slices of this object as options.
 */
import { statSync } from 'node:fs'
import { isIP } from 'node:net'
import { availableParallelism } from 'node:os'
import { createSecureContext } from 'node:tls'
import envSchema from 'env-schema'
import { DEFAULT_MTLS_CONSUMER_FIELD, HEADER_NAME_PATTERN, JWT_SECRET_MIN_BYTES } from '../plugins/auth/schema.js'
import { fileProblemLine, parseApiKeyText } from '../plugins/auth/api-keys-file.js'
import { IP_LIST, parseIpEntry } from '../plugins/ip-filter/schema.js'
import { HOST_PORT_PATTERN, windowProblem } from '../plugins/rate-limit/schema.js'
import { stripNameProblem, trustedProxyProblem } from '../plugins/proxy/client-headers.js'
import { DEMO_UPSTREAM_DEFAULT_PORT, EMPTY_MEANS_UNSET, EnvSchema, type ApiKeyEntry, type GatewayConfig, type GatewayEnv } from './config-schema.js'
import { unknownVariableWarnings } from './env-names.js'
import { ConfigError } from '../lib/errors.js'
import { readText } from '../lib/files.js'
import { readClientCa } from './server-tls.js'
import { PUBLISHED_PLACEHOLDERS, SECRETS_COMMAND, weakSecretReason } from './secrets.js'

export { DEMO_UPSTREAM_DEFAULT_PORT, ENV_SECTIONS, EMPTY_MEANS_UNSET, EnvSchema, GatewayConfigSchema } from './config-schema.js'
export type { ApiKeyEntry, GatewayConfig, GatewayEnv } from './config-schema.js'

/** Credentials used only when NODE_ENV is not production, so `npm start` works out of the box. */
export const DEMO_JWT_SECRET = 'portcullis-demo-secret-change-me-0123456789abcdef'
export const DEMO_API_KEY = 'demo-key-portcullis-0123456789'
export const DEMO_CONSUMER = 'demo'

/** Every variable the gateway itself reads. */
export const GATEWAY_VARIABLES: readonly string[] = Object.freeze(Object.keys(EnvSchema.properties))

/** One configuration problem: the variable (or variables) it is about and what is wrong; never a secret. */
export interface ConfigProblem {
  readonly variable: string
  readonly message: string
}

/** What `checkConfig()` found. */
export interface ConfigCheck {
  /** The configuration `loadConfig()` would return; absent when there is any problem. */
  readonly config?: GatewayConfig
  /** Every problem at once; startup refuses the environment when there is one. */
  readonly problems: readonly ConfigProblem[]
  /** Variables that look like the gateway's but are not read by it (typos); never fatal. */
  readonly warnings: readonly ConfigProblem[]
}

/** `VARIABLE: message`, as startup prints it. */
export function problemLine (p: ConfigProblem): string {
  return `${p.variable}: ${p.message}`
}

/** The problems found so far, in order. */
class Problems {
  readonly list: ConfigProblem[] = []
  add (variable: string, message: string): void {
    this.list.push({ variable, message })
  }
}

/** `NAME: text` (as env-names.ts words its warnings) as a problem of NAME. */
function splitLine (line: string): ConfigProblem {
  const at = line.indexOf(': ')
  return at === -1 ? { variable: '', message: line } : { variable: line.slice(0, at), message: line.slice(at + 2) }
}

/**
 * Warnings about variables in `env` that look like the gateway's but are not read by it (typos);
 * variables read by route modules through `upstreamFromEnv()` are not warned about.
 */
export function environmentWarnings (env: NodeJS.ProcessEnv = process.env): string[] {
  return unknownVariableWarnings(env, GATEWAY_VARIABLES, routeVariables)
}

// ---------------------------------------------------------------------------------------------
// Step 1 (pure): the environment through EnvSchema.

/** The allowed values of each enumerated variable (its schema is a union of literals). */
const CHOICES: Readonly<Record<string, readonly unknown[]>> = Object.fromEntries(
  Object.entries(EnvSchema.properties).flatMap(([name, schema]) => {
    const anyOf = (schema as { anyOf?: Array<{ const?: unknown }> }).anyOf
    return Array.isArray(anyOf) ? [[name, anyOf.map((s) => s.const)]] : []
  })
)

/** What each pattern-checked variable must look like, in words (never the raw pattern). */
const PATTERN_WORDS: Readonly<Record<string, string>> = {
  JWKS_URL: 'must be an http:// or https:// URL (the identity provider\'s JWKS endpoint)',
  INTROSPECTION_URL: 'must be an http:// or https:// URL (the authorization server\'s token introspection endpoint)',
  FORWARD_AUTH_URL: 'must be an http:// or https:// URL (the external authorization service)',
  FORWARD_AUTH_CONSUMER_HEADER: 'must be a header name in lower case',
  REDIS_URL: 'must be a redis:// or rediss:// URL (for example redis://redis:6379)',
  REDIS_KEY_PREFIX: 'must be 1 to 100 letters, digits or :._-',
  INSTANCE_ID: 'must be 1 to 128 letters, digits or _.:-',
  REDIS_SENTINEL_NAME: 'must be 1 to 100 letters, digits or ._- (the name in the sentinels\' `sentinel monitor <name> …`)',
  WORKERS: 'must be "auto" (one per core) or a count from 1 to 999'
}

interface SchemaError { readonly instancePath: string, readonly keyword?: string, readonly message?: string }

/** One problem per offending variable, named as it is set (`LOG_LEVEL: must be one of ...`). */
function schemaProblems (err: unknown): ConfigProblem[] {
  const errors = (err as { errors?: unknown } | null)?.errors
  if (!Array.isArray(errors)) return [{ variable: 'environment', message: err instanceof Error ? err.message : String(err) }]
  const byName = new Map<string, ConfigProblem>()
  for (const e of errors as SchemaError[]) {
    const name = e.instancePath.replace(/^\//, '')
    if (byName.has(name)) continue
    const choices = CHOICES[name]
    const words = PATTERN_WORDS[name]
    const message = choices !== undefined ? `must be one of ${choices.join(', ')}` : words !== undefined && e.keyword === 'pattern' ? words : e.message ?? 'is invalid'
    byName.set(name, { variable: name === '' ? 'environment' : name, message })
  }
  return [...byName.values()]
}

/**
 * Step 1: the environment validated by EnvSchema, with its defaults applied and its numbers and
 * booleans coerced; or one problem per offending variable. Pure: reads nothing but `env`.
 */
export function parseEnv (env: NodeJS.ProcessEnv): { readonly env?: GatewayEnv, readonly problems: readonly ConfigProblem[] } {
  const data = { ...env }
  for (const name of EMPTY_MEANS_UNSET) if (data[name] === '') delete data[name]
  try {
    return { env: envSchema<GatewayEnv>({ schema: EnvSchema, data, env: false, dotenv: false }), problems: [] }
  } catch (err) {
    return { problems: schemaProblems(err) }
  }
}

// ---------------------------------------------------------------------------------------------
// Step 2 (pure): settings derived from the values, and the rules of each value.

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

/**
 * Parses API keys (`consumer:key [scopes=a,b] [expires=<RFC 3339>]`, the grammar of
 * plugins/auth/api-keys-file.ts); reports problems without ever echoing a key. A file's problems
 * name the file and the line; API_KEYS's name the entry (or the consumer).
 */
export function parseApiKeys (text: string, source: string, problems: ConfigProblem[], file?: string): ApiKeyEntry[] {
  const parsed = parseApiKeyText(text, ` (generate one with: ${SECRETS_COMMAND})`)
  for (const p of parsed.problems) {
    const message = file !== undefined ? fileProblemLine(file, p) : p.namesConsumer ? p.message : `entry ${p.entry}: ${p.message}`
    problems.push({ variable: source, message })
  }
  return parsed.entries
}

/**
 * Every API key the configuration names: API_KEYS (or the demo key), then API_KEYS_FILE as it
 * reads now (for tools such as `portcullis audit`; an unreadable or invalid file adds none).
 */
export function configuredApiKeys (config: GatewayConfig): ApiKeyEntry[] {
  const keys = [...config.auth.apiKeys]
  if (config.auth.apiKeysFile === undefined) return keys
  let text: string
  try {
    text = readText(config.auth.apiKeysFile)
  } catch {
    return keys
  }
  const parsed = parseApiKeyText(text)
  return parsed.problems.length > 0 ? keys : [...keys, ...parsed.entries]
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

/** A PUBLIC_HOSTS entry: a DNS name or IPv4 address, `*.` and a name, or a bracketed IPv6 address. */
const PUBLIC_HOST = /^(?:\*\.)?[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$|^\[[0-9a-f:.]+\]$/
const WILDCARD_HOSTS: ReadonlySet<string> = new Set(['0.0.0.0', '::', '[::]'])

/** Whether two listen hosts can collide on one port (equal, or either is a wildcard address). */
function sharesAddress (a: string, b: string): boolean {
  return a === b || WILDCARD_HOSTS.has(a) || WILDCARD_HOSTS.has(b)
}

/** An API key and the variable it came from (problems name that variable). */
type SourcedKey = readonly [variable: string, entry: ApiKeyEntry]

/** What the values say, checked one by one and split into lists. */
interface EnvSettings {
  readonly trustProxy: string[]
  readonly stripRequestHeaders: string[]
  readonly publicHosts: string[] | undefined
  readonly ipAllow: string[]
  readonly ipDeny: string[]
  /** API_KEYS, parsed (API_KEYS_FILE is read in step 3). */
  readonly apiKeys: SourcedKey[]
  readonly forwardAuthRequestHeaders: string[]
  readonly forwardAuthResponseHeaders: string[]
  readonly workers: number
}

const HEADER_NAME = new RegExp(HEADER_NAME_PATTERN)

/** A comma-separated list of header names, lower-cased, each once. */
function headerNames (variable: string, value: string, p: Problems): string[] {
  const names = [...new Set(list(value).map((n) => n.toLowerCase()))]
  for (const n of names) if (!HEADER_NAME.test(n)) p.add(variable, `"${n}" is not a header name`)
  return names
}

/** Step 2: lists split, each value checked against its own rules and those of the plugin it feeds. */
function envSettings (e: GatewayEnv, p: Problems): EnvSettings {
  const trustProxy = list(e.TRUST_PROXY)
  for (const t of trustProxy) {
    const problem = trustedProxyProblem(t)
    if (problem !== undefined) p.add('TRUST_PROXY', `${problem} (list proxy addresses; "all" and hop counts are not accepted)`)
  }
  const stripRequestHeaders = list(e.STRIP_REQUEST_HEADERS)
  for (const name of stripRequestHeaders) {
    const problem = stripNameProblem(name)
    if (problem !== undefined) p.add('STRIP_REQUEST_HEADERS', problem)
  }
  const publicHosts = e.PUBLIC_HOSTS === undefined ? undefined : list(e.PUBLIC_HOSTS).map((h) => h.toLowerCase())
  if (publicHosts !== undefined) {
    if (publicHosts.length === 0) p.add('PUBLIC_HOSTS', 'lists no host name')
    for (const h of publicHosts) if (!PUBLIC_HOST.test(h)) p.add('PUBLIC_HOSTS', `"${h}" is not a host name, *.name or [IPv6] (no scheme, port or path)`)
  }
  const ipAllow = list(e.IP_ALLOW)
  const ipDeny = list(e.IP_DENY)
  for (const [name, entries] of [['IP_ALLOW', ipAllow], ['IP_DENY', ipDeny]] as const) {
    if (entries.length > IP_LIST.maxItems) p.add(name, `lists more than ${IP_LIST.maxItems} entries`)
    for (const t of entries) {
      const parsed = parseIpEntry(t)
      if (typeof parsed === 'string') p.add(name, parsed)
    }
  }
  const apiKeys = e.API_KEYS === undefined ? [] : parseApiKeys(e.API_KEYS, 'API_KEYS', p.list).map((k): SourcedKey => ['API_KEYS', k])
  const forwardAuthRequestHeaders = headerNames('FORWARD_AUTH_REQUEST_HEADERS', e.FORWARD_AUTH_REQUEST_HEADERS, p)
  const forwardAuthResponseHeaders = headerNames('FORWARD_AUTH_RESPONSE_HEADERS', e.FORWARD_AUTH_RESPONSE_HEADERS, p)
  if (e.INTROSPECTION_CLIENT_SECRET !== undefined && e.INTROSPECTION_CLIENT_SECRET_FILE !== undefined) p.add('INTROSPECTION_CLIENT_SECRET and INTROSPECTION_CLIENT_SECRET_FILE', 'set only one')
  const introspection = [e.INTROSPECTION_URL, e.INTROSPECTION_CLIENT_ID, e.INTROSPECTION_CLIENT_SECRET ?? e.INTROSPECTION_CLIENT_SECRET_FILE]
  if (introspection.some((v) => v !== undefined) && introspection.some((v) => v === undefined)) p.add('INTROSPECTION_URL, INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET (or _FILE)', 'set all three or none')
  if (e.INTROSPECTION_URL === undefined && (e.INTROSPECTION_ISSUER !== undefined || e.INTROSPECTION_AUDIENCE !== undefined)) p.add('INTROSPECTION_ISSUER, INTROSPECTION_AUDIENCE', 'only with INTROSPECTION_URL')
  if (e.JWT_SECRET !== undefined && Buffer.byteLength(e.JWT_SECRET) < JWT_SECRET_MIN_BYTES) p.add('JWT_SECRET', `must be at least ${JWT_SECRET_MIN_BYTES} bytes`)
  if ([e.JWT_SECRET, e.JWT_PUBLIC_KEY, e.JWKS_URL].filter((s) => s !== undefined).length > 1) p.add('JWT_SECRET, JWT_PUBLIC_KEY and JWKS_URL', 'set only one key source')

  if ((e.TLS_CERT_FILE === undefined) !== (e.TLS_KEY_FILE === undefined)) p.add('TLS_CERT_FILE and TLS_KEY_FILE', 'set both or neither')
  if (e.HTTP2 && e.TLS_CERT_FILE === undefined) p.add('HTTP2', 'needs TLS_CERT_FILE and TLS_KEY_FILE')
  if (e.TLS_CLIENT_CA_FILE !== undefined && e.TLS_CERT_FILE === undefined) p.add('TLS_CLIENT_CA_FILE', 'needs TLS_CERT_FILE and TLS_KEY_FILE (client certificates come with TLS)')
  for (const name of ['TLS_CLIENT_CERT_MODE', 'TLS_CLIENT_CRL_FILE', 'TLS_CLIENT_CONSUMER_FIELD'] as const) {
    if (e[name] !== undefined && e.TLS_CLIENT_CA_FILE === undefined) p.add(name, 'only with TLS_CLIENT_CA_FILE')
  }
  if (e.PROXY_PROTOCOL && trustProxy.length === 0) p.add('PROXY_PROTOCOL', 'needs TRUST_PROXY (the balancer addresses allowed to announce a client address)')
  for (const [name, window] of [['RATE_LIMIT_WINDOW', e.RATE_LIMIT_WINDOW], ['IP_RATE_LIMIT_WINDOW', e.IP_RATE_LIMIT_WINDOW]] as const) {
    const problem = windowProblem(name, window)
    if (problem !== undefined) {
      const message = problem.slice(name.length + 2)
      p.add(name, message.includes('such as') ? message : `${message} (for example "1 minute", "30s" or "60000")`)
    }
  }
  if (e.REDIS_URL !== undefined) {
    const problem = redisUrlProblem(e.REDIS_URL)
    if (problem !== undefined) p.add('REDIS_URL', problem)
  }
  if (e.ADMIN_PORT !== undefined && e.ADMIN_PORT !== 0 && e.ADMIN_PORT === e.PORT && sharesAddress(e.HOST, e.ADMIN_HOST)) {
    p.add('ADMIN_PORT', 'the same port as PORT on the same address (the admin listener needs its own)')
  }
  const workers = e.WORKERS === 'auto' ? availableParallelism() : Number(e.WORKERS)
  return { trustProxy, stripRequestHeaders, publicHosts, ipAllow, ipDeny, apiKeys, forwardAuthRequestHeaders, forwardAuthResponseHeaders, workers }
}

// ---------------------------------------------------------------------------------------------
// Step 3: the files the variables name.

/** What the files hold. */
interface FileContents {
  /** API_KEYS_FILE, parsed. */
  readonly apiKeys: SourcedKey[]
  /** JWT_PUBLIC_KEY as PEM (read when it names a file). */
  readonly jwtPublicKey: string | undefined
  readonly upstreamCa: string | undefined
  /** INTROSPECTION_CLIENT_SECRET, or the one line of INTROSPECTION_CLIENT_SECRET_FILE. */
  readonly introspectionClientSecret: string | undefined
}

/** TLS_CERT_FILE and TLS_KEY_FILE: both readable PEM that form one usable certificate and key. */
function tlsProblems (certFile: string, keyFile: string, p: Problems): void {
  const read = (name: string, file: string): string | undefined => {
    try {
      return readText(file)
    } catch {
      p.add(name, 'cannot be read')
      return undefined
    }
  }
  const cert = read('TLS_CERT_FILE', certFile)
  const key = read('TLS_KEY_FILE', keyFile)
  if (cert === undefined || key === undefined) return
  if (!cert.includes('-----BEGIN CERTIFICATE-----')) p.add('TLS_CERT_FILE', 'no PEM certificate in the file')
  else if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) p.add('TLS_KEY_FILE', 'no PEM private key in the file')
  else {
    try {
      createSecureContext({ cert, key })
    } catch {
      p.add('TLS_CERT_FILE and TLS_KEY_FILE', 'not a usable certificate and private key pair (does the key match the certificate?)')
    }
  }
}

/**
 * TLS_CLIENT_CA_FILE (and TLS_CLIENT_CRL_FILE): PEM certificates (and CRLs) that Node's TLS
 * accepts as `ca` (and `crl`); the same check as every reload of them (server-tls.ts).
 */
function clientCaProblems (caFile: string, crlFile: string | undefined, p: Problems): void {
  const read = readClientCa(caFile, crlFile)
  if (Array.isArray(read)) for (const problem of read) p.add(problem.variable, problem.message)
}

/** Step 3: reads and checks every file a variable names (keys, PEM, the routes folder). */
function readFiles (e: GatewayEnv, p: Problems): FileContents {
  let apiKeys: SourcedKey[] = []
  if (e.API_KEYS_FILE !== undefined) {
    let text: string | undefined
    try {
      text = readText(e.API_KEYS_FILE)
    } catch {
      p.add('API_KEYS_FILE', 'cannot be read')
    }
    if (text !== undefined) apiKeys = parseApiKeys(text, 'API_KEYS_FILE', p.list, e.API_KEYS_FILE).map((k): SourcedKey => ['API_KEYS_FILE', k])
  }
  let jwtPublicKey = e.JWT_PUBLIC_KEY
  if (jwtPublicKey !== undefined && !jwtPublicKey.includes('-----BEGIN')) {
    try {
      jwtPublicKey = readText(jwtPublicKey)
    } catch {
      p.add('JWT_PUBLIC_KEY', 'neither a PEM key nor a readable file')
    }
  }
  if (e.TLS_CERT_FILE !== undefined && e.TLS_KEY_FILE !== undefined) tlsProblems(e.TLS_CERT_FILE, e.TLS_KEY_FILE, p)
  if (e.TLS_CLIENT_CA_FILE !== undefined) clientCaProblems(e.TLS_CLIENT_CA_FILE, e.TLS_CLIENT_CRL_FILE, p)
  let upstreamCa: string | undefined
  if (e.UPSTREAM_CA_FILE !== undefined) {
    try {
      upstreamCa = readText(e.UPSTREAM_CA_FILE)
      if (!upstreamCa.includes('-----BEGIN CERTIFICATE-----')) p.add('UPSTREAM_CA_FILE', 'no PEM certificate in the file')
    } catch {
      p.add('UPSTREAM_CA_FILE', 'cannot be read')
    }
  }
  if (e.ROUTES_DIR !== undefined) {
    let dir = false
    try {
      dir = statSync(e.ROUTES_DIR).isDirectory()
    } catch {}
    if (!dir) p.add('ROUTES_DIR', 'not a readable directory')
  }
  let introspectionClientSecret = e.INTROSPECTION_CLIENT_SECRET
  if (e.INTROSPECTION_CLIENT_SECRET_FILE !== undefined) {
    try {
      introspectionClientSecret = readText(e.INTROSPECTION_CLIENT_SECRET_FILE).replace(/[\r\n]+$/, '')
      if (introspectionClientSecret === '' || /[\r\n]/.test(introspectionClientSecret)) p.add('INTROSPECTION_CLIENT_SECRET_FILE', 'must hold the secret on one line')
    } catch {
      p.add('INTROSPECTION_CLIENT_SECRET_FILE', 'cannot be read')
    }
  }
  return { apiKeys, jwtPublicKey, upstreamCa, introspectionClientSecret }
}

// ---------------------------------------------------------------------------------------------
// Step 4: rules that span variables; production refusals.

/** Production refuses these exact values: anyone can read them. */
const PUBLISHED_SECRETS: ReadonlySet<string> = new Set([DEMO_JWT_SECRET, DEMO_API_KEY, ...PUBLISHED_PLACEHOLDERS])

/** Production: one problem per credential that is a placeholder, published or not random. */
function placeholderProblems (jwtSecret: string | undefined, keys: readonly SourcedKey[], redisUrl: string | undefined, p: Problems): void {
  const fix = `refused in production; generate real ones with: ${SECRETS_COMMAND}`
  if (jwtSecret === DEMO_JWT_SECRET) p.add('JWT_SECRET', `the demo secret is refused in production; generate a real one with: ${SECRETS_COMMAND}`)
  else if (jwtSecret !== undefined) {
    const reason = weakSecretReason(jwtSecret, PUBLISHED_SECRETS)
    if (reason !== undefined) p.add('JWT_SECRET', `${reason}, ${fix}`)
  }
  for (const [source, k] of keys) {
    if (k.key === DEMO_API_KEY) p.add(source, `the demo key is refused in production (consumer "${k.consumer}"); generate a real one with: ${SECRETS_COMMAND}`)
    else {
      const reason = weakSecretReason(k.key, PUBLISHED_SECRETS)
      if (reason !== undefined) p.add(source, `the key of consumer "${k.consumer}" ${reason}, ${fix}`)
    }
  }
  if (redisUrl !== undefined) {
    let password = ''
    try {
      password = decodeURIComponent(new URL(redisUrl).password)
    } catch {}
    const reason = password === '' ? undefined : weakSecretReason(password, PUBLISHED_SECRETS)
    if (reason !== undefined) p.add('REDIS_URL', `its password ${reason}; refused in production (set the Redis server's real password)`)
  }
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
function redisHaSettings (e: GatewayEnv, p: Problems): RedisHaSettings {
  const production = e.NODE_ENV === 'production'
  const sentinels = e.REDIS_SENTINELS === undefined ? undefined : list(e.REDIS_SENTINELS)
  const clusterNodes = e.REDIS_CLUSTER_NODES === undefined ? undefined : list(e.REDIS_CLUSTER_NODES)
  const named = ([['REDIS_URL', e.REDIS_URL], ['REDIS_SENTINELS', sentinels], ['REDIS_CLUSTER_NODES', clusterNodes]] as const).filter(([, v]) => v !== undefined).map(([n]) => n)
  if (named.length > 1) p.add(named.join(' and '), 'set only one (one server, a Sentinel group or a Cluster)')
  for (const [name, nodes] of [['REDIS_SENTINELS', sentinels], ['REDIS_CLUSTER_NODES', clusterNodes]] as const) {
    if (nodes === undefined) continue
    if (nodes.length === 0) p.add(name, 'lists no host:port')
    for (const node of nodes) {
      const port = Number(node.slice(node.lastIndexOf(':') + 1))
      if (!HOST_PORT.test(node) || port < 1 || port > 65535) p.add(name, `"${node}" is not host:port (IPv6 as [::1]:26379)`)
    }
  }
  if (sentinels !== undefined && e.REDIS_SENTINEL_NAME === undefined) p.add('REDIS_SENTINEL_NAME', 'needed with REDIS_SENTINELS (the name in the sentinels\' `sentinel monitor <name> …`)')
  if (sentinels === undefined && e.REDIS_SENTINEL_NAME !== undefined) p.add('REDIS_SENTINEL_NAME', 'only with REDIS_SENTINELS')
  if (sentinels === undefined && e.REDIS_SENTINEL_PASSWORD_FILE !== undefined) p.add('REDIS_SENTINEL_PASSWORD_FILE', 'only with REDIS_SENTINELS')
  if (e.REDIS_PASSWORD_FILE !== undefined && sentinels === undefined && clusterNodes === undefined) p.add('REDIS_PASSWORD_FILE', 'only with REDIS_SENTINELS or REDIS_CLUSTER_NODES (REDIS_URL carries its own password)')
  const secret = (name: string, file: string | undefined): string | undefined => {
    if (file === undefined) return undefined
    let text: string
    try {
      text = readText(file).replace(/[\r\n]+$/, '')
    } catch {
      p.add(name, 'cannot be read')
      return undefined
    }
    if (text === '' || /[\r\n]/.test(text)) p.add(name, 'must hold the password on one line')
    const reason = production ? weakSecretReason(text, PUBLISHED_SECRETS) : undefined
    if (reason !== undefined) p.add(name, `the password ${reason}; refused in production (set the Redis server's real password)`)
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

/** The credentials the gateway runs with. */
interface Credentials {
  readonly jwtSecret: string | undefined
  /** API_KEYS (or the demo key); API_KEYS_FILE's keys are read by the auth plugin itself, which re-reads them. */
  readonly apiKeys: ApiKeyEntry[]
}

/**
 * Step 4: the rules that span variables and files. In production, demo, published, placeholder
 * and non-random credentials are refused, one credential source is required, and so are verified
 * upstream TLS and shared rate limits for several workers; elsewhere, without any credential,
 * the demo ones apply.
 */
function crossChecks (e: GatewayEnv, s: EnvSettings, f: FileContents, p: Problems): Credentials {
  const production = e.NODE_ENV === 'production'
  const keys = [...s.apiKeys, ...f.apiKeys]
  const seenKeys = new Set<string>()
  for (const [, k] of keys) {
    if (seenKeys.has(k.key)) p.add('API_KEYS', `consumer "${k.consumer}" reuses another consumer's key`)
    seenKeys.add(k.key)
  }
  let jwtSecret = e.JWT_SECRET
  let apiKeys = s.apiKeys.map(([, k]) => k)
  const credentialSources = [e.JWT_SECRET, e.JWT_PUBLIC_KEY, e.JWKS_URL, e.INTROSPECTION_URL, e.FORWARD_AUTH_URL, e.API_KEYS_FILE].filter((v) => v !== undefined).length
  // Client certificates are a credential source too (the `mtls` strategy).
  const certSource = e.TLS_CLIENT_CA_FILE !== undefined
  if (production) {
    placeholderProblems(jwtSecret, keys, e.REDIS_URL, p)
    if (credentialSources === 0 && keys.length === 0 && !certSource) {
      p.add('JWT_SECRET, JWT_PUBLIC_KEY, JWKS_URL or API_KEYS', `production needs at least one credential source (these, INTROSPECTION_URL, FORWARD_AUTH_URL or TLS_CLIENT_CA_FILE); generate a JWT secret and an API key with: ${SECRETS_COMMAND}`)
    }
    if (e.UPSTREAM_TLS_INSECURE) p.add('UPSTREAM_TLS_INSECURE', 'not allowed in production (use UPSTREAM_CA_FILE)')
    // Per-process rate-limit state would multiply every limit by the number of workers.
    if (s.workers > 1 && e.REDIS_URL === undefined && e.REDIS_SENTINELS === undefined && e.REDIS_CLUSTER_NODES === undefined) p.add('WORKERS', 'more than one worker process needs REDIS_URL in production (or REDIS_SENTINELS or REDIS_CLUSTER_NODES: rate limits must be shared)')
  } else if (credentialSources === 0 && keys.length === 0 && !certSource) {
    jwtSecret = DEMO_JWT_SECRET
    apiKeys = [{ consumer: DEMO_CONSUMER, key: DEMO_API_KEY }]
  }
  return { jwtSecret, apiKeys }
}

// ---------------------------------------------------------------------------------------------
// Step 5: the configuration, frozen.

function deepFreeze<T> (o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o)) deepFreeze(v)
  }
  return o
}

/** Step 5: the configuration object (GatewayConfigSchema), deeply frozen. */
function assemble (e: GatewayEnv, s: EnvSettings, f: FileContents, c: Credentials, ha: RedisHaSettings): GatewayConfig {
  const production = e.NODE_ENV === 'production'
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
    trustProxy: s.trustProxy,
    proxyProtocol: e.PROXY_PROTOCOL,
    drainDelayMs: e.DRAIN_DELAY_MS,
    stripRequestHeaders: s.stripRequestHeaders,
    drainTimeoutMs: e.DRAIN_TIMEOUT_MS,
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    headersTimeoutMs: e.HEADERS_TIMEOUT_MS,
    keepAliveTimeoutMs: e.KEEP_ALIVE_TIMEOUT_MS,
    demoUpstreamPort: production ? undefined : e.DEMO_UPSTREAM_PORT,
    auth: {
      jwtSecret: c.jwtSecret,
      jwtPublicKey: f.jwtPublicKey,
      jwksUrl: e.JWKS_URL,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE === undefined ? undefined : list(e.JWT_AUDIENCE),
      clockSkewS: e.JWT_CLOCK_SKEW_S,
      maxLifetimeS: e.JWT_MAX_LIFETIME_S,
      apiKeys: c.apiKeys,
      introspectionUrl: e.INTROSPECTION_URL,
      introspectionClientId: e.INTROSPECTION_URL === undefined ? undefined : e.INTROSPECTION_CLIENT_ID,
      introspectionClientSecret: e.INTROSPECTION_URL === undefined ? undefined : f.introspectionClientSecret,
      introspectionIssuer: e.INTROSPECTION_URL === undefined ? undefined : e.INTROSPECTION_ISSUER ?? e.JWT_ISSUER,
      introspectionAudience: e.INTROSPECTION_URL === undefined ? undefined : list(e.INTROSPECTION_AUDIENCE ?? e.JWT_AUDIENCE ?? '').length > 0 ? list(e.INTROSPECTION_AUDIENCE ?? e.JWT_AUDIENCE) : undefined,
      introspectionTimeoutMs: e.INTROSPECTION_TIMEOUT_MS,
      introspectionCacheTtlS: e.INTROSPECTION_CACHE_TTL_S,
      introspectionNegativeCacheTtlS: e.INTROSPECTION_NEGATIVE_CACHE_TTL_S,
      forwardAuthUrl: e.FORWARD_AUTH_URL,
      forwardAuthTimeoutMs: e.FORWARD_AUTH_TIMEOUT_MS,
      forwardAuthRequestHeaders: s.forwardAuthRequestHeaders,
      forwardAuthResponseHeaders: s.forwardAuthResponseHeaders,
      forwardAuthConsumerHeader: e.FORWARD_AUTH_CONSUMER_HEADER,
      forwardAuthCacheTtlMs: e.FORWARD_AUTH_CACHE_TTL_MS,
      forwardAuthCacheMax: e.FORWARD_AUTH_CACHE_MAX,
      mtlsConsumerField: e.TLS_CLIENT_CA_FILE === undefined ? undefined : e.TLS_CLIENT_CONSUMER_FIELD ?? DEFAULT_MTLS_CONSUMER_FIELD,
      apiKeysFile: e.API_KEYS_FILE
    },
    rateLimit: {
      max: e.RATE_LIMIT_MAX,
      timeWindow: e.RATE_LIMIT_WINDOW,
      ipMax: e.IP_RATE_LIMIT_MAX,
      ipTimeWindow: e.IP_RATE_LIMIT_WINDOW,
      redisUrl: e.REDIS_URL,
      ...ha,
      failureMode: e.REDIS_FAILURE_MODE,
      redisTimeoutMs: e.REDIS_TIMEOUT_MS,
      redisKeyPrefix: e.REDIS_KEY_PREFIX
    },
    pathCheck: e.PATH_CHECK,
    publicHosts: s.publicHosts,
    inspect: { rulesFile: e.INSPECT_RULES_FILE, mode: e.INSPECT_MODE, detectRules: [...new Set(list(e.INSPECT_DETECT_RULES))], verdictCacheSize: e.INSPECT_CACHE_SIZE, timeoutMs: e.INSPECT_TIMEOUT_MS },
    ipFilter: { allow: s.ipAllow, deny: s.ipDeny },
    admin: { port: e.ADMIN_PORT, host: e.ADMIN_HOST, instance: e.INSTANCE_ID },
    workers: s.workers,
    tls: e.TLS_CERT_FILE !== undefined && e.TLS_KEY_FILE !== undefined
      ? {
          certFile: e.TLS_CERT_FILE,
          keyFile: e.TLS_KEY_FILE,
          http2: e.HTTP2,
          clientCaFile: e.TLS_CLIENT_CA_FILE,
          clientCrlFile: e.TLS_CLIENT_CRL_FILE,
          clientCertMode: e.TLS_CLIENT_CA_FILE === undefined ? undefined : e.TLS_CLIENT_CERT_MODE ?? 'request'
        }
      : undefined,
    otel: e.OTEL_ENABLED,
    upstreamTls: { ca: f.upstreamCa, insecure: e.UPSTREAM_TLS_INSECURE }
  }
  return deepFreeze(config)
}

/**
 * Every problem of the configuration `env` describes, without throwing: the same steps and the
 * same checks as `loadConfig()` (which calls this), so a check and a start never disagree. A
 * schema problem (a value of the wrong type or out of range) stops before the other steps, as
 * their checks need typed values. `warnings` names misspelt variables.
 */
export function checkConfig (env: NodeJS.ProcessEnv = process.env): ConfigCheck {
  const warnings = environmentWarnings(env).map(splitLine)
  const parsed = parseEnv(env)
  if (parsed.env === undefined) return { problems: parsed.problems, warnings }
  const e = parsed.env
  const p = new Problems()
  const settings = envSettings(e, p)
  const files = readFiles(e, p)
  const redisHa = redisHaSettings(e, p)
  const credentials = crossChecks(e, settings, files, p)
  if (p.list.length > 0) return { problems: p.list, warnings }
  return { config: assemble(e, settings, files, credentials, redisHa), problems: [], warnings }
}

/**
 * Loads and validates the configuration from an environment object (default `process.env`).
 * Throws ConfigError naming every offending variable (the problems of `checkConfig()`).
 */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const { config, problems } = checkConfig(env)
  if (config === undefined) throw new ConfigError('invalid environment', problems.map(problemLine), '')
  return config
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
