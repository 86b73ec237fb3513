import t from 'tap'
import { randomBytes } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import Fastify from 'fastify'
import { propagation, trace, type Context, type Span, type SpanContext, type TextMapPropagator, type Tracer, type TracerProvider } from '@opentelemetry/api'
import { applyTraceHeaders, tracingPlugin } from '../../plugins/tracing/index.js'

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT = '00f067aa0ba902b7'

/** Spans the fake SDK started: name, own context and parent span id. */
const started: Array<{ name: string, context: SpanContext, parentSpanId: string | undefined }> = []

function fakeSpan (sc: SpanContext): Span {
  const span: Span = {
    spanContext: () => sc,
    setAttribute: () => span,
    setAttributes: () => span,
    addEvent: () => span,
    addLink: () => span,
    addLinks: () => span,
    setStatus: () => span,
    updateName: () => span,
    end: () => {},
    isRecording: () => true,
    recordException: () => {}
  }
  return span
}

/** A minimal OpenTelemetry "SDK": a tracer that makes child spans, and a W3C traceparent propagator. */
const tracer: Tracer = {
  startSpan (name: string, _options?: unknown, ctx?: Context): Span {
    const parent = ctx === undefined ? undefined : trace.getSpanContext(ctx)
    const sc: SpanContext = { traceId: parent?.traceId ?? randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex'), traceFlags: 1 }
    started.push({ name, context: sc, parentSpanId: parent?.spanId })
    return fakeSpan(sc)
  },
  startActiveSpan: (() => { throw new Error('not used') }) as never
}
const provider: TracerProvider = { getTracer: () => tracer }
const propagator: TextMapPropagator = {
  inject: () => {},
  extract (ctx, carrier) {
    const tp = (carrier as Record<string, unknown>).traceparent
    const m = typeof tp === 'string' ? /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/.exec(tp) : null
    if (m === null) return ctx
    return trace.setSpanContext(ctx, { traceId: m[1] as string, spanId: m[2] as string, traceFlags: Number(m[3]), isRemote: true })
  },
  fields: () => ['traceparent']
}

t.before(() => {
  trace.setGlobalTracerProvider(provider)
  propagation.setGlobalPropagator(propagator)
})

t.test('OTEL on: the upstream\'s parent is the @fastify/otel request span, in the incoming trace', async (t) => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(tracingPlugin, { otel: true })
  app.get('/x', async (request) => { const h: IncomingHttpHeaders = {}; applyTraceHeaders(request, h); return h })
  await app.ready()
  t.ok(app.hasRequestDecorator('opentelemetry'), '@fastify/otel is registered')

  const res = await app.inject({ url: '/x', headers: { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'congo=t61' } })
  const upstream = res.json() as { traceparent: string, tracestate?: string }
  const requestSpan = started.find((s) => s.name === 'request')
  t.ok(requestSpan !== undefined, 'a request span was started')
  t.equal(requestSpan?.parentSpanId, PARENT, 'the request span continues the client\'s span')
  t.equal(upstream.traceparent, `00-${TRACE}-${requestSpan?.context.spanId ?? ''}-01`, 'the upstream\'s parent is that span')
  t.equal(upstream.tracestate, 'congo=t61')

  started.length = 0
  const fresh = (await app.inject('/x')).json() as { traceparent: string, tracestate?: string }
  const root = started.find((s) => s.name === 'request')
  t.equal(root?.parentSpanId, undefined)
  t.equal(fresh.traceparent, `00-${root?.context.traceId ?? ''}-${root?.context.spanId ?? ''}-01`)
  t.equal(fresh.tracestate, undefined)
})

t.test('OTEL off: @fastify/otel is not registered', async (t) => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(tracingPlugin)
  await app.ready()
  t.notOk(app.hasRequestDecorator('opentelemetry'))
})
