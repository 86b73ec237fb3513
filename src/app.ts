/**
 * The gateway as a Fastify plugin plus `buildGateway()`, which creates the hardened Fastify
 * instance around it. Never listens (src/server.ts does).
 *
 * Plugin chain, in registration order (order within a phase = order below):
 *
 * | plugin             | phase(s)                                                        | config key |
 * |--------------------|-----------------------------------------------------------------|------------|
 * | observability      | onRequest (request id), onSend (drain), onResponse (access log); /healthz, /readyz | - |
 * | metrics (ADMIN_PORT)| onRequest/onResponse counters; separate admin listener         | - |
 * | tracing            | onRequest: W3C traceparent continuation                          | - |
 * | security-headers   | onSend: gateway security headers win over the upstream's         | - |
 * | overload           | onRequest: 503 under event-loop/heap pressure                    | overload |
 * | ip-filter          | onRequest: gateway and route IP allow/deny, content types        | ipFilter, allowedContentTypes |
 * | ip rate limit      | onRequest: per client IP (IPv6 /64), before auth, counts 404s; Redis when set | - |
 * | request-guard      | onRequest: framing, path, sizes, upgrades; server: Expect (100 Continue) | websocket |
 * | cors               | onRequest: preflights answered here; route onSend                | cors |
 * | auth               | route onRequest (first): JWT / API key -> request.consumer       | auth |
 * | route rate limit   | route onRequest (after auth): per consumer, or IP when public    | rateLimit |
 * | inspect            | route onRequest (URL/query/headers/cookies), preValidation (body) | inspect |
 * | openapi            | route onRequest (operation, security, parameters), preValidation (body), onSend (responses) | openapi |
 * | proxy runtime      | decorator; routes add preParsing (body limit), preHandler        | proxy |
 * | proxy scope        | one context for every HTTP route: @fastify/reply-from, body parser | proxy |
 * | routes (ROUTES_DIR)| handler: reply-from in the scope; WebSocket routes: @fastify/http-proxy | - |
 */
import { readFileSync } from 'node:fs'
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { GatewayConfig } from './config.js'
import { ConfigError, gatewayClientErrorHandler, gatewayConnectRefusal, gatewayErrorHandler, gatewayNotFoundHandler } from './errors.js'
import { acceptProxyProtocol } from './proxy-protocol.js'
import { answerPlainHttpOnTls } from './tls-plain-http.js'
import { isRoutePlugin, missingVariableProblems } from './route.js'
import { DEFAULT_ROUTES_DIR, loadRouteModules } from './route-loader.js'
import { observabilityPlugin, genRequestId, REDACT_PATHS, redactUrl } from '../plugins/observability/index.js'
import { requestGuardPlugin } from '../plugins/request-guard/index.js'
import { proxyPlugin, proxyScopePlugin } from '../plugins/proxy/index.js'
import { securityHeadersPlugin } from '../plugins/security-headers/index.js'
import { corsPlugin } from '../plugins/cors/index.js'
import { metricsPlugin } from '../plugins/metrics/index.js'
import { tracingPlugin } from '../plugins/tracing/index.js'
import { authPlugin } from '../plugins/auth/index.js'
import { overloadPlugin } from '../plugins/overload/index.js'
import { ipFilterPlugin } from '../plugins/ip-filter/index.js'
import { ipRateLimitPlugin, routeRateLimitPlugin } from '../plugins/rate-limit/index.js'
import { inspectPlugin } from '../plugins/inspect/index.js'
import { openApiPlugin } from '../plugins/openapi/index.js'

export { DEFAULT_ROUTES_DIR } from './route-loader.js'

export interface GatewayAppOptions {
  readonly config: GatewayConfig
  /** Route plugins to register instead of loading `config.routesDir`. */
  readonly routes?: readonly FastifyPluginAsync[]
}

/** Registers the whole chain and the routes on an existing Fastify instance. */
async function gatewayApp (fastify: FastifyInstance, opts: GatewayAppOptions): Promise<void> {
  const { config } = opts
  fastify.setErrorHandler(gatewayErrorHandler)
  fastify.setNotFoundHandler(gatewayNotFoundHandler)

  await fastify.register(observabilityPlugin)
  if (config.admin.port !== undefined) await fastify.register(metricsPlugin, { port: config.admin.port, host: config.admin.host, ...(config.admin.instance !== undefined ? { instance: config.admin.instance } : {}) })
  await fastify.register(tracingPlugin, { otel: config.otel })
  await fastify.register(securityHeadersPlugin, { tls: config.tls !== undefined })
  await fastify.register(overloadPlugin, {})
  await fastify.register(ipFilterPlugin, { allow: [...config.inspect.ipAllow], deny: [...config.inspect.ipDeny] })
  const rateLimitStore = {
    ...(config.rateLimit.redisUrl !== undefined ? { redisUrl: config.rateLimit.redisUrl } : {}),
    redisTimeoutMs: config.rateLimit.redisTimeoutMs,
    failureMode: config.rateLimit.failureMode,
    keyPrefix: config.rateLimit.redisKeyPrefix
  }
  await fastify.register(ipRateLimitPlugin, { max: config.rateLimit.ipMax, timeWindow: config.rateLimit.ipTimeWindow, ...rateLimitStore })
  await fastify.register(requestGuardPlugin, { pathCheck: config.pathCheck, http2RequestTimeoutMs: config.requestTimeoutMs, ...(config.publicHosts !== undefined ? { publicHosts: config.publicHosts } : {}) })
  await fastify.register(corsPlugin)
  await fastify.register(authPlugin, config.auth)
  await fastify.register(routeRateLimitPlugin, rateLimitStore)
  await fastify.register(inspectPlugin, { mode: config.inspect.mode, detectRules: [...config.inspect.detectRules], verdictCacheSize: config.inspect.verdictCacheSize, timeoutMs: config.inspect.timeoutMs, ...(config.inspect.rulesFile !== undefined ? { rulesFile: config.inspect.rulesFile } : {}) })
  await fastify.register(openApiPlugin)
  await fastify.register(proxyPlugin, {
    bodyLimit: config.bodyLimit,
    responseBufferBytes: config.responseBufferBytes,
    sendTimeoutMs: config.sendTimeoutMs,
    tls: config.tls !== undefined,
    upstreamRejectUnauthorized: !config.upstreamTls.insecure,
    ...(config.upstreamTls.ca !== undefined ? { upstreamCa: config.upstreamTls.ca } : {}),
    defaultRateLimit: { max: config.rateLimit.max, timeWindow: config.rateLimit.timeWindow },
    defaultInspectMode: config.inspect.mode,
    stripRequestHeaders: [...config.stripRequestHeaders],
    trustProxy: [...config.trustProxy]
  })

  await fastify.register(proxyScopePlugin)

  if (opts.routes !== undefined) {
    const missing = config.production ? opts.routes.filter(isRoutePlugin).flatMap(missingVariableProblems) : []
    if (missing.length > 0) throw new ConfigError('invalid routes', missing, '')
    for (const route of opts.routes) await fastify.register(route)
  } else {
    const routes = await loadRouteModules(config.routesDir ?? DEFAULT_ROUTES_DIR, config.production)
    for (const route of routes) await fastify.register(route)
  }
}

export const gatewayPlugin = fp(gatewayApp, { name: 'portcullis-gateway', fastify: '5.x' })

/** Logger options: pino with credentials redacted and secret-looking query values masked. */
export function loggerOptions (config: Pick<GatewayConfig, 'logLevel'>): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    serializers: {
      req (req: { method?: string, url?: string, id?: string }) {
        return { method: req.method, url: redactUrl(req.url ?? ''), id: req.id }
      }
    }
  }
}

export interface BuildGatewayOptions {
  /** Route plugins to register instead of loading ROUTES_DIR (tests, embedding). */
  routes?: readonly FastifyPluginAsync[]
  /** Logger: options, a pino instance, or false (default: from config). */
  logger?: FastifyServerOptions['logger']
  loggerInstance?: FastifyServerOptions['loggerInstance']
}

/**
 * How often Node checks the header and request deadlines of open connections. Its default is
 * 30 s, so a slowloris connection would outlive HEADERS_TIMEOUT_MS many times over.
 */
const DEADLINE_CHECK_MS = 500

/**
 * A URL the router cannot decode (`%zz`) is answered before any hook runs: the gateway's body
 * (not the framework's, which echoes the path), its request id and its security headers.
 */
function gatewayFrameworkErrors (err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  if (request.server.hasDecorator('portcullisSecurityHeaders')) reply.headers(request.server.portcullisSecurityHeaders)
  reply.header('x-request-id', request.id)
  gatewayErrorHandler(err, request, reply)
}

/** Fastify server options for the gateway: bounded headers, bodies and time (slowloris). */
export function serverOptions (config: GatewayConfig): FastifyServerOptions {
  const base: FastifyServerOptions = {
    genReqId: genRequestId,
    requestIdHeader: false,
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: config.trustProxy.length > 0 ? [...config.trustProxy] : false,
    bodyLimit: config.bodyLimit,
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    connectionTimeout: config.requestTimeoutMs + config.keepAliveTimeoutMs,
    maxRequestsPerSocket: 10_000,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    routerOptions: { caseSensitive: true, ignoreTrailingSlash: false, ignoreDuplicateSlashes: false, maxParamLength: 512 },
    clientErrorHandler: gatewayClientErrorHandler,
    frameworkErrors: gatewayFrameworkErrors
  }
  if (config.tls !== undefined) {
    const https = { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile), minVersion: 'TLSv1.2' as const, connectionsCheckingInterval: DEADLINE_CHECK_MS, requireHostHeader: false }
    if (config.tls.http2) return { ...base, http2: true, https: { ...https, allowHTTP1: true } } as FastifyServerOptions
    return { ...base, https } as FastifyServerOptions
  }
  // requireHostHeader: Node would answer a missing Host with its own bare 400; the request guard
  // refuses it with the gateway's body instead.
  return { ...base, http: { connectionsCheckingInterval: DEADLINE_CHECK_MS, requireHostHeader: false } } as FastifyServerOptions
}

/** Creates the gateway (not listening). */
export async function buildGateway (config: GatewayConfig, opts: BuildGatewayOptions = {}): Promise<FastifyInstance> {
  const logging = opts.loggerInstance !== undefined
    ? { loggerInstance: opts.loggerInstance }
    : { logger: opts.logger ?? loggerOptions(config) }
  const app = Fastify({ ...serverOptions(config), ...logging }) as unknown as FastifyInstance
  if (config.tls?.http2 !== true) {
    app.server.headersTimeout = config.headersTimeoutMs
    app.server.maxHeadersCount = 0
    app.server.on('connect', gatewayConnectRefusal)
  }
  if (config.tls !== undefined) answerPlainHttpOnTls(app.server, app.log)
  if (config.proxyProtocol) acceptProxyProtocol(app.server, { trusted: config.trustProxy, timeoutMs: config.headersTimeoutMs, log: app.log })
  await app.register(gatewayPlugin, { config, ...(opts.routes !== undefined ? { routes: opts.routes } : {}) })
  return app
}
