import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { gatewayErrorHandler } from 'portcullis'
import { securityHeadersPlugin } from '../../plugins/security-headers/index.js'
import { corsPlugin, CORS_RESPONSE_HEADERS, type CorsRouteConfig } from '../../plugins/cors/index.js'

const APP = 'https://app.example.com'
const EVIL = 'https://evil.example.net'

/** A route-level auth stand-in (like gateway-auth's): requires `authorization: Bearer ok`. */
async function fakeAuth (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.headers.authorization !== 'Bearer ok') {
    reply.header('www-authenticate', 'Bearer')
    throw Object.assign(new Error('Unauthorized'), { statusCode: 401, code: 'GW_AUTH_UNAUTHORIZED' })
  }
}

/** Like an upstream with permissive CORS of its own. */
const permissiveUpstream = {
  'access-control-allow-origin': '*',
  'access-control-allow-credentials': 'true',
  'access-control-allow-methods': 'GET, POST, PUT, DELETE',
  'access-control-expose-headers': 'x-secret'
}

async function build (t: Test, cors: CorsRouteConfig | undefined): Promise<{ app: FastifyInstance, hits: () => number }> {
  const app = Fastify()
  let hits = 0
  app.setErrorHandler(gatewayErrorHandler)
  await app.register(securityHeadersPlugin)
  await app.register(corsPlugin)
  app.route({
    method: ['GET', 'POST', 'OPTIONS'],
    url: '/api/*',
    onRequest: fakeAuth,
    config: cors === undefined ? {} : { cors },
    handler: async (_req, reply) => { hits++; reply.headers(permissiveUpstream); return { ok: true } }
  })
  t.teardown(async () => { await app.close() })
  await app.ready()
  return { app, hits: () => hits }
}

function corsHeaders (headers: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => k.startsWith('access-control-')))
}

const preflight = (origin: string): Record<string, string> => ({ origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' })

t.test('no cors config: no CORS headers at all, preflights are ordinary requests (auth applies)', async (t) => {
  for (const cors of [undefined, false as const]) {
    const { app, hits } = await build(t, cors)
    const pre = await app.inject({ method: 'OPTIONS', url: '/api/x', headers: preflight(APP) })
    t.equal(pre.statusCode, 401, 'not answered as a preflight')
    t.strictSame(corsHeaders(pre.headers), {})
    const ok = await app.inject({ url: '/api/x', headers: { origin: APP, authorization: 'Bearer ok' } })
    t.equal(ok.statusCode, 200)
    t.strictSame(corsHeaders(ok.headers), {}, 'the upstream\'s permissive CORS headers are stripped')
    t.equal(hits(), 1)
  }
})

t.test('preflight from an allowed origin: answered by the gateway, before auth, never reaching the handler', async (t) => {
  const { app, hits } = await build(t, { origins: [APP, 'http://localhost:3000'], methods: ['GET', 'POST'], headers: ['authorization', 'content-type'], credentials: true, maxAgeS: 300 })
  const res = await app.inject({ method: 'OPTIONS', url: '/api/orders', headers: preflight(APP) })
  t.equal(res.statusCode, 204)
  t.strictSame(corsHeaders(res.headers), {
    'access-control-allow-origin': APP,
    'access-control-allow-credentials': 'true',
    'access-control-allow-methods': 'GET, POST',
    'access-control-allow-headers': 'authorization, content-type',
    'access-control-max-age': '300'
  })
  t.equal(res.headers.vary, 'Origin')
  t.equal(res.headers['x-frame-options'], 'DENY', 'security headers on the preflight too')
  t.equal(res.body, '')
  t.equal(hits(), 0, 'not proxied')
})

t.test('preflight from a disallowed origin (or none): 403, no allow headers, handler not hit', async (t) => {
  const { app, hits } = await build(t, { origins: [APP] })
  for (const headers of [preflight(EVIL), preflight('null'), { 'access-control-request-method': 'POST' }, preflight(`${APP}.evil.net`), preflight(APP.toUpperCase())]) {
    const res = await app.inject({ method: 'OPTIONS', url: '/api/orders', headers })
    t.equal(res.statusCode, 403, JSON.stringify(headers))
    t.equal(res.json().code, 'GW_CORS_ORIGIN_NOT_ALLOWED')
    t.strictSame(corsHeaders(res.headers), {})
  }
  t.equal(hits(), 0)
})

t.test('actual requests: auth still applies; the gateway\'s CORS decision replaces the upstream\'s', async (t) => {
  const { app, hits } = await build(t, { origins: [APP], exposeHeaders: ['x-request-id'] })
  const unauth = await app.inject({ method: 'POST', url: '/api/orders', headers: { origin: APP } })
  t.equal(unauth.statusCode, 401, 'CORS never bypasses authentication')
  t.equal(unauth.headers['access-control-allow-origin'], APP, 'the browser may read the 401')
  t.equal(hits(), 0)
  const ok = await app.inject({ method: 'POST', url: '/api/orders', headers: { origin: APP, authorization: 'Bearer ok' } })
  t.equal(ok.statusCode, 200)
  t.strictSame(corsHeaders(ok.headers), {
    'access-control-allow-origin': APP,
    'access-control-expose-headers': 'x-request-id'
  }, 'no upstream "*", no credentials, no upstream methods or exposed headers')
  t.equal(ok.headers.vary, 'Origin')
  const evil = await app.inject({ method: 'POST', url: '/api/orders', headers: { origin: EVIL, authorization: 'Bearer ok' } })
  t.equal(evil.statusCode, 200, 'CORS is not access control: the request itself is served')
  t.strictSame(corsHeaders(evil.headers), {}, 'but a disallowed origin gets no CORS headers')
  t.equal(evil.headers.vary, 'Origin')
  const plainOptions = await app.inject({ method: 'OPTIONS', url: '/api/orders', headers: { origin: APP, authorization: 'Bearer ok' } })
  t.equal(plainOptions.statusCode, 200, 'OPTIONS without Access-Control-Request-Method is an ordinary request')
  t.equal(hits(), 3)
})

t.test('origins ["*"]: any origin, no Vary', async (t) => {
  const { app } = await build(t, { origins: ['*'] })
  const pre = await app.inject({ method: 'OPTIONS', url: '/api/x', headers: preflight(EVIL) })
  t.equal(pre.statusCode, 204)
  t.equal(pre.headers['access-control-allow-origin'], '*')
  t.equal(pre.headers['access-control-allow-credentials'], undefined)
  t.equal(pre.headers.vary, undefined)
  t.equal(pre.headers['access-control-allow-methods'], 'GET, HEAD, POST', 'default methods')
  t.equal(pre.headers['access-control-allow-headers'], 'authorization, content-type, x-api-key', 'default headers: the gateway\'s credential headers and JSON')
  t.equal(pre.headers['access-control-max-age'], '600', 'default max age')
})

t.test('coexists with a catch-all route (where @fastify/cors fails with FST_ERR_DUPLICATED_ROUTE)', async (t) => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(corsPlugin)
  app.route({ method: ['GET', 'OPTIONS'], url: '/*', config: { cors: { origins: [APP] } }, handler: async () => 'ok' })
  app.route({ method: ['GET', 'OPTIONS'], url: '/', config: { cors: { origins: [APP] } }, handler: async () => 'ok' })
  const res = await app.inject({ method: 'OPTIONS', url: '/anything', headers: preflight(APP) })
  t.equal(res.statusCode, 204)
  t.equal(res.headers['access-control-allow-origin'], APP)
})

t.test('invalid route policies stop ready() with GW_CONFIG_INVALID naming the option', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    [{ origins: [] }, /cors\.origins/],
    [{ origins: ['https://app.example.com/'] }, /cors\.origins/],
    [{ origins: ['null'] }, /cors\.origins/],
    [{ origins: ['*.example.com'] }, /cors\.origins/],
    [{ origins: ['*'], credentials: true }, /cors\.credentials/],
    [{ origins: ['*', APP] }, /"\*" must be the only entry/],
    [{ origins: [APP], methods: ['TRACE'] }, /cors\.methods/],
    [{ origins: [APP], headers: ['bad header'] }, /cors\.headers/],
    [{ origins: [APP], maxAgeS: -1 }, /cors\.maxAgeS/],
    [{ origins: [APP], origin: '*' }, /cors/],
    [true, /cors/]
  ]
  for (const [cors, message] of bad) {
    const app = Fastify()
    await app.register(corsPlugin)
    app.register(async (routes) => { routes.get('/x', { config: { cors: cors as CorsRouteConfig } }, async () => 'x') })
    await t.rejects(async () => { await app.ready() }, { code: 'GW_CONFIG_INVALID', message }, JSON.stringify(cors))
    await app.close()
  }
  t.equal(CORS_RESPONSE_HEADERS.length, 7)
})
