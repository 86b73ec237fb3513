/**
 * What an upstream's answer may carry to the client, over TCP: hop-by-hop headers (the ones its
 * own Connection names included) never pass and never take the gateway's headers with them;
 * redirects into the upstream's origin come back on the public prefix; and Max-Forwards on
 * OPTIONS/TRACE is honoured (RFC 9110 7.6.1, 7.6.2), on streamed and buffered routes alike.
 */
import t from 'tap'
import { request } from 'undici'
import { defineRoute } from 'portcullis'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'

const APP = 'https://app.example.com'

interface Script { readonly status: number, readonly headers: Record<string, string> }

/**
 * Answers held by the test, by name: the upstream answers `/.../<name>` with that status and
 * those headers (URLs stay out of the request, where the inspection would rightly flag them).
 */
const scripts = new Map<string, Script>()
let scriptCount = 0

function script (status: number, headers: Record<string, string>): string {
  const name = `s${++scriptCount}`
  scripts.set(name, { status, headers })
  return name
}

async function scriptedUpstream (t: Parameters<typeof startUpstream>[0]): Promise<Upstream> {
  return await startUpstream(t, (req, res) => {
    const name = (req.url ?? '/').split('?')[0]?.split('/').at(-1) ?? ''
    const answer = scripts.get(name) ?? { status: 200, headers: {} }
    // A Trailer field needs a chunked body.
    const framing: Record<string, string> = answer.headers.trailer === undefined ? { 'content-length': '2' } : {}
    res.writeHead(answer.status, { 'content-type': 'text/plain', ...framing, ...answer.headers })
    res.end('ok')
  })
}

async function gatewayFor (t: Parameters<typeof startUpstream>[0], ups: Upstream[]): Promise<TestGateway> {
  const targets = ups.map((u) => `${u.url}/base`)
  return await startGateway(t, {
    routes: [
      // streamed bodies (the shared proxy scope) and buffered bodies (a context of the route's own)
      defineRoute({ prefix: '/pub', upstream: targets.length === 1 ? targets[0] as string : targets, rewritePrefix: '/v1', auth: false, rateLimit: { max: 50, timeWindow: 60_000 }, cors: { origins: [APP] }, retries: 0 }),
      defineRoute({ prefix: '/buf', upstream: targets[0] as string, rewritePrefix: '/v1', auth: false, inspect: { mode: 'block', body: true }, retries: 0 })
    ]
  })
}

t.test('headers the upstream names in Connection, and every hop-by-hop header, stay out', async (t) => {
  const up = await scriptedUpstream(t)
  const gw = await gatewayFor(t, [up])
  for (const prefix of ['/pub', '/buf']) {
    const q = script(200, {
      connection: 'keep-alive, X-Secret-Hop,x-other-hop , Set-Cookie',
      'x-secret-hop': 'internal',
      'x-other-hop': 'internal',
      'set-cookie': 'session=upstream',
      'keep-alive': 'timeout=5, max=7',
      'proxy-status': 'internal-proxy; error=connection_refused',
      'proxy-authentication-info': 'nextnonce="x"',
      'proxy-authenticate': 'Basic',
      trailer: 'x-checksum',
      upgrade: 'h2c',
      'x-kept': 'yes'
    })
    const res = await request(`${gw.url}${prefix}/h/${q}`)
    t.equal(res.statusCode, 200, prefix)
    t.equal(await res.body.text(), 'ok')
    t.notMatch(String(res.headers['keep-alive']), /max=7/, `${prefix}: the upstream's Keep-Alive removed (the gateway's own connection may send one)`)
    for (const name of ['x-secret-hop', 'x-other-hop', 'set-cookie', 'proxy-status', 'proxy-authentication-info', 'proxy-authenticate', 'trailer', 'upgrade']) {
      t.equal(res.headers[name], undefined, `${prefix}: ${name} removed`)
    }
    t.equal(res.headers['x-kept'], 'yes', `${prefix}: an end-to-end header passes`)
  }
})

t.test('an upstream cannot remove the gateway\'s own headers by naming them in Connection', async (t) => {
  const up = await scriptedUpstream(t)
  const gw = await gatewayFor(t, [up])
  const own = ['x-request-id', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'x-frame-options', 'content-security-policy',
    'x-content-type-options', 'referrer-policy', 'access-control-allow-origin', 'vary']
  const q = script(200, { connection: own.join(', '), 'x-frame-options': 'ALLOWALL', 'ratelimit-limit': '999999' })
  const res = await request(`${gw.url}/pub/own/${q}`, { headers: { origin: APP } })
  t.equal(res.statusCode, 200)
  await res.body.text()
  t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  t.equal(up.requests[0]?.headers['x-request-id'], res.headers['x-request-id'], 'the same id upstream and back')
  t.equal(res.headers['ratelimit-limit'], '50', 'the gateway\'s RateLimit headers')
  t.equal(res.headers['ratelimit-remaining'], '49')
  t.ok(res.headers['ratelimit-reset'] !== undefined)
  t.equal(res.headers['x-frame-options'], 'DENY', 'the gateway\'s security headers')
  t.equal(res.headers['content-security-policy'], gw.app.portcullisSecurityHeaders['content-security-policy'])
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.equal(res.headers['referrer-policy'], 'no-referrer')
  t.equal(res.headers['access-control-allow-origin'], APP, 'the gateway\'s CORS answer')
})

t.test('redirects into the upstream\'s origin come back on the public prefix; others are kept', async (t) => {
  const up = await scriptedUpstream(t)
  const other = await scriptedUpstream(t)
  const gw = await gatewayFor(t, [up, other])
  const p = up.port
  const cases: Array<[string, string]> = [
    [`http://127.0.0.1:${p}/base/v1/next?a=1#top`, '/pub/next?a=1#top'],
    [`http://localhost:${p}/base/v1/x`, '/pub/x'],
    [`http://[::1]:${p}/base/v1/x`, '/pub/x'],
    [`HTTP://LOCALHOST:${p}/base/v1`, '/pub'],
    [`https://127.0.0.1:${p}/base/v1/tls`, '/pub/tls'],
    [`//127.0.0.1:${p}/base/v1/y`, '/pub/y'],
    [`http://127.0.0.1:${other.port}/base/v1/z`, '/pub/z'],
    ['/base/v1/rel?q=1', '/pub/rel?q=1'],
    ['/base/v1', '/pub'],
    ['/base/v10/not-under-the-prefix', '/base/v10/not-under-the-prefix'],
    ['/elsewhere', '/elsewhere'],
    ['relative/path', 'relative/path'],
    ['https://example.com/base/v1/x', 'https://example.com/base/v1/x'],
    [`http://127.0.0.2:${p}/base/v1/x`, `http://127.0.0.2:${p}/base/v1/x`],
    [`http://127.0.0.1:${p}/other`, `http://127.0.0.1:${p}/other`]
  ]
  for (const prefix of ['/pub', '/buf']) {
    for (const [location, expected] of cases) {
      // The buffered route has one target; the load-balanced one's second target maps on /pub only.
      if (prefix === '/buf' && location.includes(String(other.port))) continue
      const want = expected.startsWith('/pub') ? prefix + expected.slice(4) : expected
      const res = await request(`${gw.url}${prefix}/redir/${script(302, { location, 'content-location': location, refresh: `3; url=${location}` })}`)
      t.equal(res.statusCode, 302)
      await res.body.text()
      t.equal(res.headers.location, want, `${prefix}: Location ${location}`)
      t.equal(res.headers['content-location'], want, `${prefix}: Content-Location ${location}`)
      t.equal(res.headers.refresh, `3; url=${want}`, `${prefix}: Refresh ${location}`)
    }
  }
})

t.test('a rewritten redirect never names another host: `//`, `/\\` and `/<TAB>/` at the start become one `/`', async (t) => {
  const up = await scriptedUpstream(t)
  // The `/` prefix maps the upstream prefix to the empty public prefix: `/base/v1//evil.example`
  // would become `//evil.example`, a redirect to another site that the upstream never sent.
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/', upstream: `${up.url}/base`, rewritePrefix: '/v1', auth: false, retries: 0 })] })
  const p = up.port
  const cases: Array<[string, string]> = [
    ['/base/v1//evil.example/x', '/evil.example/x'],
    ['/base/v1/\\evil.example/x', '/evil.example/x'],
    ['/base/v1/\t/evil.example', '/evil.example'],
    ['/base/v1/\\/\\evil.example?a=1', '/evil.example?a=1'],
    [`http://127.0.0.1:${p}/base/v1//evil.example/x`, '/evil.example/x'],
    [`http://127.0.0.1:${p}/base/v1/\\evil.example`, '/evil.example'],
    ['/base/v1/next//kept', '/next//kept'],
    ['/base/v1', '/']
  ]
  for (const [location, want] of cases) {
    const res = await request(`${gw.url}/redir/${script(302, { location, refresh: `0; url=${location}` })}`)
    t.equal(res.statusCode, 302)
    await res.body.text()
    t.equal(res.headers.location, want, `Location ${JSON.stringify(location)}`)
    t.equal(res.headers.refresh, `0; url=${want}`, `Refresh ${JSON.stringify(location)}`)
  }
  t.equal(up.requests.length, cases.length, 'every redirect came from the upstream')
})

t.test('Max-Forwards: OPTIONS with 0 is answered by the gateway; otherwise decremented on OPTIONS only', async (t) => {
  const up = await scriptedUpstream(t)
  const gw = await gatewayFor(t, [up])
  for (const prefix of ['/pub', '/buf']) {
    const before = up.requests.length
    for (const zero of ['0', '00']) {
      const res = await rawRequest(gw.port, `OPTIONS ${prefix}/x HTTP/1.1\r\nHost: gw.test\r\nMax-Forwards: ${zero}\r\nConnection: close\r\n\r\n`)
      t.equal(res.status, 200, `${prefix}: answered by the gateway`)
      t.equal(res.headers.allow, 'DELETE, GET, HEAD, PATCH, POST, PUT, OPTIONS')
      t.equal(res.headers['content-length'], '0')
      t.equal(res.body, '')
      t.equal(res.headers['x-frame-options'], 'DENY', 'with the gateway\'s headers')
    }
    t.equal(up.requests.length, before, `${prefix}: the upstream was not contacted`)

    const five = await request(`${gw.url}${prefix}/x`, { method: 'OPTIONS', headers: { 'max-forwards': '5' } })
    await five.body.text()
    t.equal(up.requests.at(-1)?.headers['max-forwards'], '4', `${prefix}: OPTIONS 5 arrives as 4`)
    const one = await request(`${gw.url}${prefix}/x`, { method: 'OPTIONS', headers: { 'max-forwards': '1' } })
    await one.body.text()
    t.equal(up.requests.at(-1)?.headers['max-forwards'], '0', `${prefix}: OPTIONS 1 arrives as 0`)
    const bad = await request(`${gw.url}${prefix}/x`, { method: 'OPTIONS', headers: { 'max-forwards': '-1' } })
    await bad.body.text()
    t.equal(up.requests.at(-1)?.headers['max-forwards'], undefined, `${prefix}: an invalid value is not forwarded`)
    const get = await request(`${gw.url}${prefix}/x`, { headers: { 'max-forwards': '5' } })
    await get.body.text()
    t.equal(up.requests.at(-1)?.headers['max-forwards'], '5', `${prefix}: other methods carry it unchanged`)
  }

  const before = up.requests.length
  for (const mf of ['0', '5']) {
    const res = await rawRequest(gw.port, `TRACE /pub/x HTTP/1.1\r\nHost: gw.test\r\nMax-Forwards: ${mf}\r\nConnection: close\r\n\r\n`)
    t.equal(res.status, 404, `TRACE (Max-Forwards ${mf}) stays refused`)
    t.equal(JSON.parse(res.body).code, 'GW_ROUTE_NOT_FOUND')
    t.notMatch(res.body, /TRACE \/pub/, 'nothing of the request is reflected')
  }
  t.equal(up.requests.length, before, 'TRACE never reaches the upstream')
})

t.test('OPTIONS with Max-Forwards 0 on a protected route still needs a credential', async (t) => {
  const up = await scriptedUpstream(t)
  const gw = await startGateway(t, { env: { API_KEYS: 'partner:hygiene-key-0123456789abcdef' }, routes: [defineRoute({ prefix: '/svc', upstream: up.url, methods: ['GET', 'OPTIONS'] })] })
  const anonymous = await rawRequest(gw.port, 'OPTIONS /svc/x HTTP/1.1\r\nHost: gw.test\r\nMax-Forwards: 0\r\nConnection: close\r\n\r\n')
  t.equal(anonymous.status, 401)
  const keyed = await rawRequest(gw.port, 'OPTIONS /svc/x HTTP/1.1\r\nHost: gw.test\r\nMax-Forwards: 0\r\nX-Api-Key: hygiene-key-0123456789abcdef\r\nConnection: close\r\n\r\n')
  t.equal(keyed.status, 200)
  t.equal(keyed.headers.allow, 'GET, OPTIONS, HEAD')
  t.equal(up.requests.length, 0, 'the upstream was not contacted')
})
