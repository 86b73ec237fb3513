import t, { type Test } from 'tap'
import { once } from 'node:events'
import { connect as tlsConnect } from 'node:tls'
import { connect as http2Connect, constants as http2Constants, type ClientHttp2Session } from 'node:http2'
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https'
import type { AddressInfo } from 'node:net'
import { Agent, request } from 'undici'
import Fastify from 'fastify'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { defineRoute, gatewayErrorHandler, loadConfig, proxyPlugin, type GatewayConfig } from 'portcullis'
import { delayedEcho, startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { makeCert, type TestCert } from '../helpers/certs.js'
import { waitFor } from '../helpers/wait-for.js'
import { securityHeadersPlugin } from '../../plugins/security-headers/index.js'

/** The security headers plugin on the real gateway, unless src/app.ts registers it already. */
function edgePlugins (config: GatewayConfig): FastifyPluginAsync {
  return fp(async function testEdgePlugins (fastify) {
    if (!fastify.hasPlugin('portcullis-security-headers')) await fastify.register(securityHeadersPlugin, { tls: config.tls !== undefined })
  }, { name: 'test-edge-plugins' })
}

async function gateway (t: Test, env: Record<string, string>, upstream: string): ReturnType<typeof startGateway> {
  const full = { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env }
  return await startGateway(t, { env: full, routes: [edgePlugins(loadConfig(full)), defineRoute({ prefix: '/svc', upstream, auth: false })] })
}

const HSTS = 'max-age=31536000; includeSubDomains'

/** One HTTP/2 request on `session`: status, response headers and body text. */
async function h2Request (session: ClientHttp2Session, headers: Record<string, string>, body?: string): Promise<{ status: number, headers: Record<string, unknown>, body: string }> {
  return await new Promise((resolve, reject) => {
    const stream = session.request(headers)
    let text = ''
    let received: Record<string, unknown> = {}
    stream.on('response', (h) => { received = h })
    stream.on('data', (c: Buffer) => { text += c.toString() })
    stream.on('end', () => { resolve({ status: Number(received[':status']), headers: received, body: text }) })
    stream.on('error', reject)
    stream.end(body)
  })
}
const cert = makeCert()

t.test('HTTPS termination: a verifying TLS client reaches the upstream; HSTS only over TLS', async (t) => {
  const up = await startUpstream(t)
  const gw = await gateway(t, { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile }, up.url)
  const agent = new Agent({ connect: { ca: cert.cert } })
  t.teardown(async () => { await agent.close() })
  const res = await request(`https://localhost:${gw.port}/svc/secure?q=1`, { dispatcher: agent })
  t.equal(res.statusCode, 200)
  const body = await res.body.json() as { url: string, headers: Record<string, string> }
  t.equal(body.url, '/secure?q=1')
  t.equal(body.headers['x-forwarded-proto'], 'https')
  t.equal(res.headers['strict-transport-security'], HSTS)

  const untrusting = new Agent()
  t.teardown(async () => { await untrusting.close() })
  await t.rejects(request(`https://localhost:${gw.port}/svc/x`, { dispatcher: untrusting }), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }, 'a client that does not trust the CA refuses the gateway')
  t.equal(up.requests.length, 1)

  const plain = await gateway(t, {}, up.url)
  const p = await request(`${plain.url}/svc/plain`)
  await p.body.text()
  t.equal(p.statusCode, 200)
  t.equal(p.headers['strict-transport-security'], undefined, 'no HSTS over plain HTTP')
})

t.test('HTTP/2 with HTTP/1.1 fallback on one TLS port', async (t) => {
  const up = await startUpstream(t)
  const gw = await gateway(t, { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: 'true' }, up.url)

  const session = http2Connect(`https://localhost:${gw.port}`, { ca: cert.cert })
  t.teardown(() => { session.destroy() })
  const h2 = await h2Request(session, { ':method': 'GET', ':path': '/svc/over-h2' })
  t.equal(session.alpnProtocol, 'h2')
  t.equal(h2.status, 200)
  t.equal(h2.headers['strict-transport-security'], HSTS)
  t.equal(h2.headers['x-frame-options'], 'DENY')
  const echoed = JSON.parse(h2.body) as { url: string, headers: Record<string, string> }
  t.equal(echoed.url, '/over-h2')
  t.notOk(Object.keys(echoed.headers).some((k) => k.startsWith(':')), 'no HTTP/2 pseudo-headers upstream')

  const h1 = await new Promise<{ status: number, version: string, hsts: unknown, body: string }>((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', servername: 'localhost', port: gw.port, path: '/svc/over-h1', ca: cert.cert }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, version: res.httpVersion, hsts: res.headers['strict-transport-security'], body }) })
    })
    req.on('error', reject)
    req.end()
  })
  t.equal(h1.status, 200)
  t.equal(h1.version, '1.1', 'an HTTP/1.1-only client is served')
  t.equal(h1.hsts, HSTS)
  t.equal((JSON.parse(h1.body) as { url: string }).url, '/over-h1')
  t.strictSame(up.requests.map((r) => r.url), ['/over-h2', '/over-h1'])
})

/** An HTTPS upstream with its own self-signed certificate. */
async function httpsUpstream (t: Test, c: TestCert): Promise<{ url: string, hits: () => number }> {
  let hits = 0
  const server = createHttpsServer({ cert: c.cert, key: c.key }, (_req, res) => {
    hits++
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.end('tls upstream')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  })
  return { url: `https://localhost:${(server.address() as AddressInfo).port}`, hits: () => hits }
}

async function proxyTo (t: Test, upstream: string, upstreamCa?: string): Promise<ReturnType<typeof Fastify>> {
  const app = Fastify()
  app.setErrorHandler(gatewayErrorHandler)
  await app.register(proxyPlugin, upstreamCa === undefined ? {} : { upstreamCa })
  await app.register(defineRoute({ prefix: '/svc', upstream, auth: false, retries: 0, circuitBreaker: false }))
  t.teardown(async () => { await app.close() })
  await app.ready()
  return app
}

t.test('TLS to upstreams: certificates verified by default; a configured CA is trusted', async (t) => {
  const upCert = makeCert()
  const up = await httpsUpstream(t, upCert)

  const strict = await proxyTo(t, up.url)
  const refused = await strict.inject('/svc/x')
  t.equal(refused.statusCode, 502, 'self-signed upstream refused by default')
  t.equal(refused.json().code, 'GW_UPSTREAM_BAD_GATEWAY')
  t.notOk(refused.body.includes('SELF_SIGNED'), 'no TLS detail reaches the client')

  const wrongCa = await proxyTo(t, up.url, makeCert().cert)
  t.equal((await wrongCa.inject('/svc/x')).statusCode, 502, 'another CA does not vouch for it')
  t.equal(up.hits(), 0, 'no request was sent over an unverified connection')

  const trusting = await proxyTo(t, up.url, upCert.cert)
  const ok = await trusting.inject('/svc/x')
  t.equal(ok.statusCode, 200)
  t.equal(ok.body, 'tls upstream')
  t.equal(up.hits(), 1)
})

t.test('HTTP/2: a POST waits for a slow upstream; a stream the client resets ends its upstream request', async (t) => {
  let closed = 0
  let hanging = false
  const slow = delayedEcho(700)
  const up = await startUpstream(t, (req, res, rec) => {
    if (req.url === '/hang') { hanging = true; req.socket.on('close', () => { closed++ }) } else slow(req, res, rec)
  })
  const full = { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'debug', TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: 'true' }
  const gw = await startGateway(t, { env: full, routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: false, timeout: { headersMs: 20_000 } })] })
  const session = http2Connect(`https://localhost:${gw.port}`, { ca: cert.cert })
  t.teardown(() => { session.destroy() })
  const payload = JSON.stringify({ note: 'y'.repeat(5000) })
  const started = Date.now()
  const posted = await h2Request(session, { ':method': 'POST', ':path': '/svc/orders', 'content-type': 'application/json' }, payload)
  t.equal(posted.status, 200, 'the POST is answered')
  t.strictSame(JSON.parse(posted.body), { method: 'POST', bodyBytes: payload.length }, 'with its whole body upstream')
  t.ok(Date.now() - started >= 690, 'after the upstream took its time')

  const reset = session.request({ ':method': 'GET', ':path': '/svc/hang' })
  reset.on('error', () => {})
  await waitFor(() => hanging, { message: 'the /hang request at the upstream' })
  reset.close(http2Constants.NGHTTP2_CANCEL)
  await waitFor(() => closed > 0, { message: 'the upstream request of the reset stream to end' })
  t.equal(closed, 1, 'the upstream request of the reset stream was ended')
  t.ok(gw.logs.some((l) => l.msg === 'client left before the upstream answered; upstream request ended'), 'and the log says why')
})

t.test('slowloris over TLS: headers trickled past HEADERS_TIMEOUT_MS get 408 at the deadline, not at Node\'s 30 s check', async (t) => {
  const up = await startUpstream(t)
  const gw = await gateway(t, { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HEADERS_TIMEOUT_MS: '1000' }, up.url)
  const socket = tlsConnect({ port: gw.port, host: '127.0.0.1', ca: cert.cert, servername: 'localhost' })
  let data = ''
  socket.on('data', (d: Buffer) => { data += d.toString('latin1') })
  socket.on('error', () => {})
  await once(socket, 'secureConnect')
  const started = Date.now()
  socket.write(`GET /svc/x HTTP/1.1\r\nHost: localhost:${gw.port}\r\n`)
  const trickle = setInterval(() => { if (!socket.destroyed) socket.write('X-Slow: 1\r\n') }, 200)
  await once(socket, 'close')
  clearInterval(trickle)
  const elapsed = Date.now() - started
  t.ok(elapsed >= 900 && elapsed < 15_000, `closed after ${elapsed} ms (deadline 1000 ms), not at Node's own check every 30 s`)
  t.match(data, /^HTTP\/1\.1 408 [\s\S]*"code":"GW_REQUEST_TIMEOUT"/)
  t.equal(up.requests.length, 0)
})

t.test('HTTP/2 :authority is the host: sent upstream as x-forwarded-host, checked like Host', async (t) => {
  const up = await startUpstream(t)
  const gw = await gateway(t, { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: 'true' }, up.url)
  const session = http2Connect(`https://localhost:${gw.port}`, { ca: cert.cert })
  t.teardown(() => { session.destroy() })
  const get = async (headers: Record<string, string>): Promise<{ status: number, body: string }> => await h2Request(session, { ':method': 'GET', ':path': '/svc/h', ...headers })
  const ok = await get({ ':authority': `localhost:${gw.port}` })
  t.equal(ok.status, 200)
  t.equal(up.requests[0]?.headers['x-forwarded-host'], `localhost:${gw.port}`, 'the authority reaches the upstream as x-forwarded-host')
  const same = await get({ ':authority': `localhost:${gw.port}`, host: `localhost:${gw.port}` })
  t.equal(same.status, 200, 'a Host field that agrees with :authority is fine')
  const disagree = await get({ ':authority': `localhost:${gw.port}`, host: 'evil.example' })
  t.equal(disagree.status, 400, 'a Host field that disagrees with :authority is refused')
  t.match(JSON.parse(disagree.body), { code: 'GW_REQUEST_INVALID' })
  // A malformed :authority does not even reach the gateway: Node's HTTP/2 layer resets the stream.
  await t.rejects(get({ ':authority': 'evil.example/reset?' }), /NGHTTP2_PROTOCOL_ERROR/)
  t.equal(up.requests.length, 2, 'the refused ones never reached the upstream')
})
