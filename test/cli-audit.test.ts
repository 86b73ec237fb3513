/**
 * `portcullis audit`: bypass attempts sent through the real gateway (the sandbox) on a route
 * folder; a bypass is judged on what the recording stand-in received. Each weak fixture must be
 * caught by the probe family that targets its weakness, and the tight configurations pass.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { runCli } from '../src/cli.js'
import { formatAudit, type AuditReport, type ProbeResult } from '../src/cli/audit.js'
import { DEMO_API_KEY, DEMO_JWT_SECRET } from '../src/config.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const WEAK = fileURLToPath(new URL('fixtures/routes-weak', import.meta.url))
const LITERAL = fileURLToPath(new URL('fixtures/routes-literal', import.meta.url))
const BAD = fileURLToPath(new URL('fixtures/routes-bad', import.meta.url))

async function cli (argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await runCli(argv, { env: { LOG_LEVEL: 'silent', ...env }, out: (s) => { out += s }, err: (s) => { err += s } })
  return { code, out, err }
}

async function audit (argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number, report: AuditReport, out: string }> {
  const r = await cli(['audit', '--json', ...argv], env)
  return { code: r.code, report: JSON.parse(r.out) as AuditReport, out: r.out }
}

const bypasses = (r: AuditReport): ProbeResult[] => r.probes.filter((p) => p.verdict === 'bypass')

function controlsReached (t: Test, r: AuditReport): void {
  for (const route of r.routes) {
    const control = r.probes.find((p) => p.route === route.prefix && p.family === 'control')
    t.equal(control?.verdict, 'pass', `control of ${route.prefix}: ${JSON.stringify(control)}`)
    t.ok(control?.reached.some((x) => x.route === route.prefix), `the control of ${route.prefix} reached its upstream`)
  }
}

t.test('bundled routes, default environment: the demo /public route shares /echo\'s upstream, and nothing else gets through', async (t) => {
  const { code, report, out } = await audit([])
  t.equal(code, 1)
  controlsReached(t, report)
  const found = bypasses(report)
  t.same(found.map((p) => `${p.route} ${p.family} ${p.probe}`), ['/public credentials public route (no credential)'], JSON.stringify(found, null, 2))
  t.match(found[0]?.findings[0], /inside protected route \/echo's upstream space http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(report.controlFailures, 0)
  // Every family ran on the protected route, with the probes the brief names.
  const echo = report.probes.filter((p) => p.route === '/echo')
  for (const f of ['credentials', 'tokens', 'placement', 'path', 'method', 'headers', 'body', 'smuggling', 'websocket', 'rate-limit']) t.ok(echo.some((p) => p.family === f), `family ${f} probed`)
  for (const probe of ['alg none', 'RS256 with an unknown key', 'expired', 'not yet valid', 'API key in ?api_key=', 'second authorization header', 'dot segments (no credential)', 'encoded slash (credential)', 'Content-Length + Transfer-Encoding', 'declared beyond BODY_LIMIT', 'chunked beyond BODY_LIMIT', 'x-forwarded-for', 'upgrade without credential', 'percent-encoded letter']) {
    t.ok(echo.some((p) => p.probe === probe && p.verdict === 'pass'), `${probe} probed and refused`)
  }
  t.ok(report.notProbed.some((s) => s.probe === 'wrong audience' && /JWT_AUDIENCE not set/.test(s.reason)), 'a claim the configuration does not check is reported as not probed')
  t.notMatch(out, DEMO_API_KEY, 'the API key is never printed')
  t.notMatch(out, DEMO_JWT_SECRET)
  t.notMatch(out, /eyJ[A-Za-z0-9_-]+\.eyJ/, 'no token is printed')
  const table = formatAudit(report)
  t.match(table, /^\/echo +1\/0 +4\/0 +5\/0 +7\/0 +30\/0 +3\/0 +9\/0 +2\/0 +7\/0 +2\/0 +6\/0$/m)
  t.match(table, /^\/public \(public\) +1\/0 +0\/1 /m)
})

t.test('claims the configuration checks are probed; the rate limit holds against path spellings', async (t) => {
  const { report } = await audit([], { JWT_AUDIENCE: 'orders', JWT_ISSUER: 'https://issuer.example' })
  for (const probe of ['wrong audience', 'wrong issuer']) t.ok(report.probes.some((p) => p.route === '/echo' && p.probe === probe && p.status === 401 && p.verdict === 'pass'), probe)
  t.notOk(report.notProbed.some((s) => s.probe === 'wrong audience'))
  controlsReached(t, report)
  // Run in the limited sandbox: once the limit is used up, the spellings get 429 (or 400 from the request guard).
  const spellings = report.probes.filter((p) => p.route === '/echo' && p.family === 'rate-limit')
  t.same(spellings.map((p) => p.probe), ['same path', 'trailing slash', 'duplicate slash', 'percent-encoded letter', 'case', 'case of the rest'])
  t.ok(spellings.every((p) => p.verdict === 'pass' && p.reached.length === 0 && (p.status === 429 || p.status === 400)), JSON.stringify(spellings))
  t.equal(spellings.find((p) => p.probe === 'trailing slash')?.status, 429)
})

t.test('routes-weak: the public /status on /orders\' upstream path is a bypass', async (t) => {
  const { code, report } = await audit(['--routes', WEAK])
  t.equal(code, 1)
  controlsReached(t, report)
  const found = bypasses(report)
  t.equal(found.length, 1, JSON.stringify(found, null, 2))
  t.match(found[0], { route: '/status', family: 'credentials', request: 'GET /status/audit', reached: [{ route: '/status', target: '/api/audit' }] })
  t.match(found[0]?.findings[0], 'GET /api/audit reached /status\'s upstream (http://127.0.0.1:9/api/audit) without a valid credential: inside protected route /orders\'s upstream space http://127.0.0.1:9/api')
  const table = formatAudit(report)
  t.match(table, /^\/status \(public\) +1\/0 +0\/1 /m)
  t.match(table, /^ {2}\/status credentials: public route \(no credential\) {2}\[GET \/status\/audit\] -> 200$/m)
  t.match(table, /^FAILED: \d+ probes, 1 bypass$/m)
})

t.test('PATH_CHECK=literal: spellings of a protected prefix reach the public catch-all route, and the backend', async (t) => {
  const literal = await audit(['--routes', LITERAL], { PATH_CHECK: 'literal' })
  t.equal(literal.code, 1)
  controlsReached(t, literal.report)
  const found = bypasses(literal.report)
  t.same(found.map((p) => p.request).sort(), ['GET /ADMIN/x', 'GET /admin./x', 'GET /admin;x/x'], JSON.stringify(found, null, 2))
  for (const p of found) {
    t.equal(p.family, 'path')
    t.match(p.reached, [{ route: '/' }], 'through the public route')
    t.match(p.findings.join('\n'), /inside protected route \/admin's upstream space http:\/\/127\.0\.0\.1:9\/admin/)
  }
  const strict = await audit(['--routes', LITERAL])
  t.equal(strict.code, 0, JSON.stringify(bypasses(strict.report), null, 2))
  t.ok(strict.report.probes.some((p) => p.request === 'GET /ADMIN/x' && p.status === 400 && p.reached.length === 0), 'PATH_CHECK=strict refuses the case variant')
})

t.test('invalid configuration and usage', async (t) => {
  const bad = await cli(['audit', '--routes', BAD])
  t.equal(bad.code, 1)
  t.match(bad.err, /broken\.ts/)
  t.equal(bad.out, '')
  t.equal((await cli(['audit', 'extra'])).code, 2)
})

t.test('the installed command: bundled routes with the public route on its own service pass, exit 0', async (t) => {
  // A real process: route modules read their upstream from the process environment.
  const { code, out } = await new Promise<{ code: number | null, out: string }>((resolve) => {
    const child = spawn(process.execPath, [fileURLToPath(new URL('../dist/src/cli.js', import.meta.url)), 'audit'], { cwd: root, env: { PATH: process.env.PATH ?? '', PUBLIC_UPSTREAM_URL: 'http://127.0.0.1:8082' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let text = ''
    child.stdout.on('data', (d: Buffer) => { text += d.toString() })
    child.stderr.on('data', (d: Buffer) => { text += d.toString() })
    child.on('exit', (c) => { resolve({ code: c, out: text }) })
  })
  t.equal(code, 0, out)
  t.match(out, /^\/echo +1\/0 +4\/0 +5\/0 +7\/0 +30\/0 +3\/0 +9\/0 +2\/0 +7\/0 +2\/0 +6\/0$/m)
  t.match(out, /^\/public \(public\) +1\/0 +1\/0 +- +- +15\/0 +3\/0 +9\/0 +2\/0 +7\/0 +2\/0 +6\/0$/m)
  t.match(out, /^ok: \d+ probes, 0 bypasses$/m)
  t.notMatch(out, /^bypasses$/m)
})
