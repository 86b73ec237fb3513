/**
 * gateway-auth unit tests: bare Fastify + gatewayErrorHandler + dummy routes carrying
 * `config.auth`, driven with inject. Every rejection also proves the handler saw nothing.
 */
import t, { type Test } from 'tap'
import diagnostics from 'node:diagnostics_channel'
import { createHmac, createSign, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import pino from 'pino'
import { createSigner } from 'fast-jwt'
import { gatewayErrorHandler } from '../../src/errors.js'
import { loadConfig } from '../../src/config.js'
import { authPlugin, type AuthPluginOptions } from '../../plugins/auth/index.js'
import type { AuthRouteConfig } from '../../plugins/auth/schema.js'

const SECRET = 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz'
const API_KEY = 'key-alpha-0123456789abcdef'
const API_KEY_2 = 'key-beta-0123456789abcdef0'
const now = (): number => Math.floor(Date.now() / 1000)

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const RSA_PUBLIC_PEM = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string
const RSA_PRIVATE_PEM = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 })

const UNAUTHORIZED = { statusCode: 401, code: 'GW_AUTH_UNAUTHORIZED', error: 'Unauthorized', message: 'Unauthorized' }
const FORBIDDEN = { statusCode: 403, code: 'GW_AUTH_FORBIDDEN', error: 'Forbidden', message: 'Forbidden' }

function b64u (v: unknown): string {
  return Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')
}

/** A token from raw parts, HMAC-signed with `key` (string or buffer) unless `signature` is given. */
function forgeHs (header: Record<string, unknown>, payload: unknown, key: string | Buffer, alg = 'sha256'): string {
  const input = `${b64u(header)}.${b64u(payload)}`
  return `${input}.${createHmac(alg, key).update(input).digest('base64url')}`
}

function forgeRs (header: Record<string, unknown>, payload: unknown, key: KeyObject): string {
  const input = `${b64u(header)}.${b64u(payload)}`
  return `${input}.${createSign('RSA-SHA256').update(input).sign(key).toString('base64url')}`
}

function claims (extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { sub: 'user-1', scope: 'orders:read orders:write', iat: now(), exp: now() + 300, ...extra }
}

const signHs = createSigner({ key: SECRET, algorithm: 'HS256', noTimestamp: true })
const signRs = createSigner({ key: RSA_PRIVATE_PEM, algorithm: 'RS256', noTimestamp: true })
const hsToken = (extra: Record<string, unknown> = {}): string => signHs(claims(extra))

interface Harness {
  app: FastifyInstance
  hits: string[]
  logs: () => string
}

const ROUTES: Array<[string, AuthRouteConfig | undefined]> = [
  ['/jwt', { strategies: ['jwt'] }],
  ['/key', { strategies: ['apiKey'] }],
  ['/any', {}],
  ['/all', { strategies: ['jwt', 'apiKey'], relation: 'all' }],
  ['/scoped', { strategies: ['jwt'], scopes: ['orders:read', 'orders:write'] }],
  ['/public', false],
  ['/plain', undefined]
]

const API_KEYS = [{ consumer: 'alpha', key: API_KEY }, { consumer: 'beta', key: API_KEY_2 }]

/** Routes need both strategies, so API keys are always configured; `opts` sets the JWT side. */
async function build (t: Test, opts: AuthPluginOptions = { jwtSecret: SECRET }): Promise<Harness> {
  let text = ''
  const sink = new Writable({ write (c: Buffer, _e, cb) { text += c.toString(); cb() } })
  const app = Fastify({ loggerInstance: pino({ level: 'debug' }, sink), logController: new LogController({ disableRequestLogging: true }) }) as unknown as FastifyInstance
  app.setErrorHandler(gatewayErrorHandler)
  await app.register(authPlugin, { apiKeys: API_KEYS, ...opts })
  const hits: string[] = []
  for (const [url, auth] of ROUTES) {
    app.get(url, auth === undefined ? {} : { config: { auth } }, async (request) => {
      hits.push(url)
      return { consumer: request.consumer }
    })
  }
  t.teardown(async () => { await app.close() })
  await app.ready()
  return { app, hits, logs: () => text }
}

type Headers = Record<string, string | string[]>

async function expect401 (t: Test, h: Harness, url: string, headers: Headers, invalidToken: boolean, msg: string): Promise<void> {
  const before = h.hits.length
  const res = await h.app.inject({ url, headers })
  t.equal(res.statusCode, 401, `${msg}: 401`)
  t.strictSame(res.json(), UNAUTHORIZED, `${msg}: generic body`)
  t.equal(res.headers['www-authenticate'], invalidToken ? 'Bearer realm="portcullis", error="invalid_token"' : 'Bearer realm="portcullis"', `${msg}: challenge`)
  t.equal(h.hits.length, before, `${msg}: handler not reached`)
}

async function expectOk (t: Test, h: Harness, url: string, headers: Headers, id: string, msg: string): Promise<Record<string, unknown>> {
  const before = h.hits.length
  const res = await h.app.inject({ url, headers })
  t.equal(res.statusCode, 200, `${msg}: 200`)
  const consumer = (res.json() as { consumer: Record<string, unknown> }).consumer
  t.equal(consumer?.id, id, `${msg}: consumer id`)
  t.equal(h.hits.length, before + 1, `${msg}: handler reached once`)
  return consumer
}

const bearer = (token: string): Headers => ({ authorization: `Bearer ${token}` })

t.test('a valid HS256 token authenticates; consumer carries id, strategy, scopes and claims', async (t) => {
  const h = await build(t)
  const c = await expectOk(t, h, '/jwt', bearer(hsToken()), 'user-1', 'valid')
  t.equal(c.strategy, 'jwt')
  t.strictSame(c.scopes, ['orders:read', 'orders:write'])
  t.equal((c.claims as Record<string, unknown>).sub, 'user-1')
  const withAud = await expectOk(t, h, '/any', bearer(hsToken()), 'user-1', 'default policy takes every configured strategy')
  t.equal(withAud.strategy, 'jwt')
})

t.test('Bearer scheme is case-insensitive (RFC 9110 §11.1); the token charset is strict', async (t) => {
  const h = await build(t)
  const token = hsToken()
  await expectOk(t, h, '/jwt', { authorization: `bearer ${token}` }, 'user-1', 'lowercase bearer')
  await expectOk(t, h, '/jwt', { authorization: `BEARER ${token}` }, 'user-1', 'uppercase bearer')
  await expectOk(t, h, '/jwt', { authorization: `Bearer   ${token}` }, 'user-1', 'several spaces (1*SP)')
  await expect401(t, h, '/jwt', { authorization: `Bearer\t${token}` }, true, 'tab separator')
  await expect401(t, h, '/jwt', { authorization: `Bearer${token}` }, false, 'no separator')
})

t.test('alg none in every spelling is rejected, with and without a signature', async (t) => {
  const h = await build(t)
  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    const header = { alg, typ: 'JWT' }
    const input = `${b64u(header)}.${b64u(claims())}`
    await expect401(t, h, '/jwt', bearer(`${input}.`), true, `${alg} without signature`)
    const hmac = createHmac('sha256', SECRET).update(input).digest('base64url')
    await expect401(t, h, '/jwt', bearer(`${input}.${hmac}`), true, `${alg} with a valid HMAC signature`)
    await expect401(t, h, '/jwt', bearer(`${input}.${randomBytes(32).toString('base64url')}`), true, `${alg} with a junk signature`)
  }
  const logs = h.logs()
  t.match(logs, /"reason":"invalid_algorithm"/, 'the reason is logged at debug as a fixed token')
})

t.test('RS->HS confusion: HS tokens keyed with the public key in any spelling are rejected', async (t) => {
  const h = await build(t, { jwtPublicKey: RSA_PUBLIC_PEM })
  await expectOk(t, h, '/jwt', bearer(signRs(claims())), 'user-1', 'genuine RS256 token')
  const der = rsa.publicKey.export({ type: 'spki', format: 'der' })
  const pkcs1 = rsa.publicKey.export({ type: 'pkcs1', format: 'pem' }) as string
  const jwk = rsa.publicKey.export({ format: 'jwk' })
  const spellings: Array<[string, string | Buffer]> = [
    ['PEM', RSA_PUBLIC_PEM],
    ['PEM without trailing newline', RSA_PUBLIC_PEM.trimEnd()],
    ['PEM without newlines', RSA_PUBLIC_PEM.replace(/\n/g, '')],
    ['PKCS#1 PEM', pkcs1],
    ['JWK JSON', JSON.stringify(jwk)],
    ['JWKS JSON', JSON.stringify({ keys: [jwk] })],
    ['DER bytes', der],
    ['DER base64', der.toString('base64')],
    ['modulus n', String(jwk.n)]
  ]
  for (const [name, key] of spellings) {
    for (const [alg, hash] of [['HS256', 'sha256'], ['HS384', 'sha384'], ['HS512', 'sha512']]) {
      await expect401(t, h, '/jwt', bearer(forgeHs({ alg, typ: 'JWT' }, claims(), key, hash)), true, `${alg} keyed with ${name}`)
    }
  }
})

t.test('tampered payload or header fails the signature', async (t) => {
  const h = await build(t)
  const [hd, , sig] = hsToken().split('.') as [string, string, string]
  await expect401(t, h, '/jwt', bearer(`${hd}.${b64u(claims({ sub: 'admin' }))}.${sig}`), true, 'payload swapped')
  const [, pl2, sig2] = hsToken().split('.') as [string, string, string]
  await expect401(t, h, '/jwt', bearer(`${b64u({ alg: 'HS384', typ: 'JWT' })}.${pl2}.${sig2}`), true, 'header alg changed')
  const token = hsToken()
  await expect401(t, h, '/jwt', bearer(token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA')), true, 'signature bytes changed')
  await expect401(t, h, '/jwt', bearer(forgeHs({ alg: 'HS256' }, claims(), 'another-secret-0123456789-abcdefghij')), true, 'wrong secret')
})

t.test('time claims: exp required and checked, nbf and iat honoured with the clock skew', async (t) => {
  const h = await build(t, { jwtSecret: SECRET, clockSkewS: 30 })
  const sign = (p: Record<string, unknown>): string => forgeHs({ alg: 'HS256', typ: 'JWT' }, p, SECRET)
  await expect401(t, h, '/jwt', bearer(sign(claims({ exp: now() - 3600 }))), true, 'expired an hour ago')
  await expectOk(t, h, '/jwt', bearer(sign(claims({ exp: now() - 5 }))), 'user-1', 'expired 5 s ago, inside the skew')
  await expect401(t, h, '/jwt', bearer(sign(claims({ nbf: now() + 3600 }))), true, 'nbf in an hour')
  await expectOk(t, h, '/jwt', bearer(sign(claims({ nbf: now() + 5 }))), 'user-1', 'nbf in 5 s, inside the skew')
  await expect401(t, h, '/jwt', bearer(sign(claims({ iat: now() + 3600 }))), true, 'iat in an hour')
  await expectOk(t, h, '/jwt', bearer(sign(claims({ iat: now() + 5 }))), 'user-1', 'iat in 5 s, inside the skew')
  const noExp = claims()
  delete noExp.exp
  await expect401(t, h, '/jwt', bearer(sign(noExp)), true, 'missing exp')
  await expect401(t, h, '/jwt', bearer(sign(claims({ exp: String(now() + 300) }))), true, 'exp as a string')
  await expect401(t, h, '/jwt', bearer(sign(claims({ exp: null }))), true, 'exp null')
  const infinite = `${b64u({ alg: 'HS256' })}.${b64u('{"sub":"user-1","exp":1e400}')}`
  await expect401(t, h, '/jwt', bearer(`${infinite}.${createHmac('sha256', SECRET).update(infinite).digest('base64url')}`), true, 'exp Infinity (1e400)')
  await expect401(t, h, '/jwt', bearer(sign(claims({ nbf: 'soon' }))), true, 'nbf as a string')
})

t.test('iss, aud and max lifetime when configured', async (t) => {
  const h = await build(t, { jwtSecret: SECRET, issuer: 'https://idp.example', audience: ['api', 'gateway'], maxLifetimeS: 600 })
  const sign = (p: Record<string, unknown>): string => forgeHs({ alg: 'HS256' }, p, SECRET)
  const good = { iss: 'https://idp.example', aud: 'gateway' }
  await expectOk(t, h, '/jwt', bearer(sign(claims(good))), 'user-1', 'matching iss and aud')
  await expectOk(t, h, '/jwt', bearer(sign(claims({ ...good, aud: ['other', 'api'] }))), 'user-1', 'aud array with one match')
  await expect401(t, h, '/jwt', bearer(sign(claims({ ...good, iss: 'https://evil.example' }))), true, 'wrong iss')
  await expect401(t, h, '/jwt', bearer(sign(claims({ ...good, iss: ['https://idp.example'] }))), true, 'array iss')
  await expect401(t, h, '/jwt', bearer(sign(claims({ aud: 'gateway' }))), true, 'missing iss')
  await expect401(t, h, '/jwt', bearer(sign(claims({ ...good, aud: 'other' }))), true, 'wrong aud')
  await expect401(t, h, '/jwt', bearer(sign(claims({ ...good, aud: ['other', 'more'] }))), true, 'aud array without a match')
  await expect401(t, h, '/jwt', bearer(sign(claims({ iss: good.iss }))), true, 'missing aud')
  await expect401(t, h, '/jwt', bearer(sign(claims({ ...good, iat: now(), exp: now() + 3600 }))), true, 'lifetime over maxLifetimeS')
  const noIat = claims({ ...good, exp: now() + 3600 })
  delete noIat.iat
  await expect401(t, h, '/jwt', bearer(sign(noIat)), true, 'no iat and exp beyond maxLifetimeS from now')
})

t.test('an array iss is rejected even when no issuer is configured', async (t) => {
  const h = await build(t)
  await expect401(t, h, '/jwt', bearer(hsToken({ iss: ['a', 'b'] })), true, 'array iss')
  await expect401(t, h, '/jwt', bearer(hsToken({ iss: 7 })), true, 'numeric iss')
})

t.test('crit headers are rejected; kid is ignored with a static key', async (t) => {
  const h = await build(t)
  await expect401(t, h, '/jwt', bearer(forgeHs({ alg: 'HS256', crit: ['x-ext'], 'x-ext': 1 }, claims(), SECRET)), true, 'unknown crit')
  await expect401(t, h, '/jwt', bearer(forgeHs({ alg: 'HS256', crit: ['exp'] }, claims(), SECRET)), true, 'crit naming a claim')
  await expect401(t, h, '/jwt', bearer(forgeHs({ alg: 'HS256', crit: [] }, claims(), SECRET)), true, 'empty crit')
  await expectOk(t, h, '/jwt', bearer(forgeHs({ alg: 'HS256', kid: 'whatever' }, claims(), SECRET)), 'user-1', 'kid with a static secret')
})

t.test('embedded jwk / jku / x5u pointing at an attacker key are never followed', async (t) => {
  let fetched = 0
  const server: Server = createServer((_req, res) => {
    fetched++
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ keys: [{ ...attacker.publicKey.export({ format: 'jwk' }), kid: 'evil', use: 'sig' }] }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const evilUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`
  const h = await build(t, { jwtPublicKey: RSA_PUBLIC_PEM })
  const attackerJwk = { ...attacker.publicKey.export({ format: 'jwk' }), kid: 'evil' }
  for (const [name, extra] of [
    ['jwk', { jwk: attackerJwk }],
    ['jku', { jku: evilUrl }],
    ['x5u', { x5u: evilUrl }],
    ['jku + jwk + kid', { jku: evilUrl, jwk: attackerJwk, kid: 'evil' }]
  ] as Array<[string, Record<string, unknown>]>) {
    await expect401(t, h, '/jwt', bearer(forgeRs({ alg: 'RS256', ...extra }, claims(), attacker.privateKey)), true, `${name} header`)
  }
  t.equal(fetched, 0, 'the attacker URL was never fetched')
})

t.test('malformed tokens of every shape answer 401, never 500', async (t) => {
  const h = await build(t)
  const valid = hsToken()
  const [hd, pl, sig] = valid.split('.') as [string, string, string]
  const shapes: Array<[string, string]> = [
    ['one segment', 'abc'],
    ['two segments', `${hd}.${pl}`],
    ['four segments', `${hd}.${pl}.${sig}.${sig}`],
    ['five segments (JWE shape)', `${hd}.${pl}.${sig}.${sig}.${sig}`],
    ['empty segments', '..'],
    ['bad base64', `${hd}.${pl}.%%%`],
    ['padding in base64url', `${hd}=.${pl}.${sig}`],
    ['non-JSON header', `${b64u('not json')}.${pl}.${sig}`],
    ['array header', `${b64u([1, 2])}.${pl}.${sig}`],
    ['null header', `${b64u('null')}.${pl}.${sig}`],
    ['non-JSON payload', forgeHs({ alg: 'HS256' }, 'not json', SECRET)],
    ['array payload', forgeHs({ alg: 'HS256' }, [1, 2], SECRET)],
    ['number payload', forgeHs({ alg: 'HS256' }, 42, SECRET)],
    ['null payload', forgeHs({ alg: 'HS256' }, 'null', SECRET)],
    ['__proto__ payload', forgeHs({ alg: 'HS256' }, '{"__proto__":{"sub":"admin"},"exp":9999999999}', SECRET)],
    ['huge token', `${hd}.${'A'.repeat(9000)}.${sig}`],
    ['base64 chars outside base64url', `${hd}.${pl}+/.${sig}`]
  ]
  for (const [name, token] of shapes) await expect401(t, h, '/jwt', bearer(token), true, name)
  for (const [name, value] of [
    ['empty Authorization', ''],
    ['Bearer without token', 'Bearer'],
    ['Bearer and spaces', 'Bearer    '],
    ['two tokens', `Bearer ${valid} ${valid}`],
    ['two Bearer credentials', `Bearer ${valid}, Bearer ${valid}`],
    ['token then junk', `Bearer ${valid} x`],
    ['quoted token', `Bearer "${valid}"`],
    ['non-ASCII in token', `Bearer ${hd}.${pl}é.${sig}`],
    ['NUL in token', `Bearer ${hd}.${pl}\u0000.${sig}`]
  ] as Array<[string, string]>) {
    await expect401(t, h, '/jwt', { authorization: value }, value.toLowerCase().startsWith('bearer'), name)
  }
  await expect401(t, h, '/jwt', { authorization: 'Basic dXNlcjpwYXNzd29yZA==' }, false, 'Basic scheme')
  await expect401(t, h, '/jwt', { authorization: `Token ${valid}` }, false, 'other scheme')
  await expect401(t, h, '/jwt', {}, false, 'no credential')
  t.notOk(h.logs().includes(sig), 'no token material in the logs')
})

t.test('two Authorization headers, or a token in the query, answer 401', async (t) => {
  const h = await build(t)
  const token = hsToken()
  await expect401(t, h, '/jwt', { authorization: [`Bearer ${token}`, `Bearer ${token}`] }, true, 'two identical headers')
  await expect401(t, h, '/jwt', { authorization: [`Bearer ${token}`, 'Basic eA=='] }, true, 'Bearer + Basic')
  const before = h.hits.length
  for (const url of [`/jwt?access_token=${token}`, `/jwt?x=1&access_token=${token}`]) {
    const res = await h.app.inject({ url, headers: bearer(token) })
    t.equal(res.statusCode, 401, `${url.slice(0, 24)}...: query token with a valid header -> 401`)
    const bare = await h.app.inject({ url })
    t.equal(bare.statusCode, 401, 'query token alone -> 401')
  }
  t.equal(h.hits.length, before, 'handler not reached')
})

t.test('identity safety: subjects that are not safe header values answer 401', async (t) => {
  const h = await build(t)
  for (const [name, sub] of [
    ['CRLF', 'user\r\nx-consumer-id: admin'],
    ['LF', 'user\nx'],
    ['NUL', 'user\u0000'],
    ['DEL', 'user\u007f'],
    ['tab', 'user\tx'],
    ['leading space', ' user'],
    ['non-ASCII', 'usér'],
    ['257 characters', 'u'.repeat(257)],
    ['empty', ''],
    ['number', 42],
    ['object', { id: 'x' }],
    ['array', ['a']],
    ['missing', undefined]
  ] as Array<[string, unknown]>) {
    await expect401(t, h, '/jwt', bearer(forgeHs({ alg: 'HS256' }, claims({ sub }), SECRET)), true, `sub ${name}`)
  }
  await expectOk(t, h, '/jwt', bearer(hsToken({ sub: 'u'.repeat(256) })), 'u'.repeat(256), '256 characters pass')
  await expectOk(t, h, '/jwt', bearer(hsToken({ sub: 'svc account@example.com' })), 'svc account@example.com', 'inner space passes')
  for (const [name, scope] of [['CRLF', 'a\r\nb'], ['quote', 'a"b'], ['backslash', 'a\\b'], ['number', 3], ['object', {}], ['non-ASCII', 'lecture:é']] as Array<[string, unknown]>) {
    await expect401(t, h, '/jwt', bearer(hsToken({ scope })), true, `scope ${name}`)
  }
  await expect401(t, h, '/jwt', bearer(hsToken({ scope: undefined, scp: ['ok', 7] })), true, 'scp with a number')
})

t.test('scopes: all required, from scope (string) or scp (array); missing -> 403', async (t) => {
  const h = await build(t)
  await expectOk(t, h, '/scoped', bearer(hsToken()), 'user-1', 'scope string with both')
  await expectOk(t, h, '/scoped', bearer(hsToken({ scope: 'orders:write  extra orders:read ' })), 'user-1', 'extra spaces and extra scopes')
  await expectOk(t, h, '/scoped', bearer(hsToken({ scope: undefined, scp: ['orders:read', 'orders:write'] })), 'user-1', 'scp array')
  for (const [name, extra] of [
    ['one scope missing', { scope: 'orders:read' }],
    ['no scope claim', { scope: undefined }],
    ['case differs', { scope: 'orders:READ orders:write' }],
    ['prefix only', { scope: 'orders' }]
  ] as Array<[string, Record<string, unknown>]>) {
    const before = h.hits.length
    const res = await h.app.inject({ url: '/scoped', headers: bearer(hsToken(extra)) })
    t.equal(res.statusCode, 403, `${name}: 403`)
    t.strictSame(res.json(), FORBIDDEN, `${name}: generic body`)
    t.equal(res.headers['www-authenticate'], 'Bearer realm="portcullis", error="insufficient_scope", scope="orders:read orders:write"')
    t.equal(h.hits.length, before, `${name}: handler not reached`)
  }
  const res = await h.app.inject({ url: '/scoped', headers: { 'x-api-key': API_KEY } })
  t.equal(res.statusCode, 401, 'API keys are not accepted on a jwt-only route')
})

t.test('API keys: only from x-api-key, one key, every invalid variant gets the same 401', async (t) => {
  const h = await build(t)
  const c = await expectOk(t, h, '/key', { 'x-api-key': API_KEY }, 'alpha', 'valid key')
  t.strictSame(c, { id: 'alpha', strategy: 'apiKey', scopes: [] })
  await expectOk(t, h, '/key', { 'x-api-key': API_KEY_2 }, 'beta', 'second consumer')
  const bodies = new Set<string>()
  for (const [name, headers, url] of [
    ['wrong key', { 'x-api-key': 'key-alpha-0123456789abcdeX' }],
    ['prefix of a key', { 'x-api-key': API_KEY.slice(0, -1) }],
    ['key plus a character', { 'x-api-key': API_KEY + 'x' }],
    ['empty', { 'x-api-key': '' }],
    ['duplicate header', { 'x-api-key': [API_KEY, API_KEY] }],
    ['duplicate header, one empty', { 'x-api-key': [API_KEY, ''] }],
    ['comma-joined keys', { 'x-api-key': `${API_KEY},${API_KEY_2}` }],
    ['comma-space-joined keys', { 'x-api-key': `${API_KEY}, ${API_KEY_2}` }],
    ['very long key', { 'x-api-key': 'k'.repeat(4096) }],
    ['short key', { 'x-api-key': 'abc' }],
    ['key as Bearer token', bearer(API_KEY)],
    ['key in the query', {}, `/key?api_key=${API_KEY}`],
    ['key in another header', { 'x-api-token': API_KEY }],
    ['no key', {}]
  ] as Array<[string, Headers, string?]>) {
    const before = h.hits.length
    const res = await h.app.inject({ url: url ?? '/key', headers })
    t.equal(res.statusCode, 401, `${name}: 401`)
    t.equal(res.headers['www-authenticate'], 'Bearer realm="portcullis"', `${name}: challenge`)
    t.equal(h.hits.length, before, `${name}: handler not reached`)
    bodies.add(res.body)
  }
  t.strictSame([...bodies], [JSON.stringify(UNAUTHORIZED)], 'one identical body for every variant')
  t.notOk(h.logs().includes(API_KEY), 'the key never reaches the logs')
})

t.test('relation any/all across strategies', async (t) => {
  const h = await build(t)
  const token = hsToken()
  await expectOk(t, h, '/any', { 'x-api-key': API_KEY }, 'alpha', 'any: key alone')
  await expectOk(t, h, '/any', bearer(token), 'user-1', 'any: jwt alone')
  await expectOk(t, h, '/any', { ...bearer(token), 'x-api-key': API_KEY }, 'user-1', 'any: both valid -> the JWT identity')
  await expect401(t, h, '/any', { ...bearer(token), 'x-api-key': 'wrong-key-0123456789abcdef' }, false, 'any: valid jwt + invalid key')
  await expect401(t, h, '/any', { authorization: 'Bearer a.b.c', 'x-api-key': API_KEY }, true, 'any: invalid jwt + valid key')
  await expect401(t, h, '/all', bearer(token), false, 'all: jwt alone')
  await expect401(t, h, '/all', { 'x-api-key': API_KEY }, false, 'all: key alone')
  await expect401(t, h, '/all', { ...bearer(hsToken({ exp: now() - 3600 })), 'x-api-key': API_KEY }, true, 'all: expired jwt + key')
  const c = await expectOk(t, h, '/all', { ...bearer(token), 'x-api-key': API_KEY }, 'user-1', 'all: both valid')
  t.equal(c.strategy, 'jwt')
})

t.test('public and plain routes are untouched; HEAD twins are protected', async (t) => {
  const h = await build(t)
  for (const url of ['/public', '/plain']) {
    for (const headers of [{}, { authorization: 'Bearer garbage' }, { 'x-api-key': 'nope' }, bearer(hsToken())]) {
      const res = await h.app.inject({ url, headers })
      t.equal(res.statusCode, 200, `${url} answers without auth`)
      t.equal(res.headers['www-authenticate'], undefined)
      t.strictSame(res.json(), { consumer: null }, `${url}: request.consumer stays null`)
    }
  }
  const before = h.hits.length
  const head = await h.app.inject({ method: 'HEAD', url: '/jwt' })
  t.equal(head.statusCode, 401, 'HEAD of a protected GET route')
  t.equal(h.hits.length, before)
  const ok = await h.app.inject({ method: 'HEAD', url: '/jwt', headers: bearer(hsToken()) })
  t.equal(ok.statusCode, 200)
})

t.test('failures publish authFailure with a fixed reason and never log the token', async (t) => {
  const h = await build(t)
  const seen: unknown[] = []
  const onMessage = (m: unknown): void => { seen.push(m) }
  diagnostics.subscribe('portcullis:auth.failure', onMessage)
  t.teardown(() => { diagnostics.unsubscribe('portcullis:auth.failure', onMessage) })
  const expired = hsToken({ exp: now() - 3600 })
  await h.app.inject({ url: '/jwt', headers: bearer(expired) })
  await h.app.inject({ url: '/scoped', headers: bearer(hsToken({ scope: 'x' })) })
  await h.app.inject({ url: '/key', headers: { 'x-api-key': 'nope-nope-nope-nope-nope' } })
  t.strictSame(seen, [
    { route: '/jwt', status: 401, reason: 'expired' },
    { route: '/scoped', status: 403, reason: 'insufficient_scope' },
    { route: '/key', status: 401, reason: 'invalid_api_key' }
  ])
  const logs = h.logs()
  t.notOk(logs.includes(expired.split('.')[2] as string), 'the token is not logged')
  t.notOk(logs.includes('nope-nope-nope'), 'the key is not logged')
  t.match(logs, /"reason":"expired"/)
})

t.test('the verified-token cache never outlives exp', async (t) => {
  const h = await build(t, { jwtSecret: SECRET, clockSkewS: 0, tokenCacheTtlMs: 600_000 })
  // The tap clock plugin is not enabled in this project: move Date.now by hand (restored on teardown).
  const realNow = Date.now
  let offsetMs = 0
  Date.now = () => realNow() + offsetMs
  t.teardown(() => { Date.now = realNow })
  const token = hsToken({ iat: now(), exp: now() + 60 })
  await expectOk(t, h, '/jwt', bearer(token), 'user-1', 'fresh token (cached)')
  await expectOk(t, h, '/jwt', bearer(token), 'user-1', 'served again')
  offsetMs = 61_000
  await expect401(t, h, '/jwt', bearer(token), true, 'after exp the cached result is not used')
})

t.test('the verified-token cache is bounded and can be switched off', async (t) => {
  for (const tokenCacheSize of [0, 2]) {
    const h = await build(t, { jwtSecret: SECRET, tokenCacheSize })
    for (let i = 0; i < 5; i++) await expectOk(t, h, '/jwt', bearer(hsToken({ sub: `u${i}` })), `u${i}`, `cache ${tokenCacheSize}: token ${i}`)
    await expectOk(t, h, '/jwt', bearer(hsToken({ sub: 'u0' })), 'u0', `cache ${tokenCacheSize}: evicted token verifies again`)
  }
})

t.test('option validation: ready() rejects with GW_CONFIG_INVALID', async (t) => {
  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string
  const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey.export({ type: 'spki', format: 'pem' }) as string
  const cases: Array<[string, unknown, RegExp]> = [
    ['short secret', { jwtSecret: 'short' }, /jwtSecret/],
    ['two key sources', { jwtSecret: SECRET, jwtPublicKey: RSA_PUBLIC_PEM }, /only one key source/],
    ['PEM as secret', { jwtSecret: RSA_PUBLIC_PEM }, /looks like a PEM/],
    ['JWK as secret', { jwtSecret: JSON.stringify(rsa.publicKey.export({ format: 'jwk' })) }, /looks like a PEM or JWK/],
    ['private key as public key', { jwtPublicKey: RSA_PRIVATE_PEM }, /private key/],
    ['garbage public key', { jwtPublicKey: '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----' }, /not a PEM/],
    ['weak RSA key', { jwtPublicKey: weak }, /2048 bits/],
    ['unsupported curve', { jwtPublicKey: k1 }, /unsupported EC curve/],
    ['jwksUrl not http', { jwksUrl: 'file:///etc/passwd' }, /jwksUrl/],
    ['HS algorithm for an RSA key', { jwtPublicKey: RSA_PUBLIC_PEM, jwtAlgorithms: ['HS256'] }, /jwtAlgorithms/],
    ['RS algorithm for a secret', { jwtSecret: SECRET, jwtAlgorithms: ['RS256'] }, /jwtAlgorithms/],
    ['none algorithm', { jwtSecret: SECRET, jwtAlgorithms: ['none'] }, /jwtAlgorithms/],
    ['unknown option', { jwtSecret: SECRET, jwtSecrets: 'x' }, /options/],
    ['skew too large', { jwtSecret: SECRET, clockSkewS: 3600 }, /clockSkewS/],
    ['tiny maxTokenBytes', { jwtSecret: SECRET, maxTokenBytes: 10 }, /maxTokenBytes/],
    ['short API key', { apiKeys: [{ consumer: 'a', key: 'short' }] }, /apiKeys\.0\.key/],
    ['bad consumer name', { apiKeys: [{ consumer: 'a b\r\n', key: API_KEY }] }, /apiKeys\.0\.consumer/],
    ['duplicate API key', { apiKeys: [{ consumer: 'a', key: API_KEY }, { consumer: 'b', key: API_KEY }] }, /reuses/]
  ]
  for (const [name, opts, message] of cases) {
    const app = Fastify()
    app.register(authPlugin, opts as AuthPluginOptions)
    await t.rejects(async () => { await app.ready() }, { code: 'GW_CONFIG_INVALID', message }, name)
    await app.close()
  }
  const original = Object.freeze({ jwtSecret: SECRET, apiKeys: Object.freeze([Object.freeze({ consumer: 'a', key: API_KEY })]) })
  const app = Fastify()
  await app.register(authPlugin, original)
  await app.ready()
  t.strictSame(Object.keys(original), ['jwtSecret', 'apiKeys'], 'caller options untouched')
  await app.close()
})

t.test('route policies are validated at startup, naming the route', async (t) => {
  const cases: Array<[string, AuthPluginOptions, unknown, RegExp]> = [
    ['apiKey required but not configured', { jwtSecret: SECRET }, { strategies: ['apiKey'] }, /GET \/r.*"apiKey" is not configured/],
    ['jwt required but not configured', { apiKeys: [{ consumer: 'a', key: API_KEY }] }, { strategies: ['jwt'] }, /"jwt" is not configured/],
    ['nothing configured, default policy', {}, {}, /GET \/r.*no strategy is configured/],
    ['unknown field', { jwtSecret: SECRET }, { strategy: 'jwt' }, /auth/],
    ['empty strategies', { jwtSecret: SECRET }, { strategies: [] }, /auth\.strategies/],
    ['unknown strategy', { jwtSecret: SECRET }, { strategies: ['basic'] }, /auth\.strategies/],
    ['bad scope characters', { jwtSecret: SECRET }, { scopes: ['a"b'] }, /auth\.scopes/],
    ['true is not a policy', { jwtSecret: SECRET }, true, /auth/],
    ['null is not a policy', { jwtSecret: SECRET }, null, /auth/]
  ]
  for (const [name, opts, auth, message] of cases) {
    const app = Fastify()
    await app.register(authPlugin, opts)
    app.register(async (child) => {
      child.get('/r', { config: { auth: auth as AuthRouteConfig } }, async () => 'x')
    })
    await t.rejects(async () => { await app.ready() }, { code: 'GW_CONFIG_INVALID', message }, name)
    await app.close()
  }
  const app = Fastify()
  await app.register(authPlugin, {})
  app.get('/open', { config: { auth: false } }, async () => 'x')
  app.get('/plain', async () => 'x')
  await app.ready()
  t.equal((await app.inject('/open')).statusCode, 200, 'no strategies: public and plain routes still start')
  await app.close()
})

t.test('config.auth from loadConfig() is accepted as the options object', async (t) => {
  const config = loadConfig({ JWT_SECRET: SECRET, JWT_ISSUER: 'https://idp.example', JWT_AUDIENCE: 'api, gw', JWT_MAX_LIFETIME_S: '3600', API_KEYS: `alpha:${API_KEY}` })
  const h = await build(t, config.auth)
  await expectOk(t, h, '/jwt', bearer(hsToken({ iss: 'https://idp.example', aud: 'gw' })), 'user-1', 'iss and aud from the environment')
  await expect401(t, h, '/jwt', bearer(hsToken({ iss: 'https://idp.example', aud: 'other' })), true, 'aud from the environment enforced')
  await expectOk(t, h, '/key', { 'x-api-key': API_KEY }, 'alpha', 'API key from the environment')
})
