/**
 * The forward-auth decision cache, piece by piece: the bounded LRU shared by the auth
 * strategies, the reading of the service's Cache-Control and Expires, and ForwardAuthClient
 * against a real HTTP authorization service on 127.0.0.1:0 that counts its calls (the cache's
 * clock is a test clock, so expiry is exact without waiting).
 */
import t, { type Test } from 'tap'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import pino from 'pino'
import { ExpiringLru } from '../../plugins/auth/expiring-lru.js'
import { ForwardAuthClient, answerLifetimeMs, type ForwardAuthDecision, type ForwardAuthOptions, type ForwardAuthRequest } from '../../plugins/auth/forward-auth.js'
import { AuthFailure } from '../../plugins/auth/jwt.js'
import { closedPort } from '../helpers/upstream.js'
import { waitFor } from '../helpers/wait-for.js'

t.test('ExpiringLru: bounded, least recently used out first, entries end at their own time', async (t) => {
  const lru = new ExpiringLru<number>(3)
  for (let i = 0; i < 3 + 50; i++) {
    lru.set(`k${i}`, i, 1000, 0)
    t.ok(lru.size <= 3, `size ${lru.size} after ${i + 1} inserts`)
  }
  t.equal(lru.size, 3)
  t.equal(lru.get('k0', 0), undefined, 'the oldest went first')
  t.strictSame([50, 51, 52].map((i) => lru.get(`k${i}`, 0)), [50, 51, 52])

  lru.get('k50', 0)
  lru.set('k53', 53, 1000, 0)
  t.equal(lru.get('k51', 0), undefined, 'a read keeps an entry young: the least recently read one goes')
  t.equal(lru.get('k50', 0), 50)

  lru.set('short', 1, 100, 0)
  t.equal(lru.get('short', 99), 1)
  t.equal(lru.get('short', 100), undefined, 'ended at its time')
  t.equal(lru.get('short', 0), undefined, 'and dropped once read after its end')
  lru.set('past', 1, 100, 100)
  t.equal(lru.get('past', 0), undefined, 'an entry ending now is not kept')
  lru.set('k50', 500, 1000, 0)
  t.equal(lru.get('k50', 0), 500, 'a write replaces')
  t.ok(lru.size <= 3)
  lru.clear()
  t.equal(lru.size, 0)
  t.throws(() => new ExpiringLru(0), RangeError)
})

t.test('answerLifetimeMs: no-store/no-cache forbid, max-age/s-maxage/Expires limit, nothing else does', async (t) => {
  const now = Date.parse('2026-01-01T00:00:00Z')
  const life = (h: Record<string, string | string[]>): number | undefined => answerLifetimeMs(h, now)
  t.equal(life({}), undefined, 'no header: no limit of its own')
  t.equal(life({ 'cache-control': 'private' }), undefined, 'private: the key holds the caller\'s credentials')
  t.equal(life({ 'cache-control': 'no-store' }), 0)
  t.equal(life({ 'cache-control': 'No-Cache' }), 0, 'directive names are case-insensitive')
  t.equal(life({ 'cache-control': 'max-age=60, no-cache="set-cookie"' }), 0, 'no-cache with fields still forbids')
  t.equal(life({ 'cache-control': 'private, max-age=3' }), 3000)
  t.equal(life({ 'cache-control': 'max-age="7"' }), 7000, 'quoted form accepted')
  t.equal(life({ 'cache-control': 'max-age=0' }), 0)
  t.equal(life({ 'cache-control': 'max-age=60, s-maxage=2' }), 2000, 'the shorter of the two')
  t.equal(life({ 'cache-control': ['max-age=60', 's-maxage=90'] }), 60_000, 'repeated headers are read together')
  t.equal(life({ 'cache-control': 'max-age=-1' }), 0, 'a lifetime that does not parse forbids')
  t.equal(life({ 'cache-control': 'max-age=1.5' }), 0)
  t.equal(life({ 'cache-control': 'max-age' }), 0)
  t.equal(life({ 'cache-control': 'max-age=99999999999' }), 2_147_483_648_000, 'huge lifetimes are capped')
  t.equal(life({ expires: 'Thu, 01 Jan 2026 00:00:05 GMT' }), 5000, 'Expires against now')
  t.equal(life({ expires: 'Thu, 01 Jan 2026 00:00:05 GMT', date: 'Thu, 01 Jan 2026 00:00:04 GMT' }), 1000, 'Expires against the answer\'s Date')
  t.equal(life({ expires: 'Wed, 31 Dec 2025 00:00:00 GMT' }), 0, 'Expires in the past')
  t.equal(life({ expires: '0' }), 0, 'an invalid Expires means already expired')
  t.equal(life({ expires: 'Wed, 31 Dec 2025 00:00:00 GMT', 'cache-control': 'max-age=9' }), 9000, 'max-age wins over Expires')
})

interface Service {
  url: string
  /** Every check the service received. */
  seen: IncomingMessage[]
  /** Answers held back until `release()` (when holding). */
  held: Array<() => void>
  hold: boolean
  release: () => void
}

type Decide = (req: IncomingMessage, res: ServerResponse) => void

/** Allows `Bearer good` (x-user-id: alice, x-user-email), 401s `Bearer bad`, 403s `Bearer blocked`, 500s `Bearer broken`. */
const policy: Decide = (req, res) => {
  const auth = req.headers.authorization
  if (auth === 'Bearer good') res.writeHead(200, { 'x-user-id': 'alice', 'x-user-email': 'alice@example.com' }).end()
  else if (auth === 'Bearer blocked') res.writeHead(403).end()
  else if (auth === 'Bearer broken') res.writeHead(500).end()
  else res.writeHead(401).end()
}

async function startService (t: Test, decide: Decide = policy): Promise<Service> {
  const svc: Service = {
    url: '',
    seen: [],
    held: [],
    hold: false,
    release: () => { for (const answer of svc.held.splice(0)) answer() }
  }
  const server = createServer((req, res) => {
    svc.seen.push(req)
    req.resume()
    if (svc.hold) svc.held.push(() => { decide(req, res) })
    else decide(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { server.closeAllConnections(); await new Promise<void>((resolve) => { server.close(() => { resolve() }) }) })
  svc.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/check`
  return svc
}

interface Clock { now: number }

function client (t: Test, url: string, opts: Partial<ForwardAuthOptions> = {}): { fa: ForwardAuthClient, clock: Clock } {
  const clock: Clock = { now: 1_000_000 }
  const fa = new ForwardAuthClient({
    url,
    timeoutMs: 2000,
    requestHeaders: ['authorization', 'cookie'],
    responseHeaders: ['x-user-email'],
    consumerHeader: 'x-user-id',
    cacheTtlMs: 5000,
    cacheMax: 100,
    log: pino({ level: 'silent' }),
    now: () => clock.now,
    ...opts
  })
  t.teardown(async () => { await fa.close() })
  return { fa, clock }
}

interface Check { method?: string, url?: string, protocol?: 'http' | 'https', ip?: string, host?: string, authorization?: string | undefined, cookie?: string | string[] }

function check (c: Check = {}): [ForwardAuthRequest, Record<string, string | string[] | undefined>] {
  const headers: Record<string, string | string[] | undefined> = { host: c.host ?? 'api.example.com' }
  if (!('authorization' in c)) headers.authorization = 'Bearer good'
  else if (c.authorization !== undefined) headers.authorization = c.authorization
  if (c.cookie !== undefined) headers.cookie = c.cookie
  const req: ForwardAuthRequest = { method: c.method ?? 'GET', url: c.url ?? '/app/orders?page=1', protocol: c.protocol ?? 'http', ip: c.ip ?? '192.0.2.10', headers }
  return [req, headers]
}

function idOf (d: ForwardAuthDecision): string {
  return typeof d === 'object' && 'id' in d ? d.id : d instanceof AuthFailure ? `401:${d.reason}` : d
}

t.test('an identical check within the TTL is answered from the cache, identity headers included', async (t) => {
  const svc = await startService(t)
  const { fa, clock } = client(t, svc.url)
  const first = await fa.decide(...check())
  clock.now += 4999
  const again = await fa.decide(...check())
  t.equal(svc.seen.length, 1)
  t.equal(fa.calls, 1)
  t.strictSame(again, first)
  t.match(again, { id: 'alice', strategy: 'forwardAuth', headers: { 'x-user-id': 'alice', 'x-user-email': 'alice@example.com' } })
  clock.now += 1
  await fa.decide(...check())
  t.equal(svc.seen.length, 2, 'at the TTL the service is asked again')
  t.equal(fa.cacheSize, 1)
  fa.clearCache()
  t.equal(fa.cacheSize, 0)
  await fa.decide(...check())
  t.equal(svc.seen.length, 3, 'a cleared cache asks again')
})

t.test('the key covers every input of the check: any difference is a new call', async (t) => {
  const svc = await startService(t)
  const { fa } = client(t, svc.url)
  const variants: Check[] = [
    {},
    { method: 'POST' },
    { url: '/app/orders?page=2' },
    { url: '/app/orders' },
    { url: '/app/other?page=1' },
    { protocol: 'https' },
    { ip: '192.0.2.11' },
    { host: 'other.example.com' },
    { authorization: 'Bearer bad' },
    { authorization: undefined },
    { authorization: '' },
    { cookie: 'sid=1' },
    { cookie: 'sid=2' },
    { cookie: ['sid=1', 'theme=dark'] },
    { cookie: '' }
  ]
  const decisions = []
  for (const v of variants) decisions.push(idOf(await fa.decide(...check(v))))
  t.equal(svc.seen.length, variants.length, 'one call per distinct check')
  for (const v of variants) await fa.decide(...check(v))
  t.equal(svc.seen.length, variants.length, 'each repeated check is a hit, with its own decision')
  const repeated = []
  for (const v of variants) repeated.push(idOf(await fa.decide(...check(v))))
  t.strictSame(repeated, decisions)
  t.equal(decisions[8], '401:forward_auth_denied', 'another credential never gets the cached allow')
  t.equal(decisions[9], '401:forward_auth_denied')
  t.equal(svc.seen[3]?.headers['x-forwarded-uri'], '/app/orders')
  t.equal(svc.seen[13]?.headers.cookie, 'sid=1; theme=dark')
})

t.test('401 and 403 are remembered; 5xx, a 2xx without identity and an unreachable service never are', async (t) => {
  let answer: Decide = policy
  const svc = await startService(t, (req, res) => { answer(req, res) })
  const { fa } = client(t, svc.url)
  for (let i = 0; i < 3; i++) t.match(await fa.decide(...check({ authorization: 'Bearer bad' })), { reason: 'forward_auth_denied' })
  for (let i = 0; i < 3; i++) t.equal(await fa.decide(...check({ authorization: 'Bearer blocked' })), 'forbidden')
  t.equal(svc.seen.length, 2, 'one call per denial')

  for (let i = 0; i < 3; i++) await t.rejects(fa.decide(...check({ authorization: 'Bearer broken' })), { code: 'GW_AUTH_UNAVAILABLE' })
  t.equal(svc.seen.length, 5, 'a 500 is asked about again every time')
  answer = (_req, res) => { res.writeHead(200).end() }
  await t.rejects(fa.decide(...check({ authorization: 'Bearer nobody' })), { code: 'GW_AUTH_UNAVAILABLE' })
  answer = policy
  t.match(await fa.decide(...check({ authorization: 'Bearer nobody' })), { reason: 'forward_auth_denied' }, 'the failure was not kept')
  t.equal(svc.seen.length, 7)

  const down = client(t, `http://127.0.0.1:${await closedPort()}/check`).fa
  await t.rejects(down.decide(...check()), { code: 'GW_AUTH_UNAVAILABLE' })
  await t.rejects(down.decide(...check()), { code: 'GW_AUTH_UNAVAILABLE' })
  t.equal(down.calls, 2, 'an unreachable service is tried on every request')
  t.equal(down.cacheSize, 0)
})

t.test('the service\'s Cache-Control and Expires: no-store and no-cache are never kept, max-age shortens, never lengthens', async (t) => {
  let cacheControl: Record<string, string> = {}
  const svc = await startService(t, (req, res) => {
    res.writeHead(req.headers.authorization === 'Bearer good' ? 200 : 401, { 'x-user-id': 'alice', ...cacheControl }).end()
  })
  const { fa, clock } = client(t, svc.url, { cacheTtlMs: 10_000 })
  for (const cc of ['no-store', 'no-cache', 'private, max-age=0', 'max-age=abc']) {
    cacheControl = { 'cache-control': cc }
    const before = svc.seen.length
    await fa.decide(...check({ url: `/${cc}` }))
    await fa.decide(...check({ url: `/${cc}` }))
    await fa.decide(...check({ url: `/${cc}`, authorization: 'Bearer bad' }))
    await fa.decide(...check({ url: `/${cc}`, authorization: 'Bearer bad' }))
    t.equal(svc.seen.length - before, 4, `${cc}: neither the allow nor the denial is kept`)
  }
  t.equal(fa.cacheSize, 0)

  cacheControl = { 'cache-control': 'max-age=2' }
  await fa.decide(...check({ url: '/short' }))
  clock.now += 1999
  await fa.decide(...check({ url: '/short' }))
  t.equal(svc.seen.length, 17, 'kept within its max-age')
  clock.now += 1
  await fa.decide(...check({ url: '/short' }))
  t.equal(svc.seen.length, 18, 'max-age=2 ends the entry before the 10 s TTL')

  cacheControl = { 'cache-control': 'max-age=3600' }
  await fa.decide(...check({ url: '/long' }))
  clock.now += 9999
  await fa.decide(...check({ url: '/long' }))
  t.equal(svc.seen.length, 19)
  clock.now += 1
  await fa.decide(...check({ url: '/long' }))
  t.equal(svc.seen.length, 20, 'a longer max-age does not pass the TTL')

  cacheControl = { expires: new Date(clock.now - 1000).toUTCString() }
  await fa.decide(...check({ url: '/expired' }))
  await fa.decide(...check({ url: '/expired' }))
  t.equal(svc.seen.length, 22, 'an Expires in the past is not kept')
})

t.test('concurrent identical checks share one call; a failed call reaches only those waiting on it', async (t) => {
  let status = 500
  const svc = await startService(t, (_req, res) => { res.writeHead(status, { 'x-user-id': 'alice' }).end() })
  const { fa } = client(t, svc.url)
  svc.hold = true
  const failing = Array.from({ length: 10 }, async () => await fa.decide(...check()).then(() => 'allowed', (err: { code?: string }) => err.code))
  await waitFor(() => svc.held.length === 1, { message: 'the first call reached the service' })
  const late = fa.decide(...check()).then(() => 'allowed', (err: { code?: string }) => err.code)
  svc.release()
  t.strictSame(await Promise.all([...failing, late]), Array(11).fill('GW_AUTH_UNAVAILABLE'), 'every waiter gets the failure')
  t.equal(svc.seen.length, 1, 'eleven checks, one call')

  status = 200
  svc.hold = false
  t.match(await fa.decide(...check()), { id: 'alice' }, 'the next check asks again and passes')
  t.equal(svc.seen.length, 2)

  svc.hold = true
  const others = Array.from({ length: 10 }, async (_, i) => await fa.decide(...check({ url: '/other' })).then(idOf, () => `failed ${i}`))
  await waitFor(() => svc.held.length === 1)
  svc.release()
  t.strictSame(await Promise.all(others), Array(10).fill('alice'))
  t.equal(svc.seen.length, 3, 'ten concurrent allowed checks: one call')
})

t.test('the bound holds: past cacheMax distinct checks the oldest decisions go', async (t) => {
  const svc = await startService(t)
  const { fa } = client(t, svc.url, { cacheMax: 5 })
  for (let i = 0; i < 5 + 20; i++) {
    await fa.decide(...check({ url: `/app/${i}` }))
    t.ok(fa.cacheSize <= 5, `size ${fa.cacheSize} after ${i + 1} distinct checks`)
  }
  t.equal(svc.seen.length, 25)
  for (let i = 20; i < 25; i++) await fa.decide(...check({ url: `/app/${i}` }))
  t.equal(svc.seen.length, 25, 'the newest five are hits')
  await fa.decide(...check({ url: '/app/0' }))
  t.equal(svc.seen.length, 26, 'the oldest was pushed out')
  t.equal(fa.cacheSize, 5)
})

t.test('cache off (TTL 0): every check, concurrent ones included, is a call of its own', async (t) => {
  const svc = await startService(t)
  const { fa } = client(t, svc.url, { cacheTtlMs: 0 })
  await fa.decide(...check())
  await fa.decide(...check())
  t.equal(svc.seen.length, 2)
  svc.hold = true
  const all = Array.from({ length: 5 }, async () => await fa.decide(...check()).then(idOf))
  await waitFor(() => svc.held.length === 5, { message: 'five calls in flight' })
  svc.release()
  t.strictSame(await Promise.all(all), Array(5).fill('alice'))
  t.equal(svc.seen.length, 7)
  t.equal(fa.cacheSize, 0)
})
