/**
 * Per-field rule exclusions (`inspect.exclude: [{ rule, field }]`) and detect-mode rules
 * (`inspect.detect`): the excluded rule is off for exactly one field as the backend reads it,
 * every other rule still judges that field, and the excluded rule still judges every other field.
 */
import diagnostics from 'node:diagnostics_channel'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import Fastify, { LogController, type FastifyInstance, type InjectOptions } from 'fastify'
import { gatewayErrorHandler, gatewayNotFoundHandler } from '../../src/errors.js'
import { inspectPlugin, createEngine, evaluateRequest, parseField, type InspectPluginOptions, type InspectRouteConfig } from '../../plugins/inspect/index.js'
import type { InspectMatchSignal } from '../../lib/signals.js'
import { loadConfig } from '../../src/config.js'
import { rulesetFile } from '../helpers/rulesets.js'

const LIMITS = { maxInspectBytes: 32768, maxBodyDepth: 32, maxBodyKeys: 2000 }
/** What an analytics API takes in its `sql` field, and what every SQL rule calls an injection. */
const SQL = 'SELECT name, total FROM orders WHERE region = \'EU\' UNION SELECT password, 1 FROM users; --'
const XSS = '<script>alert(document.cookie)</script>'
const TRAVERSAL = '../../../../etc/passwd'
const q = (s: string): string => encodeURIComponent(s)

interface Harness {
  app: FastifyInstance
  hits: () => number
  logs: Array<Record<string, unknown>>
}

interface RouteSpec { url: string, inspect: InspectRouteConfig, buffer?: boolean }

async function build (t: Test, options: InspectPluginOptions, routes: RouteSpec[]): Promise<Harness> {
  const logs: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    }
  })
  const app = Fastify({ logger: { level: 'info', stream }, logController: new LogController({ disableRequestLogging: true }) })
  app.setErrorHandler(gatewayErrorHandler)
  app.setNotFoundHandler(gatewayNotFoundHandler)
  await app.register(inspectPlugin, { timeoutMs: 10_000, ...options })
  let hits = 0
  for (const r of routes) {
    await app.register(async function routePlugin (scope) {
      if (r.buffer === true) {
        scope.removeAllContentTypeParsers()
        scope.addContentTypeParser('*', { parseAs: 'buffer' }, function testBufferBody (_req, body, done) { done(null, body) })
      }
      scope.route({ method: ['GET', 'POST'], url: r.url, config: { inspect: r.inspect }, handler: async () => { hits++; return { ok: true } } })
    })
  }
  t.teardown(() => app.close())
  await app.ready()
  return { app, hits: () => hits, logs }
}

async function status (h: Harness, opts: InjectOptions): Promise<number> {
  return (await h.app.inject(opts)).statusCode
}

/** The built-in rules matching `value` as a query value. */
function rulesMatching (value: string): string[] {
  const engine = createEngine()
  try {
    return evaluateRequest(engine, { url: `/x?v=${q(value)}`, headers: {} }, LIMITS, 1_000_000).matches.map((m) => m.ruleId)
  } finally {
    engine.dispose()
  }
}

const sqlRules = rulesMatching(SQL)
const xssRules = rulesMatching(XSS)

t.test('the payloads match rules of their own family only', async (t) => {
  t.ok(sqlRules.length > 0, `SQL rules: ${sqlRules.join(', ')}`)
  t.ok(xssRules.length > 0, `XSS rules: ${xssRules.join(', ')}`)
  t.same(sqlRules.filter((id) => xssRules.includes(id)), [], 'no rule in both')
})

t.test('field syntax', async (t) => {
  t.same(parseField('*'), { kind: 'all' })
  t.same(parseField('path'), { kind: 'path' })
  t.same(parseField('query.a[b]'), { kind: 'query', name: 'a[b]' })
  t.same(parseField('header.x-sql'), { kind: 'header', name: 'x-sql' })
  t.same(parseField('cookie.pref'), { kind: 'cookie', name: 'pref' })
  t.same(parseField('body.report.sql'), { kind: 'body', name: 'report.sql', path: ['report', 'sql'] })
  for (const [field, problem] of [
    ['args.sql', 'is not a field'], ['query', 'names no query field'], ['query.', 'names no query field'],
    ['header.X-Sql', 'lower case ("header.x-sql")'], ['header.authorization', 'never inspected'], ['header.cookie', 'cookie.<name>'],
    ['header.a b', 'not a header name'], ['body.a..b', 'empty segment'], ['body.', 'names no body field'], ['query.a\nb', 'control characters']
  ]) {
    const parsed = parseField(field as string)
    t.ok(typeof parsed === 'string' && parsed.includes(problem as string), `${JSON.stringify(field)}: ${String(parsed)}`)
  }
})

t.test('query field: the rule is off for exactly that parameter, as the backend reads it', async (t) => {
  const exclude = sqlRules.map((rule) => ({ rule, field: 'query.sql' }))
  const h = await build(t, {}, [{ url: '/analytics', inspect: { mode: 'block', exclude } }, { url: '/strict', inspect: { mode: 'block' } }])
  const cases: Array<[string, number, string]> = [
    [`/analytics?sql=${q(SQL)}`, 200, 'payload in the excluded field passes'],
    [`/analytics?sql=${q(SQL)}&sql=${q(SQL + ' ')}&limit=10`, 200, 'every value of a repeated name is that field'],
    [`/analytics?%73ql=${q(SQL)}`, 200, 'an encoded name is the same field for the backend'],
    [`/strict?sql=${q(SQL)}`, 403, 'another route still blocks it'],
    [`/analytics?other=${q(SQL)}`, 403, 'the same payload in a sibling field'],
    [`/analytics?sql=${q(SQL)}&other=${q(SQL)}`, 403, 'the same payload in the field and a sibling (the rule stops at its first match)'],
    [`/analytics?other=${q(SQL)}&sql=${q(SQL)}`, 403, 'sibling first'],
    [`/analytics?SQL=${q(SQL)}`, 403, 'case is another name'],
    [`/analytics?sql=1&SQL=${q(SQL)}`, 403, 'case beside the real field'],
    [`/analytics?sql%5B%5D=${q(SQL)}`, 403, 'sql[] is another name'],
    [`/analytics?sql.x=${q(SQL)}`, 403, 'a dotted name is another name'],
    [`/analytics?sql%20=${q(SQL)}`, 403, 'a trailing space is another name'],
    [`/analytics?sql=${q(XSS)}`, 403, 'the excluded field carrying another rule\'s attack'],
    [`/analytics?sql=${q(SQL + ' ' + XSS)}`, 403, 'both in the field: the other rule still blocks'],
    [`/analytics/..;/x?sql=${q(SQL)}`, 404, 'not this route'],
    [`/analytics?sql=${q(SQL)}&f=${q(TRAVERSAL)}`, 403, 'other rules on other fields']
  ]
  for (const [url, expected, what] of cases) t.equal(await status(h, { url }), expected, what)
  t.equal(await status(h, { url: '/analytics', headers: { 'x-sql': SQL } }), 403, 'a header')
  t.equal(await status(h, { url: '/analytics', headers: { cookie: `sql=${q(SQL)}` } }), 403, 'a cookie of that name')
  t.equal(h.hits(), 3)
})

t.test('header, cookie and path fields', async (t) => {
  const h = await build(t, {}, [
    { url: '/h', inspect: { mode: 'block', exclude: sqlRules.map((rule) => ({ rule, field: 'header.x-query' })) } },
    { url: '/c', inspect: { mode: 'block', exclude: sqlRules.map((rule) => ({ rule, field: 'cookie.saved' })) } },
    { url: '/p/*', inspect: { mode: 'block', exclude: rulesMatching(`/p/${TRAVERSAL}`).map((rule) => ({ rule, field: 'path' })) } }
  ])
  t.equal(await status(h, { url: '/h', headers: { 'x-query': SQL } }), 200, 'header')
  t.equal(await status(h, { url: '/h', headers: { 'x-query': SQL, 'x-other': SQL } }), 403, 'same payload in another header')
  t.equal(await status(h, { url: `/h?x=${q(SQL)}`, headers: { 'x-query': SQL } }), 403, 'and in the query')
  t.equal(await status(h, { url: '/h', headers: { 'x-query': XSS } }), 403, 'another rule on the header')
  t.equal(await status(h, { url: '/c', headers: { cookie: `a=1; saved=${q(SQL)}` } }), 200, 'cookie')
  t.equal(await status(h, { url: '/c', headers: { cookie: `saved=${q(SQL)}; Saved=${q(SQL)}` } }), 403, 'a cookie spelt otherwise')
  t.equal(await status(h, { url: '/c', headers: { cookie: `saved=${q(SQL)}`, 'x-saved': SQL } }), 403, 'and a header')
  t.equal(await status(h, { url: `/p/${q('a b')}?x=${q(TRAVERSAL)}` }), 403, 'path rules still read the query')
  t.equal(h.hits(), 2)
})

t.test('body fields: JSON dot paths, form and multipart field names', async (t) => {
  const exclude = sqlRules.flatMap((rule) => [{ rule, field: 'body.sql' }, { rule, field: 'body.report.query' }])
  const h = await build(t, {}, [
    { url: '/parsed', inspect: { mode: 'block', body: true, exclude } },
    { url: '/raw', buffer: true, inspect: { mode: 'block', body: true, exclude } }
  ])
  for (const url of ['/parsed', '/raw']) {
    const json = async (body: string): Promise<number> => await status(h, { method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: body })
    t.equal(await json(JSON.stringify({ sql: SQL, name: 'weekly' })), 200, `${url}: JSON member`)
    t.equal(await json(JSON.stringify({ sql: [SQL, SQL + ' '] })), 200, `${url}: an array at the path`)
    t.equal(await json(JSON.stringify({ report: { query: SQL } })), 200, `${url}: nested path`)
    t.equal(await json(JSON.stringify({ report: [{ query: SQL }, { query: SQL + ' ' }] })), 200, `${url}: arrays on the way are entered`)
    t.equal(await json(JSON.stringify({ sql: SQL, name: SQL })), 403, `${url}: same payload in a sibling member`)
    t.equal(await json(JSON.stringify({ name: SQL, sql: SQL })), 403, `${url}: sibling first`)
    t.equal(await json(JSON.stringify({ filter: { sql: SQL } })), 403, `${url}: same name elsewhere`)
    t.equal(await json(JSON.stringify({ 'report.query': SQL })), 403, `${url}: a member named with the dots`)
    t.equal(await json(JSON.stringify({ SQL })), 403, `${url}: case`)
    t.equal(await json(JSON.stringify({ sql: XSS })), 403, `${url}: another rule's attack in the field`)
    t.equal(await json(JSON.stringify({ sql: { [SQL]: 1 } })), 200, `${url}: the field's value is all that is inside it, names too`)
    t.equal(await json(JSON.stringify({ [SQL]: { sql: 1 } })), 403, `${url}: a name outside it`)
  }
  t.equal(await status(h, { method: 'POST', url: '/raw', headers: { 'content-type': 'application/json' }, payload: `{"sql":"x","sql":${JSON.stringify(SQL)}}` }), 400, 'duplicate keys are refused')
  const form = async (body: string): Promise<number> => await status(h, { method: 'POST', url: '/raw', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: body })
  t.equal(await form(`sql=${q(SQL)}&name=x`), 200, 'form field')
  t.equal(await form(`sql=${q(SQL)}&name=${q(SQL)}`), 403, 'form sibling')
  t.equal(await form(`report.query=${q(SQL)}`), 200, 'a form field named with dots is that name')
  t.equal(await form(`report=${q(SQL)}`), 403, 'not its prefix')
  const boundary = 'XyZ'
  const multipart = (parts: Array<[string, string]>): string => parts.map(([head, content]) => `--${boundary}\r\n${head}\r\n\r\n${content}\r\n`).join('') + `--${boundary}--\r\n`
  const mp = async (parts: Array<[string, string]>): Promise<number> => await status(h, { method: 'POST', url: '/raw', headers: { 'content-type': `multipart/form-data; boundary=${boundary}` }, payload: multipart(parts) })
  t.equal(await mp([['Content-Disposition: form-data; name="sql"', SQL], ['Content-Disposition: form-data; name="n"', 'weekly']]), 200, 'multipart field')
  t.equal(await mp([['Content-Disposition: form-data; name="sql"', SQL], ['Content-Disposition: form-data; name="n"', SQL]]), 403, 'multipart sibling')
  t.equal(await mp([['X-Note: name="sql"\r\nContent-Disposition: form-data; name="n"', SQL]]), 403, 'a head naming two names is no field')
  t.equal(await mp([['Content-Disposition: form-data; name="sql"', XSS]]), 403, 'another rule in the multipart field')
  t.equal(await status(h, { method: 'POST', url: '/raw', headers: { 'content-type': 'text/xml' }, payload: `<sql>${SQL.replace(/[<>&']/g, ' ')}</sql>` }), 403, 'XML has no fields')
  t.equal(h.hits(), 13)
})

t.test('a rule off on every field ("*") and on the URL phase only', async (t) => {
  const h = await build(t, {}, [
    { url: '/wide', inspect: { mode: 'block', body: true, exclude: sqlRules.map((rule) => ({ rule, field: '*' })) } },
    { url: '/query', inspect: { mode: 'block', body: true, exclude: sqlRules.map((rule) => ({ rule, field: 'query.sql' })) } }
  ])
  t.equal(await status(h, { url: `/wide?a=${q(SQL)}`, headers: { 'x-a': SQL } }), 200)
  t.equal(await status(h, { method: 'POST', url: '/wide', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ a: SQL }) }), 200)
  t.equal(await status(h, { url: `/wide?a=${q(XSS)}` }), 403)
  t.equal(await status(h, { method: 'POST', url: `/query?sql=${q(SQL)}`, headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ sql: SQL }) }), 403, 'a query exclusion does not reach the body')
})

t.test('detect-mode rules: logged and counted as detected, block nothing; other rules still block', async (t) => {
  const signals: InspectMatchSignal[] = []
  const listen = (m: unknown): void => { signals.push(m as InspectMatchSignal) }
  diagnostics.subscribe('portcullis:inspect.match', listen)
  t.teardown(() => { diagnostics.unsubscribe('portcullis:inspect.match', listen) })
  const h = await build(t, {}, [{ url: '/shadow', inspect: { mode: 'block', detect: xssRules } }])
  t.equal(await status(h, { url: `/shadow?q=${q(XSS)}` }), 200, 'a detect-mode rule alone passes')
  const line = h.logs.find((l) => l.msg === 'inspection match (detect mode)')
  t.same((line?.inspect as { detect?: string[] } | undefined)?.detect, xssRules, 'logged with the rules in detect mode')
  t.ok(signals.length > 0 && signals.every((s) => s.route === '/shadow' && !s.blocked && xssRules.includes(s.ruleId)), 'counted as not blocked')
  signals.length = 0
  t.equal(await status(h, { url: `/shadow?q=${q(XSS)}&s=${q(SQL)}` }), 403, 'another rule blocks')
  t.ok(signals.some((s) => xssRules.includes(s.ruleId) && !s.blocked), 'the detect-mode match still counted as detected')
  t.ok(signals.some((s) => sqlRules.includes(s.ruleId) && s.blocked), 'the blocking match as blocked')
  t.equal(h.hits(), 1)
})

t.test('rules sharing a type (one report per run): exclusions and detect mode never hide the other', async (t) => {
  // libddwaf reports one rule per `tags.type` and run: a rule switched off could hide its twin.
  const rule = (id: string, regex: string): Record<string, unknown> => ({ id, name: id, tags: { type: 'acme', category: 'attack_attempt' }, conditions: [{ operator: 'match_regex', parameters: { inputs: [{ address: 'server.request.query' }, { address: 'server.request.headers.no_cookies' }], regex } }] })
  const file = rulesetFile({ version: '2.2', rules: [rule('acme-1', 'evil-thing'), rule('acme-2', 'bad-thing')] })
  const routes: RouteSpec[] = []
  for (const id of ['acme-1', 'acme-2']) {
    routes.push({ url: `/field-${id}`, inspect: { mode: 'block', exclude: [{ rule: id, field: 'query.x' }] } })
    routes.push({ url: `/wide-${id}`, inspect: { mode: 'block', exclude: [{ rule: id, field: '*' }] } })
    routes.push({ url: `/detect-${id}`, inspect: { mode: 'block', detect: [id] } })
  }
  const h = await build(t, { rulesFile: file }, routes)
  for (const id of ['acme-1', 'acme-2']) {
    const own = id === 'acme-1' ? 'evil-thing' : 'bad-thing'
    t.equal(await status(h, { url: `/field-${id}?x=${own}` }), 200, `${id} off on x`)
    t.equal(await status(h, { url: `/field-${id}?x=evil-thing+bad-thing` }), 403, `${id} off on x: the other rule still reads x`)
    t.equal(await status(h, { url: `/field-${id}?x=${own}&y=${own}` }), 403, `${id} still reads y`)
    t.equal(await status(h, { url: `/wide-${id}?y=${own}` }), 200, `${id} off everywhere`)
    t.equal(await status(h, { url: `/wide-${id}?y=evil-thing+bad-thing` }), 403, `${id} off everywhere: its twin still blocks`)
    t.equal(await status(h, { url: `/detect-${id}?y=${own}` }), 200, `${id} in detect mode`)
    t.equal(await status(h, { url: `/detect-${id}?y=evil-thing+bad-thing` }), 403, `${id} in detect mode: its twin still blocks`)
  }
})

t.test('exclusions and detect rules in configuration errors', async (t) => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['unknown rule id, with close ones', { exclude: [{ rule: 'pc-sqli-01', field: 'query.sql' }] }, 'config.inspect.exclude.0.rule: unknown rule id "pc-sqli-01" (close: pc-sqli-001'],
    ['malformed field', { exclude: [{ rule: 'pc-sqli-001', field: 'header.X-Sql' }] }, 'config.inspect.exclude.0.field: "header.X-Sql": header names are written in lower case'],
    ['listed twice', { exclude: [{ rule: 'pc-sqli-001', field: 'query.a' }, { rule: 'pc-sqli-001', field: 'query.a' }] }, 'config.inspect.exclude: Expected array elements to be unique'],
    ['rule id alone', { exclude: ['pc-sqli-001'] }, 'config.inspect.exclude.0: name the field: { rule: "pc-sqli-001"'],
    ['unknown detect-mode rule', { detect: ['pc-xss-0200'] }, 'config.inspect.detect.0: unknown rule id "pc-xss-0200"']
  ]
  for (const [name, inspect, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(inspectPlugin, {})
    app.register(async (scope) => { scope.get('/x', { config: { inspect: { mode: 'block', ...inspect } as InspectRouteConfig } }, async () => 'ok') })
    const err = await app.ready().then(() => undefined, (e: unknown) => e as Error & { code?: string })
    t.equal(err?.code, 'GW_INSPECT_CONFIG_INVALID', name)
    t.ok(err?.message.includes(message), `${name}: ${err?.message ?? ''}`)
  }
})

t.test('detect-mode rules on every route (INSPECT_DETECT_RULES)', async (t) => {
  t.same(loadConfig({ INSPECT_DETECT_RULES: ' pc-xss-001, pc-xss-002,,pc-xss-001' }).inspect.detectRules, ['pc-xss-001', 'pc-xss-002'], 'comma separated, trimmed, once each')
  t.same(loadConfig({}).inspect.detectRules, [])
  const h = await build(t, { detectRules: xssRules }, [{ url: '/a', inspect: { mode: 'block' } }, { url: '/b', inspect: { mode: 'block', detect: sqlRules } }])
  t.equal(await status(h, { url: `/a?q=${q(XSS)}` }), 200, 'in detect mode on every route')
  t.equal(await status(h, { url: `/b?q=${q(XSS)}&s=${q(SQL)}` }), 200, 'beside a route\'s own')
  t.equal(await status(h, { url: `/a?s=${q(SQL)}` }), 403, 'other rules block')
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(inspectPlugin, { detectRules: ['pc-xss-0001'] })
  app.register(async (scope) => { scope.get('/x', { config: { inspect: { mode: 'block' } } }, async () => 'ok') })
  await t.rejects(async () => { await app.ready() }, { code: 'GW_INSPECT_CONFIG_INVALID', message: /detectRules\.0: unknown rule id "pc-xss-0001" \(close: pc-xss-001.*\(INSPECT_DETECT_RULES\)/ })
})
