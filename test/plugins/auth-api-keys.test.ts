/**
 * API keys with scopes, expiry and rotation, and the key file's reload: the text format, the key
 * store, the plugin's scope check and `reloadApiKeys()` on a bare Fastify with inject. Every
 * rejection proves the handler saw nothing; no problem text ever carries a key.
 */
import t, { type Test } from 'tap'
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import pino from 'pino'
import { gatewayErrorHandler } from '../../src/errors.js'
import { checkConfig, configuredApiKeys, loadConfig } from '../../src/config.js'
import { authPlugin, type AuthPluginOptions } from '../../plugins/auth/index.js'
import { ApiKeyStore, KEY_EXPIRED } from '../../plugins/auth/api-keys.js'
import { parseApiKeyText } from '../../plugins/auth/api-keys-file.js'
import type { AuthRouteConfig } from '../../plugins/auth/schema.js'

const K1 = 'key-one-0123456789abcdefgh'
const K2 = 'key-two-0123456789abcdefgh'
const K3 = 'key-three-0123456789abcdef'
const FUTURE = '2999-01-01T00:00:00Z'
const PAST = '2001-01-01T00:00:00Z'

function keyFile (text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'portcullis-apikeys-')), 'api-keys')
  writeFileSync(file, text)
  return file
}

/** Replaces the file the way editors and Kubernetes do: write aside, rename over. */
function replaceFile (file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text)
  renameSync(`${file}.tmp`, file)
}

t.test('the text format: pairs, attributes, comments, the older comma form', async (t) => {
  const parsed = parseApiKeyText([
    '# comment',
    '',
    `orders:${K1} scopes=orders:read,orders:write expires=${FUTURE}`,
    `orders:${K2}\texpires=2027-01-31T00:00:00+01:00`,
    `a:${K3}, b:key-four-0123456789abcdefg`,
    '  c : key-five-0123456789abcdefg  \r'
  ].join('\n'))
  t.strictSame(parsed.problems, [])
  t.strictSame(parsed.entries, [
    { consumer: 'orders', key: K1, scopes: ['orders:read', 'orders:write'], expires: FUTURE },
    { consumer: 'orders', key: K2, expires: '2027-01-31T00:00:00+01:00' },
    { consumer: 'a', key: K3 },
    { consumer: 'b', key: 'key-four-0123456789abcdefg' },
    { consumer: 'c', key: 'key-five-0123456789abcdefg' }
  ])
  t.strictSame(parsed.lines, [3, 4, 5, 5, 6])
})

t.test('the text format: every problem names its line and never a key', async (t) => {
  const secret = 'SECRETPART0123456789'
  const cases: Array<[string, RegExp]> = [
    [`svc:${secret} scopes=`, /scope 1 is empty/],
    [`svc:${secret} scopes=a,"b`, /scope 2 is empty or not an RFC 6749 scope token/],
    [`svc:${secret} scopes=a,a`, /listed twice/],
    [`svc:${secret} expires=tomorrow`, /expires=: not an RFC 3339 time/],
    [`svc:${secret} expires=2027-01-31T00:00:00`, /expires=: not an RFC 3339 time/],
    [`svc:${secret} expires=2027-02-31T00:00:00Z x`, /unexpected text/],
    [`svc:${secret} scope=a`, /unknown attribute/],
    [`svc:${secret} scopes=a scopes=b`, /scopes= appears twice/],
    [`a:${secret},b:${secret}x scopes=a`, /exactly one consumer:key/],
    [`${secret}`, /needs a consumer name/],
    [`${secret}=abc`, /needs a consumer name/],
    [`svc:${secret} ${secret}=x`, /the key of consumer "svc" must be/],
    [`svc:${secret} secretpart=x`, /unknown attribute/],
    ['svc:short', /the key of consumer "svc" must be 16-512/]
  ]
  for (const [line, re] of cases) {
    const parsed = parseApiKeyText(`# first\nok:${K1}\n${line}\n`)
    t.equal(parsed.problems.length >= 1, true, line)
    t.equal(parsed.problems[0]?.line, 3, `${line}: line 3`)
    t.match(parsed.problems[0]?.message, re, line)
    t.notMatch(JSON.stringify(parsed.problems), /SECRETPART|short/, `${line}: no key material`)
  }
  t.match(parseApiKeyText(`a:${K1}\nb:${K1}`).problems[0], { line: 2, message: 'consumer "b" reuses another consumer\'s key' })
  t.match(parseApiKeyText(`a:${K1}\na:${K1}`).problems[0], { line: 2, message: 'consumer "a" lists the same key twice' })
})

t.test('API_KEYS_FILE problems at startup name the file, the line and the problem, never the key', async (t) => {
  const file = keyFile(`billing:${K1}\nreports:${K2} scopes=a,,b\nx:SECRETPART0123456789 expires=soon\n`)
  const { problems } = checkConfig({ API_KEYS_FILE: file })
  t.strictSame(problems.map((p) => `${p.variable}: ${p.message}`), [
    `API_KEYS_FILE: ${file} line 2: scopes=: scope 2 is empty or not an RFC 6749 scope token (printable ASCII without space, " and \\)`,
    `API_KEYS_FILE: ${file} line 3: expires=: not an RFC 3339 time with a time zone (e.g. 2027-01-31T00:00:00Z)`
  ])
  t.notMatch(JSON.stringify(problems), /SECRETPART|key-one|key-two/)
  const good = loadConfig({ API_KEYS_FILE: keyFile(`billing:${K1} scopes=orders:read\n`), API_KEYS: `env:${K2} scopes=x` })
  t.equal(good.auth.apiKeysFile !== undefined, true)
  t.strictSame(good.auth.apiKeys, [{ consumer: 'env', key: K2, scopes: ['x'] }], 'API_KEYS carries the same attributes')
  t.strictSame(configuredApiKeys(good), [{ consumer: 'env', key: K2, scopes: ['x'] }, { consumer: 'billing', key: K1, scopes: ['orders:read'] }])
  const dup = checkConfig({ API_KEYS_FILE: keyFile(`billing:${K1}\n`), API_KEYS: `env:${K1}` })
  t.match(dup.problems.map((p) => p.message).join('\n'), /reuses another consumer's key/, 'a key in API_KEYS and the file is refused')
})

t.test('the key store: scopes per key, several keys per consumer, expiry', async (t) => {
  const store = new ApiKeyStore([
    { consumer: 'orders', key: K1, scopes: ['orders:read'] },
    { consumer: 'orders', key: K2, scopes: ['orders:read'], expires: FUTURE },
    { consumer: 'orders', key: K3, expires: PAST }
  ])
  const a = store.lookup(K1)
  const b = store.lookup(K2)
  t.strictSame(a, { id: 'orders', strategy: 'apiKey', scopes: ['orders:read'] })
  t.equal(a, b, 'same consumer and scopes share one frozen consumer object')
  t.equal(Object.isFrozen(a), true)
  t.equal(store.lookup(K3), KEY_EXPIRED)
  t.equal(store.lookup('key-unknown-0123456789abc'), undefined)
})

interface Harness { app: FastifyInstance, hits: string[], logs: () => string }

const ROUTES: Array<[string, AuthRouteConfig]> = [
  ['/read', { strategies: ['apiKey'], scopes: ['orders:read'] }],
  ['/write', { strategies: ['apiKey'], scopes: ['orders:read', 'orders:write'] }],
  ['/any', { strategies: ['apiKey'] }],
  ['/both', { scopes: ['orders:write'] }]
]

async function build (t: Test, opts: AuthPluginOptions): Promise<Harness> {
  let text = ''
  const sink = new Writable({ write (c: Buffer, _e, cb) { text += c.toString(); cb() } })
  const app = Fastify({ loggerInstance: pino({ level: 'debug' }, sink), logController: new LogController({ disableRequestLogging: true }) }) as unknown as FastifyInstance
  app.setErrorHandler(gatewayErrorHandler)
  await app.register(authPlugin, opts)
  const hits: string[] = []
  for (const [url, auth] of ROUTES) {
    app.get(url, { config: { auth } }, async (request) => {
      hits.push(url)
      return { consumer: request.consumer }
    })
  }
  t.teardown(async () => { await app.close() })
  await app.ready()
  return { app, hits, logs: () => text }
}

async function call (h: Harness, url: string, key: string): Promise<{ status: number, body: Record<string, unknown>, challenge: unknown, reached: boolean }> {
  const before = h.hits.length
  const res = await h.app.inject({ url, headers: { 'x-api-key': key } })
  return { status: res.statusCode, body: res.json(), challenge: res.headers['www-authenticate'], reached: h.hits.length > before }
}

t.test('scoped routes: a key holding every scope passes; a missing scope is a 403 without a bearer challenge', async (t) => {
  const h = await build(t, {
    jwtSecret: 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz',
    apiKeys: [{ consumer: 'reader', key: K1, scopes: ['orders:read'] }, { consumer: 'writer', key: K2, scopes: ['orders:read', 'orders:write'] }, { consumer: 'plain', key: K3 }]
  })
  const ok = await call(h, '/read', K1)
  t.equal(ok.status, 200)
  t.strictSame(ok.body.consumer, { id: 'reader', strategy: 'apiKey', scopes: ['orders:read'] }, 'request.consumer carries the key\'s scopes')
  t.equal((await call(h, '/write', K2)).status, 200)
  t.equal((await call(h, '/both', K2)).status, 200, 'a route with scopes and both strategies accepts a key that holds them')
  t.equal((await call(h, '/any', K3)).status, 200, 'a key without scopes passes an unscoped route')
  for (const [url, key, missing] of [['/write', K1, 'orders:write'], ['/read', K3, 'orders:read'], ['/both', K1, 'orders:write']] as const) {
    const res = await call(h, url, key)
    t.equal(res.status, 403, `${url}: 403`)
    t.strictSame(res.body, { statusCode: 403, code: 'GW_AUTH_FORBIDDEN', error: 'Forbidden', message: `Forbidden: missing scope ${missing}` }, `${url}: names the missing scope`)
    t.equal(res.challenge, undefined, `${url}: no WWW-Authenticate (no bearer token was presented)`)
    t.equal(res.reached, false, `${url}: handler not reached`)
  }
  const line = h.logs().split('\n').filter((l) => l.includes('"reason":"insufficient_scope"'))
  t.equal(line.length, 3, 'one log line per refusal')
  t.match(JSON.parse(line[0] as string), { reason: 'insufficient_scope', scope: 'orders:write', strategy: 'apiKey', route: '/write' })
  t.notMatch(h.logs(), /key-one|key-two|key-three/, 'no key in the log')
})

t.test('an expired key is a 401 like an unknown key (logged as key_expired); rotation keeps both keys valid', async (t) => {
  const h = await build(t, {
    apiKeys: [
      { consumer: 'orders', key: K1, scopes: ['orders:read'], expires: PAST },
      { consumer: 'orders', key: K2, scopes: ['orders:read'], expires: FUTURE },
      { consumer: 'orders', key: K3, scopes: ['orders:read'] }
    ]
  })
  const expired = await call(h, '/read', K1)
  const unknown = await call(h, '/read', 'key-unknown-0123456789abc')
  t.equal(expired.status, 401)
  t.strictSame(expired.body, unknown.body, 'the same body as an unknown key')
  t.equal(expired.challenge, unknown.challenge, 'the same challenge')
  t.equal(expired.reached, false)
  t.match(h.logs(), /"reason":"key_expired"/)
  t.notMatch(h.logs(), /key-one/)
  for (const key of [K2, K3]) {
    const res = await call(h, '/read', key)
    t.equal(res.status, 200, 'old and new keys of one consumer both work')
    t.equal((res.body.consumer as { id: string }).id, 'orders')
  }
})

t.test('plugin options: expires must be an RFC 3339 time; a bad key file stops registration naming the line', async (t) => {
  await t.rejects(async () => { await build(t, { apiKeys: [{ consumer: 'a', key: K1, expires: '2027-13-45T00:00:00Z' }] }) }, { code: 'GW_CONFIG_INVALID', message: /apiKeys\.0: expires/ })
  await t.rejects(async () => { await build(t, { apiKeys: [{ consumer: 'a', key: K1, expires: 'soon' }] }) }, { code: 'GW_CONFIG_INVALID' })
  const file = keyFile(`a:${K1}\nb:${K2} scopes=\n`)
  await t.rejects(async () => { await build(t, { apiKeysFile: file }) }, { code: 'GW_CONFIG_INVALID', message: new RegExp(`apiKeysFile: ${file} line 2: scopes=`) })
  await t.rejects(async () => { await build(t, { apiKeysFile: join(tmpdir(), 'portcullis-no-such-dir', 'keys') }) }, { code: 'GW_CONFIG_INVALID', message: /cannot be read/ })
  await t.rejects(async () => { await build(t, { apiKeys: [{ consumer: 'a', key: K1 }], apiKeysFile: keyFile(`b:${K1}\n`) }) }, { code: 'GW_CONFIG_INVALID', message: /line 1: consumer "b" reuses a key of the apiKeys option/ })
})

t.test('reloadApiKeys(): a new file replaces the keys, an unchanged one is skipped, a broken one keeps the keys in use', async (t) => {
  const file = keyFile(`old:${K1} scopes=orders:read\n`)
  const h = await build(t, { apiKeys: [{ consumer: 'static', key: K3 }], apiKeysFile: file, apiKeysWatch: false })
  t.equal(h.app.portcullisAuth.apiKeyCount(), 2)
  t.match(h.logs(), /"apiKeys":2.*"msg":"API keys loaded"/)
  t.strictSame(h.app.portcullisAuth.reloadApiKeys(), { status: 'unchanged', keys: 2 })

  replaceFile(file, `old:${K1} scopes=orders:read\nnew:${K2} scopes=orders:read,orders:write\n`)
  t.strictSame(h.app.portcullisAuth.reloadApiKeys(), { status: 'loaded', keys: 3 })
  t.equal((await call(h, '/write', K2)).status, 200, 'the new key works')
  t.equal((await call(h, '/read', K1)).status, 200, 'the old key still works')
  t.equal((await call(h, '/any', K3)).status, 200, 'the apiKeys option stays')

  replaceFile(file, `new:${K2} scopes=orders:read,orders:write\nbroken:SECRETPART0123456789 expires=never\n`)
  t.strictSame(h.app.portcullisAuth.reloadApiKeys(), { status: 'failed', keys: 3 })
  t.equal((await call(h, '/read', K1)).status, 200, 'a broken file keeps the keys in use')
  const warn = h.logs().split('\n').filter((l) => l.includes('API keys file not reloaded'))
  t.equal(warn.length, 1, 'one warn line')
  t.match(JSON.parse(warn[0] as string), { level: 40, problems: [`${file} line 2: expires=: not an RFC 3339 time with a time zone (e.g. 2027-01-31T00:00:00Z)`], apiKeys: 3 })
  t.notMatch(h.logs(), /SECRETPART|key-one|key-two|key-three/, 'no key in the log')

  replaceFile(file, `new:${K2} scopes=orders:read,orders:write\n`)
  t.strictSame(h.app.portcullisAuth.reloadApiKeys(), { status: 'loaded', keys: 2 })
  t.equal((await call(h, '/read', K1)).status, 401, 'a key removed from the file stops working')
  t.equal((await call(h, '/write', K2)).status, 200)

  const plain = await build(t, { apiKeys: [{ consumer: 'static', key: K3 }] })
  t.strictSame(plain.app.portcullisAuth.reloadApiKeys(), { status: 'static', keys: 1 }, 'without a file there is nothing to re-read')
})

t.test('a key file configures the apiKey strategy even while it is empty', async (t) => {
  const h = await build(t, { apiKeysFile: keyFile('# no keys yet\n'), apiKeysWatch: false })
  t.strictSame(h.app.portcullisAuth.strategies, ['apiKey'])
  t.equal((await call(h, '/any', K1)).status, 401)
})
