#!/usr/bin/env node
// Auth micro benchmark (in process; not the official wrk benchmark):
//  1. cost of one JWT verification (HS256, RS256, ES256) with the plugin's pinned fast-jwt
//     verifier plus its claim checks, on distinct tokens (no cache);
//  2. API-key lookup (HMAC-SHA-256 digest + Map probe + constant-time compare) with 10 and
//     1,000,000 keys, hits and misses: the lookup cost must stay flat;
//  3. per-request cost of the onRequest hook through Fastify inject: no auth, API key, HS256
//     with and without the verified-token cache.
// Interleaved rounds, medians.
//
//   npx tsc -p tsconfig.json --outDir /tmp/portcullis-dist && PORTCULLIS_DIST=/tmp/portcullis-dist node --expose-gc bench/auth-micro.mjs [--rounds 5] [--keys 1000000]
//   (default PORTCULLIS_DIST: ./dist, as left by `npm run build`)
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import { join, resolve } from 'node:path'
import Fastify from 'fastify'
import { createSigner } from 'fast-jwt'

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]])
  return acc
}, []))
const ROUNDS = Number(args.rounds ?? 5)
const BIG = Number(args.keys ?? 1_000_000)
const dist = resolve(process.env.PORTCULLIS_DIST ?? join(new URL('.', import.meta.url).pathname, '../dist'))
const load = async (p) => await import(pathToFileURL(join(dist, p)).href)
const { compileVerifier, consumerFromPayload, parsePublicKeyPem } = await load('plugins/auth/jwt.js')
const { ApiKeyStore } = await load('plugins/auth/api-keys.js')
const { authPlugin } = await load('plugins/auth/index.js')
const { gatewayErrorHandler } = await load('src/errors.js')

const gc = globalThis.gc ?? (() => {})
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const now = () => Math.floor(Date.now() / 1000)
const rules = { skewMs: 30_000, maxLifetimeS: undefined, issuer: undefined, audience: undefined }

/** ns per call of fn(i) over n calls. */
function time (n, fn) {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) fn(i)
  return Number(process.hrtime.bigint() - t0) / n
}

// 1. JWT verification
const secret = randomBytes(32).toString('hex')
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const algs = [
  ['HS256', secret, secret, ['HS256', 'HS384', 'HS512']],
  ['RS256', rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }), parsePublicKeyPem(rsa.publicKey.export({ type: 'spki', format: 'pem' })).pem, ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']],
  ['ES256', ec.privateKey.export({ type: 'pkcs8', format: 'pem' }), parsePublicKeyPem(ec.publicKey.export({ type: 'spki', format: 'pem' })).pem, ['ES256']]
]
const N_TOKENS = 2000
const jwtRows = []
for (const [alg, signKey, verifyKey, allowed] of algs) {
  const sign = createSigner({ key: signKey, algorithm: alg })
  const tokens = Array.from({ length: N_TOKENS }, (_, i) => sign({ sub: `user-${i}`, scope: 'orders:read orders:write', exp: now() + 3600 }))
  const verify = compileVerifier(verifyKey, allowed, rules)
  const run = () => time(N_TOKENS, (i) => {
    const d = verify(tokens[i])
    if (typeof consumerFromPayload(d.payload, rules, Date.now()) === 'string') throw new Error('bench token rejected')
  })
  run()
  const samples = []
  for (let r = 0; r < ROUNDS; r++) { gc(); samples.push(run()) }
  jwtRows.push([alg, median(samples)])
}

// 2. API-key lookup: 10 vs BIG keys
function makeKeys (n) {
  const entries = new Array(n)
  for (let i = 0; i < n; i++) entries[i] = { consumer: `c${i % 1000}`, key: `k-${i}-${randomBytes(12).toString('hex')}` }
  return entries
}
gc()
const heap0 = process.memoryUsage().heapUsed
const small = makeKeys(10)
const smallStore = new ApiKeyStore(small)
const bigEntries = makeKeys(BIG)
const t0 = Date.now()
const bigStore = new ApiKeyStore(bigEntries)
const buildMs = Date.now() - t0
const probesFrom = (entries) => Array.from({ length: 20_000 }, (_, i) => entries[(i * 7919) % entries.length].key)
const misses = Array.from({ length: 20_000 }, () => `k-miss-${randomBytes(12).toString('hex')}`)
const smallHits = probesFrom(small)
const bigHits = probesFrom(bigEntries)
const keyCases = [
  ['10 keys, hit', smallStore, smallHits],
  [`${BIG.toLocaleString('en')} keys, hit`, bigStore, bigHits],
  ['10 keys, miss', smallStore, misses],
  [`${BIG.toLocaleString('en')} keys, miss`, bigStore, misses]
]
const keySamples = keyCases.map(() => [])
for (let r = 0; r < ROUNDS + 1; r++) {
  keyCases.forEach(([, store, probes], c) => {
    const ns = time(probes.length, (i) => { store.lookup(probes[i]) })
    if (r > 0) keySamples[c].push(ns)
  })
}
bigEntries.length = 0
gc()
const heapBig = process.memoryUsage().heapUsed - heap0

// 3. Through Fastify (inject, concurrency 1): per-request cost of the hook
const API_KEY = 'bench-key-0123456789abcdef'
async function app (opts) {
  const f = Fastify({ logger: false })
  f.setErrorHandler(gatewayErrorHandler)
  await f.register(authPlugin, { jwtSecret: secret, apiKeys: [{ consumer: 'bench', key: API_KEY }], ...opts })
  f.get('/none', async () => 'ok')
  f.get('/jwt', { config: { auth: { strategies: ['jwt'] } } }, async () => 'ok')
  f.get('/key', { config: { auth: { strategies: ['apiKey'] } } }, async () => 'ok')
  await f.ready()
  return f
}
const cached = await app({})
const uncached = await app({ tokenCacheSize: 0 })
const hsToken = createSigner({ key: secret, algorithm: 'HS256' })({ sub: 'bench', scope: 'a', exp: now() + 3600 })
const injectCases = [
  ['no auth (plain route)', cached, { url: '/none' }],
  ['API key', cached, { url: '/key', headers: { 'x-api-key': API_KEY } }],
  ['HS256, token cache on (same token)', cached, { url: '/jwt', headers: { authorization: `Bearer ${hsToken}` } }],
  ['HS256, token cache off', uncached, { url: '/jwt', headers: { authorization: `Bearer ${hsToken}` } }]
]
const REQS = 5000
const injectSamples = injectCases.map(() => [])
for (let r = 0; r < ROUNDS + 1; r++) {
  for (const [c, [, f, req]] of injectCases.entries()) {
    const t1 = process.hrtime.bigint()
    for (let i = 0; i < REQS; i++) {
      const res = await f.inject(req)
      if (res.statusCode !== 200) throw new Error(`bench request failed: ${res.statusCode}`)
    }
    if (r > 0) injectSamples[c].push(Number(process.hrtime.bigint() - t1) / REQS / 1000)
  }
}
await cached.close()
await uncached.close()

const fmt = (n, d = 0) => n.toFixed(d).padStart(8)
console.log(`node ${process.version}, ${ROUNDS} rounds, medians\n`)
console.log('JWT verification (pinned fast-jwt verifier + claim checks, no cache)')
for (const [alg, ns] of jwtRows) console.log(`  ${alg.padEnd(8)} ${fmt(ns / 1000, 1)} µs/verify  ${fmt(1e9 / ns)} verifies/s (one core)`)
console.log(`\nAPI-key lookup (store of ${BIG.toLocaleString('en')} keys built in ${buildMs} ms, ~${(heapBig / 1024 / 1024).toFixed(0)} MB heap)`)
keyCases.forEach(([name], c) => console.log(`  ${name.padEnd(26)} ${fmt(median(keySamples[c]))} ns/lookup`))
console.log('\nPer request through Fastify inject (hook + inject overhead)')
injectCases.forEach(([name], c) => console.log(`  ${name.padEnd(36)} ${fmt(median(injectSamples[c]), 2)} µs/request`))
