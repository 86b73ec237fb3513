/**
 * Credential framing over real TCP (Node's HTTP parser, not inject): duplicate Authorization or
 * x-api-key lines, tokens in the query, oversized tokens, and spoofed identity headers. The
 * chain is gateway-auth + the proxy runtime + defineRoute() in front of a recording upstream;
 * every rejection proves the upstream saw nothing.
 */
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { createSigner } from 'fast-jwt'
import { defineRoute } from 'portcullis'
import { gatewayErrorHandler } from '../../src/errors.js'
import { authPlugin } from '../../plugins/auth/index.js'
import { proxyPlugin } from '../../plugins/proxy/index.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { rawRequest, type RawResponse } from '../helpers/raw-http.js'

const SECRET = 'e2e-secret-0123456789-abcdefghijklmnopqrstuvwxyz'
const API_KEY = 'e2e-key-0123456789abcdefgh'
const sign = createSigner({ key: SECRET, algorithm: 'HS256' })
const token = (extra: Record<string, unknown> = {}): string => sign({ sub: 'user-7', scope: 'read', exp: Math.floor(Date.now() / 1000) + 300, ...extra })

async function startChain (t: Test): Promise<{ port: number, upstream: Upstream }> {
  const upstream = await startUpstream(t)
  const app = Fastify({ logger: false })
  app.setErrorHandler(gatewayErrorHandler)
  await app.register(authPlugin, { jwtSecret: SECRET, apiKeys: [{ consumer: 'partner-a', key: API_KEY }] })
  await app.register(proxyPlugin, {})
  await app.register(defineRoute({ prefix: '/svc', upstream: upstream.url, retries: 0 }))
  await app.register(defineRoute({ prefix: '/open', upstream: upstream.url, auth: false, retries: 0 }))
  t.teardown(async () => { await app.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const addr = app.server.address()
  return { port: typeof addr === 'object' && addr !== null ? addr.port : 0, upstream }
}

async function get (port: number, path: string, headerLines: string[]): Promise<RawResponse> {
  return await rawRequest(port, [`GET ${path} HTTP/1.1`, 'Host: gw.test', 'Connection: close', ...headerLines, '', ''].join('\r\n'))
}

function assert401 (t: Test, res: RawResponse, msg: string): void {
  t.equal(res.status, 401, `${msg}: 401`)
  t.strictSame(JSON.parse(res.body), { statusCode: 401, code: 'GW_AUTH_UNAUTHORIZED', error: 'Unauthorized', message: 'Unauthorized' }, `${msg}: generic body`)
  t.match(res.headers['www-authenticate'], /^Bearer realm="portcullis"/, `${msg}: challenge`)
}

t.test('duplicate or ambiguous credentials on the wire answer 401 and never reach the upstream', async (t) => {
  const { port, upstream } = await startChain(t)
  const good = token()
  const ok = await get(port, '/svc/a', [`Authorization: Bearer ${good}`])
  t.equal(ok.status, 200, 'a single valid token passes')
  t.equal(upstream.requests.length, 1)
  const cases: Array<[string, string, string[]]> = [
    ['two Authorization lines, both valid', '/svc/a', [`Authorization: Bearer ${good}`, `Authorization: Bearer ${good}`]],
    ['valid line then a bogus one', '/svc/a', [`Authorization: Bearer ${good}`, 'Authorization: Bearer x.y.z']],
    ['bogus line then a valid one', '/svc/a', ['Authorization: Basic eDp5', `Authorization: Bearer ${good}`]],
    ['mixed-case duplicate names', '/svc/a', [`authorization: Bearer ${good}`, `AUTHORIZATION: Bearer ${good}`]],
    ['token in the query', `/svc/a?access_token=${good}`, []],
    ['token in the query and the header', `/svc/a?access_token=${good}`, [`Authorization: Bearer ${good}`]],
    ['oversized token', '/svc/a', [`Authorization: Bearer ${good}.${'A'.repeat(9000)}`]],
    ['two x-api-key lines', '/svc/a', [`x-api-key: ${API_KEY}`, `x-api-key: ${API_KEY}`]],
    ['x-api-key line plus an empty one', '/svc/a', [`x-api-key: ${API_KEY}`, 'x-api-key:']],
    ['comma-joined keys', '/svc/a', [`x-api-key: ${API_KEY},${API_KEY}`]],
    ['empty x-api-key', '/svc/a', ['x-api-key: ']]
  ]
  for (const [name, path, lines] of cases) assert401(t, await get(port, path, lines), name)
  t.equal(upstream.requests.length, 1, 'no rejected request reached the upstream')
})

t.test('identity headers: the gateway sets x-consumer-id; client-sent ones never pass', async (t) => {
  const { port, upstream } = await startChain(t)
  const spoof = ['X-Consumer-Id: admin', 'x-consumer-scopes: everything']
  t.equal((await get(port, '/svc/j', [`Authorization: Bearer ${token()}`, ...spoof])).status, 200)
  t.equal((await get(port, '/svc/k', [`x-api-key: ${API_KEY}`, ...spoof])).status, 200)
  t.equal((await get(port, '/open/p', spoof)).status, 200)
  const [viaJwt, viaKey, open] = upstream.requests
  t.equal(viaJwt?.headers['x-consumer-id'], 'user-7')
  t.equal(viaKey?.headers['x-consumer-id'], 'partner-a')
  t.equal(viaKey?.headers['x-api-key'], undefined, 'the API key is not forwarded')
  t.equal(open?.headers['x-consumer-id'], undefined, 'public route: spoofed identity stripped')
  t.equal(open?.headers['x-consumer-scopes'], undefined)
  const crlf = await get(port, '/svc/j', [`Authorization: Bearer ${token({ sub: 'a\r\nx-consumer-id: admin' })}`])
  assert401(t, crlf, 'sub with CRLF')
  t.equal(upstream.requests.length, 3, 'the unsafe subject never reached the upstream')
})
