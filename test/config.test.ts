import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import Fastify from 'fastify'
import { Value } from '@sinclair/typebox/value'
import { DEMO_API_KEY, DEMO_JWT_SECRET, checkConfig, defineRoute, loadConfig, upstreamFromEnv } from 'portcullis'
import { EnvSchema, GatewayConfigSchema, configuredApiKeys } from '../src/config.js'
import { AuthPluginOptionsSchema } from '../plugins/auth/schema.js'
import { InspectOptionsSchema } from '../plugins/inspect/schema.js'
import { IpRateLimitOptionsSchema, RouteRateLimitOptionsSchema } from '../plugins/rate-limit/schema.js'
import { ProxyPluginOptionsSchema } from '../plugins/proxy/index.js'
import { makeCert } from './helpers/certs.js'

t.test('defaults with no environment: development demo credentials, in-memory, 127.0.0.1:8080', async (t) => {
  const c = loadConfig({})
  t.equal(c.production, false)
  t.equal(c.port, 8080)
  t.equal(c.host, '127.0.0.1')
  t.equal(c.bodyLimit, 1024 * 1024)
  t.equal(c.auth.jwtSecret, DEMO_JWT_SECRET)
  t.strictSame(c.auth.apiKeys, [{ consumer: 'demo', key: DEMO_API_KEY }])
  t.equal(c.rateLimit.redisUrl, undefined)
  t.strictSame(c.trustProxy, [])
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.auth), 'frozen')
})

t.test('production refuses demo defaults and names the variables', async (t) => {
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), { code: 'GW_CONFIG_INVALID', message: /JWT_SECRET, JWT_PUBLIC_KEY, JWKS_URL or API_KEYS/ })
  t.throws(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: DEMO_JWT_SECRET }), { message: /JWT_SECRET: the demo secret is refused in production/ })
  t.throws(() => loadConfig({ NODE_ENV: 'production', API_KEYS: `demo:${DEMO_API_KEY}` }), { message: /API_KEYS: the demo key is refused/ })
  const ok = loadConfig({ NODE_ENV: 'production', API_KEYS: 'billing:Kq3vZ8wLr2Tn6YbP0xHd' })
  t.equal(ok.auth.jwtSecret, undefined, 'no demo secret slipped in')
  t.equal(ok.demoUpstreamPort, undefined)
  const missing = defineRoute({ prefix: '/billing', upstream: upstreamFromEnv('BILLING_URL', { NODE_ENV: 'production' }) })
  t.strictSame(missing.missingVariables, ['BILLING_URL'], 'a missing upstream variable in production is recorded, not thrown one at a time')
  t.match(missing.routeOptions.upstream, /\.invalid$/, 'its stand-in upstream never resolves')
  await t.rejects(async () => { await Fastify().register(missing).ready() }, { code: 'GW_CONFIG_INVALID', message: /BILLING_URL: required in production, the upstream of test\/config\.test\.ts \(prefix \/billing\); set it to the service URL/ }, 'and the route refuses to register')
  t.equal(upstreamFromEnv('BILLING_URL', { BILLING_URL: 'http://a:1, http://b:2' }).length, 2)
  t.equal(upstreamFromEnv('BILLING_URL', {}), 'http://127.0.0.1:8081')
})

t.test('every bad input is a clear error naming the variable, never echoing a secret', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'eighty' }, /PORT/],
    [{ PORT: '70000' }, /PORT/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    [{ BODY_LIMIT: '-1' }, /BODY_LIMIT/],
    [{ TRUST_PROXY: 'all' }, /TRUST_PROXY: "all" is not an IP/],
    [{ TRUST_PROXY: '2' }, /TRUST_PROXY/],
    [{ TRUST_PROXY: '10.0.0.0/33' }, /TRUST_PROXY/],
    [{ IP_DENY: 'example.com' }, /IP_DENY/],
    [{ JWT_SECRET: 'short-secret-value' }, /JWT_SECRET: must be at least 32 bytes/],
    [{ JWT_SECRET: 'x'.repeat(40), JWKS_URL: 'https://idp.example/jwks' }, /set only one key source/],
    [{ JWKS_URL: 'file:///etc/passwd' }, /JWKS_URL/],
    [{ API_KEYS: 'nocolon' }, /API_KEYS: entry 1/],
    [{ API_KEYS: 'svc:short' }, /API_KEYS: the key of consumer "svc"/],
    [{ API_KEYS: 'a:0123456789abcdefXYZ,b:0123456789abcdefXYZ' }, /reuses another consumer's key/],
    [{ API_KEYS_FILE: '/nonexistent/keys' }, /API_KEYS_FILE: cannot be read/],
    [{ REDIS_URL: 'http://localhost' }, /REDIS_URL/],
    [{ TLS_CERT_FILE: '/x.pem' }, /TLS_CERT_FILE and TLS_KEY_FILE/],
    [{ REDIS_FAILURE_MODE: 'maybe' }, /REDIS_FAILURE_MODE/],
    [{ LOG_BUFFER_BYTES: '16385' }, /LOG_BUFFER_BYTES/],
    [{ LOG_BUFFER_BYTES: '-1' }, /LOG_BUFFER_BYTES/]
  ]
  for (const [env, re] of cases) {
    const err = t.throws(() => loadConfig(env), { code: 'GW_CONFIG_INVALID' }) as Error
    t.match(err.message, re, JSON.stringify(env))
  }
  const err = t.throws(() => loadConfig({ API_KEYS: 'svc:tooshort-secret' })) as Error
  t.notMatch(err.message, /tooshort-secret/, 'a rejected key is not echoed')
})

t.test('every bad value is refused at load, named as it is set, one problem per variable', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-config-'))
  const notPem = join(dir, 'not.pem')
  writeFileSync(notPem, 'garbage\n')
  const a = makeCert()
  const b = makeCert()
  const cases: Array<[Record<string, string>, string]> = [
    [{ LOG_LEVEL: 'INFO' }, 'LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent'],
    [{ REDIS_FAILURE_MODE: 'maybe' }, 'REDIS_FAILURE_MODE: must be one of closed, open'],
    [{ INSPECT_MODE: 'log' }, 'INSPECT_MODE: must be one of block, detect'],
    [{ PORT: '' }, 'PORT: must be integer'],
    [{ RATE_LIMIT_MAX: '99999999999999999999' }, 'RATE_LIMIT_MAX: must be <= 9007199254740991'],
    [{ IP_RATE_LIMIT_MAX: '1e300' }, 'IP_RATE_LIMIT_MAX: must be <= 9007199254740991'],
    [{ JWT_MAX_LIFETIME_S: '1e21' }, 'JWT_MAX_LIFETIME_S: must be <= 9007199254740991'],
    [{ LOG_BUFFER_BYTES: '65536' }, 'LOG_BUFFER_BYTES: must be <= 16384'],
    ...['0', '0s', '2 days', '99999999999999999'].map((w): [Record<string, string>, string] =>
      [{ RATE_LIMIT_WINDOW: w }, 'RATE_LIMIT_WINDOW: must be between 1 ms and 1 day (for example "1 minute", "30s" or "60000")']),
    ...['banana', 'abc', '-5', '1 fortnight'].map((w): [Record<string, string>, string] =>
      [{ RATE_LIMIT_WINDOW: w }, 'RATE_LIMIT_WINDOW: must be a duration such as "1 minute", "30s" or 60000 (milliseconds)']),
    [{ IP_RATE_LIMIT_WINDOW: 'soon' }, 'IP_RATE_LIMIT_WINDOW: must be a duration such as "1 minute", "30s" or 60000 (milliseconds)'],
    [{ JWKS_URL: 'ftp://idp/jwks' }, 'JWKS_URL: must be an http:// or https:// URL (the identity provider\'s JWKS endpoint)'],
    [{ WORKERS: 'many' }, 'WORKERS: must be "auto" (one per core) or a count from 1 to 999'],
    [{ REDIS_KEY_PREFIX: 'a b' }, 'REDIS_KEY_PREFIX: must be 1 to 100 letters, digits or :._-'],
    [{ REDIS_URL: 'redis://' }, 'REDIS_URL: names no host'],
    [{ REDIS_URL: 'redis://:s3cret-pass@127.0.0.1:99999' }, 'REDIS_URL: not a valid URL (redis[s]://[user:password@]host[:port][/db])'],
    [{ REDIS_URL: 'redis://:s3cret-pass@127.0.0.1:6379/cache' }, 'REDIS_URL: its path must be a database number'],
    [{ ROUTES_DIR: join(dir, 'missing') }, 'ROUTES_DIR: not a readable directory'],
    [{ ROUTES_DIR: notPem }, 'ROUTES_DIR: not a readable directory'],
    [{ TLS_CERT_FILE: join(dir, 'missing.pem'), TLS_KEY_FILE: a.keyFile }, 'TLS_CERT_FILE: cannot be read'],
    [{ TLS_CERT_FILE: a.certFile, TLS_KEY_FILE: join(dir, 'missing.pem') }, 'TLS_KEY_FILE: cannot be read'],
    [{ TLS_CERT_FILE: notPem, TLS_KEY_FILE: a.keyFile }, 'TLS_CERT_FILE: no PEM certificate in the file'],
    [{ TLS_CERT_FILE: a.certFile, TLS_KEY_FILE: a.certFile }, 'TLS_KEY_FILE: no PEM private key in the file'],
    [{ TLS_CERT_FILE: a.certFile, TLS_KEY_FILE: b.keyFile }, 'TLS_CERT_FILE and TLS_KEY_FILE: not a usable certificate and private key pair (does the key match the certificate?)'],
    [{ PORT: '9000', ADMIN_PORT: '9000' }, 'ADMIN_PORT: the same port as PORT on the same address (the admin listener needs its own)'],
    [{ PORT: '9000', ADMIN_PORT: '9000', HOST: '0.0.0.0' }, 'ADMIN_PORT: the same port as PORT on the same address (the admin listener needs its own)']
  ]
  for (const [env, problem] of cases) {
    const err = t.throws(() => loadConfig(env), { code: 'GW_CONFIG_INVALID' }) as Error & { problems?: string[] }
    t.equal(err.message, `invalid environment: ${problem}`, JSON.stringify(env))
    t.notMatch(err.message, /s3cret-pass/, 'a Redis password is never echoed')
  }
  const two = t.throws(() => loadConfig({ PORT: 'x', LOG_LEVEL: 'loud' })) as Error
  t.equal(two.message, 'invalid environment: PORT: must be integer; LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent', 'each variable once')
})

t.test('good values of the same variables load', async (t) => {
  const a = makeCert()
  for (const w of ['1 minute', '30s', '60000', '1 day', '250 ms']) t.equal(loadConfig({ RATE_LIMIT_WINDOW: w }).rateLimit.timeWindow, w)
  t.equal(loadConfig({ REDIS_URL: 'redis://:pw@127.0.0.1:6379/2' }).rateLimit.redisUrl, 'redis://:pw@127.0.0.1:6379/2')
  t.equal(loadConfig({ REDIS_URL: 'rediss://redis.internal' }).rateLimit.redisUrl, 'rediss://redis.internal')
  t.equal(loadConfig({ TLS_CERT_FILE: a.certFile, TLS_KEY_FILE: a.keyFile }).tls?.certFile, a.certFile)
  t.equal(loadConfig({ PORT: '9000', ADMIN_PORT: '9000', HOST: '10.0.0.5', ADMIN_HOST: '127.0.0.1' }).admin.port, 9000, 'one port on two distinct addresses')
  t.equal(loadConfig({ PORT: '0', ADMIN_PORT: '0' }).admin.port, 0, 'two ephemeral ports')
  t.equal(loadConfig({ ROUTES_DIR: tmpdir() }).routesDir, tmpdir())
  // Saved by a Windows editor: a byte-order mark and CRLF line ends.
  const keys = join(mkdtempSync(join(tmpdir(), 'portcullis-keys-')), 'keys.txt')
  writeFileSync(keys, '\uFEFFbilling:0123456789abcdef-billing\r\n# comment\r\nreports:0123456789abcdef-reports\r\n')
  const fromFile = loadConfig({ API_KEYS_FILE: keys })
  t.equal(fromFile.auth.apiKeysFile, keys, 'the auth plugin reads (and re-reads) the file itself')
  t.strictSame(fromFile.auth.apiKeys, [], 'API_KEYS only')
  t.strictSame(configuredApiKeys(fromFile), [
    { consumer: 'billing', key: '0123456789abcdef-billing' },
    { consumer: 'reports', key: '0123456789abcdef-reports' }
  ])
  const ca = join(mkdtempSync(join(tmpdir(), 'portcullis-ca-')), 'ca.pem')
  writeFileSync(ca, '\uFEFF' + a.cert)
  t.equal(loadConfig({ UPSTREAM_CA_FILE: ca }).upstreamTls.ca, a.cert, 'a CA bundle without its byte-order mark')
})

t.test('checkConfig: every problem with its variable and the misspelt variables, without throwing; loadConfig throws the same', async (t) => {
  const env = { PORT: '9000', ADMIN_PORT: '9000', IP_ALLOW: '10.0.0.0/8,nope', JWT_SECRET: 'short-secret', RATE_LIMT_MAX: '5' }
  const check = checkConfig(env)
  t.equal(check.config, undefined, 'no configuration while there is a problem')
  t.strictSame(check.problems, [
    { variable: 'IP_ALLOW', message: '"nope" is not an IP address or CIDR' },
    { variable: 'JWT_SECRET', message: 'must be at least 32 bytes' },
    { variable: 'ADMIN_PORT', message: 'the same port as PORT on the same address (the admin listener needs its own)' }
  ])
  t.strictSame(check.warnings, [{ variable: 'RATE_LIMT_MAX', message: 'not read by the gateway; did you mean RATE_LIMIT_MAX? Rename it: RATE_LIMIT_MAX is unset until then' }])
  const err = t.throws(() => loadConfig(env), { code: 'GW_CONFIG_INVALID' }) as Error & { problems: string[] }
  t.strictSame(err.problems, check.problems.map((p) => `${p.variable}: ${p.message}`), 'loadConfig reports what checkConfig finds')
  t.strictSame(checkConfig({ PORT: 'x', LOG_LEVEL: 'loud' }).problems, [
    { variable: 'PORT', message: 'must be integer' },
    { variable: 'LOG_LEVEL', message: 'must be one of fatal, error, warn, info, debug, trace, silent' }
  ], 'values of the wrong type')
  t.strictSame(checkConfig({ NODE_ENV: 'production', UPSTREAM_TLS_INSECURE: 'true', WORKERS: '2' }).problems.map((p) => p.variable), [
    'JWT_SECRET, JWT_PUBLIC_KEY, JWKS_URL or API_KEYS',
    'UPSTREAM_TLS_INSECURE',
    'WORKERS'
  ], 'production refusals')
  const ok = checkConfig({})
  t.strictSame([ok.problems, ok.warnings], [[], []])
  t.strictSame(ok.config, loadConfig({}), 'the configuration loadConfig returns')
})

t.test('the configuration has the shape of GatewayConfigSchema; the IP lists are config.ipFilter', async (t) => {
  const c = loadConfig({ IP_ALLOW: '10.0.0.0/8, 2001:db8::/32', IP_DENY: '10.0.0.5', JWT_AUDIENCE: 'a,b', TRUST_PROXY: '10.0.0.1' })
  t.strictSame(c.ipFilter, { allow: ['10.0.0.0/8', '2001:db8::/32'], deny: ['10.0.0.5'] })
  t.ok(Object.isFrozen(c.ipFilter.allow))
  for (const config of [c, loadConfig({}), loadConfig({ NODE_ENV: 'production', API_KEYS: 'billing:Kq3vZ8wLr2Tn6YbP0xHd' })]) {
    t.strictSame([...Value.Errors(GatewayConfigSchema, config)].map((e) => `${e.path}: ${e.message}`), [])
  }
  t.strictSame(checkConfig({ IP_DENY: '::ffff:10.0.0.0/8' }).problems, [{ variable: 'IP_DENY', message: '"::ffff:10.0.0.0/8" mixes an IPv4-mapped address with a prefix shorter than 96' }], 'refused at load, as the ip-filter plugin would refuse it')
})

t.test('a variable and the plugin option it feeds share one rule', async (t) => {
  const env = EnvSchema.properties
  const same = (variable: { default?: unknown, minimum?: number, maximum?: number, pattern?: string }, option: typeof variable, name: string): void => {
    t.strictSame([variable.default, variable.maximum, variable.pattern], [option.default, option.maximum, option.pattern], name)
  }
  same(env.BODY_LIMIT, ProxyPluginOptionsSchema.properties.bodyLimit, 'BODY_LIMIT')
  same(env.RESPONSE_BUFFER_BYTES, ProxyPluginOptionsSchema.properties.responseBufferBytes, 'RESPONSE_BUFFER_BYTES')
  same(env.SEND_TIMEOUT_MS, ProxyPluginOptionsSchema.properties.sendTimeoutMs, 'SEND_TIMEOUT_MS')
  t.strictSame(ProxyPluginOptionsSchema.properties.defaultRateLimit.default, { max: env.RATE_LIMIT_MAX.default, timeWindow: env.RATE_LIMIT_WINDOW.default }, 'RATE_LIMIT_MAX/WINDOW')
  same(env.IP_RATE_LIMIT_MAX, { ...IpRateLimitOptionsSchema.properties.max, maximum: Number.MAX_SAFE_INTEGER }, 'IP_RATE_LIMIT_MAX')
  t.equal(env.IP_RATE_LIMIT_WINDOW.default, IpRateLimitOptionsSchema.properties.timeWindow.default, 'IP_RATE_LIMIT_WINDOW')
  same(env.REDIS_TIMEOUT_MS, RouteRateLimitOptionsSchema.properties.redisTimeoutMs, 'REDIS_TIMEOUT_MS')
  same(env.REDIS_KEY_PREFIX, RouteRateLimitOptionsSchema.properties.keyPrefix, 'REDIS_KEY_PREFIX')
  same(env.REDIS_URL, RouteRateLimitOptionsSchema.properties.redisUrl, 'REDIS_URL')
  same(env.JWKS_URL, AuthPluginOptionsSchema.properties.jwksUrl, 'JWKS_URL')
  same(env.JWT_CLOCK_SKEW_S, AuthPluginOptionsSchema.properties.clockSkewS, 'JWT_CLOCK_SKEW_S')
  same(env.INSPECT_TIMEOUT_MS, InspectOptionsSchema.properties.timeoutMs, 'INSPECT_TIMEOUT_MS')
  same(env.INSPECT_CACHE_SIZE, InspectOptionsSchema.properties.verdictCacheSize, 'INSPECT_CACHE_SIZE')
  t.equal(env.INSPECT_MODE.default, InspectOptionsSchema.properties.mode.default, 'INSPECT_MODE')
  const key = 'k'.repeat(16)
  t.strictSame(loadConfig({ API_KEYS: `a.b@c-d:${key}` }).auth.apiKeys, [{ consumer: 'a.b@c-d', key }], 'a consumer name the auth plugin accepts')
  t.throws(() => loadConfig({ JWT_SECRET: 'x'.repeat(31) }), { message: /JWT_SECRET: must be at least 32 bytes/ })
})
