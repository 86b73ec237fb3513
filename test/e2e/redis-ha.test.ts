/**
 * The shared rate-limit store on highly available Redis, with real servers of the test's own
 * (test/helpers/redis-ha.ts; the test fails, never skips, without redis-server and redis-cli):
 * - Redis Cluster (REDIS_CLUSTER_NODES, three primaries): two gateways admit exactly a route's
 *   limit, fixed window and GCRA, for consumers whose limits live on different primaries; each
 *   limit's key is hash-tagged so its script runs on the one slot the tag names.
 * - Sentinel (REDIS_SENTINELS, primary + replica + three sentinels): traffic flows through a
 *   fail-closed and a fail-open gateway; the primary is SIGKILLed mid-traffic; the failure mode
 *   applies (closed: 503 with Retry-After; open: 200), nothing answers 500, and once the
 *   sentinels have promoted the replica the limits apply again, exactly, on the new primary.
 */
import t from 'tap'
import { performance } from 'node:perf_hooks'
import { Agent, request } from 'undici'
import { defineRoute } from 'portcullis'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'
import { ask, startRedisCluster, startRedisSentinels } from '../helpers/redis-ha.js'
import { waitFor } from '../helpers/wait-for.js'

const agent = new Agent({ connections: 64 })
t.teardown(() => agent.close())

const PREFIX = 'portcullis-test:ha:'

interface Answer { status: number, code: string | undefined, retryAfter: string | undefined, sentAt: number, ms: number }

async function call (gw: TestGateway, path: string, apiKey?: string): Promise<Answer> {
  const sentAt = performance.now()
  const res = await request(`${gw.url}${path}`, { dispatcher: agent, headers: apiKey === undefined ? {} : { 'x-api-key': apiKey } })
  const text = await res.body.text()
  let code: string | undefined
  try {
    code = (JSON.parse(text) as { code?: string }).code
  } catch {}
  return { status: res.statusCode, code, retryAfter: res.headers['retry-after'] as string | undefined, sentAt, ms: performance.now() - sentAt }
}

/** Whether the tier's last connection line says connected (startup waits only so long for it). */
function storeUp (gw: TestGateway, tier: 'ip' | 'route'): boolean {
  const states = gw.logs.filter((l) => l.tier === tier && typeof l.msg === 'string' && /^rate-limit store \(redis\) (connected|disconnected)/.test(l.msg))
  return states.at(-1)?.msg === 'rate-limit store (redis) connected; shared limits apply'
}

async function connected (...gateways: TestGateway[]): Promise<void> {
  await waitFor(() => gateways.every((gw) => storeUp(gw, 'ip') && storeUp(gw, 'route')), { timeoutMs: 60_000, message: 'every gateway connected to Redis' })
}

const keyOf = (consumer: string): string => `${consumer}-key-0123456789abcdef`

t.test('Redis Cluster: two gateways admit exactly each limit; every limit key is hash-tagged to one slot', async (t) => {
  const cluster = await startRedisCluster(t)
  const up = await startUpstream(t)
  // Consumers whose route limits live on two different primaries.
  const candidates = Array.from({ length: 24 }, (_, i) => `c${i}`)
  const byNode = new Map<number, string>()
  for (const c of candidates) {
    const port = await cluster.nodeOf(`${PREFIX}{/fixed|c:${c}}`)
    if (!byNode.has(port)) byNode.set(port, c)
  }
  const consumers = [...byNode.values()].slice(0, 2)
  t.equal(consumers.length, 2, `consumers on two primaries: ${consumers.join(', ')}`)
  const max = 5
  const start = async (): Promise<TestGateway> => await startGateway(t, {
    logLevel: 'info',
    env: {
      REDIS_CLUSTER_NODES: cluster.nodes.join(','),
      REDIS_KEY_PREFIX: PREFIX,
      // Exactness is under test here, not the deadline: a loaded machine may take over 200 ms.
      REDIS_TIMEOUT_MS: '5000',
      API_KEYS: candidates.map((c) => `${c}:${keyOf(c)}`).join(','),
      IP_RATE_LIMIT_MAX: '1000000'
    },
    routes: [
      defineRoute({ prefix: '/fixed', upstream: up.url, rateLimit: { max, timeWindow: '1 hour' } }),
      // 1 hour / 5: one admission every 12 minutes, plus a burst of 4: 5 at once, then none.
      defineRoute({ prefix: '/paced', upstream: up.url, rateLimit: { max, timeWindow: '1 hour', algorithm: 'gcra', burst: max - 1 } })
    ]
  })
  const a = await start()
  const b = await start()
  await connected(a, b)
  t.equal(a.config.rateLimit.redisClusterNodes?.length, 3)

  let sent = 0
  for (const path of ['/fixed/x', '/paced/x']) {
    for (const consumer of consumers) {
      const before = up.requests.length
      const answers = await Promise.all(Array.from({ length: 10 }, async () => await Promise.all([call(a, path, keyOf(consumer)), call(b, path, keyOf(consumer))]))).then((pairs) => pairs.flat())
      sent += answers.length
      const statuses = answers.map((x) => x.status)
      t.equal(statuses.filter((s) => s === 200).length, max, `${path} ${consumer}: exactly ${max} of ${answers.length} admitted across both gateways`)
      t.equal(statuses.filter((s) => s === 429).length, answers.length - max, 'the rest 429')
      t.ok(answers.every((x) => x.status !== 429 || (x.code === 'GW_RATE_LIMITED' && x.retryAfter !== undefined)), '429 GW_RATE_LIMITED with Retry-After')
      t.equal(up.requests.length - before, max, 'the upstream received only the admitted requests')
    }
  }

  const stored = await cluster.keys(`${PREFIX}*`)
  const expected = [
    ...consumers.map((c) => `${PREFIX}{/fixed|c:${c}}`),
    ...consumers.map((c) => `${PREFIX}g|{/paced|c:${c}}`),
    `${PREFIX}ip|{127.0.0.1}`
  ].sort()
  t.strictSame(stored.map((k) => k.key).sort(), expected, 'one key per limit, the limit key in a hash tag')
  for (const { key, port } of stored) {
    const tag = key.slice(key.indexOf('{') + 1, key.indexOf('}'))
    t.equal(await cluster.slotOf(key), await cluster.slotOf(tag), `${key}: the slot of its tag`)
    t.equal(port, await cluster.nodeOf(key), `${key}: stored on the primary serving that slot`)
  }
  t.ok(new Set(stored.map((k) => k.port)).size >= 2, 'the limits are spread over several primaries')
  const ipKey = stored.find((k) => k.key === `${PREFIX}ip|{127.0.0.1}`)
  t.equal(await ask(ipKey?.port ?? 0, 'GET', `${PREFIX}ip|{127.0.0.1}`), String(sent), 'the per-IP tier counted every request once, in the cluster')
  t.strictSame([...a.logs, ...b.logs].filter((l) => typeof l.level === 'number' && l.level >= 40 && typeof l.msg === 'string' && l.msg.startsWith('rate-limit store')), [], 'no store failure')
})

t.test('Sentinel: the primary killed mid-traffic; the failure mode applies, never a 500; limits resume on the promoted replica', async (t) => {
  const timeoutMs = 500
  const ha = await startRedisSentinels(t, { downAfterMs: 1000, failoverTimeoutMs: 3000 })
  const up = await startUpstream(t)
  const start = async (failureMode: 'closed' | 'open'): Promise<TestGateway> => await startGateway(t, {
    logLevel: 'info',
    env: {
      REDIS_SENTINELS: ha.sentinels.join(','),
      REDIS_SENTINEL_NAME: ha.name,
      REDIS_FAILURE_MODE: failureMode,
      REDIS_TIMEOUT_MS: String(timeoutMs),
      REDIS_KEY_PREFIX: PREFIX,
      IP_RATE_LIMIT_MAX: '1000000000'
    },
    routes: [
      defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: { max: 1_000_000_000, timeWindow: '1 hour' } }),
      defineRoute({ prefix: '/tight', upstream: up.url, auth: false, rateLimit: { max: 3, timeWindow: '1 hour' } })
    ]
  })
  const closed = await start('closed')
  const open = await start('open')
  await connected(closed, open)

  // Traffic: four sequential clients per gateway until told to stop.
  const answers = new Map<TestGateway, Answer[]>([[closed, []], [open, []]])
  const traffic = { stop: false }
  const clients = [closed, open].flatMap((gw) => Array.from({ length: 4 }, async () => {
    const out = answers.get(gw) as Answer[]
    while (!traffic.stop) out.push(await call(gw, '/svc/x'))
  }))
  // A failed assertion below stops the clients on teardown; their last calls may then fail.
  const finished = Promise.allSettled(clients)
  t.teardown(() => { traffic.stop = true })
  const after = (gw: TestGateway, at: number): Answer[] => (answers.get(gw) as Answer[]).filter((x) => x.sentAt >= at)
  await waitFor(() => after(closed, 0).length >= 20 && after(open, 0).length >= 20, { timeoutMs: 30_000, message: 'traffic through both gateways' })
  t.ok(after(closed, 0).every((x) => x.status === 200), 'before the failure: every request admitted')

  const killedAt = performance.now()
  await ha.primary.kill()
  const firstRefusal = await waitFor(() => after(closed, killedAt).find((x) => x.status === 503), { timeoutMs: 30_000, message: 'the fail-closed 503' })
  await waitFor(async () => await ha.primaryPort() === ha.replica.port, { timeoutMs: 90_000, intervalMs: 100, message: 'the sentinels to promote the replica' })
  const promotedAt = performance.now()
  const resumed = await waitFor(() => after(closed, promotedAt).find((x) => x.status === 200), { timeoutMs: 60_000, message: 'the closed gateway to admit again on the new primary' }).catch((err: Error) => {
    t.comment(JSON.stringify(closed.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('rate-limit store')).slice(-10)))
    t.comment(JSON.stringify(after(closed, promotedAt).slice(-3)))
    throw err
  })
  await waitFor(() => after(open, resumed.sentAt).length >= 10, { timeoutMs: 30_000, message: 'more traffic through the open gateway' })
  traffic.stop = true
  for (const r of await finished) if (r.status === 'rejected') throw r.reason

  const all = [...(answers.get(closed) as Answer[]), ...(answers.get(open) as Answer[])]
  t.equal(all.filter((x) => x.status >= 500 && x.status !== 503).length, 0, `no 500 in ${all.length} answers`)
  const closedAnswers = answers.get(closed) as Answer[]
  const refused = closedAnswers.filter((x) => x.status === 503)
  t.ok(refused.length > 0, `closed: ${refused.length} of ${closedAnswers.length} answered 503 during the failover`)
  t.ok(closedAnswers.every((x) => x.status === 200 || x.status === 503), 'closed: 200 or 503 only')
  t.ok(refused.every((x) => x.code === 'GW_RATE_LIMIT_STORE_UNAVAILABLE' && x.retryAfter === '5'), 'every 503 is GW_RATE_LIMIT_STORE_UNAVAILABLE with Retry-After: 5')
  const openAnswers = answers.get(open) as Answer[]
  t.ok(openAnswers.every((x) => x.status === 200), `open: all ${openAnswers.length} admitted, during the failover too`)
  t.ok(open.logs.some((l) => l.msg === 'rate-limit store (redis) failed; failure mode applied' && l.failureMode === 'open' && l.tier === 'route'), 'open: the store failure was seen (and logged once)')

  const during = all.filter((x) => x.sentAt >= killedAt && x.sentAt < resumed.sentAt)
  const slowest = Math.max(...during.map((x) => x.ms))
  // Bounded by one REDIS_TIMEOUT_MS per request, never by the failover's length; the slack is
  // for a loaded machine (the failover itself takes seconds).
  t.ok(slowest < timeoutMs + 2000, `slowest answer while the primary was gone: ${Math.round(slowest)} ms (REDIS_TIMEOUT_MS ${timeoutMs})`)
  t.comment(`first 503 ${Math.round(firstRefusal.sentAt + firstRefusal.ms - killedAt)} ms after SIGKILL; replica promoted ${Math.round(promotedAt - killedAt)} ms after; limits back ${Math.round(resumed.sentAt + resumed.ms - killedAt)} ms after; ${during.length} requests in between, slowest ${Math.round(slowest)} ms, ${refused.length} x 503 (closed)`)

  // Limits apply again, exactly and shared, on the promoted replica.
  await connected(closed, open)
  const before = up.requests.length
  const tight = await Promise.all(Array.from({ length: 5 }, async () => await Promise.all([call(closed, '/tight/x'), call(open, '/tight/x')]))).then((pairs) => pairs.flat())
  t.equal(tight.filter((x) => x.status === 200).length, 3, 'after the failover: exactly the limit of 3 admitted across both gateways')
  t.equal(tight.filter((x) => x.status === 429).length, 7, 'the rest 429')
  t.equal(up.requests.length - before, 3, 'the upstream received only the admitted requests')
  t.equal(await ask(ha.replica.port, 'GET', `${PREFIX}{/tight|ip:127.0.0.1}`), '10', 'counted on the promoted replica')
})

t.test('Sentinel: a primary demoted while alive (SENTINEL FAILOVER); the gateway follows the sentinels to the new primary', async (t) => {
  const ha = await startRedisSentinels(t, { downAfterMs: 1000, failoverTimeoutMs: 3000 })
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    logLevel: 'info',
    env: { REDIS_SENTINELS: ha.sentinels.join(','), REDIS_SENTINEL_NAME: ha.name, REDIS_TIMEOUT_MS: '500', REDIS_KEY_PREFIX: PREFIX, IP_RATE_LIMIT_MAX: '1000000000' },
    routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: { max: 1_000_000_000, timeWindow: '1 hour' } })]
  })
  await connected(gw)
  t.equal((await call(gw, '/svc/x')).status, 200)
  const key = `${PREFIX}{/svc|ip:127.0.0.1}`
  t.equal(await ask(ha.primary.port, 'GET', key), '1', 'counted on the first primary')

  t.equal(await ask(ha.sentinelPorts[0] as number, 'SENTINEL', 'FAILOVER', ha.name), 'OK')
  await waitFor(async () => await ha.primaryPort() === ha.replica.port, { timeoutMs: 90_000, intervalMs: 100, message: 'the sentinels to promote the replica' })
  await waitFor(async () => /role:slave/.test(String(await ask(ha.primary.port, 'INFO', 'replication'))), { timeoutMs: 60_000, intervalMs: 100, message: 'the old primary to become a replica' })
  const answers: Answer[] = []
  await waitFor(async () => {
    const a = await call(gw, '/svc/x')
    answers.push(a)
    return a.status === 200 && Number(await ask(ha.replica.port, 'GET', key)) >= 2
  }, { timeoutMs: 60_000, intervalMs: 50, message: 'the gateway counting on the new primary' })
  t.ok(answers.every((a) => a.status === 200 || (a.status === 503 && a.code === 'GW_RATE_LIMIT_STORE_UNAVAILABLE')), `200 or the fail-closed 503 only while it moved (${answers.map((a) => a.status).join(' ')})`)
  t.comment(`store errors while it moved: ${JSON.stringify(gw.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('rate-limit store') && l.level === 40).map((l) => (l.error as { message?: string } | undefined)?.message ?? l.msg))}`)
})
