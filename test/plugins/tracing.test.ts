import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import { applyTraceHeaders, parseTraceparent, traceIdsOf, tracingPlugin, validTracestate } from '../../plugins/tracing/index.js'

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT = '00f067aa0ba902b7'
const VALID = `00-${TRACE}-${PARENT}-01`
const TP = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/

/** A route echoing what the proxy would send upstream for the client's headers. */
async function build (t: Test, register = true): Promise<FastifyInstance> {
  const app = Fastify()
  if (register) await app.register(tracingPlugin)
  app.get('/x', async (request) => {
    const upstream: IncomingHttpHeaders = { ...request.headers }
    applyTraceHeaders(request, upstream)
    return { traceparent: upstream.traceparent ?? null, tracestate: upstream.tracestate ?? null, ids: traceIdsOf(request) ?? null }
  })
  t.teardown(async () => { await app.close() })
  return app
}

async function upstreamSees (app: FastifyInstance, headers: Record<string, string>): Promise<{ traceparent: string | null, tracestate: string | null, ids: { traceId: string, spanId: string } | null }> {
  const res = await app.inject({ url: '/x', headers })
  return res.json()
}

t.test('parseTraceparent follows the W3C grammar', async (t) => {
  t.strictSame(parseTraceparent(VALID), { traceId: TRACE, parentId: PARENT, flags: '01' })
  t.strictSame(parseTraceparent(`cc-${TRACE}-${PARENT}-01-what-the-future-holds`), { traceId: TRACE, parentId: PARENT, flags: '01' }, 'a later version may append fields')
  for (const bad of [
    undefined, '', 'garbage', VALID.toUpperCase(), `ff-${TRACE}-${PARENT}-01`, `00-${'0'.repeat(32)}-${PARENT}-01`,
    `00-${TRACE}-${'0'.repeat(16)}-01`, `${VALID}-extra`, `00-${TRACE}-${PARENT}-1`, `00-${TRACE.slice(1)}x-${PARENT}-01`,
    `cc-${TRACE}-${PARENT}-01x`, ` ${VALID}`, [VALID, VALID]
  ]) {
    t.equal(parseTraceparent(bad as string), undefined, JSON.stringify(bad))
  }
})

t.test('validTracestate keeps valid lists and drops invalid ones whole', async (t) => {
  t.equal(validTracestate('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'), 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7')
  t.equal(validTracestate('congo=t61rcWkgMzE , ,tenant@vendor=x'), 'congo=t61rcWkgMzE,tenant@vendor=x', 'empty members and whitespace are tolerated')
  t.equal(validTracestate(['a=1', 'b=2']), 'a=1,b=2', 'several header lines combine')
  for (const bad of ['', 'novalue', 'Upper=1', 'a=1,a=2', 'a=x=y,', `a=${'v'.repeat(257)}`, Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(','), 'a=1\nb=2', 'a= ']) {
    t.equal(validTracestate(bad), undefined, JSON.stringify(bad))
  }
})

t.test('a valid traceparent is continued: same trace id, a new parent id, sampled flag kept', async (t) => {
  const app = await build(t)
  const one = await upstreamSees(app, { traceparent: VALID, tracestate: 'congo=t61rcWkgMzE' })
  const m = TP.exec(one.traceparent ?? '')
  t.ok(m !== null, one.traceparent ?? 'null')
  t.equal(m?.[1], TRACE)
  t.not(m?.[2], PARENT, 'the gateway is a new span')
  t.equal(m?.[3], '01')
  t.equal(one.tracestate, 'congo=t61rcWkgMzE')
  t.strictSame(one.ids, { traceId: TRACE, spanId: m?.[2] })
  const two = await upstreamSees(app, { traceparent: `00-${TRACE}-${PARENT}-00` })
  t.equal(TP.exec(two.traceparent ?? '')?.[1], TRACE)
  t.not(two.traceparent?.slice(36, 52), m?.[2], 'span ids differ per request')
  t.match(two.traceparent, /-00$/, 'not sampled stays not sampled')
  t.equal(two.tracestate, null)
  const future = await upstreamSees(app, { traceparent: `cc-${TRACE}-${PARENT}-ff-extra` })
  t.match(future.traceparent, new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`), 'a later version is continued as version 00 with known flags only')
})

t.test('absent or invalid traceparent: the gateway starts a new trace and drops tracestate', async (t) => {
  const app = await build(t)
  const none = await upstreamSees(app, {})
  t.match(none.traceparent, TP)
  t.match(none.traceparent, /-01$/)
  const invalid = await upstreamSees(app, { traceparent: `00-${TRACE}-${'0'.repeat(16)}-01`, tracestate: 'congo=t61rcWkgMzE' })
  t.match(invalid.traceparent, TP)
  t.not(invalid.traceparent?.slice(3, 35), TRACE, 'an invalid parent is not continued')
  t.not(invalid.traceparent?.slice(3, 35), none.traceparent?.slice(3, 35), 'each new trace has its own id')
  t.equal(invalid.tracestate, null, 'tracestate without a valid traceparent is dropped')
  const badState = await upstreamSees(app, { traceparent: VALID, tracestate: 'Bad State' })
  t.equal(badState.tracestate, null, 'an invalid tracestate is dropped')
})

t.test('without the plugin, applyTraceHeaders leaves the headers alone', async (t) => {
  const app = await build(t, false)
  const seen = await upstreamSees(app, { traceparent: VALID })
  t.equal(seen.traceparent, VALID)
  t.equal(seen.ids, null)
})

t.test('sampleNewTraces: false starts unsampled traces; invalid options fail', async (t) => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(tracingPlugin, { sampleNewTraces: false })
  app.get('/x', async (request) => { const h: IncomingHttpHeaders = {}; applyTraceHeaders(request, h); return h })
  t.match((await app.inject('/x')).json().traceparent, /-00$/)
  const bad = Fastify()
  bad.register(tracingPlugin, { sampleNewTraces: 'yes' } as never)
  await t.rejects(async () => { await bad.ready() }, { code: 'GW_CONFIG_INVALID' })
})
