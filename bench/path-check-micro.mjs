#!/usr/bin/env node
// Path check micro benchmark (in process; not the official wrk benchmark): the request guard's
// per-request cost of reading a path the way lenient backends do (docs/security/paths.md),
// against a table of 1,000 public prefixes each with a protected prefix inside it.
//  1. the pre-test on ordinary paths (lower case, no escapes): what nearly every request pays;
//  2. the reading and lookup of paths that need it (mixed case, `;`, `%20`, UTF-8), same route;
//  3. the same for bypass attempts (refused).
// Interleaved rounds, medians.
//
//   npx tsc -p tsconfig.json --outDir /tmp/portcullis-dist && PORTCULLIS_DIST=/tmp/portcullis-dist node bench/path-check-micro.mjs [--rounds 5]
//   (default PORTCULLIS_DIST: ./dist, as left by `npm run build`)
import { pathToFileURL } from 'node:url'
import { join, resolve } from 'node:path'

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]])
  return acc
}, []))
const ROUNDS = Number(args.rounds ?? 5)
const dist = resolve(process.env.PORTCULLIS_DIST ?? join(new URL('.', import.meta.url).pathname, '../dist'))
const { RouteTable } = await import(pathToFileURL(join(dist, 'plugins/request-guard/route-table.js')).href)

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']
const table = new RouteTable()
for (let i = 0; i < 1000; i++) {
  for (const url of [`/svc${i}`, `/svc${i}/*`, `/svc${i}/admin`, `/svc${i}/admin/*`]) table.add(METHODS, url)
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** ns per call of fn(path) over n calls, cycling through paths. */
function time (n, paths, fn) {
  let hits = 0
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) if (fn(paths[i % paths.length]) === true) hits++
  const ns = Number(process.hrtime.bigint() - t0) / n
  if (hits < 0) throw new Error('unreachable')
  return ns
}

const literalOf = (p) => `/svc${/\d+/.exec(p)[0]}`
const cases = {
  'pre-test, ordinary paths (pass, no reading)': [['/svc12/items/abc-1', '/svc999/orders/42/lines', '/svc5/report.json', '/svc7/a.b/c'], (p) => table.needsReading(p)],
  'reading, ASCII mixed case / ; / %20 (pass)': [['/svc12/Items/ABC', '/svc999/orders/42;v=2', '/svc5/a%20b'], (p) => table.readsAsOtherRoute('GET', p, literalOf(p))],
  'reading, a UTF-8 segment (pass)': [['/svc7/caf%C3%A9/x'], (p) => table.readsAsOtherRoute('GET', p, literalOf(p))],
  'reading, bypass attempts (refused)': [['/svc7/ADMIN/x', '/svc7/admin;x', '/svc7/admin.json', '/svc7/admin%20'], (p) => table.readsAsOtherRoute('GET', p, literalOf(p))]
}

const results = Object.fromEntries(Object.keys(cases).map((k) => [k, []]))
for (const [, [paths, fn]] of Object.entries(cases)) time(200_000, paths, fn)
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, [paths, fn]] of Object.entries(cases)) results[name].push(time(1_000_000, paths, fn))
}
for (const [name, xs] of Object.entries(results)) console.log(`${name.padEnd(48)} ${median(xs).toFixed(0).padStart(6)} ns/op`)
