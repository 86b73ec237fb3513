// OpenAPI contract micro benchmark (rough numbers; the official chain benchmark is bench/run.mjs).
//  1. compile time and memory: load + validate + compile of each document in a fresh process
//     (the first document of a process also compiles the OpenAPI meta-schemas), then again in the
//     same process; RSS before, after and at its peak. Documents: the test fixtures, the public
//     documents of test/fixtures/openapi/public, the Jira Cloud platform API (bench/fixtures/openapi,
//     1.8 MB, about 500 operations), and a generated one (800 operations);
//  2. CPU per request over loopback: one gateway process (block-mode inspection, API-key auth, as
//     deployed) with an in-process upstream, 16 concurrent undici clients; the process's CPU time
//     (user+system) per request for the same traffic on three routes of the orders document:
//       - plain: no contract, body streamed (the default route);
//       - buffered: no contract, body buffered (`inspect.body: true`), the buffering a contract needs;
//       - contract: `openapi` in block mode (body buffered and validated).
//     Traffic: a GET with a query, header and cookie parameters, and a POST with a 0.5 KiB JSON body.
//  3. the contract's own work, without network: the same two requests injected into a bare Fastify
//     app whose route has `config.openapi` (hooks of openApiPlugin) or not; best of 5 rounds, the
//     difference in µs per request is what the contract adds (matching, parameters, JSON parse
//     and schema of the body).
//
//   npm run build && node bench/openapi-micro.mjs [--requests 20000] [--compile-only]
import { execFileSync } from 'node:child_process'
import { createServer } from 'node:http'
import { mkdtempSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join, relative, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = resolve(fileURLToPath(new URL('..', import.meta.url)))
const dist = process.env.PORTCULLIS_DIST ?? join(root, 'dist')
const { loadContract } = await import(pathToFileURL(join(dist, 'plugins/openapi/contract.js')).href)
const mb = (bytes) => (bytes / 1024 / 1024).toFixed(0)

// A child: compiles one document, prints its figures as JSON.
const child = process.argv.indexOf('--compile')
if (child !== -1) {
  const file = process.argv[child + 1]
  const rss0 = process.memoryUsage().rss
  const t0 = performance.now()
  const contract = await loadContract(file)
  const first = performance.now() - t0
  const rss1 = process.memoryUsage().rss
  let again = Infinity
  for (let i = 0; i < 2; i++) {
    const t1 = performance.now()
    await loadContract(file)
    again = Math.min(again, performance.now() - t1)
  }
  process.stdout.write(JSON.stringify({ operations: contract.operations.length, first, again, rss0, rss1, peak: process.resourceUsage().maxRSS * 1024 }))
  process.exit(0)
}

const arg = process.argv.indexOf('--requests')
const N = arg === -1 ? 20_000 : Number(process.argv[arg + 1])
const fixtures = join(root, 'test/fixtures/openapi')
const ORDERS = join(fixtures, 'orders/orders.yaml')

// 1. compile time and memory, one fresh process per document
// A large generated document: 400 paths, 800 operations, 400 densely cross-referenced schemas.
const big = { openapi: '3.0.3', info: { title: 'big', version: '1' }, paths: {}, components: { schemas: {} } }
for (let i = 0; i < 400; i++) {
  big.components.schemas[`Thing${i}`] = { type: 'object', additionalProperties: false, required: ['id', 'name'], properties: { id: { type: 'string', format: 'uuid', readOnly: true }, name: { type: 'string', maxLength: 80 }, tags: { type: 'array', items: { type: 'string' } }, size: { type: 'integer', minimum: 0, nullable: true }, parent: { $ref: `#/components/schemas/Thing${Math.floor(i / 2)}` }, children: { type: 'array', items: { $ref: `#/components/schemas/Thing${(i * 7) % 400}` } } } }
  const ref = { $ref: `#/components/schemas/Thing${i}` }
  big.paths[`/things${i}/{id}`] = {
    parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } }],
    get: { parameters: [{ name: 'fields', in: 'query', schema: { type: 'array', items: { type: 'string' } } }], responses: { 200: { description: 'ok', content: { 'application/json': { schema: ref } } } } },
    put: { requestBody: { required: true, content: { 'application/json': { schema: ref } } }, responses: { 200: { description: 'ok', content: { 'application/json': { schema: ref } } } } }
  }
}
const bigFile = join(mkdtempSync(join(tmpdir(), 'portcullis-bench-')), 'generated-800-operations.json')
writeFileSync(bigFile, JSON.stringify(big))
const documents = [
  ...['petstore-expanded.yaml', 'tictactoe.json', 'orders/orders.yaml'].map((f) => join(fixtures, f)),
  ...['petstore.json', 'uspto.yaml', 'file-uploads.json', 'parameters-style.json', 'star-trek.json', 'readme.json'].map((f) => join(fixtures, 'public', f)),
  join(root, 'bench/fixtures/openapi/jira-platform.json'),
  bigFile
]
console.log('| document | size | operations | first load (fresh process) | again | RSS before | RSS after | peak RSS |')
console.log('|---|---:|---:|---:|---:|---:|---:|---:|')
for (const file of documents) {
  const out = JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--compile', file], { encoding: 'utf8', maxBuffer: 1 << 20 }))
  const name = file === bigFile ? basename(file) : relative(root, file)
  console.log(`| ${name} | ${(statSync(file).size / 1024).toFixed(0)} KiB | ${out.operations} | ${out.first.toFixed(0)} ms | ${out.again.toFixed(0)} ms | ${mb(out.rss0)} MB | ${mb(out.rss1)} MB | ${mb(out.peak)} MB |`)
}
if (process.argv.includes('--compile-only')) process.exit(0)

const { Agent, request } = await import('undici')
const { buildGateway, defineRoute, loadConfig } = await import(pathToFileURL(join(dist, 'src/index.js')).href)

// 2. CPU per request
const upstream = createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 })
    res.end('[]')
  })
})
await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve))
const up = `http://127.0.0.1:${upstream.address().port}`
const KEY = 'bench-key-0123456789abcdefghij'
const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', API_KEYS: `bench:${KEY}`, IP_RATE_LIMIT_MAX: '100000000' })
const common = { upstream: up, rewritePrefix: '/v2', auth: { strategies: ['apiKey'] }, rateLimit: false }
const app = await buildGateway(config, {
  logger: false,
  routes: [
    defineRoute({ prefix: '/plain', ...common }),
    defineRoute({ prefix: '/buffered', ...common, inspect: { body: true } }),
    defineRoute({ prefix: '/contract', ...common, openapi: { spec: ORDERS } })
  ]
})
await app.listen({ port: 0, host: '127.0.0.1' })
const base = `http://127.0.0.1:${app.server.address().port}`
const agent = new Agent({ connections: 16, pipelining: 1 })
const headers = { 'x-api-key': KEY, 'x-tenant': 'acme-eu', cookie: 'session=0f3a9c', accept: 'application/json', 'user-agent': 'bench/1.0' }
const body = JSON.stringify({ customer: 'ACME Trading Ltd', lines: Array.from({ length: 12 }, (_, i) => ({ sku: `SKU-${1000 + i}`, quantity: i + 1 })), note: 'Please deliver to the loading bay, door 3.' })
async function one (prefix, i) {
  const res = i % 2 === 0
    ? await request(`${base}${prefix}/orders?page=2&status=open,shipped&filter[minTotal]=5&filter[currency]=EUR`, { dispatcher: agent, headers })
    : await request(`${base}${prefix}/orders`, { dispatcher: agent, method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body })
  await res.body.dump()
  if (res.statusCode !== 200) throw new Error(`${prefix}: ${res.statusCode}`)
}
async function run (prefix, n) {
  let next = 0
  const worker = async () => { while (next < n) await one(prefix, next++) }
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  await Promise.all(Array.from({ length: 16 }, worker))
  const cpu = process.cpuUsage(c0)
  return { cpuUs: (cpu.user + cpu.system) / n, rps: n / ((performance.now() - t0) / 1000) }
}
const results = { plain: [], buffered: [], contract: [] }
for (const p of Object.keys(results)) await run(`/${p}`, 2000)
for (let round = 0; round < 3; round++) {
  for (const p of Object.keys(results)) results[p].push(await run(`/${p}`, N))
}
const best = (p) => results[p].reduce((a, b) => (b.cpuUs < a.cpuUs ? b : a))
for (const p of Object.keys(results)) console.log(`${p.padEnd(9)} CPU ${best(p).cpuUs.toFixed(1)} µs/request (gateway + in-process upstream), ${best(p).rps.toFixed(0)} req/s`)
const ratio = (a, b) => `${(((best(a).cpuUs / best(b).cpuUs) - 1) * 100).toFixed(1)}%`
console.log(`contract vs plain: ${ratio('contract', 'plain')} CPU per request; contract vs buffered: ${ratio('contract', 'buffered')}`)
await app.close()
await agent.close()
upstream.close()

// 3. the contract's own work (inject, no network)
const { default: Fastify } = await import('fastify')
const { openApiPlugin } = await import(pathToFileURL(join(dist, 'src/index.js')).href)
const host = Fastify()
await host.register(openApiPlugin)
host.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, b, done) => { done(null, b) })
const reply = async () => '[]'
// The key check passes: the contract sees an API-key consumer, as behind the auth plugin.
host.decorateRequest('consumer', null)
host.addHook('onRequest', async (request) => { request.consumer = { id: 'bench', strategy: 'apiKey', scopes: [] } })
host.route({ method: ['GET', 'POST'], url: '/v2/*', handler: reply })
host.route({ method: ['GET', 'POST'], url: '/c/v2/*', handler: reply, config: { openapi: { spec: ORDERS }, openapiPaths: { strip: '/c', add: '' } } })
await host.ready()
const injectOne = (prefix, i) => host.inject(i % 2 === 0
  ? { method: 'GET', url: `${prefix}/v2/orders?page=2&status=open,shipped&filter[minTotal]=5&filter[currency]=EUR`, headers }
  : { method: 'POST', url: `${prefix}/v2/orders`, headers: { ...headers, 'content-type': 'application/json' }, payload: body })
async function injectRound (prefix, n) {
  const c0 = process.cpuUsage()
  for (let i = 0; i < n; i++) {
    const res = await injectOne(prefix, i)
    if (res.statusCode !== 200) throw new Error(`${prefix}: ${res.statusCode} ${res.body}`)
  }
  const cpu = process.cpuUsage(c0)
  return (cpu.user + cpu.system) / n
}
const bare = []
const checked = []
await injectRound('', 2000)
await injectRound('/c', 2000)
for (let round = 0; round < 5; round++) {
  bare.push(await injectRound('', 5000))
  checked.push(await injectRound('/c', 5000))
}
const minBare = Math.min(...bare)
const minChecked = Math.min(...checked)
console.log(`inject: bare route ${minBare.toFixed(1)} µs/request, with the contract ${minChecked.toFixed(1)} µs/request: the contract adds ${(minChecked - minBare).toFixed(1)} µs per request`)
await host.close()
