/**
 * WebSocket proxying hardening: the upstream handshake carries the client's end-to-end headers
 * (Origin, Cookie, subprotocols), a route's Origin allow-list is enforced at the gateway, the
 * client gets 101 only after the upstream did (a refusal is passed on, an unreachable upstream is
 * 502), and messages are bounded in both directions (close 1009) without the gateway buffering
 * what it refuses.
 */
import t, { type Test } from 'tap'
import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import WebSocket, { WebSocketServer } from 'ws'
import { defineRoute } from 'portcullis'
import { startGateway } from '../helpers/gateway.js'
import { makeCert } from '../helpers/certs.js'

interface WsUpstream {
  readonly url: string
  /** Every upgrade request that reached the upstream's HTTP server. */
  readonly handshakes: IncomingMessage[]
  /** Messages the upstream received. */
  readonly messages: Buffer[]
  /** Close codes of the upstream's connections. */
  readonly closes: number[]
  readonly sockets: WebSocket[]
}

/** A WebSocket echo upstream that records handshakes, messages and close codes. */
async function wsUpstream (t: Test, opts: { handleProtocols?: (p: Set<string>) => string | false } = {}): Promise<WsUpstream> {
  const up: WsUpstream = { url: '', handshakes: [], messages: [], closes: [], sockets: [] }
  const server = createServer((_req, res) => { res.end('http') })
  server.on('upgrade', (req: IncomingMessage) => { up.handshakes.push(req) })
  const wss = new WebSocketServer({ server, ...(opts.handleProtocols !== undefined ? { handleProtocols: opts.handleProtocols } : {}) })
  wss.on('connection', (socket) => {
    up.sockets.push(socket)
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      up.messages.push(data)
      if (isBinary) { socket.send(data); return }
      const text = data.toString()
      if (text.startsWith('big:')) socket.send(Buffer.alloc(Number(text.slice(4)), 0x61))
      else socket.send(`echo:${text}`)
    })
    socket.on('close', (code) => { up.closes.push(code) })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const c of wss.clients) c.terminate()
    await new Promise<void>((resolve) => { wss.close(() => { server.close(() => { resolve() }) }) })
  })
  return Object.assign(up, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })
}

/** An upstream that refuses every upgrade with the given raw HTTP/1.1 response. */
async function refusingUpstream (t: Test, response: string): Promise<{ url: string, handshakes: number }> {
  const state = { url: '', handshakes: 0 }
  const server = createServer((_req, res) => { res.end('http') })
  server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => {
    state.handshakes++
    socket.on('error', () => {})
    socket.end(response)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => { await new Promise<void>((resolve) => { server.close(() => { resolve() }) }) })
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return state
}

interface Refusal { status: number, headers: IncomingMessage['headers'], body: string }

/** Opens a WebSocket; resolves with the open socket, or the HTTP refusal when there is no 101. */
async function open (url: string, opts: { protocols?: string[], headers?: Record<string, string> } = {}): Promise<{ ws: WebSocket } | { refusal: Refusal }> {
  return await new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts.protocols ?? [], { headers: opts.headers ?? {} })
    ws.on('open', () => { resolve({ ws }) })
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => { resolve({ refusal: { status: res.statusCode ?? 0, headers: res.headers, body } }) })
    })
    ws.on('error', reject)
  })
}

async function refusal (url: string, opts: { protocols?: string[], headers?: Record<string, string> } = {}): Promise<Refusal> {
  const r = await open(url, opts)
  if ('ws' in r) {
    r.ws.terminate()
    throw new Error('the handshake switched protocols')
  }
  return r.refusal
}

async function connected (url: string, opts: { protocols?: string[], headers?: Record<string, string> } = {}): Promise<WebSocket> {
  const r = await open(url, opts)
  if ('refusal' in r) throw new Error(`status ${r.refusal.status} ${r.refusal.body}`)
  return r.ws
}

async function nextMessage (ws: WebSocket): Promise<string> {
  const [data] = await once(ws, 'message') as [Buffer]
  return data.toString()
}

async function closeCode (ws: WebSocket): Promise<number> {
  if (ws.readyState === WebSocket.CLOSED) throw new Error('already closed')
  const [code] = await once(ws, 'close') as [number]
  return code
}

t.test('the upstream handshake carries Origin, Cookie, User-Agent and the subprotocol offer; the upstream\'s choice reaches the client', async (t) => {
  const up = await wsUpstream(t, { handleProtocols: (p) => p.has('chat.v1') ? 'chat.v1' : false })
  const key = 'ws-hardening-key-0123456789'
  const gw = await startGateway(t, {
    env: { API_KEYS: `chat-client:${key}` },
    routes: [defineRoute({ prefix: '/chat', upstream: up.url, websocket: true })]
  })
  const ws = await connected(`${gw.url.replace('http:', 'ws:')}/chat/room?x=1`, {
    protocols: ['chat.v2', 'chat.v1'],
    headers: { origin: 'https://app.example', cookie: 'session=abc', 'user-agent': 'test-agent/1', 'x-api-key': key }
  })
  t.equal(ws.protocol, 'chat.v1', 'the client gets the subprotocol the upstream selected')
  ws.send('hi')
  t.equal(await nextMessage(ws), 'echo:hi')
  ws.close()

  const seen = up.handshakes[0]?.headers ?? {}
  t.equal(up.handshakes[0]?.url, '/room?x=1')
  t.equal(seen.origin, 'https://app.example', 'Origin forwarded, so the upstream can refuse foreign origins')
  t.equal(seen.cookie, 'session=abc')
  t.equal(seen['user-agent'], 'test-agent/1')
  t.match(seen['sec-websocket-protocol'], /^chat\.v2, ?chat\.v1$/, 'the client\'s offer, in order')
  t.equal(seen['x-consumer-id'], 'chat-client')
  t.equal(seen['x-forwarded-for'], '127.0.0.1')
  t.equal(seen['x-api-key'], undefined, 'API key never forwarded')
  t.equal(seen['sec-websocket-extensions'], undefined, 'no compression negotiated upstream')

  const raw = await rawWebSocket(gw.port, '/chat/raw', `x-api-key: ${key}\r\nConnection: Upgrade, x-hop\r\nx-hop: secret\r\n`)
  raw.socket.destroy()
  t.equal(up.handshakes[1]?.headers['x-hop'], undefined, 'a header named by Connection is hop-by-hop')
})

t.test('a route\'s allowed origins: others get 403 and the upstream sees no handshake', async (t) => {
  const up = await wsUpstream(t)
  const gw = await startGateway(t, {
    routes: [
      defineRoute({ prefix: '/chat', upstream: up.url, auth: false, websocket: { allowedOrigins: ['https://app.example', 'http://localhost:3000'] } }),
      defineRoute({ prefix: '/strict', upstream: up.url, auth: false, websocket: { allowedOrigins: ['https://app.example'], requireOrigin: true } })
    ]
  })
  const base = gw.url.replace('http:', 'ws:')
  for (const origin of ['https://evil.example', 'https://app.example.evil', 'http://app.example', 'null', 'https://app.example:443x']) {
    const r = await refusal(`${base}/chat/room`, { headers: { origin } })
    t.equal(r.status, 403, origin)
    t.strictSame(JSON.parse(r.body), { statusCode: 403, code: 'GW_WEBSOCKET_ORIGIN', error: 'Forbidden', message: 'Origin not allowed' })
  }
  const noOrigin = await refusal(`${base}/strict/room`)
  t.equal(noOrigin.status, 403, 'requireOrigin: a handshake without Origin is refused')
  t.equal(up.handshakes.length, 0, 'no refused handshake reached the upstream')

  for (const [path, origin] of [['/chat', 'https://app.example'], ['/chat', 'http://localhost:3000'], ['/strict', 'https://app.example']] as const) {
    const ws = await connected(`${base}${path}/room`, { headers: { origin } })
    ws.send('ok')
    t.equal(await nextMessage(ws), 'echo:ok', `${path} ${origin}`)
    ws.close()
  }
  const nonBrowser = await connected(`${base}/chat/room`)
  nonBrowser.close()
  t.equal(up.handshakes.length, 4, 'allowed origins and a client without Origin (non-browser) reach the upstream')
})

t.test('an upstream refusal is passed on with its challenge; the client never gets 101', async (t) => {
  const body = '{"error":"login required"}'
  const r401 = await refusingUpstream(t, `HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm="chat"\r\nContent-Type: application/json\r\nServer: upstream-fingerprint\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
  const r403 = await refusingUpstream(t, 'HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden')
  const r302 = await refusingUpstream(t, 'HTTP/1.1 302 Found\r\nLocation: http://10.0.0.7/internal\r\nContent-Length: 0\r\n\r\n')
  const huge = 'x'.repeat(64 * 1024)
  const rBig = await refusingUpstream(t, `HTTP/1.1 403 Forbidden\r\nContent-Length: ${huge.length}\r\n\r\n${huge}`)
  const gw = await startGateway(t, {
    routes: [
      defineRoute({ prefix: '/a', upstream: r401.url, auth: false, websocket: true }),
      defineRoute({ prefix: '/b', upstream: r403.url, auth: false, websocket: true }),
      defineRoute({ prefix: '/c', upstream: r302.url, auth: false, websocket: true }),
      defineRoute({ prefix: '/d', upstream: rBig.url, auth: false, websocket: true })
    ]
  })
  const base = gw.url.replace('http:', 'ws:')
  const a = await refusal(`${base}/a/room`)
  t.equal(a.status, 401)
  t.equal(a.headers['www-authenticate'], 'Bearer realm="chat"', 'the challenge reaches the client')
  t.equal(a.body, body)
  t.equal(a.headers.server, undefined, 'upstream fingerprint removed')
  t.equal(typeof a.headers['x-request-id'], 'string', 'a gateway response (request id, security headers)')

  const b = await refusal(`${base}/b/room`)
  t.equal(b.status, 403)
  t.equal(b.body, 'forbidden')

  const c = await refusal(`${base}/c/room`)
  t.equal(c.status, 502, 'a redirect is neither followed nor passed on')
  t.equal(JSON.parse(c.body).code, 'GW_UPSTREAM_BAD_GATEWAY')
  t.equal(c.headers.location, undefined)

  const d = await refusal(`${base}/d/room`)
  t.equal(d.status, 502, 'a refusal with a large body is not buffered')
  t.equal([r401.handshakes, r403.handshakes, r302.handshakes, rBig.handshakes].join(), '1,1,1,1')
})

t.test('an unreachable upstream is 502, never 101', async (t) => {
  const probe = createServer()
  probe.listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const port = (probe.address() as AddressInfo).port
  await new Promise<void>((resolve) => { probe.close(() => { resolve() }) })
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/chat', upstream: `http://127.0.0.1:${port}`, auth: false, websocket: true })] })
  const r = await refusal(`${gw.url.replace('http:', 'ws:')}/chat/room`)
  t.equal(r.status, 502)
  t.strictSame(JSON.parse(r.body), { statusCode: 502, code: 'GW_UPSTREAM_BAD_GATEWAY', error: 'Bad Gateway', message: 'Bad gateway' })
})

t.test('an invalid handshake is refused with 400 before the upstream is contacted', async (t) => {
  const up = await wsUpstream(t)
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/chat', upstream: up.url, auth: false, websocket: true })] })
  for (const headers of [
    'Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: a, a'
  ]) {
    const res = await rawExchange(gw.port, `GET /chat/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${headers}\r\n\r\n`)
    t.match(res, /^HTTP\/1\.1 400 /, headers)
    t.match(res, /"code":"GW_WEBSOCKET_HANDSHAKE"/)
  }
  // RFC 6455 4.1: an HTTP/1.1 GET without content. The bytes of a body would be taken for frames.
  const valid = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n'
  const smuggled = 'GET /chat/smuggled HTTP/1.1\r\nHost: x\r\n\r\n'
  for (const [name, request] of [
    ['HTTP/1.0', `GET /chat/x HTTP/1.0\r\nHost: x\r\n${valid}\r\n`],
    ['Content-Length body', `GET /chat/x HTTP/1.1\r\nHost: x\r\n${valid}Content-Length: ${smuggled.length}\r\n\r\n${smuggled}`],
    ['chunked body', `GET /chat/x HTTP/1.1\r\nHost: x\r\n${valid}Transfer-Encoding: chunked\r\n\r\n${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`]
  ]) {
    const res = await rawExchange(gw.port, request)
    t.match(res, /^HTTP\/1\.1 400 /, name)
    t.match(res, /"code":"GW_WEBSOCKET_HANDSHAKE"/, name)
  }
  t.equal(up.handshakes.length, 0)
})

/** Sends `request` on a fresh connection and returns everything read until the gateway closes. */
async function rawExchange (port: number, request: string): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  let text = ''
  socket.on('data', (c: Buffer) => { text += c.toString('latin1') })
  socket.write(request)
  await once(socket, 'close')
  return text
}

/** A client frame header (FIN flag, opcode, length, zero mask key: the payload goes unmasked-equal). */
function frameHeader (fin: boolean, opcode: number, length: number): Buffer {
  const head = Buffer.alloc(14)
  head[0] = (fin ? 0x80 : 0) | opcode
  if (length < 126) {
    head[1] = 0x80 | length
    return head.subarray(0, 6)
  }
  if (length < 65536) {
    head[1] = 0x80 | 126
    head.writeUInt16BE(length, 2)
    return head.subarray(0, 8)
  }
  head[1] = 0x80 | 127
  head.writeBigUInt64BE(BigInt(length), 2)
  return head
}

/** Opens a raw WebSocket connection through the gateway; resolves once 101 has been read. */
async function rawWebSocket (port: number, path: string, extra = 'Connection: Upgrade\r\n'): Promise<{ socket: Socket, received: () => Buffer }> {
  const socket = connect(port, '127.0.0.1')
  let buf = Buffer.alloc(0)
  socket.on('data', (c: Buffer) => { buf = Buffer.concat([buf, c]) })
  socket.on('error', () => {})
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`)
  while (!buf.includes('\r\n\r\n')) await once(socket, 'data')
  const end = buf.indexOf('\r\n\r\n') + 4
  if (!buf.subarray(0, end).toString().startsWith('HTTP/1.1 101 ')) throw new Error(buf.toString())
  buf = buf.subarray(end)
  return { socket, received: () => buf }
}

/** Answers the gateway's close frame as a client does (code 1000), then waits for the TCP close. */
async function answerClose (socket: Socket): Promise<void> {
  if (!socket.destroyed) socket.end(Buffer.concat([frameHeader(true, 0x8, 2), Buffer.from([0x03, 0xe8])]))
  if (!socket.closed) await once(socket, 'close')
}

/** Waits until the gateway has sent a close frame; returns its code. */
async function awaitCloseFrame (conn: { socket: Socket, received: () => Buffer }): Promise<number | undefined> {
  while (closeFrameCode(conn.received()) === undefined && !conn.socket.destroyed) await Promise.race([once(conn.socket, 'data'), once(conn.socket, 'close')])
  return closeFrameCode(conn.received())
}

/** Writes `total` payload bytes in fragments of `chunk` bytes as one message, until the gateway closes. */
async function sendFragmented (conn: { socket: Socket, received: () => Buffer }, total: number, chunk: number, sample: () => void): Promise<number> {
  const socket = conn.socket
  const payload = Buffer.alloc(chunk, 0x62)
  let sent = 0
  while (sent < total && !socket.destroyed && closeFrameCode(conn.received()) === undefined) {
    const header = frameHeader(sent + chunk >= total, sent === 0 ? 0x2 : 0x0, chunk)
    const flushed = socket.write(Buffer.concat([header, payload]))
    sent += chunk
    sample()
    if (!flushed) await Promise.race([once(socket, 'drain'), once(socket, 'close')])
  }
  return sent
}

/** The close code of the first close frame the gateway sent (server frames are unmasked). */
function closeFrameCode (data: Buffer): number | undefined {
  let i = 0
  while (i + 2 <= data.length) {
    const opcode = (data[i] as number) & 0x0f
    let len = (data[i + 1] as number) & 0x7f
    let start = i + 2
    if (len === 126) { len = data.readUInt16BE(i + 2); start = i + 4 }
    if (len === 127) { len = Number(data.readBigUInt64BE(i + 2)); start = i + 10 }
    if (opcode === 0x8) return len >= 2 ? data.readUInt16BE(start) : 1005
    i = start + len
  }
  return undefined
}

function memory (): number {
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

t.test('messages are bounded by the route (default BODY_LIMIT) in both directions: close 1009, nothing relayed', async (t) => {
  const up = await wsUpstream(t)
  const gw = await startGateway(t, {
    env: { BODY_LIMIT: '65536' },
    routes: [
      defineRoute({ prefix: '/chat', upstream: up.url, auth: false, websocket: true }),
      defineRoute({ prefix: '/small', upstream: up.url, auth: false, websocket: { maxMessageBytes: 1024 } })
    ]
  })
  const base = gw.url.replace('http:', 'ws:')

  const exact = await connected(`${base}/chat/room`)
  exact.send(Buffer.alloc(65536, 0x61))
  t.equal((await nextMessage(exact)).length, 65536, 'a message of exactly BODY_LIMIT bytes is relayed both ways')
  exact.close()

  const over = await connected(`${base}/chat/room`)
  const overClosed = closeCode(over)
  over.send(Buffer.alloc(65537, 0x61))
  t.equal(await overClosed, 1009, 'one byte over BODY_LIMIT: the client gets 1009')

  const small = await connected(`${base}/small/room`)
  const smallClosed = closeCode(small)
  small.send('x'.repeat(1025))
  t.equal(await smallClosed, 1009, 'the route\'s own maxMessageBytes')
  t.equal(up.messages.length, 1, 'only the message within the limit reached the upstream')

  const down = await connected(`${base}/small/room`)
  const upstreamSide = up.sockets.at(-1) as WebSocket
  const upstreamClosed = once(upstreamSide, 'close')
  let received = 0
  down.on('message', () => { received++ })
  const downClosed = closeCode(down)
  down.send('big:2048')
  t.equal(await downClosed, 1009, 'an upstream message over the limit closes the client with 1009')
  t.equal(received, 0, 'the client never got it')
  t.equal((await upstreamClosed)[0], 1009, 'the upstream connection is closed with 1009 too')
})

t.test('an oversized message is refused while it streams: the gateway does not grow by the message size', async (t) => {
  const up = await wsUpstream(t)
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/chat', upstream: up.url, auth: false, websocket: { maxMessageBytes: 1024 * 1024 } })] })
  const total = 48 * 1024 * 1024

  // One frame declaring 48 MiB: refused from its header.
  const single = await rawWebSocket(gw.port, '/chat/one')
  single.socket.write(frameHeader(true, 0x2, total))
  t.equal(await awaitCloseFrame(single), 1009, 'a frame declaring more than the limit: close 1009')
  await answerClose(single.socket)

  // One message of 48 MiB in 16 KiB fragments, each small: refused once the total passes 1 MiB.
  const fragmented = await rawWebSocket(gw.port, '/chat/many')
  const before = memory()
  let peak = before
  const sent = await sendFragmented(fragmented, total, 16 * 1024, () => { peak = Math.max(peak, memory()) })
  t.equal(await awaitCloseFrame(fragmented), 1009, 'a fragmented message past the limit: close 1009')
  await answerClose(fragmented.socket)
  t.ok(sent < total, `the gateway stopped reading (${sent} of ${total} bytes written)`)
  const growth = peak - before
  t.ok(growth < 16 * 1024 * 1024, `heap + buffers grew by ${(growth / 1048576).toFixed(1)} MiB, far below the 48 MiB message`)
  t.equal(up.messages.length, 0, 'the upstream never got the message')
})

t.test('closing the gateway closes open WebSocket connections with 1001 on both sides', async (t) => {
  const up = await wsUpstream(t)
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/chat', upstream: up.url, auth: false, websocket: true })] })
  const ws = await connected(`${gw.url.replace('http:', 'ws:')}/chat/room`)
  ws.send('hi')
  t.equal(await nextMessage(ws), 'echo:hi')
  const closed = closeCode(ws)
  await gw.app.close()
  t.equal(await closed, 1001, 'the client is told the gateway is going away')
  t.strictSame(up.closes, [1001], 'and so is the upstream')
})

t.test('a WebSocket connection holds one of the route\'s maxInFlight slots while it is open, and frees it on close', async (t) => {
  const up = await wsUpstream(t)
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/chat', upstream: up.url, auth: false, maxInFlight: 1, websocket: true })] })
  const url = `${gw.url.replace('http:', 'ws:')}/chat/room`
  for (let i = 0; i < 3; i++) {
    const ws = await connected(url)
    const busy = await refusal(url)
    t.equal(busy.status, 503, 'the slot is taken while the connection is open')
    const closed = closeCode(ws)
    ws.close()
    await closed
    await once(up.sockets[i] as WebSocket, 'close')
  }
  const last = await connected(url)
  last.close()
  t.equal(up.handshakes.length, 4, 'every closed connection freed its slot')
})

t.test('wss: the same proxying on a TLS port, with and without HTTP/2 enabled (upgrades are HTTP/1.1)', async (t) => {
  const up = await wsUpstream(t)
  const cert = makeCert()
  for (const http2 of ['true', 'false']) {
    const gw = await startGateway(t, {
      env: { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: http2 },
      routes: [defineRoute({ prefix: '/chat', upstream: up.url, auth: false, websocket: { allowedOrigins: ['https://app.example'] } })]
    })
    const url = `wss://localhost:${gw.port}/chat/room`
    const refused = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(url, { ca: cert.cert, headers: { origin: 'https://evil.example' } })
      ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0) })
      ws.on('open', () => { reject(new Error('switched')) })
    })
    t.equal(refused, 403, `HTTP2=${http2}: foreign origin refused`)
    const ws = new WebSocket(url, { ca: cert.cert, headers: { origin: 'https://app.example' } })
    await once(ws, 'open')
    ws.send('hi')
    t.equal(await nextMessage(ws), 'echo:hi', `HTTP2=${http2}: proxied`)
    ws.close()
  }
  t.equal(up.handshakes.length, 2)
  t.equal(up.handshakes[0]?.headers['x-forwarded-proto'], 'https')
})
