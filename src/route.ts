/**
 * `defineRoute()`: one upstream service described as data, returned as a Fastify plugin.
 *
 * The options are validated when the route module is evaluated, so a bad route file stops the
 * gateway at startup with the file name, the option and the reason (GW_CONFIG_INVALID).
 * Policies (`auth`, `rateLimit`, `inspect`) ride on the proxied routes' Fastify `config`, where
 * the gateway's plugins read them.
 */
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
import { fitsProxyScope, proxyRuntimeOf, registerProxyRoute, registerScopedProxyRoute } from '../plugins/proxy/route.js'
import type { ProxyRouteInput, ProxyRuntime } from '../plugins/proxy/schema.js'
import type { RoutePolicySummary } from '../lib/route-contract.js'
import { errorLines } from '../lib/validate.js'
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
  requireOrigin: Type.Optional(Type.Boolean({ description: 'Refuse handshakes without an Origin header with 403 (default false: non-browser clients send none).' }))
}, { additionalProperties: false })

export const RouteOptionsSchema = Type.Object({
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
  auth: Type.Optional(AuthRouteConfigSchema),
  rateLimit: Type.Optional(RateLimitRouteConfigSchema),
  inspect: Type.Optional(InspectRouteConfigSchema),
  cors: Type.Optional(CorsRouteConfigSchema),
  ipFilter: Type.Optional(IpFilterRouteConfigSchema),
  allowedContentTypes: Type.Optional(AllowedContentTypesSchema)
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
  if (typeof o.websocket === 'object') {
    for (const origin of o.websocket.allowedOrigins ?? []) {
      // Browsers send the serialised origin: lower case, no default port (RFC 6454 6.2).
      const serialised = URL.canParse(origin) ? new URL(origin).origin : null
      if (serialised !== origin) problems.push(`websocket.allowedOrigins: "${origin}" is not a serialised origin${serialised === null ? '' : ` (write it as "${serialised}")`}`)
    }
  }
  return problems
}

/** The route table's words for a route's resolved policies. */
function describePolicy (route: Readonly<RouteOptions>, rateLimit: RateLimitRouteConfig, inspect: InspectRouteConfig): RoutePolicySummary {
  const auth = route.auth === false ? 'public' : (route.auth?.strategies?.join('|') ?? 'any configured') + (route.auth?.scopes !== undefined ? ` scopes=${route.auth.scopes.join(',')}` : '')
  const rl = rateLimit === false ? 'off' : `${rateLimit.max}/${String(rateLimit.timeWindow)}`
  const ins = inspect === false ? 'off' : `${inspect.mode ?? 'block'}${inspect.body === true ? '+body' : ''}`
  return { auth, rateLimit: rl, inspect: ins }
}

/**
 * What the proxy registers for a route: its transport options, and its policies resolved against
 * the gateway defaults (a route without `rateLimit` or `inspect` gets the runtime's), put on the
 * `config` of its Fastify routes for the policy plugins to read.
 */
function proxyInput (route: Readonly<RouteOptions>, runtime: ProxyRuntime): ProxyRouteInput {
  const rateLimit: RateLimitRouteConfig = route.rateLimit ?? runtime.defaultRateLimit
  const inspect: InspectRouteConfig = route.inspect ?? runtime.defaultInspect
  return {
    ...route,
    bufferBody: inspect !== false && inspect.body === true,
    policy: describePolicy(route, rateLimit, inspect),
    config: {
      auth: route.auth ?? {},
      rateLimit,
      inspect,
      cors: route.cors ?? false,
      // Read by the ip-filter plugin; always present (possibly undefined) for one hidden class.
      ipFilter: route.ipFilter,
      allowedContentTypes: route.allowedContentTypes
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
  if (problems.length > 0) throw new ConfigError(`invalid route in ${file}`, problems, file)
  const targets = Array.isArray(options.upstream) ? options.upstream : [options.upstream]
  const missingVariables = Object.freeze(targets.map(missingUpstreamVariable).filter((v) => v !== undefined))

  const frozen: Readonly<RouteOptions> = Object.freeze(structuredClone(options))
  // Not encapsulating by itself: the routes join the gateway's shared proxy scope when registered
  // on the instance that opened it; anywhere else they get a context of their own, created here
  // with the register options (a `prefix` there still prepends to the route's prefix).
  const plugin = async function portcullisRoute (fastify: FastifyInstance, opts: FastifyRegisterOptions<Record<string, unknown>>): Promise<void> {
    if (missingVariables.length > 0) throw new ConfigError('invalid route', missingVariableProblems(route), '')
    try {
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
  const registerRoute = async function (fastify: FastifyInstance, opts: FastifyRegisterOptions<Record<string, unknown>>): Promise<void> {
    const runtime = proxyRuntimeOf(fastify, frozen.prefix)
    const input = proxyInput(frozen, runtime)
    const scope = runtime.scope
    const registerOptions = (opts ?? {}) as { prefix?: string }
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
