import t from 'tap'
import { DEMO_API_KEY, DEMO_JWT_SECRET, loadConfig, upstreamFromEnv } from 'portcullis'

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
  const ok = loadConfig({ NODE_ENV: 'production', API_KEYS: 'billing:0123456789abcdef0123' })
  t.equal(ok.auth.jwtSecret, undefined, 'no demo secret slipped in')
  t.equal(ok.demoUpstreamPort, undefined)
  t.throws(() => upstreamFromEnv('BILLING_URL', { NODE_ENV: 'production' }), { message: /BILLING_URL: required in production/ })
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
