/**
 * WebSocket from browsers: the bearer token as a subprotocol offer, the Origin allow-list, and
 * per-connection message rate and idle limits, over TCP with the `ws` client.
 */
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { createSigner } from 'fast-jwt'
import { defineRoute } from 'portcullis'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait-for.js'
import { wsUpstream, type WsUpstream } from '../helpers/ws-upstream.js'

const SECRET = 'e2e-ws-secret-0123456789-abcdefghijklmnopqrstuvwxyz'
const ORIGIN = 'https://app.example.com'
const sign = createSigner({ key: SECRET, algorithm: 'HS256' })
const token = (): string => sign({ sub: 'browser-user', exp: Math.floor(Date.now() / 1000) + 300 })

interface Opened { ws: WebSocket, protocol: string, status: number, headers: Record<string, unknown> }

async function open (url: string, protocols: string[], headers: Record<string, string>): Promise<Opened> {
  return await new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers })
    ws.once('upgrade', (res) => {
      ws.once('open', () => { resolve({ ws, protocol: ws.protocol, status: 101, headers: res.headers }) })
    })
    ws.once('unexpected-response', (_req, res) => {
      res.resume()
      resolve({ ws, protocol: '', status: res.statusCode ?? 0, headers: res.headers })
    })
    ws.once('error', reject)
  })
}

async function closed (ws: WebSocket): Promise<{ code: number, reason: string }> {
  return await new Promise((resolve) => { ws.once('close', (code, reason) => { resolve({ code, reason: reason.toString() }) }) })
}

async function gateway (t: Test, up: WsUpstream, websocket: Record<string, unknown>): Promise<{ gw: TestGateway, url: string }> {
  const gw = await startGateway(t, {
    env: { JWT_SECRET: SECRET },
    routes: [defineRoute({ prefix: '/live', upstream: up.url, websocket })]
  })
  return { gw, url: `${gw.url.replace('http:', 'ws:')}/live/feed` }
}

t.test('bearerProtocol: the token in a subprotocol offer authenticates; it is never forwarded or echoed', async (t) => {
  const up = await wsUpstream(t)
  const { gw, url } = await gateway(t, up, { bearerProtocol: true, allowedOrigins: [ORIGIN] })
  const jwt = token()
  const ok = await open(url, ['chat', `portcullis.bearer.${jwt}`], { origin: ORIGIN })
  t.equal(ok.status, 101)
  t.equal(ok.protocol, 'chat', 'the real subprotocol is chosen')
  t.notMatch(String(ok.headers['sec-websocket-protocol']), /bearer/, 'the 101 never echoes the token')
  ok.ws.send('hi')
  const [reply] = await new Promise<[string]>((resolve) => { ok.ws.once('message', (m) => { resolve([m.toString()]) }) })
  t.equal(reply, 'echo:hi')
  const seen = up.upgrades[0]
  t.equal(seen?.headers['sec-websocket-protocol'], 'chat', 'only the real offer goes upstream')
  t.equal(seen?.headers.authorization, undefined)
  t.equal(seen?.headers['x-consumer-id'], 'browser-user', 'the caller is the token\'s subject')
  ok.ws.close()
  t.notOk(gw.logText().includes(jwt), 'the token is not logged')

  // Refusals: none reaches the upstream.
  const before = up.upgrades.length
  t.equal((await open(url, ['chat'], { origin: ORIGIN })).status, 401, 'no token')
  t.equal((await open(url, ['chat', 'portcullis.bearer.not.a.jwt'], { origin: ORIGIN })).status, 401, 'bad token')
  t.equal((await open(url, ['chat', `portcullis.bearer.${jwt}`], { origin: 'https://evil.example' })).status, 403, 'another origin')
  t.equal((await open(url, ['chat', `portcullis.bearer.${jwt}`, `portcullis.bearer.${token()}x`], { origin: ORIGIN })).status, 400, 'two token offers')
  t.equal((await open(`${url}?access_token=${jwt}`, ['chat'], { origin: ORIGIN })).status, 401, 'a token in the query is refused')
  t.equal((await open(url, ['chat', `portcullis.bearer.${jwt}`], { origin: ORIGIN, authorization: `Bearer ${jwt}` })).status, 401, 'two credentials')
  t.equal(up.upgrades.length, before, 'the upstream saw none of them')
})

t.test('bearerProtocol needs an origin list and authentication', async (t) => {
  t.throws(() => defineRoute({ prefix: '/l', upstream: 'http://127.0.0.1:1', websocket: { bearerProtocol: true } }), /needs websocket\.allowedOrigins/)
  t.throws(() => defineRoute({ prefix: '/l', upstream: 'http://127.0.0.1:1', auth: false, websocket: { bearerProtocol: true, allowedOrigins: [ORIGIN] } }), /needs authentication/)
})

t.test('without bearerProtocol a token offer is not a credential and never goes upstream', async (t) => {
  const up = await wsUpstream(t)
  const gw = await startGateway(t, { env: { JWT_SECRET: SECRET }, routes: [defineRoute({ prefix: '/live', upstream: up.url, auth: false, websocket: true })] })
  const ok = await open(`${gw.url.replace('http:', 'ws:')}/live/x`, ['chat', `portcullis.bearer.${token()}`], {})
  t.equal(ok.status, 101)
  t.equal(up.upgrades[0]?.headers['sec-websocket-protocol'], 'chat')
  t.equal(up.upgrades[0]?.headers['x-consumer-id'], undefined)
  ok.ws.close()
})

t.test('maxMessagesPerSecond: the message past the budget is dropped and the client closed with 1008', async (t) => {
  const up = await wsUpstream(t, { silent: true })
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/live', upstream: up.url, auth: false, websocket: { maxMessagesPerSecond: 3 } })] })
  const c = await open(`${gw.url.replace('http:', 'ws:')}/live/x`, ['chat'], {})
  const done = closed(c.ws)
  for (let i = 0; i < 10; i++) c.ws.send(`m${i}`)
  const { code } = await done
  t.equal(code, 1008)
  await waitFor(() => up.closes.length === 1, { message: 'upstream closed' })
  t.ok(up.received.length <= 3, `at most 3 messages relayed (got ${up.received.length})`)
  t.strictSame(up.received, ['m0', 'm1', 'm2'].slice(0, up.received.length))
})

t.test('idleTimeoutMs: no message either way closes both sides with 1001', async (t) => {
  const up = await wsUpstream(t)
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/live', upstream: up.url, auth: false, websocket: { idleTimeoutMs: 300 } })] })
  const c = await open(`${gw.url.replace('http:', 'ws:')}/live/x`, ['chat'], {})
  const done = closed(c.ws)
  let echoes = 0
  c.ws.on('message', () => { echoes++ })
  c.ws.send('a')
  await waitFor(() => echoes === 1)
  const { code } = await done
  t.equal(code, 1001)
  await waitFor(() => up.closes.length === 1)
  t.equal(up.closes[0], 1001)
  t.equal(echoes, 1)
})
