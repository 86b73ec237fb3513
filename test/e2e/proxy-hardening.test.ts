import { once } from 'node:events'
import { connect } from 'node:net'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { defineRoute, loadConfig } from 'portcullis'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { pipelinedRequests, rawRequest, type RawResponse } from '../helpers/raw-http.js'

async function twoRoutes (t: Test, env: Record<string, string> = {}): Promise<{ port: number, url: string, svc: Awaited<ReturnType<typeof startUpstream>>, admin: Awaited<ReturnType<typeof startUpstream>> }> {
  const svc = await startUpstream(t)
  const admin = await startUpstream(t)
  const gw = await startGateway(t, {
    env,
    routes: [
      defineRoute({ prefix: '/svc', upstream: svc.url, auth: false }),
      defineRoute({ prefix: '/admin', upstream: admin.url, auth: false })
    ]
  })
  return { port: gw.port, url: gw.url, svc, admin }
}

t.test('request smuggling shapes are refused with 400 and never reach an upstream', async (t) => {
  const { port, svc } = await twoRoutes(t)
  const h = `Host: 127.0.0.1:${port}\r\n`
  const cases: Record<string, string> = {
    'CL + TE': `POST /svc/x HTTP/1.1\r\n${h}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    'TE + CL (reversed)': `POST /svc/x HTTP/1.1\r\n${h}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n`,
    'duplicate CL (same value)': `POST /svc/x HTTP/1.1\r\n${h}Content-Length: 4\r\nContent-Length: 4\r\n\r\nabcd`,
    'duplicate CL (different)': `POST /svc/x HTTP/1.1\r\n${h}Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde`,
    'TE gzip, chunked': `POST /svc/x HTTP/1.1\r\n${h}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`,
    'TE chunked, identity': `POST /svc/x HTTP/1.1\r\n${h}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`,
    'TE identity': `POST /svc/x HTTP/1.1\r\n${h}Transfer-Encoding: identity\r\n\r\n`,
    'TE twice': `POST /svc/x HTTP/1.1\r\n${h}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    'TE with space before colon': `POST /svc/x HTTP/1.1\r\n${h}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`,
    'TE uppercase value': `POST /svc/x HTTP/1.1\r\n${h}Transfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n`,
    'TE obs-fold': `POST /svc/x HTTP/1.1\r\n${h}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n`,
    'CL negative': `POST /svc/x HTTP/1.1\r\n${h}Content-Length: -1\r\n\r\n`,
    'CL plus sign': `POST /svc/x HTTP/1.1\r\n${h}Content-Length: +4\r\n\r\nabcd`,
    'CL hex': `POST /svc/x HTTP/1.1\r\n${h}Content-Length: 0x4\r\n\r\nabcd`,
    'CL list': `POST /svc/x HTTP/1.1\r\n${h}Content-Length: 4, 4\r\n\r\nabcd`,
    'bare LF line endings': `POST /svc/x HTTP/1.1\n${h.replace('\r\n', '\n')}Content-Length: 0\n\n`,
    'NUL in header value': `GET /svc/x HTTP/1.1\r\n${h}X-A: a\u0000b\r\n\r\n`,
    'invalid chunk size': `POST /svc/x HTTP/1.1\r\n${h}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`,
    'chunk extension abuse': `POST /svc/x HTTP/1.1\r\n${h}Transfer-Encoding: chunked\r\n\r\n3;${'a'.repeat(20000)}\r\nabc\r\n0\r\n\r\n`,
    'HTTP/1.0 with TE': `POST /svc/x HTTP/1.0\r\n${h}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    'absolute-form to another host': `GET http://evil.example/admin/x HTTP/1.1\r\n${h}\r\n`,
    'space in request target': `GET /svc/a b HTTP/1.1\r\n${h}\r\n`
  }
  for (const [name, payload] of Object.entries(cases)) {
    const res = await rawRequest(port, payload)
    t.ok(res.status === 400 || res.status === 0 || res.status === 404, `${name}: refused (${res.status})`)
    t.not(res.status, 200, name)
  }
  // Proving a negative: nothing to await, only a moment for a forwarded request to arrive.
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(svc.requests.length, 0, 'upstream never received any of them')
})

t.test('non-canonical paths never route around a prefix or reach another upstream', async (t) => {
  const { port, svc, admin } = await twoRoutes(t)
  const paths = [
    '/svc/../admin/x', '/svc/./x', '/svc/x/..', '/svc/x/.', '/svc/%2e%2e/admin/x', '/svc/%2E%2E/admin/x', '/svc/.%2e/admin/x',
    '/svc/%2e./admin/x', '/svc/..%2fadmin/x', '/svc/..%2Fadmin/x', '/svc%2f..%2fadmin/x', '/svc/..%5cadmin/x', '/svc/..\\admin/x',
    '/svc\\..\\admin\\x', '/svc//admin/x', '//admin/x', '/svc/a/..;/admin/x', '/svc/..;/admin/x', '/svc/.;/x',
    '/svc/%00/x', '/svc/x%00.json', '/svc/%0a/x', '/svc/%0d%0aSet-Cookie:%20a=b', '/svc/%09/x', '/svc/%7f',
    '/svc/%252e%252e/admin/x', '/svc/%252f', '/svc/%255c', '/svc/%c0%ae%c0%ae/admin/x', '/svc/%c0%af', '/svc/%c1%9c',
    '/svc/%ef%bc%8e%ef%bc%8e/admin', '/svc/%ef%bc%8f', '/svc/%e2%88%95admin', '/%61dmin/x', '/%73vc/x', '/sv%63/x', '/svc/%7Ex',
    '/svc/%2D', '/admin%2fx', '/admin/%2e%2e/svc/x', 'svc/x', '*'
  ]
  for (const p of paths) {
    const res = await rawRequest(port, `GET ${p} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
    t.ok(res.status === 400 || res.status === 404, `${p} -> ${res.status}`)
  }
  for (const p of ['/ADMIN/x', '/Svc/x', '/admin.json']) {
    const res = await rawRequest(port, `GET ${p} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
    t.equal(res.status, 400, `${p} reads as another route on lenient backends (docs/security/paths.md)`)
    t.match(res.body, /"code":"GW_REQUEST_PATH"/)
  }
  const other = await rawRequest(port, `GET /adminx/y HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
  t.equal(other.status, 404, '/adminx/y does not match another spelling of a route')
  t.equal(admin.requests.length, 0, 'admin upstream never hit')
  t.equal(svc.requests.length, 0, 'svc upstream never hit')

  const fine = await rawRequest(port, `GET /svc/a.b/c..d/%20y/%C3%A9?q=a..b HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
  t.equal(fine.status, 200, 'dots inside names, encoded spaces, UTF-8 and dots in the query are fine')
  t.equal(svc.requests[0]?.url, '/a.b/c..d/%20y/%C3%A9?q=a..b', 'the upstream sees the canonical path')
})

t.test('sizes: URL -> 414, header count and bytes -> 431', async (t) => {
  const { port, svc } = await twoRoutes(t)
  const longUrl = await rawRequest(port, `GET /svc/${'a'.repeat(9000)} HTTP/1.1\r\nHost: x\r\n\r\n`)
  t.ok(longUrl.status === 414 || longUrl.status === 431, `long URL refused (${longUrl.status})`)
  const many = Array.from({ length: 150 }, (_, i) => `X-H${i}: v`).join('\r\n')
  const manyRes = await rawRequest(port, `GET /svc/x HTTP/1.1\r\nHost: x\r\n${many}\r\n\r\n`)
  t.equal(manyRes.status, 431, 'too many header fields')
  const huge = await rawRequest(port, `GET /svc/x HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20000)}\r\n\r\n`)
  t.equal(huge.status, 431, 'header bytes over the limit')
  t.equal(svc.requests.length, 0)
})

t.test('BODY_LIMIT on streamed bodies: declared length refused unread; chunked cut at the limit', async (t) => {
  const svc = await startUpstream(t, (_req, res, rec) => { res.end(String(rec.body.length)) })
  const gw = await startGateway(t, { env: { BODY_LIMIT: '1000' }, routes: [defineRoute({ prefix: '/svc', upstream: svc.url, auth: false })] })

  // The body is never sent: a gateway waiting for it would not answer at all (status 0).
  const declared = await rawRequest(gw.port, 'POST /svc/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 5000\r\n\r\n', { timeoutMs: 15_000 })
  t.equal(declared.status, 413, 'declared length over the limit -> 413 without sending the body')
  t.match(declared.body, /GW_REQUEST_BODY_TOO_LARGE/)

  const chunk = 'a'.repeat(400)
  const chunks = Array.from({ length: 5 }, () => `${(400).toString(16)}\r\n${chunk}\r\n`).join('')
  const chunked = await rawRequest(gw.port, `POST /svc/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}0\r\n\r\n`)
  t.equal(chunked.status, 413, 'chunked body cut at the limit')
  // Proving a negative: nothing to await, only a moment for a forwarded body to arrive.
  await new Promise((resolve) => setTimeout(resolve, 200))
  for (const r of svc.requests) {
    t.ok(!r.complete || r.body.length <= 1000, 'the upstream never received a complete over-limit body')
  }

  const small = await request(`${gw.url}/svc/x`, { method: 'POST', body: 'x'.repeat(999), headers: { 'content-type': 'text/plain' } })
  t.equal(small.statusCode, 200)
  t.equal(await small.body.text(), '999')
})

t.test('a GET or HEAD body is never forwarded and, however large, cannot stop the gateway', async (t) => {
  // Counted through a stream nothing read, an over-limit GET body raised an error with no
  // listener: an uncaught exception, on which the process entry shuts the gateway down.
  const svc = await startUpstream(t)
  const gw = await startGateway(t, { env: { BODY_LIMIT: '100' }, routes: [defineRoute({ prefix: '/svc', upstream: svc.url, auth: false })] })
  const big = 'a'.repeat(300)
  const chunked = `Transfer-Encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`
  const [get, after] = await pipelinedRequests(gw.port, [
    `GET /svc/get HTTP/1.1\r\nHost: x\r\n${chunked}`,
    'GET /svc/after HTTP/1.1\r\nHost: x\r\n\r\n'
  ])
  t.equal(get?.status, 200)
  t.equal(after?.status, 200, 'the same connection goes on after the discarded body')
  // A HEAD answer has a Content-Length but no body: `Connection: close` ends the exchange.
  const head = await rawRequest(gw.port, `HEAD /svc/head HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${chunked}`)
  t.equal(head.status, 200)
  const again = await request(`${gw.url}/svc/again`)
  t.equal(again.statusCode, 200)
  await again.body.text()
  t.strictSame(svc.requests.map((r) => [r.method, r.url, r.body.length, r.headers['content-length'], r.headers['transfer-encoding']]), [
    ['GET', '/get', 0, undefined, undefined],
    ['GET', '/after', 0, undefined, undefined],
    ['HEAD', '/head', 0, undefined, undefined],
    ['GET', '/again', 0, undefined, undefined]
  ], 'the upstream received no GET or HEAD body')
})

t.test('a body the gateway answers without reading (OPTIONS with Max-Forwards 0) cannot stop it when over the limit', async (t) => {
  // Answered before the proxy, the body's limit was reached in a stream no upstream request
  // listened to: an uncaught exception.
  const svc = await startUpstream(t)
  const gw = await startGateway(t, { env: { BODY_LIMIT: '100' }, routes: [defineRoute({ prefix: '/svc', upstream: svc.url, auth: false })] })
  const big = 'a'.repeat(300)
  const answered = await rawRequest(gw.port, `OPTIONS /svc/x HTTP/1.1\r\nHost: x\r\nMax-Forwards: 0\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`)
  t.equal(answered.status, 200)
  const after = await request(`${gw.url}/svc/after`)
  t.equal(after.statusCode, 200, 'the gateway still serves')
  await after.body.text()
  t.strictSame(svc.requests.map((r) => r.url), ['/after'], 'the OPTIONS request never reached the upstream')
})

t.test('Upgrade requests outside a WebSocket route are refused, not forwarded', async (t) => {
  const { port, svc } = await twoRoutes(t)
  for (const up of ['websocket', 'h2c']) {
    const res = await rawRequest(port, `GET /svc/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: ${up}\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n`)
    t.equal(res.status, 400, `Upgrade: ${up}`)
  }
  t.equal(svc.requests.length, 0)
})

/** The gateway's error body, checked whole: shape, a GW_ code, a generic message, nothing echoed. */
function assertGatewayError (t: Test, res: RawResponse, status: number, code: string, name: string): void {
  t.equal(res.status, status, `${name}: status`)
  let body: unknown
  try {
    body = JSON.parse(res.body)
  } catch {
    body = res.body
  }
  t.strictSame(Object.keys(body as object), ['statusCode', 'code', 'error', 'message'], `${name}: the one body shape`)
  t.match(body, { statusCode: status, code }, name)
  t.notMatch(res.body, /FST_|Client Error|evil|%zz|valid url/, `${name}: no framework text and no echo`)
  t.match(res.headers['content-type'] ?? '', /^application\/json/, `${name}: JSON`)
}

t.test('what the HTTP parser or the router refuses gets the gateway body, never the framework text', async (t) => {
  const { port, svc } = await twoRoutes(t)
  const h = `Host: 127.0.0.1:${port}\r\n`
  const cases: Array<[string, string, number, string]> = [
    ['space in a header name', `GET /svc/x HTTP/1.1\r\n${h}Bad Header: 1\r\n\r\n`, 400, 'GW_REQUEST_INVALID'],
    ['obs-fold', `GET /svc/x HTTP/1.1\r\n${h}X-A: 1\r\n  folded\r\n\r\n`, 400, 'GW_REQUEST_INVALID'],
    ['bare LF', `GET /svc/x HTTP/1.1\n${h.replace('\r\n', '\n')}\n`, 400, 'GW_REQUEST_INVALID'],
    ['unknown HTTP version', `GET /svc/x HTTP/2.7\r\n${h}\r\n`, 400, 'GW_REQUEST_INVALID'],
    ['raw UTF-8 in the request target', `GET /svc/\u00c3\u00a9 HTTP/1.1\r\n${h}\r\n`, 400, 'GW_REQUEST_INVALID'],
    ['NUL in a header value', `GET /svc/x HTTP/1.1\r\n${h}X-A: a\u0000b\r\n\r\n`, 400, 'GW_REQUEST_INVALID'],
    ['CL + TE', `POST /svc/x HTTP/1.1\r\n${h}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400, 'GW_REQUEST_INVALID'],
    ['header bytes over the limit', `GET /svc/x HTTP/1.1\r\n${h}X-Big: ${'b'.repeat(70_000)}\r\n\r\n`, 431, 'GW_REQUEST_HEADERS_TOO_LARGE'],
    ['undecodable percent in the path', `GET /svc/%zz HTTP/1.1\r\n${h}\r\n`, 400, 'GW_REQUEST_PATH'],
    ['undecodable percent in a 404 path', `GET /evil%zz HTTP/1.1\r\n${h}\r\n`, 400, 'GW_REQUEST_PATH']
  ]
  for (const [name, payload, status, code] of cases) assertGatewayError(t, await rawRequest(port, payload), status, code, name)
  const badUrl = await rawRequest(port, `GET /svc/%zz HTTP/1.1\r\n${h}\r\n`)
  t.match(badUrl.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'a router refusal carries a request id')
  t.equal(badUrl.headers['x-content-type-options'], 'nosniff', 'and the security headers')
  t.equal(badUrl.headers['x-frame-options'], 'DENY')
  t.equal(svc.requests.length, 0, 'none reached the upstream')
})

t.test('Host: one valid host[:port] or nothing; more than one or a malformed one is refused', async (t) => {
  const { port, svc } = await twoRoutes(t)
  const refused: Record<string, string> = {
    'two Host lines': 'Host: a.example\r\nHost: evil.example\r\n',
    'Host twice, other case': 'Host: a.example\r\nhOST: evil.example\r\n',
    'a path in Host': 'Host: evil.example/reset?next=\r\n',
    'userinfo in Host': 'Host: user@evil.example\r\n',
    'space in Host': 'Host: a.example evil.example\r\n',
    'a comma list': 'Host: a.example,evil.example\r\n',
    'quotes and angle brackets': 'Host: "><script>\r\n',
    'a non-numeric port': 'Host: a.example:80x\r\n',
    'a port too long': 'Host: a.example:123456\r\n',
    'non-ASCII': 'Host: \u00e9vil.example\r\n',
    'a backslash': 'Host: evil.example\\a\r\n',
    'an unclosed IPv6 literal': 'Host: [::1\r\n'
  }
  for (const [name, host] of Object.entries(refused)) {
    assertGatewayError(t, await rawRequest(port, `GET /svc/x HTTP/1.1\r\n${host}\r\n`), 400, 'GW_REQUEST_INVALID', name)
  }
  t.equal(svc.requests.length, 0, 'none reached the upstream')
  const accepted = ['a.example', 'A.Example:8080', '127.0.0.1', `127.0.0.1:${port}`, '[::1]', `[::1]:${port}`, 'xn--bcher-kva.example', 'under_score.internal', '']
  for (const host of accepted) {
    const res = await rawRequest(port, `GET /svc/x HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
    t.equal(res.status, 200, `Host "${host}" is served`)
  }
  t.strictSame(svc.requests.map((r) => r.headers['x-forwarded-host'] ?? ''), accepted, 'and reaches the upstream as x-forwarded-host')
})

t.test('HTTP/1.1 without Host: 400 in the gateway body (RFC 9112 3.2), never forwarded; HTTP/1.0 may omit it', async (t) => {
  const svc = await startUpstream(t)
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: svc.url, auth: false })] })
  assertGatewayError(t, await rawRequest(gw.port, 'GET /svc/x HTTP/1.1\r\nConnection: close\r\n\r\n'), 400, 'GW_REQUEST_INVALID', 'no Host')
  t.equal(svc.requests.length, 0)
  t.equal((await rawRequest(gw.port, 'GET /svc/x HTTP/1.0\r\n\r\n')).status, 200)
  t.equal(svc.requests.length, 1)
})

t.test('PUBLIC_HOSTS: a Host the gateway does not serve never becomes the upstream\'s x-forwarded-host', async (t) => {
  // A client cannot send x-forwarded-host itself (dropped unless from TRUST_PROXY), but every
  // Host goes upstream as x-forwarded-host: with Host: evil.example, a backend that builds
  // password-reset links from it would mail links to evil.example.
  const svc = await startUpstream(t)
  const gw = await startGateway(t, { env: { PUBLIC_HOSTS: 'api.example.com, *.apps.example.com' }, routes: [defineRoute({ prefix: '/svc', upstream: svc.url, auth: false })] })
  const get = async (host: string, path = '/svc/x'): Promise<RawResponse> => await rawRequest(gw.port, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
  for (const host of ['evil.example', 'apps.example.com', 'evilapi.example.com', 'api.example.com.evil.example', 'api.example.co', `127.0.0.1:${gw.port}`, '[::1]:80', 'x.apps.example.com.evil.example']) {
    assertGatewayError(t, await get(host), 400, 'GW_REQUEST_INVALID', host)
  }
  t.equal(svc.requests.length, 0, 'none of them reached the upstream')
  for (const host of ['api.example.com', 'API.Example.COM:8443', 'api.example.com.', 'a.apps.example.com', 'a.b.apps.example.com:443']) {
    t.equal((await get(host)).status, 200, host)
  }
  t.strictSame(svc.requests.map((r) => r.headers['x-forwarded-host']), ['api.example.com', 'API.Example.COM:8443', 'api.example.com.', 'a.apps.example.com', 'a.b.apps.example.com:443'])
  // The gateway's own routes are not proxied: a balancer probing by IP address still gets an answer.
  t.equal((await get('10.0.0.5:8080', '/healthz')).status, 200)

  // Unset: any well-formed host, as before.
  const open = await startGateway(t, { routes: [defineRoute({ prefix: '/svc', upstream: svc.url, auth: false })] })
  t.equal((await rawRequest(open.port, 'GET /svc/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n')).status, 200)
  t.equal(svc.requests.at(-1)?.headers['x-forwarded-host'], 'evil.example')
  t.throws(() => loadConfig({ PUBLIC_HOSTS: 'https://api.example.com' }), { code: 'GW_CONFIG_INVALID', message: /PUBLIC_HOSTS: "https:\/\/api\.example\.com" is not a host name/ })
  t.throws(() => loadConfig({ PUBLIC_HOSTS: 'api.example.com:443' }), { code: 'GW_CONFIG_INVALID', message: /PUBLIC_HOSTS/ })
  t.throws(() => loadConfig({ PUBLIC_HOSTS: ' , ' }), { code: 'GW_CONFIG_INVALID', message: /PUBLIC_HOSTS: lists no host name/ })
})

t.test('slowloris: headers trickled past HEADERS_TIMEOUT_MS get 408 at the deadline, not at Node\'s 30 s check', async (t) => {
  const { port, svc } = await twoRoutes(t, { HEADERS_TIMEOUT_MS: '1000' })
  const started = Date.now()
  const socket = connect(port, '127.0.0.1')
  let data = ''
  socket.on('data', (d) => { data += d.toString('latin1') })
  socket.on('error', () => {})
  await once(socket, 'connect')
  socket.write(`GET /svc/x HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`)
  const trickle = setInterval(() => { if (!socket.destroyed) socket.write('X-Slow: 1\r\n') }, 200)
  await once(socket, 'close')
  clearInterval(trickle)
  const elapsed = Date.now() - started
  t.ok(elapsed >= 900 && elapsed < 15_000, `closed after ${elapsed} ms (deadline 1000 ms), not at Node's own check every 30 s`)
  const body = data.slice(data.indexOf('\r\n\r\n') + 4)
  t.match(data, /^HTTP\/1\.1 408 /)
  t.strictSame(JSON.parse(body), { statusCode: 408, code: 'GW_REQUEST_TIMEOUT', error: 'Request Timeout', message: 'Request timeout' })
  t.equal(svc.requests.length, 0)
})

t.test('CONNECT opens no tunnel: 400 in the gateway body, then the connection closes', async (t) => {
  const { port, svc, admin } = await twoRoutes(t)
  for (const target of [`127.0.0.1:${svc.port}`, `127.0.0.1:${admin.port}`, 'evil.example:443']) {
    const res = await rawRequest(port, `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n`)
    assertGatewayError(t, res, 400, 'GW_REQUEST_INVALID', `CONNECT ${target}`)
    t.notMatch(res.raw, /HTTP\/1\.1 200/, 'no tunnel established')
  }
  t.equal(svc.requests.length + admin.requests.length, 0, 'nothing reached an upstream')
})
