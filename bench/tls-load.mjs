#!/usr/bin/env node
// A small HTTP(S) load generator for the scenarios wrk cannot drive: wrk presents no TLS client
// certificate, so the mTLS strategy is measured with this instead, and so is the JWT scenario it
// is paired with (both sides of a pair must be loaded by the same tool to be comparable).
//
//   taskset -c 1 node bench/tls-load.mjs --url https://127.0.0.1:PORT/api/items --connections 50
//     --duration 10 [--header 'name: value']... [--ca file] [--cert file --key file]
//
// `connections` keep-alive connections (undici Pool, no pipelining), each with one request in
// flight at a time, as wrk -c does; the TLS handshakes happen once per connection, so what is
// measured is the steady state of keep-alive clients. Prints one JSON line: total requests,
// req/s, p50/p99 latency (ms), non-2xx answers (and their statuses), errors, and the generator's own CPU time (µs),
// from which run.mjs notes a run where the generator itself was the bottleneck.
import { readFileSync } from 'node:fs'
import { Pool } from 'undici'

const argv = process.argv.slice(2)
const headers = {}
const opts = {}
for (let i = 0; i < argv.length; i += 2) {
  const name = argv[i].replace(/^--/, '')
  const value = argv[i + 1]
  if (name === 'header') {
    const colon = value.indexOf(':')
    headers[value.slice(0, colon).trim().toLowerCase()] = value.slice(colon + 1).trim()
  } else {
    opts[name] = value
  }
}
const url = new URL(opts.url)
const connections = Number(opts.connections ?? 50)
const duration = Number(opts.duration ?? 10) * 1000
const read = (file) => file === undefined ? undefined : readFileSync(file)
const connect = url.protocol === 'https:'
  ? { ca: read(opts.ca), ...(opts.cert !== undefined ? { cert: read(opts.cert), key: read(opts.key) } : {}), servername: opts.servername ?? 'localhost' }
  : {}
const pool = new Pool(url.origin, { connections, pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000, connect })
const path = url.pathname + url.search

const latencies = []
/** Answers other than 2xx/3xx, by status. */
const statuses = {}
let non2xx = 0
let errors = 0
const cpuBefore = process.cpuUsage()
const started = performance.now()
const until = started + duration

async function client () {
  while (performance.now() < until) {
    const t0 = performance.now()
    try {
      const res = await pool.request({ path, method: 'GET', headers })
      await res.body.dump()
      if (res.statusCode < 200 || res.statusCode > 399) {
        non2xx++
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1
      }
      latencies.push(performance.now() - t0)
    } catch {
      errors++
    }
  }
}

await Promise.all(Array.from({ length: connections }, client))
const elapsed = (performance.now() - started) / 1000
const cpu = process.cpuUsage(cpuBefore)
await pool.close()
latencies.sort((a, b) => a - b)
const pct = (p) => latencies.length === 0 ? NaN : latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p / 100))]
process.stdout.write(JSON.stringify({
  total: latencies.length,
  rps: latencies.length / elapsed,
  p50: pct(50),
  p99: pct(99),
  non2xx,
  statuses,
  errors,
  seconds: elapsed,
  loadCpuUs: cpu.user + cpu.system
}) + '\n')
