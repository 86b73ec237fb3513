/**
 * Paths a backend reads differently from the gateway (docs/security/paths.md), over TCP with raw
 * requests (clients normalise paths themselves). Two layouts on one recording upstream each: a
 * public prefix with a protected prefix inside it (`/inv` + `/inv/admin`), and a public catch-all
 * beside a protected prefix (`/` + `/admin`). Every spelling that a lenient backend (IIS, Tomcat,
 * Spring, Express) reads as the protected path is refused with 400 GW_REQUEST_PATH and never
 * reaches the upstream; spellings that stay on their route go through byte for byte.
 */
import t, { type Test } from 'tap'
import { createSigner } from 'fast-jwt'
import { defineRoute } from 'portcullis'
import { startUpstream, type Upstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { rawRequest, type RawResponse } from '../helpers/raw-http.js'

const SECRET = 'path-bypass-secret-0123456789-abcdefghijklmnop'
const sign = createSigner({ key: SECRET, algorithm: 'HS256' })
const token = (): string => sign({ sub: 'ops-1', exp: Math.floor(Date.now() / 1000) + 300 })

interface Layout { port: number, upstream: Upstream }

/** `/inv` public and `/inv/admin` JWT, one upstream that sees the public path unchanged. */
async function nestedLayout (t: Test, env: Record<string, string> = {}): Promise<Layout> {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { JWT_SECRET: SECRET, LOG_LEVEL: 'warn', ...env },
    routes: [
      defineRoute({ prefix: '/inv', upstream: upstream.url, rewritePrefix: '/inv', auth: false, rateLimit: false, inspect: false, retries: 0 }),
      defineRoute({ prefix: '/inv/admin', upstream: upstream.url, rewritePrefix: '/inv/admin', auth: { strategies: ['jwt'] }, rateLimit: false, inspect: false, retries: 0 })
    ]
  })
  return { port: gw.port, upstream }
}

/** A public catch-all `/` beside `/admin` (JWT), one upstream. */
async function catchAllLayout (t: Test): Promise<Layout> {
  const upstream = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { JWT_SECRET: SECRET, LOG_LEVEL: 'warn' },
    routes: [
      defineRoute({ prefix: '/', upstream: upstream.url, auth: false, rateLimit: false, inspect: false, retries: 0 }),
      defineRoute({ prefix: '/admin', upstream: upstream.url, rewritePrefix: '/admin', auth: { strategies: ['jwt'] }, rateLimit: false, inspect: false, retries: 0 })
    ]
  })
  return { port: gw.port, upstream }
}

async function get (port: number, path: string, headers = ''): Promise<RawResponse> {
  return await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${headers}\r\n`)
}

function assertRefused (t: Test, res: RawResponse, path: string): void {
  t.equal(res.status, 400, `${path}: 400`)
  let body: Record<string, unknown> = {}
  try {
    body = JSON.parse(res.body) as Record<string, unknown>
  } catch {}
  t.strictSame(Object.keys(body), ['statusCode', 'code', 'error', 'message'], `${path}: the gateway body`)
  t.match(body, { statusCode: 400, code: 'GW_REQUEST_PATH', error: 'Bad Request', message: /^Bad [Rr]equest$/ }, `${path}: GW_REQUEST_PATH, nothing echoed`)
}

/** Spellings of `/inv/admin...` that some backend reads as the protected prefix. */
const NESTED_REFUSED = [
  // letter case (IIS/ASP.NET, NTFS, Express default, Spring case-insensitive matching)
  '/inv/ADMIN', '/inv/Admin/users', '/INV/admin', '/Inv/Admin/x',
  // Unicode case and compatibility forms, Windows best fit
  '/inv/adm%C4%B1n', '/inv/ADM%C4%B0N', '/inv/%EF%BD%81%EF%BD%84%EF%BD%8D%EF%BD%89%EF%BD%8E', '/inv/%EF%BC%A1DMIN/x',
  '/inv/%C4%81dmin', '/inv/%C3%A0dmin', '/inv/adm%C3%AFn', '/inv/%CE%B1dmin', '/inv/%E2%93%90dmin', '/inv/%F0%9D%90%9A%F0%9D%90%9D%F0%9D%90%A6%F0%9D%90%A2%F0%9D%90%A7',
  // invisible characters
  '/inv/ad%E2%80%8Bmin', '/inv/admin%EF%BB%BF', '/inv/ad%C2%ADmin', '/inv/admin%E2%81%A0/x',
  // path parameters in any segment, raw or encoded
  '/inv;x/admin', '/inv/admin;', '/inv/admin;jsessionid=1/x', '/inv/admin;/users', '/inv;/admin', '/;/inv/admin',
  '/inv/admin%3b', '/inv/admin%3Bjsessionid=1', '/inv%3bx/admin', '/inv/admin%EF%B9%94x',
  // trailing dots and whitespace (Windows), leading and trailing whitespace (Spring trimTokens)
  '/inv/admin.', '/inv/admin..', '/inv/admin./x', '/inv/admin%20', '/inv/admin%20/x', '/inv/%20admin', '/inv/admin+',
  '/inv/admin%C2%A0', '/inv/admin%C2%85', '/inv/admin%E3%80%80', '/inv/admin.%20.', '/inv/admin%09', '/inv/admin%0b',
  // NTFS streams and 8.3 short names
  '/inv/admin::$DATA', '/inv/admin:$I30:$INDEX_ALLOCATION/x', '/inv/ADMINI~1', '/inv/admini~1/x', '/inv/ADMIN~1.ASP',
  // Spring suffix pattern match
  '/inv/admin.json', '/inv/admin.html', '/inv/Admin.xml', '/inv/admin.a.b',
  // `?` and `#` in disguise, raw `#`
  '/inv/admin%3F', '/inv/admin%3fx=1', '/inv/admin%23', '/inv/admin%23/x', '/inv/admin#x', '/inv/x#/../admin',
  // look-alike separators and dot segments
  '/inv%E2%81%84admin', '/inv%C2%A5admin', '/inv%EF%B9%A8admin', '/inv/x/..%20/admin', '/inv/x/.%3b/admin', '/inv/x/%E2%80%A5/admin',
  '/inv/x/%EF%B9%92%EF%B9%92/admin', '/inv/...', '/inv//admin', '/inv/x/../admin',
  // encodings the gateway never decodes: IIS %u, encoded letters, invalid UTF-8
  '/inv/%u0061dmin', '/inv/%61dmin', '/inv/admi%6E', '/inv/adm%C0%AEin', '/inv/%E9',
  // decoded twice (a proxy in front, or IIS)
  '/inv/admin%253B', '/inv/%2525u0061dmin', '/inv/x/%25252e%25252e/admin',
  // several at once
  '/INV;x/ADMIN./', '/inv/ADMIN%20;x/users'
]

t.test('/inv public + /inv/admin JWT: every spelling read as /inv/admin is refused and never proxied', async (t) => {
  const { port, upstream } = await nestedLayout(t)
  const denied = await get(port, '/inv/admin/users')
  t.equal(denied.status, 401, 'control: the protected prefix wants a token')
  for (const path of NESTED_REFUSED) assertRefused(t, await get(port, path), path)
  t.equal(upstream.requests.length, 0, 'the upstream received none of them')

  const allowed = await get(port, '/inv/admin/users', `Authorization: Bearer ${token()}\r\n`)
  t.equal(allowed.status, 200, 'control: with a token the protected prefix answers')
  t.strictSame(upstream.requests.map((r) => r.url), ['/inv/admin/users'])
})

t.test('/inv public + /inv/admin JWT: spellings that stay on their route pass unchanged', async (t) => {
  const { port, upstream } = await nestedLayout(t)
  const publicPaths = [
    '/inv/Items/ABC', '/inv/items/ABC-1_2', '/inv/items;v=2', '/inv/Items;jsessionid=1/x', '/inv/report.json', '/inv/Report.PDF',
    '/inv/a%20b', '/inv/caf%C3%A9', '/inv/%E6%97%A5%E6%9C%AC', '/inv/search/a+b', '/inv/items:batchGet', '/inv/Admins',
    '/inv/administration/x', '/inv/PROGRA~1', '/inv/a.b/c..d', '/inv/x/', '/inv/', '/inv', '/inv/items?q=ADMIN;x%3B', '/inv/v1.0/items'
  ]
  for (const path of publicPaths) {
    const res = await get(port, path)
    t.equal(res.status, 200, `${path}: served`)
  }
  t.strictSame(upstream.requests.map((r) => r.url), publicPaths, 'the upstream received every path exactly as sent')

  const auth = `Authorization: Bearer ${token()}\r\n`
  const protectedPaths = ['/inv/admin/Users', '/inv/admin/', '/inv/admin', '/inv/admin/export.json', '/inv/admin/a;b', '/inv/admin/X%20Y']
  for (const path of protectedPaths) {
    t.equal((await get(port, path)).status, 401, `${path}: the protected route, without a token`)
    t.equal((await get(port, path, auth)).status, 200, `${path}: the protected route, with a token`)
  }
  t.strictSame(upstream.requests.slice(publicPaths.length).map((r) => r.url), protectedPaths, 'and exactly as sent')
})

t.test('/ public catch-all + /admin JWT: spellings read as /admin are refused and never proxied', async (t) => {
  const { port, upstream } = await catchAllLayout(t)
  t.equal((await get(port, '/admin')).status, 401, 'control')
  const refused = [
    '/ADMIN', '/Admin/x', '/admin.', '/admin%20', '/admin;', '/;/admin', '/admin;jsessionid=1', '/admin%3B', '/admin.json',
    '/ADMINI~1', '/admin::$DATA', '/%EF%BD%81dmin', '/admin%3F', '/admin%23', '/adm%C4%B1n', '/admin%E2%80%8B', '/admin%C2%A0/x',
    '/%20admin', '/admin+', '/ADMIN/', '/x/..%20/admin'
  ]
  for (const path of refused) assertRefused(t, await get(port, path), path)
  t.equal(upstream.requests.length, 0, 'the upstream received none of them')

  const fine = ['/', '/Public/Index.html', '/docs/v1.0/', '/index.json', '/adminx', '/Administration', '/a;b', '/x/ADMIN', '/Search/a+b']
  for (const path of fine) t.equal((await get(port, path)).status, 200, `${path}: served`)
  t.strictSame(upstream.requests.map((r) => r.url), fine, 'exactly as sent')
})

t.test('route prefixes that read as one another stop startup, naming both', async (t) => {
  const pairs: Array<[string, string]> = [['/admin', '/Admin'], ['/inv/admin', '/inv/ADMIN'], ['/admin', '/admin.']]
  for (const [a, b] of pairs) {
    const err = await startGateway(t, {
      env: { JWT_SECRET: SECRET, LOG_LEVEL: 'silent' },
      listen: false,
      routes: [defineRoute({ prefix: a, upstream: 'http://127.0.0.1:9' }), defineRoute({ prefix: b, upstream: 'http://127.0.0.1:9' })]
    }).then(() => undefined, (e: unknown) => e as Error & { code?: string })
    t.equal(err?.code, 'GW_CONFIG_INVALID', `${a} + ${b}: refused`)
    t.match(err?.message ?? '', a, `${a} named`)
    t.match(err?.message ?? '', b, `${b} named`)
  }
})

t.test('PATH_CHECK=literal: routes the literal path only (the documented opt-out)', async (t) => {
  const { port, upstream } = await nestedLayout(t, { PATH_CHECK: 'literal' })
  const res = await get(port, '/inv/ADMIN')
  t.equal(res.status, 200, 'the public route takes it')
  t.strictSame(upstream.requests.map((r) => r.url), ['/inv/ADMIN'], 'and a case-insensitive backend would serve /inv/admin: the risk the opt-out accepts')
  assertRefused(t, await get(port, '/inv/x/../admin'), 'non-canonical paths are still refused')
  t.equal(upstream.requests.length, 1)
})
