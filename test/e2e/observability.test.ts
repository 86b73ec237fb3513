import t from 'tap'
import { request } from 'undici'
import { defineRoute } from 'portcullis'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait-for.js'

t.test('one access line per request with method, route, status, upstream, duration and request id', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, { logLevel: 'info', routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false })] })
  const res = await request(`${gw.url}/svc/items/7?page=2`, { headers: { 'x-request-id': 'trace-0001-abcd' } })
  await res.body.text()
  await waitFor(() => gw.logs.some((l) => l.msg === 'request completed'), { message: 'the access line' })
  const lines = gw.logs.filter((l) => l.msg === 'request completed')
  t.equal(lines.length, 1)
  const line = lines[0] as Record<string, unknown>
  t.equal(line.method, 'GET')
  t.equal(line.route, '/svc/*', 'route template, not the raw path')
  t.equal(line.status, 200)
  t.equal(line.upstream, `127.0.0.1:${up.port}`)
  t.equal(line.reqId, 'trace-0001-abcd')
  t.type(line.ms, 'number')
  t.equal(gw.logs.filter((l) => l.level === 30 && l.reqId !== undefined).length, 1, 'nothing else at info per request')
})

t.test('health endpoints answer on the main port without auth and are never proxied', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/', upstream: up.url })] })
  const h = await request(`${gw.url}/healthz`)
  t.equal(h.statusCode, 200)
  t.strictSame(await h.body.json(), { status: 'ok' })
  const r = await request(`${gw.url}/readyz`)
  t.equal(r.statusCode, 200)
  t.strictSame(await r.body.json(), { status: 'ready' })
  gw.app.portcullisState.draining = true
  const d = await request(`${gw.url}/readyz`)
  t.equal(d.statusCode, 503)
  t.equal(d.headers['retry-after'], '5')
  t.equal(d.headers.connection, 'close', 'draining responses close keep-alive connections')
  t.strictSame(await d.body.json(), { status: 'draining' })
  t.equal(up.requests.length, 0, 'health checks never reach the catch-all upstream')
})

t.test('secrets never reach a log line, on success and failure paths, even at debug', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    if (req.url?.startsWith('/fail') === true) { req.socket.destroy(); return }
    res.end('ok')
  })
  const gw = await startGateway(t, { logLevel: 'trace', env: { BODY_LIMIT: '100' }, routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, retries: 0 })] })
  const canaries = {
    jwt: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlLWNhbmFyeQ',
    apiKey: 'apikey-canary-7f3a9b1c2d',
    cookie: 'session=cookie-canary-55aa11',
    proxyAuth: 'Basic cHJveHktY2FuYXJ5OnB3',
    queryKey: 'querykey-canary-9911',
    queryToken: 'querytoken-canary-8822'
  }
  const headers = {
    authorization: `Bearer ${canaries.jwt}`,
    'x-api-key': canaries.apiKey,
    cookie: canaries.cookie,
    'proxy-authorization': canaries.proxyAuth
  }
  const q = `?api_key=${canaries.queryKey}&access_token=${canaries.queryToken}&page=1`
  const calls = [
    request(`${gw.url}/svc/ok${q}`, { headers }),
    request(`${gw.url}/svc/fail${q}`, { headers }),
    request(`${gw.url}/nowhere${q}`, { headers }),
    request(`${gw.url}/svc/big${q}`, { method: 'POST', headers: { ...headers, 'content-type': 'text/plain' }, body: 'x'.repeat(500) })
  ]
  const statuses: number[] = []
  for (const c of calls) {
    const r = await c
    statuses.push(r.statusCode)
    await r.body.text()
  }
  t.strictSame(statuses, [200, 502, 404, 413])
  await waitFor(() => gw.logs.filter((l) => l.msg === 'request completed').length === calls.length, { message: 'an access line per call' })
  const text = gw.logText()
  t.ok(text.length > 0)
  for (const [name, value] of Object.entries(canaries)) {
    t.notOk(text.includes(value), `${name} never logged`)
  }
  t.ok(text.includes('api_key=[REDACTED]'), 'query secrets are masked, not dropped silently')
})
