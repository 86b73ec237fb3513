/**
 * Portcullis as a user gets it: `npm pack`, install the tarball into a fresh host app outside the
 * repository (examples/host-app), build it with tsc, run it and exercise the gateway over TCP.
 */
import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startUpstream } from '../helpers/upstream.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const tsc = join(root, 'node_modules/typescript/bin/tsc')
const ALICE = 'alice-key-0123456789abcdef'
const BOB = 'bob-key-0123456789abcdef'

interface Run { code: number | null, stdout: string, stderr: string }

async function run (cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<Run> {
  return await new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, npm_config_update_notifier: 'false' } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

t.setTimeout(300_000)

const work = mkdtempSync(join(tmpdir(), 'portcullis-pack-'))
t.teardown(() => rmSync(work, { recursive: true, force: true }))
const app = join(work, 'app')

t.before(async () => {
  if (!existsSync(join(root, 'dist/src/index.js'))) {
    const b = await run('npm', ['run', 'build'], root, 120_000)
    if (b.code !== 0) throw new Error(`build failed: ${b.stderr}`)
  }
})

let tarball = ''

t.test('npm pack ships dist, the ruleset and no tests', async (t) => {
  const r = await run('npm', ['pack', '--json', '--pack-destination', work], root, 120_000)
  t.equal(r.code, 0, r.stderr)
  const [info] = JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as Array<{ filename: string, files: Array<{ path: string }> }>
  const files = info.files.map((f) => f.path)
  tarball = join(work, info.filename)
  t.ok(existsSync(tarball), 'tarball written')
  t.ok(files.includes('dist/src/index.js'))
  t.ok(files.includes('dist/src/index.d.ts'))
  t.ok(files.includes('plugins/inspect/rules/portcullis.json'))
  t.ok(files.includes('package.json'))
  t.strictSame(files.filter((f) => /^(test|bench|examples)\//.test(f)), [], 'no test/, bench/ or examples/')
  t.ok(files.includes('CHANGELOG.md'))
  t.strictSame(files.filter((f) => f.startsWith('dist/routes/')), [], 'the example routes are not shipped')
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { private?: boolean, bin?: Record<string, string>, engines?: Record<string, string> }
  t.equal(pkg.private, undefined, 'publishable')
  t.strictSame(pkg.bin, { portcullis: 'dist/src/cli.js' })
  t.ok(pkg.engines?.node !== undefined)
  t.match(readFileSync(join(root, 'dist/src/cli.js'), 'utf8'), /^#!\/usr\/bin\/env node\n/, 'the bin starts with a shebang')
  // Keep a Changelog: `## [0.1.0] - date` once released, `## [Unreleased]` naming the version before.
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version.replaceAll('.', '\\.')
  t.match(readFileSync(join(root, 'CHANGELOG.md'), 'utf8'), new RegExp(`^## (?:\\[?${version}\\]?\\b|\\[Unreleased\\]\\n+[^#]*\\bversion ${version}\\b)`, 'm'), 'a changelog entry for this version')
})

t.test('host app installs from the tarball and compiles in strict mode', async (t) => {
  t.ok(tarball !== '', 'packed')
  cpSync(join(root, 'examples/host-app'), app, { recursive: true, filter: (src) => !/node_modules|dist/.test(src.slice(root.length)) })
  const i = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball, 'fastify'], app, 150_000)
  t.equal(i.code, 0, i.stderr)
  t.ok(existsSync(join(app, 'node_modules/portcullis/dist/src/index.js')))
  t.ok(existsSync(join(app, 'node_modules/portcullis/plugins/inspect/rules/portcullis.json')))
  const b = await run(process.execPath, [tsc, '-p', join(app, 'tsconfig.json')], app, 120_000)
  t.equal(b.code, 0, b.stdout + b.stderr)
  t.ok(existsSync(join(app, 'dist/server.js')))
})

t.test('the built host app: own route untouched, policies on /me, proxied prefix', async (t) => {
  const upstream = await startUpstream(t)
  const child = spawn(process.execPath, [join(app, 'dist/server.js')], {
    cwd: app,
    env: { PATH: process.env.PATH ?? '', PORT: '0', HOST_APP_API_KEYS: `alice:${ALICE},bob:${BOB}`, HOST_APP_UPSTREAM: upstream.url },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  t.teardown(async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
  })
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`no listening line; stderr: ${stderr}`)), 20_000)
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
      const m = /listening (\d+)/.exec(out)
      if (m !== null) { clearTimeout(timer); resolve(Number(m[1])) }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited ${String(code)}: ${stderr}`)) })
  })
  const base = `http://127.0.0.1:${port}`

  const hello = await fetch(`${base}/hello`)
  t.equal(hello.status, 200)
  t.strictSame(await hello.json(), { hello: 'world' })
  for (const h of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'content-security-policy', 'x-content-type-options', 'strict-transport-security']) {
    t.equal(hello.headers.get(h), null, `/hello has no ${h}`)
  }

  const noKey = await fetch(`${base}/me`)
  t.equal(noKey.status, 401)
  t.strictSame(await noKey.json(), { statusCode: 401, code: 'GW_AUTH_UNAUTHORIZED', error: 'Unauthorized', message: 'Unauthorized' }, 'the host handler names the status, not the error class')

  const attack = await fetch(`${base}/me?q=${encodeURIComponent('<script>alert(1)</script>')}`, { headers: { 'x-api-key': BOB } })
  t.equal(attack.status, 403)
  t.match(await attack.json(), { statusCode: 403, code: 'GW_INSPECT_BLOCKED', error: 'Forbidden' })

  for (let i = 1; i <= 3; i++) {
    const ok = await fetch(`${base}/me`, { headers: { 'x-api-key': ALICE } })
    t.equal(ok.status, 200, `call ${i}`)
    t.strictSame(await ok.json(), { consumer: 'alice' })
  }
  const limited = await fetch(`${base}/me`, { headers: { 'x-api-key': ALICE } })
  t.equal(limited.status, 429)
  t.match(await limited.json(), { statusCode: 429, code: 'GW_RATE_LIMITED', error: 'Too Many Requests' })

  const denied = await fetch(`${base}/upstream/x`)
  t.equal(denied.status, 401)
  t.equal(upstream.requests.length, 0, 'unauthenticated request not proxied')

  const proxied = await fetch(`${base}/upstream/x`, { headers: { 'x-api-key': ALICE } })
  t.equal(proxied.status, 200)
  await proxied.arrayBuffer()
  t.equal(upstream.requests.length, 1)
  t.equal(upstream.requests[0].url, '/x')
  t.equal(upstream.requests[0].headers['x-consumer-id'], 'alice')
  t.equal(upstream.requests[0].headers['x-api-key'], undefined, 'API key not forwarded')
})

t.test('wrong policies do not compile in the host app', async (t) => {
  const cases: Array<[string, string]> = [
    ['bad-public-consumer.ts', "routePolicy({ auth: false, rateLimit: { max: 1, timeWindow: 1000, keyBy: 'consumer' } })"],
    ['bad-strategy.ts', "routePolicy({ auth: { strategies: ['basic'] } })"],
    ['bad-route.ts', "defineRoute({ prefix: '/p', upstream: 'http://127.0.0.1:1', auth: false, rateLimit: { max: 1, timeWindow: 1000, keyBy: 'consumer' } })"]
  ]
  const good = join(app, 'src/good-policy.ts')
  writeFileSync(good, "import { routePolicy } from 'portcullis'\nexport const p = routePolicy({ auth: false, rateLimit: { max: 1, timeWindow: 1000, keyBy: 'ip' } })\n")
  const g = await run(process.execPath, [tsc, '-p', join(app, 'tsconfig.json'), '--noEmit'], app, 120_000)
  t.equal(g.code, 0, `a valid public policy compiles: ${g.stdout}`)
  rmSync(good)
  for (const [file, expr] of cases) {
    const path = join(app, 'src', file)
    const fn = expr.slice(0, expr.indexOf('('))
    writeFileSync(path, `import { ${fn} } from 'portcullis'\nexport const p = ${expr}\n`)
    const r = await run(process.execPath, [tsc, '-p', join(app, 'tsconfig.json'), '--noEmit'], app, 120_000)
    rmSync(path)
    t.not(r.code, 0, `${file} fails to compile`)
    t.match(r.stdout, new RegExp(`src/${file.replace('.', '\\.')}\\(2,\\d+\\): error TS2(322|345|769)`), `${file}: type error in the file`)
    t.notMatch(r.stdout, /TS2872|TS6133/, 'no unrelated error')
  }
  t.ok(readFileSync(join(app, 'src/server.ts'), 'utf8').includes('routePolicy'))
})

interface Child { out: () => string, err: () => string, exited: Promise<number | null>, kill: () => Promise<void> }

function spawnIn (cmd: string, args: string[], env: Record<string, string>): Child {
  const child = spawn(cmd, args, { cwd: app, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (c: Buffer) => { out += c.toString() })
  child.stderr.on('data', (c: Buffer) => { err += c.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code) }))
  return {
    out: () => out,
    err: () => err,
    exited,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    }
  }
}

/** Resolves with the first match of `re` in the child's stdout (rejects if it exits first). */
async function waitFor (c: Child, re: RegExp): Promise<RegExpExecArray> {
  let exited = false
  c.exited.then(() => { exited = true }, () => {})
  for (;;) {
    const m = re.exec(c.out())
    if (m !== null) return m
    if (exited) throw new Error(`exited before ${String(re)}: ${c.out()} ${c.err()}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

t.test('the installed `portcullis` command: a clear message without routes, serves ROUTES_DIR', async (t) => {
  const bin = join(app, 'node_modules/.bin/portcullis')
  t.ok(existsSync(bin), 'npm linked the bin')
  const production = { NODE_ENV: 'production', PORT: '0', HOST: '127.0.0.1', API_KEYS: 'svc:svc-key-0123456789abcdef' }

  const bare = spawnIn(bin, [], production)
  t.equal(await bare.exited, 1, 'no ROUTES_DIR: exit status 1')
  t.equal(bare.err().trim().split('\n').length, 1, 'one line')
  t.match(bare.err(), /^portcullis: configuration error: .*ROUTES_DIR: not set.*set ROUTES_DIR to a folder of route modules/)
  t.notMatch(bare.err(), /ENOENT|at .*\.js:\d+/, 'no raw file-system error or stack')

  const missing = spawnIn(bin, [], { ...production, ROUTES_DIR: join(app, 'no-such-folder') })
  t.equal(await missing.exited, 1)
  t.match(missing.err(), /^portcullis: configuration error: .*ROUTES_DIR: not a readable directory/)

  const upstream = await startUpstream(t)
  const routes = join(app, 'routes')
  mkdirSync(routes, { recursive: true })
  writeFileSync(join(routes, 'svc.mjs'), "import { defineRoute } from 'portcullis'\nexport default defineRoute({ prefix: '/svc', upstream: process.env.SVC_URL, auth: false })\n")
  const checked = spawnIn(bin, ['check', '--json'], { ...production, ROUTES_DIR: routes, SVC_URL: upstream.url })
  t.equal(await checked.exited, 0, `the installed command checks the folder: ${checked.err()}`)
  t.match(JSON.parse(checked.out()), { ok: true, routes: 1 })
  t.equal(upstream.requests.length, 0, 'checking contacts no upstream')

  const served = spawnIn(bin, [], { ...production, ROUTES_DIR: routes, SVC_URL: upstream.url })
  t.teardown(served.kill)
  const [, url] = await waitFor(served, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/)
  const res = await fetch(`${url ?? ''}/svc/hello`)
  t.equal(res.status, 200)
  await res.arrayBuffer()
  t.equal(upstream.requests[0]?.url, '/hello', 'proxied by the route module that imports the package')
  await served.kill()
  t.equal(await served.exited, 0, 'drains and exits cleanly')
})

t.test('the built host app logs no secret and one access line per request', async (t) => {
  const upstream = await startUpstream(t)
  const secrets = {
    token: 'tok-Secret-8c1d5e2f7a',
    apiKeyQuery: 'apikey-Secret-4b9e0c3d',
    password: 'pw-Secret-6f2a8d1c',
    bearer: 'bearer-Secret-3e7b9a0d.payload.sig',
    wrongKey: 'wrong-key-Secret-0a1b2c3d4e',
    cookie: 'cookie-Secret-5d6e7f8091',
    code: 'oauth-code-Secret-2c4e6a8b'
  }
  const host = spawnIn(process.execPath, [join(app, 'dist/server.js')], { PORT: '0', LOG_LEVEL: 'info', HOST_APP_API_KEYS: `alice:${ALICE}`, HOST_APP_UPSTREAM: upstream.url })
  t.teardown(host.kill)
  const [, port] = await waitFor(host, /^listening (\d+)$/m)
  const base = `http://127.0.0.1:${port ?? ''}`
  const query = `token=${secrets.token}&api_key=${secrets.apiKeyQuery}&password=${secrets.password}&code=${secrets.code}`
  const calls: Array<[string, Record<string, string>, number]> = [
    [`/hello?${query}`, { authorization: `Bearer ${secrets.bearer}`, cookie: `session=${secrets.cookie}` }, 200],
    [`/me?${query}`, { 'x-api-key': ALICE, cookie: `sid=${secrets.cookie}` }, 200],
    [`/me?${query}`, { 'x-api-key': secrets.wrongKey }, 401],
    [`/me?${query}`, { authorization: `Bearer ${secrets.bearer}` }, 401],
    [`/upstream/x?${query}`, { 'x-api-key': ALICE, authorization: `Bearer ${secrets.bearer}` }, 200],
    [`/missing?${query}`, { 'x-api-key': ALICE }, 404]
  ]
  const ids: string[] = []
  for (const [path, headers, status] of calls) {
    const res = await fetch(base + path, { headers })
    await res.arrayBuffer()
    t.equal(res.status, status, path.slice(0, path.indexOf('?')))
    ids.push(res.headers.get('x-request-id') ?? '')
  }
  t.equal(upstream.requests.length, 1, 'one request proxied')
  await host.kill()
  t.equal(await host.exited, 0, 'drains and exits cleanly on SIGTERM')

  const log = host.out() + host.err()
  for (const [name, value] of Object.entries(secrets)) t.notOk(log.includes(value), `${name} is not in the log`)
  t.notOk(log.includes(ALICE), 'the valid API key is not in the log')
  const lines = host.out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string, reqId?: string, url?: string })
  t.ok(lines.length > ids.length, 'the host logged at info')
  t.equal(lines.filter((l) => l.msg === 'incoming request').length, 0, 'no Fastify request line')
  for (const [i, id] of ids.entries()) {
    t.ok(id !== '', `request ${i} has an id`)
    const done = lines.filter((l) => l.reqId === id && l.msg === 'request completed')
    t.equal(done.length, 1, `request ${i}: exactly one completion line`)
    t.match(done[0]?.url ?? '', /token=\[REDACTED\]/, `request ${i}: its URL is logged redacted`)
  }
})
