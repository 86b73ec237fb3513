/**
 * What a gateway does not use, it does not load: the inspection engine (native libddwaf and its
 * ruleset, ~11 MB), prom-client (ADMIN_PORT) and ioredis (REDIS_URL) are loaded by the first
 * route or plugin that needs them. Checked in this test's own process (tap runs each file in its
 * own): these are CommonJS packages, so loading them leaves their files in the require cache.
 */
import t from 'tap'
import { createRequire } from 'node:module'
import { defineRoute } from 'portcullis'
import { startGateway } from './helpers/gateway.js'
import { startUpstream } from './helpers/upstream.js'

const cache = createRequire(import.meta.url).cache

function loaded (pkg: string): boolean {
  return Object.keys(cache).some((file) => file.includes(`/node_modules/${pkg}/`))
}

// ioredis is looked for by its own files, so that the Redis test helper (loaded only by the second
// test) cannot make the first one pass or fail.
const LAZY = ['@datadog/native-appsec', 'prom-client', 'ioredis']

t.test('a gateway whose routes inspect nothing, without ADMIN_PORT or REDIS_URL, loads none of them', async (t) => {
  for (const pkg of LAZY) t.notOk(loaded(pkg), `${pkg} not loaded before the gateway starts`)
  const up = await startUpstream(t)
  const gw = await startGateway(t, { routes: [defineRoute({ prefix: '/api', upstream: up.url, auth: false, rateLimit: false, inspect: false })] })
  const res = await fetch(`${gw.url}/api/items?q=%27%20or%201%3D1--`)
  t.equal(res.status, 200, 'the route proxies (and, not inspecting, lets the query through)')
  for (const pkg of LAZY) t.notOk(loaded(pkg), `${pkg} still not loaded`)
})

t.test('the first route that inspects loads the engine; ADMIN_PORT loads prom-client; REDIS_URL the Redis client', async (t) => {
  const { requireRedis, REDIS_URL } = await import('./helpers/redis.js')
  const redis = await requireRedis(t, 'lazy-load')
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    env: { ADMIN_PORT: '0', REDIS_URL, REDIS_KEY_PREFIX: redis.prefix },
    routes: [defineRoute({ prefix: '/api', upstream: up.url, auth: false, rateLimit: { max: 100, timeWindow: '1 minute' }, inspect: { mode: 'block' } })]
  })
  t.ok(loaded('@datadog/native-appsec'), 'the engine is loaded')
  t.ok(loaded('prom-client'), 'prom-client is loaded')
  t.ok(loaded('ioredis'), 'ioredis is loaded')
  const attack = await fetch(`${gw.url}/api/items?q=%27%20or%201%3D1--`)
  t.equal(attack.status, 403, 'the inspecting route blocks SQL injection')
  const clean = await fetch(`${gw.url}/api/items?q=blue+shoes`)
  t.equal(clean.status, 200, 'and passes a clean request')
  t.ok((await redis.keys()).length > 0, 'the rate limit counts in Redis')
})
