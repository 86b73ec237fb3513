/**
 * `defineRoute()`: one upstream service described as data, returned as a Fastify plugin.
 *
 * The options are validated when the route module is evaluated, so a bad route file stops the
 * gateway at startup with the file name, the option and the reason (GW_CONFIG_INVALID).
 * Policies (`auth`, `rateLimit`, `inspect`) ride on the proxied routes' Fastify `config`, where
 * the gateway's plugins read them.
 */
import { dirname, isAbsolute, resolve } from 'node:path'
import { createSecureContext } from 'node:tls'
import { fileURLToPath } from 'node:url'
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyInstance, FastifyPluginAsync, FastifyRegisterOptions } from 'fastify'
import { ConfigError } from '../lib/errors.js'
import { cidrProblem, missingUpstreamVariable } from './config.js'
import { sourcePosition } from './source-file.js'
import { AuthRouteConfigSchema } from '../plugins/auth/schema.js'
import { RateLimitRouteConfigSchema } from '../plugins/rate-limit/schema.js'
import { InspectRouteConfigSchema } from '../plugins/inspect/schema.js'
import { legacyExcludeProblems, tuningProblems } from '../plugins/inspect/fields.js'
import { CorsRouteConfigSchema, corsCrossFieldProblems } from '../plugins/cors/schema.js'
import { AllowedContentTypesSchema, IpFilterRouteConfigSchema } from '../plugins/ip-filter/schema.js'
import { OpenApiRouteConfigSchema } from '../plugins/openapi/schema.js'
import { ContractLoadError, contractFor } from '../plugins/openapi/contract.js'
import { fitsProxyScope, proxyRuntimeOf, registerProxyRoute, registerScopedProxyRoute } from '../plugins/proxy/route.js'
import type { ProxyRouteInput, ProxyRuntime, ProxyUpstreamTls } from '../plugins/proxy/schema.js'
import type { RoutePolicySummary } from '../lib/route-contract.js'
import { errorLines } from '../lib/validate.js'
import { readText } from '../lib/files.js'
import type { AuthPolicy } from '../plugins/auth/schema.js'
import type { RateLimitRouteConfig } from '../plugins/rate-limit/schema.js'
import type { InspectRouteConfig } from '../plugins/inspect/schema.js'
import type { PublicRateLimitConfig } from './policy.js'

const HttpMethodSchema = Type.Union(
  ['DELETE', 'GET', 'HEAD', 'PATCH', 'POST', 'PUT', 'OPTIONS'].map((m) => Type.Literal(m)),
  { description: 'An HTTP method the route proxies.' }
)

/** A path prefix: starts with `/`, no dot segments, no empty segments, no trailing slash. */
const PREFIX_PATTERN = '^(/(?!\\.{1,2}(/|$))[A-Za-z0-9._~!$&\'()*+,=:@-]+)+$|^/$'
const UPSTREAM_PATTERN = '^https?://[^\\s/?#@]+(/[^\\s?#]*)?$'
const ORIGIN_PATTERN = '^https?://[^\\s/?#@]+$'
/** A lower-case DNS name, or `*.` and one (any subdomain); no port. */
const HOST_PATTERN = '^(\\*\\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$'
const HOST_WORDS = 'must be a lower-case host name without a port ("api.example.com"), or "*." and a name for any subdomain ("*.example.com")'
/** The patterns above, in words, for messages. */
const PREFIX_WORDS = 'must be a literal path: start with "/", no trailing "/", no empty ("//"), "." or ".." segments, no ":" or "*", only letters, digits and -._~!$&\'()+,=@ (for example "/api/orders")'
const UPSTREAM_WORDS = 'must be an http:// or https:// URL with a host and no credentials, query or fragment (for example "http://orders-api:8080")'

const TimeoutSchema = Type.Object({
  connectMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 600_000, description: 'TCP/TLS connect timeout to a target.' })),
  headersMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000, description: 'Time from sending the request to the upstream response headers.' })),
  bodyIdleMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000, description: 'Longest pause between two chunks of the upstream response body.' }))
}, { additionalProperties: false })

const HealthCheckSchema = Type.Object({
  path: Type.String({ pattern: '^/[^\\s]*$', patternMessage: 'must be a path starting with "/", without spaces', description: 'Path probed on every target with GET; 2xx/3xx is healthy.' }),
  intervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000, description: 'Probe interval (default 5000).' })),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 60_000, description: 'Probe timeout (default 2000).' })),
  healthyThreshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'Consecutive passes to re-admit a target (default 2).' })),
  unhealthyThreshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'Consecutive failures to remove a target (default 2).' }))
}, { additionalProperties: false })

const CircuitBreakerSchema = Type.Object({
  failureThreshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Consecutive failures that open a target\'s circuit (default 5).' })),
  cooldownMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000, description: 'How long an open circuit keeps the target out before one trial request (default 10000).' }))
}, { additionalProperties: false })

const WebSocketOptionsSchema = Type.Object({
  maxMessageBytes: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 * 1024 * 1024, description: 'Largest WebSocket message relayed, in either direction; a larger one closes the connection with 1009 (default BODY_LIMIT).' })),
  allowedOrigins: Type.Optional(Type.Array(Type.String({ pattern: ORIGIN_PATTERN }), { minItems: 1, maxItems: 1000, uniqueItems: true, description: 'Exact origins (`https://app.example.com[:port]`) allowed to open a WebSocket; others get 403 (default: any origin).' })),
  requireOrigin: Type.Optional(Type.Boolean({ description: 'Refuse handshakes without an Origin header with 403 (default false: non-browser clients send none).' })),
  bearerProtocol: Type.Optional(Type.Boolean({ description: 'Browsers: accept the JWT as a `Sec-WebSocket-Protocol` offer `portcullis.bearer.<jwt>` beside the real subprotocol; the offer is authenticated like `Authorization: Bearer`, never forwarded or echoed. Needs `allowedOrigins` and authentication (default false).' })),
  maxMessagesPerSecond: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Messages a client may send per second on one connection; one more closes it with 1008 (default unlimited).' })),
  idleTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 86_400_000, description: 'A connection with no message in either direction for this long is closed with 1001 on both sides (default none).' }))
}, { additionalProperties: false })

const UpstreamTlsSchema = Type.Object({
  certFile: Type.String({ minLength: 1, description: 'PEM client certificate (chain) the gateway presents to the upstreams; read at startup (a relative path is taken from the working directory).' }),
  keyFile: Type.String({ minLength: 1, description: 'PEM private key of `certFile`.' }),
  caFile: Type.Optional(Type.String({ minLength: 1, description: 'PEM CA bundle that verifies the upstreams instead of UPSTREAM_CA_FILE and the system CAs.' })),
  serverName: Type.Optional(Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.-]+$', patternMessage: 'must be a DNS host name', description: 'TLS server name (SNI, and the name the upstream certificate must carry) instead of the upstream URL\'s host.' }))
}, { additionalProperties: false, description: 'Mutual TLS toward the upstreams (https targets only): the client certificate the gateway presents, and optionally the CA and server name that verify them (default: no client certificate).' })

const HostNameSchema = Type.String({ pattern: HOST_PATTERN, patternMessage: HOST_WORDS, maxLength: 253 })

export const RouteOptionsSchema = Type.Object({
  host: Type.Optional(Type.Union([
    HostNameSchema,
    Type.Array(HostNameSchema, { minItems: 1, maxItems: 100, uniqueItems: true })
  ], { description: 'Host names (Host / HTTP/2 `:authority`, port ignored) this route answers; `*.example.com` = any subdomain. Routes of one prefix can then go to different upstreams per host; a route without `host` serves every other host (default: any host).' })),
  prefix: Type.String({ pattern: PREFIX_PATTERN, patternMessage: PREFIX_WORDS, maxLength: 512, description: 'Public path prefix; matches at a segment boundary only.' }),
  upstream: Type.Union([
    Type.String({ pattern: UPSTREAM_PATTERN, patternMessage: UPSTREAM_WORDS }),
    Type.Array(Type.String({ pattern: UPSTREAM_PATTERN, patternMessage: UPSTREAM_WORDS }), { minItems: 1, maxItems: 64, uniqueItems: true })
  ], { description: 'One upstream URL (http/https) or several, load balanced; every target shares one path.' }),
  rewritePrefix: Type.Optional(Type.String({ pattern: '^(/[^\\s?#]*)?$', patternMessage: 'must be empty or a path starting with "/", without spaces, "?" or "#"', description: 'Path prefix sent upstream instead of `prefix` (default: the prefix is stripped).' })),
  methods: Type.Optional(Type.Array(HttpMethodSchema, { minItems: 1, uniqueItems: true, description: 'Methods proxied (default: all but CONNECT and TRACE).' })),
  timeout: Type.Optional(Type.Union([
    Type.Integer({ minimum: 1, maximum: 3_600_000, description: 'Connect and response-header timeout in ms.' }),
    TimeoutSchema
  ], { description: 'Upstream timeouts (default 30000 ms connect+headers, 30000 ms body idle).' })),
  retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 5, description: 'Extra attempts on another target after a connection failure; only for idempotent requests without a body (default 1).' })),
  healthCheck: Type.Optional(Type.Union([Type.Literal(false), HealthCheckSchema], { description: 'Active health checks of every target (default off).' })),
  circuitBreaker: Type.Optional(Type.Union([Type.Literal(false), CircuitBreakerSchema], { description: 'Passive health per target (default on: 5 failures, 10 s).' })),
  websocket: Type.Optional(Type.Union([Type.Boolean(), WebSocketOptionsSchema], { description: 'Proxy WebSocket upgrades inside this prefix: `true` or WebSocket options (default false).' })),
  maxInFlight: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Cap on concurrent upstream requests of this route; excess gets 503 at once (default unlimited).' })),
  upstreamTls: Type.Optional(UpstreamTlsSchema),
  auth: Type.Optional(AuthRouteConfigSchema),
  rateLimit: Type.Optional(RateLimitRouteConfigSchema),
  inspect: Type.Optional(InspectRouteConfigSchema),
  cors: Type.Optional(CorsRouteConfigSchema),
  ipFilter: Type.Optional(IpFilterRouteConfigSchema),
  allowedContentTypes: Type.Optional(AllowedContentTypesSchema),
  openapi: Type.Optional(OpenApiRouteConfigSchema)
}, { additionalProperties: false })

/** Everything the schema accepts (the plugins still reject `keyBy: 'consumer'` on public routes). */
type RouteOptionsStatic = Static<typeof RouteOptionsSchema>

/** A public proxied route (`auth: false`): its rate limit can only count per client IP. */
export type PublicRouteOptions = Omit<RouteOptionsStatic, 'auth' | 'rateLimit'> & {
  auth: false
  rateLimit?: PublicRateLimitConfig
}

/** An authenticated proxied route (`auth` omitted means every configured strategy). */
export type ProtectedRouteOptions = Omit<RouteOptionsStatic, 'auth' | 'rateLimit'> & {
  auth?: AuthPolicy
  rateLimit?: RateLimitRouteConfig
}

/** Parameter type of `defineRoute()`: wrong policy combinations are compile errors. */
export type RouteDefinition = PublicRouteOptions | ProtectedRouteOptions

/** Options of `defineRoute()`. Every option: docs/reference/route-options.md (generated from RouteOptionsSchema). */
export type RouteOptions = RouteDefinition

const checkRouteOptions = TypeCompiler.Compile(RouteOptionsSchema)

/** Plugin returned by `defineRoute()`; `routeOptions` exposes the validated, frozen definition. */
export interface RoutePlugin extends FastifyPluginAsync {
  readonly routeOptions: Readonly<RouteOptions>
  /** The module that defined the route, as shown in messages (`routes/echo.ts`). */
  readonly routeFile: string
  /** Upstream variables that were missing in production; the route refuses to register. */
  readonly missingVariables: readonly string[]
}

/** The routes registered on each gateway, keyed by its shared proxy runtime (one per gateway). */
const registered = new WeakMap<object, RoutePlugin[]>()

/**
 * The `defineRoute()` routes registered on a gateway, in registration order (for the
 * command-line tool and the startup warnings; plain Fastify routes are not listed).
 */
export function registeredRoutes (app: FastifyInstance): readonly RoutePlugin[] {
  return app.hasDecorator('portcullisProxy') ? registered.get(app.portcullisProxy) ?? [] : []
}

/** Marks what `defineRoute()` returned, across copies of this module (source and compiled). */
const ROUTE_BRAND = Symbol.for('portcullis.route')

/** Whether `value` is a plugin returned by `defineRoute()`. */
export function isRoutePlugin (value: unknown): value is RoutePlugin {
  return typeof value === 'function' && (value as unknown as Record<symbol, unknown>)[ROUTE_BRAND] === true
}

/** The problem lines for a route's missing upstream variables, each naming the route file. */
export function missingVariableProblems (route: RoutePlugin): string[] {
  return route.missingVariables.map((name) => `${name}: required in production, the upstream of ${route.routeFile} (prefix ${route.routeOptions.prefix}); set it to the service URL, or several comma separated`)
}

function callerFile (): string {
  const stack = new Error().stack?.split('\n') ?? []
  for (const line of stack.slice(2)) {
    const m = /\((.*?):\d+:\d+\)$|at (\S+?):\d+:\d+$/.exec(line.trim())
    const file = m?.[1] ?? m?.[2]
    if (file !== undefined && !file.includes('/src/route.') && !file.startsWith('node:')) {
      return sourcePosition(file.startsWith('file:') ? fileURLToPath(file) : file).file
    }
  }
  return '<unknown route module>'
}

function describeProblems (options: unknown): string[] {
  const problems = errorLines(checkRouteOptions.Errors(options))
  if (problems.length > 0) problems.push(...legacyExcludeProblems((options as { inspect?: unknown } | null)?.inspect, 'inspect'))
  return problems
}

function crossFieldProblems (o: RouteOptions): string[] {
  const problems: string[] = []
  // Fastify would read them as a parameter or a wildcard and route far more than the prefix.
  if (/[:*]/.test(o.prefix)) problems.push('prefix: ":" and "*" are not allowed (a prefix is a literal path, not a route pattern)')
  const targets = Array.isArray(o.upstream) ? o.upstream : [o.upstream]
  const paths = new Set(targets.map((u) => new URL(u).pathname.replace(/\/$/, '')))
  if (paths.size > 1) problems.push('upstream: every target of one route must have the same path')
  for (const u of targets) {
    const url = new URL(u)
    if (url.username !== '' || url.password !== '') problems.push('upstream: credentials in the URL are not allowed')
  }
  if (o.cors !== undefined && o.cors !== false) {
    problems.push(...corsCrossFieldProblems(o.cors))
    if (o.methods !== undefined && !o.methods.includes('OPTIONS')) problems.push('cors: needs OPTIONS among methods (preflight requests)')
  }
  for (const list of ['allow', 'deny'] as const) {
    o.ipFilter?.[list]?.forEach((entry, i) => {
      const p = cidrProblem(entry)
      if (p !== undefined) problems.push(`ipFilter.${list}.${i}: ${p} (for example "10.0.0.0/8" or "2001:db8::1")`)
    })
  }
  // Field syntax here; rule ids when the inspection plugin loads its ruleset (named after this file too).
  if (o.inspect !== undefined && o.inspect !== false) problems.push(...tuningProblems(o.inspect, undefined, 'inspect'))
  if (o.websocket !== undefined && o.websocket !== false && o.methods !== undefined && !o.methods.includes('GET')) {
    problems.push('websocket: needs GET among methods')
  }
  if (o.upstreamTls !== undefined && targets.some((u) => !u.startsWith('https://'))) problems.push('upstreamTls: needs https:// upstreams (a client certificate is presented over TLS only)')
  if (typeof o.websocket === 'object') {
    for (const origin of o.websocket.allowedOrigins ?? []) {
      // Browsers send the serialised origin: lower case, no default port (RFC 6454 6.2).
      const serialised = URL.canParse(origin) ? new URL(origin).origin : null
      if (serialised !== origin) problems.push(`websocket.allowedOrigins: "${origin}" is not a serialised origin${serialised === null ? '' : ` (write it as "${serialised}")`}`)
    }
    if (o.websocket.bearerProtocol === true) {
      // The token stands in for a cookie-free credential; the origin list still keeps other sites' pages off.
      if (o.websocket.allowedOrigins === undefined) problems.push('websocket.bearerProtocol: needs websocket.allowedOrigins (the origins of the pages that may connect)')
      if (o.auth === false) problems.push('websocket.bearerProtocol: needs authentication (the route has auth: false)')
    }
  }
  return problems
}

/**
 * `upstreamTls`: the files read and checked (PEM, the key matching the certificate), or the
 * problems, each naming its option and file.
 */
function loadUpstreamTls (o: NonNullable<RouteOptions['upstreamTls']>, problems: string[]): ProxyUpstreamTls | undefined {
  const read = (option: string, file: string): string | undefined => {
    try {
      return readText(file)
    } catch (err) {
      problems.push(`upstreamTls.${option}: cannot read "${file}" (${(err as { code?: string }).code ?? 'error'})`)
      return undefined
    }
  }
  const cert = read('certFile', o.certFile)
  const key = read('keyFile', o.keyFile)
  const ca = o.caFile === undefined ? undefined : read('caFile', o.caFile)
  const before = problems.length
  if (cert !== undefined && !cert.includes('-----BEGIN CERTIFICATE-----')) problems.push(`upstreamTls.certFile: no PEM certificate in "${o.certFile}"`)
  if (key !== undefined && !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) problems.push(`upstreamTls.keyFile: no PEM private key in "${o.keyFile}"`)
  if (ca !== undefined && !ca.includes('-----BEGIN CERTIFICATE-----')) problems.push(`upstreamTls.caFile: no PEM certificate in "${o.caFile ?? ''}"`)
  if (cert === undefined || key === undefined || (o.caFile !== undefined && ca === undefined) || problems.length > before) return undefined
  try {
    createSecureContext({ cert, key })
  } catch {
    problems.push(`upstreamTls.certFile, upstreamTls.keyFile: "${o.certFile}" and "${o.keyFile}" are not a usable certificate and private key pair (does the key match the certificate?)`)
    return undefined
  }
  if (ca !== undefined) {
    try {
      createSecureContext({ ca })
    } catch {
      problems.push(`upstreamTls.caFile: "${o.caFile ?? ''}" is not a usable PEM certificate bundle`)
      return undefined
    }
  }
  return Object.freeze({ cert, key, ...(ca !== undefined ? { ca } : {}), ...(o.serverName !== undefined ? { serverName: o.serverName } : {}) })
}

/** The route table's words for a route's resolved policies. */
function describePolicy (route: Readonly<RouteOptions>, rateLimit: RateLimitRouteConfig, inspect: InspectRouteConfig): RoutePolicySummary {
  const auth = route.auth === false ? 'public' : (route.auth?.strategies?.join('|') ?? 'any configured') + (route.auth?.scopes !== undefined ? ` scopes=${route.auth.scopes.join(',')}` : '')
  const rl = rateLimit === false ? 'off' : `${rateLimit.max}/${String(rateLimit.timeWindow)}`
  const ins = inspect === false ? 'off' : `${inspect.mode ?? 'block'}${inspect.body === true ? '+body' : ''}`
  const openapi = route.openapi === undefined || route.openapi === false ? 'off' : route.openapi.mode ?? 'block'
  return { auth, rateLimit: rl, inspect: ins, openapi }
}

/**
 * What the proxy registers for a route: its transport options, and its policies resolved against
 * the gateway defaults (a route without `rateLimit` or `inspect` gets the runtime's), put on the
 * `config` of its Fastify routes for the policy plugins to read.
 */
function proxyInput (route: Readonly<RouteOptions>, runtime: ProxyRuntime, publicBase: string, upstreamTls: ProxyUpstreamTls | undefined, file: string): ProxyRouteInput {
  const rateLimit: RateLimitRouteConfig = route.rateLimit ?? runtime.defaultRateLimit
  const inspect: InspectRouteConfig = route.inspect ?? runtime.defaultInspect
  const openapi = route.openapi ?? false
  const first = Array.isArray(route.upstream) ? route.upstream[0] as string : route.upstream as string
  const { upstreamTls: files, ...transport } = route
  return {
    ...transport,
    ...(files !== undefined ? { upstreamTls } : {}),
    // A contract judges whole bodies: they are buffered (up to BODY_LIMIT) as for inspection.
    bufferBody: (inspect !== false && inspect.body === true) || openapi !== false,
    source: file,
    policy: describePolicy(route, rateLimit, inspect),
    config: {
      auth: route.auth ?? {},
      rateLimit,
      inspect,
      cors: route.cors ?? false,
      // Read by the ip-filter plugin; always present (possibly undefined) for one hidden class.
      ipFilter: route.ipFilter,
      allowedContentTypes: route.allowedContentTypes,
      // Read by the openapi plugin: the contract, and the public path as the upstream sees it.
      openapi,
      openapiPaths: { strip: publicBase + (route.prefix === '/' ? '' : route.prefix), add: new URL(first).pathname.replace(/\/+$/, '') + (route.rewritePrefix ?? '') }
    }
  }
}

/**
 * Describe one upstream service. Returns a Fastify plugin that proxies `prefix` to `upstream`
 * under the given policies. Throws GW_CONFIG_INVALID naming the file and option when invalid.
 */
export function defineRoute (options: RouteDefinition): RoutePlugin {
  const file = callerFile()
  const problems = describeProblems(options)
  if (problems.length === 0) problems.push(...crossFieldProblems(options))
  const upstreamTls = problems.length === 0 && options.upstreamTls !== undefined ? loadUpstreamTls(options.upstreamTls, problems) : undefined
  if (problems.length > 0) throw new ConfigError(`invalid route in ${file}`, problems, file)
  const targets = Array.isArray(options.upstream) ? options.upstream : [options.upstream]
  const missingVariables = Object.freeze(targets.map(missingUpstreamVariable).filter((v) => v !== undefined))

  const copy = structuredClone(options)
  // The contract's path is relative to the route module (its source, not the compiled copy).
  if (copy.openapi !== undefined && copy.openapi !== false && !isAbsolute(copy.openapi.spec)) {
    copy.openapi = { ...copy.openapi, spec: resolve(file.startsWith('<') ? process.cwd() : dirname(resolve(file)), copy.openapi.spec) }
  }
  const frozen: Readonly<RouteOptions> = Object.freeze(copy)
  // Not encapsulating by itself: the routes join the gateway's shared proxy scope when registered
  // on the instance that opened it; anywhere else they get a context of their own, created here
  // with the register options (a `prefix` there still prepends to the route's prefix).
  const plugin = async function portcullisRoute (fastify: FastifyInstance, opts: FastifyRegisterOptions<Record<string, unknown>>): Promise<void> {
    if (missingVariables.length > 0) throw new ConfigError('invalid route', missingVariableProblems(route), '')
    try {
      await loadRouteContract(fastify)
      await registerRoute(fastify, opts)
      if (fastify.hasDecorator('portcullisProxy')) {
        const list = registered.get(fastify.portcullisProxy)
        if (list === undefined) registered.set(fastify.portcullisProxy, [route])
        else list.push(route)
      }
    } catch (err) {
      // Problems found while registering (a prefix already routed, an unconfigured strategy)
      // name the route module they come from, in the route's terms (`inspect.exclude`, not the
      // plugin's `config.inspect.exclude`): a problem of a route file is GW_CONFIG_INVALID.
      if (err instanceof ConfigError && err.where === undefined) {
        const where = `${file} (route ${frozen.prefix})`
        throw new ConfigError(where, err.problems.map((p) => p.replace(/^config\./, '')), where)
      }
      throw err
    }
  }
  /** The route's OpenAPI document, loaded and compiled before its routes exist (startup error otherwise). */
  const loadRouteContract = async function (fastify: FastifyInstance): Promise<void> {
    const openapi = frozen.openapi
    if (openapi === undefined || openapi === false) return
    // Without the plugin the contract would silently not be enforced.
    if (!fastify.hasPlugin('portcullis-openapi')) throw new ConfigError('', ['openapi: register openApiPlugin (portcullis-openapi) before routes with a contract'])
    try {
      await contractFor(openapi.spec)
    } catch (err) {
      const e = err instanceof ContractLoadError ? err : new ContractLoadError(openapi.spec, '', (err as Error).message)
      throw new ConfigError('', [`openapi.spec: ${e.file}${e.pointer === '' ? '' : `#${e.pointer}`}: ${e.reason}`])
    }
  }
  const registerRoute = async function (fastify: FastifyInstance, opts: FastifyRegisterOptions<Record<string, unknown>>): Promise<void> {
    const runtime = proxyRuntimeOf(fastify, frozen.prefix)
    const registerOptions = (opts ?? {}) as { prefix?: string }
    const input = proxyInput(frozen, runtime, fastify.prefix + (registerOptions.prefix ?? ''), upstreamTls, file)
    const scope = runtime.scope
    if (scope !== undefined && scope.owner === fastify && (registerOptions.prefix ?? '') === '' && fitsProxyScope(input)) {
      registerScopedProxyRoute(scope.instance, runtime, input)
      return
    }
    await fastify.register(async function portcullisRouteContext (child: FastifyInstance) {
      await registerProxyRoute(child, input)
    }, registerOptions)
  }
  Object.defineProperty(plugin, Symbol.for('skip-override'), { value: true })
  Object.defineProperty(plugin, Symbol.for('fastify.display-name'), { value: `portcullis-route ${frozen.prefix}` })
  Object.defineProperty(plugin, ROUTE_BRAND, { value: true })
  const route: RoutePlugin = Object.assign(plugin, { routeOptions: frozen, routeFile: file, missingVariables })
  return route
}
