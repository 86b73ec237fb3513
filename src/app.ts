/**
 * The gateway as a Fastify plugin plus `buildGateway()`, which creates the hardened Fastify
 * instance around it. Never listens (src/server.ts does).
 *
 * The plugin chain is declared once, in `GATEWAY_CHAIN` (src/chain.ts): `gatewayApp()` registers
 * it in that order, then the routes. Its table (order, phases, route `config` keys) is generated
 * into docs/reference/chain.md.
 */
import { createServer } from 'node:http'
import type { SecureContextOptions } from 'node:tls'
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { GatewayConfig } from './config.js'
import { ConfigError } from '../lib/errors.js'
import { gatewayClientErrorHandler, gatewayConnectRefusal, gatewayErrorHandler, gatewayNotFoundHandler } from './errors.js'
import { acceptProxyProtocol } from './proxy-protocol.js'
import { answerPlainHttpOnTls } from './tls-plain-http.js'
import { isRoutePlugin, missingVariableProblems } from './route.js'
import { DEFAULT_ROUTES_DIR, loadRouteModules } from './route-loader.js'
import { genRequestId, REDACT_PATHS, redactUrl } from '../plugins/observability/index.js'
import { GATEWAY_CHAIN } from './chain.js'
import { readServerSecureContext } from './server-tls.js'

export { DEFAULT_ROUTES_DIR } from './route-loader.js'

export interface GatewayAppOptions {
  readonly config: GatewayConfig
  /** Route plugins to register instead of loading `config.routesDir`. */
  readonly routes?: readonly FastifyPluginAsync[]
  /** Imports the route modules afresh (a configuration reload; see loadRouteModules). */
  readonly routesVersion?: number
}

/** Registers the whole chain and the routes on an existing Fastify instance. */
async function gatewayApp (fastify: FastifyInstance, opts: GatewayAppOptions): Promise<void> {
  const { config } = opts
  fastify.setErrorHandler(gatewayErrorHandler)
  fastify.setNotFoundHandler(gatewayNotFoundHandler)

  for (const link of GATEWAY_CHAIN) await link.register(fastify, config)

  if (opts.routes !== undefined) {
    const missing = config.production ? opts.routes.filter(isRoutePlugin).flatMap(missingVariableProblems) : []
    if (missing.length > 0) throw new ConfigError('invalid routes', missing, '')
    for (const route of opts.routes) await fastify.register(route)
  } else {
    const routes = await loadRouteModules(config.routesDir ?? DEFAULT_ROUTES_DIR, config.production, opts.routesVersion)
    for (const route of routes) await fastify.register(route)
  }
}

export const gatewayPlugin = fp(gatewayApp, { name: 'portcullis-gateway', fastify: '5.x' })

/** Logger options: pino with credentials redacted and secret-looking query values masked. */
export function loggerOptions (config: { readonly logLevel: string }): FastifyServerOptions['logger'] {
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
  /**
   * A configuration reload: the app gets no listening server of its own (a private, never
   * listening one whose events the running server forwards: src/reload.ts), so the per-server
   * settings (timeouts, TLS, PROXY protocol, client errors) stay those of the running server,
   * and the route modules are imported afresh under this version.
   */
  reloadVersion?: number
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

/**
 * TLS options of the listener: the secure context read from the files (server-tls.ts: the
 * certificate, and with TLS_CLIENT_CA_FILE the client CA bundle and CRLs), and whether to ask
 * clients for a certificate. In `request` mode the handshake never fails for want of a valid one
 * (`rejectUnauthorized: false`): the `mtls` strategy reads the socket's verdict and answers 401
 * with the gateway's body on the routes that need it.
 */
function tlsOptions (tls: NonNullable<GatewayConfig['tls']>): SecureContextOptions & { requestCert?: boolean, rejectUnauthorized?: boolean } {
  const { options } = readServerSecureContext(tls)
  if (tls.clientCaFile === undefined) return options
  return { ...options, requestCert: true, rejectUnauthorized: tls.clientCertMode === 'require' }
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
    const https = { ...tlsOptions(config.tls), connectionsCheckingInterval: DEADLINE_CHECK_MS, requireHostHeader: false }
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
  if (opts.reloadVersion !== undefined) {
    const app = Fastify({ ...serverOptions(config), ...logging, serverFactory: (handler) => createServer(handler) }) as unknown as FastifyInstance
    await app.register(gatewayPlugin, { config, routesVersion: opts.reloadVersion, ...(opts.routes !== undefined ? { routes: opts.routes } : {}) })
    return app
  }
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
