/**
 * The proxy scope: the HTTP routes of every route module registered on the instance that opened
 * it share one Fastify context (one Reply class), keep the hooks of that instance, and the
 * scope's handler sends exactly the canonical path with the prefix swapped and the query verbatim.
 */
import t from 'tap'
import { connect } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { defineRoute, proxyPlugin, proxyScopePlugin } from 'portcullis'
import { startUpstream } from '../helpers/upstream.js'

interface Teardown { teardown: (fn: () => unknown) => void }

async function app (t: Teardown, upstream: string, seen: Map<string, object>, tags: string[]): Promise<FastifyInstance> {
  const f = Fastify()
  t.teardown(() => f.close())
  f.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done) => {
    seen.set(request.url, Object.getPrototypeOf(reply) as object)
    done()
  })
  await f.register(proxyPlugin)
  await f.register(proxyScopePlugin)
  // Added after the scope opened: still applies to the scope's routes.
  f.addHook('onRequest', (request: FastifyRequest, _reply, done) => {
    tags.push(request.url)
    done()
  })
  await f.register(defineRoute({ prefix: '/a', upstream, auth: false, rateLimit: false, inspect: false }))
  await f.register(defineRoute({ prefix: '/b', upstream: `${upstream}/base`, rewritePrefix: '/v2', auth: false, rateLimit: false, inspect: false }))
  await f.register(defineRoute({ prefix: '/d', upstream: `${upstream}/`, rewritePrefix: '/v3/', auth: false, rateLimit: false, inspect: false }))
  // Registered with a prefix: a context of its own, as a plain Fastify plugin would have.
  await f.register(defineRoute({ prefix: '/c', upstream, auth: false, rateLimit: false, inspect: false }), { prefix: '/v1' })
  return f
}

t.test('routes of the scope share one context; a registered prefix gets its own; later hooks apply', async (t) => {
  const up = await startUpstream(t)
  const seen = new Map<string, object>()
  const tags: string[] = []
  const f = await app(t, up.url, seen, tags)
  for (const url of ['/a/x', '/b/y', '/v1/c/z']) {
    const res = await f.inject(url)
    t.equal(res.statusCode, 200, url)
  }
  t.equal(seen.get('/a/x'), seen.get('/b/y'), 'one Reply class (decorated with reply-from once) for the scoped routes')
  t.ok(seen.get('/v1/c/z') !== undefined && seen.get('/v1/c/z') !== seen.get('/a/x'), 'a route registered with a prefix has its own context')
  t.same(tags, ['/a/x', '/b/y', '/v1/c/z'], 'a hook added after the scope opened runs for every route')
  t.same(up.requests.map((r) => r.url), ['/x', '/base/v2/y', '/z'])
})

t.test('the upstream gets the prefix swapped, the query verbatim and exact segment boundaries', async (t) => {
  const up = await startUpstream(t)
  const f = await app(t, up.url, new Map(), [])
  const cases: Array<[string, number, string | null]> = [
    ['/a', 200, '/'],
    ['/a/', 200, '/'],
    ['/a?x=1', 200, '/?x=1'],
    ['/a/items?b=2&a=%20&a=3&c', 200, '/items?b=2&a=%20&a=3&c'],
    ['/a/items?q=%zz%', 200, '/items?q=%zz%'],
    ['/b', 200, '/base/v2'],
    ['/b/deep/er?x=y', 200, '/base/v2/deep/er?x=y'],
    ['/d/x', 200, '/v3/x'],
    ['/d', 200, '/v3'],
    ['/ax', 404, null],
    ['/bb/x', 404, null]
  ]
  for (const [url, status, upstreamUrl] of cases) {
    const before = up.requests.length
    const res = await f.inject(url)
    t.equal(res.statusCode, status, url)
    if (upstreamUrl !== null) t.equal(up.requests.at(-1)?.url, upstreamUrl, `${url} -> ${upstreamUrl}`)
    else t.equal(up.requests.length, before, `${url} never reaches the upstream`)
  }
})

t.test('without the request guard the scope still refuses non-canonical paths (real socket)', async (t) => {
  const up = await startUpstream(t)
  const f = await app(t, up.url, new Map(), [])
  await f.listen({ port: 0, host: '127.0.0.1' })
  const port = (f.server.address() as { port: number }).port
  const raw = async (target: string): Promise<string> => await new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => { s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`) })
    let data = ''
    s.on('data', (d) => { data += d.toString('latin1') })
    s.on('end', () => { resolve(data) })
    s.on('error', reject)
  })
  const attacks = [
    '/a/../b/x', '/a/./x', '/a/%2e%2e/b', '/a/%2E%2e%2fb', '/a/..%2fb', '/a/x%2fy', '/a/x%5cy', '/a/x\\y',
    '/a//evil.example/x', '/a/%252e%252e/b', '/a/%c0%ae%c0%ae/b', '/a/x%00y', '/a/..;/b', '/a/%61'
  ]
  for (const target of attacks) {
    const before = up.requests.length
    const answer = await raw(target)
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1])
    t.ok(status === 400 || status === 404, `${target} -> ${status}`)
    t.equal(up.requests.length, before, `${target} never reaches the upstream`)
  }
  const ok = await raw('/a/fine')
  t.match(ok, /^HTTP\/1\.1 200/)
})

t.test('opening the scope twice on one runtime is a startup error', async (t) => {
  const f = Fastify()
  t.teardown(() => f.close())
  await f.register(proxyPlugin)
  await f.register(proxyScopePlugin)
  await t.rejects(async () => { await f.register(proxyScopePlugin) }, /registered twice/)
})

t.test('redirects inside the rewrite prefix point at the public prefix; others are left alone', async (t) => {
  const up = await startUpstream(t, (req, res) => {
    const to = new URL(req.url ?? '/', 'http://x').searchParams.get('to') ?? '/'
    res.writeHead(302, { location: to })
    res.end()
  })
  const f = await app(t, up.url, new Map(), [])
  const cases: Array<[string, string, string]> = [
    ['/a/r', '/login?next=1', '/a/login?next=1'],
    ['/b/r', '/base/v2/items/7', '/b/items/7'],
    ['/b/r', '/base/v2', '/b'],
    ['/b/r', '/base/v2?x=1', '/b?x=1'],
    ['/b/r', '/base/v20/elsewhere', '/base/v20/elsewhere'],
    ['/b/r', '/other/base/v2/x', '/other/base/v2/x'],
    ['/b/r', 'https://idp.example/login', 'https://idp.example/login']
  ]
  for (const [path, to, expected] of cases) {
    const res = await f.inject(`${path}?to=${encodeURIComponent(to)}`)
    t.equal(res.statusCode, 302)
    t.equal(res.headers.location, expected, `${to} -> ${expected}`)
  }
})

t.test('a route that buffers bodies for inspection keeps a context of its own and forwards the exact bytes', async (t) => {
  const up = await startUpstream(t)
  const seen = new Map<string, object>()
  const f = await app(t, up.url, seen, [])
  await f.register(defineRoute({ prefix: '/e', upstream: up.url, auth: false, rateLimit: false, inspect: { mode: 'block', body: true } }))
  const body = '{"b":1,  "a":"x"}'
  for (const url of ['/a/x', '/e/y']) {
    const res = await f.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: body })
    t.equal(res.statusCode, 200, url)
    t.equal(up.requests.at(-1)?.body.toString(), body, `${url}: the upstream got the bytes as sent`)
  }
  t.ok(seen.get('/e/y') !== undefined && seen.get('/e/y') !== seen.get('/a/x'), 'the buffering route is not in the scope')
  const big = await f.inject({ method: 'POST', url: '/e/y', headers: { 'content-type': 'application/json' }, payload: `"${'x'.repeat(1024 * 1024 + 10)}"` })
  t.equal(big.statusCode, 413, 'bounded by the body limit')
})
