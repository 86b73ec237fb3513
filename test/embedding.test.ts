/**
 * Embedding: host routes without gateway config answer exactly as on a host without the plugins
 * (no leaked hooks, decorators' effects or content-type parsers), and host JSON bodies are still
 * parsed by Fastify's own parser (the proxy's raw-body parser stays inside its route plugin).
 */
import t from 'tap'
import Fastify, { type FastifyError, type FastifyInstance, type InjectOptions } from 'fastify'
import {
  authPlugin,
  defineRoute,
  inspectPlugin,
  proxyPlugin,
  requestGuardPlugin,
  routeRateLimitPlugin,
  routePolicy
} from 'portcullis'
import { startUpstream } from './helpers/upstream.js'

const KEY = 'host-key-0123456789abcdef'

interface Teardown { teardown: (fn: () => unknown) => void }

async function host (t: Teardown, withGateway: boolean, upstreamUrl: string): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  app.setErrorHandler(async (err: FastifyError, _request, reply) => {
    return await reply.code(err.statusCode ?? 500).send({ host: true, message: err.message })
  })
  if (withGateway) {
    await app.register(requestGuardPlugin)
    await app.register(authPlugin, { apiKeys: [{ consumer: 'carol', key: KEY }] })
    await app.register(routeRateLimitPlugin)
    await app.register(inspectPlugin)
    await app.register(proxyPlugin)
    await app.register(defineRoute({ prefix: '/api', upstream: upstreamUrl }))
    app.get('/guarded', { config: routePolicy({ auth: { strategies: ['apiKey'] }, rateLimit: { max: 1, timeWindow: 60_000 } }) }, async (request) => ({ consumer: request.consumer?.id ?? null }))
  }
  app.get('/plain', async (request) => ({ ok: true, query: request.query }))
  app.post('/echo', async (request) => ({ body: request.body as unknown, type: typeof request.body }))
  app.get('/boom', async () => { throw Object.assign(new Error('host failure'), { statusCode: 418 }) })
  await app.ready()
  return app
}

const cases: Array<[string, InjectOptions]> = [
  ['GET /plain', { method: 'GET', url: '/plain' }],
  ['GET /plain with an attack query', { method: 'GET', url: '/plain?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E' }],
  ['GET /plain with a bogus API key', { method: 'GET', url: '/plain', headers: { 'x-api-key': 'nope', authorization: 'Bearer x.y.z' } }],
  ['POST /echo JSON', { method: 'POST', url: '/echo', payload: { a: 1, b: ['x'] } }],
  ['POST /echo JSON with an attack body', { method: 'POST', url: '/echo', payload: { q: "' OR 1=1 --" } }],
  ['POST /echo text', { method: 'POST', url: '/echo', headers: { 'content-type': 'text/plain' }, payload: 'hi' }],
  ['POST /echo octet-stream (no host parser)', { method: 'POST', url: '/echo', headers: { 'content-type': 'application/octet-stream' }, payload: 'raw' }],
  ['POST /echo malformed JSON', { method: 'POST', url: '/echo', headers: { 'content-type': 'application/json' }, payload: '{"a":' }],
  ['GET /boom (host error handler)', { method: 'GET', url: '/boom' }],
  ['GET /missing', { method: 'GET', url: '/missing' }]
]

t.test('host routes without config answer identically with and without the gateway plugins', async (t) => {
  const upstream = await startUpstream(t)
  const bare = await host(t, false, upstream.url)
  const embedded = await host(t, true, upstream.url)
  for (const [name, req] of cases) {
    const a = await bare.inject(req)
    const b = await embedded.inject(req)
    t.equal(b.statusCode, a.statusCode, `${name}: status`)
    t.equal(b.body, a.body, `${name}: body`)
    const headers = (h: Record<string, unknown>): Record<string, unknown> => { const { date, ...rest } = h; return rest }
    t.strictSame(headers(b.headers), headers(a.headers), `${name}: headers`)
    t.notMatch(b.body, /GW_/, `${name}: no gateway error shape`)
  }
  t.equal(upstream.requests.length, 0, 'nothing proxied')
})

t.test('a host JSON body is parsed by Fastify, the proxy keeps its raw-body parser to itself', async (t) => {
  const upstream = await startUpstream(t)
  const embedded = await host(t, true, upstream.url)
  const json = await embedded.inject({ method: 'POST', url: '/echo', payload: { a: 1 } })
  t.equal(json.statusCode, 200)
  t.strictSame(json.json(), { body: { a: 1 }, type: 'object' })
  const raw = await embedded.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'application/octet-stream' }, payload: 'raw' })
  t.equal(raw.statusCode, 415, 'no catch-all parser leaked to host routes')
  t.equal(embedded.hasContentTypeParser('application/octet-stream'), false)
  t.equal(upstream.requests.length, 0)

  // The proxied prefix still streams any content type upstream.
  const proxied = await embedded.inject({ method: 'POST', url: '/api/x', headers: { 'content-type': 'application/octet-stream', 'x-api-key': KEY }, payload: 'raw-bytes' })
  t.equal(proxied.statusCode, 200)
  t.equal(upstream.requests.length, 1)
  t.equal(upstream.requests[0].body.toString(), 'raw-bytes')
})

t.test('the same host gets the gateway policies on a configured local route', async (t) => {
  const upstream = await startUpstream(t)
  const embedded = await host(t, true, upstream.url)
  const denied = await embedded.inject({ method: 'GET', url: '/guarded' })
  t.equal(denied.statusCode, 401)
  t.equal(denied.json().message, 'Unauthorized', 'host error handler renders gateway errors')
  const ok = await embedded.inject({ method: 'GET', url: '/guarded', headers: { 'x-api-key': KEY } })
  t.equal(ok.statusCode, 200)
  t.strictSame(ok.json(), { consumer: 'carol' })
  const limited = await embedded.inject({ method: 'GET', url: '/guarded', headers: { 'x-api-key': KEY } })
  t.equal(limited.statusCode, 429)
  t.equal(upstream.requests.length, 0)
})
