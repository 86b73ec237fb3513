import t, { type Test } from 'tap'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import WebSocket, { WebSocketServer } from 'ws'
import { defineRoute } from 'portcullis'
import { startGateway } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'
import { rawRequest } from '../helpers/raw-http.js'

async function wsUpstream (t: Test): Promise<{ url: string, upgrades: IncomingMessage[] }> {
  const upgrades: IncomingMessage[] = []
  const server = createServer((_req, res) => { res.end('http') })
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
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, upgrades }
}

async function exchange (url: string, headers: Record<string, string> = {}): Promise<string> {
  return await new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    ws.on('open', () => { ws.send('hi') })
    ws.on('message', (m) => { resolve(m.toString()); ws.close() })
    ws.on('unexpected-response', (_req, res) => { reject(new Error(`status ${res.statusCode ?? 0}`)) })
    ws.on('error', reject)
  })
}

t.test('WebSocket upgrades are proxied inside an opted-in prefix, with gateway-owned headers', async (t) => {
  const up = await wsUpstream(t)
  const http = await startUpstream(t)
  const gw = await startGateway(t, {
    routes: [
      defineRoute({ prefix: '/chat', upstream: up.url, auth: false, websocket: true }),
      defineRoute({ prefix: '/plain', upstream: http.url, auth: false })
    ]
  })
  const wsUrl = gw.url.replace('http:', 'ws:')
  t.equal(await exchange(`${wsUrl}/chat/room1`, { 'x-consumer-id': 'admin', 'x-api-key': 'secret-key-aaaaaaaaaaaa' }), 'echo:hi')
  const seen = up.upgrades[0]
  t.equal(seen?.url, '/room1')
  t.equal(seen?.headers['x-consumer-id'], undefined, 'client identity header not forwarded')
  t.equal(seen?.headers['x-api-key'], undefined, 'API key not forwarded')
  t.equal(seen?.headers['x-forwarded-for'], '127.0.0.1')

  await t.rejects(exchange(`${wsUrl}/plain/x`), /status 400/, 'no upgrade on a route without websocket')
  await t.rejects(exchange(`${wsUrl}/chatroom`), /status 40[04]/, 'outside the prefix')
  t.equal(http.requests.length, 0)
  t.equal(up.upgrades.length, 1)

  const bad = await rawRequest(gw.port, 'GET /chat/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n')
  t.not(bad.status, 101, 'a malformed handshake never switches protocols')
})

t.test('an unauthenticated upgrade gets 401, never 101; an authenticated one is proxied with its identity', async (t) => {
  const up = await wsUpstream(t)
  const key = 'ws-client-key-0123456789'
  const gw = await startGateway(t, {
    env: { API_KEYS: `chat-client:${key}` },
    routes: [defineRoute({ prefix: '/chat', upstream: up.url, websocket: true })]
  })
  const wsUrl = gw.url.replace('http:', 'ws:')
  await t.rejects(exchange(`${wsUrl}/chat/room`), /status 401/)
  await t.rejects(exchange(`${wsUrl}/chat/room`, { 'x-api-key': 'wrong-key-0123456789' }), /status 401/)
  const raw = await rawRequest(gw.port, 'GET /chat/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
  t.equal(raw.status, 401)
  t.equal(up.upgrades.length, 0, 'upstream never saw an unauthenticated upgrade')
  t.equal(await exchange(`${wsUrl}/chat/room`, { 'x-api-key': key }), 'echo:hi')
  t.equal(up.upgrades[0]?.headers['x-consumer-id'], 'chat-client')
  t.equal(up.upgrades[0]?.headers['x-api-key'], undefined)
})
