import t from 'tap'
import { request } from 'undici'
import { createSigner } from 'fast-jwt'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { defineRoute, loadConfig, type GatewayConfig } from 'portcullis'
import { rawUpstream, startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait-for.js'
import { authPlugin } from '../../plugins/auth/index.js'
import { routeRateLimitPlugin } from '../../plugins/rate-limit/index.js'
import { securityHeadersPlugin } from '../../plugins/security-headers/index.js'
import { corsPlugin } from '../../plugins/cors/index.js'
import { tracingPlugin } from '../../plugins/tracing/index.js'

/** The chain's plugins on the real gateway, unless src/app.ts registers them already. */
function chainPlugins (config: GatewayConfig): FastifyPluginAsync {
  return fp(async function testChainPlugins (fastify) {
    if (!fastify.hasPlugin('portcullis-auth')) await fastify.register(authPlugin, config.auth)
    if (!fastify.hasPlugin('portcullis-route-rate-limit')) await fastify.register(routeRateLimitPlugin, {})
    if (!fastify.hasPlugin('portcullis-security-headers')) await fastify.register(securityHeadersPlugin, { tls: config.tls !== undefined })
    if (!fastify.hasPlugin('portcullis-cors')) await fastify.register(corsPlugin)
    if (!fastify.hasPlugin('portcullis-tracing')) await fastify.register(tracingPlugin)
  }, { name: 'test-chain-plugins' })
}

const SECRET = 'redaction-test-secret-0123456789abcdef-XYZ'
const VALID_KEY = 'apikey-canary-valid-3c9d1e7f55'
const sign = createSigner({ key: SECRET, algorithm: 'HS256', expiresIn: 60_000 })

/** Every secret a client can send; none may appear in any log line. */
const CANARY = {
  validJwt: sign({ sub: 'canary-user', scope: 'read' }),
  forgedJwt: createSigner({ key: 'some-other-secret-0123456789abcdef-000', algorithm: 'HS256' })({ sub: 'forged-canary' }),
  validApiKey: VALID_KEY,
  wrongApiKey: 'apikey-canary-wrong-a81f0b22c4',
  cookie: 'cookie-canary-55aa11bb22',
  proxyAuth: 'cHJveHktY2FuYXJ5OnB3LTc3ODg=',
  queryApiKey: 'querykey-canary-9911aa',
  queryAccessToken: 'querytoken-canary-8822bb',
  upstreamSetCookie: 'setcookie-canary-4455cc'
}

t.test('canary secrets never reach a log line at trace level, on success and on every failure path', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    if (req.url?.startsWith('/reset') === true) { req.socket.destroy(); return }
    res.writeHead(200, { 'content-type': 'text/plain', 'set-cookie': `sid=${CANARY.upstreamSetCookie}; HttpOnly` })
    res.end('ok')
  })
  const silent = (await rawUpstream(t)).url
  const env = { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'trace', JWT_SECRET: SECRET, API_KEYS: `canary:${VALID_KEY}`, BODY_LIMIT: '100' }
  const boom: FastifyPluginAsync = async (fastify) => {
    fastify.get('/boom', async () => { throw new Error('forced failure') })
    fastify.route({ method: ['GET', 'OPTIONS'], url: '/corsy', config: { auth: {}, cors: { origins: ['https://app.example'] } }, handler: async () => 'corsy' })
  }
  const gw = await startGateway(t, {
    env,
    logLevel: 'trace',
    routes: [
      chainPlugins(loadConfig(env)),
      defineRoute({ prefix: '/svc', upstream: up.url, rateLimit: false }),
      defineRoute({ prefix: '/pub', upstream: up.url, auth: false, retries: 0, rateLimit: false }),
      defineRoute({ prefix: '/limited', upstream: up.url, rateLimit: { max: 1, timeWindow: '1 minute' } }),
      defineRoute({ prefix: '/slow', upstream: silent, auth: false, timeout: 300, rateLimit: false }),
      boom
    ]
  })
  t.ok(gw.app.hasPlugin('portcullis-auth'), 'authentication is in the chain')
  t.ok(gw.app.hasPlugin('portcullis-route-rate-limit'), 'route rate limiting is in the chain')

  const secrets = {
    authorization: `Bearer ${CANARY.validJwt}`,
    'x-api-key': CANARY.validApiKey,
    cookie: `session=${CANARY.cookie}; theme=dark`,
    'proxy-authorization': `Basic ${CANARY.proxyAuth}`
  }
  const forged = { ...secrets, authorization: `Bearer ${CANARY.forgedJwt}`, 'x-api-key': CANARY.wrongApiKey }
  const q = `?api_key=${CANARY.queryApiKey}&access_token=${CANARY.queryAccessToken}&page=1`
  // The auth plugin refuses credentials in the query (401 token_in_query), so query canaries ride
  // on public routes and on the 401 paths; authenticated successes carry the header canaries.
  const calls: Array<{ name: string, status: number, path: string, method?: string, headers: Record<string, string>, body?: string }> = [
    { name: 'public success', status: 200, path: `/pub/ok${q}`, headers: secrets },
    { name: 'authenticated success', status: 200, path: '/svc/ok?page=1', headers: secrets },
    { name: 'unauthenticated (forged JWT, wrong key)', status: 401, path: `/svc/ok${q}`, headers: forged },
    { name: 'credentials in the query', status: 401, path: `/svc/ok${q}`, headers: secrets },
    { name: 'body too large', status: 413, path: `/pub/upload${q}`, method: 'POST', headers: { ...secrets, 'content-type': 'text/plain' }, body: 'x'.repeat(500) },
    { name: 'first call within the limit', status: 200, path: '/limited/a', headers: secrets },
    { name: 'rate limited', status: 429, path: '/limited/a', headers: secrets },
    { name: 'upstream reset', status: 502, path: `/pub/reset${q}`, headers: secrets },
    { name: 'upstream timeout', status: 504, path: `/slow/x${q}`, headers: secrets },
    { name: 'forced 500', status: 500, path: `/boom${q}`, headers: secrets },
    { name: 'unrouted', status: 404, path: `/nowhere${q}`, headers: secrets },
    { name: 'CORS preflight refused', status: 403, path: `/corsy${q}`, method: 'OPTIONS', headers: { ...secrets, origin: 'https://evil.example', 'access-control-request-method': 'GET' } }
  ]
  for (const c of calls) {
    const res = await request(`${gw.url}${c.path}`, { method: (c.method ?? 'GET') as 'GET', headers: c.headers, ...(c.body !== undefined ? { body: c.body } : {}) })
    await res.body.text()
    t.equal(res.statusCode, c.status, c.name)
  }
  await waitFor(() => gw.logs.filter((l) => l.msg === 'request completed').length === calls.length, { message: 'an access line per call' })
  t.strictSame(up.requests.map((r) => r.url.split('?')[0]), ['/ok', '/ok', '/a', '/reset'], 'rejected calls never reached the upstream')

  const text = gw.logText()
  const completed = gw.logs.filter((l) => l.msg === 'request completed').map((l) => l.status)
  t.strictSame([...completed].sort(), [200, 200, 200, 401, 401, 403, 404, 413, 429, 500, 502, 504].sort(), 'one access line per request: the logs really were written')
  t.ok(gw.logs.some((l) => l.level === 10 || l.level === 20), 'trace/debug lines were written')
  for (const [name, value] of Object.entries(CANARY)) {
    t.notOk(text.includes(value), `${name} never logged`)
    // Also a recognisable fragment, in case a serializer cut or re-encoded the value.
    t.notOk(text.includes(value.slice(-12)), `${name} (tail) never logged`)
  }
  t.ok(text.includes('api_key=[REDACTED]') && text.includes('access_token=[REDACTED]'), 'query secrets are masked, not silently dropped')
})
