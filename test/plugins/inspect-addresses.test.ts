import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import t from 'tap'
import {
  ADDRESS, BARE_WORD_LIST, CACHE_LIST, CACHED_LIST_COUNT, LIST_ADDRESSES, LIST_COUNT, LISTS, PLAIN_COUNTERPART, PROSE_COUNTERPART,
  ROUTING_SKIPS, SCREEN_BARE, SCREEN_KIND, SCREEN_NONE, SCREEN_TEXT, SCREENED_COUNTERPART, SCREENED_LIST, TEXT_COUNTERPART, TEXT_WORD_LIST
} from '../../plugins/inspect/addresses.js'
import { BUILTIN_RULES_FILE, InspectEngine, createEngine, readRuleset } from '../../plugins/inspect/engine.js'
import { Collected } from '../../plugins/inspect/extract.js'
import { preparedBuiltin } from '../../plugins/inspect/routing.js'
import { BARE_WORD, conditionCanMatchBareWord, regexCanMatchBareWord, regexCanMatchTextWord } from '../../plugins/inspect/text-words.js'

// The address registry (plugins/inspect/addresses.json) is the one place that names the engine
// addresses; list numbers, counterparts and routing are derived from it.

t.test('registry: list numbers, counterparts and screen kinds are derived consistently', async (t) => {
  t.equal(new Set(LIST_ADDRESSES).size, LIST_COUNT, 'one address per list')
  for (let i = 0; i < LIST_COUNT; i++) {
    const e = LISTS[i]
    if (e === undefined) continue
    t.equal(ADDRESS[e.name], e.address)
    if (e.kind === 'bareWords') t.equal(BARE_WORD_LIST[LISTS.findIndex((s) => s.name === e.of)], i, `${e.name} is its source's bare-word list`)
    if (e.kind === 'textWords') {
      t.equal(TEXT_WORD_LIST[LISTS.findIndex((s) => s.name === e.of)], i, `${e.name} is its source's text-word list`)
      t.not(SCREENED_LIST[i], -1, `${e.name} has a screened list`)
    }
    t.equal(SCREEN_KIND[i], e.kind === 'bareWords' ? SCREEN_BARE : e.kind === 'textWords' ? SCREEN_TEXT : SCREEN_NONE, `${e.name} screen kind`)
    if (e.kind === 'screened') {
      t.ok(i >= CACHED_LIST_COUNT, `${e.name} comes after the cached lists`)
      t.equal(LISTS[CACHE_LIST[i] as number]?.kind, 'textWords', `${e.name} is cached as a text word`)
    } else {
      t.equal(CACHE_LIST[i], i)
    }
  }
  // Every source split by shape has both word lists; text words have a screened list.
  for (const standard of Object.keys(PLAIN_COUNTERPART)) t.ok(TEXT_COUNTERPART[standard], `${standard} has text words too`)
  for (const text of Object.values(TEXT_COUNTERPART)) t.ok(SCREENED_COUNTERPART[text], `${text} has a screened list`)
  t.strictSame(PROSE_COUNTERPART, { 'server.request.body': 'portcullis.request.body.text' })
})

t.test('registry: every list is filled and reaches the engine under its address', async (t) => {
  const limits = { maxInspectBytes: 32 * 1024, maxBodyDepth: 32, maxBodyKeys: 2000 }
  const c = new Collected(limits.maxInspectBytes)
  const prose = 'a long comment with several words in it, more than sixty four characters long'
  c.add(c.path, '/a')
  c.add(c.headers, 'h<')
  c.add(c.files, 'f.txt')
  c.addBody(prose)
  for (const source of [c.query, c.cookies, c.body]) {
    c.add(source, 'id42')
    c.add(source, 'two words')
    c.add(source, '<b>')
  }
  for (const key of ['id42', 'two words', '<b>']) c.addKey(key)
  const payload = c.payload()
  for (const e of LISTS) {
    if (e.kind === 'screened') t.notOk(e.address in payload, `${e.address} filled only through the screen`)
    else t.ok(e.address in payload, `${e.address} filled`)
  }
  t.strictSame(payload[ADDRESS.queryWords], ['id42'])
  t.strictSame(payload[ADDRESS.keyText], ['two words'])
  t.strictSame(payload[ADDRESS.text], [prose])
})

t.test('bare-word analysis: a regex needing a character outside bare words cannot match one', async (t) => {
  const cannot = ['\\s', 'a\\s+b', '\\bselect\\s+\\*', '[.:@ ]', 'x\\.y', '\\bsleep\\s*\\(', '(?:\\r|\\n)', '\\p{Cc}']
  for (const source of cannot) t.equal(regexCanMatchBareWord(source, false), false, source)
  // RE2's \x{...}: a code point (case-sensitively: folded, a character past ASCII may match a letter).
  for (const source of ['\\x{560a}', '[\\x{560a}\\r]x']) t.equal(regexCanMatchBareWord(source, true), false, source)
  const can = ['__proto__', '\\bwhoami\\b', '\\d+', '\\w', '\\S', '\\W', '.', 'a-b', '(?=x)', '[^<]', '\\p{L}', '(?i)x', '\\x{41}']
  for (const source of can) t.equal(regexCanMatchBareWord(source, false), true, source)
  // Text words have spaces, so the same escapes keep rules reading them.
  for (const source of ['a\\s+b', '\\bselect\\s+from', '[.:@ ]']) t.equal(regexCanMatchTextWord(source, false), true, source)
  t.equal(regexCanMatchTextWord('(?:[\\r\\n]|\\x{560a})x', true), false, 'RE2 \\x{...} is read as a code point')
  t.equal(regexCanMatchTextWord('\\x{41}', true), true, 'as an ASCII one')
  t.equal(regexCanMatchTextWord('\\\\x{41}', true), false, 'an escaped backslash before x{ stays one (then x, 41 times)')
  const regex = (source: string): { operator: string, parameters: { regex: string } } => ({ operator: 'match_regex', parameters: { regex: source } })
  t.equal(conditionCanMatchBareWord(['lowercase', 'shell_unescape', 'removeComments'], regex('whoami')), true)
  t.equal(conditionCanMatchBareWord(['base64Decode'], regex('<script')), true, 'a decoder that could produce any character keeps the rule')
  t.equal(conditionCanMatchBareWord([], { operator: 'phrase_match', parameters: { list: ['a b', '<x'] } } as never), false)
  t.equal(conditionCanMatchBareWord([], { operator: 'phrase_match', parameters: { list: ['a b', 'ro0ab'] } } as never), true)
  t.equal(conditionCanMatchBareWord([], { operator: 'is_xss', parameters: {} }), false)
  t.equal(conditionCanMatchBareWord([], { operator: 'is_sqli', parameters: {} }), true, 'the analysis keeps libinjection SQL; the registry skips it')
})

interface Rule { id: string, conditions: Array<{ operator: string, parameters: { inputs: Array<{ address: string }>, regex?: string, list?: string[] } }> }

/** Bare words from the attack corpus, the benign set and the rules' own keywords in several spellings. */
function candidateWords (rules: readonly Rule[]): Set<string> {
  const root = resolve(import.meta.dirname, '../..')
  const words = new Set<string>(['null--', '__proto__', 'whoami', 'ro0ABXNy', 'information_schema'])
  const add = (text: string): void => {
    for (const w of text.split(/[^A-Za-z0-9_-]+/)) if (w !== '' && w.length <= 64) words.add(w)
  }
  for (const file of [resolve(root, 'test/fixtures/crs/crs-regression.jsonl'), resolve(root, 'test/fixtures/benign/benign.jsonl')]) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      let text = line
      try { text = decodeURIComponent(line) } catch {}
      add(text)
    }
  }
  for (const rule of rules) {
    for (const c of rule.conditions) {
      const source = (c.parameters.regex ?? '') + ' ' + (c.parameters.list ?? []).join(' ')
      for (const w of source.replace(/\\[a-z]/g, ' ').split(/[^A-Za-z0-9_-]+/)) {
        if (w === '' || w.length > 60) continue
        for (const v of [w, w.toUpperCase(), `x${w}`, `${w}1`, `_${w}_`, `a-${w}-b`, `${w}--`, `--${w}`]) words.add(v)
      }
    }
  }
  return words
}

t.test('bare-word routing: every rule that matches a bare word reads the bare-word lists; none is missing', async (t) => {
  const root = resolve(import.meta.dirname, '../..')
  t.ok(existsSync(resolve(root, 'test/fixtures/crs/crs-regression.jsonl')), 'the attack corpus is vendored in test/fixtures/crs')
  const raw = readRuleset(BUILTIN_RULES_FILE)
  const rules = raw.rules as Rule[]
  // The shipped ruleset names standard addresses only; routing adds the derived ones at load.
  const derived = new Set(LISTS.filter((e) => e.kind !== 'standard').map((e) => e.address))
  t.notOk(rules.some((r) => r.conditions.some((c) => c.parameters.inputs.some((i) => derived.has(i.address)))), 'portcullis.json names no derived address')
  const prepared = preparedBuiltin(raw).rules as Rule[]
  const plainAddresses = new Set(Object.values(PLAIN_COUNTERPART))
  const routed = new Set(prepared.filter((r) => r.conditions.some((c) => c.parameters.inputs.some((i) => plainAddresses.has(i.address)))).map((r) => r.id))
  const skipped = new Set(rules.filter((r) => r.conditions.some((c) => ROUTING_SKIPS.bareWords.has(c.operator))).map((r) => r.id))

  // Judged by the engine: the unrouted ruleset with the word under every standard address that
  // is split by shape, against the loaded one with it under every bare-word address. Routing
  // gives a rule the counterparts of all the standard addresses it reads, so a rule may be
  // missing from the second run only by a skip; and a rule matching there reads a standard
  // address too, so a word the first run clears needs no second run.
  const unrouted = new InspectEngine([{ name: 'unrouted', rules: raw }])
  const engine = createEngine()
  t.teardown(() => {
    unrouted.dispose()
    engine.dispose()
  })
  type Evaluate = { evaluate: (c: unknown, t: number) => { matches: Array<{ ruleId: string }> } }
  const ids = (e: unknown, addresses: Iterable<string>, v: string): string[] => {
    const payload: Record<string, string[]> = {}
    for (const a of addresses) payload[a] = [v]
    return (e as Evaluate).evaluate({ empty: false, payload: () => payload }, 1_000_000).matches.map((m) => m.ruleId).sort()
  }
  const words = candidateWords(rules)
  t.ok(words.size > 5000, `${words.size} distinct bare words`)
  const matchedBy = new Set<string>()
  let pairs = 0
  let matched = 0
  for (const w of words) {
    if (!BARE_WORD.test(w)) continue
    pairs++
    const all = ids(unrouted, Object.keys(PLAIN_COUNTERPART), w)
    if (all.length === 0) continue
    matched++
    for (const id of all) matchedBy.add(id)
    const expected = all.filter((id) => !skipped.has(id)).join(',')
    const got = ids(engine, plainAddresses, w).join(',')
    if (expected !== got) t.fail(`${JSON.stringify(w)} matched by [${expected}] as a standard value, [${got}] as a bare word`)
  }
  t.ok(matched > 100, `${matched} bare words the rules match, each matched the same as a bare word`)
  t.ok(pairs > 20_000, `${pairs} bare words compared`)
  for (const id of matchedBy) if (!skipped.has(id)) t.ok(routed.has(id), `${id} matches a bare word and reads them`)
  t.strictSame([...routed].sort(), [...matchedBy].filter((id) => !skipped.has(id)).sort(), 'the rules routed are exactly those the engine matches on some bare word')
  // The skip is a decision, not a proof: libinjection does fingerprint a few bare words.
  t.ok(ids(unrouted, [ADDRESS.query], 'null--').includes('pc-sqli-001'), 'libinjection SQL matches the bare word null--')
  t.notOk(routed.has('pc-sqli-001'), 'and is not given bare words (registry skip)')

  // And each of them could, by the analysis.
  for (const r of prepared) {
    if (!routed.has(r.id)) continue
    const c = r.conditions[0] as Rule['conditions'][number] & { operator: string }
    t.ok(conditionCanMatchBareWord((r as unknown as { transformers?: unknown }).transformers, c as never), `${r.id} can match a bare word`)
  }
  t.ok(routed.size < rules.length / 3, `${routed.size} of ${rules.length} rules read bare words`)
})
