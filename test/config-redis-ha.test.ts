/**
 * REDIS_SENTINELS / REDIS_SENTINEL_NAME / REDIS_SENTINEL_PASSWORD_FILE, REDIS_CLUSTER_NODES and
 * REDIS_PASSWORD_FILE: parsed into the rate-limit configuration; every invalid combination is a
 * startup error naming the variable; password files are read, never echoed. The plugins check
 * the same rules on their own options.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { loadConfig } from 'portcullis'
import { ipRateLimitPlugin, routeRateLimitPlugin } from '../plugins/rate-limit/index.js'

const dir = mkdtempSync(join(tmpdir(), 'portcullis-redis-ha-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })

function file (name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

function problems (t: Test, env: Record<string, string>): string[] {
  const err = t.throws(() => loadConfig(env), { code: 'GW_CONFIG_INVALID' }) as Error & { problems: string[] }
  return err.problems ?? []
}

t.test('a Sentinel group: addresses, name and passwords reach the rate-limit configuration', async (t) => {
  const password = randomBytes(18).toString('base64url')
  const sentinelPassword = randomBytes(18).toString('base64url')
  const c = loadConfig({
    REDIS_SENTINELS: 's1.example:26379, 10.0.0.2:26380,[::1]:26381',
    REDIS_SENTINEL_NAME: 'mymaster',
    REDIS_PASSWORD_FILE: file('password', `${password}\n`),
    REDIS_SENTINEL_PASSWORD_FILE: file('sentinel-password', `${sentinelPassword}\r\n`)
  })
  t.strictSame(c.rateLimit.redisSentinels, ['s1.example:26379', '10.0.0.2:26380', '[::1]:26381'])
  t.equal(c.rateLimit.redisSentinelName, 'mymaster')
  t.equal(c.rateLimit.redisPassword, password, 'the file\'s content without its line break')
  t.equal(c.rateLimit.redisSentinelPassword, sentinelPassword)
  t.equal(c.rateLimit.redisUrl, undefined)
  t.equal(c.rateLimit.redisClusterNodes, undefined)
})

t.test('a Cluster: the nodes reach the rate-limit configuration; production WORKERS accept it as shared state', async (t) => {
  const c = loadConfig({ REDIS_CLUSTER_NODES: 'redis-1:6379,redis-2:6379' })
  t.strictSame(c.rateLimit.redisClusterNodes, ['redis-1:6379', 'redis-2:6379'])
  t.equal(c.rateLimit.redisSentinels, undefined)
  const prod = { NODE_ENV: 'production', JWT_SECRET: randomBytes(32).toString('base64url'), WORKERS: '2' }
  t.match(problems(t, prod).join('\n'), /WORKERS: more than one worker process needs REDIS_URL/)
  t.equal(loadConfig({ ...prod, REDIS_CLUSTER_NODES: 'redis-1:6379' }).workers, 2)
  t.equal(loadConfig({ ...prod, REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm' }).workers, 2)
})

t.test('invalid combinations and addresses are startup errors naming the variable', async (t) => {
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['URL and sentinels', { REDIS_URL: 'redis://r:6379', REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm' }, /^REDIS_URL and REDIS_SENTINELS: set only one/],
    ['sentinels and cluster', { REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm', REDIS_CLUSTER_NODES: 'c:6379' }, /^REDIS_SENTINELS and REDIS_CLUSTER_NODES: set only one/],
    ['sentinels without a name', { REDIS_SENTINELS: 's:26379' }, /^REDIS_SENTINEL_NAME: needed with REDIS_SENTINELS/],
    ['a name without sentinels', { REDIS_SENTINEL_NAME: 'm' }, /^REDIS_SENTINEL_NAME: only with REDIS_SENTINELS/],
    ['a bad name', { REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'my master' }, /^REDIS_SENTINEL_NAME: must be 1 to 100 letters/],
    ['a sentinel password without sentinels', { REDIS_URL: 'redis://r:6379', REDIS_SENTINEL_PASSWORD_FILE: file('sp', 'x') }, /^REDIS_SENTINEL_PASSWORD_FILE: only with REDIS_SENTINELS/],
    ['a password file with REDIS_URL', { REDIS_URL: 'redis://r:6379', REDIS_PASSWORD_FILE: file('p', 'x') }, /^REDIS_PASSWORD_FILE: only with REDIS_SENTINELS or REDIS_CLUSTER_NODES \(REDIS_URL carries its own password\)/],
    ['an unreadable password file', { REDIS_CLUSTER_NODES: 'c:6379', REDIS_PASSWORD_FILE: join(dir, 'missing') }, /^REDIS_PASSWORD_FILE: cannot be read/],
    ['an empty password file', { REDIS_CLUSTER_NODES: 'c:6379', REDIS_PASSWORD_FILE: file('empty', '\n') }, /^REDIS_PASSWORD_FILE: must hold the password on one line/],
    ['a node without a port', { REDIS_CLUSTER_NODES: 'c:6379,redis-2' }, /^REDIS_CLUSTER_NODES: "redis-2" is not host:port/],
    ['a port out of range', { REDIS_SENTINELS: 's:70000', REDIS_SENTINEL_NAME: 'm' }, /^REDIS_SENTINELS: "s:70000" is not host:port/],
    ['a URL for a node', { REDIS_CLUSTER_NODES: 'redis://c:6379' }, /^REDIS_CLUSTER_NODES: "redis:\/\/c:6379" is not host:port/],
    ['an empty list', { REDIS_CLUSTER_NODES: ' , ' }, /^REDIS_CLUSTER_NODES: lists no host:port/]
  ]
  for (const [what, env, expected] of cases) {
    const found = problems(t, env)
    t.ok(found.some((p) => expected.test(p)), `${what}: ${found.join('; ')}`)
  }
})

t.test('production refuses a placeholder in a password file, without printing it', async (t) => {
  const placeholder = 'change-me-redis-password'
  const found = problems(t, { NODE_ENV: 'production', JWT_SECRET: randomBytes(32).toString('base64url'), REDIS_CLUSTER_NODES: 'c:6379', REDIS_PASSWORD_FILE: file('weak', placeholder) })
  const line = found.find((p) => p.startsWith('REDIS_PASSWORD_FILE:'))
  t.match(line, /refused in production/)
  t.notOk(found.join('\n').includes(placeholder), 'the password is never printed')
})

t.test('the plugins check the same rules on their options', async (t) => {
  const refused = async (plugin: typeof routeRateLimitPlugin | typeof ipRateLimitPlugin, options: Record<string, unknown>, message: RegExp): Promise<void> => {
    const app = Fastify({ logger: false })
    await t.rejects(async () => { await app.register(plugin, options).ready() }, { code: 'GW_RATE_LIMIT_CONFIG_INVALID', message })
    await app.close()
  }
  await refused(routeRateLimitPlugin, { redisUrl: 'redis://r:6379', redisClusterNodes: ['c:6379'] }, /redisUrl, redisSentinels and redisClusterNodes: set only one/)
  await refused(routeRateLimitPlugin, { redisSentinels: ['s:26379'] }, /redisSentinels and redisSentinelName: set both or neither/)
  await refused(ipRateLimitPlugin, { redisClusterNodes: ['c:99999'] }, /redisClusterNodes: "c:99999" has a port outside 1-65535/)
  await refused(ipRateLimitPlugin, { redisClusterNodes: ['c'] }, /redisClusterNodes.0: must be host:port/)
  await refused(routeRateLimitPlugin, { redisUrl: 'redis://r:6379', redisPassword: 'x' }, /redisPassword: only with redisSentinels or redisClusterNodes/)
})
