/**
 * PROXY protocol over TCP (PROXY_PROTOCOL=true): a trusted balancer's connections announce the
 * client, and each announced client gets its own per-IP bucket, IP allow/deny verdict and
 * x-forwarded-for upstream; untrusted peers cannot announce anything; trusted peers must.
 */
import t, { type Test } from 'tap'
import { connect } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { connect as http2Connect } from 'node:http2'
import { defineRoute, loadConfig } from 'portcullis'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { pipelinedRequests, rawRequest } from '../helpers/raw-http.js'
import { makeCert } from '../helpers/certs.js'

const V2_SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])

function v1 (client: string, port = 40000): string {
  return `PROXY ${client.includes(':') ? 'TCP6' : 'TCP4'} ${client} ${client.includes(':') ? '::1' : '127.0.0.1'} ${port} 8080\r\n`
}

/** A v2 PROXY header for an IPv6 source given as 32 hex digits. */
function v2Inet6 (sourceHex: string): Buffer {
  const b = Buffer.alloc(16 + 36)
  V2_SIG.copy(b, 0)
  b[12] = 0x21
  b[13] = 0x21
  b.writeUInt16BE(36, 14)
  Buffer.from(sourceHex, 'hex').copy(b, 16)
  b[16 + 31] = 1
  b.writeUInt16BE(5555, 48)
  b.writeUInt16BE(443, 50)
  return b
}

const GET = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`

async function gateway (t: Test, env: Record<string, string>): Promise<{ gw: TestGateway, up: Upstream }> {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    logLevel: 'warn',
    env: { PROXY_PROTOCOL: 'true', TRUST_PROXY: '127.0.0.1', ...env },
    routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: { max: 1000, timeWindow: '1 minute', keyBy: 'ip' } })]
  })
  return { gw, up }
}

t.test('two announced clients through one trusted balancer get two per-IP buckets', async (t) => {
  const { gw, up } = await gateway(t, { IP_RATE_LIMIT_MAX: '2' })
  const a = v1('198.51.100.1')
  const b = v1('198.51.100.2')
  t.equal((await rawRequest(gw.port, a + GET('/svc/a1'))).status, 200)
  t.equal((await rawRequest(gw.port, a + GET('/svc/a2'))).status, 200)
  const limited = await rawRequest(gw.port, a + GET('/svc/a3'))
  t.equal(limited.status, 429, 'client A has used its two requests')
  t.equal(JSON.parse(limited.body).code, 'GW_RATE_LIMITED')
  const other = await rawRequest(gw.port, b + GET('/svc/b1'))
  t.equal(other.status, 200, 'client B, same balancer, still has its own bucket')
  t.strictSame(up.requests.map((r) => [r.url, r.headers['x-forwarded-for']]), [
    ['/a1', '198.51.100.1'], ['/a2', '198.51.100.1'], ['/b1', '198.51.100.2']
  ], 'the upstream sees each announced client, and not the limited request')
})

t.test('the header is read once per connection: keep-alive requests keep the announced client', async (t) => {
  const { gw, up } = await gateway(t, {})
  const keepAlive = 'GET /svc/k1 HTTP/1.1\r\nHost: gw\r\n\r\n'
  const responses = await pipelinedRequests(gw.port, [v1('2001:db8::7') + keepAlive, 'GET /svc/k2 HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n'])
  t.strictSame(responses.map((r) => r.status), [200, 200])
  t.strictSame(up.requests.map((r) => r.headers['x-forwarded-for']), ['2001:db8::7', '2001:db8::7'])
})

t.test('route keyBy ip and IP deny use the announced client', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    logLevel: 'warn',
    env: { PROXY_PROTOCOL: 'true', TRUST_PROXY: '127.0.0.1', IP_DENY: '203.0.113.66' },
    routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: { max: 1, timeWindow: '1 minute', keyBy: 'ip' } })]
  })
  const denied = await rawRequest(gw.port, v1('203.0.113.66') + GET('/svc/x'))
  t.equal(denied.status, 403, 'the denied client is refused although the balancer is not denied')
  t.equal((await rawRequest(gw.port, v1('203.0.113.1') + GET('/svc/x'))).status, 200)
  t.equal((await rawRequest(gw.port, v1('203.0.113.1') + GET('/svc/x'))).status, 429, 'route limit of one per client IP')
  t.equal((await rawRequest(gw.port, v1('203.0.113.2') + GET('/svc/x'))).status, 200, 'another client has its own route bucket')
  t.equal(up.requests.length, 2)
})

t.test('a trusted peer must send a valid header; the upstream gets nothing otherwise', async (t) => {
  const { gw, up } = await gateway(t, {})
  const missing = await rawRequest(gw.port, GET('/svc/x'))
  t.equal(missing.status, 400, 'no header')
  t.equal(JSON.parse(missing.body).code, 'GW_PROXY_PROTOCOL_INVALID')
  const malformed = await rawRequest(gw.port, 'PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\n' + GET('/svc/x'))
  t.equal(malformed.status, 400, 'malformed header')
  t.equal(JSON.parse(malformed.body).code, 'GW_PROXY_PROTOCOL_INVALID')
  const closed = await rawRequest(gw.port, Buffer.from([0x16, 0x03, 0x01, 0x00]))
  t.equal(closed.status, 0, 'binary garbage: closed without an answer')
  t.equal(up.requests.length, 0)
})

t.test('an untrusted peer cannot announce an address, and is served as itself', async (t) => {
  const { gw, up } = await gateway(t, { TRUST_PROXY: '10.9.8.7' })
  const spoof = await rawRequest(gw.port, v1('198.51.100.9') + GET('/svc/x'))
  t.equal(spoof.status, 400, 'a PROXY header from an untrusted peer is a bad request')
  t.equal(up.requests.length, 0, 'nothing proxied for the spoofing attempt')
  const direct = await rawRequest(gw.port, GET('/svc/y'))
  t.equal(direct.status, 200, 'a direct client needs no header')
  t.equal(up.requests[0]?.headers['x-forwarded-for'], '127.0.0.1')
})

t.test('PROXY v2 ahead of the TLS handshake', async (t) => {
  const cert = makeCert()
  const { gw, up } = await gateway(t, { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile })
  const raw = connect(gw.port, '127.0.0.1')
  await new Promise<void>((resolve) => raw.once('connect', () => { resolve() }))
  raw.write(v2Inet6('20010db8000000000000000000000001'))
  const tls = tlsConnect({ socket: raw, ca: cert.cert, servername: 'localhost' })
  t.teardown(() => { tls.destroy() })
  tls.write(GET('/svc/tls'))
  let text = ''
  tls.on('data', (c: Buffer) => { text += c.toString() })
  await new Promise<void>((resolve) => tls.once('close', () => { resolve() }))
  t.match(text, /^HTTP\/1\.1 200 /)
  t.equal(up.requests[0]?.headers['x-forwarded-for'], '2001:db8::1', 'the announced IPv6 client')
  t.equal(up.requests[0]?.headers['x-forwarded-proto'], 'https')
})

t.test('PROXY v1 ahead of TLS with HTTP/2', async (t) => {
  const cert = makeCert()
  const { gw, up } = await gateway(t, { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: 'true' })
  const raw = connect(gw.port, '127.0.0.1')
  await new Promise<void>((resolve) => raw.once('connect', () => { resolve() }))
  raw.write(v1('192.0.2.44'))
  const session = http2Connect(`https://localhost:${gw.port}`, {
    createConnection: () => tlsConnect({ socket: raw, ca: cert.cert, servername: 'localhost', ALPNProtocols: ['h2'] })
  })
  t.teardown(() => { session.destroy() })
  const status = await new Promise<number>((resolve, reject) => {
    const stream = session.request({ ':method': 'GET', ':path': '/svc/h2' })
    let s = 0
    stream.on('response', (h) => { s = Number(h[':status']) })
    stream.on('end', () => { resolve(s) })
    stream.on('error', reject)
    stream.resume()
    stream.end()
  })
  t.equal(status, 200)
  t.equal(up.requests[0]?.headers['x-forwarded-for'], '192.0.2.44', 'the announced client over HTTP/2')
})

t.test('a trusted peer that stalls in its header is cut off at HEADERS_TIMEOUT_MS', async (t) => {
  const { gw, up } = await gateway(t, { HEADERS_TIMEOUT_MS: '1000' })
  const stalled = await rawRequest(gw.port, 'PROXY TCP4 192.0.2.1 ', { timeoutMs: 30_000 })
  t.equal(stalled.status, 400, 'answered and closed by the gateway, not by the client timeout')
  t.equal(JSON.parse(stalled.body).code, 'GW_PROXY_PROTOCOL_INVALID')
  t.equal(up.requests.length, 0)
})

t.test('PROXY_PROTOCOL needs TRUST_PROXY', async (t) => {
  t.throws(() => loadConfig({ PROXY_PROTOCOL: 'true' }), /PROXY_PROTOCOL: needs TRUST_PROXY/)
  t.equal(loadConfig({ PROXY_PROTOCOL: 'true', TRUST_PROXY: '10.0.0.0/8' }).proxyProtocol, true)
  t.equal(loadConfig({}).proxyProtocol, false, 'off by default')
})
