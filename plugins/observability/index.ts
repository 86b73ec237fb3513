/**
 * portcullis-observability: request id on every response, one access line per request, and the
 * health endpoints.
 *
 * Hooks: onRequest (x-request-id response header), onSend (Connection: close while draining),
 * onResponse (access line at info).
 * Routes: GET /healthz (alive), GET /readyz (ready; 503 while draining or under pressure).
 * Decorates: `portcullisState` ({ draining }). Errors: none.
 */
import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { kUpstreamTarget } from '../../lib/route-contract.js'
import { redactUrl } from './redact.js'
import '../../lib/consumer.js'

/** Process state the health endpoints report. */
export interface GatewayState {
  /** Set on SIGTERM/SIGINT: /readyz answers 503 while in-flight requests finish. */
  draining: boolean
  /** Optional extra readiness check (e.g. event-loop pressure); true = not ready. */
  underPressure: () => boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    portcullisState: GatewayState
  }
}

export interface ObservabilityPluginOptions {
  /** Serve /healthz and /readyz (default true). */
  healthRoutes?: boolean
}

// Hooks are callback style: no promise and no microtask per request on the hot path.
function onRequestId (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  reply.header('x-request-id', request.id)
  done()
}

function onResponseAccessLog (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
  const log = request.log as FastifyBaseLogger & { isLevelEnabled?: (level: string) => boolean }
  if (log.isLevelEnabled === undefined || log.isLevelEnabled('info')) writeAccessLine(log, request, reply)
  done()
}

function writeAccessLine (log: FastifyBaseLogger, request: FastifyRequest, reply: FastifyReply): void {
  const target = request[kUpstreamTarget]
  log.info({
    method: request.method,
    route: request.routeOptions.url ?? null,
    url: redactUrl(request.url),
    status: reply.statusCode,
    upstream: target?.host ?? null,
    consumer: request.consumer?.id ?? null,
    ip: request.ip,
    ms: Math.round(reply.elapsedTime * 100) / 100
  }, 'request completed')
}

const publicRoute = { auth: false as const, rateLimit: false as const, inspect: false as const, overload: false as const }

async function observabilityPlugin (fastify: FastifyInstance, opts: ObservabilityPluginOptions): Promise<void> {
  const state: GatewayState = { draining: false, underPressure: () => false }
  fastify.decorate('portcullisState', state)
  fastify.addHook('onRequest', onRequestId)
  fastify.addHook('onResponse', onResponseAccessLog)
  // While draining, responses close their connection so keep-alive clients cannot hold the
  // process open past the drain deadline.
  fastify.addHook('onSend', function observabilityDrainClose (_request, reply, payload, done) {
    if (state.draining) reply.header('connection', 'close')
    done(null, payload)
  })

  if (opts.healthRoutes !== false) {
    fastify.get('/healthz', { config: publicRoute, logLevel: 'warn' }, async function healthz () {
      return { status: 'ok' }
    })
    fastify.get('/readyz', { config: publicRoute, logLevel: 'warn' }, async function readyz (_request, reply) {
      const pressured = state.underPressure() || (fastify.hasDecorator('isUnderPressure') && (fastify as unknown as { isUnderPressure: () => boolean }).isUnderPressure())
      if (state.draining || pressured) {
        reply.code(503).header('retry-after', '5')
        return { status: state.draining ? 'draining' : 'overloaded' }
      }
      return { status: 'ready' }
    })
  }
}

export const observabilityPlugin_ = fp(observabilityPlugin, { name: 'portcullis-observability', fastify: '5.x', dependencies: [] })
export { observabilityPlugin_ as observabilityPlugin }
export default observabilityPlugin_
export { genRequestId } from './request-id.js'
export { redactUrl, REDACT_PATHS } from './redact.js'
