#!/usr/bin/env node
// Portcullis benchmark: wrk against several proxies in one run (nginx, bare @fastify/http-proxy,
// fast-gateway, Portcullis configurations), the proxy under test pinned to core 0, wrk and the
// upstream on core 1 (the cluster scenarios run the gateway on cores 0,1). Interleaved rounds,
// medians reported, Markdown tables (results, then the targets) written to bench/results/latest.md.
//
//   npm run build && node bench/run.mjs [--rounds 3] [--duration 10] [--warmup 10] [--connections 50]
//                                       [--only a,b] [--out bench/results/latest.md]
//
// --paired: the targets' pairs instead, both proxies of a pair loaded at the same time on core 0
// (see measurePair), --rounds pairs each, written to bench/results/paired.md.
//
// Scenarios with `tls: true` (the mTLS pair) listen on HTTPS and are loaded by bench/tls-load.mjs
// (Node, undici) on core 1 instead of wrk, which cannot present a client certificate; the figures
// come out in the same shape, and both scenarios of such a pair use that generator.
import { spawn, spawnSync, execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { benchCerts, scenarios } from './scenarios.mjs'
import { treeCpuTicks, treePeakRssMb } from './proc.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1] !== undefined && !all[i + 1].startsWith('--') ? all[i + 1] : 'true'])
  return acc
}, []))
const rounds = Number(args.rounds ?? 3)
const duration = Number(args.duration ?? 10)
const warmup = Number(args.warmup ?? 10)
const connections = Number(args.connections ?? 50)
const only = args.only?.split(',')
const out = args.out ?? join(root, 'bench/results/latest.md')
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim())

function ensure (cmd, pkg) {
  if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0) return
  process.stdout.write(`installing ${pkg} (Debian package)\n`)
  execFileSync('sh', ['-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${pkg}`], { stdio: 'inherit' })
}

async function freePort () {
  return await new Promise((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) })
  })
}

/**
 * One request to a scenario's proxy: plain HTTP with fetch, or for a `tls` scenario HTTPS trusting
 * the bench CA and presenting the bench client certificate (unless `cert` is false).
 */
async function get (port, sc, path, opts = {}) {
  if (sc.tls !== true) {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, opts)
    await r.arrayBuffer()
    return r.status
  }
  const c = benchCerts(root)
  const dispatcher = new Agent({ connect: { ca: readText(c.ca), servername: 'localhost', ...(opts.cert !== false ? { cert: readText(c.clientCert), key: readText(c.clientKey) } : {}) } })
  try {
    const r = await request(`https://127.0.0.1:${port}${path}`, { method: opts.method ?? 'GET', headers: opts.headers ?? {}, body: opts.body, dispatcher })
    await r.body.arrayBuffer()
    return r.statusCode
  } finally {
    await dispatcher.close()
  }
}

const readText = (file) => readFileSync(file, 'utf8')

async function waitHttp (port, sc, seconds = 15) {
  for (let i = 0; i < seconds * 20; i++) {
    try {
      await get(port, sc, sc.readyPath ?? '/')
      return
    } catch { await new Promise((resolve) => setTimeout(resolve, 50)) }
  }
  throw new Error(`port ${port} never answered`)
}

/** Starts `cmd` under taskset: `cores` is a core (0), a taskset list ('0,1', '0-1') or an array ([0, 1]). */
function pinned (cores, cmd, argv, env) {
  const list = Array.isArray(cores) ? cores.join(',') : String(cores)
  const child = spawn('taskset', ['-c', list, cmd, ...argv], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
  return child
}

function parseWrk (text) {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? NaN)
  const total = Number(/(\d+) requests in/.exec(text)?.[1] ?? NaN)
  const toMs = (v, unit) => unit === 'us' ? v / 1000 : unit === 's' ? v * 1000 : v
  const lat = (pct) => {
    const m = new RegExp(`\\s${pct}%\\s+([\\d.]+)(us|ms|s)`).exec(text)
    return m === null ? NaN : toMs(Number(m[1]), m[2])
  }
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0)
  const errors = /Socket errors: (.*)/.exec(text)?.[1] ?? ''
  return { rps, total, p50: lat(50), p99: lat(99), non2xx, errors }
}

function wrkArgs (port, sc, seconds) {
  const argv = ['-c', '1', 'wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--latency']
  for (const [k, v] of Object.entries(sc.headers ?? {})) argv.push('-H', `${k}: ${v}`)
  if (sc.lua !== undefined) argv.push('-s', join(root, 'bench', sc.lua))
  argv.push(`http://127.0.0.1:${port}${sc.path ?? '/api/items'}`)
  return argv
}

/**
 * bench/tls-load.mjs on core 1 for a `tls` scenario: the same connections, duration, headers and
 * path as wrk would get, over HTTPS with the bench client certificate.
 */
function loadArgs (port, sc, seconds) {
  const c = benchCerts(root)
  const argv = ['-c', '1', process.execPath, join(root, 'bench/tls-load.mjs'), '--url', `https://127.0.0.1:${port}${sc.path ?? '/api/items'}`,
    '--connections', String(connections), '--duration', String(seconds), '--ca', c.ca, '--cert', c.clientCert, '--key', c.clientKey]
  for (const [k, v] of Object.entries(sc.headers ?? {})) argv.push('--header', `${k}: ${v}`)
  return argv
}

/** The load generator's JSON line as parseWrk's figures (plus its own CPU time). */
function parseLoad (text) {
  const line = text.split('\n').find((l) => l.startsWith('{'))
  if (line === undefined) return { rps: NaN, total: NaN, p50: NaN, p99: NaN, non2xx: 0, errors: text.trim() }
  const r = JSON.parse(line)
  const statuses = Object.entries(r.statuses).map(([status, n]) => `${n} x ${status}`).join(', ')
  return { rps: r.rps, total: r.total, p50: r.p50, p99: r.p99, non2xx: r.non2xx, errors: [r.errors > 0 ? `${r.errors} failed requests` : '', statuses].filter(Boolean).join('; '), loadCpuShare: r.loadCpuUs / (r.seconds * 1e6) }
}

/** wrk's figures, or the load generator's for a `tls` scenario. */
function parseRun (sc, text) {
  return sc.tls === true ? parseLoad(text) : parseWrk(text)
}

function runWrk (port, sc, seconds) {
  const r = spawnSync('taskset', sc.tls === true ? loadArgs(port, sc, seconds) : wrkArgs(port, sc, seconds), { env: { ...process.env, ...(sc.wrkEnv ?? {}) }, encoding: 'utf8', maxBuffer: 1 << 24 })
  return r.stdout + r.stderr
}

/** wrk (or the load generator) without blocking (paired runs load two proxies at once). */
async function runWrkAsync (port, sc, seconds) {
  return await new Promise((resolve) => {
    const child = spawn('taskset', sc.tls === true ? loadArgs(port, sc, seconds) : wrkArgs(port, sc, seconds), { env: { ...process.env, ...(sc.wrkEnv ?? {}) }, stdio: ['ignore', 'pipe', 'pipe'] })
    let text = ''
    child.stdout.on('data', (d) => { text += d })
    child.stderr.on('data', (d) => { text += d })
    child.on('close', () => { resolve(text) })
  })
}

/** The scenario's `checks` (sent once before the warm-up): the failures, as notes. */
async function runChecks (port, sc) {
  const failed = []
  for (const c of sc.checks ?? []) {
    const method = c.method ?? 'GET'
    const path = c.path ?? sc.path ?? '/api/items'
    let status
    try {
      status = await get(port, sc, path, { method, headers: c.headers ?? {}, body: c.body, cert: c.noCert !== true })
    } catch (err) {
      status = err.code ?? 'error'
    }
    if (status !== c.status) failed.push(`check ${method} ${path}${c.headers?.authorization ? ' (with token)' : ''}${c.noCert === true ? ' (no client certificate)' : ''}: ${status}, expected ${c.status}`)
  }
  return failed
}

async function measure (sc, upstreamPort) {
  const port = await freePort()
  const setup = await sc.start({ port, upstream: `http://127.0.0.1:${upstreamPort}`, upstreamPort, root, pinned })
  const target = setup.port ?? port
  try {
    await waitHttp(target, sc, sc.readySeconds)
    const failedChecks = await runChecks(target, sc)
    runWrk(target, sc, warmup)
    // CPU and memory of the whole process tree: a cluster primary and its workers are one proxy.
    const pid = setup.pid
    const before = pid !== undefined ? treeCpuTicks(pid) : 0
    const text = runWrk(target, sc, duration)
    const after = pid !== undefined ? treeCpuTicks(pid) : 0
    const r = parseRun(sc, text)
    if (!(r.total > 0)) {
      // A failed run must not drag the medians down: no figures, a note, wrk's output on stderr.
      process.stderr.write(`${sc.name}: wrk measured no requests:\n${text}\n`)
      r.rps = r.p50 = r.p99 = NaN
    }
    r.cpuUsPerReq = pid !== undefined && r.total > 0 ? ((after - before) * TICK_US) / r.total : NaN
    const rss = pid !== undefined ? treePeakRssMb(pid) : { mb: NaN, processes: 0 }
    r.rssMb = rss.mb
    const notes = [...failedChecks]
    if (rss.processes > 1) notes.push(`${rss.processes} processes`)
    if (!(r.total > 0)) notes.push('wrk measured no requests (its output is on stderr)')
    if (r.non2xx > 0 && sc.expectNon2xx !== true) notes.push(`${r.non2xx} non-2xx`)
    if (r.loadCpuShare > 0.9) notes.push(`load generator at ${(r.loadCpuShare * 100).toFixed(0)}% of a core (it may be the bottleneck)`)
    if (notes.length > 0) r.note = notes.join('; ')
    return r
  } finally {
    await setup.stop()
  }
}

/**
 * Paired run: both proxies pinned to core 0 at once, each loaded by its own wrk on core 1, warmed
 * and measured over the same seconds. The scheduler splits the core between them, so whatever the
 * machine does during those seconds it does to both: the ratio of their req/s (and of their CPU
 * time per request) is the steadiest comparison this machine allows.
 */
async function measurePair (a, b, upstreamPort, bFirst = false) {
  const running = []
  try {
    for (const sc of bFirst ? [b, a] : [a, b]) {
      const port = await freePort()
      const setup = await sc.start({ port, upstream: `http://127.0.0.1:${upstreamPort}`, upstreamPort, root, pinned })
      running.push({ sc, setup, target: setup.port ?? port })
    }
    const failed = []
    for (const r of running) {
      await waitHttp(r.target, r.sc, r.sc.readySeconds)
      failed.push(...await runChecks(r.target, r.sc))
    }
    await Promise.all(running.map(async (r) => await runWrkAsync(r.target, r.sc, warmup)))
    const before = running.map((r) => treeCpuTicks(r.setup.pid))
    const texts = await Promise.all(running.map(async (r) => await runWrkAsync(r.target, r.sc, duration)))
    const after = running.map((r) => treeCpuTicks(r.setup.pid))
    const results = running.map((r, i) => {
      const w = parseRun(r.sc, texts[i])
      const notes = [...failed]
      if (w.non2xx > 0) notes.push(`${r.sc.name}: ${w.non2xx} non-2xx`)
      if (w.errors) notes.push(`${r.sc.name}: ${w.errors}`)
      if (w.loadCpuShare > 0.45) notes.push(`${r.sc.name}: load generator at ${(w.loadCpuShare * 100).toFixed(0)}% of core 1 (it may be the bottleneck)`)
      return { ...w, cpuUsPerReq: w.total > 0 ? ((after[i] - before[i]) * TICK_US) / w.total : NaN, note: notes.join('; ') }
    })
    return bFirst ? results.reverse() : results
  } finally {
    for (const r of running) await r.setup.stop()
  }
}

/**
 * The targets, from the medians: `a` over `b` of `metric` (`rps`, `p99`, or `cpu`: CPU
 * µs/request), met when `ok(value)`. A row whose scenarios were not both run (--only) is left out.
 */
const TARGETS = [
  { a: 'portcullis-proxy', b: 'bare-http-proxy', metric: 'rps', what: 'Portcullis (1) req/s / bare @fastify/http-proxy req/s (issue 2: ≥ 1.00)', target: '≥ 1.20', ok: (v) => v >= 1.2 },
  { a: 'portcullis-jwt', b: 'bare-http-proxy', metric: 'rps', what: 'Portcullis with JWT (HS256) req/s / bare @fastify/http-proxy req/s (issue 3)', target: '≥ 0.90', ok: (v) => v >= 0.9 },
  { a: 'portcullis-rl', b: 'portcullis-proxy', metric: 'rps', what: 'Portcullis + in-memory route limit req/s / proxy only (issue 4: limiter adds ≤ 5%)', target: '≥ 0.95', ok: (v) => v >= 0.95 },
  { a: 'portcullis-jwt-rl', b: 'fast-gateway-jwt-rl', metric: 'rps', what: 'Portcullis (2) req/s / fast-gateway JWT + rate limit req/s', target: '≥ 1.20', ok: (v) => v >= 1.2 },
  { a: 'portcullis-jwt-rl-inspect', b: 'portcullis-jwt-rl-query', metric: 'rps', what: 'Portcullis (3) req/s / (2) on the same requests req/s (cost of inspection)', target: '≥ 0.90', ok: (v) => v >= 0.9 },
  { a: 'portcullis-jwt-rl-inspect', b: 'portcullis-jwt-rl', metric: 'rps', what: 'Portcullis (3) req/s / (2) on /api/items without a query (inspection and the query string)', target: '(reported)' },
  { a: 'portcullis-jwt-rl-inspect-unique', b: 'portcullis-jwt-rl-query-unique', metric: 'rps', what: 'Portcullis (3) with new query values on every request / (2) on the same requests (inspection, cache misses)', target: '≥ 0.90', ok: (v) => v >= 0.9 },
  { a: 'portcullis-jwt-rl-inspect-body-unique', b: 'portcullis-jwt-rl-inspect-body', metric: 'rps', what: 'Portcullis (4) with a new order on every request / (4) repeating one order (what the inspection cache saves)', target: '(reported)' },
  { a: 'portcullis-contract', b: 'portcullis-jwt-rl-inspect-body-query', metric: 'cpu', what: 'Portcullis (6) CPU µs/request / (4) on the same requests (cost of an API contract: typical JSON body and query)', target: '≤ 1.10', ok: (v) => v <= 1.1 },
  { a: 'portcullis-contract-unique', b: 'portcullis-jwt-rl-inspect-body-query-unique', metric: 'cpu', what: 'The same with a new order on every request', target: '≤ 1.10', ok: (v) => v <= 1.1 },
  { a: 'portcullis-jwt-rl-redis', b: 'portcullis-jwt-rl', metric: 'rps', what: 'Portcullis (5) req/s / (2) req/s (cost of the Redis store)', target: '≥ 0.70', ok: (v) => v >= 0.7 },
  { a: 'portcullis-proxy', b: 'bare-http-proxy', metric: 'p99', what: 'Portcullis (1) p99 / bare @fastify/http-proxy p99', target: '≤ 1.00 (no worse than bare)', ok: (v) => v <= 1 },
  { a: 'portcullis-proxy-1000', b: 'portcullis-proxy-lua', metric: 'rps', what: 'Portcullis 1,000 prefixes req/s / 1 prefix req/s, both driven by the same wrk Lua script (flat)', target: '1.00 ± 0.05', ok: (v) => Math.abs(v - 1) <= 0.05 },
  { a: 'fastify-prefixes-1000', b: 'fastify-prefixes-1', metric: 'rps', what: 'Fastify answering itself, 1,000 prefixes req/s / 1 prefix req/s (what the router and per-prefix contexts cost: the floor of the row above)', target: '(reported)' },
  { a: 'fastify-flat-1000', b: 'fastify-flat-1', metric: 'rps', what: 'The same with every route on the root context (no plugin per prefix): the router and route contexts alone', target: '(reported)' },
  { a: 'portcullis-apikey-1m', b: 'portcullis-apikey-10', metric: 'rps', what: 'Portcullis API keys: 1,000,000 keys req/s / 10 keys req/s, requests spread over all keys (flat)', target: '1.00 ± 0.05', ok: (v) => Math.abs(v - 1) <= 0.05 },
  // What each auth strategy costs against a JWT (HS256) on the same proxy-only chain.
  { a: 'portcullis-apikey-10', b: 'portcullis-jwt', metric: 'rps', what: 'apiKey req/s / portcullis-jwt req/s (10 keys, requests spread over them)', target: '(reported)' },
  { a: 'portcullis-introspection', b: 'portcullis-jwt', metric: 'rps', what: 'introspection req/s / portcullis-jwt req/s (cache hit: the steady state)', target: '(reported)' },
  { a: 'portcullis-forwardauth', b: 'portcullis-jwt', metric: 'rps', what: 'forwardAuth req/s / portcullis-jwt req/s (no cache: one call to the service per request)', target: '(reported)' },
  { a: 'portcullis-forwardauth-cached', b: 'portcullis-jwt', metric: 'rps', what: 'forwardAuth with FORWARD_AUTH_CACHE_TTL_MS=60000 req/s / portcullis-jwt req/s (decision cache hit: the steady state)', target: '(reported)' },
  { a: 'portcullis-mtls', b: 'portcullis-tls-jwt', metric: 'rps', what: 'mtls req/s / portcullis-tls-jwt req/s (both HTTPS, same client certificate, Node load generator bench/tls-load.mjs)', target: '(reported)' },
  { a: 'portcullis-proxy-metrics', b: 'portcullis-proxy', metric: 'rps', what: 'Portcullis (1) with metrics req/s / without (cost of metrics)', target: '≥ 0.95', ok: (v) => v >= 0.95 },
  { a: 'portcullis-jwt-rl-redis-2w', b: 'portcullis-jwt-rl-redis-1w-unpinned', metric: 'rps', what: 'WORKERS=2 req/s / one process, both unpinned (scaling)', target: '> 1.00', ok: (v) => v > 1 }
]

/** Absolute memory targets: the peak RSS of scenario `a` (the highest of its rounds), in MB. */
const RSS_TARGETS = [
  { a: 'portcullis-rl-clients', what: 'Portcullis peak RSS after 100,000 distinct clients (both rate-limit tiers keyed by client IP)', limit: 150 },
  { a: 'portcullis-proxy-1000', what: 'Portcullis peak RSS with 1,000 prefixes', limit: 150 }
]

/**
 * The targets table. A ratio is computed two ways: of the scenarios' medians, and as the median
 * of the ratios within each round (a and b measured minutes apart instead of a whole run apart:
 * steadier when the machine drifts). The status follows the per-round median.
 */
function targetsTable (byName, results) {
  const fmt = (metric, v) => metric === 'p99' ? `${v.toFixed(2)} ms` : metric === 'cpu' ? `${v.toFixed(1)} µs/req` : `${v.toFixed(0)} req/s`
  const perRound = (t, pick) => {
    const as = results.get(t.a) ?? []
    const bs = results.get(t.b) ?? []
    return median(as.map((r, i) => bs[i] === undefined ? NaN : pick(r, bs[i])))
  }
  const rows = TARGETS.filter((t) => byName.has(t.a) && byName.has(t.b)).map((t) => {
    const a = byName.get(t.a)[t.metric]
    const b = byName.get(t.b)[t.metric]
    const v = a / b
    // `cpu` targets compare CPU µs/request (a over b: lower is cheaper).
    const metricKey = t.metric === 'cpu' ? 'cpuUsPerReq' : t.metric
    const round = perRound(t, (ra, rb) => ra[metricKey] / rb[metricKey])
    const status = !Number.isFinite(round) ? 'no data' : t.ok === undefined ? 'reported' : t.ok(round) ? 'met' : 'missed'
    // The same ratio from CPU time per request (b's µs over a's): steadier on a noisy machine.
    const cpu = t.metric === 'rps' ? perRound(t, (ra, rb) => rb.cpuUsPerReq / ra.cpuUsPerReq) : NaN
    return `| ${t.what} | ${t.target} | ${Number.isFinite(v) ? v.toFixed(2) : '-'} (${fmt(t.metric, a)} / ${fmt(t.metric, b)}) | ${num(round, 2)} | ${num(cpu, 2)} | ${status} |`
  })
  for (const t of RSS_TARGETS) {
    const a = byName.get(t.a)
    if (a === undefined) continue
    const status = !Number.isFinite(a.rss) ? 'no data' : a.rss <= t.limit ? 'met' : 'missed'
    rows.push(`| ${t.what} | ≤ ${t.limit} MB | ${num(a.rss, 0)} MB (highest round) | - | - | ${status} |`)
  }
  if (rows.length === 0) return []
  return [
    '## Targets',
    '',
    'Ratio of the medians above, then the median of the ratios within each round (the status follows it), and the latter from CPU µs/request (for req/s goals; a `cpu` goal is the CPU ratio itself).',
    '',
    '| target | goal | ratio of medians | median of round ratios | same from CPU µs/req | |',
    '|---|---|---|---:|---:|---|',
    ...rows,
    ''
  ]
}

const num = (v, digits, suffix = '') => Number.isFinite(v) ? v.toFixed(digits) + suffix : '-'

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** Targets that compare two single-process proxies pinned to core 0 (the ones a paired run can measure). */
const PAIRABLE = (t) => (t.metric === 'rps' || t.metric === 'p99' || t.metric === 'cpu') && [t.a, t.b].every((n) => {
  const sc = scenarios.find((s) => s.name === n)
  return sc !== undefined && sc.direct !== true && !/-unpinned$|-2w$/.test(n)
})

async function paired (upstreamPort) {
  const targets = TARGETS.filter(PAIRABLE).filter((t) => only === undefined || (only.includes(t.a) && only.includes(t.b)))
  const rows = []
  // A pair measured once serves every target on it (req/s and p99 of the same seconds).
  const measured = new Map()
  for (const t of targets) {
    const a = scenarios.find((s) => s.name === t.a)
    const b = scenarios.find((s) => s.name === t.b)
    const key = `${t.a}|${t.b}`
    if (!measured.has(key)) {
      const pairs = []
      for (let round = 1; round <= rounds; round++) {
        // Which of the two starts first alternates: the one started first came out 2-3% ahead.
        const [ra, rb] = await measurePair(a, b, upstreamPort, round % 2 === 0)
        pairs.push([ra, rb])
        process.stdout.write(`paired ${round} ${t.a} ${ra.rps.toFixed(0)} req/s ${ra.cpuUsPerReq.toFixed(1)} us p99 ${ra.p99} ms | ${t.b} ${rb.rps.toFixed(0)} req/s ${rb.cpuUsPerReq.toFixed(1)} us p99 ${rb.p99} ms | ratio ${(ra.rps / rb.rps).toFixed(3)}\n`)
      }
      measured.set(key, pairs)
    }
    const rps = []
    const cpu = []
    const notes = new Set()
    for (const [ra, rb] of measured.get(key)) {
      rps.push(t.metric === 'p99' ? ra.p99 / rb.p99 : t.metric === 'cpu' ? ra.cpuUsPerReq / rb.cpuUsPerReq : ra.rps / rb.rps)
      cpu.push(t.metric === 'rps' ? rb.cpuUsPerReq / ra.cpuUsPerReq : NaN)
      for (const note of [ra.note, rb.note]) for (const part of note ? note.split('; ') : []) notes.add(part)
    }
    const v = median(rps)
    const status = !Number.isFinite(v) ? 'no data' : t.ok === undefined ? 'reported' : t.ok(v) ? 'met' : 'missed'
    rows.push(`| ${t.what} | ${t.target} | ${num(v, 2)} | ${rps.map((x) => num(x, 2)).join(' ')} | ${num(median(cpu), 2)} | ${status} | ${[...notes].join('; ')} |`)
  }
  return [
    `# Paired benchmark (${new Date().toISOString().slice(0, 10)})`,
    '',
    `Each target's two proxies pinned to core 0 together, each loaded by its own wrk -t1 -c${connections} on core 1 (beside the upstream), ${warmup} s warm-up then ${duration} s measured at the same time; ${rounds} pairs per target, the second of the two started first in every other pair (the one started first came out 2-3% ahead).`,
    'The kernel splits core 0 between them, so the machine\'s drift hits both alike: ratio = req/s (or p99 latency, or CPU µs/request for the `cpu` goals) of the first over the second in the same seconds.',
    ...(targets.some((t) => scenarios.find((s) => s.name === t.a)?.tls === true) ? ['HTTPS pairs (the mTLS row) are loaded by bench/tls-load.mjs (Node, undici, the same connections, pinned to core 1) instead of wrk, on both sides.'] : []),
    '',
    '| target | goal | median ratio | each pair | same from CPU µs/req | | notes |',
    '|---|---|---:|---|---:|---|---|',
    ...rows,
    ''
  ]
}

async function main () {
  ensure('wrk', 'wrk')
  ensure('taskset', 'util-linux')
  const selected = scenarios.filter((s) => only === undefined || only.includes(s.name))
  if (selected.some((s) => s.needs === 'nginx')) ensure('nginx', 'nginx-light')
  if (!existsSync(join(root, 'dist/src/server.js'))) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' })
  rmSync(join(root, 'bench/.routes'), { recursive: true, force: true })
  rmSync(join(root, 'bench/.nginx'), { recursive: true, force: true })
  mkdirSync(join(root, 'bench/results'), { recursive: true })

  const upstreamPort = await freePort()
  const upstream = pinned(1, process.execPath, [join(root, 'bench/servers/upstream.mjs')], { PORT: String(upstreamPort) })
  await waitHttp(upstreamPort, {})
  if (args.paired === 'true') {
    try {
      const lines = await paired(upstreamPort)
      writeFileSync(args.out ?? join(root, 'bench/results/paired.md'), lines.join('\n'))
      process.stdout.write('\n' + lines.join('\n') + '\n')
    } finally {
      upstream.kill('SIGKILL')
    }
    return
  }
  const results = new Map(selected.map((s) => [s.name, []]))
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const sc of selected) {
        const r = await measure(sc, upstreamPort)
        results.get(sc.name).push(r)
        process.stdout.write(`round ${round} ${sc.name.padEnd(36)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  cpu ${r.cpuUsPerReq.toFixed(1)} us/req  rss ${r.rssMb.toFixed(0)} MB${r.note ? '  ' + r.note : ''}${r.errors ? '  errors: ' + r.errors : ''}\n`)
      }
    }
  } finally {
    upstream.kill('SIGKILL')
    rmSync(join(root, 'bench/.nginx'), { recursive: true, force: true })
  }

  const anchor = median(results.get('bare-http-proxy')?.map((r) => r.rps) ?? [])
  const rows = selected.map((sc) => {
    const rs = results.get(sc.name)
    const rps = median(rs.map((r) => r.rps))
    return {
      name: sc.name,
      title: sc.title,
      rps,
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      cpu: median(rs.map((r) => r.cpuUsPerReq)),
      rss: Math.max(...rs.map((r) => r.rssMb)),
      ratio: rps / anchor,
      notes: [...new Set(rs.map((r) => r.note).filter(Boolean))].join('; ')
    }
  })
  const lines = [
    `# Benchmark results (${new Date().toISOString().slice(0, 10)})`,
    '',
    `wrk -t1 -c${connections}, ${warmup} s warm-up then ${duration} s measured per run, ${rounds} interleaved rounds, medians.`,
    'Proxy under test pinned to core 0 (taskset); wrk and the upstream share core 1. Ratio = req/s over bare @fastify/http-proxy in the same run.',
    'The unpinned (cluster) scenarios run the gateway on cores 0,1, which wrk and the upstream share, so they show scaling from 1 to 2 processes, not a clean per-core figure.',
    'CPU = CPU time of the proxy per request (user + system, summed over its process tree: a cluster primary and its workers), the steadier figure on a noisy machine.',
    'Peak RSS = peak resident memory (VmHWM), summed over the process tree (the notes say how many processes when more than one).',
    '',
    '| scenario | req/s | ratio | p50 ms | p99 ms | CPU µs/req | peak RSS MB (sum) | notes |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.title} | ${num(r.rps, 0)} | ${num(r.ratio, 2, 'x')} | ${num(r.p50, 2)} | ${num(r.p99, 2)} | ${num(r.cpu, 1)} | ${num(r.rss, 0)} | ${r.notes} |`),
    '',
    ...targetsTable(new Map(rows.map((r) => [r.name, r])), results)
  ]
  writeFileSync(out, lines.join('\n'))
  process.stdout.write('\n' + lines.join('\n') + '\n')
}

main().catch((err) => { process.stderr.write(String(err?.stack ?? err) + '\n'); process.exit(1) })
