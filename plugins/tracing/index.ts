/**
 * portcullis-tracing: W3C Trace Context continued through the gateway.
 *
 * Hook: onRequest `tracingOnRequest`. With a valid incoming `traceparent`, the upstream gets the
 * same trace id and a NEW parent id (the gateway's span) and the sampled flag as received; with none or an
 * invalid one, the gateway starts a trace (new trace id and span id). A valid `tracestate` is
 * passed on (only alongside a valid `traceparent`, per the spec); an invalid one is dropped.
 * The outgoing values are stored on the request (symbols); the proxy writes them into the
 * upstream request with `applyTraceHeaders()` (plugins/proxy/headers.ts), replacing whatever the
 * client sent. No config key. Errors: GW_CONFIG_INVALID at registration.
 *
 * OpenTelemetry (option `otel`, OTEL_ENABLED): off by default and then never loaded (dynamic
 * import), so it costs nothing. On, it registers @fastify/otel (a span per request, lifecycle hook
 * spans off) and the upstream's parent becomes that request span, so the upstream's spans nest
 * under the gateway's in the trace backend. Spans go to the global tracer provider: start an
 * OpenTelemetry SDK in the process (e.g. `node --import @opentelemetry/auto-instrumentations-node/register`
 * with the usual OTEL_* variables); without one the API is a no-op and the W3C continuation above applies.
 */
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { ConfigError } from '../../lib/errors.js'
import { kTraceparent, kTracestate, type TracedRequest } from '../../lib/trace-propagation.js'
import { parseTraceparent, randomHex, validTracestate } from './trace-context.js'
import { resolveTracingOptions, type TracingPluginOptions } from './schema.js'

export type { TracingPluginOptions } from './schema.js'
export { parseTraceparent, validTracestate } from './trace-context.js'
export { applyTraceHeaders, traceIdsOf, kTraceparent, kTracestate } from '../../lib/trace-propagation.js'

/** The part of an OpenTelemetry span context the gateway reads. */
interface SpanContextLike { traceId: string, spanId: string, traceFlags: number, traceState?: { serialize: () => string } }
type SpanContextOf = (request: FastifyRequest) => SpanContextLike | undefined

/** Loads and registers @fastify/otel; returns how to read a request's span context. */
async function startOtel (fastify: FastifyInstance): Promise<SpanContextOf> {
  let otelModule: { default: unknown }
  let api: typeof import('@opentelemetry/api')
  try {
    otelModule = await import('@fastify/otel') as { default: unknown }
    api = await import('@opentelemetry/api')
  } catch (err) {
    throw new ConfigError('invalid gateway-tracing options', [`otel: @fastify/otel and @opentelemetry/api must be installed (${err instanceof Error ? err.message : String(err)})`])
  }
  const Instrumentation = otelModule.default as new (o: { instrumentHooks: boolean }) => { plugin: () => Parameters<FastifyInstance['register']>[0] }
  const instrumentation = new Instrumentation({ instrumentHooks: false })
  await fastify.register(instrumentation.plugin())
  const { isSpanContextValid } = api.trace
  return function otelSpanContext (request: FastifyRequest): SpanContextLike | undefined {
    const otel = (request as unknown as { opentelemetry?: () => { instrumented?: boolean, span?: { spanContext: () => SpanContextLike } | null } }).opentelemetry?.()
    const span = otel?.instrumented === true ? otel.span : undefined
    if (span === undefined || span === null) return undefined
    const sc = span.spanContext()
    return isSpanContextValid(sc as never) ? sc : undefined
  }
}

async function gatewayTracing (fastify: FastifyInstance, opts: TracingPluginOptions): Promise<void> {
  const options = resolveTracingOptions(opts)
  const newFlags = options.sampleNewTraces ? '01' : '00'
  fastify.decorateRequest(kTraceparent, null)
  fastify.decorateRequest(kTracestate, null)
  const spanContextOf = options.otel ? await startOtel(fastify) : undefined

  fastify.addHook('onRequest', function tracingOnRequest (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) {
    continueTrace(request)
    done()
  })

  function continueTrace (request: FastifyRequest): void {
    const r = request as unknown as TracedRequest
    if (spanContextOf !== undefined) {
      // The request span of @fastify/otel (its onRequest hook ran first) is the upstream's parent.
      const sc = spanContextOf(request)
      if (sc !== undefined) {
        r[kTraceparent] = `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 1) === 1 ? '01' : '00'}`
        const state = sc.traceState?.serialize()
        if (state !== undefined && state !== '') r[kTracestate] = state
        else if (parseTraceparent(request.headers.traceparent)?.traceId === sc.traceId) r[kTracestate] = validTracestate(request.headers.tracestate) ?? null
        return
      }
    }
    const headers = request.headers
    const parent = parseTraceparent(headers.traceparent)
    if (parent === undefined) {
      r[kTraceparent] = `00-${randomHex(16)}-${randomHex(8)}-${newFlags}`
      return
    }
    // Only the sampled bit is defined for version 00; unknown bits are not passed on (§3.2.2.5).
    r[kTraceparent] = `00-${parent.traceId}-${randomHex(8)}-${(parseInt(parent.flags, 16) & 1) === 1 ? '01' : '00'}`
    if (headers.tracestate !== undefined) r[kTracestate] = validTracestate(headers.tracestate) ?? null
  }
}

/** W3C trace context continuation; register before the routes. */
export const tracingPlugin = fp(gatewayTracing, { name: 'portcullis-tracing', fastify: '5.x', dependencies: [] })
export default tracingPlugin
