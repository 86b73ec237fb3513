import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import t from 'tap'
import { createEngine, collectRequest } from '../../plugins/inspect/index.js'
import { readRuleset, BUILTIN_RULES_FILE, withTextCounterparts } from '../../plugins/inspect/engine.js'
import { TEXT_COUNTERPART } from '../../plugins/inspect/addresses.js'
import { TEXT_WORD, regexCanMatchTextWord, conditionCanMatchTextWord } from '../../plugins/inspect/text-words.js'
import { rulesetFile } from '../helpers/rulesets.js'

// Text words (letters, digits, spaces, _ - . , : @) go to addresses read only by the rules that
// can match one. The analysis must never drop a rule that could.

t.test('regex analysis: a regex needing a character outside text words cannot match one', async (t) => {
  const cannot = ['<script', '\'\\s*or\\s', '\\.\\./', '[<>"]', '\\$\\{', '(?:;|\\|)\\s*cat', 'a(?:<|>)+b', '%[0-9a-f]{2}', '[\\x00-\\x1f]', '\\\\x[0-9a-f]{2}', '(?:exec|system)\\s*\\(']
  for (const source of cannot) t.equal(regexCanMatchTextWord(source, false), false, source)
  const can = ['union\\s+select', '\\bselect\\b', '(?:<|a)', 'x*', '^$', '[^<>]+', '.', '\\d+', '\\w', '(?=<)a', '(a)\\1', '[a-z]{3,}', 'A-B', '[+-]', '@@version', 'sleep:\\d']
  for (const source of can) t.equal(regexCanMatchTextWord(source, false), true, source)
  // The second argument is the rule's case_sensitive option.
  t.equal(regexCanMatchTextWord('[\\u017f]', true), false, 'long s does not match an ASCII text word case-sensitively')
  t.equal(regexCanMatchTextWord('[\\u017f]', false), true, 'but case folding may map it onto s')
  t.equal(regexCanMatchTextWord('\\u212a', false), true, 'Kelvin sign folds onto k')
  t.equal(regexCanMatchTextWord('[\\u0100-\\uffff]', false), true, 'a range beyond ASCII, case folded')
  t.equal(regexCanMatchTextWord('[\\u0100-\\uffff]', true), false)
  t.equal(regexCanMatchTextWord('[A-Z]', true), true)
  t.equal(regexCanMatchTextWord('(?i)<x', false), true, 'RE2 syntax JavaScript does not read: kept')
  t.equal(regexCanMatchTextWord('[[:alpha:]]<', false), true, 'POSIX class (reads differently): kept')
})

t.test('condition analysis: transformers and operators', async (t) => {
  const regex = (source: string): { operator: string, parameters: { regex: string } } => ({ operator: 'match_regex', parameters: { regex: source } })
  t.equal(conditionCanMatchTextWord(['urlDecodeUni', 'lowercase'], regex('<script')), false)
  t.equal(conditionCanMatchTextWord(['base64Decode'], regex('<script')), true, 'a decoder that could produce any character keeps the rule')
  t.equal(conditionCanMatchTextWord([], { operator: 'is_sqli', parameters: {} }), true, 'libinjection is never skipped')
  t.equal(conditionCanMatchTextWord([], { operator: 'is_xss', parameters: {} }), false, 'libinjection XSS needs < or =')
  t.equal(conditionCanMatchTextWord(['base64Decode'], { operator: 'is_xss', parameters: {} }), true, 'unless a transformer can make them')
  t.equal(conditionCanMatchTextWord([], { operator: 'lfi_detector', parameters: {} }), true)
  t.equal(conditionCanMatchTextWord(['lowercase'], { operator: 'phrase_match', parameters: { list: ['<?php', '${jndi'] } }), false)
  t.equal(conditionCanMatchTextWord(['lowercase'], { operator: 'phrase_match', parameters: { list: ['<?php', 'waitfor delay'] } }), true)
})

/** libinjection's XSS vocabulary, in pairs and triples as an attack would put it next to each other. */
const XSS_TERMS = ['script', 'iframe', 'svg', 'img', 'onload', 'onerror', 'onmouseover', 'onfocus', 'style', 'href', 'src', 'action', 'formaction', 'xlink:href',
  'xmlns', 'attributename', 'values', 'from', 'to', 'by', 'dataformatas', 'datasrc', 'background', 'poster', 'javascript:', 'vbscript:', 'data:', 'view-source:',
  'DOCTYPE', 'import', 'entity', 'if', 'xml', 'alert', '1', 'x', 'expression']
const XSS_WORDS: string[][] = XSS_TERMS.flatMap((a, i) => XSS_TERMS.flatMap((b, j) => [[a, b], [a, b, XSS_TERMS[(i + j) % XSS_TERMS.length] as string]]))

t.test('libinjection XSS never matches a text word; the same words with < or = do', async (t) => {
  // A bare is_xss rule on an address nothing else reads: no transformers, nothing screened.
  const engine = createEngine(rulesetFile({ version: '2.2', rules: [{ id: 'acme-xss', name: 'xss', tags: { type: 'xss', category: 'attack_attempt', family: 'xss' }, conditions: [{ operator: 'is_xss', parameters: { inputs: [{ address: 'acme.xss' }] } }] }] }))
  t.teardown(() => { engine.dispose() })
  const evaluate = engine as unknown as { evaluate: (c: unknown, t: number) => { matches: Array<{ ruleId: string }> } }
  const xss = (v: string): boolean => evaluate.evaluate({ empty: false, payload: () => ({ 'acme.xss': [v] }) }, 1_000_000).matches.some((m) => m.ruleId === 'acme-xss')
  let words = 0
  let matched = 0
  for (const w of XSS_WORDS) {
    for (const sep of [' ', '.', ':', ',', '-', '@', '_', '']) {
      const v = w.join(sep)
      if (!TEXT_WORD.test(v)) continue
      words++
      if (xss(v)) {
        matched++
        t.fail(`is_xss matched the text word ${JSON.stringify(v)}`)
      }
    }
  }
  // And arbitrary strings of the alphabet (a fixed pseudo-random sequence).
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,:@-'
  let seed = 12345
  for (let i = 0; i < 20_000; i++) {
    let v = ''
    const length = 1 + (i % 40)
    for (let k = 0; k < length; k++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      v += alphabet[(seed >>> 16) % alphabet.length] as string
    }
    words++
    if (xss(v)) {
      matched++
      t.fail(`is_xss matched the text word ${JSON.stringify(v)}`)
    }
  }
  t.ok(words > 25_000, `${words} text words (XSS vocabulary and arbitrary)`)
  t.equal(matched, 0, 'none matched')
  // The rule works: the same vocabulary with the two characters a text word lacks.
  for (const v of ['<script>', '<svg onload=alert(1)>', 'x onerror=alert', 'x href=javascript:alert', '<!DOCTYPE html', '<!--[if IE]', '<?import x']) t.ok(xss(v), v)
})

t.test('text words are filed apart; bare words and anything else are not', async (t) => {
  const limits = { maxInspectBytes: 32 * 1024, maxBodyDepth: 32, maxBodyKeys: 2000 }
  const c = collectRequest({ url: '/s?q=blue+shoes&id=42&name=O%27Brien&when=2024-01-05+10:30&mail=a.b@example.com&x=%3Cb%3E', headers: {} }, limits, false)
  t.strictSame(c.queryText.sort(), ['2024-01-05 10:30', 'a.b@example.com', 'blue shoes'])
  t.strictSame(c.queryWords, ['42'])
  t.strictSame(c.query.sort(), ['<b>', 'O\'Brien'])
  t.ok(TEXT_WORD.test('Hello, world: 1.5'))
  t.notOk(TEXT_WORD.test('a+b'))
})

t.test('every text word a rule matches reaches it (corpus, benign set, rule keywords joined as phrases)', async (t) => {
  const root = resolve(import.meta.dirname, '../..')
  const corpus = resolve(root, 'test/fixtures/crs/crs-regression.jsonl')
  t.ok(existsSync(corpus), 'the attack corpus is vendored in test/fixtures/crs')
  const engine = createEngine()
  t.teardown(() => { engine.dispose() })
  const candidates = new Set<string>()
  const addRuns = (text: string): void => {
    for (const run of text.split(/[^A-Za-z0-9 _.,:@-]+/)) {
      const v = run.trim()
      if (v !== '' && v.length <= 200 && TEXT_WORD.test(v)) candidates.add(v)
    }
  }
  for (const file of [corpus, resolve(root, 'test/fixtures/benign/benign.jsonl')]) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (line.trim() === '') continue
      let text = line.replace(/\+/g, ' ')
      try { text = decodeURIComponent(text) } catch {}
      addRuns(text)
    }
  }
  // The rules' keywords, joined the ways SQL, shell and template text joins them.
  const rules = readRuleset(BUILTIN_RULES_FILE).rules as Array<{ conditions: Array<{ parameters: { regex?: string, list?: string[] } }> }>
  for (const rule of rules) {
    for (const c of rule.conditions) {
      const words = ((c.parameters.regex ?? '') + ' ' + (c.parameters.list ?? []).join(' ')).replace(/\\[a-z]/g, ' ').split(/[^A-Za-z0-9_@]+/).filter((w) => w !== '' && w.length <= 40)
      for (let i = 0; i < words.length; i++) {
        for (const sep of [' ', '.', ':', ',', '-', '  ']) {
          candidates.add(words.slice(i, i + 2).join(sep))
          candidates.add(words.slice(i, i + 3).join(sep))
          candidates.add(`1 ${words.slice(i, i + 2).join(sep)} 1`)
        }
      }
      candidates.add(words.join(' '))
    }
  }
  // What libinjection's XSS check looks for (tags, event and URL attributes, URL schemes,
  // comment keywords), joined the same ways.
  for (const words of XSS_WORDS) {
    for (const sep of [' ', '.', ':', ',', '-', '  ', '']) candidates.add(words.join(sep))
  }
  t.ok(candidates.size > 5000, `${candidates.size} distinct text words`)
  const evaluate = engine as unknown as { evaluate: (c: unknown, t: number) => { matches: Array<{ ruleId: string }> } }
  const ids = (address: string, v: string): string => evaluate.evaluate({ empty: false, payload: () => ({ [address]: [v] }) }, 1_000_000).matches.map((m) => m.ruleId).sort().join(',')
  let compared = 0
  let attacks = 0
  for (const v of candidates) {
    if (!TEXT_WORD.test(v)) continue
    for (const [standard, text] of Object.entries(TEXT_COUNTERPART)) {
      const expected = ids(standard, v)
      const got = ids(text, v)
      compared++
      if (expected !== '') attacks++
      if (expected !== got) t.fail(`${text}: ${JSON.stringify(v)} matched by [${expected}] on ${standard}, [${got}] as a text word`)
    }
  }
  t.ok(attacks > 50, `${attacks} text-word inputs the rules match, each matched the same as a text word`)
  t.ok(compared > 20_000, `${compared} input/address pairs compared`)
})

t.test('the built-in ruleset: most rules skip text words; operator rules are analysed too', async (t) => {
  const builtin = readRuleset(BUILTIN_RULES_FILE)
  const rewritten = withTextCounterparts(builtin).rules as Array<{ id: string, conditions: Array<{ operator: string, parameters: { inputs: Array<{ address: string }> } }> }>
  const reading = rewritten.filter((r) => r.conditions.some((c) => c.parameters.inputs.some((i) => i.address === TEXT_COUNTERPART['server.request.query'])))
  const readingQuery = rewritten.filter((r) => r.conditions.some((c) => c.parameters.inputs.some((i) => i.address === 'server.request.query')))
  t.ok(reading.length > 0 && reading.length < readingQuery.length / 2, `${reading.length} of ${readingQuery.length} query rules read text words`)
  t.ok(reading.some((r) => r.conditions.some((c) => c.operator === 'is_sqli')), 'libinjection SQL reads text words')
})

t.test('an operator rule that matches text words sees them; one that cannot is not given them', async (t) => {
  const { mkdtempSync, writeFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = mkdtempSync(join(tmpdir(), 'pc-text-words-'))
  const file = join(dir, 'acme.json')
  const rule = (id: string, regex: string): unknown => ({ id, name: id, tags: { type: 'generic', category: 'attack_attempt', family: 'generic' }, conditions: [{ operator: 'match_regex', parameters: { inputs: [{ address: 'server.request.query' }], regex } }] })
  writeFileSync(file, JSON.stringify({ version: '2.2', rules: [rule('acme-phrase', 'forbidden\\s+phrase'), rule('acme-tag', '<acme>')] }))
  const engine = createEngine(file)
  t.teardown(() => { engine.dispose() })
  const limits = { maxInspectBytes: 32 * 1024, maxBodyDepth: 32, maxBodyKeys: 2000 }
  const { evaluateRequest } = await import('../../plugins/inspect/engine.js')
  const hit = evaluateRequest(engine, { url: '/x?q=a+forbidden+phrase+here', headers: {} }, limits, 1_000_000)
  t.ok(hit.matches.some((m) => m.ruleId === 'acme-phrase'), 'the text word reached the operator rule')
  const tag = evaluateRequest(engine, { url: '/x?q=%3Cacme%3E', headers: {} }, limits, 1_000_000)
  t.ok(tag.matches.some((m) => m.ruleId === 'acme-tag'), 'other values still reach every rule')
})

t.test('text-word screen: a value it clears is judged the same by the rules it cannot read alone (corpus, benign set, rule keywords)', async (t) => {
  const { Collected } = await import('../../plugins/inspect/extract.js')
  const root = resolve(import.meta.dirname, '../..')
  const engine = createEngine()
  t.teardown(() => { engine.dispose() })
  const candidates = new Set<string>(['blue shoes 88888', 'Jane O Brien', '2024-01-05 10:30', 'a.b@example.com', '1 union select 1,2', '1 or 1', 'admin --', 'x  onload', 'WHOAMI', 'cat  etc passwd'])
  for (const file of [resolve(root, 'test/fixtures/crs/crs-regression.jsonl'), resolve(root, 'test/fixtures/benign/benign.jsonl')]) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      let text = line.replace(/\+/g, ' ')
      try { text = decodeURIComponent(text) } catch {}
      for (const run of text.split(/[^A-Za-z0-9 _.,:@-]+/)) {
        const v = run.trim()
        if (v !== '' && v.length <= 200 && TEXT_WORD.test(v) && !/^[A-Za-z0-9_-]+$/.test(v)) candidates.add(v)
      }
    }
  }
  const rules = readRuleset(BUILTIN_RULES_FILE).rules as Array<{ conditions: Array<{ parameters: { regex?: string, list?: string[] } }> }>
  for (const rule of rules) {
    for (const c of rule.conditions) {
      const words = ((c.parameters.regex ?? '') + ' ' + (c.parameters.list ?? []).join(' ')).replace(/\\[a-z]/g, ' ').split(/[^A-Za-z0-9_@]+/).filter((w) => w !== '' && w.length <= 40)
      for (let i = 0; i < words.length; i++) {
        for (const sep of [' ', ', ', '  ', ' , ']) candidates.add(`1 ${words.slice(i, i + 2).join(sep)} 1`)
        candidates.add(words.slice(i, i + 3).join(' ').toUpperCase())
      }
    }
  }
  const limits = 1 << 20
  const raw = engine as unknown as { evaluate: (c: unknown, t: number) => { matches: Array<{ ruleId: string }> } }
  const ids = (address: string, v: string): string => raw.evaluate({ empty: false, payload: () => ({ [address]: [v] }) }, 1_000_000).matches.map((m) => m.ruleId).sort().join(',')
  const places: Array<[string, (c: InstanceType<typeof Collected>, v: string) => void]> = [
    ['server.request.query', (c, v) => { c.add(c.query, v) }],
    ['server.request.cookies', (c, v) => { c.add(c.cookies, v) }],
    ['server.request.body', (c, v) => { c.add(c.body, v) }],
    ['portcullis.request.keys', (c, v) => { c.addKey(v) }]
  ]
  let screened = 0
  let attacks = 0
  let compared = 0
  for (const v of candidates) {
    if (!TEXT_WORD.test(v) || /^[A-Za-z0-9_-]+$/.test(v)) continue
    for (const [standard, add] of places) {
      const c = new Collected(limits, undefined, engine.wordScreen)
      add(c, v)
      if (c.onlyScreened) screened++
      const got = engine.evaluate(c, 1_000_000).matches.map((m) => m.ruleId).sort().join(',')
      const expected = ids(standard, v)
      compared++
      if (expected !== '') attacks++
      if (got !== expected) t.fail(`${standard}: ${JSON.stringify(v)} matched by [${expected}] on the standard address, [${got}] through the screen`)
    }
  }
  t.ok(compared > 20_000, `${compared} value/address pairs compared`)
  t.ok(attacks > 100, `${attacks} of them matched by some rule, each the same through the screen`)
  t.ok(screened > compared / 2, `${screened} judged by the screened rules alone`)
  const one = new Collected(limits, undefined, engine.wordScreen)
  one.add(one.query, 'blue shoes 88888')
  t.strictSame(one.queryTextScreened, ['blue shoes 88888'], 'a search term goes to the screened list')
  const sql = new Collected(limits, undefined, engine.wordScreen)
  sql.add(sql.query, '1 union select 1,2')
  t.strictSame(sql.queryText, ['1 union select 1,2'], 'a value a regex rule may match goes to every rule')
  t.ok(engine.evaluate(sql, 1_000_000).matches.length > 0)
})

t.test('text-word screen: transformers it models, and an operator rule it cannot read', async (t) => {
  const { mkdtempSync, writeFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const { Collected } = await import('../../plugins/inspect/extract.js')
  const dir = mkdtempSync(join(tmpdir(), 'pc-screen-'))
  const file = join(dir, 'acme.json')
  const rule = (id: string, transformers: string[], condition: Record<string, unknown>): unknown => ({ id, name: id, tags: { type: 'generic', category: 'attack_attempt', family: 'generic' }, transformers, conditions: [condition] })
  const query = [{ address: 'server.request.query' }]
  writeFileSync(file, JSON.stringify({
    version: '2.2',
    rules: [
      // shell_unescape lower-cases and turns runs of spaces and commas into one space.
      rule('acme-shell', ['shell_unescape'], { operator: 'match_regex', parameters: { inputs: query, regex: 'rm -rf now', options: { case_sensitive: true } } }),
      rule('acme-space', ['compressWhiteSpace'], { operator: 'match_regex', parameters: { inputs: query, regex: 'two words', options: { case_sensitive: true } } }),
      rule('acme-sqli', [], { operator: 'is_sqli', parameters: { inputs: query } })
    ]
  }))
  const engine = createEngine(file)
  t.teardown(() => { engine.dispose() })
  const judge = (v: string): { screened: boolean, ids: string[] } => {
    const c = new Collected(1 << 20, undefined, engine.wordScreen)
    c.add(c.query, v)
    return { screened: c.onlyScreened, ids: engine.evaluate(c, 1_000_000).matches.map((m) => m.ruleId).sort() }
  }
  t.ok(judge('RM  -RF,, NOW').ids.includes('acme-shell'), 'shell_unescape modelled: upper case, commas and double spaces')
  t.ok(judge('two    words').ids.includes('acme-space'), 'compressWhiteSpace modelled')
  const plain = judge('blue shoes 2')
  t.ok(plain.screened, 'a plain search term is judged by the rules the screen cannot read alone')
  t.strictSame(plain.ids, [])
  t.ok(judge('1 union select 1,2').ids.includes('acme-sqli'), 'the operator libinjection rule still sees text words')
})
