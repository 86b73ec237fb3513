/**
 * Several gateway instances, one view: the per-IP tier is shared through the real Redis
 * (127.0.0.1:6379, under a key prefix unique to the test), every metric carries the instance's
 * label so the instances' series add up, and with Redis gone the per-IP tier falls back to each
 * instance's memory (health probes keep answering). Fails, never skips, without Redis.
 */
import t from 'tap'
import { Agent, request } from 'undici'
import { defineRoute } from 'portcullis'
import { startGateway, type TestGateway } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'
import { REDIS_URL, requireRedis, startOwnRedis } from '../helpers/redis.js'

const agent = new Agent({ connections: 32 })
t.teardown(() => agent.close())

interface Answer { status: number, code: string | undefined, retryAfter: string | undefined }

async function call (gw: TestGateway, path = '/svc/items'): Promise<Answer> {
  const res = await request(`${gw.url}${path}`, { dispatcher: agent })
  const body = await res.body.json() as Record<string, unknown>
  return { status: res.statusCode, code: body.code as string | undefined, retryAfter: res.headers['retry-after'] as string | undefined }
}

function sampleSum (text: string, name: string, instance: string): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) && line.includes(`instance="${instance}"`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}

t.test('two gateways, one Redis: together they admit exactly IP_RATE_LIMIT_MAX from one IP; the metrics of both add up', async (t) => {
  const redis = await requireRedis(t, 'ip-tier')
  const up = await startUpstream(t)
  const max = 10
  const start = async (instance: string): Promise<TestGateway> => await startGateway(t, {
    logLevel: 'info',
    // A generous Redis budget: under load, a timed-out call would count in local memory instead.
    env: { REDIS_URL, REDIS_KEY_PREFIX: redis.prefix, REDIS_TIMEOUT_MS: '5000', IP_RATE_LIMIT_MAX: String(max), ADMIN_PORT: '0', INSTANCE_ID: instance },
    routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: false })]
  })
  const a = await start('gw-a')
  const b = await start('gw-b')
  const answers = await Promise.all(Array.from({ length: 20 }, async () => await Promise.all([call(a), call(b)]))).then((pairs) => pairs.flat())
  const admitted = answers.filter((x) => x.status === 200)
  const limited = answers.filter((x) => x.status === 429)
  t.equal(admitted.length, max, `exactly ${max} of ${answers.length} admitted across both instances`)
  t.equal(limited.length, answers.length - max, 'the rest refused')
  t.ok(limited.every((x) => x.code === 'GW_RATE_LIMITED' && x.retryAfter !== undefined), '429 GW_RATE_LIMITED with Retry-After')
  t.equal(up.requests.length, max, 'the upstream received only the admitted requests')
  t.strictSame(await redis.keys(), [`${redis.prefix}ip|{127.0.0.1}`], 'one shared per-IP counter, apart from route keys')
  t.equal(await redis.client.get(`${redis.prefix}ip|{127.0.0.1}`), String(answers.length))

  const scrape = async (gw: TestGateway): Promise<string> => await (await request(`${gw.app.portcullisAdmin.url ?? ''}/metrics`)).body.text()
  const [ta, tb] = await Promise.all([scrape(a), scrape(b)])
  // (Signal-fed counters such as rate_limited_total come from process-wide diagnostics channels:
  // two gateways in one test process would both count them. Per-request series are per app.)
  t.equal(sampleSum(ta, 'portcullis_http_requests_total', 'gw-b') + sampleSum(tb, 'portcullis_http_requests_total', 'gw-a'), 0, 'each instance labels only its own series')
  const requestsA = sampleSum(ta, 'portcullis_http_requests_total', 'gw-a')
  const requestsB = sampleSum(tb, 'portcullis_http_requests_total', 'gw-b')
  t.equal(requestsA + requestsB, answers.length, 'requests_total summed over instance: every request once')
})

t.test('Redis killed: the per-IP tier counts in each instance\'s memory; health probes and public routes keep answering', async (t) => {
  const own = await startOwnRedis(t)
  const up = await startUpstream(t)
  const max = 5
  const gw = await startGateway(t, {
    logLevel: 'info',
    env: { REDIS_URL: own.url, IP_RATE_LIMIT_MAX: String(max), REDIS_TIMEOUT_MS: '200' },
    routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false, rateLimit: false })]
  })
  t.equal((await call(gw)).status, 200, 'Redis up: admitted (1 of the shared budget)')
  await own.kill()
  t.equal((await call(gw, '/healthz')).status, 200, 'health probe answers with Redis gone')
  const answers: Answer[] = []
  for (let i = 0; i < max + 2; i++) answers.push(await call(gw))
  t.strictSame(answers.map((x) => x.status), [200, 200, 200, 200, 429, 429, 429], `the in-memory limit of ${max} applies (health probe counted)`)
  t.equal(up.requests.length, 1 + max - 1, 'the upstream received only the admitted requests')
  const failed = gw.logs.filter((l) => l.msg === 'rate-limit store (redis) failed; failure mode applied' && l.tier === 'ip')
  t.equal(failed.length, 1, 'one line for the outage')
  t.equal(failed[0]?.failureMode, 'local')
  t.equal(gw.logs.filter((l) => l.msg === 'request failed').length, 0, 'no per-request warn line')
  t.notOk(gw.logText().includes(own.url), 'the Redis URL is never logged')
})
