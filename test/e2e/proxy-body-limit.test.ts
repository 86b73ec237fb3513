/**
 * BODY_LIMIT on streamed bodies that Fastify itself does not parse: bodies sent with GET (which
 * the proxy does not forward), and HTTP/2 bodies, which have no Content-Length or
 * Transfer-Encoding to announce them.
 */
import { createHash, randomBytes } from 'node:crypto'
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2'
import t from 'tap'
import { defineRoute } from 'portcullis'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { makeCert } from '../helpers/certs.js'

const LIMIT = 1000

t.test('a GET whose chunked body passes BODY_LIMIT does not take the gateway down', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, { logLevel: 'warn', env: { BODY_LIMIT: String(LIMIT) }, routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false })] })
  const body = 'a'.repeat(5 * LIMIT)
  for (const method of ['GET', 'HEAD']) {
    await rawRequest(gw.port, `${method} /svc/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`)
    const next = await rawRequest(gw.port, 'GET /svc/next HTTP/1.1\r\nHost: x\r\n\r\n')
    t.equal(next.status, 200, `${method}: the gateway still serves`)
  }
  t.ok(up.requests.every((r) => r.body.length === 0), 'no body bytes reached the upstream')
})

t.test('HTTP/2 bodies without a Content-Length count against BODY_LIMIT', async (t) => {
  const cert = makeCert()
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    logLevel: 'warn',
    env: { BODY_LIMIT: String(LIMIT), TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: 'true' },
    routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false })]
  })
  const session = http2Connect(`https://localhost:${gw.port}`, { ca: cert.cert })
  t.teardown(() => { session.destroy() })

  async function post (s: ClientHttp2Session, headers: Record<string, string>, body: Buffer): Promise<{ status: number, code?: string }> {
    return await new Promise((resolve, reject) => {
      const stream = s.request({ ':method': 'POST', ':path': '/svc/up', 'content-type': 'application/octet-stream', ...headers })
      let status = 0
      let text = ''
      stream.on('response', (h) => { status = Number(h[':status']) })
      stream.on('continue', () => { stream.end(body) })
      stream.on('data', (c: Buffer) => { text += c.toString() })
      stream.on('close', () => { resolve({ status, ...(status >= 400 ? { code: (JSON.parse(text) as { code: string }).code } : {}) }) })
      stream.on('error', reject)
      if (headers.expect === undefined) stream.end(body)
    })
  }

  for (const headers of [{}, { expect: '100-continue' }, {}, { expect: '100-continue' }] as Array<Record<string, string>>) {
    const name = headers.expect === undefined ? 'plain' : 'with Expect'
    const within = randomBytes(LIMIT)
    t.strictSame(await post(session, headers, within), { status: 200 }, `${name}: within the limit`)
    t.equal(createHash('sha256').update(up.requests.at(-1)?.body ?? Buffer.alloc(0)).digest('hex'), createHash('sha256').update(within).digest('hex'), `${name}: exact bytes upstream`)
    t.strictSame(await post(session, headers, randomBytes(50 * LIMIT)), { status: 413, code: 'GW_REQUEST_BODY_TOO_LARGE' }, `${name}: over the limit`)
  }
  for (const r of up.requests) t.ok(!r.complete || r.body.length <= LIMIT, 'the upstream never received a complete over-limit body')
  // Streams answered before their body was read are reset (RFC 9113 8.1), so nothing holds a drain.
  session.close()
  await gw.app.close()
  t.pass('the gateway closed')
})
