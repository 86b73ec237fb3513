/**
 * Mutual TLS, both ways, over real TLS with certificates made here: client certificates as the
 * `mtls` auth strategy (a CA, a CRL, HTTP/1.1 and HTTP/2), and the client certificate a route
 * presents to an upstream that requires one (`upstreamTls`).
 */
import t, { type Test } from 'tap'
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { once } from 'node:events'
import { Agent, request } from 'undici'
import WebSocket, { WebSocketServer } from 'ws'
import { defineRoute, loadConfig, checkConfig, type RouteDefinition } from 'portcullis'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { makeCa, makeCert, type TestCert } from '../helpers/certs.js'
import Fastify from 'fastify'
import { authPlugin } from '../../plugins/auth/index.js'
import { certificateConsumerId } from '../../plugins/auth/mtls.js'

const ca = makeCa('Client CA')
const otherCa = makeCa('Other CA')
const server = ca.issue('localhost', { server: true, san: 'DNS:localhost,IP:127.0.0.1' })
const alice = ca.issue('alice', { san: 'DNS:alice.svc.example,email:alice@example.com' })
const stranger = otherCa.issue('alice')
const revoked = ca.issue('eve')
const crlFile = ca.revoke(revoked)
const spaced = ca.issue('Alice Smith')

const API_KEY = 'bob-key-0123456789abcdef0123'
const JWT_SECRET = 'mtls-test-secret-0123456789abcdef0123456789'

function tlsEnv (extra: Record<string, string> = {}): Record<string, string> {
  return {
    TLS_CERT_FILE: server.certFile,
    TLS_KEY_FILE: server.keyFile,
    TLS_CLIENT_CA_FILE: ca.certFile,
    TLS_CLIENT_CRL_FILE: crlFile,
    API_KEYS: `bob:${API_KEY}`,
    JWT_SECRET,
    LOG_LEVEL: 'warn',
    ...extra
  }
}

function routes (upstream: string): ReturnType<typeof defineRoute>[] {
  return [
    defineRoute({ prefix: '/certs', upstream, auth: { strategies: ['mtls'] } }),
    defineRoute({ prefix: '/keys', upstream, auth: { strategies: ['apiKey'] } }),
    defineRoute({ prefix: '/open', upstream, auth: false }),
    defineRoute({ prefix: '/scoped', upstream, auth: { strategies: ['jwt', 'mtls'], scopes: ['orders:read'] } }),
    defineRoute({ prefix: '/both', upstream, auth: { strategies: ['apiKey', 'mtls'], relation: 'all' } })
  ]
}

/** An undici Agent trusting the gateway's CA, presenting `cert` when given. */
function client (t: Test, cert?: TestCert): Agent {
  const agent = new Agent({ connect: { ca: ca.cert, servername: 'localhost', ...(cert !== undefined ? { cert: cert.cert, key: cert.key } : {}) } })
  t.teardown(async () => { await agent.close() })
  return agent
}

async function call (gw: TestGateway, path: string, agent: Agent, headers: Record<string, string> = {}): Promise<{ status: number, headers: Record<string, unknown>, body: Record<string, unknown> }> {
  const res = await request(`https://localhost:${gw.port}${path}`, { dispatcher: agent, headers })
  const body = await res.body.json() as Record<string, unknown>
  return { status: res.statusCode, headers: res.headers, body }
}

function upstreamHeaders (up: Upstream): Record<string, unknown> {
  return (up.requests.at(-1) as Upstream['requests'][number]).headers
}

t.test('a verified client certificate names the consumer; everything else gets 401 and reaches nothing', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, { env: tlsEnv(), routes: routes(up.url) })

  const ok = await call(gw, '/certs/a', client(t, alice), { 'x-consumer-id': 'admin', 'x-ssl-client-s-dn': 'CN=admin', 'x-client-cert': 'forged' })
  t.equal(ok.status, 200)
  t.equal(up.requests.length, 1)
  t.equal(upstreamHeaders(up)['x-consumer-id'], 'alice', 'the certificate CN, not the client\'s header')
  t.equal(upstreamHeaders(up)['x-consumer-strategy'], 'mtls')
  t.equal(upstreamHeaders(up)['x-client-cert'], undefined, 'no certificate header goes upstream (the client\'s is dropped)')
  t.equal(upstreamHeaders(up)['x-ssl-client-s-dn'], undefined)

  for (const [name, cert] of [['no certificate', undefined], ['a certificate of another CA', stranger], ['a revoked certificate', revoked]] as const) {
    const res = await call(gw, '/certs/a', client(t, cert))
    t.equal(res.status, 401, name)
    t.equal(res.body.code, 'GW_AUTH_UNAUTHORIZED', name)
    t.equal(res.headers['www-authenticate'], 'ClientCert realm="portcullis"', `${name}: no Bearer challenge`)
  }
  t.equal(up.requests.length, 1, 'the upstream received nothing from the refused requests')

  const open = await call(gw, '/open/x', client(t))
  t.equal(open.status, 200, 'a public route answers without a certificate')
  const keyed = await call(gw, '/keys/x', client(t), { 'x-api-key': API_KEY })
  t.equal(keyed.status, 200, 'a route without mtls takes its API key without a certificate')
  t.equal(upstreamHeaders(up)['x-consumer-id'], 'bob')
  const strangerOnKeys = await call(gw, '/keys/x', client(t, stranger), { 'x-api-key': API_KEY })
  t.equal(strangerOnKeys.status, 200, 'a route without mtls ignores an unverified certificate')
  t.equal(up.requests.length, 4)
})

t.test('one connection, one verdict: requests on a kept-alive connection, and no TLS 1.2 renegotiation', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, { env: tlsEnv(), routes: routes(up.url) })
  // The certificate's verdict is read once per connection: many requests on one, each named.
  const agent = new Agent({ connections: 1, connect: { ca: ca.cert, servername: 'localhost', cert: alice.cert, key: alice.key } })
  t.teardown(async () => { await agent.close() })
  for (let i = 0; i < 5; i++) t.equal((await call(gw, `/certs/${i}`, agent)).status, 200)
  t.same(up.requests.map((r) => r.headers['x-consumer-id']), ['alice', 'alice', 'alice', 'alice', 'alice'])
  const refused = new Agent({ connections: 1, connect: { ca: ca.cert, servername: 'localhost', cert: stranger.cert, key: stranger.key } })
  t.teardown(async () => { await refused.close() })
  for (let i = 0; i < 3; i++) t.equal((await call(gw, '/certs/x', refused)).status, 401, 'an unverified certificate stays refused on its connection')
  t.equal(up.requests.length, 5)

  // TLS 1.2: a client-initiated renegotiation is refused (it would let a connection swap its
  // certificate after the handshake, and costs the server a full handshake each time).
  const { connect } = await import('node:tls')
  const socket = connect({ port: gw.port, host: '127.0.0.1', servername: 'localhost', ca: ca.cert, cert: alice.cert, key: alice.key, maxVersion: 'TLSv1.2' })
  t.teardown(() => { socket.destroy() })
  await once(socket, 'secureConnect')
  t.equal(socket.getProtocol(), 'TLSv1.2')
  const outcome = await new Promise<string>((resolve) => {
    socket.once('error', (err: Error) => { resolve(`error: ${err.message}`) })
    socket.once('close', () => { resolve('closed') })
    const asked = socket.renegotiate({ rejectUnauthorized: false }, (err) => { resolve(err === null ? 'renegotiated' : `refused: ${err.message}`) })
    if (!asked) resolve('not sent')
  })
  t.not(outcome, 'renegotiated', `the server refused it (${outcome})`)
})

t.test('certificates carry no scopes; relation all needs the certificate and the other credential', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, { env: tlsEnv(), routes: routes(up.url) })

  const scoped = await call(gw, '/scoped/x', client(t, alice))
  t.equal(scoped.status, 403, 'a certificate alone cannot satisfy a scoped route')
  t.equal(scoped.body.code, 'GW_AUTH_FORBIDDEN')
  t.equal(up.requests.length, 0)

  const keyOnly = await call(gw, '/both/x', client(t), { 'x-api-key': API_KEY })
  t.equal(keyOnly.status, 401, 'relation all: the API key without a certificate')
  const certOnly = await call(gw, '/both/x', client(t, alice))
  t.equal(certOnly.status, 401, 'relation all: the certificate without the API key')
  const revokedBoth = await call(gw, '/both/x', client(t, revoked), { 'x-api-key': API_KEY })
  t.equal(revokedBoth.status, 401, 'relation all: a revoked certificate fails whatever the key says')
  t.equal(up.requests.length, 0)
  const both = await call(gw, '/both/x', client(t, alice), { 'x-api-key': API_KEY })
  t.equal(both.status, 200)
  t.equal(upstreamHeaders(up)['x-consumer-id'], 'bob', 'the API key names the consumer when both pass')
})

t.test('the consumer field: a SAN entry, and values outside the consumer pattern refused', async (t) => {
  const up = await startUpstream(t)
  const byEmail = await startGateway(t, { env: tlsEnv({ TLS_CLIENT_CONSUMER_FIELD: 'san.email' }), routes: [defineRoute({ prefix: '/certs', upstream: up.url, auth: { strategies: ['mtls'] } })] })
  t.equal((await call(byEmail, '/certs/x', client(t, alice))).status, 200)
  t.equal(upstreamHeaders(up)['x-consumer-id'], 'alice@example.com')
  t.equal((await call(byEmail, '/certs/x', client(t, spaced))).status, 401, 'a certificate without an email SAN')

  const byCn = await startGateway(t, { env: tlsEnv(), routes: [defineRoute({ prefix: '/certs', upstream: up.url, auth: { strategies: ['mtls'] } })] })
  t.equal((await call(byCn, '/certs/x', client(t, spaced))).status, 401, '"Alice Smith" is not a consumer name')
  t.equal(up.requests.length, 1)
})

/** One HTTP/2 request: status and body. */
async function h2Get (session: ClientHttp2Session, path: string): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'GET', ':path': path })
    let status = 0
    let body = ''
    stream.on('response', (h) => { status = Number(h[':status']) })
    stream.on('data', (c: Buffer) => { body += c.toString() })
    stream.on('end', () => { resolve({ status, body }) })
    stream.on('error', reject)
    stream.end()
  })
}

t.test('HTTP/2: the session\'s client certificate authenticates every stream', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, { env: tlsEnv({ HTTP2: 'true' }), routes: routes(up.url) })
  const withCert = http2Connect(`https://localhost:${gw.port}`, { ca: ca.cert, cert: alice.cert, key: alice.key })
  t.teardown(() => { withCert.destroy() })
  const first = await h2Get(withCert, '/certs/one')
  const second = await h2Get(withCert, '/certs/two')
  t.equal(withCert.alpnProtocol, 'h2')
  t.same([first.status, second.status], [200, 200])
  t.equal(up.requests.length, 2)
  t.equal(upstreamHeaders(up)['x-consumer-id'], 'alice')

  const without = http2Connect(`https://localhost:${gw.port}`, { ca: ca.cert })
  t.teardown(() => { without.destroy() })
  const refused = await h2Get(without, '/certs/one')
  t.equal(refused.status, 401)
  t.equal((JSON.parse(refused.body) as { code: string }).code, 'GW_AUTH_UNAUTHORIZED')
  t.equal((await h2Get(without, '/open/x')).status, 200)
  t.equal(up.requests.length, 3)
})

t.test('TLS_CLIENT_CERT_MODE=require: the handshake itself refuses a client without a certificate', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, { env: tlsEnv({ TLS_CLIENT_CERT_MODE: 'require' }), routes: routes(up.url) })
  t.equal((await call(gw, '/certs/x', client(t, alice))).status, 200)
  await t.rejects(call(gw, '/open/x', client(t)), 'no HTTP answer without a certificate')
  await t.rejects(call(gw, '/open/x', client(t, stranger)), 'nor with one of another CA')
  t.equal(up.requests.length, 1)
})

t.test('the environment is checked at startup', async (t) => {
  const problems = (env: Record<string, string>): string[] => checkConfig(env).problems.map((p) => `${p.variable}: ${p.message}`)
  t.match(problems({ TLS_CLIENT_CA_FILE: ca.certFile }), ['TLS_CLIENT_CA_FILE: needs TLS_CERT_FILE and TLS_KEY_FILE (client certificates come with TLS)'])
  t.match(problems({ TLS_CLIENT_CRL_FILE: crlFile, TLS_CLIENT_CONSUMER_FIELD: 'san.dns' }), ['TLS_CLIENT_CRL_FILE: only with TLS_CLIENT_CA_FILE', 'TLS_CLIENT_CONSUMER_FIELD: only with TLS_CLIENT_CA_FILE'])
  t.match(problems(tlsEnv({ TLS_CLIENT_CA_FILE: '/nonexistent/ca.pem' })), ['TLS_CLIENT_CA_FILE: cannot be read'])
  t.match(problems(tlsEnv({ TLS_CLIENT_CA_FILE: server.keyFile })), ['TLS_CLIENT_CA_FILE: no PEM certificate in the file'])
  t.match(problems(tlsEnv({ TLS_CLIENT_CRL_FILE: ca.certFile })), [/^TLS_CLIENT_CRL_FILE: no PEM CRL/])
  t.match(problems(tlsEnv({ TLS_CLIENT_CONSUMER_FIELD: 'subject.O' })), [/^TLS_CLIENT_CONSUMER_FIELD: must be one of subject\.CN, san\.dns, san\.uri, san\.email/])
  t.match(problems(tlsEnv({ TLS_CLIENT_CERT_MODE: 'optional' })), [/^TLS_CLIENT_CERT_MODE: must be one of request, require/])

  const config = loadConfig(tlsEnv())
  t.equal(config.auth.mtlsConsumerField, 'subject.CN')
  t.equal(config.tls?.clientCertMode, 'request')
  const onlyCerts = loadConfig({ NODE_ENV: 'production', TLS_CERT_FILE: server.certFile, TLS_KEY_FILE: server.keyFile, TLS_CLIENT_CA_FILE: ca.certFile })
  t.same(onlyCerts.auth.apiKeys, [], 'client certificates are a credential source of their own in production')
  t.equal(loadConfig({}).auth.mtlsConsumerField, undefined)

  const up = await startUpstream(t)
  await t.rejects(startGateway(t, { env: { JWT_SECRET }, routes: [defineRoute({ prefix: '/certs', upstream: up.url, auth: { strategies: ['mtls'] } })] }), {
    code: 'GW_CONFIG_INVALID',
    problems: [/auth\.strategies: "mtls" is not configured on this gateway; set TLS_CLIENT_CA_FILE/]
  })
  await t.rejects(startGateway(t, { env: tlsEnv(), routes: [defineRoute({ prefix: '/certs', upstream: up.url, auth: { strategies: ['mtls'], scopes: ['a'] } })] }), {
    code: 'GW_CONFIG_INVALID',
    problems: ['auth.scopes: scopes come from JWTs, introspected tokens and API keys; add the "jwt", "introspection" or "apiKey" strategy']
  })
})

interface MtlsUpstream { readonly port: number, readonly peers: string[] }

/** An https upstream that completes handshakes only with a client certificate of `ca`; records each request's peer CN. */
async function startMtlsUpstream (t: Test, cert: TestCert): Promise<MtlsUpstream> {
  const peers: string[] = []
  const srv: HttpsServer = createHttpsServer({ cert: cert.cert, key: cert.key, ca: ca.cert, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    peers.push(String((req.socket as TLSSocket).getPeerCertificate().subject.CN))
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ url: req.url }))
  })
  await new Promise<void>((resolve) => { srv.listen(0, '127.0.0.1', resolve) })
  t.teardown(async () => {
    srv.closeAllConnections()
    await new Promise((resolve) => { srv.close(resolve) })
  })
  return { port: (srv.address() as AddressInfo).port, peers }
}

t.test('upstreamTls: the route presents its client certificate to an upstream that requires one', async (t) => {
  const up = await startMtlsUpstream(t, ca.issue('upstream', { server: true, san: 'DNS:localhost,IP:127.0.0.1' }))
  const named = await startMtlsUpstream(t, ca.issue('orders', { server: true, san: 'DNS:orders.internal' }))
  const gatewayClient = ca.issue('gateway')
  const target = `https://127.0.0.1:${up.port}`
  const tls = { certFile: gatewayClient.certFile, keyFile: gatewayClient.keyFile }
  const gw = await startGateway(t, {
    env: { JWT_SECRET, LOG_LEVEL: 'warn', UPSTREAM_CA_FILE: ca.certFile },
    routes: [
      defineRoute({ prefix: '/with', upstream: target, auth: false, upstreamTls: tls }),
      defineRoute({ prefix: '/without', upstream: target, auth: false, retries: 0 }),
      defineRoute({ prefix: '/stranger', upstream: target, auth: false, retries: 0, upstreamTls: { certFile: stranger.certFile, keyFile: stranger.keyFile } }),
      defineRoute({ prefix: '/named', upstream: `https://127.0.0.1:${named.port}`, auth: false, retries: 0, upstreamTls: { ...tls, caFile: ca.certFile, serverName: 'orders.internal' } }),
      defineRoute({ prefix: '/unnamed', upstream: `https://127.0.0.1:${named.port}`, auth: false, retries: 0, upstreamTls: tls })
    ]
  })
  const without = await request(`${gw.url}/without/orders`)
  await without.body.dump()
  t.equal(without.statusCode, 502, 'no client certificate: the upstream refuses the handshake')
  const strangerRes = await request(`${gw.url}/stranger/orders`)
  await strangerRes.body.dump()
  t.equal(strangerRes.statusCode, 502, 'a certificate the upstream does not trust')
  t.same(up.peers, [], 'the upstream received nothing without the route\'s certificate')

  const ok = await request(`${gw.url}/with/orders`)
  t.equal(ok.statusCode, 200)
  t.same(await ok.body.json(), { url: '/orders' })
  t.same(up.peers, ['gateway'], 'the upstream saw the route\'s certificate')

  const unnamed = await request(`${gw.url}/unnamed/orders`)
  await unnamed.body.dump()
  t.equal(unnamed.statusCode, 502, 'the upstream certificate does not name 127.0.0.1')
  const byName = await request(`${gw.url}/named/orders`)
  t.equal(byName.statusCode, 200, 'serverName: SNI and verification against orders.internal')
  await byName.body.dump()
  t.same(named.peers, ['gateway'])
})

t.test('upstreamTls: WebSocket connections of the route present the certificate too', async (t) => {
  const peers: string[] = []
  const srv = createHttpsServer({ ...(({ cert, key }) => ({ cert, key }))(ca.issue('ws-upstream', { server: true, san: 'IP:127.0.0.1' })), ca: ca.cert, requestCert: true, rejectUnauthorized: true })
  const wss = new WebSocketServer({ server: srv })
  wss.on('connection', (ws, req) => {
    peers.push(String((req.socket as TLSSocket).getPeerCertificate().subject.CN))
    ws.on('message', (m) => { ws.send(`echo:${String(m)}`) })
  })
  await new Promise<void>((resolve) => { srv.listen(0, '127.0.0.1', resolve) })
  t.teardown(async () => {
    for (const c of wss.clients) c.terminate()
    srv.closeAllConnections()
    await new Promise((resolve) => { srv.close(resolve) })
  })
  const gatewayClient = ca.issue('gateway')
  const target = `https://127.0.0.1:${(srv.address() as AddressInfo).port}`
  const gw = await startGateway(t, {
    env: { JWT_SECRET, LOG_LEVEL: 'warn', UPSTREAM_CA_FILE: ca.certFile },
    routes: [
      defineRoute({ prefix: '/ws', upstream: target, auth: false, websocket: true, upstreamTls: { certFile: gatewayClient.certFile, keyFile: gatewayClient.keyFile } }),
      defineRoute({ prefix: '/ws-plain', upstream: target, auth: false, websocket: true })
    ]
  })
  const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/ws/chat`)
  t.teardown(() => { ws.terminate() })
  await once(ws, 'open')
  ws.send('hi')
  const [reply] = await once(ws, 'message') as [Buffer]
  t.equal(String(reply), 'echo:hi')
  t.same(peers, ['gateway'])

  const refused = new WebSocket(`ws://127.0.0.1:${gw.port}/ws-plain/chat`)
  refused.on('error', () => {})
  t.teardown(() => { refused.terminate() })
  const [, res] = await once(refused, 'unexpected-response') as [unknown, { statusCode: number }]
  t.equal(res.statusCode, 502, 'without upstreamTls the upstream refuses the handshake')
  t.same(peers, ['gateway'])
})

t.test('upstreamTls options are read and checked when the route is defined', async (t) => {
  const good = ca.issue('gateway')
  const problemsOf = (options: RouteDefinition): string[] => {
    try {
      defineRoute(options)
    } catch (err) {
      t.equal((err as { code?: string }).code, 'GW_CONFIG_INVALID')
      t.match((err as Error).message, /test\/e2e\/mtls\.test\.ts/, 'the message names the route file')
      return (err as { problems: string[] }).problems
    }
    return []
  }
  const base = { prefix: '/x', upstream: 'https://orders.internal', auth: false } as const
  t.same(problemsOf({ ...base, upstreamTls: { certFile: '/nonexistent/c.pem', keyFile: good.keyFile } }), ['upstreamTls.certFile: cannot read "/nonexistent/c.pem" (ENOENT)'])
  t.same(problemsOf({ ...base, upstreamTls: { certFile: good.keyFile, keyFile: good.keyFile } }), [`upstreamTls.certFile: no PEM certificate in "${good.keyFile}"`])
  t.same(problemsOf({ ...base, upstreamTls: { certFile: good.certFile, keyFile: good.certFile } }), [`upstreamTls.keyFile: no PEM private key in "${good.certFile}"`])
  t.match(problemsOf({ ...base, upstreamTls: { certFile: good.certFile, keyFile: stranger.keyFile } }), [/^upstreamTls\.certFile, upstreamTls\.keyFile: .* not a usable certificate and private key pair/])
  t.same(problemsOf({ ...base, upstreamTls: { certFile: good.certFile, keyFile: good.keyFile, caFile: good.keyFile } }), [`upstreamTls.caFile: no PEM certificate in "${good.keyFile}"`])
  t.same(problemsOf({ ...base, upstream: 'http://orders.internal', upstreamTls: { certFile: good.certFile, keyFile: good.keyFile } }), ['upstreamTls: needs https:// upstreams (a client certificate is presented over TLS only)'])
  t.match(problemsOf({ ...base, upstreamTls: { certFile: good.certFile } } as unknown as RouteDefinition), [/upstreamTls/])
  t.same(problemsOf({ ...base, upstreamTls: { certFile: good.certFile, keyFile: good.keyFile, serverName: 'orders.internal' } }), [])
  t.ok(makeCert().cert.length > 0)
})

t.test('certificate fields: Node\'s subjectaltname string, quoted values, the first entry of a kind', async (t) => {
  const san = 'DNS:first.example, DNS:second.example, URI:spiffe://td/ns/a, email:"odd, name@example.com", email:ops@example.com'
  t.equal(certificateConsumerId({ subjectaltname: san }, 'san.dns'), 'first.example')
  t.equal(certificateConsumerId({ subjectaltname: san }, 'san.uri'), 'spiffe://td/ns/a', 'read, then refused by the consumer pattern')
  t.equal(certificateConsumerId({ subjectaltname: san }, 'san.email'), 'odd, name@example.com', 'a quoted value is unquoted (and then fails the pattern)')
  t.equal(certificateConsumerId({ subject: { CN: ['a', 'b'] } }, 'subject.CN'), undefined, 'several CNs: ambiguous')
  t.equal(certificateConsumerId({ subject: { CN: 'svc-a' } }, 'subject.CN'), 'svc-a')
  t.equal(certificateConsumerId({}, 'san.dns'), undefined)
})

t.test('the auth plugin alone: mtlsConsumerField switches the strategy on; no TLS socket, no certificate', async (t) => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(authPlugin, { mtlsConsumerField: 'san.dns' })
  app.get('/x', { config: { auth: { strategies: ['mtls'] } } }, async () => 'ok')
  await app.ready()
  t.same(app.portcullisAuth.strategies, ['mtls'])
  const res = await app.inject({ url: '/x' })
  t.equal(res.statusCode, 401)
  t.equal(res.headers['www-authenticate'], 'ClientCert realm="portcullis"')

  const bad = Fastify()
  t.teardown(async () => { await bad.close() })
  await t.rejects(async () => {
    await bad.register(authPlugin, { mtlsConsumerField: 'subject.O' as 'subject.CN' })
    await bad.ready()
  }, { code: 'GW_CONFIG_INVALID' })
})
