import { execFile } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { defineRoute } from 'portcullis'
import { closedPort, startUpstream, type Upstream } from '../helpers/upstream.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { expectContinueRequest, rawRequest, type ExpectResponse } from '../helpers/raw-http.js'
import { makeCert } from '../helpers/certs.js'

const KEY = 'expect-test-key-0123456789abcdef'
const LIMIT = 4 * 1024 * 1024
/** curl adds `Expect: 100-continue` by itself to POST bodies above 1 MiB (7.88; 1 MiB exactly: not). */
const CURL_THRESHOLD = 1024 * 1024

const dir = mkdtempSync(join(tmpdir(), 'portcullis-expect-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })

function sha256 (b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

/**
 * Bodies for routes that block on inspection: plain text, because random bytes can happen to
 * match an inspection rule (and be refused with 403).
 */
function benign (size: number): Buffer {
  return Buffer.alloc(size, 'a harmless upload line\n')
}

/** A file of `size` bytes (random unless given) for curl, and its bytes. */
function payload (name: string, size: number, bytes: Buffer = randomBytes(size)): { file: string, bytes: Buffer } {
  const file = join(dir, name)
  writeFileSync(file, bytes)
  return { file, bytes }
}

interface CurlResult { status: number, verbose: string }

/** Runs the real curl; `verbose` keeps its `>`, `<` and `*` lines. */
async function curl (args: string[]): Promise<CurlResult> {
  return await new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '-v', '-o', '/dev/null', '-w', '%{http_code}', ...args], { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null) { reject(err); return }
      resolve({ status: Number(stdout), verbose: stderr.split('\n').filter((l) => /^[<>*] /.test(l)).join('\n') })
    })
  })
}

interface Setup { gw: TestGateway, up: Upstream }

/**
 * One upstream behind a streamed route (/files), two that buffer bodies for inspection (/forms
 * blocks, and so refuses bodies past the inspection size; /scans detects, for large uploads) and a
 * rate-limited one (/once).
 */
async function setup (t: Test, env: Record<string, string> = {}): Promise<Setup> {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    logLevel: 'warn',
    env: { BODY_LIMIT: String(LIMIT), API_KEYS: `uploader:${KEY}`, ...env },
    routes: [
      defineRoute({ prefix: '/files', upstream: up.url, auth: { strategies: ['apiKey'] } }),
      defineRoute({ prefix: '/forms', upstream: up.url, auth: { strategies: ['apiKey'] }, inspect: { mode: 'block', body: true } }),
      defineRoute({ prefix: '/scans', upstream: up.url, auth: { strategies: ['apiKey'] }, inspect: { mode: 'detect', body: true } }),
      defineRoute({ prefix: '/once', upstream: up.url, auth: false, rateLimit: { max: 1, timeWindow: '1 minute' } })
    ]
  })
  return { gw, up }
}

function head (port: number, lines: string): string {
  return `${lines.split('\n').join('\r\n')}\r\nHost: 127.0.0.1:${port}\r\n\r\n`
}

/** The response was refused without `100 Continue`, without taking the body, and the connection closed. */
async function refused (t: Test, res: ExpectResponse, status: number, code: string): Promise<void> {
  t.equal(res.status, status, code)
  t.equal((JSON.parse(res.body) as { code: string }).code, code)
  t.strictSame(res.interim, [], `${code}: no 100 Continue`)
  t.equal(res.bodySent, false)
  t.equal(res.headers.connection, 'close', `${code}: the connection is not reused`)
  await res.ended
  t.pass(`${code}: the server closed the connection`)
}

t.test('curl, as it behaves by default: 100 Continue after the policies, the exact bytes upstream, no Expect', async (t) => {
  const { gw, up } = await setup(t)
  const big = payload('big.bin', CURL_THRESHOLD + 1)
  const small = payload('small.txt', 10 * 1024, benign(10 * 1024))
  const cases: Array<{ name: string, args: string[], bytes: Buffer }> = []
  const common = ['-H', `x-api-key: ${KEY}`, '-H', 'content-type: application/octet-stream']
  for (const route of ['files', 'scans']) {
    const url = `${gw.url}/${route}/upload`
    cases.push(
      { name: `${route}: POST over 1 MiB`, args: [...common, '--data-binary', `@${big.file}`, url], bytes: big.bytes },
      { name: `${route}: PUT -T`, args: [...common, '-T', big.file, url], bytes: big.bytes },
      { name: `${route}: chunked over 1 MiB`, args: [...common, '-H', 'transfer-encoding: chunked', '--data-binary', `@${big.file}`, url], bytes: big.bytes }
    )
  }
  for (const route of ['files', 'forms']) {
    const url = `${gw.url}/${route}/upload`
    cases.push({ name: `${route}: small body, Expect forced`, args: [...common, '-H', 'expect: 100-continue', '--data-binary', `@${small.file}`, url], bytes: small.bytes })
  }
  for (const c of cases) {
    const before = up.requests.length
    const res = await curl(c.args)
    t.equal(res.status, 200, c.name)
    t.match(res.verbose, /^> Expect: 100-continue/im, `${c.name}: curl asked`)
    t.match(res.verbose, /^< HTTP\/1\.1 100 Continue/m, `${c.name}: the gateway answered 100`)
    t.equal(up.requests.length, before + 1)
    const seen = up.requests[before]
    t.equal(seen?.complete, true)
    t.equal(sha256(seen?.body ?? Buffer.alloc(0)), sha256(c.bytes), `${c.name}: the upstream got the exact bytes`)
    t.equal(seen?.headers.expect, undefined, `${c.name}: no Expect upstream`)
  }
})

t.test('curl without a valid key: 401 with no 100 Continue, the body is never sent', async (t) => {
  const { gw, up } = await setup(t)
  const big = payload('refused.bin', CURL_THRESHOLD + 1)
  for (const route of ['files', 'scans']) {
    const res = await curl(['-H', 'x-api-key: not-the-key-0123456789', '--data-binary', `@${big.file}`, `${gw.url}/${route}/upload`])
    t.equal(res.status, 401, route)
    t.match(res.verbose, /^> Expect: 100-continue/im)
    t.notMatch(res.verbose, /100 Continue/, `${route}: no 100 Continue`)
    t.notMatch(res.verbose, /completely uploaded/, `${route}: curl did not send the body`)
  }
  t.equal(up.requests.length, 0, 'the upstream received nothing')
})

t.test('a client that waits: 100 Continue only once every policy before the body has passed', async (t) => {
  const { gw, up } = await setup(t)
  const port = gw.port
  const bytes = benign(16 * 1024)
  const expect = `Expect: 100-continue\nContent-Type: application/octet-stream\nContent-Length: ${bytes.length}`

  for (const route of ['files', 'forms']) {
    const ok = await expectContinueRequest(port, head(port, `POST /${route}/ok HTTP/1.1\nx-api-key: ${KEY}\n${expect}`), bytes)
    t.equal(ok.status, 200, route)
    t.strictSame(ok.interim, [100], `${route}: 100 Continue, then the answer`)
    t.equal(ok.headers.connection, 'keep-alive', `${route}: the connection stays usable`)
    ok.socket.destroy()
    t.equal(up.requests.length, route === 'files' ? 1 : 2)
    const seen = up.requests.at(-1)
    t.equal(sha256(seen?.body ?? Buffer.alloc(0)), sha256(bytes), `${route}: exact bytes upstream`)
    t.equal(seen?.headers.expect, undefined)
  }
  const passed = up.requests.length

  const attack = '?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E'
  for (const route of ['files', 'forms']) {
    await refused(t, await expectContinueRequest(port, head(port, `POST /${route}/x HTTP/1.1\n${expect}`), bytes), 401, 'GW_AUTH_UNAUTHORIZED')
    await refused(t, await expectContinueRequest(port, head(port, `POST /${route}/x HTTP/1.1\nx-api-key: wrong-key-0123456789abc\n${expect}`), bytes), 401, 'GW_AUTH_UNAUTHORIZED')
    await refused(t, await expectContinueRequest(port, head(port, `POST /${route}/x${attack} HTTP/1.1\nx-api-key: ${KEY}\n${expect}`), bytes), 403, 'GW_INSPECT_BLOCKED')
    await refused(t, await expectContinueRequest(port, head(port, `POST /${route}/x HTTP/1.1\nx-api-key: ${KEY}\nExpect: 100-continue\nContent-Length: ${LIMIT + 1}`)), 413, 'GW_REQUEST_BODY_TOO_LARGE')
  }
  // Within BODY_LIMIT but past what a blocking inspection route parses (4 x 32 KiB): refused from
  // the declared length, before 100 Continue.
  await refused(t, await expectContinueRequest(port, head(port, `POST /forms/x HTTP/1.1\nx-api-key: ${KEY}\nExpect: 100-continue\nContent-Type: application/json\nContent-Length: ${128 * 1024 + 1}`)), 413, 'GW_INSPECT_TOO_LARGE')

  const first = await expectContinueRequest(port, head(port, `POST /once/a HTTP/1.1\n${expect}`), bytes)
  t.strictSame([first.status, first.interim], [200, [100]], 'within the rate limit')
  first.socket.destroy()
  await refused(t, await expectContinueRequest(port, head(port, `POST /once/b HTTP/1.1\n${expect}`), bytes), 429, 'GW_RATE_LIMITED')
  t.equal(up.requests.length, passed + 1, 'the upstream received only the requests that passed')
})

t.test('other expectations get 417; HTTP/1.0 and bodiless requests never get 100', async (t) => {
  const { gw, up } = await setup(t)
  const port = gw.port
  for (const value of ['fancy', '100-continue, fancy', '100-continue=1']) {
    const res = await expectContinueRequest(port, head(port, `POST /files/x HTTP/1.1\nx-api-key: ${KEY}\nExpect: ${value}\nContent-Length: 5`), Buffer.from('hello'))
    await refused(t, res, 417, 'GW_REQUEST_EXPECTATION_FAILED')
  }
  t.equal(up.requests.length, 0, 'refused expectations never reach the upstream')

  const upper = await expectContinueRequest(port, head(port, `POST /files/x HTTP/1.1\nx-api-key: ${KEY}\nExpect: 100-Continue\nContent-Length: 5`), Buffer.from('hello'))
  t.strictSame([upper.status, upper.interim], [200, [100]], 'the token is case-insensitive')
  upper.socket.destroy()

  const get = await expectContinueRequest(port, head(port, `GET /files/x HTTP/1.1\nx-api-key: ${KEY}\nExpect: 100-continue`))
  t.strictSame([get.status, get.interim], [200, []], 'no content announced: no 100 Continue (RFC 9110 10.1.1)')
  get.socket.destroy()
  t.equal(up.requests.at(-1)?.method, 'GET')
  t.equal(up.requests.at(-1)?.headers.expect, undefined)

  // RFC 9110 10.1.1: a server MUST ignore a 100-continue expectation in an HTTP/1.0 request.
  const old = await rawRequest(port, `POST /files/old HTTP/1.0\r\nHost: 127.0.0.1\r\nx-api-key: ${KEY}\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello`)
  t.equal(old.status, 200)
  t.notMatch(old.raw, /100 Continue/, 'HTTP/1.0: the expectation is ignored')
  t.equal(up.requests.at(-1)?.body.toString(), 'hello')
  t.equal(up.requests.at(-1)?.headers.expect, undefined)

  // A client that sends its body without waiting: the content is here, no 100 is needed.
  const eager = await rawRequest(port, `POST /files/eager HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: ${KEY}\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello`)
  t.equal(eager.status, 200)
  t.notMatch(eager.raw, /100 Continue/)
  t.equal(up.requests.at(-1)?.body.toString(), 'hello')
})

t.test('chunked uploads with Expect reach the upstream byte for byte', async (t) => {
  const { gw, up } = await setup(t)
  const port = gw.port
  const parts = [randomBytes(100_000), randomBytes(1), randomBytes(70_000)]
  const chunked = Buffer.concat([...parts.flatMap((p) => [Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')]), Buffer.from('0\r\n\r\n')])
  for (const route of ['files', 'scans']) {
    const res = await expectContinueRequest(port, head(port, `PUT /${route}/chunks HTTP/1.1\nx-api-key: ${KEY}\nExpect: 100-continue\nTransfer-Encoding: chunked`), chunked)
    t.strictSame([res.status, res.interim], [200, [100]], route)
    res.socket.destroy()
    t.equal(sha256(up.requests.at(-1)?.body ?? Buffer.alloc(0)), sha256(Buffer.concat(parts)), `${route}: exact bytes upstream`)
  }
})

t.test('the gateway asks for the body only once the upstream takes it; a route at its in-flight cap answers 503 first', async (t) => {
  const down = await closedPort()
  const held: ServerResponse[] = []
  const slow = await startUpstream(t, (_req, res) => { held.push(res) })
  const gw = await startGateway(t, {
    logLevel: 'warn',
    routes: [
      defineRoute({ prefix: '/down', upstream: `http://127.0.0.1:${down}`, auth: false, retries: 0 }),
      defineRoute({ prefix: '/capped', upstream: slow.url, auth: false, maxInFlight: 1 })
    ]
  })
  const port = gw.port
  const expect = 'Expect: 100-continue\nContent-Length: 5'
  await refused(t, await expectContinueRequest(port, head(port, `POST /down/x HTTP/1.1\n${expect}`), Buffer.from('hello')), 502, 'GW_UPSTREAM_BAD_GATEWAY')

  const first = expectContinueRequest(port, head(port, `POST /capped/1 HTTP/1.1\n${expect}`), Buffer.from('hello'))
  while (slow.requests.length === 0) await new Promise((resolve) => setImmediate(resolve))
  await refused(t, await expectContinueRequest(port, head(port, `POST /capped/2 HTTP/1.1\n${expect}`), Buffer.from('hello')), 503, 'GW_ROUTE_OVERLOADED')
  for (const res of held) res.end('{}')
  const done = await first
  t.strictSame([done.status, done.interim], [200, [100]])
  done.socket.destroy()
  t.equal(slow.requests.length, 1)
})

t.test('a drain does not wait for connections answered without reading their body', async (t) => {
  const { gw, up } = await setup(t)
  const port = gw.port
  const waiting = await expectContinueRequest(port, head(port, `POST /files/x HTTP/1.1\nExpect: 100-continue\nContent-Length: ${LIMIT}`))
  t.equal(waiting.status, 401)
  // The client keeps its end open and never sends the body.
  await gw.app.close()
  await waiting.ended
  t.equal(up.requests.length, 0)
})

t.test('a drain does not wait for an upload answered 502 before its body was read', async (t) => {
  const gw = await startGateway(t, {
    logLevel: 'warn',
    env: { BODY_LIMIT: String(LIMIT) },
    routes: [defineRoute({ prefix: '/down', upstream: `http://127.0.0.1:${await closedPort()}`, auth: false, retries: 0 })]
  })
  const big = payload('down.bin', 2 * 1024 * 1024)
  for (const expect of ['expect:', 'expect: 100-continue']) {
    const res = await curl(['-H', expect, '--data-binary', `@${big.file}`, `${gw.url}/down/x`])
    t.equal(res.status, 502, expect)
    t.match(res.verbose, /^< connection: close/im, `${expect}: the connection is closed`)
  }
  await gw.app.close()
  t.pass('closed')
})

t.test('HTTP/2: the same expectation handling on streams', async (t) => {
  const cert = makeCert()
  const { gw, up } = await setup(t, { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: 'true' })
  const session = http2Connect(`https://localhost:${gw.port}`, { ca: cert.cert })
  t.teardown(() => { session.destroy() })
  const bytes = randomBytes(200_000)

  async function h2 (s: ClientHttp2Session, headers: Record<string, string>, body: Buffer): Promise<{ status: number, continued: boolean, code?: string }> {
    return await new Promise((resolve, reject) => {
      const stream = s.request({ ':method': 'POST', 'content-length': String(body.length), ...headers }, { endStream: false })
      let continued = false
      let status = 0
      let text = ''
      stream.on('continue', () => { continued = true; stream.end(body) })
      stream.on('response', (h) => { status = Number(h[':status']) })
      stream.on('data', (c: Buffer) => { text += c.toString() })
      stream.on('close', () => { resolve({ status, continued, ...(text.startsWith('{"statusCode"') ? { code: (JSON.parse(text) as { code: string }).code } : {}) }) })
      stream.on('error', reject)
    })
  }

  for (const route of ['files', 'scans']) {
    const ok = await h2(session, { ':path': `/${route}/h2`, 'x-api-key': KEY, expect: '100-continue' }, bytes)
    t.strictSame(ok, { status: 200, continued: true }, route)
    t.equal(sha256(up.requests.at(-1)?.body ?? Buffer.alloc(0)), sha256(bytes), `${route}: exact bytes upstream`)
    t.equal(up.requests.at(-1)?.headers.expect, undefined)
  }
  const passed = up.requests.length
  for (const route of ['files', 'forms']) {
    t.strictSame(await h2(session, { ':path': `/${route}/h2`, expect: '100-continue' }, bytes), { status: 401, continued: false, code: 'GW_AUTH_UNAUTHORIZED' }, `${route}: refused before the body`)
    t.strictSame(await h2(session, { ':path': `/${route}/h2`, 'x-api-key': KEY, expect: '100-continue', 'content-length': String(LIMIT + 1) }, bytes), { status: 413, continued: false, code: 'GW_REQUEST_BODY_TOO_LARGE' })
    t.strictSame(await h2(session, { ':path': `/${route}/h2`, 'x-api-key': KEY, expect: 'fancy' }, bytes), { status: 417, continued: false, code: 'GW_REQUEST_EXPECTATION_FAILED' })
  }
  t.equal(up.requests.length, passed, 'refused streams never reach the upstream')

  const big = payload('h2.bin', CURL_THRESHOLD + 1)
  const res = await curl(['--http2', '--cacert', cert.certFile, '-H', `x-api-key: ${KEY}`, '-H', 'expect: 100-continue', '--data-binary', `@${big.file}`, `https://localhost:${gw.port}/files/curl`])
  t.equal(res.status, 200)
  t.match(res.verbose, /^< HTTP\/2 100/m, 'curl over HTTP/2 got 100')
  t.equal(sha256(up.requests.at(-1)?.body ?? Buffer.alloc(0)), sha256(big.bytes))
})

t.test('WebSocket routes: an upgrade with Expect still switches protocols; plain uploads get 100 Continue', async (t) => {
  const upgrades: IncomingMessage[] = []
  const bodies: Buffer[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => { chunks.push(c) })
    req.on('end', () => { bodies.push(Buffer.concat(chunks)); res.end('{}') })
  })
  const wss = new WebSocketServer({ server })
  wss.on('connection', (socket, req) => {
    upgrades.push(req)
    socket.on('message', (data) => { socket.send(`echo:${data.toString()}`) })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const c of wss.clients) c.terminate()
    await new Promise<void>((resolve) => { wss.close(() => { server.close(() => { resolve() }) }) })
  })
  const gw = await startGateway(t, {
    logLevel: 'warn',
    routes: [defineRoute({ prefix: '/chat', upstream: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, auth: false, websocket: true })]
  })

  const echoed = await new Promise<string>((resolve, reject) => {
    const ws = new WebSocket(`${gw.url.replace('http:', 'ws:')}/chat/room`, { headers: { expect: '100-continue' } })
    ws.on('open', () => { ws.send('hi') })
    ws.on('message', (m) => { resolve(m.toString()); ws.close() })
    ws.on('unexpected-response', (_req, res) => { reject(new Error(`status ${res.statusCode ?? 0}`)) })
    ws.on('error', reject)
  })
  t.equal(echoed, 'echo:hi')
  t.equal(upgrades[0]?.headers.expect, undefined, 'no Expect in the upstream handshake')

  const bytes = randomBytes(50_000)
  const res = await expectContinueRequest(gw.port, head(gw.port, `POST /chat/upload HTTP/1.1\nExpect: 100-continue\nContent-Length: ${bytes.length}`), bytes)
  t.strictSame([res.status, res.interim], [200, [100]])
  res.socket.destroy()
  t.equal(sha256(bodies.at(-1) ?? Buffer.alloc(0)), sha256(bytes))
})
