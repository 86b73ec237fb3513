#!/usr/bin/env node
// Inspection micro benchmark (rough numbers; the official chain benchmark is bench/run.mjs).
//  1. engine cost: the URL+headers phase of every GET/HEAD/DELETE request of the benign set
//     (test/fixtures/benign/benign.jsonl), extracted and evaluated exactly as the plugin does;
//     mean and p99 in microseconds over several rounds;
//  2. adversarial inputs: 1 MiB runs of quotes, brackets, `<`, `../`, `${` ... as bodies and query,
//     and the largest fully inspected input (the default budget); worst of min-of-3, in ms;
//  2b. one typical request (10 headers, then a 1 KiB JSON body) through the plugin's own path:
//     extraction into a Collected with the verdict cache warm (as in steady state) and the engine
//     run when anything is left; mean of the best of 5 rounds, in microseconds;
//  2c. per-field exclusions through the plugin (inject): a route with and without them, and the
//     cost of judging a request again when it matches an excluded rule;
//  3. throughput over loopback: a bare Fastify route with and without the plugin (block mode),
//     16 concurrent undici clients replaying the benign GETs; the ratio with/without.
//
//   npm run build && node bench/inspect-micro.mjs [--seconds 4]
import { readFileSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { join, resolve } from 'node:path'
import Fastify from 'fastify'
import { Agent, request } from 'undici'

const root = resolve(fileURLToPath(new URL('..', import.meta.url)))
const dist = process.env.PORTCULLIS_DIST ?? join(root, 'dist')
const { inspectPlugin, createEngine, collectRequest, InspectLimitError } = await import(pathToFileURL(join(dist, 'plugins/inspect/index.js')).href)
const { Collected, VerdictCache, collectUrl, collectHeaders, collectBody } = await import(pathToFileURL(join(dist, 'plugins/inspect/extract.js')).href)
const secondsArg = process.argv.indexOf('--seconds')
const SECONDS = secondsArg === -1 ? 4 : Number(process.argv[secondsArg + 1])

const benign = readFileSync(join(root, 'test/fixtures/benign/benign.jsonl'), 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l))
const lower = (h) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]))
const gets = benign.filter((r) => r.method !== 'POST' && r.method !== 'PUT' && r.method !== 'PATCH').map((r) => ({ url: r.uri, headers: lower(r.headers) }))
const limits = { maxInspectBytes: 32 * 1024, maxBodyDepth: 32, maxBodyKeys: 2000 }
const engine = createEngine()

// 1. engine cost per request (URL + headers)
const samples = []
for (let round = 0; round < 5; round++) {
  for (const r of gets) {
    const t0 = process.hrtime.bigint()
    engine.evaluate(collectRequest(r, limits, false), 50_000)
    if (round > 0) samples.push(Number(process.hrtime.bigint() - t0) / 1e3)
  }
}
samples.sort((a, b) => a - b)
const mean = samples.reduce((a, b) => a + b, 0) / samples.length
console.log(`engine, URL+headers phase, ${gets.length} benign requests: mean ${mean.toFixed(0)} µs, p50 ${samples[Math.floor(samples.length / 2)].toFixed(0)} µs, p99 ${samples[Math.floor(samples.length * 0.99)].toFixed(0)} µs`)

// 2. adversarial inputs
const judge = (req) => {
  try {
    engine.evaluate(collectRequest(req, limits, true), 50_000)
  } catch (err) {
    if (!(err instanceof InspectLimitError)) throw err
  }
}
const minOf3 = (fn) => {
  let best = Infinity
  for (let i = 0; i < 3; i++) {
    const t0 = process.hrtime.bigint()
    fn()
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6)
  }
  return best
}
let worstMiB = 0
let worstBudget = 0
for (const s of ['\'', '"', '(', '[', '<', '../', '${', '{{', '`', '$(', '<a ', '\' or 1=1 ', ';id ', '%', 'a ']) {
  const mib = s.repeat(Math.ceil(1048576 / s.length)).slice(0, 1048576)
  for (const ct of ['text/plain', 'application/json', 'application/xml', 'application/x-www-form-urlencoded']) {
    worstMiB = Math.max(worstMiB, minOf3(() => judge({ url: '/x', headers: { 'content-type': ct }, body: mib })))
  }
  worstMiB = Math.max(worstMiB, minOf3(() => judge({ url: `/x?q=${mib}`, headers: {} })))
  const budget = mib.slice(0, limits.maxInspectBytes - 64)
  worstBudget = Math.max(worstBudget, minOf3(() => judge({ url: '/x', headers: { 'content-type': 'text/plain' }, body: budget })))
}
// 2b. a typical request, phase by phase, as the plugin judges it
const typical = {
  url: '/api/v2/orders/8c1d2f?include=items,customer&page=2',
  headers: {
    host: 'api.example.com',
    'user-agent': 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    accept: 'application/json, text/plain, */*',
    'accept-encoding': 'gzip, deflate, br, zstd',
    'accept-language': 'en-GB,en;q=0.9',
    authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl',
    'content-type': 'application/json',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    referer: 'https://app.example.com/orders?page=2',
    'x-api-version': '2024-10-01'
  }
}
const typicalBody = Buffer.from(JSON.stringify({ customer: { id: 'c_81f2', name: 'Seán O\'Brien', email: 'sean@example.com' }, items: Array.from({ length: 8 }, (_, i) => ({ sku: `SKU-${1000 + i}`, qty: i + 1, note: 'leave at the door' })), coupon: 'WINTER-24', notes: 'Please ring twice, the bell is broken.' }))
const cache = new VerdictCache(10_000)
const phase = (body) => {
  const c = new Collected(limits.maxInspectBytes, cache, engine.wordScreen)
  if (body === undefined) {
    collectUrl(c, typical.url)
    collectHeaders(c, typical.headers)
  } else {
    collectBody(c, body, 'application/json', limits)
  }
  if (!c.empty) {
    const r = engine.evaluate(c, 50_000)
    if (r.matches.length === 0 && !r.timeout) c.rememberClean()
  }
}
const perCall = (fn, n) => {
  let best = Infinity
  for (let round = 0; round < 5; round++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) fn()
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e3 / n)
  }
  return best
}
phase()
phase(typicalBody)
const headersUs = perCall(() => phase(), 20_000)
const bodyUs = perCall(() => phase(typicalBody), 5_000)
console.log(`typical request, plugin path, warm cache: URL + 10 headers ${headersUs.toFixed(2)} µs, ${typicalBody.length} B JSON body ${bodyUs.toFixed(2)} µs`)

console.log(`adversarial: worst 1 MiB input ${worstMiB.toFixed(1)} ms (refused past the budget); worst fully inspected ${limits.maxInspectBytes / 1024} KiB input ${worstBudget.toFixed(1)} ms (target: each under 50 ms)`)
engine.dispose()

// 2c. per-field exclusions, through the plugin (inject): the typical request on a route with and
// without exclusions (a request matching no excluded rule costs nothing more), and a new SQL
// value in ?sql= blocked on a route without them vs passed, judged again, on one excluding the
// SQL rules on query.sql
{
  const app = Fastify()
  await app.register(inspectPlugin, { timeoutMs: 10_000 })
  const exclude = ['pc-sqli-001', 'pc-sqli-002', 'pc-sqli-006', 'pc-sqli-010', 'pc-sqli-013'].map((rule) => ({ rule, field: 'query.sql' }))
  app.route({ method: 'GET', url: '/plain/*', config: { inspect: { mode: 'block' } }, handler: async () => 'ok' })
  app.route({ method: 'GET', url: '/tuned/*', config: { inspect: { mode: 'block', exclude } }, handler: async () => 'ok' })
  await app.ready()
  const SQL = 'SELECT name, total FROM orders WHERE region = \'EU\' UNION SELECT password, 1 FROM users; --'
  const injectUs = async (make, n) => {
    let best = Infinity
    for (let round = 0; round < 5; round++) {
      const t0 = process.hrtime.bigint()
      for (let i = 0; i < n; i++) await app.inject(make(i))
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e3 / n)
    }
    return best
  }
  const typicalOn = (prefix) => () => ({ method: 'GET', url: prefix + typical.url, headers: typical.headers })
  const sqlOn = (prefix) => (i) => ({ method: 'GET', url: `${prefix}/report?sql=${encodeURIComponent(`${SQL} ${i}`)}&limit=10` })
  const plainTypical = await injectUs(typicalOn('/plain'), 2000)
  const tunedTypical = await injectUs(typicalOn('/tuned'), 2000)
  const blocked = await injectUs(sqlOn('/plain'), 200)
  const passed = await injectUs(sqlOn('/tuned'), 200)
  const statuses = [(await app.inject(sqlOn('/plain')(0))).statusCode, (await app.inject(sqlOn('/tuned')(0))).statusCode]
  console.log(`exclusions, inject: typical request ${plainTypical.toFixed(1)} µs without, ${tunedTypical.toFixed(1)} µs on a route with exclusions; new SQL value in ?sql=: blocked (${statuses[0]}) ${blocked.toFixed(0)} µs, passed by the exclusion (${statuses[1]}, judged again) ${passed.toFixed(0)} µs`)
  await app.close()
}

// 3. throughput, bare route with and without inspection
async function throughput (inspect) {
  const app = Fastify()
  if (inspect) await app.register(inspectPlugin, {})
  app.route({ method: ['GET', 'HEAD', 'DELETE'], url: '/*', config: inspect ? { inspect: { mode: 'block' } } : {}, handler: async () => ({ ok: true }) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${app.server.address().port}`
  const agent = new Agent({ connections: 16 })
  let n = 0
  let refused = 0
  const t0 = Date.now()
  const worker = async () => {
    while (Date.now() - t0 < SECONDS * 1000) {
      const r = gets[n++ % gets.length]
      const res = await request(base + r.url, { headers: r.headers, dispatcher: agent })
      if (res.statusCode !== 200) refused++
      await res.body.dump()
    }
  }
  await Promise.all(Array.from({ length: 16 }, worker))
  const rps = n / ((Date.now() - t0) / 1000)
  await agent.close()
  await app.close()
  return { rps, refused }
}
const rounds = []
for (let i = 0; i < 2; i++) rounds.push([await throughput(false), await throughput(true)])
const without = rounds.reduce((a, [w]) => a + w.rps, 0) / rounds.length
const withInspect = rounds.reduce((a, [, w]) => a + w.rps, 0) / rounds.length
const refused = rounds.reduce((a, [, w]) => a + w.refused, 0)
console.log(`bare route over loopback: ${without.toFixed(0)} req/s without, ${withInspect.toFixed(0)} req/s with inspection (ratio ${(withInspect / without).toFixed(2)}); benign requests refused: ${refused}`)
