import t, { type Test } from 'tap'
import { createServer as createNetServer } from 'node:net'
import { hostname } from 'node:os'
import Fastify, { type FastifyInstance } from 'fastify'
import { request } from 'undici'
import { gatewayErrorHandler, gatewayNotFoundHandler } from 'portcullis'
import { metricsPlugin, type MetricsPluginOptions } from '../../plugins/metrics/index.js'
import { authFailure, inspectMatch, rateLimited, storeState, upstreamError } from '../../lib/signals.js'
import { waitFor } from '../helpers/wait-for.js'

async function build (t: Test, opts: Partial<MetricsPluginOptions> = {}): Promise<{ app: FastifyInstance, release: () => void }> {
  const app = Fastify()
  app.setErrorHandler(gatewayErrorHandler)
  app.setNotFoundHandler(gatewayNotFoundHandler)
  let release: () => void = () => {}
  await app.register(metricsPlugin, { port: 0, processMetrics: false, ...opts })
  app.get('/users/:id', async () => ({ ok: true }))
  app.get('/slow', async () => { await new Promise<void>((resolve) => { release = resolve }); return 'done' })
  t.teardown(async () => { await app.close() })
  await app.ready()
  return { app, release: () => { release() } }
}

async function scrape (app: FastifyInstance): Promise<string> {
  const res = await request(`${app.portcullisAdmin.url ?? ''}/metrics`)
  if (res.statusCode !== 200) throw new Error(`scrape ${res.statusCode}`)
  return await res.body.text()
}

function sample (text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    const open = line.indexOf('{')
    const close = line.lastIndexOf('}')
    // Every series carries the constant `instance` label (checked in its own test).
    const got = open === -1 ? [] : line.slice(open + 1, close).split(',').filter((l) => 'instance' in labels || !l.startsWith('instance="'))
    if (want.length === got.length && want.every((w) => got.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return undefined
}

t.test('requests by route template, method and status; 404s as (unrouted); latency histogram', async (t) => {
  const { app } = await build(t)
  t.match(app.portcullisAdmin.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'admin listener on 127.0.0.1 by default')
  await app.inject('/users/1')
  await app.inject('/users/2?secret=abc')
  await app.inject({ method: 'HEAD', url: '/users/3' })
  await app.inject('/no/such/path')
  await app.inject({ method: 'PROPFIND', url: '/users/4' })
  const text = await scrape(app)
  t.equal(sample(text, 'portcullis_http_requests_total', { route: '/users/:id', method: 'GET', status: '200' }), 2)
  t.equal(sample(text, 'portcullis_http_requests_total', { route: '/users/:id', method: 'HEAD', status: '200' }), 1)
  t.equal(sample(text, 'portcullis_http_requests_total', { route: '(unrouted)', method: 'GET', status: '404' }), 1)
  t.equal(sample(text, 'portcullis_http_requests_total', { route: '(unrouted)', method: 'OTHER', status: '404' }), 1, 'unknown methods are one label value')
  t.equal(sample(text, 'portcullis_http_request_duration_seconds_count', { route: '/users/:id' }), 3)
  t.equal(sample(text, 'portcullis_http_request_duration_seconds_bucket', { route: '/users/:id', le: '+Inf' }), 3)
  for (const raw of ['/users/1', '/users/2', 'secret', '/no/such/path', 'PROPFIND']) t.notOk(text.includes(raw), `no raw "${raw}" in any label`)
})

t.test('in-flight gauge rises during a request and falls after it', async (t) => {
  const { app, release } = await build(t)
  const pending = app.inject('/slow')
  await waitFor(async () => sample(await scrape(app), 'portcullis_http_requests_in_flight', {}) === 1, { message: 'the request in flight' })
  t.equal(sample(await scrape(app), 'portcullis_http_requests_in_flight', {}), 1)
  release()
  t.equal((await pending).statusCode, 200)
  t.equal(sample(await scrape(app), 'portcullis_http_requests_in_flight', {}), 0)
})

t.test('signals: upstream errors, auth failures, rate limits, inspection matches, store health', async (t) => {
  const { app } = await build(t)
  await app.inject('/users/1')
  upstreamError.publish({ route: '/users/:id', kind: 'timeout' })
  upstreamError.publish({ route: '/users/:id', kind: 'timeout' })
  upstreamError.publish({ route: '/users/:id', kind: 'refused' })
  authFailure.publish({ route: '/users/:id', status: 401, reason: 'missing_credentials' })
  authFailure.publish({ route: '/users/:id', status: 403, reason: 'insufficient_scope' })
  rateLimited.publish({ route: '<unrouted>', tier: 'ip' })
  rateLimited.publish({ route: '/users/:id', tier: 'route' })
  inspectMatch.publish({ route: '/users/:id', ruleId: 'crs-942-100', family: 'sqli', blocked: true })
  inspectMatch.publish({ route: '/users/:id', ruleId: 'crs-942-100', family: 'sqli', blocked: false })
  storeState.publish({ store: 'redis', state: 'up' })
  let text = await scrape(app)
  t.equal(sample(text, 'portcullis_upstream_errors_total', { route: '/users/:id', kind: 'timeout' }), 2)
  t.equal(sample(text, 'portcullis_upstream_errors_total', { route: '/users/:id', kind: 'refused' }), 1)
  t.equal(sample(text, 'portcullis_auth_failures_total', { route: '/users/:id', status: '401', reason: 'missing_credentials' }), 1)
  t.equal(sample(text, 'portcullis_auth_failures_total', { route: '/users/:id', status: '403', reason: 'insufficient_scope' }), 1)
  t.equal(sample(text, 'portcullis_rate_limited_total', { route: '(unrouted)', tier: 'ip' }), 1)
  t.equal(sample(text, 'portcullis_rate_limited_total', { route: '/users/:id', tier: 'route' }), 1)
  t.equal(sample(text, 'portcullis_inspect_matches_total', { route: '/users/:id', rule: 'crs-942-100', family: 'sqli', action: 'blocked' }), 1)
  t.equal(sample(text, 'portcullis_inspect_matches_total', { route: '/users/:id', rule: 'crs-942-100', family: 'sqli', action: 'detected' }), 1)
  t.equal(sample(text, 'portcullis_store_up', { store: 'redis' }), 1)
  storeState.publish({ store: 'redis', state: 'down' })
  storeState.publish({ store: 'redis', state: 'error' })
  text = await scrape(app)
  t.equal(sample(text, 'portcullis_store_up', { store: 'redis' }), 0)
  t.equal(sample(text, 'portcullis_store_errors_total', { store: 'redis' }), 1)
})

t.test('label values are bounded: caps, and hostile strings never reach the exposition', async (t) => {
  const { app } = await build(t, { maxRouteLabels: 5 })
  for (let i = 0; i < 50; i++) upstreamError.publish({ route: `/raw/path/${i}`, kind: `kind-${i}` })
  upstreamError.publish({ route: 'x"} 1\nevil_metric 1', kind: 'a\nb' })
  const text = await scrape(app)
  const routes = new Set([...text.matchAll(/portcullis_upstream_errors_total\{route="([^"]*)"/g)].map((m) => m[1]))
  t.ok(routes.size <= 7, `at most the cap plus (other)/(invalid): ${[...routes].join(' ')}`)
  t.ok(routes.has('(other)'))
  t.ok(routes.has('(invalid)'))
  const kinds = new Set([...text.matchAll(/kind="([^"]*)"/g)].map((m) => m[1]))
  t.ok(kinds.size <= 34, 'kinds capped at 32 plus (other)/(invalid)')
  t.notOk(text.includes('evil_metric'))
})

t.test('the admin listener serves only GET/HEAD /metrics; the main app has no /metrics', async (t) => {
  const { app } = await build(t)
  const base = app.portcullisAdmin.url ?? ''
  const ok = await request(`${base}/metrics`)
  t.equal(ok.statusCode, 200)
  t.match(ok.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  await ok.body.text()
  for (const [method, path] of [['GET', '/'], ['GET', '/metrics/x'], ['POST', '/metrics'], ['GET', '/healthz']] as const) {
    const res = await request(`${base}${path}`, { method })
    t.equal(res.statusCode, 404, `${method} ${path}`)
    await res.body.text()
  }
  const main = await app.inject('/metrics')
  t.equal(main.statusCode, 404, 'not on the public app')
})

t.test('two gateways in one process keep separate registries; close frees the admin port', async (t) => {
  const a = await build(t)
  const b = await build(t)
  await a.app.inject('/users/1')
  await a.app.inject('/users/1')
  await b.app.inject('/users/1')
  t.equal(sample(await scrape(a.app), 'portcullis_http_requests_total', { route: '/users/:id', method: 'GET', status: '200' }), 2)
  t.equal(sample(await scrape(b.app), 'portcullis_http_requests_total', { route: '/users/:id', method: 'GET', status: '200' }), 1)
  const url = b.app.portcullisAdmin.url ?? ''
  await b.app.close()
  await t.rejects(request(`${url}/metrics`), { code: 'ECONNREFUSED' })
})

t.test('every series carries a constant instance label: <hostname>-<pid> by default, or the one given', async (t) => {
  const series = (text: string): string[] => text.split('\n').filter((l) => l.startsWith('portcullis_'))
  const own = await build(t, { processMetrics: true })
  await own.app.inject('/users/1')
  storeState.publish({ store: 'redis', state: 'error' })
  const lines = series(await scrape(own.app))
  t.ok(lines.length > 20, `${lines.length} series`)
  const expected = `instance="${hostname()}-${process.pid}"`
  t.strictSame(lines.filter((l) => !l.includes(expected)), [], `every series has ${expected}`)
  for (const name of ['portcullis_http_requests_total', 'portcullis_http_request_duration_seconds_bucket', 'portcullis_store_errors_total', 'portcullis_process_resident_memory_bytes']) {
    t.ok(lines.some((l) => l.startsWith(name) && l.includes(expected)), `${name} has it`)
  }
  const named = await build(t, { instance: 'gw-a.7' })
  await named.app.inject('/users/1')
  t.equal(sample(await scrape(named.app), 'portcullis_http_requests_total', { route: '/users/:id', method: 'GET', status: '200', instance: 'gw-a.7' }), 1)
  t.strictSame(series(await scrape(named.app)).filter((l) => !l.includes('instance="gw-a.7"')), [])
})

t.test('process metrics are exported unless switched off', async (t) => {
  const { app } = await build(t, { processMetrics: true })
  t.match(await scrape(app), /portcullis_process_cpu_user_seconds_total/)
})

t.test('invalid options stop ready() with GW_CONFIG_INVALID; a busy port fails ready()', async (t) => {
  for (const opts of [{ port: -1 }, { port: 70000 }, { port: 0, host: '' }, { port: 0, extra: 1 }, { port: 0, instance: 'a b' }, { port: 0, instance: '' }, {}]) {
    const app = Fastify()
    app.register(metricsPlugin, opts as MetricsPluginOptions)
    await t.rejects(async () => { await app.ready() }, { code: 'GW_CONFIG_INVALID' }, JSON.stringify(opts))
    await app.close()
  }
  // A port held by another program (gateways of one process share their admin listener).
  const other = createNetServer()
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { other.close() })
  const port = (other.address() as { port: number }).port
  const clash = Fastify()
  clash.register(metricsPlugin, { port })
  await t.rejects(async () => { await clash.ready() }, { code: 'EADDRINUSE' })
  await clash.close()
})
