import t from 'tap'
import { request } from 'undici'
import { defineRoute } from 'portcullis'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'

t.test('proxies a prefix to its upstream, stripping the prefix and keeping the query', async (t) => {
  const up = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', server: 'nginx/1.2.3', 'x-powered-by': 'Express', 'x-aspnet-version': '4.0' })
    res.end('hello')
  })
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false })] })
  const res = await request(`${gw.url}/svc/a/b?x=1&y=%20z`)
  t.equal(res.statusCode, 200)
  t.equal(await res.body.text(), 'hello')
  t.equal(up.requests.length, 1)
  t.equal(up.requests[0]?.url, '/a/b?x=1&y=%20z')
  t.equal(res.headers.server, undefined, 'upstream server header hidden')
  t.equal(res.headers['x-powered-by'], undefined)
  t.equal(res.headers['x-aspnet-version'], undefined)
  t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  t.equal(up.requests[0]?.headers['x-request-id'], res.headers['x-request-id'], 'same request id upstream and back')
})

t.test('rewritePrefix and an upstream base path', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    routes: [
      defineRoute({ prefix: '/users', upstream: `${up.url}/api/v1`, rewritePrefix: '/people', auth: false }),
      defineRoute({ prefix: '/plain', upstream: up.url, rewritePrefix: '/internal', auth: false })
    ]
  })
  await (await request(`${gw.url}/users/42`)).body.text()
  await (await request(`${gw.url}/plain`)).body.text()
  t.strictSame(up.requests.map((r) => r.url), ['/api/v1/people/42', '/internal'])
})

t.test('a prefix matches only at a segment boundary', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/admin', upstream: up.url, auth: false })] })
  for (const path of ['/adminx', '/admin-panel']) {
    const res = await request(`${gw.url}${path}`)
    t.equal(res.statusCode, 404, path)
    t.strictSame(await res.body.json(), { statusCode: 404, code: 'GW_ROUTE_NOT_FOUND', error: 'Not Found', message: 'Route not found' })
  }
  // Another spelling of the prefix is not a miss: case-insensitive backends read it as /admin.
  for (const path of ['/ADMIN/x', '/Admin']) {
    const res = await request(`${gw.url}${path}`)
    t.equal(res.statusCode, 400, path)
    t.match(await res.body.json(), { statusCode: 400, code: 'GW_REQUEST_PATH' })
  }
  t.equal(up.requests.length, 0, 'upstream never hit')
  const ok = await request(`${gw.url}/admin/x`)
  t.equal(ok.statusCode, 200)
  await ok.body.text()
})

t.test('identity, credential, hop-by-hop and override headers never reach the upstream', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false })] })
  const headers = [
    'x-consumer-id: admin',
    'X-Consumer-Scopes: root',
    'x-consumer-custom-id: evil',
    'x-api-key: secret-key-value-123456',
    'proxy-authorization: Basic Zm9vOmJhcg==',
    'authorization: Bearer abc.def.ghi',
    'x-http-method-override: DELETE',
    'x-method-override: DELETE',
    'x-http-method: DELETE',
    'x-forwarded-for: 6.6.6.6',
    'x-forwarded-host: evil.example',
    'x-forwarded-proto: https',
    'forwarded: for=6.6.6.6',
    'x-real-ip: 6.6.6.6',
    'te: trailers',
    'trailer: x-foo',
    'keep-alive: timeout=5',
    'proxy-connection: keep-alive',
    'connection: keep-alive, x-request-id, x-forwarded-for, x-custom',
    'x-custom: dropped because named in Connection',
    'x-kept: yes'
  ]
  const res = await rawRequest(gw.port, `GET /svc/x HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\n${headers.join('\r\n')}\r\n\r\n`)
  t.equal(res.status, 200)
  const h = up.requests[0]?.headers ?? {}
  for (const name of ['x-consumer-id', 'x-consumer-scopes', 'x-consumer-custom-id', 'x-api-key', 'proxy-authorization', 'authorization',
    'x-http-method-override', 'x-method-override', 'x-http-method', 'forwarded', 'x-real-ip', 'te', 'trailer', 'keep-alive',
    'proxy-connection', 'x-custom']) {
    t.equal(h[name], undefined, `${name} stripped`)
  }
  t.equal(h['x-kept'], 'yes')
  t.equal(h['x-forwarded-for'], '127.0.0.1', 'client x-forwarded-for replaced (peer not trusted)')
  t.equal(h['x-forwarded-proto'], 'http')
  t.equal(h['x-forwarded-host'], `127.0.0.1:${gw.port}`)
  t.match(h['x-request-id'], /^[0-9a-f-]{36}$/, 'connection cannot strip the gateway request id')
  t.equal(up.requests[0]?.method, 'GET', 'method override ignored')
})

t.test('x-forwarded-* chain is kept only from a TRUST_PROXY peer', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, { env: { TRUST_PROXY: '127.0.0.1/32' }, routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false })] })
  const res = await request(`${gw.url}/svc/x`, { headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'api.example.com' } })
  await res.body.text()
  const h = up.requests[0]?.headers ?? {}
  t.equal(h['x-forwarded-for'], '203.0.113.7, 127.0.0.1')
  t.equal(h['x-forwarded-proto'], 'https')
  t.equal(h['x-forwarded-host'], 'api.example.com')
})

t.test('request ids: well-formed incoming ids are kept, others replaced', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false })] })
  const good = await request(`${gw.url}/svc/x`, { headers: { 'x-request-id': 'abc-123_XYZ.789' } })
  await good.body.text()
  t.equal(good.headers['x-request-id'], 'abc-123_XYZ.789')
  t.equal(up.requests[0]?.headers['x-request-id'], 'abc-123_XYZ.789')
  for (const bad of ['short', 'has space inside it', 'x'.repeat(200), '<script>alert(1)</script>', "id';drop"]) {
    const res = await request(`${gw.url}/svc/x`, { headers: { 'x-request-id': bad } })
    await res.body.text()
    t.not(res.headers['x-request-id'], bad)
    t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  }
})

t.test('streams large bodies both ways', async (t) => {
  const big = Buffer.alloc(4 * 1024 * 1024, 'a')
  const up = await startUpstream(t, (req, res, rec) => {
    if (req.method === 'POST') {
      res.end(String(rec.body.length))
      return
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    res.end(big)
  })
  const gw = await startGateway(t, { env: { BODY_LIMIT: String(900 * 1024) }, routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false })] })
  const down = await request(`${gw.url}/svc/file`)
  const got = Buffer.from(await down.body.arrayBuffer())
  t.equal(got.length, big.length, '4 MiB response streamed')
  const upload = Buffer.alloc(800 * 1024, 'b')
  const res = await request(`${gw.url}/svc/upload`, { method: 'POST', body: upload, headers: { 'content-type': 'application/octet-stream' } })
  t.equal(res.statusCode, 200)
  t.equal(await res.body.text(), String(upload.length), 'body under the limit forwarded whole')
})
