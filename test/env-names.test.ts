/**
 * Misspelt environment variables that look like the gateway's are warned about (never failed),
 * naming the variable and the likely intended one; other programs' variables and the upstream
 * variables of route modules are left alone.
 */
import t from 'tap'
import { environmentWarnings } from '../src/config.js'
import { upstreamFromEnv } from 'portcullis'
import { editDistance } from '../src/env-names.js'

t.test('edit distance counts a swap of neighbours as one edit', async (t) => {
  t.equal(editDistance('RATE_LIMT_MAX', 'RATE_LIMIT_MAX'), 1)
  t.equal(editDistance('JWT_SERCET', 'JWT_SECRET'), 1, 'swapped letters')
  t.equal(editDistance('HOME', 'HOST'), 2)
  t.equal(editDistance('abc', 'abc'), 0)
  t.equal(editDistance('abcdef', 'uvwxyz', 2), 3, 'stops past the bound')
})

t.test('typos, swaps, wrong case, a unit left off and unknown gateway-prefixed names are warned about', async (t) => {
  const warnings = environmentWarnings({
    RATE_LIMT_MAX: '5',
    JWT_SECRT: 'never-printed-value',
    JWT_SERCET: 'x',
    rate_limit_window: '1 minute',
    REDIS_TIMEOUT: '100',
    INSPECT_RULES: '/x',
    TLS_CERT: '/c'
  })
  t.strictSame(warnings, [
    'INSPECT_RULES: not read by the gateway; did you mean INSPECT_RULES_FILE? Rename it: INSPECT_RULES_FILE is unset until then',
    'JWT_SECRT: not read by the gateway; did you mean JWT_SECRET? Rename it: JWT_SECRET is unset until then',
    'JWT_SERCET: not read by the gateway; did you mean JWT_SECRET? Rename it: JWT_SECRET is unset until then',
    'RATE_LIMT_MAX: not read by the gateway; did you mean RATE_LIMIT_MAX? Rename it: RATE_LIMIT_MAX is unset until then',
    'REDIS_TIMEOUT: not read by the gateway; did you mean REDIS_TIMEOUT_MS? Rename it: REDIS_TIMEOUT_MS is unset until then',
    'TLS_CERT: not read by the gateway; did you mean TLS_CERT_FILE? Rename it: TLS_CERT_FILE is unset until then',
    'rate_limit_window: not read by the gateway (names are case-sensitive); rename it to RATE_LIMIT_WINDOW, which is unset until then'
  ])
  t.notMatch(warnings.join('\n'), /never-printed-value/, 'values are never printed')
  t.strictSame(environmentWarnings({ JWT_REFRESH_MODE: 'x' }), ['JWT_REFRESH_MODE: not read by the gateway; remove it, or use one it reads with this prefix: JWT_SECRET, JWT_PUBLIC_KEY, JWT_ISSUER, JWT_AUDIENCE, JWT_CLOCK_SKEW_S, JWT_MAX_LIFETIME_S'])
})

t.test('the gateway\'s own variables, other programs\' and route upstream variables are not warned about', async (t) => {
  const env: Record<string, string> = {
    HOME: '/root', PATH: '/bin', PWD: '/', OLDPWD: '/', TERM: 'xterm', HOSTNAME: 'h', SHELL: '/bin/sh', USER: 'u', LOGNAME: 'u', LANG: 'C', TZ: 'UTC', SHLVL: '1', NODE_OPTIONS: '', NODE_EXTRA_CA_CERTS: '/x', HTTP_PROXY: 'http://p', NO_PROXY: '*', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://o', CI: 'true', INIT_CWD: '/', NODE: '/usr/bin/node', SSL_CERT_FILE: '/etc/ssl/cert.pem', SSL_CERT_DIR: '/etc/ssl/certs', npm_lifecycle_event: 'start', npm_config_cache: '/c', PORT: '8080', HOST: '0.0.0.0', JWT_SECRET: 's', RATE_LIMIT_MAX: '1', REDIS_URL: 'redis://r', WORKERS: '1', NODE_ENV: 'production', ECHO_UPSTREAM_URL: 'http://e'
  }
  t.strictSame(environmentWarnings(env), [], 'nothing to warn about')
  const routeEnv = { ...env, UPSTREAM_REPORTS: 'http://r' }
  t.strictSame(environmentWarnings(routeEnv), ['UPSTREAM_REPORTS: not read by the gateway; remove it, or use one it reads with this prefix: UPSTREAM_CA_FILE, UPSTREAM_TLS_INSECURE'], 'a gateway-prefixed name nobody reads is warned about')
  upstreamFromEnv('UPSTREAM_REPORTS', routeEnv)
  t.strictSame(environmentWarnings(routeEnv), [], 'once a route module reads it, it is a route setting')
})

t.test('Kubernetes service variables are not warned about; the same names without the service-link shape are', async (t) => {
  const links = {
    REDIS_SERVICE_HOST: '10.0.0.7',
    REDIS_SERVICE_PORT: '6379',
    REDIS_SERVICE_PORT_REDIS: '6379',
    REDIS_PORT: 'tcp://10.0.0.7:6379',
    REDIS_PORT_6379_TCP: 'tcp://10.0.0.7:6379',
    REDIS_PORT_6379_TCP_PROTO: 'tcp',
    REDIS_PORT_6379_TCP_PORT: '6379',
    REDIS_PORT_6379_TCP_ADDR: '10.0.0.7',
    JWKS_SERVICE_HOST: '10.0.0.8'
  }
  t.strictSame(environmentWarnings(links), [])
  t.strictSame(environmentWarnings({ REDIS_PORT: '6379' }), ['REDIS_PORT: not read by the gateway; remove it, or use one it reads with this prefix: REDIS_URL, REDIS_SENTINELS, REDIS_SENTINEL_NAME, REDIS_SENTINEL_PASSWORD_FILE, REDIS_CLUSTER_NODES, REDIS_PASSWORD_FILE, REDIS_FAILURE_MODE, REDIS_KEY_PREFIX, REDIS_TIMEOUT_MS'], 'a bare port is a setting someone meant for the gateway')
})

t.test('a typo beside the variable it resembles: the warning says the real one is set and applies', async (t) => {
  t.strictSame(environmentWarnings({ JWT_SECRET: 'a-secret-never-printed', JWT_SECRT: 'x' }), ['JWT_SECRT: not read by the gateway; did you mean JWT_SECRET? JWT_SECRET is set and applies, remove JWT_SECRT'])
  t.strictSame(environmentWarnings({ RATE_LIMIT_MAX: '5', rate_limit_max: '6' }), ['rate_limit_max: not read by the gateway (names are case-sensitive); RATE_LIMIT_MAX is set and applies, remove rate_limit_max'])
})
