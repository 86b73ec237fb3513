/**
 * WORKERS=N: several gateway processes share the public port (node:cluster) and one real Redis
 * (127.0.0.1:6379), so a route's limit holds across them; SIGTERM drains every worker; a worker
 * that dies is replaced; production refuses per-process limits (WORKERS > 1 without REDIS_URL).
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { runGateway, type GatewayProcess } from '../helpers/process.js'
import { startUpstream } from '../helpers/upstream.js'
import { REDIS_URL, requireRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait-for.js'

const routesDir = fileURLToPath(new URL('../fixtures/routes-cluster', import.meta.url))

interface LogLine { pid?: number, msg?: string, status?: number, url?: string }

function lines (p: GatewayProcess): LogLine[] {
  return p.out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine)
}

/** Waits until `count` distinct processes log that they listen; returns the URL and their pids. */
async function listeningWorkers (p: GatewayProcess, count: number): Promise<{ url: string, pids: Set<number> }> {
  // Generous: a loaded machine starts processes slowly; the bound only guards against a hang.
  return await waitFor(() => {
    const listening = lines(p).filter((l) => l.msg?.startsWith('Server listening at http://127.0.0.1:') === true)
    const pids = new Set(listening.map((l) => l.pid ?? 0))
    return pids.size >= count ? { url: (listening[0]?.msg ?? '').replace('Server listening at ', ''), pids } : undefined
  }, { timeoutMs: 60_000, intervalMs: 50, message: 'workers did not start' }).catch((err: unknown) => { throw new Error(`${(err as Error).message}: ${p.out()} ${p.err()}`) })
}

/** One request on its own connection, so the cluster spreads them over the workers. */
async function hit (url: string): Promise<number> {
  const res = await request(url, { reset: true })
  await res.body.text()
  return res.statusCode
}

t.test('two workers share the port and one Redis-backed limit; SIGTERM drains both', async (t) => {
  const redis = await requireRedis(t, 'cluster')
  const up = await startUpstream(t)
  const p = runGateway({ PORT: '0', DEMO_UPSTREAM_PORT: '0', WORKERS: '2', REDIS_URL, REDIS_KEY_PREFIX: redis.prefix, ROUTES_DIR: routesDir, LIMITED_UPSTREAM_URL: up.url, IP_RATE_LIMIT_MAX: '100000' })
  t.teardown(() => { p.child.kill('SIGKILL') })
  const { url, pids } = await listeningWorkers(p, 2)
  t.notOk(pids.has(p.child.pid ?? -1), 'the primary itself does not serve')

  const statuses: number[] = []
  for (let round = 0; round < 6; round++) {
    statuses.push(...await Promise.all(Array.from({ length: 10 }, async () => await hit(`${url}/limited/items`))))
  }
  const admitted = statuses.filter((s) => s === 200).length
  t.equal(admitted, 20, 'exactly the route limit is admitted across both workers')
  t.equal(statuses.filter((s) => s === 429).length, 40, 'the rest are rate limited')
  t.equal(up.requests.length, 20, 'the upstream saw only the admitted requests')
  t.ok((await redis.keys()).length > 0, 'the budget lives in the shared Redis')

  await waitFor(() => lines(p).filter((l) => l.msg === 'request completed' && l.url?.startsWith('/limited/') === true).length === statuses.length, { message: 'an access line per request on stdout' })
  const served = new Set(lines(p).filter((l) => l.msg === 'request completed' && l.url?.startsWith('/limited/') === true).map((l) => l.pid))
  t.equal(served.size, 2, 'both workers served requests')

  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0, 'the primary exits cleanly once the workers drained')
  for (const pid of pids) {
    t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `worker ${pid} is gone`)
  }
})

t.test('a worker that dies is replaced and the port keeps serving', async (t) => {
  const redis = await requireRedis(t, 'cluster-restart')
  const up = await startUpstream(t)
  const p = runGateway({ PORT: '0', DEMO_UPSTREAM_PORT: '0', WORKERS: '2', REDIS_URL, REDIS_KEY_PREFIX: redis.prefix, ROUTES_DIR: routesDir, LIMITED_UPSTREAM_URL: up.url })
  t.teardown(() => { p.child.kill('SIGKILL') })
  const { url, pids } = await listeningWorkers(p, 2)
  const [victim] = [...pids]
  process.kill(victim ?? 0, 'SIGKILL')
  const after = await listeningWorkers(p, 3)
  t.equal(after.pids.size, 3, 'a new worker took the dead one\'s place')
  t.match(p.err(), /worker 1 \(pid \d+\) exited \(SIGKILL\); replacing it|worker 2 \(pid \d+\) exited \(SIGKILL\); replacing it/)
  for (let i = 0; i < 6; i++) t.equal(await hit(`${url}/limited/x`), 200)
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)
})

t.test('WORKERS is validated, and production refuses per-process limits', async (t) => {
  const noRedis = runGateway({ NODE_ENV: 'production', PORT: '0', WORKERS: '2', API_KEYS: 'svc:a-real-production-key-123456', ROUTES_DIR: routesDir, LIMITED_UPSTREAM_URL: 'http://127.0.0.1:9' })
  t.equal(await noRedis.exited, 1)
  t.match(noRedis.err(), /WORKERS: more than one worker process needs REDIS_URL in production/)

  for (const bad of ['0', '-1', 'two', '1.5', '10000']) {
    const p = runGateway({ PORT: '0', WORKERS: bad })
    t.equal(await p.exited, 1, `WORKERS=${bad} refused`)
    t.match(p.err(), /WORKERS/)
  }
})

t.test('a worker that cannot start stops the group with status 1 instead of restarting forever', async (t) => {
  // The configuration is valid (the primary checks it before forking); each worker fails when
  // it imports the route module.
  const bad = mkdtempSync(join(tmpdir(), 'portcullis-broken-routes-'))
  t.teardown(() => { rmSync(bad, { recursive: true, force: true }) })
  writeFileSync(join(bad, 'broken.mjs'), `throw new Error('broken route module ${randomBytes(4).toString('hex')}')\n`)
  const p = runGateway({ PORT: '0', DEMO_UPSTREAM_PORT: '0', WORKERS: '2', REDIS_URL, ROUTES_DIR: bad })
  t.teardown(() => { p.child.kill('SIGKILL') })
  // A group that restarted forever would never exit: the test's own timeout fails it.
  t.equal(await p.exited, 1)
  t.match(p.err(), /portcullis: configuration error: .*broken\.mjs \(line 1\): failed to load: broken route module /)
  t.match(p.err(), /worker \d failed to start \(code 1\); stopping/)
})
