/**
 * Malformed HTTP/2 requests (RFC 9113 8.1.1, 8.2.1, 8.2.2, 8.3.1) sent as raw frames over TLS:
 * each is refused (RST_STREAM PROTOCOL_ERROR from Node's HTTP/2 layer, or the gateway's 400) and
 * the recording upstream receives nothing. Fields that Node's HTTP/2 layer drops before the
 * gateway can see them (CR/LF/NUL or edge whitespace in a value, an invalid name) are shown never
 * to reach the upstream.
 */
import t, { type Test } from 'tap'
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { createServer, type AddressInfo } from 'node:net'
import { connect as http2Connect, constants as h2 } from 'node:http2'
import { defineRoute } from 'portcullis'
import { startGateway } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'
import { makeCert } from '../helpers/certs.js'
import { RawH2Client, type Field } from '../helpers/h2-frames.js'

const PROTOCOL_ERROR = 1
const cert = makeCert()
const GET: Field[] = [[':method', 'GET'], [':scheme', 'https'], [':path', '/svc/x'], [':authority', 'localhost']]
const POST: Field[] = [[':method', 'POST'], [':scheme', 'https'], [':path', '/svc/x'], [':authority', 'localhost']]

async function setup (t: Test): Promise<{ up: Awaited<ReturnType<typeof startUpstream>>, client: RawH2Client }> {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: 'true' },
    routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: false })]
  })
  const client = await RawH2Client.connect(gw.port, cert.cert)
  t.teardown(() => { client.close() })
  return { up, client }
}

/** A valid request on the same connection: streams are handled in order, so once it has reached
 * the upstream, every earlier stream has been dealt with. */
async function settle (client: RawH2Client): Promise<void> {
  const ok = await client.request([...GET, ['x-marker', 'last']])
  if (ok.status !== 200) throw new Error(`the valid request got ${String(ok.status)} ${String(ok.reset)}`)
}

t.test('malformed request headers are refused with PROTOCOL_ERROR and never forwarded', async (t) => {
  const { up, client } = await setup(t)
  const cases: Array<[string, Field[]]> = [
    ['uppercase field name', [...GET, ['X-Upper', 'v']]],
    ['connection', [...GET, ['connection', 'close']]],
    ['keep-alive', [...GET, ['keep-alive', 'timeout=5']]],
    ['proxy-connection', [...GET, ['proxy-connection', 'keep-alive']]],
    ['transfer-encoding', [...POST, ['transfer-encoding', 'chunked']]],
    ['upgrade', [...GET, ['upgrade', 'websocket']]],
    ['te other than trailers', [...GET, ['te', 'gzip']]],
    ['unknown pseudo-header', [...GET, [':foo', 'bar']]],
    ['duplicated :path', [...GET, [':path', '/svc/other']]],
    ['duplicated :method', [...GET, [':method', 'DELETE']]],
    ['duplicated :authority', [...GET, [':authority', 'evil.example']]],
    ['pseudo-header after a regular field', [[':method', 'GET'], [':scheme', 'https'], ['x-a', 'b'], [':path', '/svc/x'], [':authority', 'localhost']]],
    ['response pseudo-header :status in a request', [...GET, [':status', '200']]],
    [':protocol without extended CONNECT', [...GET, [':protocol', 'websocket']]],
    ['missing :method', GET.filter(([n]) => n !== ':method')],
    ['missing :scheme', GET.filter(([n]) => n !== ':scheme')],
    ['missing :path', GET.filter(([n]) => n !== ':path')],
    ['empty :path', [[':method', 'GET'], [':scheme', 'https'], [':path', ''], [':authority', 'localhost']]],
    [':path not starting with /', [[':method', 'GET'], [':scheme', 'https'], [':path', 'svc/x'], [':authority', 'localhost']]],
    [':path * outside OPTIONS', [[':method', 'GET'], [':scheme', 'https'], [':path', '*'], [':authority', 'localhost']]],
    ['two content-length fields', [...POST, ['content-length', '0'], ['content-length', '0']]],
    ['non-numeric content-length', [...POST, ['content-length', 'abc']]]
  ]
  for (const [name, fields] of cases) {
    const outcome = await client.request(fields)
    t.equal(outcome.reset, PROTOCOL_ERROR, name)
    t.equal(outcome.status, undefined, `${name}: no response`)
  }
  await settle(client)
  t.equal(up.requests.length, 1, 'only the valid request reached the upstream')
  t.equal(up.requests[0]?.headers['x-marker'], 'last')
})

t.test('requests Node accepts but the gateway refuses: 400 with the gateway body, nothing forwarded', async (t) => {
  const { up, client } = await setup(t)
  const hostMismatch = await client.request([...GET, ['host', 'evil.example']])
  t.equal(hostMismatch.status, 400, 'a Host that disagrees with :authority (RFC 9113 8.3.1)')
  t.equal(JSON.parse(hostMismatch.body).code, 'GW_REQUEST_INVALID')
  const userinfo = await client.request([[':method', 'GET'], [':scheme', 'https'], [':path', '/svc/x'], [':authority', 'user:pw@localhost']])
  t.equal(userinfo.status, 400, ':authority with userinfo (RFC 9113 8.3.1)')
  t.equal(JSON.parse(userinfo.body).code, 'GW_REQUEST_INVALID')
  const asterisk = await client.request([[':method', 'OPTIONS'], [':scheme', 'https'], [':path', '*'], [':authority', 'localhost']])
  t.equal(asterisk.status, 400, 'OPTIONS * (server-wide) is not proxied')
  t.equal(JSON.parse(asterisk.body).code, 'GW_REQUEST_PATH')
  const connect = await client.request([[':method', 'CONNECT'], [':authority', 'internal.example:443']])
  t.ok(connect.reset !== undefined || (connect.status ?? 0) >= 400, `CONNECT opens no tunnel (${String(connect.status ?? `reset ${String(connect.reset)}`)})`)
  await settle(client)
  t.equal(up.requests.length, 1, 'only the valid request reached the upstream')
})

t.test('a body that disagrees with content-length is reset and never reaches the upstream complete', async (t) => {
  const { up, client } = await setup(t)
  const arrived: IncomingMessage[] = []
  up.server.on('request', (req: IncomingMessage) => { arrived.push(req) })
  for (const [declared, body] of [['10', 'abc'], ['2', 'abc'], ['3', '']] as const) {
    const outcome = await client.request([...POST, ['content-length', declared]], body)
    t.equal(outcome.reset, PROTOCOL_ERROR, `content-length ${declared}, ${body.length} bytes of DATA`)
  }
  await settle(client)
  // Whatever the gateway had started upstream before the mismatch showed was cut, not completed.
  const cut = arrived.filter((r) => r.headers['x-marker'] !== 'last')
  for (const req of cut) {
    if (!req.destroyed) await new Promise((resolve) => { req.once('close', resolve) })
    t.equal(req.complete, false, `${String(req.headers['content-length'])}-byte request cut`)
  }
  t.equal(up.requests.filter((r) => r.complete).length, 1, 'the only complete request the upstream got is the valid one')
})

t.test('an HTTP/2 body without content-length is forwarded whole; a client reset mid-body cuts the upstream request', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: 'true' },
    routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: false })]
  })
  const session = http2Connect(`https://localhost:${gw.port}`, { ca: cert.cert })
  t.teardown(() => { session.destroy() })

  const whole = session.request({ ':method': 'POST', ':path': '/svc/whole' })
  whole.end('hello')
  let text = ''
  whole.on('data', (c: Buffer) => { text += c.toString() })
  await once(whole, 'end')
  t.equal(JSON.parse(text).bodyBytes, 5, 'a body without content-length reaches the upstream (it was dropped before)')

  for (const headers of [{}, { 'content-length': '10' }]) {
    const arrived = once(up.server, 'request') as Promise<[IncomingMessage]>
    const cut = session.request({ ':method': 'POST', ':path': '/svc/cut', ...headers })
    cut.on('error', () => {})
    cut.write('abc')
    const [req] = await arrived
    const closed = new Promise((resolve) => { req.once('close', resolve) })
    cut.close(h2.NGHTTP2_CANCEL)
    await closed
    t.equal(req.complete, false, `${headers['content-length'] === undefined ? 'chunked' : 'content-length'}: the upstream request was cut, not completed`)
  }
  t.equal(up.requests.filter((r) => r.complete).length, 1, 'only the whole body completed upstream')
})

t.test('a route that buffers bodies for inspection: a whole body is forwarded, a reset one never', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: 'true' },
    routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: false, inspect: { mode: 'block', body: true } })]
  })
  const session = http2Connect(`https://localhost:${gw.port}`, { ca: cert.cert })
  t.teardown(() => { session.destroy() })
  async function post (path: string, body: string): Promise<number> {
    const s = session.request({ ':method': 'POST', ':path': path, 'content-type': 'text/plain' })
    s.end(body)
    const [headers] = await once(s, 'response') as [Record<string, unknown>]
    s.resume()
    await once(s, 'end')
    return Number(headers[':status'])
  }

  const cut = session.request({ ':method': 'POST', ':path': '/svc/cut', 'content-type': 'text/plain' })
  cut.on('error', () => {})
  cut.write('abc', () => { cut.close(h2.NGHTTP2_CANCEL) })
  await once(cut, 'close')
  t.equal(await post('/svc/whole', 'hello'), 200)
  t.equal(up.requests.length, 1, 'the reset request was not forwarded')
  t.equal(up.requests[0]?.url, '/whole')
  t.equal(up.requests[0]?.body.toString(), 'hello', 'a body without content-length is buffered, inspected and forwarded whole')
})

t.test('fields Node drops before the gateway sees them (RFC 9113 8.2.1) never reach the upstream', async (t) => {
  const { up, client } = await setup(t)
  const cases: Array<[string, Field]> = [
    ['CR in a value', ['x-bad', 'a\rb']],
    ['LF in a value', ['x-bad', 'a\nx-injected: 1']],
    ['NUL in a value', ['x-bad', 'a\0b']],
    ['leading space in a value', ['x-bad', ' a']],
    ['trailing tab in a value', ['x-bad', 'a\t']],
    ['space in a name', ['x bad', 'a']],
    ['colon in a name', ['x:bad', 'a']]
  ]
  for (const [name, field] of cases) {
    const outcome = await client.request([...GET, field])
    t.equal(outcome.status, 200, `${name}: answered (Node gives no way to learn of the dropped field)`)
  }
  t.equal(up.requests.length, cases.length)
  for (const r of up.requests) {
    const names = r.rawHeaders.filter((_v, i) => i % 2 === 0).map((n) => n.toLowerCase())
    t.notOk(names.some((n) => n.startsWith('x-bad') || n === 'x bad' || n === 'x-injected'), 'the malformed field was not forwarded')
    t.notOk(r.rawHeaders.some((v) => /[\r\n\0]/.test(v)), 'no CR, LF or NUL in anything forwarded')
  }
})

t.test('raw non-ASCII in :path or its query is refused like HTTP/1 refuses it, never re-encoded upstream', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: 'true', API_KEYS: `alice:${'k'.repeat(32)}` },
    routes: [
      defineRoute({ prefix: '/', upstream: up.url, auth: false, rateLimit: false }),
      defineRoute({ prefix: '/admin', upstream: up.url, auth: { strategies: ['apiKey'] }, rateLimit: false })
    ]
  })
  const client = await RawH2Client.connect(gw.port, cert.cert)
  t.teardown(() => { client.close() })
  const at = (path: string): Field[] => [[':method', 'GET'], [':scheme', 'https'], [':path', path], [':authority', 'localhost']]
  // One octet per character (h2-frames writes latin1). Forwarded, `ª` (0xAA) would reach the
  // upstream as `/%C2%AAdmin/x`, which a backend folding compatibility forms (NFKC) reads as
  // `/admin/x`: the protected route, through the public one, without the API key.
  const cases: Array<[string, string, string]> = [
    ['/\xaadmin/x', 'GW_REQUEST_PATH', 'ª for a'],
    ['/admin\xa5x', 'GW_REQUEST_PATH', '¥ (a backslash in cp932)'],
    ['/x\xa0', 'GW_REQUEST_PATH', 'trailing no-break space'],
    ['/\xc0\xaf', 'GW_REQUEST_PATH', 'overlong `/` as raw octets'],
    ['/x?q=\xaa', 'GW_REQUEST_INVALID', 'in the query']
  ]
  for (const [path, code, name] of cases) {
    const res = await client.request(at(path))
    t.equal(res.status, 400, name)
    t.equal((JSON.parse(res.body) as { code: string }).code, code, name)
  }
  // The encoded spelling was already refused: both spellings now get the same answer.
  const encoded = await client.request(at('/%C2%AAdmin/x'))
  t.equal(encoded.status, 400)
  const ok = await client.request([...at('/x?q=a'), ['x-marker', 'last']])
  t.equal(ok.status, 200)
  t.strictSame(up.requests.map((r) => r.url), ['/x?q=a'], 'the upstream received only the ASCII request')
})

t.test('an HTTP/2 GET or HEAD with a body: answered, the body never forwarded, the gateway unharmed', async (t) => {
  // The body, counted through a stream nothing read, was judged cut short once the stream had
  // closed: an error with no listener, an uncaught exception that stops the process.
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: 'true' },
    routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: false })]
  })
  const session = http2Connect(`https://localhost:${gw.port}`, { ca: cert.cert })
  t.teardown(() => { session.destroy() })
  /** The body is sent once the whole answer has arrived (the gateway answers a GET without it). */
  async function send (method: string, path: string, headers: Record<string, string>, body?: string): Promise<number> {
    const stream = session.request({ ':method': method, ':path': path, ...headers }, { endStream: body === undefined })
    const [response] = await once(stream, 'response') as [Record<string, string>]
    stream.resume()
    await once(stream, 'end')
    if (body !== undefined) stream.end(body)
    await once(stream, 'close')
    return Number(response[':status'])
  }
  t.equal(await send('GET', '/svc/a', {}, 'hello'), 200)
  t.equal(await send('GET', '/svc/b', { 'content-length': '5' }, 'hello'), 200)
  t.equal(await send('HEAD', '/svc/c', {}, 'hello'), 200)
  t.equal(await send('GET', '/svc/after', {}), 200)
  t.strictSame(up.requests.map((r) => [r.method, r.url, r.body.length]), [['GET', '/a', 0], ['GET', '/b', 0], ['HEAD', '/c', 0], ['GET', '/after', 0]])
})

t.test('PUBLIC_HOSTS applies to :authority: another host is refused and never forwarded', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: 'true', PUBLIC_HOSTS: 'localhost' },
    routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: false })]
  })
  const client = await RawH2Client.connect(gw.port, cert.cert)
  t.teardown(() => { client.close() })
  const refused = await client.request([[':method', 'GET'], [':scheme', 'https'], [':path', '/svc/x'], [':authority', 'evil.example']])
  t.equal(refused.status, 400)
  t.equal((JSON.parse(refused.body) as { code: string }).code, 'GW_REQUEST_INVALID')
  const served = await client.request([[':method', 'GET'], [':scheme', 'https'], [':path', '/svc/x'], [':authority', `localhost:${gw.port}`]])
  t.equal(served.status, 200)
  t.strictSame(up.requests.map((r) => r.headers['x-forwarded-host']), [`localhost:${gw.port}`])
})

t.test('an upstream body cut short reaches an HTTP/2 client as a reset stream, never as a complete response', async (t) => {
  // Headers and part of the body, then the upstream closes its connection.
  const cut = createServer((socket) => {
    socket.on('error', () => {})
    socket.once('data', (d: Buffer) => {
      const chunked = d.toString('latin1').startsWith('GET /chunked')
      socket.end(chunked
        ? 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n'
        : 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\nhello')
    })
  })
  await new Promise<void>((resolve) => cut.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { cut.close() })
  const gw = await startGateway(t, {
    env: { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: 'true' },
    routes: [defineRoute({ prefix: '/svc', upstream: `http://127.0.0.1:${(cut.address() as AddressInfo).port}`, auth: false, rateLimit: false, retries: 0 })]
  })
  const session = http2Connect(`https://localhost:${gw.port}`, { ca: cert.cert })
  t.teardown(() => { session.destroy() })
  for (const path of ['/svc/chunked', '/svc/length']) {
    const stream = session.request({ ':path': path })
    stream.on('error', () => {})
    let status: unknown
    let body = ''
    let ended = false
    stream.on('response', (headers) => { status = headers[':status'] })
    stream.on('data', (c: Buffer) => { body += c.toString() })
    stream.on('end', () => { ended = true })
    // Not events.once: it rejects on the stream's 'error', which the reset is.
    await new Promise((resolve) => { stream.on('close', resolve) })
    // The reset may overtake the 200 and the bytes already relayed; it never reads as success.
    t.ok(status === undefined || status === 200, `${path}: the upstream's status, if any`)
    t.ok('hello'.startsWith(body), `${path}: only what the upstream sent`)
    t.equal(ended, false, `${path}: no END_STREAM`)
    t.equal(stream.rstCode, h2.NGHTTP2_INTERNAL_ERROR, `${path}: RST_STREAM INTERNAL_ERROR`)
  }
})

t.test('an HTTP/2 client that reads nothing (zero window, kept alive by PINGs) loses the response after SEND_TIMEOUT_MS', async (t) => {
  // Without a bound the stalled stream held its upstream request open for as long as the client
  // kept the connection alive: a slow-read exhaustion of upstream connections and workers.
  let upstreamEnded: () => void = () => {}
  const upstreamClosed = new Promise<void>((resolve) => { upstreamEnded = resolve })
  const up = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    const chunk = Buffer.alloc(64 * 1024, 0x61)
    const fill = (): void => { while (!res.destroyed && res.write(chunk)) { /* until the gateway pushes back */ } }
    res.on('drain', fill)
    res.on('close', () => { upstreamEnded() })
    fill()
  })
  const gw = await startGateway(t, {
    env: { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: 'true', SEND_TIMEOUT_MS: '1000' },
    routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: false })]
  })
  const session = http2Connect(`https://localhost:${gw.port}`, { ca: cert.cert, settings: { initialWindowSize: 0 } })
  t.teardown(() => { session.destroy() })
  const keepAlive = setInterval(() => { if (!session.destroyed) session.ping(() => {}) }, 100)
  t.teardown(() => { clearInterval(keepAlive) })
  const stream = session.request({ ':path': '/svc/big' })
  stream.on('error', () => {})
  let status: unknown
  stream.on('response', (headers) => { status = headers[':status'] })
  await new Promise((resolve) => { stream.on('close', resolve) })
  clearInterval(keepAlive)
  t.equal(status, 200)
  t.equal(stream.rstCode, h2.NGHTTP2_INTERNAL_ERROR, 'the stream is reset, not ended')
  t.equal(session.destroyed, false, 'the connection itself stays')
  await upstreamClosed
  t.equal(up.requests.length, 1, 'the upstream request was ended (its response closed)')
})

t.test('an HTTP/2 body trickled past REQUEST_TIMEOUT_MS is cut: the stream is reset, the upstream request ended', async (t) => {
  // Node enforces requestTimeout on HTTP/1.1 only: a slow POST over HTTP/2 held its upstream
  // request (and a worker behind it) open for as long as the client went on trickling.
  let upstreamRequestClosed: () => void = () => {}
  const closed = new Promise<void>((resolve) => { upstreamRequestClosed = resolve })
  const up = await startUpstream(t)
  up.server.on('request', (req: IncomingMessage) => { req.on('close', () => { upstreamRequestClosed() }) })
  const gw = await startGateway(t, {
    env: { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: 'true', REQUEST_TIMEOUT_MS: '1000' },
    routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: false })]
  })
  const session = http2Connect(`https://localhost:${gw.port}`, { ca: cert.cert })
  t.teardown(() => { session.destroy() })
  const stream = session.request({ ':method': 'POST', ':path': '/svc/upload', 'content-type': 'text/plain' }, { endStream: false })
  stream.on('error', () => {})
  const trickle = setInterval(() => { if (!stream.closed) stream.write('a') }, 100)
  t.teardown(() => { clearInterval(trickle) })
  await new Promise((resolve) => { stream.on('close', resolve) })
  clearInterval(trickle)
  t.equal(stream.rstCode, h2.NGHTTP2_CANCEL, 'the stream is reset')
  await closed
  t.equal(up.requests.length, 1)
  t.equal(up.requests[0]?.complete, false, 'the upstream never received the body as complete')
})
