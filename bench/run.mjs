#!/usr/bin/env node
// Portcullis benchmark: wrk against several proxies in one run, the proxy under test pinned to
// core 0, wrk and the upstream on core 1. Interleaved rounds, medians reported, Markdown table
// written to bench/results/latest.md.
//
//   npm run build && node bench/run.mjs [--rounds 3] [--duration 10] [--warmup 10] [--connections 50]
//                                       [--only a,b] [--out bench/results/latest.md]
import { spawn, spawnSync, execFileSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { scenarios } from './scenarios.mjs'

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

async function waitHttp (port, path = '/') {
  for (let i = 0; i < 300; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}${path}`)
      await r.arrayBuffer()
      return
    } catch { await new Promise((resolve) => setTimeout(resolve, 50)) }
  }
  throw new Error(`port ${port} never answered`)
}

function pinned (core, cmd, argv, env) {
  const child = spawn('taskset', ['-c', String(core), cmd, ...argv], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
  return child
}

function procStat (pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12]) // utime + stime (ticks)
}

function peakRssMb (pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const m = /VmHWM:\s+(\d+) kB/.exec(status)
  return m === null ? NaN : Number(m[1]) / 1024
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

function runWrk (port, sc, seconds) {
  const argv = ['-c', '1', 'wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--latency']
  for (const [k, v] of Object.entries(sc.headers ?? {})) argv.push('-H', `${k}: ${v}`)
  if (sc.lua !== undefined) argv.push('-s', join(root, 'bench', sc.lua))
  argv.push(`http://127.0.0.1:${port}${sc.path ?? '/api/items'}`)
  const r = spawnSync('taskset', argv, { env: { ...process.env, ...(sc.wrkEnv ?? {}) }, encoding: 'utf8', maxBuffer: 1 << 24 })
  return r.stdout + r.stderr
}

async function measure (sc, upstreamPort) {
  const port = await freePort()
  const setup = await sc.start({ port, upstream: `http://127.0.0.1:${upstreamPort}`, upstreamPort, root, pinned })
  const target = setup.port ?? port
  try {
    await waitHttp(target, sc.readyPath ?? '/')
    runWrk(target, sc, warmup)
    const pid = setup.pid
    const before = pid !== undefined ? procStat(pid) : 0
    const text = runWrk(target, sc, duration)
    const after = pid !== undefined ? procStat(pid) : 0
    const r = parseWrk(text)
    r.cpuUsPerReq = pid !== undefined && r.total > 0 ? ((after - before) * TICK_US) / r.total : NaN
    r.rssMb = pid !== undefined ? peakRssMb(pid) : NaN
    if (r.non2xx > 0 && sc.expectNon2xx !== true) r.note = `${r.non2xx} non-2xx`
    return r
  } finally {
    await setup.stop()
  }
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

async function main () {
  ensure('wrk', 'wrk')
  ensure('taskset', 'util-linux')
  const selected = scenarios.filter((s) => only === undefined || only.includes(s.name))
  if (selected.some((s) => s.needs === 'nginx')) ensure('nginx', 'nginx-light')
  if (!existsSync(join(root, 'dist/src/server.js'))) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' })
  rmSync(join(root, 'bench/.routes'), { recursive: true, force: true })
  mkdirSync(join(root, 'bench/results'), { recursive: true })

  const upstreamPort = await freePort()
  const upstream = pinned(1, process.execPath, [join(root, 'bench/servers/upstream.mjs')], { PORT: String(upstreamPort) })
  await waitHttp(upstreamPort)
  const results = new Map(selected.map((s) => [s.name, []]))
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const sc of selected) {
        const r = await measure(sc, upstreamPort)
        results.get(sc.name).push(r)
        process.stdout.write(`round ${round} ${sc.name.padEnd(28)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  cpu ${r.cpuUsPerReq.toFixed(1)} us/req  rss ${r.rssMb.toFixed(0)} MB${r.note ? '  ' + r.note : ''}${r.errors ? '  errors: ' + r.errors : ''}\n`)
      }
    }
  } finally {
    upstream.kill('SIGKILL')
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
    'CPU = CPU time of the proxy process per request (user + system), the steadier figure on a noisy machine.',
    '',
    '| scenario | req/s | ratio | p50 ms | p99 ms | CPU µs/req | peak RSS MB | notes |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.title} | ${r.rps.toFixed(0)} | ${Number.isFinite(r.ratio) ? r.ratio.toFixed(2) + 'x' : '-'} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${Number.isFinite(r.cpu) ? r.cpu.toFixed(1) : '-'} | ${Number.isFinite(r.rss) ? r.rss.toFixed(0) : '-'} | ${r.notes} |`),
    ''
  ]
  writeFileSync(out, lines.join('\n'))
  process.stdout.write('\n' + lines.join('\n') + '\n')
}

main().catch((err) => { process.stderr.write(String(err?.stack ?? err) + '\n'); process.exit(1) })
