import t from 'tap'
import { fileURLToPath } from 'node:url'
import { defineRoute, type RouteOptions } from 'portcullis'
import { startGateway } from './helpers/gateway.js'

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
    [{ prefix: '/a', upstream: 'http://a', websocket: true, methods: ['POST'] }, /websocket/],
    [{ prefix: '/a', upstream: 'http://a', websocket: { maxMessageBytes: 0 } }, /websocket/],
    [{ prefix: '/a', upstream: 'http://a', websocket: { allowedOrigins: [] } }, /websocket/],
    [{ prefix: '/a', upstream: 'http://a', websocket: { allowedOrigins: ['app.example'] } }, /websocket/],
    [{ prefix: '/a', upstream: 'http://a', websocket: { allowedOrigins: ['https://app.example/'] } }, /websocket/],
    [{ prefix: '/a', upstream: 'http://a', websocket: { allowedOrigins: ['https://App.Example:443'] } }, /write it as "https:\/\/app\.example"/],
    [{ prefix: '/a', upstream: 'http://a', websocket: { origins: ['https://app.example'] } }, /websocket/]
  ]
  for (const [options, re] of cases) {
    const err = t.throws(() => defineRoute(bad(options)), { code: 'GW_CONFIG_INVALID' }) as Error
    t.match(err.message, re, JSON.stringify(options))
    t.match(err.message, /route\.test\.ts/, 'names the file')
  }
})

t.test('ROUTES_DIR loads TypeScript route modules and ignores helper files', async (t) => {
  const gw = await startGateway(t, {
    env: { ROUTES_DIR: fileURLToPath(new URL('./fixtures/routes-ts', import.meta.url)) },
    listen: false
  })
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
      defineRoute({ prefix: '/b', upstream: ['http://127.0.0.1:1', 'http://127.0.0.1:2'], auth: { strategies: ['jwt'], scopes: ['read'] }, rateLimit: false, inspect: { mode: 'detect', body: true }, websocket: true, openapi: { spec: './fixtures/openapi/petstore-expanded.yaml', mode: 'detect' } })
    ]
  })
  t.matchSnapshot(gw.app.portcullisProxy.routes, 'route table')
  t.matchSnapshot(gw.app.printRoutes({ commonPrefix: false }), 'fastify route tree')
})

t.test('a problem inside a policy names the exact option and the rule, not "Expected union value"', async (t) => {
  const cases: Array<[unknown, string]> = [
    [{ prefix: '/a', upstream: 'http://a', rateLimit: { max: 0, timeWindow: 1000 } }, 'rateLimit.max: Expected integer to be greater or equal to 1'],
    [{ prefix: '/a', upstream: 'http://a', timeout: { headersMs: -1 } }, 'timeout.headersMs: Expected integer to be greater or equal to 1'],
    [{ prefix: '/a', upstream: 'http://a', auth: { strategies: ['basic'] } }, 'auth.strategies.0: Expected one of "jwt", "apiKey", "introspection", "forwardAuth", "mtls"'],
    [{ prefix: '/a', upstream: 'http://a', inspect: { mode: 'shadow' } }, 'inspect.mode: Expected one of "block", "detect"'],
    [{ prefix: '/a', upstream: [] }, 'upstream: Expected array length to be greater or equal to 1'],
    [{ prefix: '/api/:tenant', upstream: 'http://a' }, 'prefix: ":" and "*" are not allowed (a prefix is a literal path, not a route pattern)'],
    [{ prefix: '/api/*', upstream: 'http://a' }, 'prefix: ":" and "*" are not allowed (a prefix is a literal path, not a route pattern)'],
    [{ prefix: 'api', upstream: 'http://a' }, 'prefix: must be a literal path: start with "/", no trailing "/", no empty ("//"), "." or ".." segments, no ":" or "*", only letters, digits and -._~!$&\'()+,=@ (for example "/api/orders")'],
    [{ prefix: '/a/../b', upstream: 'http://a' }, 'prefix: must be a literal path: start with "/", no trailing "/", no empty ("//"), "." or ".." segments, no ":" or "*", only letters, digits and -._~!$&\'()+,=@ (for example "/api/orders")'],
    [{ prefix: '/a', upstream: 'ftp://a' }, 'upstream: must be an http:// or https:// URL with a host and no credentials, query or fragment (for example "http://orders-api:8080")'],
    [{ prefix: '/a', upstream: ['http://a', 'ftp://b'] }, 'upstream.1: must be an http:// or https:// URL with a host and no credentials, query or fragment (for example "http://orders-api:8080")'],
    [{ prefix: '/a', upstream: 'http://a', rewritePrefix: 'v1' }, 'rewritePrefix: must be empty or a path starting with "/", without spaces, "?" or "#"'],
    [{ prefix: '/a', upstream: 'http://a', healthCheck: { path: 'health' } }, 'healthCheck.path: must be a path starting with "/", without spaces'],
    [{ prefix: '/a', upstream: 'http://a', rateLimit: { max: 5, timeWindow: 'banana' } }, 'rateLimit.timeWindow: must be a duration such as "1 minute", "30s" or 60000 (milliseconds)']
  ]
  for (const [options, problem] of cases) {
    const err = t.throws(() => defineRoute(bad(options))) as Error & { problems: string[] }
    t.strictSame(err.problems, [problem], JSON.stringify(options))
    t.notMatch(err.message, /union value/)
  }
})

t.test('a prefix taken twice, or the health endpoints, stops startup with the prefix named', async (t) => {
  const twice = startGateway(t, { listen: false, routes: [defineRoute({ prefix: '/a', upstream: 'http://127.0.0.1:1' }), defineRoute({ prefix: '/a', upstream: 'http://127.0.0.1:2' })] })
  await t.rejects(twice, { code: 'GW_CONFIG_INVALID', message: /^test\/route\.test\.ts \(route \/a\): prefix: \w+ \/a is already routed by another route module, or is one of the gateway's own paths \(\/healthz, \/readyz\); choose another prefix$/ })
  const health = startGateway(t, { listen: false, routes: [defineRoute({ prefix: '/healthz', upstream: 'http://127.0.0.1:1' })] })
  await t.rejects(health, { code: 'GW_CONFIG_INVALID', message: /^test\/route\.test\.ts \(route \/healthz\): prefix: GET \/healthz is already routed/ })
  const split = await startGateway(t, {
    listen: false,
    routes: [
      defineRoute({ prefix: '/b', upstream: 'http://127.0.0.1:1', methods: ['GET', 'HEAD'] }),
      defineRoute({ prefix: '/b', upstream: 'http://127.0.0.1:2', methods: ['POST'] })
    ]
  })
  t.strictSame(split.app.portcullisProxy.routes.map((r) => r.prefix), ['/b', '/b'], 'one prefix split by method across two modules is fine')
})

t.test('a route asking for a strategy the gateway has no credentials for names its file and the variables to set', async (t) => {
  const jwtOnly = defineRoute({ prefix: '/jwt', upstream: 'http://127.0.0.1:1', auth: { strategies: ['jwt'] } })
  const err = await startGateway(t, { env: { API_KEYS: 'svc:Kq3vZ8wLr2Tn6YbP0xHd' }, routes: [jwtOnly], listen: false }).then(() => undefined, (e: unknown) => e) as Error & { code?: string, lines?: () => string[] }
  t.equal(err?.code, 'GW_CONFIG_INVALID')
  t.match(err.lines?.() ?? [], [/^test\/route\.test\.ts \(route \/jwt\): auth\.strategies: "jwt" is not configured on this gateway; set JWT_SECRET, JWT_PUBLIC_KEY or JWKS_URL, or remove "jwt" from the route's auth\.strategies$/])
})
