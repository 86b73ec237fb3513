/**
 * Detection and false positives of the inspection ruleset on the generalization corpus
 * (test/fixtures/generalization: attack payloads of public tools other than the CRS regression
 * tests, in twelve request positions; published API examples and non-attack strings as benign
 * traffic), through the plugin's own extraction and engine (bench/inspect-corpus.ts).
 * Floors: the detection measured when the rules were written, minus a small margin; false
 * positives at most a third of nginx + ModSecurity + CRS 3.3 PL1's on the same requests; no
 * webhook or OAuth request blocked.
 */
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { createEngine } from '../../plugins/inspect/index.js'
import { judgeInProcess, loadCorpus, measure, pct, table, type CorpusRequest } from '../../bench/inspect-corpus.js'
import { buildAttacks, buildBenign } from '../fixtures/generalization/build.mjs'

const root = fileURLToPath(new URL('../..', import.meta.url))

/** Detection per family (all positions), in %, measured on this corpus; a test fails below it minus MARGIN. */
const MEASURED: Record<string, number> = { crlf: 98.3, ldap: 86.6, lfi: 98.8, nosql: 83.9, rce: 99.9, rfi: 62.3, sqli: 95.9, ssi: 100, ssti: 72.2, xss: 99.6 }
/** Detection per position (all families), in %. */
const MEASURED_POSITION: Record<string, number> = {
  query: 97.6, json: 97.5, form: 97.6, multipart: 97.5, filename: 97.6, path: 84.0, 'user-agent': 95.3, referer: 90.4, 'x-forwarded-for': 95.3, 'custom-header': 95.3, cookie: 97.6, xml: 97.4
}
const MARGIN = 2

/*
 * nginx 1.22 + ModSecurity 3 + CRS 3.3.4 (Debian 12 packages), PL1, on the same requests: the
 * numbers printed by
 *   node test/fixtures/generalization/build.mjs /tmp/gen
 *   node --import=@tapjs/typescript/import --conditions=portcullis-source bench/inspect-corpus.ts \
 *     --http http://127.0.0.1:8081 /tmp/gen/attacks.jsonl /tmp/gen/benign.jsonl test/fixtures/benign/benign.jsonl
 * with the configuration in docs/guides/inspection-coverage.md.
 */
const CRS_PL1: Record<string, number> = { crlf: 64.4, ldap: 40.9, lfi: 57.1, nosql: 20.3, rce: 48.9, rfi: 28.9, sqli: 66.0, ssi: 52.1, ssti: 29.2, xss: 77.3 }
const CRS_PL1_POSITION: Record<string, number> = {
  query: 89.8, json: 88.9, form: 89.5, multipart: 88.8, filename: 66.6, path: 23.3, 'user-agent': 67.7, referer: 41.4, 'x-forwarded-for': 6.6, 'custom-header': 6.6, cookie: 81.0, xml: 81.6
}
/** CRS PL1 per family and position (the order of POSITIONS), as in docs/guides/inspection-coverage.md. */
const POSITIONS = ['query', 'json', 'form', 'multipart', 'filename', 'path', 'user-agent', 'referer', 'x-forwarded-for', 'custom-header', 'cookie', 'xml']
const CRS_PL1_CELL: Record<string, number[]> = {
  crlf: [88.1, 84.7, 88.1, 84.7, 86.4, 89.8, 35.6, 33.9, 1.7, 1.7, 84.7, 93.2],
  ldap: [78.3, 78.3, 78.3, 78.3, 78.3, 0.0, 4.3, 4.3, 4.3, 4.3, 8.7, 73.9],
  lfi: [82.0, 81.0, 79.0, 81.0, 4.0, 54.0, 46.0, 10.0, 46.0, 46.0, 80.0, 76.0],
  nosql: [23.3, 23.3, 23.3, 23.3, 90.0, 0.0, 3.3, 6.7, 0.0, 0.0, 26.7, 23.3],
  rce: [93.5, 87.9, 93.5, 86.9, 43.0, 16.8, 9.3, 8.4, 0.0, 0.0, 59.8, 87.9],
  rfi: [70.6, 64.7, 70.6, 64.7, 11.8, 0.0, 17.6, 11.8, 11.8, 11.8, 11.8, 0.0],
  sqli: [99.2, 99.5, 99.2, 99.5, 69.1, 10.5, 99.2, 39.0, 0.3, 0.3, 94.1, 82.8],
  ssi: [83.3, 83.3, 83.3, 83.3, 83.3, 0.0, 20.8, 20.8, 0.0, 0.0, 83.3, 83.3],
  ssti: [42.6, 42.6, 42.6, 42.6, 59.3, 22.2, 7.4, 3.7, 3.7, 3.7, 35.2, 44.4],
  xss: [99.6, 99.6, 99.6, 99.6, 95.6, 26.6, 99.1, 97.8, 6.1, 6.1, 99.1, 99.1]
}
/** Benign requests CRS PL1 blocks: the generalization benign set (158 of 1,917), and test/fixtures/benign (179 of 750). */
const CRS_PL1_FP_PERCENT = { generalization: 8.24, benign: 23.87 }

/** Shapes that must never be blocked: webhooks, OAuth/OIDC flows and the regression samples. */
const MUST_PASS = new Set(['slack', 'twilio', 'shopify', 'gitlab', 'bitbucket', 'oauth', 'regression'])

t.test('generalization corpus: detection per family and position', async (t) => {
  const engine = createEngine()
  t.teardown(() => { engine.dispose() })
  const attacks = buildAttacks() as CorpusRequest[]
  t.ok(attacks.length > 10_000, `${attacks.length} attack requests`)
  const m = await measure(attacks, async (r) => judgeInProcess(engine, r))
  t.comment('\n' + table(m))
  for (const [family, floor] of Object.entries(MEASURED)) {
    const got = pct(m.attacks[family]?.all)
    t.ok(got >= floor - MARGIN, `${family}: ${got.toFixed(1)}% >= ${floor}% - ${MARGIN}`)
    const crs = CRS_PL1[family]
    if (crs !== undefined) t.ok(got >= crs, `${family}: ${got.toFixed(1)}% >= CRS PL1 ${crs}%`)
  }
  // Every family x position cell at least CRS PL1's, both rounded to a tenth as the tables print them.
  for (const [family, cells] of Object.entries(CRS_PL1_CELL)) {
    cells.forEach((crs, i) => {
      const position = POSITIONS[i] as string
      const got = Math.round(10 * pct(m.attacks[family]?.[position])) / 10
      t.ok(got >= crs, `${family} in ${position}: ${got}% >= CRS PL1 ${crs}%`)
    })
  }
  for (const [position, floor] of Object.entries(MEASURED_POSITION)) {
    const got = pct(m.attacks.all?.[position])
    t.ok(got >= floor - MARGIN, `${position}: ${got.toFixed(1)}% >= ${floor}% - ${MARGIN}`)
    const crs = CRS_PL1_POSITION[position]
    if (crs !== undefined) t.ok(got >= crs, `${position}: ${got.toFixed(1)}% >= CRS PL1 ${crs}%`)
  }
})

t.test('benign sets: false positives at most a third of CRS PL1, no webhook or OAuth request blocked', async (t) => {
  const engine = createEngine()
  t.teardown(() => { engine.dispose() })
  const benign = buildBenign() as CorpusRequest[]
  const m = await measure(benign, async (r) => judgeInProcess(engine, r))
  t.comment('\n' + table(m))
  const fp = pct(m.benign.all)
  t.ok(fp <= CRS_PL1_FP_PERCENT.generalization / 3, `generalization benign: ${fp.toFixed(2)}% <= ${(CRS_PL1_FP_PERCENT.generalization / 3).toFixed(2)}% (CRS PL1 ${CRS_PL1_FP_PERCENT.generalization}% / 3)`)

  const existing = loadCorpus(resolve(root, 'test/fixtures/benign/benign.jsonl'))
  const e = await measure(existing, async (r) => judgeInProcess(engine, r))
  const fpExisting = pct(e.benign.all)
  t.ok(fpExisting <= CRS_PL1_FP_PERCENT.benign / 3, `test/fixtures/benign: ${fpExisting.toFixed(2)}% <= ${(CRS_PL1_FP_PERCENT.benign / 3).toFixed(2)}% (CRS PL1 ${CRS_PL1_FP_PERCENT.benign}% / 3)`)

  let samples = 0
  for (const r of benign) {
    if (!MUST_PASS.has(r.family)) continue
    samples++
    const { rules } = judgeInProcess(engine, r)
    t.strictSame(rules, [], `${r.id} passes`)
  }
  t.ok(samples >= 30, `${samples} webhook, OAuth and regression samples`)
})
