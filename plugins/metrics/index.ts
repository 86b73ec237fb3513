/**
 * portcullis-metrics: Prometheus metrics on a separate admin listener (never the public port).
 *
 * Hooks: onRequest `metricsOnRequest` (in-flight), onResponse `metricsOnResponse` (requests by
 * route, method and status; latency histogram), onRequestAbort `metricsOnAbort` (in-flight).
 * onRoute `metricsOnRoute` precomputes each route's label and prom-client children.
 * Signals (node:diagnostics_channel, see lib/signals.ts): upstreamError,
 * authFailure, rateLimited, inspectMatch, storeState, contractViolation.
 * Config key read: `proxy` (the route label of a proxied route is its public prefix).
 * Admin listener: node:http on `host:port`, GET/HEAD /metrics (404 otherwise), started in
 * onReady and closed in onClose; its address is `fastify.portcullisAdmin.url`. `POST /reload`
 * runs `portcullisAdmin.reload` (set by the process entry) for loopback peers only (403 for
 * others, 404 when no reload is set). Gateways of one process on the same fixed port share one
 * listener (a configuration reload builds the next gateway while the previous still serves):
 * the newest open one answers, and the last one closed closes it.
 * Labels are bounded: route templates (never raw paths; `(unrouted)` for 404s), fixed tokens for
 * kinds/reasons/rules, and `(other)` past a cap. Each app has its own prom-client Registry, and
 * every series carries `instance` (INSTANCE_ID, default `<hostname>-<pid>`).
 * Errors: GW_CONFIG_INVALID at registration; listen errors fail `ready()`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import fp from 'fastify-plugin'
import type { Registry } from 'prom-client'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions } from 'fastify'
import {
  authFailure, contractViolation, inspectMatch, rateLimited, storeState, upstreamError,
  type AuthFailureSignal, type ContractViolationSignal, type InspectMatchSignal, type RateLimitedSignal, type StoreStateSignal, type UpstreamErrorSignal
} from '../../lib/signals.js'
import { HistogramCell, RequestCells, RouteHistogram } from './cells.js'
import { BoundedLabel, OPERATION, UNROUTED, methodLabel } from './labels.js'
import { defaultInstance, resolveMetricsOptions, type MetricsPluginOptions } from './schema.js'
import '../../lib/route-contract.js'
import { routeConfigWith } from '../../lib/route-config.js'

export type { MetricsPluginOptions } from './schema.js'

/** The admin listener (metrics) of one gateway. */
export interface AdminListener {
  /** `http://host:port` once listening (after ready), else undefined. */
  url: string | undefined
  /** The gateway's own registry (for tests and embedding apps). */
  readonly registry: Registry
  /** What `POST /reload` runs (loopback peers only); undefined = 404. */
  reload: (() => Promise<AdminReloadOutcome>) | undefined
}

/** The answer of `POST /reload`: whether the new configuration is serving, and why not. */
export interface AdminReloadOutcome {
  readonly ok: boolean
  readonly problems: readonly string[]
}

interface SharedAdmin {
  readonly server: Server
  /** Gateways using the listener, oldest first; the newest answers. */
  readonly users: AdminListener[]
}

/** Admin listeners on a fixed port, by `host:port`, shared by the gateways of this process. */
const sharedAdmins = new Map<string, SharedAdmin>()

function loopback (address: string | undefined): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1'
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The metrics admin listener (portcullis-metrics). */
    portcullisAdmin: AdminListener
  }
}

/** Latency buckets in seconds: sub-millisecond gateway answers up to slow upstreams. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/** One route label's hot-path cells, created once and reused. */
class RouteSeries {
  constructor (readonly label: string, readonly requests: RequestCells, readonly duration: HistogramCell) {}
}

const kSeries = Symbol('portcullis.metrics.series')
const kInFlight = Symbol('portcullis.metrics.inFlight')

async function gatewayMetrics (fastify: FastifyInstance, opts: MetricsPluginOptions): Promise<void> {
  const options = resolveMetricsOptions(opts)
  // prom-client is loaded with the plugin: a gateway without ADMIN_PORT never loads it.
  const { Counter, Gauge, Registry: PromRegistry, collectDefaultMetrics } = await import('prom-client')
  const registry = new PromRegistry()
  // One constant label on every series (prom-client adds it at exposition, no hot-path cost):
  // several processes behind one scrape target, or one dashboard over many, never merge series.
  registry.setDefaultLabels({ instance: options.instance ?? defaultInstance() })
  let inFlight = 0

  const series = new Map<string, RouteSeries>()
  // Hot-path counts live in plain cells and are copied into prom-client on each scrape.
  // eslint-disable-next-line no-new -- registered in `registry`, read at scrape time
  new Counter({
    name: 'portcullis_http_requests_total',
    help: 'Requests answered, by route template, method and status.',
    labelNames: ['route', 'method', 'status'],
    registers: [registry],
    collect () {
      this.reset()
      for (const s of series.values()) s.requests.flush(this, methodLabel)
    }
  })
  const duration = new RouteHistogram('portcullis_http_request_duration_seconds', 'Time from request to response, by route template.', DURATION_BUCKETS, registry)
  // eslint-disable-next-line no-new -- registered in `registry`, read at scrape time
  new Gauge({ name: 'portcullis_http_requests_in_flight', help: 'Requests being processed.', registers: [registry], collect () { this.set(inFlight) } })
  const upstreamErrors = new Counter({ name: 'portcullis_upstream_errors_total', help: 'Failed upstream attempts, by route and kind (refused, reset, timeout, unavailable, invalid, overload).', labelNames: ['route', 'kind'], registers: [registry] })
  const authFailures = new Counter({ name: 'portcullis_auth_failures_total', help: 'Authentication (401) and authorization (403) failures, by route and reason.', labelNames: ['route', 'status', 'reason'], registers: [registry] })
  const limited = new Counter({ name: 'portcullis_rate_limited_total', help: 'Requests refused by a rate limit, by route and tier (ip, route).', labelNames: ['route', 'tier'], registers: [registry] })
  const inspected = new Counter({ name: 'portcullis_inspect_matches_total', help: 'Requests matched by an inspection rule, by route, rule, family and action (blocked, detected).', labelNames: ['route', 'rule', 'family', 'action'], registers: [registry] })
  const contractViolations = new Counter({ name: 'portcullis_contract_violations_total', help: 'Requests and responses that broke their route\'s API contract (OpenAPI), by route, operation, kind and action (blocked, detected); kind shadow counts operations the document lacks.', labelNames: ['route', 'operation', 'kind', 'action'], registers: [registry] })
  const storeUp = new Gauge({ name: 'portcullis_store_up', help: 'Shared store reachable (1) or not (0).', labelNames: ['store'], registers: [registry] })
  const storeErrors = new Counter({ name: 'portcullis_store_errors_total', help: 'Shared store operations that failed (the failure mode applied).', labelNames: ['store'], registers: [registry] })
  if (options.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'portcullis_' })

  const routeLabels = new BoundedLabel(options.maxRouteLabels)
  const kinds = new BoundedLabel(32)
  const reasons = new BoundedLabel(64)
  const tiers = new BoundedLabel(8)
  const rules = new BoundedLabel(1000)
  const families = new BoundedLabel(64)
  const stores = new BoundedLabel(8)
  const operations = new BoundedLabel(1000, OPERATION)
  const contractKinds = new BoundedLabel(32)
  /** Route url or prefix as published in signals -> route label. */
  const signalRoutes = new Map<string, string>([['<unrouted>', UNROUTED], [UNROUTED, UNROUTED]])
  // `series`: route label -> cells (routes registered before this plugin are resolved lazily).

  function seriesFor (label: string): RouteSeries {
    let s = series.get(label)
    if (s === undefined) {
      s = new RouteSeries(label, new RequestCells(label), duration.cell(label))
      series.set(label, s)
    }
    return s
  }

  function signalRoute (route: unknown): string {
    if (typeof route === 'string') {
      const known = signalRoutes.get(route)
      if (known !== undefined) return known
    }
    return routeLabels.value(route)
  }

  fastify.addHook('onRoute', function metricsOnRoute (routeOptions: RouteOptions) {
    const url = routeOptions.url ?? ''
    const label = routeLabels.value(routeOptions.config?.proxy?.prefix ?? url)
    signalRoutes.set(url, label)
    if (routeOptions.config?.proxy !== undefined) signalRoutes.set(routeOptions.config.proxy.prefix, label)
    routeOptions.config = routeConfigWith(routeOptions.config, { [kSeries]: seriesFor(label) })
  })

  function seriesOf (request: FastifyRequest): RouteSeries {
    const config = request.routeOptions.config as unknown as Record<symbol, RouteSeries | undefined> & { url?: string, proxy?: { prefix: string } }
    const s = config[kSeries]
    if (s !== undefined) return s
    if (request.is404) return seriesFor(UNROUTED)
    return seriesFor(routeLabels.value(config.proxy?.prefix ?? config.url ?? UNROUTED))
  }

  fastify.decorateRequest(kInFlight, false)
  // Callback-style hooks: no promise and no microtask per request.
  fastify.addHook('onRequest', function metricsOnRequest (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
    inFlight++;
    (request as unknown as Record<symbol, boolean>)[kInFlight] = true
    done()
  })
  fastify.addHook('onRequestAbort', function metricsOnAbort (request: FastifyRequest, done: HookHandlerDoneFunction) {
    const r = request as unknown as Record<symbol, boolean>
    if (r[kInFlight] === true) {
      r[kInFlight] = false
      inFlight--
    }
    done()
  })
  fastify.addHook('onResponse', function metricsOnResponse (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) {
    const r = request as unknown as Record<symbol, boolean>
    if (r[kInFlight] === true) {
      r[kInFlight] = false
      inFlight--
    }
    const s = seriesOf(request)
    s.requests.cell(request.method, reply.statusCode).n++
    s.duration.observe(reply.elapsedTime / 1000)
    done()
  })

  function onUpstreamError (message: unknown): void {
    const m = message as UpstreamErrorSignal
    upstreamErrors.inc({ route: signalRoute(m.route), kind: kinds.value(m.kind) })
  }
  function onAuthFailure (message: unknown): void {
    const m = message as AuthFailureSignal
    authFailures.inc({ route: signalRoute(m.route), status: m.status === 403 ? '403' : '401', reason: reasons.value(m.reason) })
  }
  function onRateLimited (message: unknown): void {
    const m = message as RateLimitedSignal
    limited.inc({ route: signalRoute(m.route), tier: tiers.value(m.tier) })
  }
  function onInspectMatch (message: unknown): void {
    const m = message as InspectMatchSignal
    inspected.inc({ route: signalRoute(m.route), rule: rules.value(m.ruleId), family: families.value(m.family), action: m.blocked ? 'blocked' : 'detected' })
  }
  function onContractViolation (message: unknown): void {
    const m = message as ContractViolationSignal
    contractViolations.inc({ route: signalRoute(m.route), operation: operations.value(m.operation), kind: contractKinds.value(m.kind), action: m.blocked ? 'blocked' : 'detected' })
  }
  function onStoreState (message: unknown): void {
    const m = message as StoreStateSignal
    const store = stores.value(m.store)
    if (m.state === 'error') storeErrors.inc({ store })
    else storeUp.set({ store }, m.state === 'up' ? 1 : 0)
  }
  const subscriptions = [
    [upstreamError, onUpstreamError], [authFailure, onAuthFailure], [rateLimited, onRateLimited],
    [inspectMatch, onInspectMatch], [storeState, onStoreState], [contractViolation, onContractViolation]
  ] as const
  for (const [channel, fn] of subscriptions) channel.subscribe(fn)

  const admin: AdminListener = { url: undefined, registry, reload: undefined }
  fastify.decorate('portcullisAdmin', admin)
  let key = options.port === 0 ? undefined : `${options.host}:${String(options.port)}`
  let shared: SharedAdmin | undefined

  fastify.addHook('onReady', async function metricsListen () {
    const existing = key === undefined ? undefined : sharedAdmins.get(key)
    if (existing !== undefined) {
      existing.users.push(admin)
      shared = existing
    } else {
      const users: AdminListener[] = []
      const server = adminServer(() => users, fastify.log)
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(options.port, options.host, () => {
          server.off('error', reject)
          resolve()
        })
      })
      users.push(admin)
      shared = { server, users }
      // Port 0: the port really bound, which a reload asks for by number.
      key ??= `${options.host}:${String((server.address() as AddressInfo).port)}`
      sharedAdmins.set(key, shared)
    }
    const address = shared.server.address() as AddressInfo
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    admin.url = `http://${host}:${address.port}`
    if (existing === undefined) fastify.log.info({ url: admin.url }, 'metrics admin listener ready')
  })

  fastify.addHook('onClose', async function metricsClose () {
    for (const [channel, fn] of subscriptions) channel.unsubscribe(fn)
    if (shared !== undefined) {
      const users = shared.users
      users.splice(users.indexOf(admin), 1)
      if (users.length === 0) {
        if (key !== undefined && sharedAdmins.get(key) === shared) sharedAdmins.delete(key)
        shared.server.closeAllConnections()
        const server = shared.server
        await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
      }
    }
    registry.clear()
  })
}

function answer (res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' })
  res.end(body)
}

/** `POST /reload`: the newest gateway's reload, for loopback peers only. */
function adminReload (users: readonly AdminListener[], req: IncomingMessage, res: ServerResponse, log: FastifyInstance['log']): void {
  let reload: AdminListener['reload']
  for (const u of users) reload = u.reload ?? reload
  if (reload === undefined) {
    answer(res, 404, 'Not Found\n')
    return
  }
  if (!loopback(req.socket.remoteAddress)) {
    answer(res, 403, 'Forbidden: POST /reload answers loopback peers only\n')
    return
  }
  req.resume()
  reload().then((outcome) => {
    answer(res, outcome.ok ? 200 : 422, `${JSON.stringify(outcome)}\n`, 'application/json; charset=utf-8')
  }, (err: unknown) => {
    log.error({ err }, 'reload failed')
    answer(res, 500, 'Internal Server Error\n')
  })
}

/** The admin listener of the gateways sharing `users` (newest last). */
function adminServer (users: () => readonly AdminListener[], log: FastifyInstance['log']): Server {
  const server: Server = createServer(function metricsAdminRequest (req: IncomingMessage, res: ServerResponse) {
    const path = (req.url ?? '').split('?', 1)[0]
    const current = users()
    if (req.method === 'POST' && path === '/reload') {
      adminReload(current, req, res, log)
      return
    }
    const registry = current.at(-1)?.registry
    if ((req.method !== 'GET' && req.method !== 'HEAD') || path !== '/metrics' || registry === undefined) {
      answer(res, 404, 'Not Found\n')
      return
    }
    registry.metrics().then((text) => {
      res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' })
      res.end(req.method === 'HEAD' ? undefined : text)
    }, (err: unknown) => {
      log.error({ err }, 'metrics collection failed')
      answer(res, 500, 'Internal Server Error\n')
    })
  })
  server.headersTimeout = 5000
  server.requestTimeout = 10_000
  server.keepAliveTimeout = 5000
  server.maxHeadersCount = 50
  return server
}

export const metricsPlugin = fp(gatewayMetrics, { name: 'portcullis-metrics', fastify: '5.x', dependencies: [] })
export default metricsPlugin
