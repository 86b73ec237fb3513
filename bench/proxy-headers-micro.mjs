#!/usr/bin/env node
// Proxy header rewrite micro benchmark (in process; not the official wrk benchmark): ns per call of
//  1. rewriteUpstreamRequestHeaders for a typical API request (14 headers, an authenticated
//     consumer), for a request carrying 12 spoofed identity/IP headers, and with TRUST_PROXY set;
//  2. rewriteClientResponseHeaders for a typical response (7 headers).
// Runs one or two builds side by side (e.g. before/after a change), interleaved rounds; prints the
// median and the minimum round (on a shared machine the minimum is the least disturbed one).
//
//   npx tsc -p tsconfig.json --outDir /tmp/portcullis-dist
//   node --expose-gc bench/proxy-headers-micro.mjs [--rounds 9] [--calls 200000] [--before /tmp/dist-before] [--after /tmp/portcullis-dist]
//   (default --after: $PORTCULLIS_DIST or ./dist, as left by `npm run build`)
import { pathToFileURL } from 'node:url'
import { join, resolve } from 'node:path'

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]])
  return acc
}, []))
const ROUNDS = Number(args.rounds ?? 9)
const CALLS = Number(args.calls ?? 200_000)
const here = new URL('.', import.meta.url).pathname
const builds = [
  ...(args.before !== undefined ? [['before', resolve(args.before)]] : []),
  ['after', resolve(args.after ?? process.env.PORTCULLIS_DIST ?? join(here, '../dist'))]
]

const gc = globalThis.gc ?? (() => {})
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const TYPICAL = {
  host: 'api.example.com',
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
  accept: 'application/json',
  'accept-encoding': 'gzip, deflate, br',
  'accept-language': 'en-GB,en;q=0.9',
  authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig',
  'content-type': 'application/json',
  'content-length': '42',
  origin: 'https://app.example.com',
  referer: 'https://app.example.com/orders',
  'sec-fetch-site': 'same-site',
  'sec-fetch-mode': 'cors',
  'x-request-id': 'abc-123_XYZ.789',
  traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
}
const SPOOFED = {
  ...Object.fromEntries(Object.entries(TYPICAL).slice(0, 6)),
  'x-forwarded-user': 'admin',
  'x-forwarded-email': 'a@b.c',
  'remote-user': 'admin',
  'x-real-ip': '6.6.6.6',
  'x-client-ip': '6.6.6.6',
  'cf-connecting-ip': '6.6.6.6',
  'x-consumer-id': 'admin',
  'x-original-url': '/admin',
  'x-ssl-client-cert': 'x',
  x_forwarded_user: 'admin',
  'x-forwarded-for': '6.6.6.6',
  'x-auth-request-email': 'a@b.c'
}
const VIA_PROXY = { ...TYPICAL, 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'api.example.com' }
const RESPONSE = {
  'content-type': 'application/json',
  'content-length': '512',
  date: 'Sun, 06 Dec 2026 20:00:00 GMT',
  etag: '"abc"',
  'cache-control': 'no-store',
  vary: 'Accept-Encoding',
  connection: 'keep-alive'
}

// `ip` is a plain field here; on a gateway with TRUST_PROXY it is Fastify's getter, which parses
// x-forwarded-for on every read (the previous code read it on every request).
// Every policy has one shape (as on a gateway, where all routes share it).
function fakeRequest (headers, ip = '127.0.0.1') {
  return {
    socket: { remoteAddress: '127.0.0.1' },
    ip,
    method: 'GET',
    headers,
    id: 'bench-request-id',
    consumer: { id: 'user-7', strategy: 'jwt', scopes: ['orders:read'] }
  }
}

async function load (dist) {
  const headers = await import(pathToFileURL(join(dist, 'plugins/proxy/headers.js')).href)
  let filter
  let trustedPeer
  try {
    const c = await import(pathToFileURL(join(dist, 'plugins/proxy/client-headers.js')).href)
    filter = new c.RequestHeaderFilter(['X-Tenant-Id', 'X-Acme-*'])
    trustedPeer = c.trustedPeerMatcher(['10.0.0.0/8', '127.0.0.1/32'])
  } catch {}
  return { ...headers, filter, trustedPeer }
}

/** CPU ns per call of fn over n calls (CPU time, not wall time: on a shared machine the process is often descheduled). */
function time (n, fn) {
  const t0 = process.cpuUsage()
  for (let i = 0; i < n; i++) fn(i)
  const d = process.cpuUsage(t0)
  return ((d.user + d.system) * 1000) / n
}

const loaded = []
for (const [name, dist] of builds) loaded.push([name, await load(dist)])

const cases = [
  ['request, typical (14 headers, consumer)', (m) => {
    const req = fakeRequest(TYPICAL)
    const policy = { forwardAuthorization: false, tls: true, filter: m.filter, trustedPeer: undefined }
    return () => m.rewriteUpstreamRequestHeaders(req, TYPICAL, policy)
  }],
  ['request, 12 spoofed headers', (m) => {
    const req = fakeRequest(SPOOFED)
    const policy = { forwardAuthorization: false, tls: true, filter: m.filter, trustedPeer: undefined }
    return () => m.rewriteUpstreamRequestHeaders(req, SPOOFED, policy)
  }],
  ['request, typical, TRUST_PROXY set', (m) => {
    const req = fakeRequest(TYPICAL)
    const policy = { forwardAuthorization: false, tls: true, filter: m.filter, trustedPeer: m.trustedPeer }
    return () => m.rewriteUpstreamRequestHeaders(req, TYPICAL, policy)
  }],
  ['request from a TRUST_PROXY peer (x-forwarded-*)', (m) => {
    const req = fakeRequest(VIA_PROXY, '203.0.113.7')
    const policy = { forwardAuthorization: false, tls: true, filter: m.filter, trustedPeer: m.trustedPeer }
    return () => m.rewriteUpstreamRequestHeaders(req, VIA_PROXY, policy)
  }],
  ['response, typical (7 headers)', (m) => () => m.rewriteClientResponseHeaders(RESPONSE)]
]

const rows = []
for (const [label, make] of cases) {
  const fns = loaded.map(([name, m]) => [name, make(m)])
  for (const [, fn] of fns) time(CALLS, fn)
  const samples = Object.fromEntries(fns.map(([name]) => [name, []]))
  for (let r = 0; r < ROUNDS; r++) {
    // Alternate the order, so neither build always runs right after a collection of the other's garbage.
    for (const [name, fn] of (r % 2 === 0 ? fns : [...fns].reverse())) { gc(); samples[name].push(time(CALLS, fn)) }
  }
  rows.push([label, ...fns.flatMap(([name]) => [median(samples[name]), Math.min(...samples[name])])])
}

console.log(`node ${process.version}, ${ROUNDS} rounds x ${CALLS} calls, CPU ns per call (median, and the least disturbed round)`)
console.log(`| case | ${loaded.map(([n]) => `${n} median | ${n} min`).join(' | ')} |`)
console.log(`|---|${loaded.map(() => '---:|---:').join('|')}|`)
for (const [label, ...ns] of rows) console.log(`| ${label} | ${ns.map((v) => v.toFixed(0)).join(' | ')} |`)
