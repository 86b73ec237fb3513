#!/usr/bin/env node
// Rate-limit micro benchmark (rough numbers; the official benchmark is bench/run.mjs with wrk).
// The server runs in a child process that trusts 127.0.0.1 as a proxy, so `x-forwarded-for`
// gives each request its client address; the parent drives it over loopback with undici.
//  1. memory: the server's RSS and heap growth with 100,000 distinct clients in memory mode,
//     both tiers (every client lands in the per-IP LRU and in the route's LRU);
//  2. cost: the server's CPU time per request (user+sys) and throughput for the same route
//     without rate limiting (bare, and with two empty async onRequest hooks: the baseline the
//     deltas are against), with both tiers in memory, and with the route tier on Redis
//     (REDIS_URL, default redis://127.0.0.1:6379), and with both tiers on Redis (`redis-ip`, what
//     a gateway with REDIS_URL does); 50 concurrent requests, interleaved rounds,
//     medians. Throughput and CPU share 2 cores with the client: expect noise of 10-20%;
//  3. hook cost: the two hooks alone (per-IP and per-route, memory store) called directly in a
//     loop with a request-like object: the limiter's own CPU cost, free of HTTP noise.
//
//   npm run build && node bench/rate-limit-micro.mjs [--clients 100000] [--requests 20000] [--rounds 5]
//   (PORTCULLIS_DIST=/other/dist selects another build output)
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]])
  return acc
}, []))
const CLIENTS = Number(args.clients ?? 100_000)
const REQUESTS = Number(args.requests ?? 20_000)
const ROUNDS = Number(args.rounds ?? 5)
const CONCURRENCY = 50
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const self = fileURLToPath(import.meta.url)
const dist = resolve(process.env.PORTCULLIS_DIST ?? join(self, '../../dist'))

async function serve (mode) {
  const { default: Fastify } = await import('fastify')
  const { default: fp } = await import('fastify-plugin')
  const { ipRateLimitPlugin, routeRateLimitPlugin } = await import(pathToFileURL(join(dist, 'plugins/rate-limit/index.js')).href)
  const app = Fastify({ logger: false, trustProxy: ['127.0.0.1'] })
  if (mode !== 'none') {
    await app.register(ipRateLimitPlugin, mode === 'redis-ip'
      ? { max: 1_000_000_000, timeWindow: '1 minute', redisUrl: REDIS_URL, keyPrefix: `portcullis-bench:${process.pid}:` }
      : { max: 1_000_000_000, timeWindow: '1 minute', cacheSize: CLIENTS })
  }
  await app.register(fp(async (f) => { f.decorateRequest('consumer', null) }, { name: 'consumer-stub' }))
  if (mode !== 'none') {
    await app.register(routeRateLimitPlugin, mode === 'redis' || mode === 'redis-ip'
      ? { redisUrl: REDIS_URL, keyPrefix: `portcullis-bench:${process.pid}:` }
      : { cacheSize: CLIENTS })
  }
  const policy = { max: 1_000_000_000, timeWindow: '1 minute', keyBy: 'ip' }
  if (mode === 'hooks') {
    // Baseline with the same hook shape (one global, one route-level async onRequest hook) doing
    // nothing: what remains of the difference is the limiter's own work.
    app.addHook('onRequest', async function emptyGlobalHook () {})
    app.get('/api', { onRequest: [async function emptyRouteHook () {}] }, async () => 'ok')
  } else {
    app.get('/api', { config: mode === 'none' ? {} : { rateLimit: policy } }, async () => 'ok')
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  let cpu = process.cpuUsage()
  process.on('message', (m) => {
    if (m === 'mark') {
      cpu = process.cpuUsage()
      process.send({ mark: true })
    } else if (m === 'measure') {
      const d = process.cpuUsage(cpu)
      globalThis.gc?.()
      const mem = process.memoryUsage()
      process.send({ cpuUs: d.user + d.system, rss: mem.rss, heapUsed: mem.heapUsed })
    } else if (m === 'exit') {
      app.close().then(() => process.exit(0))
    }
  })
  process.send({ port: app.server.address().port })
}

async function hookCost () {
  const { default: Fastify } = await import('fastify')
  const { default: fp } = await import('fastify-plugin')
  const { ipRateLimitPlugin, routeRateLimitPlugin } = await import(pathToFileURL(join(dist, 'plugins/rate-limit/index.js')).href)
  const app = Fastify({ logger: false })
  const globalHooks = []
  const addHook = app.addHook
  app.addHook = function (name, fn) {
    if (name === 'onRequest') globalHooks.push(fn)
    return addHook.call(this, name, fn)
  }
  await app.register(ipRateLimitPlugin, { max: 1_000_000_000, cacheSize: CLIENTS })
  await app.register(fp(async (f) => { f.decorateRequest('consumer', null) }, { name: 'consumer-stub' }))
  await app.register(routeRateLimitPlugin, { cacheSize: CLIENTS })
  let routeHook
  app.addHook('onRoute', (r) => { routeHook = r.onRequest.at(-1) })
  const policy = { max: 1_000_000_000, timeWindow: '1 minute', keyBy: 'ip' }
  app.get('/api', { config: { rateLimit: policy } }, async () => 'ok')
  await app.ready()
  const ipHook = globalHooks[0]
  const config = { rateLimit: policy, url: '/api', method: 'GET' }
  const reply = { header () { return this } }
  const N = 500_000
  const measure = async (hook) => {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < N; i++) {
      await hook({ ip: ipOf(i & 1023), consumer: null, log: app.log, headers: {}, routeOptions: { url: '/api', config } }, reply)
    }
    return Number(process.hrtime.bigint() - t0) / N
  }
  const empty = async () => {}
  const rounds = { empty: [], ip: [], route: [] }
  for (let r = 0; r < 5; r++) {
    rounds.empty.push(await measure(empty))
    rounds.ip.push(await measure(ipHook))
    rounds.route.push(await measure(routeHook))
  }
  const e = median(rounds.empty)
  console.log(`hook cost (memory store, ${N} calls x 5, minus the loop): per-IP ${((median(rounds.ip) - e) / 1000).toFixed(2)} us, per-route ${((median(rounds.route) - e) / 1000).toFixed(2)} us`)
  await app.close()
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const ipOf = (i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`

if (args.serve !== undefined) {
  await serve(args.serve)
} else if (args.hooks !== undefined) {
  await hookCost()
} else {
  const { Pool } = await import('undici')
  const mb = (b) => (b / 1024 / 1024).toFixed(1)

  async function start (mode) {
    const child = fork(self, ['--serve', mode], { execArgv: ['--expose-gc'] })
    const [msg] = await once(child, 'message')
    const pool = new Pool(`http://127.0.0.1:${msg.port}`, { connections: CONCURRENCY })
    const ask = async (m) => { child.send(m); return (await once(child, 'message'))[0] }
    return {
      mode,
      ask,
      async run (n, ip) {
        let sent = 0
        async function worker () {
          while (sent < n) {
            const i = sent++
            const res = await pool.request({ method: 'GET', path: '/api', headers: { 'x-forwarded-for': ip ?? ipOf(i) } })
            await res.body.dump()
            if (res.statusCode !== 200) throw new Error(`${mode}: unexpected ${res.statusCode}`)
          }
        }
        await Promise.all(Array.from({ length: CONCURRENCY }, worker))
      },
      async stop () {
        await pool.close()
        child.send('exit')
        await once(child, 'exit')
      }
    }
  }

  console.log(`node ${process.version}, concurrency ${CONCURRENCY}, ${REQUESTS} requests x ${ROUNDS} rounds`)

  const m = await start('memory')
  await m.run(5000, '192.0.2.1')
  await sleep(100)
  const before = await m.ask('measure')
  await m.run(CLIENTS)
  await sleep(100)
  const after = await m.ask('measure')
  console.log(`memory: ${CLIENTS} distinct clients in both tiers: server RSS ${mb(before.rss)} -> ${mb(after.rss)} MB (+${mb(after.rss - before.rss)}), heap +${mb(after.heapUsed - before.heapUsed)} MB`)
  await m.stop()

  const servers = []
  for (const mode of ['none', 'hooks', 'memory', 'redis', 'redis-ip']) {
    const s = await start(mode)
    await s.run(3000, '192.0.2.1')
    servers.push(s)
  }
  const results = new Map(servers.map((s) => [s.mode, { cpu: [], rps: [] }]))
  for (let r = 0; r < ROUNDS; r++) {
    for (const s of servers) {
      await s.ask('mark')
      const t0 = process.hrtime.bigint()
      await s.run(REQUESTS, '192.0.2.1')
      const ns = Number(process.hrtime.bigint() - t0)
      const { cpuUs } = await s.ask('measure')
      results.get(s.mode).cpu.push(cpuUs / REQUESTS)
      results.get(s.mode).rps.push(REQUESTS / (ns / 1e9))
    }
  }
  const base = median(results.get('hooks').cpu)
  const baseRps = median(results.get('hooks').rps)
  for (const [mode, r] of results) {
    const cpu = median(r.cpu)
    const rps = median(r.rps)
    const extra = mode === 'hooks' ? ' (baseline: two empty onRequest hooks)' : ` (+${(cpu - base).toFixed(1)} us, +${(((cpu - base) / base) * 100).toFixed(1)}% CPU; ${(rps / baseRps).toFixed(2)}x throughput)`
    console.log(`${mode.padEnd(7)} server CPU ${cpu.toFixed(1)} us/request, ${Math.round(rps)} req/s${extra}`)
  }
  for (const s of servers) await s.stop()
  await hookCost()
}
