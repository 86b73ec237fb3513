/**
 * The process on SIGTERM with DRAIN_DELAY_MS: /readyz answers 503 while new connections are still
 * accepted and served, then the listener closes and the process exits cleanly. And the startup
 * hints (route table, `try: curl`) are printed once, not once per cluster worker.
 */
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { runGateway, type GatewayProcess } from '../helpers/process.js'
import { startUpstream } from '../helpers/upstream.js'

const routesJs = fileURLToPath(new URL('../fixtures/routes-js', import.meta.url))

async function listening (p: GatewayProcess, workers = 1): Promise<string> {
  for (;;) {
    const all = [...p.out().matchAll(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/g)]
    if (all.length >= workers && all[0]?.[1] !== undefined) return all[0][1]
    if (p.child.exitCode !== null) throw new Error(`gateway exited: ${p.out()} ${p.err()}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** One request on a new connection: its status, or the connection error's code. */
async function fresh (url: string): Promise<number | string> {
  try {
    const res = await request(url, { reset: true })
    await res.body.text()
    return res.statusCode
  } catch (err) {
    return (err as { code?: string }).code ?? 'error'
  }
}

t.test('DRAIN_DELAY_MS: /readyz turns 503 while new connections are still served, then the process exits', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const p = runGateway({ PORT: '0', DEMO_UPSTREAM_PORT: '0', ROUTES_DIR: routesJs, SLOW_UPSTREAM_URL: up.url, DRAIN_DELAY_MS: '8000', LOG_BUFFER_BYTES: '0' })
  t.teardown(() => { p.child.kill('SIGKILL') })
  const url = await listening(p)
  t.equal(await fresh(`${url}/readyz`), 200, 'ready before SIGTERM')
  p.child.kill('SIGTERM')
  let ready: number | string = 200
  while (ready === 200) ready = await fresh(`${url}/readyz`)
  t.equal(ready, 503, '/readyz answers 503 on a new connection after SIGTERM (not refused)')
  t.equal(await fresh(`${url}/slow/after-sigterm`), 200, 'a new connection is still accepted and proxied')
  t.equal(up.requests.length, 1)
  t.equal(await p.exited, 0, 'exits cleanly once the delay and the drain are over')
  t.not(await fresh(`${url}/healthz`), 200, 'no longer accepting')
})

t.test('WORKERS=2: the route table and the curl hint are printed once', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const p = runGateway({ PORT: '0', DEMO_UPSTREAM_PORT: '0', ROUTES_DIR: routesJs, SLOW_UPSTREAM_URL: up.url, WORKERS: '2', LOG_BUFFER_BYTES: '0' })
  t.teardown(() => { p.child.kill('SIGKILL') })
  await listening(p, 2)
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)
  t.equal([...p.out().matchAll(/Server listening at /g)].length, 2, 'two workers listened')
  t.equal([...p.out().matchAll(/"route \/slow -> /g)].length, 1, 'one route table')
  t.equal([...p.out().matchAll(/"try: curl /g)].length, 1, 'one curl hint')
})
