import t, { type Test } from 'tap'
import { request } from 'undici'
import { defineRoute } from 'portcullis'
import { closedPort, rawUpstream, startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait-for.js'

function assertGeneric (t: Test, body: Record<string, unknown>, status: number, code: string): void {
  t.equal(body.statusCode, status)
  t.equal(body.code, code)
  t.strictSame(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'])
  const text = JSON.stringify(body)
  for (const leak of ['127.0.0.1', 'ECONN', 'UND_ERR', 'undici', 'at ', 'Error:', 'socket', 'HPE_']) {
    t.notOk(text.includes(leak), `no "${leak}" in the client body`)
  }
}

t.test('refused upstream -> 502 with a generic body', async (t) => {
  const port = await closedPort()
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: `http://127.0.0.1:${port}`, auth: false, retries: 0 })] })
  const res = await request(`${gw.url}/svc/x`)
  t.equal(res.statusCode, 502)
  assertGeneric(t, await res.body.json() as Record<string, unknown>, 502, 'GW_UPSTREAM_BAD_GATEWAY')
})

t.test('reset by the upstream -> 502; a POST with a body reaches it at most once', async (t) => {
  const up = await startUpstream(t, (req) => { req.socket.destroy() })
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, retries: 3 })] })
  const post = await request(`${gw.url}/svc/pay`, { method: 'POST', body: '{"amount":10}', headers: { 'content-type': 'application/json' } })
  t.equal(post.statusCode, 502)
  assertGeneric(t, await post.body.json() as Record<string, unknown>, 502, 'GW_UPSTREAM_BAD_GATEWAY')
  t.equal(up.requests.length, 1, 'POST sent once')
  const get = await request(`${gw.url}/svc/item`)
  t.equal(get.statusCode, 502)
  await get.body.text()
  t.equal(up.requests.length, 2, 'a GET that reached the upstream is not replayed either')
})

t.test('invalid upstream responses -> 502', async (t) => {
  const shapes: Record<string, string> = {
    garbage: 'THIS IS NOT HTTP\r\n\r\n',
    'bad status': 'HTTP/1.1 999 Nope\r\ncontent-length: 0\r\n\r\n',
    'bad header': 'HTTP/1.1 200 OK\r\nx-bad header: 1\r\ncontent-length: 0\r\n\r\n',
    'cl and te': 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n'
  }
  for (const [name, reply] of Object.entries(shapes)) {
    const up = await rawUpstream(t, (s) => { s.once('data', () => { s.end(reply) }) })
    const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, retries: 0 })] })
    const res = await request(`${gw.url}/svc/x`)
    t.equal(res.statusCode, 502, name)
    assertGeneric(t, await res.body.json() as Record<string, unknown>, 502, 'GW_UPSTREAM_BAD_GATEWAY')
  }
})

t.test('upstream timeout -> 504', async (t) => {
  const up = await rawUpstream(t, () => { /* accepts, never answers */ })
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, timeout: 300 })] })
  const res = await request(`${gw.url}/svc/x`)
  t.equal(res.statusCode, 504)
  assertGeneric(t, await res.body.json() as Record<string, unknown>, 504, 'GW_UPSTREAM_TIMEOUT')
})

t.test('body idle timeout cuts a stalled response stream', async (t) => {
  const up = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('partial')
  })
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, timeout: { headersMs: 1000, bodyIdleMs: 300 } })] })
  const res = await request(`${gw.url}/svc/x`)
  t.equal(res.statusCode, 200)
  await t.rejects(res.body.text(), 'the client sees the stream end abnormally instead of hanging')
})

t.test('an upstream 503 is passed through once, never retried', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.writeHead(503, { 'retry-after': '0' }); res.end('busy') })
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, circuitBreaker: false })] })
  const res = await request(`${gw.url}/svc/x`)
  t.equal(res.statusCode, 503)
  await res.body.text()
  t.equal(up.requests.length, 1, 'GET not retried on upstream 503')
})

t.test('passive health: failing target ejected, then 503 with Retry-After when none is left, then recovery', async (t) => {
  let failing = true
  const up = await startUpstream(t, (_req, res) => {
    res.writeHead(failing ? 502 : 200)
    res.end(failing ? 'bad' : 'good')
  })
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, circuitBreaker: { failureThreshold: 2, cooldownMs: 400 } })] })
  for (let i = 0; i < 2; i++) await (await request(`${gw.url}/svc/x`)).body.text()
  t.equal(up.requests.length, 2)
  const res = await request(`${gw.url}/svc/x`)
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '1')
  assertGeneric(t, await res.body.json() as Record<string, unknown>, 503, 'GW_UPSTREAM_UNAVAILABLE')
  t.equal(up.requests.length, 2, 'ejected target not contacted')
  failing = false
  // While the circuit is open the gateway answers 503 without contacting the target; once the
  // cooldown has passed, the half-open trial reaches it.
  const back = await waitFor(async () => {
    const r = await request(`${gw.url}/svc/x`)
    const text = await r.body.text()
    return r.statusCode === 200 ? text : undefined
  }, { message: 'the half-open trial after the cooldown' })
  t.equal(back, 'good', 'half-open trial succeeds and closes the circuit')
  t.equal(up.requests.length, 3, 'only the trial reached the target')
  const closed = await request(`${gw.url}/svc/x`)
  t.equal(closed.statusCode, 200, 'the circuit is closed again')
  await closed.body.text()
})

t.test('load balancing across targets, and a safe retry on another target after a refused connection', async (t) => {
  const a = await startUpstream(t, (_q, res) => { res.end('a') })
  const b = await startUpstream(t, (_q, res) => { res.end('b') })
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/lb', upstream: [a.url, b.url], auth: false })] })
  const seen: string[] = []
  for (let i = 0; i < 6; i++) seen.push(await (await request(`${gw.url}/lb/x`)).body.text())
  t.equal(seen.filter((s) => s === 'a').length, 3)
  t.equal(seen.filter((s) => s === 'b').length, 3)

  const dead = await closedPort()
  const c = await startUpstream(t, (_q, res) => { res.end('c') })
  const gw2 = await startGateway(t, { routes: [defineRoute({ prefix: '/lb', upstream: [`http://127.0.0.1:${dead}`, c.url], auth: false })] })
  for (let i = 0; i < 4; i++) {
    const res = await request(`${gw2.url}/lb/x`)
    t.equal(res.statusCode, 200, 'GET retried on the healthy target')
    t.equal(await res.body.text(), 'c')
  }
})

/** Upstream attempts of one request: the first, plus one per logged retry. */
function attempts (gw: { logs: Array<Record<string, unknown>> }): number {
  return 1 + gw.logs.filter((l) => l.msg === 'retrying on another target').length
}

t.test('a POST is sent to the upstream once; a GET is retried per the route\'s retries', async (t) => {
  // Round-robin starts at the first target, and circuitBreaker: false keeps the order fixed, so each
  // fresh gateway sends its first request to the first target listed.
  const c = await startUpstream(t, (_q, res) => { res.end('c') })
  const reset = await startUpstream(t, (req) => { req.socket.destroy() })
  const sent = await startGateway(t, { routes: [defineRoute({ prefix: '/lb', upstream: [reset.url, c.url], auth: false, retries: 3, circuitBreaker: false })] })
  const post = await request(`${sent.url}/lb/x`, { method: 'POST', body: 'x' })
  t.equal(post.statusCode, 502, 'the upstream reset after receiving the POST')
  await post.body.text()
  t.equal(reset.requests.length, 1, 'POST reached the upstream exactly once')
  t.equal(c.requests.length, 0, 'and was not replayed on the other target')
  t.equal(attempts(sent), 1)

  const dead = await closedPort()
  const refused = await startGateway(t, { routes: [defineRoute({ prefix: '/lb', upstream: [`http://127.0.0.1:${dead}`, c.url], auth: false, retries: 3, circuitBreaker: false })] })
  const post2 = await request(`${refused.url}/lb/x`, { method: 'POST', body: 'x' })
  t.equal(post2.statusCode, 502, 'a POST to a refusing target is not moved to another one')
  await post2.body.text()
  t.equal(c.requests.length, 0)
  t.equal(attempts(refused), 1)

  const none = await startGateway(t, { routes: [defineRoute({ prefix: '/lb', upstream: [`http://127.0.0.1:${dead}`, c.url], auth: false, retries: 0, circuitBreaker: false })] })
  const get0 = await request(`${none.url}/lb/x`)
  t.equal(get0.statusCode, 502, 'retries: 0 -> a GET is not retried')
  await get0.body.text()
  t.equal(c.requests.length, 0)
  t.equal(attempts(none), 1)

  const one = await startGateway(t, { routes: [defineRoute({ prefix: '/lb', upstream: [`http://127.0.0.1:${dead}`, c.url], auth: false, retries: 1, circuitBreaker: false })] })
  const get1 = await request(`${one.url}/lb/x`)
  t.equal(get1.statusCode, 200, 'retries: 1 -> the GET is retried on the other target')
  t.equal(await get1.body.text(), 'c')
  t.equal(c.requests.length, 1)
  t.equal(attempts(one), 2)
})

t.test('active health checks take an unhealthy target out of rotation until it recovers', async (t) => {
  let bHealthy = false
  const a = await startUpstream(t, (req, res) => { res.end(req.url === '/health' ? 'ok' : 'a') })
  const b = await startUpstream(t, (req, res) => {
    if (req.url === '/health') { res.writeHead(bHealthy ? 200 : 500); res.end(); return }
    res.end('b')
  })
  const gw = await startGateway(t, {
    routes: [defineRoute({ prefix: '/hc', upstream: [a.url, b.url], auth: false, healthCheck: { path: '/health', intervalMs: 100, unhealthyThreshold: 1, healthyThreshold: 1 } })]
  })
  const verdict = (msg: string): unknown => gw.logs.find((l) => l.msg === msg && l.target === new URL(b.url).host)
  await waitFor(() => verdict('upstream target unhealthy'), { message: 'target b marked unhealthy' })
  const seen = new Set<string>()
  for (let i = 0; i < 6; i++) seen.add(await (await request(`${gw.url}/hc/x`)).body.text())
  t.strictSame([...seen], ['a'], 'only the healthy target serves')
  t.equal(b.requests.filter((r) => r.url !== '/health').length, 0)
  bHealthy = true
  await waitFor(() => verdict('upstream target healthy'), { message: 'target b marked healthy again' })
  const after = new Set<string>()
  for (let i = 0; i < 6; i++) after.add(await (await request(`${gw.url}/hc/x`)).body.text())
  t.strictSame([...after].sort(), ['a', 'b'], 'recovered target back in rotation')
})

t.test('per-route in-flight cap answers 503 at once instead of queueing', async (t) => {
  // The first response is held until the second request has been answered.
  let releaseFirst = (): void => {}
  let seen = 0
  const up = await startUpstream(t, (_q, res) => { if (++seen === 1) releaseFirst = () => { res.end('slow') }; else res.end('slow') })
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/cap', upstream: up.url, auth: false, maxInFlight: 1 })] })
  const first = request(`${gw.url}/cap/x`)
  await waitFor(() => seen === 1, { message: 'the first request at the upstream' })
  const second = await request(`${gw.url}/cap/y`)
  t.equal(second.statusCode, 503, 'answered while the slot is taken, not queued behind it')
  t.ok(second.headers['retry-after'] !== undefined)
  assertGeneric(t, await second.body.json() as Record<string, unknown>, 503, 'GW_ROUTE_OVERLOADED')
  t.equal(up.requests.length, 1)
  releaseFirst()
  t.equal((await first).statusCode, 200)
  const third = await request(`${gw.url}/cap/z`)
  t.equal(third.statusCode, 200, 'slot released after the response')
  await third.body.text()
})
