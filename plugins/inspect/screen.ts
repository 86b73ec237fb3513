/**
 * The JavaScript screen in front of the engine, for bare words (`[A-Za-z0-9_-]`: ids, numbers,
 * enum values) and text words (TEXT_WORD: names, search terms, dates). An engine run costs tens
 * of microseconds per new value; most such values cannot match any rule, and the screen proves
 * it in JavaScript for the rules it can read:
 * - a `match_regex` or `phrase_match` rule with one condition, whose transformers the screen
 *   models on that alphabet (below). Its regex runs as a JavaScript regex with the `u` flag, a
 *   superset of what RE2 matches on these ASCII strings: a regex JavaScript would read
 *   differently (POSIX classes) or rejects (RE2-only syntax) makes the rule unreadable. Phrases
 *   are tested as substrings, a superset of the engine's matching. Where a transformer changes
 *   the value, the untransformed value is tested too, so the screen holds whether the engine
 *   matches the transformed value only or both;
 * - every other rule (libinjection's is_sqli and is_xss, detectors, several conditions) is one the
 *   screen cannot read.
 *
 * A value passes to the engine when some rule the screen reads could match it. For bare words,
 * one rule the screen cannot read on a list lets every value of that list through. For text
 * words, those rules read a "screened" counterpart address instead (addresses.ts): a text word the
 * screen clears goes there, and only those rules judge it.
 */
import { SCREENED_COUNTERPART, SCREENED_LISTS, SOURCE_LIST, TEXT_LISTS, WORD_LISTS } from './addresses.js'
import type { WordScreen } from './collected.js'

/**
 * Transformers with nothing to act on in a bare or text word: no `%` or `+` to URL-decode, no
 * `&` entity, no `\` escape, no NUL. The three the screen models change these words:
 * `lowercase`; `compressWhiteSpace` (runs of spaces become one); `shell_unescape` (lower case,
 * and each run of spaces and commas becomes one space).
 */
const IDENTITY: ReadonlySet<string> = new Set([
  'urlDecodeUni', 'urlDecode', 'url_decode', 'url_decode_iis', 'htmlEntityDecode', 'html_entity_decode',
  'jsDecode', 'js_decode', 'cssDecode', 'css_decode', 'removeNulls', 'remove_nulls'
])
const STEPS: Readonly<Record<string, string>> = { lowercase: 'l', compressWhiteSpace: 'c', compress_whitespace: 'c', shell_unescape: 's' }

const SPACE_RUN = / {2,}/g
const SPACE_COMMA_RUN = /[ ,]+/g

/** One modelled transformer applied to a bare or text word. */
function step (s: string, code: string): string {
  if (code === 'l') return s.toLowerCase()
  if (code === 'c') return s.indexOf('  ') === -1 ? s : s.replace(SPACE_RUN, ' ')
  return s.toLowerCase().replace(SPACE_COMMA_RUN, ' ')
}

interface ScreenCondition { operator?: unknown, parameters?: { inputs?: Array<{ address?: unknown, transformers?: unknown }>, regex?: unknown, list?: unknown, options?: { case_sensitive?: unknown } } }
interface ScreenRule { transformers?: unknown, conditions?: ScreenCondition[] }

/** What one rule looks for: after its modelled transformers (`steps`), a regex or phrases. */
export interface WordTest {
  readonly steps: string
  readonly regex?: { readonly source: string, readonly flags: string }
  readonly phrases?: readonly string[]
}

/** One rule's test on bare and text words, or null when the screen cannot read the rule. */
export function wordTest (rule: ScreenRule): WordTest | null {
  const transformers = Array.isArray(rule.transformers) ? rule.transformers as unknown[] : []
  let steps = ''
  for (const t of transformers) {
    if (typeof t !== 'string') return null
    if (IDENTITY.has(t)) continue
    const code = STEPS[t]
    if (code === undefined) return null
    steps += code
  }
  const conditions = rule.conditions ?? []
  if (conditions.length !== 1) return null
  const c = conditions[0]
  // An input with transformers of its own is not modelled.
  if ((c?.parameters?.inputs ?? []).some((i) => i?.transformers !== undefined)) return null
  if (c?.operator === 'phrase_match' && Array.isArray(c.parameters?.list)) {
    // Substring matching is a superset of matching at word boundaries.
    return { steps, phrases: (c.parameters.list as unknown[]).filter((p): p is string => typeof p === 'string') }
  }
  if (c?.operator !== 'match_regex' || typeof c.parameters?.regex !== 'string') return null
  const source = c.parameters.regex
  // RE2 syntax JavaScript would read differently rather than reject (POSIX classes: [[:alpha:]]).
  if (/\[:[a-z]+:\]/.test(source)) return null
  // The u flag rejects RE2-only escapes and flags ((?i), \A, \z, \pL, \Q) instead of reading them literally.
  const flags = c.parameters.options?.case_sensitive === true ? 'u' : 'iu'
  try {
    RegExp(source, flags)
  } catch {
    return null
  }
  return { steps, regex: { source, flags } }
}

/** The tests of one steps chain: regexes joined in alternations, and phrases. */
interface Group {
  readonly steps: string
  readonly regexes: RegExp[]
  /** The phrases as one alternation of literals (one pass over the value, not one per phrase). */
  readonly phrases: string[]
  /**
   * The regexes also run on the untransformed value when the steps changed it: all of them,
   * but for a chain that only lower-cases, just the case-sensitive ones (a case-insensitive
   * regex matches a word exactly when it matches the word lower-cased).
   */
  originalRegexes: RegExp[]
}

function transform (s: string, steps: string): string {
  for (let i = 0; i < steps.length; i++) s = step(s, steps[i] as string)
  return s
}

function groupMatches (regexes: readonly RegExp[], s: string): boolean {
  for (let i = 0; i < regexes.length; i++) if ((regexes[i] as RegExp).test(s)) return true
  return false
}

const REGEX_SYNTAX = /[.*+?^${}()|[\]\\/-]/g

/** A regex matching exactly where one of `phrases` occurs as a substring (code unit by code unit). */
function phraseRegex (phrases: readonly string[]): RegExp {
  return new RegExp(phrases.map((p) => p.replace(REGEX_SYNTAX, '\\$&')).join('|'))
}

/** The tests of one list, by steps chain; regexes of one chain and flags joined in one alternation. */
class WordMatcher {
  private readonly groups: Group[] = []

  constructor (tests: readonly WordTest[]) {
    const bySteps = new Map<string, { group: Group, sources: Map<string, string[]> }>()
    for (const t of tests) {
      let entry = bySteps.get(t.steps)
      if (entry === undefined) {
        entry = { group: { steps: t.steps, regexes: [], phrases: [], originalRegexes: [] }, sources: new Map() }
        bySteps.set(t.steps, entry)
        this.groups.push(entry.group)
      }
      if (t.phrases !== undefined) {
        entry.group.phrases.push(...t.phrases)
      } else if (t.regex !== undefined) {
        // Backreferences and named groups would clash once joined: those stay alone.
        if (/\\[1-9k]|\(\?</.test(t.regex.source)) {
          entry.group.regexes.push(new RegExp(t.regex.source, t.regex.flags))
          continue
        }
        let list = entry.sources.get(t.regex.flags)
        if (list === undefined) {
          list = []
          entry.sources.set(t.regex.flags, list)
        }
        list.push(t.regex.source)
      }
    }
    for (const { group, sources } of bySteps.values()) {
      for (const [flags, list] of sources) group.regexes.push(new RegExp(list.map((src) => `(?:${src})`).join('|'), flags))
      const lowercaseOnly = /^l+$/.test(group.steps)
      group.originalRegexes = group.regexes.filter((re) => !lowercaseOnly || !re.flags.includes('i'))
      // An empty phrase is found in every value.
      if (group.phrases.includes('')) {
        group.regexes.push(/(?:)/)
      } else if (group.phrases.length > 0) {
        const literal = phraseRegex(group.phrases)
        group.regexes.push(literal)
        group.originalRegexes.push(literal)
      }
    }
  }

  /** Whether some test could match `word` (the transformed value, or the value itself). */
  matches (word: string): boolean {
    for (let i = 0; i < this.groups.length; i++) {
      const g = this.groups[i] as Group
      const s = g.steps === '' ? word : transform(word, g.steps)
      if (groupMatches(g.regexes, s)) return true
      if (s !== word && groupMatches(g.originalRegexes, word)) return true
    }
    return false
  }
}

/**
 * Builds the screen from the loaded rulesets (with their counterpart addresses): for each list,
 * the tests of the rules the screen reads; for each text-word list, whether some rule reads its
 * screened counterpart. A bare-word list read by a rule the screen cannot read lets every word
 * through; so does a text-word list read by one that does not also read the screened counterpart.
 */
export function buildWordScreen (rulesets: ReadonlyArray<Record<string, unknown>>): WordScreen {
  const lists: Readonly<Record<string, number>> = { ...WORD_LISTS, ...TEXT_LISTS }
  const tests = new Map<number, WordTest[] | null>()
  for (const list of Object.values(lists)) tests.set(list, [])
  const residual = new Set<number>()
  for (const ruleset of rulesets) {
    for (const section of ['rules', 'custom_rules'] as const) {
      const rules = ruleset[section]
      if (!Array.isArray(rules)) continue
      for (const rule of rules as ScreenRule[]) {
        const read = new Set<string>()
        for (const c of rule.conditions ?? []) {
          for (const i of c.parameters?.inputs ?? []) if (typeof i?.address === 'string') read.add(i.address)
        }
        const test = wordTest(rule)
        for (const address of read) {
          const screened = SCREENED_LISTS[address]
          if (screened !== undefined) residual.add(SOURCE_LIST[screened] as number)
          const list = lists[address]
          if (list === undefined) continue
          const current = tests.get(list)
          if (current === null || current === undefined) continue
          if (test !== null) current.push(test)
          else if (!read.has(SCREENED_COUNTERPART[address] ?? '')) tests.set(list, null)
        }
      }
    }
  }
  const byList: Array<WordMatcher | null | undefined> = []
  for (const [list, t] of tests) byList[list] = t === null ? null : new WordMatcher(t)
  const residualByList: boolean[] = []
  for (const list of residual) residualByList[list] = true
  return {
    relevant (list: number, word: string): boolean {
      const matcher = byList[list]
      if (matcher === null || matcher === undefined) return true
      return matcher.matches(word)
    },
    residual (list: number): boolean {
      return residualByList[list] === true
    }
  }
}
