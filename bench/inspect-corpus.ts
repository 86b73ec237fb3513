/**
 * Detection per family and position, and false positives, of request inspection on a corpus
 * (JSON Lines in the shape of the CRS regression corpus). Two judges:
 * - in process (default): the plugin's own extraction and engine, default limits, block mode;
 * - `--http <base-url>`: each request sent to a server (e.g. nginx + ModSecurity + CRS on
 *   127.0.0.1); a 403 counts as blocked. Bounded: one request at a time, 5 s timeout each.
 *
 *   node --import=@tapjs/typescript/import --conditions=portcullis-source bench/inspect-corpus.ts \
 *     [--http http://127.0.0.1:8081] [--json out.json] <corpus.jsonl>...
 *
 * Without a corpus argument it builds the generalization corpus (test/fixtures/generalization).
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { request } from 'undici'
import { Value } from '@sinclair/typebox/value'
import { createEngine, evaluateRequest, InspectLimitError, type InspectEngine } from '../plugins/inspect/index.js'
import { InspectOptionsSchema, type InspectOptions } from '../plugins/inspect/schema.js'

export interface CorpusRequest {
  id: string
  family: string
  position?: string
  method: string
  uri: string
  headers: Record<string, string>
  body: string
  expect?: 'attack' | 'benign'
}

const defaults = Value.Default(InspectOptionsSchema, {}) as InspectOptions
const limits = { maxInspectBytes: defaults.maxInspectBytes, maxBodyDepth: defaults.maxBodyDepth, maxBodyKeys: defaults.maxBodyKeys }
// A generous engine budget keeps the measurement independent of machine load (a timeout would count as a block).
const TIMEOUT_MICROS = 2_000_000

export function loadCorpus (file: string): CorpusRequest[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as CorpusRequest)
}

/** Whether the plugin (block mode, body inspection on) refuses the request, and which rules fired. */
export function judgeInProcess (engine: InspectEngine, r: CorpusRequest): { blocked: boolean, rules: string[] } {
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(r.headers)) headers[k.toLowerCase()] = v
  try {
    const result = evaluateRequest(engine, { url: r.uri, headers, body: r.body === '' ? undefined : Buffer.from(r.body) }, limits, TIMEOUT_MICROS)
    return { blocked: result.matches.length > 0 || result.timeout, rules: result.matches.map((m) => m.ruleId) }
  } catch (err) {
    if (err instanceof InspectLimitError) return { blocked: true, rules: [`limit:${err.reason}`] }
    throw err
  }
}

async function judgeHttp (base: string, r: CorpusRequest): Promise<boolean> {
  try {
    // A host name, as real clients send: CRS scores a numeric Host (920350), which would add to every request.
    const res = await request(base + r.uri, { method: r.method as 'GET', headers: { ...r.headers, host: 'api.example.com' }, body: r.body === '' ? undefined : r.body, headersTimeout: 5000, bodyTimeout: 5000 })
    await res.body.dump()
    return res.statusCode === 403
  } catch {
    // A request the server refuses at the HTTP level (400 on a malformed line) is not a WAF block.
    return false
  }
}

/** Blocked / total per family x position (attacks) and per family (benign). */
export interface Tally { hit: number, total: number }
export interface Measurement {
  attacks: Record<string, Record<string, Tally>>
  benign: Record<string, Tally>
  benignRules: Record<string, number>
}

export async function measure (requests: CorpusRequest[], judge: (r: CorpusRequest) => Promise<{ blocked: boolean, rules: string[] }>): Promise<Measurement> {
  const m: Measurement = { attacks: {}, benign: {}, benignRules: {} }
  const bump = (t: Tally | undefined, hit: boolean): Tally => ({ hit: (t?.hit ?? 0) + (hit ? 1 : 0), total: (t?.total ?? 0) + 1 })
  for (const r of requests) {
    const { blocked, rules } = await judge(r)
    if (r.expect === 'attack') {
      const fam = (m.attacks[r.family] ??= {})
      const pos = r.position ?? 'any'
      fam[pos] = bump(fam[pos], blocked)
      fam.all = bump(fam.all, blocked)
      const all = (m.attacks.all ??= {})
      all[pos] = bump(all[pos], blocked)
      all.all = bump(all.all, blocked)
    } else {
      m.benign[r.family] = bump(m.benign[r.family], blocked)
      m.benign.all = bump(m.benign.all, blocked)
      if (blocked) for (const id of rules) m.benignRules[id] = (m.benignRules[id] ?? 0) + 1
    }
  }
  return m
}

export const pct = (t: Tally | undefined): number => t === undefined || t.total === 0 ? 0 : (100 * t.hit) / t.total

/** A family x position table, as text. */
export function table (m: Measurement): string {
  const positions = [...new Set(Object.values(m.attacks).flatMap((f) => Object.keys(f)))].filter((p) => p !== 'all')
  const cols = [...positions, 'all']
  const rows = [['family', ...cols].map((c) => c.padStart(9)).join(' ')]
  for (const [family, byPos] of Object.entries(m.attacks).sort(([a], [b]) => a === 'all' ? 1 : b === 'all' ? -1 : a.localeCompare(b))) {
    rows.push([family.padStart(9), ...cols.map((c) => (byPos[c] === undefined ? '-' : `${pct(byPos[c]).toFixed(1)}`).padStart(9))].join(' '))
  }
  const b = Object.entries(m.benign).map(([f, t]) => `${f} ${t.hit}/${t.total}`).join(', ')
  rows.push(`benign blocked: ${b}`)
  const r = Object.entries(m.benignRules).map(([id, n]) => `${id}=${n}`).join(', ')
  if (r !== '') rows.push(`benign blocked by rule: ${r}`)
  return rows.join('\n')
}

async function main (): Promise<void> {
  const args = process.argv.slice(2)
  const httpAt = args.indexOf('--http')
  const base = httpAt === -1 ? undefined : args.splice(httpAt, 2)[1]
  const jsonAt = args.indexOf('--json')
  const jsonOut = jsonAt === -1 ? undefined : args.splice(jsonAt, 2)[1]
  let requests: CorpusRequest[]
  if (args.length === 0) {
    const build = await import('../test/fixtures/generalization/build.mjs') as { buildAttacks: () => CorpusRequest[], buildBenign: () => CorpusRequest[] }
    requests = [...build.buildAttacks(), ...build.buildBenign()]
  } else {
    requests = args.flatMap(loadCorpus)
  }
  let m: Measurement
  if (base !== undefined) {
    m = await measure(requests, async (r) => ({ blocked: await judgeHttp(base, r), rules: [] }))
  } else {
    const engine = createEngine()
    m = await measure(requests, async (r) => judgeInProcess(engine, r))
    engine.dispose()
  }
  process.stdout.write(table(m) + '\n')
  if (jsonOut !== undefined) writeFileSync(jsonOut, JSON.stringify(m, null, 1) + '\n')
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/^.*\/bench\//, '/bench/'))) await main()
