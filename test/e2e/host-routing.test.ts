import t from 'tap'
import { request } from 'undici'
import { defineRoute } from 'portcullis'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'

t.test('host option: validated as lower-case names or *. wildcards without a port', async (t) => {
  for (const host of ['A.example.com', 'a.example.com:8080', 'a..b', '*.', 'x.*.example.com', '', 'http://a']) {
    t.throws(() => defineRoute({ host, prefix: '/a', upstream: 'http://127.0.0.1:1', auth: false }), { code: 'GW_CONFIG_INVALID' }, host)
  }
  t.throws(() => defineRoute({ host: [], prefix: '/a', upstream: 'http://127.0.0.1:1', auth: false }), { code: 'GW_CONFIG_INVALID' })
  t.doesNotThrow(() => defineRoute({ host: ['a.example.com', '*.example.org', 'localhost'], prefix: '/a', upstream: 'http://127.0.0.1:1', auth: false }))
})

t.test('one prefix, one upstream per host, over TCP', async (t) => {
  const a = await startUpstream(t, (_req, res) => { res.end('A') })
  const b = await startUpstream(t, (_req, res) => { res.end('B') })
  const w = await startUpstream(t, (_req, res) => { res.end('W') })
  const gw = await startGateway(t, {
    routes: [
      defineRoute({ host: 'a.example.com', prefix: '/api', upstream: a.url, auth: false }),
      defineRoute({ host: ['b.example.com'], prefix: '/api', upstream: b.url, auth: false }),
      defineRoute({ host: '*.wild.test', prefix: '/api', upstream: w.url, auth: false })
    ]
  })
  const get = async (host: string, path = '/api/x'): Promise<{ status: number, body: string }> => {
    const res = await request(`${gw.url}${path}`, { headers: { host } })
    return { status: res.statusCode, body: await res.body.text() }
  }
  t.strictSame(await get('a.example.com'), { status: 200, body: 'A' })
  t.strictSame(await get('A.Example.COM:8443'), { status: 200, body: 'A' }, 'any letter case, any port')
  t.strictSame(await get('b.example.com'), { status: 200, body: 'B' })
  t.strictSame(await get('one.wild.test'), { status: 200, body: 'W' }, 'wildcard')
  t.strictSame(await get('two.deep.wild.test:80'), { status: 200, body: 'W' }, 'wildcard, deeper subdomain')
  const before = a.requests.length + b.requests.length + w.requests.length
  const unknown = await request(`${gw.url}/api/x`, { headers: { host: 'x.example.com' } })
  t.equal(unknown.statusCode, 404)
  t.match(await unknown.body.json(), { code: 'GW_ROUTE_NOT_FOUND' })
  t.equal((await get('wild.test')).status, 404, 'a wildcard does not match the bare name')
  t.equal((await get('a.example.com.evil.test')).status, 404, 'a name is matched whole')
  t.equal(a.requests.length + b.requests.length + w.requests.length, before, 'no upstream saw the unknown hosts')
  t.equal(a.requests[0]?.url, '/x')

  // HTTP/1.1 without Host: 400 as without host routing; HTTP/1.0 without Host names no host.
  const noHost11 = await rawRequest(gw.port, 'GET /api/x HTTP/1.1\r\n\r\n')
  t.equal(noHost11.status, 400)
  const noHost10 = await rawRequest(gw.port, 'GET /api/x HTTP/1.0\r\n\r\n')
  t.equal(noHost10.status, 404, 'HTTP/1.0 without Host matches no host-bound route')
  t.equal(a.requests.length + b.requests.length + w.requests.length, before, 'nothing reached an upstream')
})

t.test('a route without host is the default for every other host', async (t) => {
  const a = await startUpstream(t, (_req, res) => { res.end('A') })
  const d = await startUpstream(t, (_req, res) => { res.end('D') })
  const gw = await startGateway(t, {
    listen: false,
    routes: [
      defineRoute({ prefix: '/api', upstream: d.url, auth: false }),
      defineRoute({ host: 'a.example.com', prefix: '/api', upstream: a.url, auth: false })
    ]
  })
  t.equal((await gw.app.inject({ url: '/api/1', headers: { host: 'a.example.com' } })).body, 'A')
  t.equal((await gw.app.inject({ url: '/api/1', headers: { host: 'other.example.com' } })).body, 'D')
  t.equal((await gw.app.inject({ url: '/api', headers: { host: 'a.example.com' } })).body, 'A', 'the prefix itself')
  t.strictSame(gw.app.portcullisProxy.routes.map((r) => r.hosts), [[], ['a.example.com']])
})

t.test('routes of one prefix whose hosts can name one host stop startup, naming both', async (t) => {
  const cases: Array<[string | string[], string | string[], RegExp]> = [
    ['a.example.com', 'a.example.com', /host: a\.example\.com on prefix \/api/],
    ['*.example.com', 'a.example.com', /a\.example\.com \/ \*\.example\.com/],
    [['x.test', 'a.b.example.com'], '*.example.com', /\*\.example\.com \/ a\.b\.example\.com/]
  ]
  for (const [h1, h2, re] of cases) {
    const err = await startGateway(t, {
      listen: false,
      routes: [
        defineRoute({ host: h1, prefix: '/api', upstream: 'http://127.0.0.1:1', auth: false }),
        defineRoute({ host: h2, prefix: '/api', upstream: 'http://127.0.0.1:2', auth: false })
      ]
    }).then(() => null, (e: Error) => e)
    t.ok(err, `${String(h1)} + ${String(h2)} refused`)
    t.match(err?.message, re)
    t.match(err?.message, /host-routing\.test\.ts[\s\S]*already routed by [^\n]*host-routing\.test\.ts/, 'names both files')
  }
  // Different methods on one host are fine.
  await t.resolves(startGateway(t, {
    listen: false,
    routes: [
      defineRoute({ host: 'a.example.com', prefix: '/api', methods: ['GET'], upstream: 'http://127.0.0.1:1', auth: false }),
      defineRoute({ host: 'a.example.com', prefix: '/api', methods: ['POST'], upstream: 'http://127.0.0.1:2', auth: false })
    ]
  }))
})

t.test('rate limit budgets stay per route when routes share a prefix', async (t) => {
  const a = await startUpstream(t, (_req, res) => { res.end('A') })
  const b = await startUpstream(t, (_req, res) => { res.end('B') })
  const gw = await startGateway(t, {
    listen: false,
    env: { RATE_LIMIT_MAX: '2', RATE_LIMIT_WINDOW: '1 minute' },
    routes: [
      defineRoute({ host: 'a.example.com', prefix: '/api', upstream: a.url, auth: false }),
      defineRoute({ host: 'b.example.com', prefix: '/api', upstream: b.url, auth: false, rateLimit: { max: 2, timeWindow: '1 minute' } })
    ]
  })
  const codes = async (host: string): Promise<number[]> => {
    const out: number[] = []
    for (let i = 0; i < 3; i++) out.push((await gw.app.inject({ url: '/api/x', headers: { host } })).statusCode)
    return out
  }
  t.strictSame(await codes('a.example.com'), [200, 200, 429])
  t.strictSame(await codes('b.example.com'), [200, 200, 429], 'b has its own budget')
  t.equal(a.requests.length, 2)
  t.equal(b.requests.length, 2)
})

t.test('the path check still refuses case and ; spellings on host-bound routes', async (t) => {
  const a = await startUpstream(t)
  const admin = await startUpstream(t)
  const gw = await startGateway(t, {
    listen: false,
    routes: [
      defineRoute({ host: 'a.example.com', prefix: '/api', upstream: a.url, auth: false }),
      defineRoute({ host: 'a.example.com', prefix: '/api/admin', upstream: admin.url })
    ]
  })
  for (const url of ['/api/ADMIN/x', '/api/admin;x=1/x', '/api/Admin']) {
    const res = await gw.app.inject({ url, headers: { host: 'a.example.com' } })
    t.equal(res.statusCode, 400, url)
  }
  t.equal(a.requests.length + admin.requests.length, 0, 'no upstream saw them')
})
