/**
 * The `portcullis` command-line tool: check, routes, explain and diff read the configuration
 * through the gateway's own loader, and explain sends the request through the real chain with a
 * recording stand-in for every upstream.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { runCli } from '../src/cli.js'
import type { CheckReport } from '../src/cli/check.js'
import { diffRoutes, type DiffReport } from '../src/cli/diff.js'
import { effectiveRoute, type EffectiveRoute } from '../src/cli/effective.js'
import { formatTable, routeRow } from '../src/cli/routes.js'
import { defineRoute } from '../src/route.js'
import type { ExplainReport } from '../src/cli/explain.js'
import { DEMO_API_KEY, loadConfig } from '../src/config.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const WEAK = fileURLToPath(new URL('fixtures/routes-weak', import.meta.url))
const STRONG = fileURLToPath(new URL('fixtures/routes-strong', import.meta.url))
const BAD = fileURLToPath(new URL('fixtures/routes-bad', import.meta.url))

async function cli (argv: string[], env: NodeJS.ProcessEnv = {}, stdin?: string): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await runCli(argv, { env: { LOG_LEVEL: 'silent', ...env }, out: (s) => { out += s }, err: (s) => { err += s }, ...(stdin !== undefined ? { stdin: async () => stdin } : {}) })
  return { code, out, err }
}

t.test('check: the bundled routes are valid; the demo setup\'s risky choices are warnings; --strict fails on them', async (t) => {
  const plain = await cli(['check'])
  t.equal(plain.code, 0, plain.out)
  t.match(plain.out, /^ok: 0 errors, \d+ warnings, 2 routes$/m)
  const json = JSON.parse((await cli(['check', '--json'])).out) as CheckReport
  t.equal(json.ok, true)
  t.ok(json.warnings.some((w) => w.id === 'public-route-shares-upstream' && w.source === 'routes/public.ts'), 'the public demo route shares the protected route\'s upstream')
  t.ok(json.warnings.some((w) => w.id === 'jwt-no-audience' && w.source === 'JWT_AUDIENCE'))
  t.equal((await cli(['check', '--strict'])).code, 1, '--strict: warnings fail')
  const clean = await cli(['check', '--strict', '--routes', STRONG], { JWT_AUDIENCE: 'orders', JWT_MAX_LIFETIME_S: '3600' })
  t.equal(clean.code, 0, `clean once every warning is addressed: ${clean.out}`)
})

t.test('check: every problem at once, each naming its variable or file; exit 1', async (t) => {
  const prod = await cli(['check', '--json'], { NODE_ENV: 'production', JWT_SECRET: 'changeme', API_KEYS: 'demo:demo-key-portcullis-0123456789' })
  t.equal(prod.code, 1)
  const report = JSON.parse(prod.out) as CheckReport
  t.equal(report.ok, false)
  const sources = report.errors.map((e) => e.source)
  for (const v of ['JWT_SECRET', 'API_KEYS']) t.ok(sources.some((s) => s.startsWith(v)), `${v} is reported: ${JSON.stringify(report.errors)}`)
  t.notMatch(prod.out, /demo-key-portcullis-0123456789/, 'a refused credential is not echoed')
  const schema = JSON.parse((await cli(['check', '--json'], { RATE_LIMIT_MAX: '0', BODY_LIMIT: 'lots' })).out) as CheckReport
  t.same(schema.errors.map((e) => e.source).sort(), ['BODY_LIMIT', 'RATE_LIMIT_MAX'], 'every invalid variable at once')

  const bad = await cli(['check', '--routes', BAD])
  t.equal(bad.code, 1)
  t.match(bad.out, /error {4}.*broken\.ts.*prefix/)
  t.match(bad.out, /broken\.ts.*upstream/, 'both options of the file are reported')
})

t.test('check: a deliberately weak configuration gets a warning per risky choice', async (t) => {
  const r = JSON.parse((await cli(['check', '--json', '--routes', WEAK])).out) as CheckReport
  t.equal(r.ok, true)
  const ids = r.warnings.map((w) => `${w.id} ${w.source}`)
  for (const id of ['inspection-off', 'rate-limit-by-ip-on-authenticated-route', 'cors-credentials']) t.ok(ids.some((i) => i.startsWith(id) && i.endsWith('orders.mjs')), `${id} on orders`)
  t.ok(ids.some((i) => i.startsWith('public-route-shares-upstream') && i.endsWith('status.mjs')))
  t.ok(ids.some((i) => i.startsWith('inspection-detect') && i.endsWith('status.mjs')))
  t.ok(ids.every((i) => !i.startsWith('redis-fail-open')), 'no Redis, no fail-open warning')
  const redis = JSON.parse((await cli(['check', '--json', '--routes', WEAK], { REDIS_URL: 'redis://127.0.0.1:6379', REDIS_FAILURE_MODE: 'open', UPSTREAM_TLS_INSECURE: 'true' })).out) as CheckReport
  t.ok(redis.warnings.some((w) => w.id === 'redis-fail-open'))
  t.ok(redis.warnings.some((w) => w.id === 'upstream-tls-insecure'))
})

t.test('routes: defaults shown as resolved values', async (t) => {
  const r = await cli(['routes', '--json'], { RATE_LIMIT_MAX: '7' })
  t.equal(r.code, 0, r.err)
  const routes = JSON.parse(r.out) as EffectiveRoute[]
  const echo = routes.find((x) => x.prefix === '/echo') as EffectiveRoute
  const pub = routes.find((x) => x.prefix === '/public') as EffectiveRoute
  t.same(echo.auth, { strategies: ['jwt', 'apiKey'], scopes: [], relation: 'any' })
  t.match(echo.rateLimit, { max: 100, keyBy: 'consumer', store: 'memory' })
  t.same(echo.timeouts, { connectMs: 2000, headersMs: 10000, bodyIdleMs: 30000 })
  t.match(echo.body, { handling: 'buffered', limit: 1048576 })
  t.equal(pub.auth, false)
  t.match(pub.rateLimit, { max: 30, keyBy: 'ip' })
  const weak = JSON.parse((await cli(['routes', '--json', '--routes', STRONG], { RATE_LIMIT_MAX: '7' })).out) as EffectiveRoute[]
  t.match(weak.find((x) => x.prefix === '/status')?.rateLimit, { max: 10 })
  const table = (await cli(['routes'])).out
  t.match(table, /^HOST +PREFIX +METHODS +UPSTREAM +AUTH/m)
  t.match(table, /^\* +\/echo +DELETE,GET,HEAD,PATCH,POST,PUT,OPTIONS +http:\/\/127\.0\.0\.1:8081 +jwt\|apiKey +100\/1 minute per consumer/m)
  const invalid = await cli(['routes', '--routes', BAD])
  t.equal(invalid.code, 1)
  t.match(invalid.err, /broken\.ts/)
})

t.test('explain: the verdict is the real chain\'s, and what the upstream would get', async (t) => {
  const semicolon = JSON.parse((await cli(['explain', '--json', 'GET /echo;x/hello'])).out) as ExplainReport
  t.equal(semicolon.canonicalPath, '/echo/hello', 'read as Tomcat reads it')
  t.match(semicolon.route, { prefix: '/echo' })
  t.match(semicolon.verdict, { status: 400, code: 'GW_REQUEST_PATH', decidedBy: 'request-guard' })
  t.equal(semicolon.upstream, null)
  t.same(semicolon.chain.map((s) => s.step), ['overload', 'ip-filter', 'ip-rate-limit', 'request-guard', 'cors', 'auth', 'route-rate-limit', 'inspect', 'proxy'], 'the steps that decide, in the chain\'s order')

  const noKey = JSON.parse((await cli(['explain', '--json', 'GET /echo/hello'])).out) as ExplainReport
  t.match(noKey.verdict, { status: 401, code: 'GW_AUTH_UNAUTHORIZED', decidedBy: 'auth' })

  const ok = JSON.parse((await cli(['explain', '--json', 'GET /echo/a/b?x=1', '-H', `x-api-key: ${DEMO_API_KEY}`, '-H', 'x-consumer-id: admin'])).out) as ExplainReport
  t.match(ok.verdict, { status: 200, code: null, decidedBy: 'forwarded to the upstream' })
  t.match(ok.upstream, { route: '/echo', method: 'GET', target: '/a/b?x=1' })
  t.equal(ok.upstream?.headers['x-consumer-id'], 'demo', 'the spoofed identity header is replaced')
  t.notOk(ok.upstream !== null && 'x-api-key' in ok.upstream.headers, 'the key does not go upstream')

  const none = JSON.parse((await cli(['explain', '--json', 'GET /nowhere'])).out) as ExplainReport
  t.equal(none.route, null)
  t.match(none.whyNoRoute, /no route prefix covers \/nowhere/)
  t.match(none.verdict, { status: 404, code: 'GW_ROUTE_NOT_FOUND' })

  const raw = await cli(['explain', '--request', '-'], {}, `POST /echo/x HTTP/1.1\nhost: api.example.com\nx-api-key: ${DEMO_API_KEY}\ncontent-type: application/json\n\n{"q":"1' OR '1'='1"}`)
  t.equal(raw.code, 0)
  t.match(raw.out, /^verdict +403 GW_INSPECT_BLOCKED: refused by inspect$/m)
  t.match(raw.out, /^upstream gets +nothing$/m)
  t.equal((await cli(['explain', 'not a request'])).code, 2, 'a malformed request is a usage error')
})

t.test('diff: every weakening is listed and fails the command unless allowed', async (t) => {
  const r = await cli(['diff', '--json', STRONG, WEAK])
  t.equal(r.code, 1)
  const report = JSON.parse(r.out) as DiffReport
  const weak = report.changes.filter((c) => c.kind === 'weakens').map((c) => `${c.prefix} ${c.what}`)
  for (const expected of [
    /^\/orders no longer requires scope orders:read$/,
    /^\/orders rate limit now counted per ip$/,
    /^\/orders inspection block url\+headers\+body -> off$/,
    /^\/orders CORS opened to https:\/\/app\.example\.com with credentials$/,
    /^\/orders an upstream switched from https to http$/,
    /^\/status lost authentication/,
    /^\/status rate limit raised 10x/
  ]) t.ok(weak.some((w) => expected.test(w)), `${String(expected)} in ${JSON.stringify(weak)}`)
  t.equal((await cli(['diff', STRONG, WEAK, '--allow-weakening'])).code, 0)
  const back = JSON.parse((await cli(['diff', '--json', WEAK, STRONG])).out) as DiffReport
  t.equal(back.changes.filter((c) => c.kind === 'weakens').length, 0, 'the reverse change only tightens')
  t.ok(back.changes.some((c) => c.kind === 'tightens' && c.prefix === '/status' && /now requires authentication/.test(c.what)))
  t.equal((await cli(['diff', WEAK, STRONG])).code, 0)
  t.equal((await cli(['diff', WEAK])).code, 2)
})

t.test('routes and diff: routes bound to hosts are listed and paired by host and prefix', async (t) => {
  const config = loadConfig({ LOG_LEVEL: 'silent' })
  const mk = (host: string | undefined, upstream: string, pub: boolean): EffectiveRoute => effectiveRoute(defineRoute({
    ...(host !== undefined ? { host } : {}),
    prefix: '/api',
    upstream,
    ...(pub ? { auth: false } : {})
  }), config)
  const a = mk('a.example.com', 'http://a:1', false)
  const b = mk('b.example.com', 'http://b:1', false)
  t.match(formatTable([routeRow(a), routeRow(mk(undefined, 'http://d:1', false))]), /^a\.example\.com +\/api +[\s\S]*^\* +\/api /m)
  const changes = diffRoutes([a, b], [a, mk('b.example.com', 'http://b:1', true), mk('c.example.com', 'http://c:1', false)])
  t.strictSame([...new Set(changes.map((c) => `${c.kind} ${c.prefix}`))].sort(), [
    'changes b.example.com /api',
    'changes c.example.com /api',
    'weakens b.example.com /api'
  ], 'a.example.com /api is unchanged')
  t.match(changes.find((c) => c.prefix === 'b.example.com /api')?.what, /lost authentication/)
  t.strictSame(diffRoutes([a], [b]).map((c) => `${c.kind} ${c.prefix} ${c.what}`).sort(), [
    'changes b.example.com /api new route (jwt|apiKey) to http://b:1',
    'tightens a.example.com /api route removed'
  ], 'another host is another route')
})

t.test('routes and diff: the API contract is listed, and losing or loosening it is a weakening', async (t) => {
  const config = loadConfig({ LOG_LEVEL: 'silent' })
  const mk = (openapi: Record<string, string> | false): EffectiveRoute => effectiveRoute(defineRoute({
    prefix: '/orders',
    upstream: 'http://orders:1',
    ...(openapi !== false ? { openapi: { spec: '/specs/orders.yaml', ...openapi } } : {})
  }), config)
  const block = mk({})
  const detect = mk({ mode: 'detect' })
  const passing = mk({ unknownOperations: 'pass' })
  const none = mk(false)
  t.equal(routeRow(block).contract, 'block /specs/orders.yaml', 'the contract column')
  t.equal(routeRow(none).contract, 'off')
  t.equal(routeRow(block).body, `buffered max ${config.bodyLimit}B`, 'a contract buffers bodies')
  t.match(formatTable([routeRow(detect)]), /CONTRACT[\s\S]*detect \/specs\/orders\.yaml/)
  const what = (a: EffectiveRoute, b: EffectiveRoute): string[] => diffRoutes([a], [b]).map((c) => `${c.kind} ${c.what}`)
  t.strictSame(what(block, none), ['weakens API contract block /specs/orders.yaml -> off'], 'contract removed')
  t.strictSame(what(block, detect), ['weakens API contract block /specs/orders.yaml -> detect /specs/orders.yaml'], 'block -> detect')
  t.strictSame(what(block, passing), ['weakens API contract now passes undeclared operations'])
  t.strictSame(what(none, block), ['tightens API contract off -> block /specs/orders.yaml'], 'contract added')
  t.strictSame(what(block, block), [], 'unchanged')
})

t.test('the installed command: exit codes and output of the built tool', async (t) => {
  const run = async (args: string[]): Promise<{ code: number | null, out: string }> => await new Promise((resolve) => {
    const child = spawn(process.execPath, [fileURLToPath(new URL('../dist/src/cli.js', import.meta.url)), ...args], { cwd: root, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { out += d.toString() })
    child.on('exit', (code) => { resolve({ code, out }) })
  })
  const ok = await run(['check'])
  t.equal(ok.code, 0, ok.out)
  t.match(ok.out, /^ok: 0 errors/m)
  const weak = await run(['check', '--strict', '--routes', WEAK])
  t.equal(weak.code, 1)
  t.match(weak.out, /inspection-off/)
  const usage = await run(['frobnicate'])
  t.equal(usage.code, 2)
  t.match(usage.out, /unknown command "frobnicate"/)
})
