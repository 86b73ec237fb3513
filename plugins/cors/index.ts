/**
 * portcullis-cors: CORS per route, deny by default.
 *
 * Config key: `config.cors` (`false` or absent: no CORS headers at all; an object: the listed
 * origins), validated and precomputed in an onRoute hook into header strings.
 * Hooks: instance-level onRequest `corsOnRequest` (answers preflights before any route-level hook,
 * so before authentication, and never proxies them; a route without a policy costs one lookup),
 * route-level onSend `corsOnSend` on CORS routes only (replaces whatever `access-control-*` the
 * upstream sent with the gateway's decision; portcullis-security-headers strips them on other routes).
 * Preflight = OPTIONS with `Access-Control-Request-Method`. From an allowed origin: 204 with the
 * allow headers. From any other origin (or none): 403 GW_CORS_ORIGIN_NOT_ALLOWED, no CORS headers.
 * Actual requests go on through the chain (auth still applies); an allowed origin gets
 * `Access-Control-Allow-Origin` (and credentials / expose headers as configured).
 *
 * @fastify/cors is not used: it always registers an `OPTIONS *` route, which collides with a
 * catch-all (`prefix: '/'`) proxy route (FST_ERR_DUPLICATED_ROUTE), merges options per request on
 * every route, and answers preflights from disallowed origins with the allow headers.
 * Errors: GW_CORS_ORIGIN_NOT_ALLOWED (403), GW_CONFIG_INVALID at startup.
 */
import fp from 'fastify-plugin'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions, onSendHookHandler } from 'fastify'
import { ConfigError, CorsOriginNotAllowedError } from '../../lib/errors.js'
import { CORS_RESPONSE_HEADERS, CorsPolicySchema, corsCrossFieldProblems, type CorsPolicy, type CorsRouteConfig } from './schema.js'
import { routeConfigWith } from '../../lib/route-config.js'
import { appendHook, hookList } from '../../lib/route-hooks.js'

export { CorsRouteConfigSchema, CorsPolicySchema, CORS_RESPONSE_HEADERS } from './schema.js'
export type { CorsPolicy, CorsRouteConfig } from './schema.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's CORS policy (`false` or absent: no CORS). */
    cors?: CorsRouteConfig
  }
}

/** A route's policy as header values, computed once. */
interface CompiledCors {
  readonly anyOrigin: boolean
  readonly origins: ReadonlySet<string>
  readonly credentials: boolean
  readonly allowMethods: string
  readonly allowHeaders: string
  readonly exposeHeaders: string | undefined
  readonly maxAge: string
}

/** The gateway's credential headers (JWT and API key) and JSON bodies: what a browser app sends by default. */
const DEFAULT_ALLOW_HEADERS: readonly string[] = ['authorization', 'content-type', 'x-api-key']

const kCors = Symbol('portcullis.cors.policy')
const kCorsOrigin = Symbol('portcullis.cors.origin')
const kCorsPreflight = Symbol('portcullis.cors.preflight')

interface CorsRequest { [kCorsOrigin]: string | null, [kCorsPreflight]: boolean }

const checkPolicy = TypeCompiler.Compile(CorsPolicySchema)

function compile (policy: CorsPolicy): CompiledCors {
  return Object.freeze({
    anyOrigin: policy.origins.includes('*'),
    origins: new Set(policy.origins),
    credentials: policy.credentials === true,
    allowMethods: (policy.methods ?? ['GET', 'HEAD', 'POST']).join(', '),
    allowHeaders: (policy.headers ?? DEFAULT_ALLOW_HEADERS).join(', '),
    exposeHeaders: policy.exposeHeaders !== undefined && policy.exposeHeaders.length > 0 ? policy.exposeHeaders.join(', ') : undefined,
    maxAge: String(policy.maxAgeS ?? 600)
  })
}

function addVaryOrigin (reply: FastifyReply): void {
  const vary = reply.getHeader('vary')
  if (vary === undefined) {
    reply.header('vary', 'Origin')
    return
  }
  const text = Array.isArray(vary) ? vary.join(', ') : String(vary)
  if (!/(?:^|,)\s*(?:origin|\*)\s*(?:,|$)/i.test(text)) reply.header('vary', `${text}, Origin`)
}

function corsOnRequest (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const policy = (request.routeOptions.config as unknown as Record<symbol, CompiledCors | undefined>)[kCors]
  if (policy === undefined) {
    done()
    return
  }
  const origin = request.headers.origin
  const preflight = request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined
  if (origin === undefined || !(policy.anyOrigin || policy.origins.has(origin))) {
    if (preflight) {
      request.log.debug({ route: request.routeOptions.url }, 'CORS preflight from a disallowed origin')
      throw new CorsOriginNotAllowedError()
    }
    done()
    return
  }
  const r = request as unknown as CorsRequest
  r[kCorsOrigin] = policy.anyOrigin ? '*' : origin
  if (!preflight) {
    done()
    return
  }
  r[kCorsPreflight] = true
  // Answered here: a callback-style hook that replies does not call done().
  reply.code(204).send()
}

const corsOnSend: onSendHookHandler = async function corsOnSend (request, reply, payload) {
  const policy = (request.routeOptions.config as unknown as Record<symbol, CompiledCors | undefined>)[kCors]
  if (policy === undefined) return payload
  for (let i = 0; i < CORS_RESPONSE_HEADERS.length; i++) {
    const name = CORS_RESPONSE_HEADERS[i] as string
    if (reply.hasHeader(name)) reply.removeHeader(name)
  }
  if (!policy.anyOrigin) addVaryOrigin(reply)
  const r = request as unknown as CorsRequest
  const origin = r[kCorsOrigin]
  if (origin === null) return payload
  reply.header('access-control-allow-origin', origin)
  if (policy.credentials) reply.header('access-control-allow-credentials', 'true')
  if (r[kCorsPreflight]) {
    reply.header('access-control-allow-methods', policy.allowMethods)
    if (policy.allowHeaders !== '') reply.header('access-control-allow-headers', policy.allowHeaders)
    reply.header('access-control-max-age', policy.maxAge)
  } else if (policy.exposeHeaders !== undefined) {
    reply.header('access-control-expose-headers', policy.exposeHeaders)
  }
  return payload
}

function problemsOf (policy: unknown): string[] {
  const problems: string[] = []
  const seen = new Set<string>()
  for (const e of checkPolicy.Errors(policy)) {
    const where = `cors${e.path.replaceAll('/', '.')}`
    if (seen.has(where)) continue
    seen.add(where)
    problems.push(`${where}: ${e.message}`)
  }
  if (problems.length === 0) problems.push(...corsCrossFieldProblems(policy as CorsPolicy))
  return problems
}

async function gatewayCors (fastify: FastifyInstance): Promise<void> {
  const compiled = new WeakMap<object, CompiledCors>()
  fastify.decorateRequest(kCorsOrigin, null)
  fastify.decorateRequest(kCorsPreflight, false)

  fastify.addHook('onRoute', function corsOnRoute (routeOptions: RouteOptions) {
    const cors = (routeOptions.config as { cors?: unknown } | undefined)?.cors
    if (cors === undefined || cors === false) return
    if (typeof cors !== 'object' || cors === null) {
      throw new ConfigError(`invalid cors policy of route ${String(routeOptions.method)} ${routeOptions.url ?? ''}`, ['cors: must be false or an object'])
    }
    let policy = compiled.get(cors)
    if (policy === undefined) {
      const problems = problemsOf(cors)
      if (problems.length > 0) throw new ConfigError(`invalid cors policy of route ${String(routeOptions.method)} ${routeOptions.url ?? ''}`, problems)
      policy = compile(cors as CorsPolicy)
      compiled.set(cors, policy)
    }
    // New objects: the caller's config (and the HEAD twin sharing it) stay untouched.
    routeOptions.config = routeConfigWith(routeOptions.config, { [kCors]: policy })
    if (!hookList(routeOptions.onSend).includes(corsOnSend)) routeOptions.onSend = appendHook(routeOptions.onSend, corsOnSend)
  })

  fastify.addHook('onRequest', corsOnRequest)
}

/** Registers per-route CORS; register it before the routes (its onRoute hook must see them). */
export const corsPlugin = fp(gatewayCors, { name: 'portcullis-cors', fastify: '5.x', dependencies: [] })
export default corsPlugin
