/**
 * The inspection engine: one libddwaf instance (via @datadog/native-appsec) loaded with
 * Portcullis's own ruleset plus an optional operator ruleset, and `evaluate()` that runs the
 * collected inputs of one request phase through a fresh engine context.
 *
 * A rule's family comes from its `tags.family` (falling back to `tags.type`); its id is what
 * logs, metrics and per-route exclusions use. An engine timeout is reported, never swallowed:
 * the plugin treats it as a block in block mode.
 */
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import nativeAppsec from '@datadog/native-appsec'
import { conditionCanMatchTextWord } from './text-words.js'
import { collectRequest, PLAIN_COUNTERPART, TEXT_COUNTERPART, WORD_LISTS, type Collected, type ExtractLimits, type RequestLike, type WordScreen } from './extract.js'

const { DDWAF } = nativeAppsec
type Waf = InstanceType<typeof DDWAF>

/**
 * The built-in ruleset shipped with the package: beside this module when run from source, and at
 * the same place in the package (plugins/inspect/rules, listed in package.json `files`) from dist.
 */
export const BUILTIN_RULES_FILE = [
  new URL('./rules/portcullis.json', import.meta.url),
  new URL('../../../plugins/inspect/rules/portcullis.json', import.meta.url)
].map((u) => fileURLToPath(u)).find((f) => existsSync(f)) ?? fileURLToPath(new URL('./rules/portcullis.json', import.meta.url))

/** One rule that matched. */
export interface InspectMatch {
  readonly ruleId: string
  readonly family: string
}

/** Outcome of one evaluation. */
export interface InspectResult {
  readonly matches: readonly InspectMatch[]
  readonly timeout: boolean
}

const NO_MATCH: InspectResult = Object.freeze({ matches: Object.freeze([]), timeout: false })

interface RuleTags { type?: unknown, family?: unknown }
interface WafEvent { rule?: { id?: unknown, tags?: RuleTags } }

/** Problems reported by the engine while loading a ruleset (failed rules with their errors). */
function loadProblems (source: string, diagnostics: Waf['diagnostics']): string[] {
  const problems: string[] = []
  for (const section of ['rules', 'custom_rules', 'exclusions', 'rules_override', 'processors', 'actions'] as const) {
    const d = diagnostics[section] as { error?: string, failed?: string[], errors?: Record<string, string[]> } | undefined
    if (d === undefined) continue
    if (typeof d.error === 'string') problems.push(`${source}: ${section}: ${d.error}`)
    for (const [message, ids] of Object.entries(d.errors ?? {})) problems.push(`${source}: ${section} ${ids.join(', ')}: ${message}`)
  }
  return problems
}

/** Reads and parses a ruleset file; throws with the file named. */
export function readRuleset (file: string): Record<string, unknown> {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new Error(`${file}: ${err instanceof Error ? err.message : 'unreadable'}`, { cause: err })
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${file}: not a JSON object`)
  return parsed as Record<string, unknown>
}

/**
 * Transformers that leave a bare word (`[A-Za-z0-9_-]`) unchanged: nothing to decode, no nulls,
 * quotes, backslashes, carets or whitespace. `lowercase` is applied by the screen itself.
 */
const IDENTITY_ON_WORDS: ReadonlySet<string> = new Set(['urlDecodeUni', 'htmlEntityDecode', 'jsDecode', 'cssDecode', 'removeNulls', 'shell_unescape', 'compressWhiteSpace'])

interface ScreenRule { transformers?: unknown, conditions?: Array<{ operator?: unknown, parameters?: { inputs?: Array<{ address?: unknown }>, regex?: unknown, list?: unknown, options?: { case_sensitive?: unknown } } }> }

/** What one rule looks for in a bare word: a regex source with its flags, or phrases. */
interface WordTest {
  readonly lowercase: boolean
  readonly regex?: { readonly source: string, readonly flags: string }
  readonly phrases?: readonly string[]
}

/** One rule's test on a bare word, or null when the rule cannot be screened in JavaScript. */
function wordTest (rule: ScreenRule): WordTest | null {
  const transformers = Array.isArray(rule.transformers) ? rule.transformers as unknown[] : []
  let lowercase = false
  for (const t of transformers) {
    if (t === 'lowercase') lowercase = true
    else if (typeof t !== 'string' || !IDENTITY_ON_WORDS.has(t)) return null
  }
  const conditions = rule.conditions ?? []
  if (conditions.length !== 1) return null
  const c = conditions[0]
  if (c?.operator === 'phrase_match' && Array.isArray(c.parameters?.list)) {
    // Substring matching is a superset of matching at word boundaries.
    return { lowercase, phrases: (c.parameters.list as unknown[]).filter((p): p is string => typeof p === 'string') }
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
  return { lowercase, regex: { source, flags } }
}

type WordMatcher = (word: string, lower: string) => boolean

/**
 * One matcher for the tests of one list: the regexes of each (lowercase, flags) group joined in
 * one alternation (kept apart when a source has backreferences or named groups), then phrases.
 */
function wordMatcher (tests: readonly WordTest[]): WordMatcher {
  const groups = new Map<string, { lowercase: boolean, flags: string, sources: string[] }>()
  const single: Array<{ lowercase: boolean, re: RegExp }> = []
  const phrases: Array<{ lowercase: boolean, list: readonly string[] }> = []
  for (const t of tests) {
    if (t.phrases !== undefined) {
      phrases.push({ lowercase: t.lowercase, list: t.phrases })
    } else if (t.regex !== undefined) {
      if (/\\[1-9k]|\(\?</.test(t.regex.source)) {
        single.push({ lowercase: t.lowercase, re: new RegExp(t.regex.source, t.regex.flags) })
        continue
      }
      const key = `${String(t.lowercase)}/${t.regex.flags}`
      let g = groups.get(key)
      if (g === undefined) {
        g = { lowercase: t.lowercase, flags: t.regex.flags, sources: [] }
        groups.set(key, g)
      }
      g.sources.push(t.regex.source)
    }
  }
  for (const g of groups.values()) single.push({ lowercase: g.lowercase, re: new RegExp(g.sources.map((src) => `(?:${src})`).join('|'), g.flags) })
  return function matches (word: string, lower: string): boolean {
    for (let i = 0; i < single.length; i++) {
      const r = single[i] as { lowercase: boolean, re: RegExp }
      if (r.re.test(r.lowercase ? lower : word)) return true
    }
    for (let i = 0; i < phrases.length; i++) {
      const p = phrases[i] as { lowercase: boolean, list: readonly string[] }
      const w = p.lowercase ? lower : word
      for (let j = 0; j < p.list.length; j++) if (w.includes(p.list[j] as string)) return true
    }
    return false
  }
}

/**
 * Builds the bare-word screen from the loaded rules: for each bare-word address, the JavaScript
 * equivalents of the rules reading it. A word passes to the engine when any of them matches (the
 * engine still decides); an address read by a rule that cannot be screened lets every word through.
 */
function buildWordScreen (rulesets: ReadonlyArray<Record<string, unknown>>): WordScreen {
  const tests = new Map<number, WordTest[] | null>()
  for (const list of Object.values(WORD_LISTS)) tests.set(list, [])
  for (const ruleset of rulesets) {
    for (const section of ['rules', 'custom_rules'] as const) {
      const rules = ruleset[section]
      if (!Array.isArray(rules)) continue
      for (const rule of rules as ScreenRule[]) {
        const read = new Set<number>()
        for (const c of rule.conditions ?? []) {
          for (const i of c.parameters?.inputs ?? []) {
            const list = typeof i?.address === 'string' ? WORD_LISTS[i.address] : undefined
            if (list !== undefined) read.add(list)
          }
        }
        if (read.size === 0) continue
        const test = wordTest(rule)
        for (const list of read) {
          const current = tests.get(list)
          if (current === null || current === undefined) continue
          if (test === null) tests.set(list, null)
          else current.push(test)
        }
      }
    }
  }
  const byList: Array<WordMatcher | null | undefined> = []
  for (const [list, t] of tests) byList[list] = t === null ? null : wordMatcher(t)
  return {
    relevant (list: number, word: string): boolean {
      const matches = byList[list]
      if (matches === null || matches === undefined) return true
      return matches(word, word.toLowerCase())
    }
  }
}

const STATELESS_OPERATORS: ReadonlySet<string> = new Set(['match_regex', 'phrase_match', 'is_sqli', 'is_xss', 'exact_match'])
const RULESET_KEYS: ReadonlySet<string> = new Set(['version', 'metadata', 'rules'])

/** A ruleset where each value is judged on its own (see InspectEngine.cacheable). */
function valuesJudgedAlone (ruleset: Record<string, unknown>): boolean {
  if (!Object.keys(ruleset).every((k) => RULESET_KEYS.has(k))) return false
  const rules = ruleset.rules
  if (!Array.isArray(rules)) return false
  return (rules as Array<{ conditions?: unknown }>).every((rule) => {
    const conditions = rule?.conditions
    if (!Array.isArray(conditions) || conditions.length !== 1) return false
    const c = conditions[0] as { operator?: unknown, parameters?: { inputs?: unknown } } | undefined
    if (typeof c?.operator !== 'string' || !STATELESS_OPERATORS.has(c.operator)) return false
    const inputs = c.parameters?.inputs
    return Array.isArray(inputs) && (inputs as Array<{ key_path?: unknown }>).every((i) => i?.key_path === undefined)
  })
}

/** The loaded engine. Create once per gateway; `dispose()` on close. */
export class InspectEngine {
  private readonly waf: Waf
  private readonly families = new Map<string, string>()
  /** Rule ids loaded (built-in and operator rules). */
  readonly ruleIds: ReadonlySet<string>
  /**
   * Whether a value's verdict depends only on the value and its address, so clean verdicts may be
   * remembered (VerdictCache): every rule has one condition, with a stateless operator, over
   * addresses without key paths, and the rulesets hold rules only (no exclusions, overrides or
   * processors that could tie values together).
   */
  readonly cacheable: boolean
  /** Bare words no rule could match skip the engine (built from the loaded rules). */
  readonly wordScreen: WordScreen

  /**
   * @param rulesets parsed rulesets in load order (`[builtin, operator?]`), each `{ rules: [...] }`
   * @throws Error listing every rule the engine refused (the caller wraps it in its config error)
   */
  constructor (rulesets: ReadonlyArray<{ readonly name: string, readonly rules: Record<string, unknown> }>) {
    const [first, ...rest] = rulesets
    if (first === undefined) throw new Error('no ruleset')
    const waf = new DDWAF(first.rules, first.name)
    const problems = loadProblems(first.name, waf.diagnostics)
    for (const r of rest) {
      const ok = waf.createOrUpdateConfig(r.rules, r.name)
      if (!ok) problems.push(`${r.name}: refused by the engine`)
      else problems.push(...loadProblems(r.name, waf.diagnostics))
    }
    if (problems.length > 0) {
      waf.dispose()
      throw new Error(problems.join('; '))
    }
    this.waf = waf
    const ids = new Set<string>()
    for (const r of rulesets) {
      const list = (r.rules.rules ?? []) as Array<{ id?: unknown, tags?: RuleTags }>
      for (const rule of list) {
        if (typeof rule.id !== 'string') continue
        ids.add(rule.id)
        const fam = rule.tags?.family ?? rule.tags?.type
        this.families.set(rule.id, typeof fam === 'string' ? fam : 'unknown')
      }
    }
    this.ruleIds = ids
    this.cacheable = rulesets.every((r) => valuesJudgedAlone(r.rules))
    this.wordScreen = buildWordScreen(rulesets.map((r) => r.rules))
  }

  /** Runs the collected inputs through a new context (disposed before returning). */
  evaluate (inputs: Collected, timeoutMicros: number): InspectResult {
    if (inputs.empty) return NO_MATCH
    const ctx = this.waf.createContext()
    try {
      const r = ctx.run({ ephemeral: inputs.payload() }, timeoutMicros)
      const events = r.events as WafEvent[] | undefined
      if (events === undefined || events.length === 0) return r.timeout ? { matches: [], timeout: true } : NO_MATCH
      const matches: InspectMatch[] = []
      for (const e of events) {
        const id = e.rule?.id
        if (typeof id !== 'string') continue
        matches.push({ ruleId: id, family: this.families.get(id) ?? 'unknown' })
      }
      return { matches, timeout: r.timeout }
    } finally {
      ctx.dispose()
    }
  }

  dispose (): void {
    if (!this.waf.disposed) this.waf.dispose()
  }
}

interface RuleInput { address?: unknown, key_path?: unknown }
interface ConditionLike { operator?: unknown, parameters?: { inputs?: RuleInput[], regex?: unknown, list?: unknown, options?: { case_sensitive?: unknown } } }
interface RuleLike { transformers?: unknown, conditions?: ConditionLike[] }

/**
 * A ruleset whose rule conditions also read, for each standard address they read (without a key
 * path), the counterpart `counterparts` names, where `wanted(rule, condition)` says so.
 */
function withCounterparts (ruleset: Record<string, unknown>, counterparts: Readonly<Record<string, string>>, wanted: (rule: RuleLike, c: ConditionLike) => boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { ...ruleset }
  for (const section of ['rules', 'custom_rules'] as const) {
    const list = ruleset[section]
    if (!Array.isArray(list)) continue
    out[section] = (list as RuleLike[]).map((rule) => {
      if (typeof rule !== 'object' || rule === null || !Array.isArray(rule.conditions)) return rule
      return {
        ...rule,
        conditions: rule.conditions.map((c) => {
          const inputs = c?.parameters?.inputs
          if (!Array.isArray(inputs) || !wanted(rule, c)) return c
          const present = new Set(inputs.map((i) => i?.address))
          const extra: RuleInput[] = []
          for (const i of inputs) {
            const counterpart = typeof i?.address === 'string' ? counterparts[i.address] : undefined
            if (counterpart !== undefined && !present.has(counterpart) && i.key_path === undefined) {
              present.add(counterpart)
              extra.push({ address: counterpart })
            }
          }
          return extra.length === 0 ? c : { ...c, parameters: { ...c.parameters, inputs: [...inputs, ...extra] } }
        })
      }
    })
  }
  return out
}

/**
 * An operator ruleset written against the standard addresses also reads their bare-word
 * counterparts (where the gateway files plain keys and values), so its rules see every value.
 */
export function withPlainCounterparts (ruleset: Record<string, unknown>): Record<string, unknown> {
  return withCounterparts(ruleset, PLAIN_COUNTERPART, () => true)
}

/**
 * Every rule condition (built-in or operator) that reads a standard address and could match a
 * text word also reads that address's text-word counterpart (text-words.ts decides "could").
 */
export function withTextCounterparts (ruleset: Record<string, unknown>): Record<string, unknown> {
  return withCounterparts(ruleset, TEXT_COUNTERPART, (rule, c) =>
    // Inputs with transformers of their own are not analysed: they keep reading text words.
    (c.parameters?.inputs ?? []).some((i) => (i as { transformers?: unknown }).transformers !== undefined) ||
    conditionCanMatchTextWord(rule.transformers, c))
}

/** Loads the built-in ruleset and, when given, an operator ruleset file. */
export function createEngine (rulesFile?: string): InspectEngine {
  const sets = [{ name: 'portcullis', rules: withTextCounterparts(readRuleset(BUILTIN_RULES_FILE)) }]
  if (rulesFile !== undefined) sets.push({ name: 'operator', rules: withTextCounterparts(withPlainCounterparts(readRuleset(rulesFile))) })
  return new InspectEngine(sets)
}

/**
 * Evaluates a whole request (URL, headers and, with `withBody`, the body) exactly as the plugin
 * extracts it. Used by the corpus measurement; throws InspectLimitError where the plugin refuses.
 */
export function evaluateRequest (engine: InspectEngine, req: RequestLike, limits: ExtractLimits, timeoutMicros: number, withBody = true): InspectResult {
  return engine.evaluate(collectRequest(req, limits, withBody, engine.wordScreen), timeoutMicros)
}
