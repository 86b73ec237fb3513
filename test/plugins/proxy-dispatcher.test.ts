/**
 * How a proxied request reaches its route's upstream pool, and the one way routes are registered.
 *
 * - The handoff (plugins/proxy/dispatcher.ts): reply-from calls its dispatcher inside
 *   `reply.from()`, once; `proxyFrom()` hands the request over just before and empties the slot
 *   however `reply.from()` ends; a dispatcher called outside it refuses instead of guessing.
 * - A route in the shared proxy scope and the same route in a context of its own (registered
 *   with a prefix, or a WebSocket route) get the same Fastify routes (methods, URLs, config,
 *   constraints, hooks) and answer the same requests the same way.
 */
import t from 'tap'
import { Readable } from 'node:stream'
import Fastify, { type FastifyInstance, type RouteOptions as FastifyRouteOptions } from 'fastify'
import replyFrom from '@fastify/reply-from'
import { defineRoute, proxyPlugin, proxyScopePlugin } from 'portcullis'
import { HandoffError, proxyFrom, upstreamDispatcher } from '../../plugins/proxy/dispatcher.js'
import type { UpstreamPool } from '../../plugins/proxy/upstream-pool.js'
import { startUpstream, type RecordedRequest } from '../helpers/upstream.js'

interface Teardown { teardown: (fn: () => unknown) => void }

t.test('reply-from calls its dispatcher inside reply.from(), once (what the handoff relies on)', async (t) => {
  let inside = false
  const calls: boolean[] = []
  const dispatcher = {
    request (_opts: unknown, callback: (err: Error | null, data: unknown) => void): void {
      calls.push(inside)
      callback(null, { statusCode: 200, headers: { 'content-type': 'text/plain' }, body: Readable.from([Buffer.from('ok')]) })
    }
  }
  const f = Fastify()
  t.teardown(() => f.close())
  await f.register(replyFrom, { undici: dispatcher as unknown as { request: never }, disableCache: true, disableRequestLogging: true })
  f.get('/x', (_request, reply) => {
    inside = true
    try {
      reply.from('http://upstream.invalid/x', { retryDelay: () => null })
    } finally {
      inside = false
    }
  })
  const res = await f.inject('/x')
  t.equal(res.statusCode, 200)
  t.equal(res.body, 'ok')
  t.same(calls, [true], 'called once, before reply.from() returned')
})

t.test('the dispatcher refuses a call outside proxyFrom(), and proxyFrom() leaves nothing behind when reply.from() throws', async (t) => {
  const callback = (): void => { t.fail('never called back') }
  t.throws(() => { upstreamDispatcher.request({ method: 'GET', path: '/', headers: {} }, callback) }, HandoffError)

  const pool = { request () { t.fail('no request reaches the pool') } } as unknown as UpstreamPool
  const f = Fastify()
  t.teardown(() => f.close())
  f.decorateReply('from', function () { throw new Error('reply-from failed before dispatching') })
  f.get('/x', (_request, reply) => {
    t.throws(() => { proxyFrom(reply, pool, '/x', {}) }, /failed before dispatching/)
    t.throws(() => { upstreamDispatcher.request({ method: 'GET', path: '/', headers: {} }, callback) }, HandoffError, 'the slot was emptied')
    reply.send('done')
  })
  const res = await f.inject('/x')
  t.equal(res.body, 'done')
})

interface SeenRoute { url: string, method: string[], config: Record<string, unknown>, constraints: unknown, hooks: Record<string, number> }

/** A gateway with one route in the proxy scope (/a) and the same definition in a context of its own (/v1/a). */
async function gateway (t: Teardown, upstream: string, extra: Parameters<typeof defineRoute>[0] | null = null): Promise<{ f: FastifyInstance, routes: SeenRoute[] }> {
  const f = Fastify()
  t.teardown(() => f.close())
  const routes: SeenRoute[] = []
  f.addHook('onRoute', (r: FastifyRouteOptions) => {
    const count = (h: unknown): number => h === undefined ? 0 : Array.isArray(h) ? h.length : 1
    routes.push({
      url: r.url,
      method: [r.method].flat().map(String).sort(),
      config: { ...(r.config as Record<string, unknown>) },
      constraints: r.constraints,
      hooks: { preParsing: count(r.preParsing), preHandler: count(r.preHandler), onResponse: count(r.onResponse), onRequestAbort: count(r.onRequestAbort) }
    })
  })
  await f.register(proxyPlugin)
  await f.register(proxyScopePlugin)
  const options = { prefix: '/a', upstream, auth: false as const, rateLimit: false as const, inspect: false as const, methods: ['GET' as const, 'POST' as const, 'OPTIONS' as const], maxInFlight: 10 }
  await f.register(defineRoute(options))
  await f.register(defineRoute(options), { prefix: '/v1' })
  if (extra !== null) await f.register(defineRoute(extra))
  await f.ready()
  return { f, routes }
}

/** A route's shape, its own URL prefix taken off and the objects that differ by identity (pool) left out. */
function shape (r: SeenRoute, prefix: string): object {
  const { proxy, ...config } = r.config as { proxy: { prefix: string }, url?: string, method?: string, openapiPaths?: { strip: string, add: string } }
  delete config.url
  delete config.method
  // The contract's public path is the URL prefix too (OpenAPI paths are matched below it).
  const paths = config.openapiPaths
  if (paths !== undefined) config.openapiPaths = { ...paths, strip: paths.strip.slice(prefix.length) }
  return { url: r.url.slice(prefix.length), method: r.method, config, proxyPrefix: proxy.prefix, constraints: r.constraints, hooks: r.hooks }
}

t.test('a route in the proxy scope and in a context of its own: the same Fastify routes', async (t) => {
  const up = await startUpstream(t)
  const { routes } = await gateway(t, up.url, { prefix: '/w', upstream: up.url, auth: false, rateLimit: false, inspect: false, websocket: true, methods: ['GET', 'POST', 'OPTIONS'], maxInFlight: 10 })
  const scoped = routes.filter((r) => r.url.startsWith('/a')).map((r) => shape(r, '/a'))
  const own = routes.filter((r) => r.url.startsWith('/v1/a')).map((r) => shape(r, '/v1/a'))
  const ws = routes.filter((r) => r.url.startsWith('/w')).map((r) => shape(r, '/w')).map((r) => ({ ...r, config: { ...(r as { config: object }).config, websocket: false }, proxyPrefix: '/a' }))
  t.equal(scoped.length, 4, 'the prefix and everything under it, and their HEAD routes')
  t.same(own, scoped, 'registered with a prefix: same methods, URLs, config, constraints and hooks')
  t.same(ws, scoped, 'a WebSocket route: the same but for its prefix and config.websocket')
})

t.test('a route in the proxy scope and in a context of its own: the same answers and the same upstream requests', async (t) => {
  const up = await startUpstream(t)
  const { f } = await gateway(t, up.url)
  const cases: Array<{ method: 'GET' | 'POST' | 'OPTIONS' | 'DELETE', path: string, headers?: Record<string, string>, body?: string }> = [
    { method: 'GET', path: '/x?b=2&a=1' },
    { method: 'POST', path: '/items', headers: { 'content-type': 'application/json' }, body: '{"a": 1}' },
    { method: 'POST', path: '/plain', headers: { 'content-type': 'text/plain' }, body: 'exact  bytes' },
    { method: 'OPTIONS', path: '/x', headers: { 'max-forwards': '0' } },
    { method: 'DELETE', path: '/x' },
    { method: 'GET', path: '/x%2fy' }
  ]
  const drop = new Set(['x-request-id', 'date', 'connection', 'keep-alive'])
  const answer = async (prefix: string, c: typeof cases[number]): Promise<object> => {
    const before = up.requests.length
    const res = await f.inject({ method: c.method, url: prefix + c.path, headers: { host: 'gw.example', ...c.headers }, ...(c.body !== undefined ? { payload: c.body } : {}) })
    // Fastify's 404 names the URL asked for.
    const text = res.body.replaceAll(prefix + '/', '/')
    const headers = Object.fromEntries(Object.entries(res.headers).filter(([k]) => !drop.has(k) && !(res.statusCode === 404 && k === 'content-length')))
    const got = up.requests.slice(before)
    const seen = got.map((r: RecordedRequest) => ({
      method: r.method,
      url: r.url,
      body: r.body.toString(),
      headers: Object.fromEntries(Object.entries(r.headers).filter(([k]) => !drop.has(k)))
    }))
    const body = res.headers['content-type']?.toString().startsWith('application/json') === true ? JSON.parse(text) as { headers?: Record<string, unknown> } : text
    if (typeof body === 'object' && body.headers !== undefined) for (const k of drop) delete body.headers[k]
    return { status: res.statusCode, headers, body, upstream: seen }
  }
  for (const c of cases) {
    const scoped = await answer('/a', c)
    const own = await answer('/v1/a', c)
    t.same(own, scoped, `${c.method} ${c.path}`)
  }
  t.ok(up.requests.some((r) => r.method === 'POST' && r.body.toString() === 'exact  bytes'), 'bodies forwarded byte for byte')
})
