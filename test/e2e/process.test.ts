import t from 'tap'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { runGateway, type GatewayProcess } from '../helpers/process.js'
import { closedPort, startUpstream } from '../helpers/upstream.js'
import { waitFor } from '../helpers/wait-for.js'

const routesJs = fileURLToPath(new URL('../fixtures/routes-js', import.meta.url))
const routesTry = fileURLToPath(new URL('../fixtures/routes-try', import.meta.url))
const routesContract = fileURLToPath(new URL('../fixtures/routes-contract', import.meta.url))

async function listening (p: GatewayProcess): Promise<string> {
  // Generous: a loaded machine starts a process slowly; the bound only guards against a hang.
  return await waitFor(() => /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(p.out())?.[1], { timeoutMs: 60_000, intervalMs: 50, message: 'gateway did not start' })
    .catch((err: unknown) => { throw new Error(`${(err as Error).message}: ${p.out()} ${p.err()}`) })
}

t.test('npm start defaults: example routes, demo upstream, one line per route and a working curl', async (t) => {
  const p = runGateway({ PORT: '0', DEMO_UPSTREAM_PORT: String(await closedPort()) })
  t.teardown(() => { p.child.kill('SIGKILL') })
  const url = await listening(p)
  await waitFor(() => p.out().includes('try: curl'), { message: 'the curl hint' })
  t.match(p.out(), /route \/echo -> http:\/\/127\.0\.0\.1:\d+/)
  t.match(p.out(), /route \/public -> /)
  t.match(p.out(), /try: curl -i -H 'x-api-key: [^']+' http:\/\/127\.0\.0\.1:\d+\/echo\/hello/)
  const curl = /try: curl -i -H '([^:]+): ([^']+)' (http:\/\/\S+)/.exec(p.out())
  const tried = await request(curl?.[3] ?? '', { headers: { [curl?.[1] ?? '']: curl?.[2] ?? '' } })
  t.equal(tried.statusCode, 200, 'the printed curl works')
  t.match(await tried.body.text(), /demo-upstream/)
  const anonymous = await request(`${url}/echo/hello`)
  t.equal(anonymous.statusCode, 401, 'and without the credential it does not')
  await anonymous.body.text()
  const health = await request(`${url}/healthz`)
  t.equal(health.statusCode, 200)
  t.strictSame(await health.body.json(), { status: 'ok' })
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)
})

t.test('a route module with an API contract through ROUTES_DIR: named on its startup line, enforced', async (t) => {
  const up = await startUpstream(t)
  const p = runGateway({ PORT: '0', DEMO_UPSTREAM_PORT: '0', ROUTES_DIR: routesContract, PETS_UPSTREAM_URL: up.url })
  t.teardown(() => { p.child.kill('SIGKILL') })
  const url = await listening(p)
  await waitFor(() => p.out().includes('route /pets-api'), { message: 'the route line' })
  t.match(p.out(), /route \/pets-api -> http:\/\/127\.0\.0\.1:\d+ \(auth: public, [^)]*, openapi: block\)/, 'the contract on the route line')
  const ok = await request(`${url}/pets-api/pets?limit=10`)
  t.equal(ok.statusCode, 200, 'a declared operation passes')
  await ok.body.text()
  const polluted = await request(`${url}/pets-api/pets?limit=10&limit=1000`)
  t.equal(polluted.statusCode, 400, 'a one-valued parameter given twice is refused')
  t.match(await polluted.body.json(), { code: 'GW_CONTRACT_VIOLATION', violations: ['/query/limit: repeated'] })
  t.equal(up.requests.length, 1, 'the upstream received only the declared one')
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)
})

t.test('npm start with the demo upstream port taken: the demo moves to a free port, the other program gets nothing', async (t) => {
  const other = await startUpstream(t, (_req, res) => { res.end('another program') })
  const p = runGateway({ PORT: '0', DEMO_UPSTREAM_PORT: String(other.port) })
  t.teardown(() => { p.child.kill('SIGKILL') })
  await listening(p)
  for (let i = 0; i < 100 && !p.out().includes('try: curl'); i++) await new Promise((resolve) => setTimeout(resolve, 20))
  const moved = /demo upstream on (http:\/\/127\.0\.0\.1:(\d+)) \(development only\): DEMO_UPSTREAM_PORT (\d+) is taken by another program/.exec(p.out())
  t.ok(moved, 'the move is logged with the port that was taken')
  t.equal(moved?.[3], String(other.port))
  t.not(moved?.[2], String(other.port))
  t.ok(p.out().includes(`route /echo -> ${moved?.[1] ?? 'none'} `), 'the demo routes follow the demo upstream')
  const curl = /try: curl -i -H '([^:]+): ([^']+)' (http:\/\/\S+)/.exec(p.out())
  const tried = await request(curl?.[3] ?? '', { headers: { [curl?.[1] ?? '']: curl?.[2] ?? '' } })
  t.equal(tried.statusCode, 200, 'the printed curl works')
  t.match(await tried.body.text(), /demo-upstream/)
  t.equal(other.requests.length, 0, 'the program on the demo port received nothing')
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)
})

t.test('production without configuration refuses to start and names the variables', async (t) => {
  const p = runGateway({ NODE_ENV: 'production', PORT: '0' })
  t.equal(await p.exited, 1)
  t.match(p.err(), /JWT_SECRET, JWT_PUBLIC_KEY, JWKS_URL or API_KEYS/)

  const demo = runGateway({ NODE_ENV: 'production', PORT: '0', API_KEYS: 'demo:demo-key-portcullis-0123456789' })
  t.equal(await demo.exited, 1)
  t.match(demo.err(), /API_KEYS: the demo key is refused in production/)
  t.notMatch(demo.err(), /demo-key-portcullis/, 'the key itself is never printed')

  const noUpstream = runGateway({ NODE_ENV: 'production', PORT: '0', API_KEYS: 'svc:a-real-production-key-123456' })
  t.equal(await noUpstream.exited, 1)
  t.match(noUpstream.err(), /(ECHO|PUBLIC)_UPSTREAM_URL: required in production/)
})

t.test('production: the printed curl names the credential the first protected route takes, never a configured key', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const secret = 'svc:a-real-production-key-123456'
  for (const [strategy, header] of [['apiKey', "-H 'x-api-key: <key>'"], ['jwt', "-H 'authorization: Bearer <token>'"]]) {
    const p = runGateway({ NODE_ENV: 'production', PORT: '0', ROUTES_DIR: routesTry, SVC_STRATEGY: strategy, SVC_UPSTREAM_URL: up.url, API_KEYS: secret, JWT_SECRET: 'a-production-jwt-secret-0123456789abcdef' })
    t.teardown(() => { p.child.kill('SIGKILL') })
    const url = await listening(p)
    await waitFor(() => p.out().includes('try: curl'), { message: 'the curl hint' })
    t.ok(p.out().includes(`try: curl -i ${header} ${url}/svc/hello`), `${strategy}: ${header}`)
    t.notOk(p.out().includes('a-real-production-key'), 'the configured key is never printed')
    p.child.kill('SIGTERM')
    t.equal(await p.exited, 0)
  }
})

t.test('SIGTERM drains: in-flight requests finish, then the process exits', async (t) => {
  // The upstream takes its time so that the requests are still in flight at SIGTERM.
  const up = await startUpstream(t, (_req, res) => { setTimeout(() => { res.end('finished') }, 700) })
  const p = runGateway({ PORT: '0', DEMO_UPSTREAM_PORT: '0', ROUTES_DIR: routesJs, SLOW_UPSTREAM_URL: up.url, DRAIN_TIMEOUT_MS: '5000' })
  t.teardown(() => { p.child.kill('SIGKILL') })
  const url = await listening(p)
  const inflight = [request(`${url}/slow/a`), request(`${url}/slow/b`), request(`${url}/slow/c`)]
  await waitFor(() => up.requests.length === 3, { message: 'three requests at the upstream' })
  t.equal(up.requests.length, 3, 'three requests in flight')
  p.child.kill('SIGTERM')
  const results = await Promise.all(inflight)
  for (const r of results) {
    t.equal(r.statusCode, 200, 'in-flight request completed')
    t.equal(await r.body.text(), 'finished')
  }
  t.equal(await p.exited, 0, 'clean exit')
  await t.rejects(request(`${url}/healthz`), 'no longer accepting')
})

t.test('SIGTERM with a stdout nobody reads any more (the log collector died) still drains and exits', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const p = runGateway({ PORT: '0', DEMO_UPSTREAM_PORT: '0', ROUTES_DIR: routesJs, SLOW_UPSTREAM_URL: up.url, DRAIN_TIMEOUT_MS: '5000' })
  t.teardown(() => { p.child.kill('SIGKILL') })
  const url = await listening(p)
  p.child.stdout?.destroy()
  // An access line now waits in the log buffer for a pipe with no reader (EPIPE on flush).
  const r = await request(`${url}/slow/after`)
  t.equal(r.statusCode, 200)
  await r.body.text()
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0, 'exited cleanly; the unwritable lines are dropped')
})

t.test('access lines are written in batches: within a second, and all of them on exit', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const p = runGateway({ PORT: '0', DEMO_UPSTREAM_PORT: '0', ROUTES_DIR: routesJs, SLOW_UPSTREAM_URL: up.url })
  t.teardown(() => { p.child.kill('SIGKILL') })
  const url = await listening(p)
  const lines = (): number => p.out().split('\n').filter((l) => l.includes('"request completed"') && l.includes('/slow/batch')).length
  const r = await request(`${url}/slow/batch`)
  t.equal(r.statusCode, 200)
  await r.body.text()
  t.equal(lines(), 0, 'one short line stays in the 4 KiB buffer at first')
  // No more traffic and no exit: only the periodic flush can write it.
  await waitFor(() => lines() > 0, { message: 'the periodic flush' })
  t.equal(lines(), 1, 'the periodic flush writes it')
  for (let i = 0; i < 5; i++) {
    const more = await request(`${url}/slow/batch?i=${i}`)
    await more.body.text()
  }
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)
  t.equal(lines(), 6, 'every line is written by the time the process exits')
})

t.test('LOG_BUFFER_BYTES=0 writes every access line at once', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const p = runGateway({ PORT: '0', DEMO_UPSTREAM_PORT: '0', ROUTES_DIR: routesJs, SLOW_UPSTREAM_URL: up.url, LOG_BUFFER_BYTES: '0' })
  t.teardown(() => { p.child.kill('SIGKILL') })
  const url = await listening(p)
  const r = await request(`${url}/slow/direct`)
  await r.body.text()
  await waitFor(() => /"url":"\/slow\/direct".*"request completed"/.test(p.out()), { message: 'the access line' })
  t.match(p.out(), /"url":"\/slow\/direct".*"request completed"/)
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)
})

t.test('LOG_BUFFER_BYTES at its maximum starts, fills its buffer, and writes every line by exit', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const p = runGateway({ PORT: '0', DEMO_UPSTREAM_PORT: '0', ROUTES_DIR: routesJs, SLOW_UPSTREAM_URL: up.url, LOG_BUFFER_BYTES: '16384' })
  t.teardown(() => { p.child.kill('SIGKILL') })
  const url = await listening(p)
  const lines = (): number => p.out().split('\n').filter((l) => l.includes('"request completed"') && l.includes('/slow/full')).length
  // ~450 bytes a line, sent at once (well inside the one-second flush): 60 lines pass 16 KiB,
  // so the buffer is written when full and the rest waits.
  await Promise.all(Array.from({ length: 60 }, async (_, i) => {
    const r = await request(`${url}/slow/full?i=${i}&pad=${'p'.repeat(100)}`)
    await r.body.text()
  }))
  await waitFor(() => lines() > 0, { message: 'the full buffer written' })
  t.ok(lines() > 0 && lines() < 60, `a full buffer is written at once (${lines()} of 60 lines out)`)
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)
  t.equal(lines(), 60, 'every line is written by the time the process exits')
})
