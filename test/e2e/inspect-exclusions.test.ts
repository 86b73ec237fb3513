/**
 * Per-field rule exclusions end to end over TCP: `defineRoute()` proxies with `inspect.exclude`
 * in front of a recording upstream. The excluded field's payload arrives byte for byte; the same
 * payload anywhere else, or another attack in that field, never reaches the upstream.
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { request } from 'undici'
import { defineRoute, proxyPlugin, gatewayErrorHandler, gatewayNotFoundHandler } from 'portcullis'
import { inspectPlugin, createEngine, evaluateRequest } from '../../plugins/inspect/index.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

const SQL = 'SELECT name, total FROM orders WHERE region = \'EU\' UNION SELECT password, 1 FROM users; --'

function sqlRules (): string[] {
  const engine = createEngine()
  try {
    return evaluateRequest(engine, { url: `/x?v=${encodeURIComponent(SQL)}`, headers: {} }, { maxInspectBytes: 32768, maxBodyDepth: 32, maxBodyKeys: 2000 }, 1_000_000).matches.map((m) => m.ruleId)
  } finally {
    engine.dispose()
  }
}

async function setup (t: Test): Promise<{ url: string, up: Upstream, app: FastifyInstance }> {
  const up = await startUpstream(t)
  const app = Fastify({ logger: false })
  app.setErrorHandler(gatewayErrorHandler)
  app.setNotFoundHandler(gatewayNotFoundHandler)
  // A generous budget: an engine timeout blocks, and a busy machine can pass 50 ms.
  await app.register(inspectPlugin, { mode: 'block', timeoutMs: 10_000 })
  await app.register(proxyPlugin, { bodyLimit: 1024 * 1024, defaultRateLimit: false })
  const exclude = sqlRules().map((rule) => ({ rule, field: 'body.sql' }))
  await app.register(defineRoute({ prefix: '/analytics', upstream: up.url, auth: false, rateLimit: false, inspect: { mode: 'block', body: true, exclude } }))
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const addr = app.server.address()
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0
  return { url: `http://127.0.0.1:${port}`, up, app }
}

t.test('an analytics API carrying SQL in body.sql: that field passes, nothing else does', async (t) => {
  const { url, up } = await setup(t)
  const post = async (body: string, path = '/analytics/query'): Promise<number> => {
    const res = await request(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    await res.body.dump()
    return res.statusCode
  }
  const refused: Array<[string, string]> = [
    ['the same payload in a sibling member', JSON.stringify({ sql: SQL, name: SQL })],
    ['the same payload in a sibling member, first', JSON.stringify({ name: SQL, sql: SQL })],
    ['the member spelt otherwise', JSON.stringify({ SQL })],
    ['the same name deeper', JSON.stringify({ filter: { sql: SQL } })],
    ['another rule\'s attack in the field', JSON.stringify({ sql: '<script>alert(document.cookie)</script>' })],
    ['the key twice', `{"sql":"SELECT 1","sql":${JSON.stringify(SQL)}}`]
  ]
  for (const [what, body] of refused) t.not(await post(body), 200, what)
  const query = await request(`${url}/analytics/query?sql=${encodeURIComponent(SQL)}`)
  await query.body.dump()
  t.equal(query.statusCode, 403, 'the query is another field')
  t.equal(up.requests.length, 0, 'nothing refused reached the upstream')
  const allowed = JSON.stringify({ sql: SQL, name: 'weekly revenue', limit: 100 })
  t.equal(await post(allowed), 200, 'the payload in the excluded field')
  t.equal(up.requests.length, 1)
  t.equal(up.requests[0]?.url, '/query')
  t.equal(up.requests[0]?.body.toString('utf8'), allowed, 'the upstream got the exact bytes')
})

t.test('route problems name the route file and option', async (t) => {
  t.throws(() => defineRoute({ prefix: '/a', upstream: 'http://127.0.0.1:9', inspect: { mode: 'block', exclude: [{ rule: 'pc-sqli-001', field: 'header.X-Sql' }] } }),
    { code: 'GW_CONFIG_INVALID', message: /inspect-exclusions\.test\.ts.*inspect\.exclude\.0\.field: "header\.X-Sql": header names are written in lower case/ })
  t.throws(() => defineRoute({ prefix: '/a', upstream: 'http://127.0.0.1:9', inspect: { mode: 'block', exclude: ['pc-sqli-001'] as unknown as Array<{ rule: string, field: string }> } }),
    { code: 'GW_CONFIG_INVALID', message: /inspect\.exclude\.0: name the field: \{ rule: "pc-sqli-001", field: "query\.<name>" \}/ })
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(inspectPlugin, { mode: 'block' })
  await app.register(proxyPlugin, { bodyLimit: 1024, defaultRateLimit: false })
  const route = defineRoute({ prefix: '/b', upstream: 'http://127.0.0.1:9', auth: false, rateLimit: false, inspect: { mode: 'block', exclude: [{ rule: 'pc-sqli-01', field: 'body.sql' }] } })
  await t.rejects(async () => { await app.register(route) },
    { code: 'GW_CONFIG_INVALID', message: /inspect-exclusions\.test\.ts \(route \/b\): inspect\.exclude\.0\.rule: unknown rule id "pc-sqli-01" \(close: pc-sqli-001/ })
})
