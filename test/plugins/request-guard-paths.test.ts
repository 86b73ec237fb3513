/**
 * The path reader (how lenient backends read a path) and the route table the request guard
 * compares the literal route with. End-to-end behaviour: test/e2e/path-bypass.test.ts.
 */
import t from 'tap'
import Fastify from 'fastify'
import { loadConfig, requestGuardPlugin } from 'portcullis'
import { AMBIGUOUS, readPath } from '../../plugins/request-guard/canonical.js'
import { RouteTable, routeId } from '../../plugins/request-guard/route-table.js'

t.test('readPath: each backend rewrite, one segment at a time', async (t) => {
  const cases: Array<[string, string[]]> = [
    ['/inv/admin', ['inv', 'admin']],
    ['/INV/Admin', ['inv', 'admin']],
    ['/inv/admin/', ['inv', 'admin']],
    ['/inv;x/admin', ['inv', 'admin']],
    ['/inv/admin;', ['inv', 'admin']],
    ['/inv/admin;jsessionid=1/x', ['inv', 'admin', 'x']],
    ['/;/inv/admin', ['inv', 'admin']],
    ['/inv/admin%3bx', ['inv', 'admin']],
    ['/inv/admin%3B', ['inv', 'admin']],
    ['/inv/admin.', ['inv', 'admin']],
    ['/inv/admin..', ['inv', 'admin']],
    ['/inv/admin. .', ['inv', 'admin']],
    ['/inv/admin%20', ['inv', 'admin']],
    ['/inv/%20admin', ['inv', 'admin']],
    ['/inv/admin+', ['inv', 'admin']],
    ['/inv/admin%C2%A0', ['inv', 'admin']],
    ['/inv/admin%C2%85', ['inv', 'admin']],
    ['/inv/admin%E3%80%80', ['inv', 'admin']],
    ['/inv/ad%E2%80%8Bmin', ['inv', 'admin']],
    ['/inv/ad%C2%ADmin', ['inv', 'admin']],
    ['/inv/admin::$DATA', ['inv', 'admin']],
    ['/inv/admin:$I30:$INDEX_ALLOCATION', ['inv', 'admin']],
    ['/inv/%EF%BD%81%EF%BD%84%EF%BD%8D%EF%BD%89%EF%BD%8E', ['inv', 'admin']],
    ['/inv/%C4%81dmin', ['inv', 'admin']],
    ['/inv/adm%C4%B1n', ['inv', 'admin']],
    ['/inv/adm%C4%B0n', ['inv', 'admin']],
    ['/inv/%E2%93%90dmin', ['inv', 'admin']],
    ['/inv/%CE%B1dmin', ['inv', 'admin']],
    ['/inv/admin%3Fx', ['inv', 'admin']],
    ['/inv/admin%23x/y', ['inv', 'admin']],
    ['/inv%E2%81%84admin', ['inv', 'admin']],
    ['/inv%C2%A5admin', ['inv', 'admin']],
    ['/inv%EF%B9%A8admin', ['inv', 'admin']],
    ['/inv/stra%C3%9Fe', ['inv', 'strasse']],
    ['/inv/items:batchGet', ['inv', 'items:batchget']],
    ['/inv/a.b/c..d/report.json', ['inv', 'a.b', 'c..d', 'report.json']],
    ['/inv/caf%C3%A9', ['inv', 'cafe']],
    ['/inv/admin%253Bx', ['inv', 'admin']],
    ['/inv/%25u0041DMIN', ['inv', 'admin']],
    ['/inv/%2525u0041dmin', ['inv', 'admin']],
    ['/inv/100%25', ['inv', '100%']],
    ['/inv/a%2520b', ['inv', 'a b']]
  ]
  for (const [path, segments] of cases) t.strictSame(readPath(path), segments, path)
  for (const path of ['/inv/..%20/admin', '/inv/.%3bx/admin', '/inv/%E2%80%A5/admin', '/inv/...', '/inv/.%E2%80%8B/x', '/inv/%EF%B9%92/x', '/inv/%E3%80%82%E3%80%82/x', '/inv/x/%25252e%25252e/admin']) {
    t.equal(readPath(path), AMBIGUOUS, `${path}: a dot segment in disguise`)
  }
})

t.test('routeId: one identity per prefix, parameter names blanked', async (t) => {
  t.equal(routeId('/inv'), '/inv')
  t.equal(routeId('/inv/*'), '/inv')
  t.equal(routeId('/inv/'), '/inv')
  t.equal(routeId('/*'), '')
  t.equal(routeId('/users/:id'), '/users/:')
  t.equal(routeId('/users/:name/*'), '/users/:')
  t.equal(routeId('/v1/items::batchGet'), '/v1/items::batchGet')
})

const ALL = ['GET', 'HEAD', 'POST']

function table (...urls: string[]): RouteTable {
  const routes = new RouteTable()
  for (const url of urls) routes.add(ALL, url)
  return routes
}

t.test('RouteTable: a reading under another route differs; under the same route it does not', async (t) => {
  const routes = table('/inv', '/inv/*', '/inv/admin', '/inv/admin/*')
  const other: Array<[string, string | null]> = [
    ['/inv/ADMIN', '/inv'], ['/INV/admin', null], ['/inv/admin;x', '/inv'], ['/inv/admin.json', '/inv'],
    ['/inv/ADMINI~1', '/inv'], ['/inv/admin::$DATA/x', '/inv'], ['/inv/x/..%20/admin', '/inv']
  ]
  for (const [path, literal] of other) t.ok(routes.readsAsOtherRoute('GET', path, literal), `${path} reads as another route`)
  const same: Array<[string, string]> = [
    ['/inv/Items/ABC', '/inv'], ['/inv/items;v=2', '/inv'], ['/inv/report.json', '/inv'], ['/inv/admin/Users', '/inv/admin'],
    ['/inv/admin/', '/inv/admin'], ['/inv/admin/x.json', '/inv/admin'], ['/inv/admin;x/y', '/inv/admin'], ['/inv/PROGRA~1', '/inv']
  ]
  for (const [path, literal] of same) t.notOk(routes.readsAsOtherRoute('GET', path, literal), `${path} stays on ${literal}`)
})

t.test('RouteTable: a catch-all beside a protected prefix, and a prefix with a dot', async (t) => {
  const routes = table('/*', '/admin', '/admin/*', '/v1.0', '/v1.0/*')
  for (const path of ['/Admin', '/admin.', '/admin%20', '/admin.json', '/;/admin', '/admin;/x', '/ADMINI~1/x']) {
    t.ok(routes.readsAsOtherRoute('GET', path, ''), `${path} reads as /admin`)
  }
  t.notOk(routes.readsAsOtherRoute('GET', '/v1.0', '/v1.0'), 'a prefix ending in .0 is not a suffix of /v1')
  t.notOk(routes.readsAsOtherRoute('GET', '/index.html', ''), 'a suffix only counts where a route ends')
  t.notOk(routes.readsAsOtherRoute('GET', '/Public/X', ''))
})

t.test('RouteTable: the suffix reading yields to a route that has the full name', async (t) => {
  const routes = table('/*', '/openapi', '/openapi.json')
  t.notOk(routes.readsAsOtherRoute('GET', '/openapi.json', '/openapi.json'), 'the exact mapping wins (as in Spring)')
  t.ok(routes.readsAsOtherRoute('GET', '/openapi.yaml', ''), 'another extension reads as /openapi')
})

t.test('RouteTable: methods, parameters and wildcards follow the router', async (t) => {
  const routes = new RouteTable()
  routes.add(['GET', 'HEAD'], '/*')
  routes.add('POST', '/admin')
  routes.add(['GET', 'HEAD'], '/users/:id')
  routes.add(['GET', 'HEAD'], '/users/me')
  t.notOk(routes.readsAsOtherRoute('GET', '/ADMIN', ''), 'no GET route at /admin: the backend reading goes to the catch-all too')
  t.ok(routes.readsAsOtherRoute('POST', '/ADMIN', null), 'POST /ADMIN reads as POST /admin')
  t.ok(routes.readsAsOtherRoute('GET', '/users/ME', '/users/:'), 'ME reads as the static route me')
  t.notOk(routes.readsAsOtherRoute('GET', '/users/Bob', '/users/:'))
})

t.test('RouteTable: paths that need no reading skip it', async (t) => {
  const routes = table('/inv', '/inv/*', '/inv/admin', '/inv/admin/*')
  for (const path of ['/', '/inv', '/inv/items/abc-1_2', '/inv/report.json', '/inv/a.b/c']) t.notOk(routes.needsReading(path), path)
  for (const path of ['/inv/Items', '/inv/a%20b', '/inv/a;b', '/inv/a+b', '/inv/ADMINI~1', '/inv/a:b', '/inv/a.', '/inv/a/', '/inv/admin.json']) {
    t.ok(routes.needsReading(path), path)
  }
  const mixed = table('/Inv', '/Inv/*')
  t.ok(mixed.needsReading('/inv/x'), 'a route spelled with capitals: every path is read')
})

t.test('RouteTable: route paths that read as one another are refused', async (t) => {
  const pairs: Array<[string, string]> = [
    ['/admin', '/Admin'], ['/admin', '/admin.'], ['/inv/admin/*', '/inv/ADMIN/*'], ['/caf\u00e9', '/cafe'], ['/a/b', '/a/B']
  ]
  for (const [a, b] of pairs) {
    const err = t.throws(() => table(a, b), { code: 'GW_CONFIG_INVALID' }) as Error
    t.match(err.message, routeId(a), `${a} named`)
    t.match(err.message, routeId(b), `${b} named`)
  }
  t.doesNotThrow(() => table('/users/:id', '/users/:name/x', '/admin', '/admin/*', '/admin/', '/v1/items', '/v1/items::batchGet'))
})

t.test('the plugin: onRoute builds the table, literal mode skips it, bad options stop startup', async (t) => {
  const strict = Fastify()
  t.teardown(() => strict.close())
  await strict.register(requestGuardPlugin)
  strict.get('/*', async () => 'public')
  strict.get('/admin', async () => 'admin')
  const refused = await strict.inject({ method: 'GET', url: '/ADMIN' })
  t.equal(refused.statusCode, 400)
  t.equal(refused.json().code, 'GW_REQUEST_PATH')
  t.equal((await strict.inject({ method: 'GET', url: '/Public' })).body, 'public')
  t.equal((await strict.inject({ method: 'HEAD', url: '/admin;x' })).statusCode, 400, 'HEAD routes are in the table too')

  const literal = Fastify()
  t.teardown(() => literal.close())
  await literal.register(requestGuardPlugin, { pathCheck: 'literal' })
  literal.get('/*', async () => 'public')
  literal.get('/admin', async () => 'admin')
  literal.get('/Admin', async () => 'Admin')
  t.equal((await literal.inject({ method: 'GET', url: '/ADMIN' })).body, 'public', 'literal: the literal route')

  const conflicting = Fastify()
  t.teardown(() => conflicting.close())
  await conflicting.register(requestGuardPlugin)
  t.throws(() => conflicting.get('/Admin', async () => 'x') && conflicting.get('/admin', async () => 'y'), { code: 'GW_CONFIG_INVALID' })

  const bad = Fastify()
  t.teardown(() => bad.close())
  await t.rejects(async () => { await bad.register(requestGuardPlugin, { pathCheck: 'lenient' as 'literal' }) }, { code: 'GW_CONFIG_INVALID' })
})

t.test('PATH_CHECK: strict by default, literal on request, anything else stops startup', async (t) => {
  t.equal(loadConfig({}).pathCheck, 'strict')
  t.equal(loadConfig({ PATH_CHECK: 'literal' }).pathCheck, 'literal')
  const err = t.throws(() => loadConfig({ PATH_CHECK: 'off' }), { code: 'GW_CONFIG_INVALID' }) as Error
  t.match(err.message, /PATH_CHECK: must be one of strict, literal/)
})
