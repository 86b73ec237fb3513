import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyHelmet from '@fastify/helmet'
import { gatewayErrorHandler, gatewayNotFoundHandler } from 'portcullis'
import { securityHeadersPlugin, type SecurityHeadersPluginOptions } from '../../plugins/security-headers/index.js'

const GATEWAY = {
  'content-security-policy': "default-src 'none';frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin'
}

/** A handler that sends every weak/permissive header an upstream could send. */
const WEAK = {
  'x-frame-options': 'ALLOWALL',
  'content-security-policy': "default-src * 'unsafe-inline' 'unsafe-eval'",
  'strict-transport-security': 'max-age=0',
  'x-content-type-options': 'sniff',
  'referrer-policy': 'unsafe-url',
  'cross-origin-resource-policy': 'cross-origin',
  'access-control-allow-origin': '*',
  'access-control-allow-credentials': 'true',
  'access-control-allow-methods': 'GET, POST, DELETE',
  'access-control-allow-headers': '*',
  'access-control-expose-headers': '*',
  'access-control-max-age': '86400',
  'x-custom': 'kept'
}

async function build (t: Test, opts: SecurityHeadersPluginOptions = {}): Promise<{ app: FastifyInstance, hits: () => number }> {
  const app = Fastify()
  let hits = 0
  app.setErrorHandler(gatewayErrorHandler)
  app.setNotFoundHandler(gatewayNotFoundHandler)
  await app.register(securityHeadersPlugin, opts)
  app.get('/ok', async () => { hits++; return { ok: true } })
  app.get('/weak', async (_req, reply) => { hits++; reply.headers(WEAK); return 'weak' })
  app.get('/boom', async () => { hits++; throw new Error('internal detail') })
  app.register(async (scope) => {
    scope.addHook('onRequest', async () => { throw Object.assign(new Error('nope'), { statusCode: 403, code: 'GW_TEST_FORBIDDEN' }) })
    scope.get('/rejected', async () => { hits++; return 'never' })
  })
  t.teardown(async () => { await app.close() })
  await app.ready()
  return { app, hits: () => hits }
}

function assertGatewayHeaders (t: Test, headers: Record<string, unknown>, what: string): void {
  for (const [name, value] of Object.entries(GATEWAY)) t.equal(headers[name], value, `${what}: ${name}`)
}

t.test('every response carries the gateway headers: success, 404, thrown error, hook rejection', async (t) => {
  const { app, hits } = await build(t)
  const ok = await app.inject('/ok')
  t.equal(ok.statusCode, 200)
  assertGatewayHeaders(t, ok.headers, 'success')
  const missing = await app.inject('/nowhere')
  t.equal(missing.statusCode, 404)
  assertGatewayHeaders(t, missing.headers, '404')
  const boom = await app.inject('/boom')
  t.equal(boom.statusCode, 500)
  assertGatewayHeaders(t, boom.headers, '500')
  const rejected = await app.inject('/rejected')
  t.equal(rejected.statusCode, 403)
  assertGatewayHeaders(t, rejected.headers, 'onRequest rejection')
  t.equal(hits(), 2, 'the rejected route handler never ran')
  t.equal(ok.headers['strict-transport-security'], undefined, 'no HSTS without TLS')
})

t.test('the gateway wins over weak handler/upstream values; upstream CORS and HSTS are stripped without TLS', async (t) => {
  const { app } = await build(t)
  const res = await app.inject('/weak')
  t.equal(res.statusCode, 200)
  assertGatewayHeaders(t, res.headers, 'weak upstream')
  t.equal(res.headers['strict-transport-security'], undefined)
  for (const name of Object.keys(WEAK).filter((n) => n.startsWith('access-control-'))) {
    t.equal(res.headers[name], undefined, `${name} stripped on a route without CORS`)
  }
  t.equal(res.headers['x-custom'], 'kept', 'other headers pass')
  t.equal(res.body, 'weak')
})

t.test('with TLS the gateway sends its own HSTS, replacing max-age=0', async (t) => {
  const { app } = await build(t, { tls: true })
  const weak = await app.inject('/weak')
  t.equal(weak.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains')
  const ok = await app.inject('/ok')
  t.equal(ok.headers['strict-transport-security'], 'max-age=31536000; includeSubDomains')
  const custom = await build(t, { tls: true, hstsMaxAgeS: 600, hstsIncludeSubDomains: false })
  t.equal((await custom.app.inject('/ok')).headers['strict-transport-security'], 'max-age=600')
})

t.test('the precomputed set is exactly what @fastify/helmet sends for the same configuration', async (t) => {
  const reference = Fastify()
  t.teardown(async () => { await reference.close() })
  await reference.register(fastifyHelmet, {
    contentSecurityPolicy: { useDefaults: false, directives: { 'default-src': ["'none'"], 'frame-ancestors': ["'none'"] } },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    crossOriginResourcePolicy: { policy: 'same-origin' },
    strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true }
  })
  reference.get('/ok', async () => 'ok')
  const expected = (await reference.inject('/ok')).headers
  const { app } = await build(t, { tls: true })
  const actual = (await app.inject('/ok')).headers
  const pick = (h: Record<string, unknown>, names: string[]): Record<string, unknown> => Object.fromEntries(names.map((n) => [n, h[n]]))
  const names = Object.keys(app.portcullisSecurityHeaders).sort()
  t.ok(names.length >= 11, 'the whole helmet set, not only the five named ones')
  t.strictSame(pick(actual, names), pick(expected, names))
  t.strictSame(Object.keys(expected).filter((n) => !names.includes(n) && !['content-type', 'content-length', 'date', 'connection'].includes(n)), [], 'no helmet header missing')
})

t.test('invalid options stop ready() with GW_CONFIG_INVALID', async (t) => {
  for (const opts of [{ hstsMaxAgeS: -1 }, { contentSecurityPolicy: 'default-src none' }, { contentSecurityPolicy: '' }, { tls: 'yes' }, { unknown: true }]) {
    const app = Fastify()
    app.register(securityHeadersPlugin, opts as never)
    await t.rejects(async () => { await app.ready() }, { code: 'GW_CONFIG_INVALID' }, JSON.stringify(opts))
    await app.close()
  }
})
