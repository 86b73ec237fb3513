import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import type { FastifyRequest } from 'fastify'
import { buildGateway, defineRoute, loadConfig } from 'portcullis'
import { routeConfigWith } from '../lib/route-config.js'

// V8's own check of two objects' hidden classes (the flag only lets functions compiled after it
// use the syntax; nothing else changes).
setFlagsFromString('--allow-natives-syntax')
// eslint-disable-next-line no-new-func
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean

function classes (objects: object[]): number {
  const reps: object[] = []
  for (const o of objects) if (!reps.some((r) => haveSameMap(r, o))) reps.push(o)
  return reps.length
}

t.test('routeConfigWith copies, adds and names url and method, leaving the input alone', async (t) => {
  const k = Symbol('k')
  const input = { a: 1, b: 'x' }
  const out = routeConfigWith<Record<PropertyKey, unknown>>(input, { [k]: 2 })
  t.not(out, input)
  t.same(Reflect.ownKeys(out), ['a', 'b', 'url', 'method', k])
  t.equal(out[k], 2)
  t.equal(out.url, undefined)
  t.same(input, { a: 1, b: 'x' })
  t.same(Reflect.ownKeys(routeConfigWith(undefined)), ['url', 'method'])
  const again = routeConfigWith<Record<PropertyKey, unknown>>({ url: '/a', method: 'GET', c: 1 })
  t.same(Reflect.ownKeys(again), ['url', 'method', 'c'], 'existing url and method keep their place')
  t.equal(again.url, '/a')
})

t.test('the same check tells a spread-then-add copy per route apart (the V8 behaviour this avoids)', async (t) => {
  const copies: object[] = []
  for (let i = 0; i < 100; i++) {
    const source = { auth: false, rateLimit: false, inspect: false, websocket: false, proxy: { i }, cors: false }
    copies.push({ ...source, url: `/r${i}`, method: 'GET' })
  }
  t.ok(classes(copies) > 50, `a spread followed by new keys: ${classes(copies)} classes for 100 copies`)
})

const variants: Array<{ name: string, env: Record<string, string>, cors: boolean }> = [
  { name: 'proxy only', env: {}, cors: false },
  { name: 'with metrics (series on config)', env: { ADMIN_PORT: '0' }, cors: false },
  { name: 'with CORS (policy on config)', env: {}, cors: true }
]
for (const v of variants) {
  t.test(`the gateway's 2 x 100 routes share one config class, ${v.name} (V8 may give the first copy its own)`, async (t) => {
    const routes = []
    for (let i = 0; i < 100; i++) {
      routes.push(defineRoute({
        prefix: `/svc${i}`,
        upstream: 'http://127.0.0.1:9',
        auth: false,
        rateLimit: false,
        inspect: false,
        ...(v.cors ? { cors: { origins: ['https://app.example.com'] } } : {})
      }))
    }
    // Built, not yet ready: a root hook added now reaches every route the gateway registers.
    const app = await buildGateway(loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', ...v.env }), { routes })
    t.teardown(async () => { await app.close() })
    const configs: object[] = []
    app.addHook('onRequest', async (request: FastifyRequest) => {
      configs.push(request.routeOptions.config)
      throw Object.assign(new Error('stop'), { statusCode: 418 })
    })
    await app.ready()
    for (let i = 0; i < 100; i++) {
      t.equal((await app.inject({ url: `/svc${i}/items` })).statusCode, 418)
      t.equal((await app.inject({ url: `/svc${i}` })).statusCode, 418)
    }
    t.equal(configs.length, 200)
    t.ok(classes(configs) <= 2, `${classes(configs)} classes for 200 routes`)
  })
}
