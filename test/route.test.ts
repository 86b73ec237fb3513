import t from 'tap'
import { fileURLToPath } from 'node:url'
import { defineRoute, type RouteOptions } from 'portcullis'
import { startGateway } from './helpers/gateway.js'
import { startUpstream } from './helpers/upstream.js'

const bad = (o: unknown): RouteOptions => o as RouteOptions

t.test('defineRoute returns a Fastify plugin with the frozen definition', async (t) => {
  const r = defineRoute({ prefix: '/a', upstream: 'http://127.0.0.1:1' })
  t.type(r, 'function')
  t.equal(r.routeOptions.prefix, '/a')
  t.ok(Object.isFrozen(r.routeOptions))
})

t.test('invalid options fail with the file, the option and why', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ upstream: 'http://a' }, /options: Expected required property|prefix/],
    [{ prefix: 'a', upstream: 'http://a' }, /prefix/],
    [{ prefix: '/a/', upstream: 'http://a' }, /prefix/],
    [{ prefix: '/a/../b', upstream: 'http://a' }, /prefix/],
    [{ prefix: '/a', upstream: 'ftp://a' }, /upstream/],
    [{ prefix: '/a', upstream: [] }, /upstream/],
    [{ prefix: '/a', upstream: 'http://user:pw@a' }, /upstream/],
    [{ prefix: '/a', upstream: ['http://a/x', 'http://b/y'] }, /same path/],
    [{ prefix: '/a', upstream: 'http://a', timeout: -1 }, /timeout/],
    [{ prefix: '/a', upstream: 'http://a', retries: 9 }, /retries/],
    [{ prefix: '/a', upstream: 'http://a', auth: true }, /auth/],
    [{ prefix: '/a', upstream: 'http://a', auth: { strategies: ['basic'] } }, /auth/],
    [{ prefix: '/a', upstream: 'http://a', rateLimit: { max: 0, timeWindow: 1000 } }, /rateLimit/],
    [{ prefix: '/a', upstream: 'http://a', rateLimit: { max: 5, timeWindow: 'soon' } }, /rateLimit/],
    [{ prefix: '/a', upstream: 'http://a', inspect: { mode: 'shadow' } }, /inspect/],
    [{ prefix: '/a', upstream: 'http://a', methods: ['TRACE'] }, /methods/],
    [{ prefix: '/a', upstream: 'http://a', unknownOption: 1 }, /unknownOption|additional/i],
    [{ prefix: '/a', upstream: 'http://a', websocket: true, methods: ['POST'] }, /websocket/]
  ]
  for (const [options, re] of cases) {
    const err = t.throws(() => defineRoute(bad(options)), { code: 'GW_CONFIG_INVALID' }) as Error
    t.match(err.message, re, JSON.stringify(options))
    t.match(err.message, /route\.test\.ts/, 'names the file')
  }
})

t.test('ROUTES_DIR loads TypeScript route modules and ignores helper files', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { ROUTES_DIR: fileURLToPath(new URL('./fixtures/routes-ts', import.meta.url)) },
    routes: undefined
  })
  process.env.ORDERS_UPSTREAM_URL = up.url
  t.teardown(() => { delete process.env.ORDERS_UPSTREAM_URL })
  t.strictSame(gw.app.portcullisProxy.routes.map((r) => r.prefix), ['/orders'])
  const res = await gw.app.inject({ url: '/orders/1', method: 'DELETE' })
  t.equal(res.statusCode, 404, 'methods not listed are not routed')
})

t.test('a bad route module stops startup with the file name and option', async (t) => {
  await t.rejects(startGateway(t, { env: { ROUTES_DIR: fileURLToPath(new URL('./fixtures/routes-bad', import.meta.url)) }, listen: false }),
    { message: /routes-bad\/broken\.ts.*prefix/s })
})

t.test('route table: printed policy per route', async (t) => {
  const gw = await startGateway(t, {
    listen: false,
    routes: [
      defineRoute({ prefix: '/a', upstream: 'http://127.0.0.1:1' }),
      defineRoute({ prefix: '/b', upstream: ['http://127.0.0.1:1', 'http://127.0.0.1:2'], auth: { strategies: ['jwt'], scopes: ['read'] }, rateLimit: false, inspect: { mode: 'detect', body: true }, websocket: true })
    ]
  })
  t.matchSnapshot(gw.app.portcullisProxy.routes, 'route table')
  t.matchSnapshot(gw.app.printRoutes({ commonPrefix: false }), 'fastify route tree')
})
