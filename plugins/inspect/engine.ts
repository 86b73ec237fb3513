/**
 * The inspection engine: one libddwaf instance (via @datadog/native-appsec) loaded with
 * Portcullis's own ruleset plus an optional operator ruleset, and `evaluate()` that runs the
 * collected inputs of one request phase through a fresh engine context.
 *
 * A rule's family comes from its `tags.family` (falling back to `tags.type`); its id is what
 * logs, metrics and per-route exclusions use. An engine timeout is reported, never swallowed:
 * the plugin treats it as a block in block mode.
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { readText } from '../../lib/files.js'
import type nativeAppsec from '@datadog/native-appsec'
import { buildWordScreen } from './screen.js'
import { SCREENED_ADDRESSES } from './addresses.js'
import { preparedBuiltin, preparedOperator } from './routing.js'
import { packJoint, type Collected, type WordScreen } from './collected.js'
import { collectRequest, type ExtractLimits, type RequestLike } from './extract.js'

export { withPlainCounterparts, withScreenedCounterparts, withTextCounterparts } from './routing.js'

type DDWAFClass = typeof nativeAppsec.DDWAF
type Waf = InstanceType<DDWAFClass>

const requireModule = createRequire(import.meta.url)
let loadedDDWAF: DDWAFClass | undefined

/**
 * The engine class, loaded with the first engine: a gateway whose routes inspect nothing never
 * maps the native library.
 */
function engineClass (): DDWAFClass {
  loadedDDWAF ??= (requireModule('@datadog/native-appsec') as typeof nativeAppsec).DDWAF
  return loadedDDWAF
}

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

/** The address only the runs of `evaluateWithout` carry: the key of the rule filter they apply. */
const FILTER_ADDRESS = 'portcullis.route.rule_filter'

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
    parsed = JSON.parse(readText(file))
  } catch (err) {
    throw new Error(`${file}: ${err instanceof Error ? err.message : 'unreadable'}`, { cause: err })
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${file}: not a JSON object`)
  return parsed as Record<string, unknown>
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
  /** Bare and text words no rule could match skip the engine or most of it (screen.ts). */
  readonly wordScreen: WordScreen
  /**
   * A second engine instance with only the rules reading screened text words (those the screen
   * cannot read, such as libinjection's), restricted to those addresses. It judges a phase whose
   * every value is a screened text word, with the same verdict as the whole ruleset: in a
   * cacheable ruleset no other rule reads those values. Absent when the ruleset is not cacheable.
   */
  private readonly screenedWaf: Waf | undefined
  /** Engine filters registered by filterFor: sorted rule ids joined -> key. */
  private readonly filters = new Map<string, string>()
  /**
   * Whether two rules share a `tags.type`: libddwaf then reports at most one of them per run, so
   * a rule switched off or in detect mode can hide another's match (the plugin runs again without it).
   */
  readonly sharedTypes: boolean

  /**
   * @param rulesets parsed rulesets in load order (`[builtin, operator?]`), each `{ rules: [...] }`
   * @throws Error listing every rule the engine refused (the caller wraps it in its config error)
   */
  constructor (rulesets: ReadonlyArray<{ readonly name: string, readonly rules: Record<string, unknown> }>) {
    const [first, ...rest] = rulesets
    if (first === undefined) throw new Error('no ruleset')
    const waf = new (engineClass())(first.rules, first.name)
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
    const types = new Set<unknown>()
    let shared = false
    for (const r of rulesets) {
      const list = (r.rules.rules ?? []) as Array<{ id?: unknown, tags?: RuleTags }>
      for (const rule of list) {
        if (typeof rule.id !== 'string') continue
        ids.add(rule.id)
        if (types.has(rule.tags?.type)) shared = true
        types.add(rule.tags?.type)
        const fam = rule.tags?.family ?? rule.tags?.type
        this.families.set(rule.id, typeof fam === 'string' ? fam : 'unknown')
      }
    }
    this.ruleIds = ids
    this.sharedTypes = shared
    this.cacheable = rulesets.every((r) => valuesJudgedAlone(r.rules))
    this.wordScreen = buildWordScreen(rulesets.map((r) => r.rules))
    this.screenedWaf = this.cacheable ? screenedEngine(rulesets.map((r) => r.rules)) : undefined
  }

  /** Runs the collected inputs through a new context (disposed before returning). */
  evaluate (inputs: Collected, timeoutMicros: number): InspectResult {
    if (inputs.empty) return NO_MATCH
    return this.run(this.screenedWaf !== undefined && inputs.onlyScreened ? this.screenedWaf : this.waf, inputs.payload(), timeoutMicros)
  }

  private run (waf: Waf, payload: Record<string, unknown>, timeoutMicros: number): InspectResult {
    const ctx = waf.createContext()
    try {
      const r = ctx.run({ ephemeral: payload }, timeoutMicros)
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

  /**
   * The key of an engine filter that switches `ruleIds` off in the runs of `evaluateWithout`
   * (registered once per set of rules, at startup); undefined for no rules. A libddwaf rule
   * filter whose condition reads an address only those runs carry: every other run, joint runs
   * and the verdict cache included, judges with the whole ruleset as before.
   * @throws Error when the engine refuses the filter
   */
  filterFor (ruleIds: Iterable<string>): string | undefined {
    const ids = [...new Set(ruleIds)].sort()
    if (ids.length === 0) return undefined
    const name = ids.join(',')
    let key = this.filters.get(name)
    if (key !== undefined) return key
    key = `f${this.filters.size + 1}`
    const filter = {
      id: `portcullis-route-filter-${key}`,
      rules_target: ids.map((id) => ({ rule_id: id })),
      conditions: [{ operator: 'exact_match', parameters: { inputs: [{ address: FILTER_ADDRESS }], list: [key] } }]
    }
    const path = `portcullis-route-filter-${key}`
    if (!this.waf.createOrUpdateConfig({ exclusions: [filter] }, path)) throw new Error(`rule filter ${name}: refused by the engine`)
    const problems = loadProblems(path, this.waf.diagnostics)
    if (problems.length > 0) throw new Error(problems.join('; '))
    this.filters.set(name, key)
    return key
  }

  /**
   * Runs the collected inputs with the rules of `filter` (filterFor) switched off, on the whole
   * ruleset (never the screened engine, which holds no filters). Verdicts are not for the cache.
   */
  evaluateWithout (inputs: Collected, filter: string | undefined, timeoutMicros: number): InspectResult {
    if (inputs.empty) return NO_MATCH
    const payload = inputs.payload()
    if (filter !== undefined) payload[FILTER_ADDRESS] = filter
    return this.run(this.waf, payload, timeoutMicros)
  }

  /**
   * Whether every one of `inputs` is clean, judged in one engine run: under each address, the
   * values of every input in one list, packed to the engine's limits as one input's are. True when
   * that run matched nothing and did not time out; false tells nothing about any one input (the
   * caller then evaluates each alone). An engine run costs a fixed ~10 µs in the binding
   * (converting the input, creating the result) beside 1-2 µs per value, so short phases judged
   * together cost a fraction of that each.
   *
   * Sound for a cacheable ruleset only (throws otherwise): there a rule reads addresses whole,
   * with one stateless condition and no key path, so it matches the joint run exactly when it
   * matches some value of one input, which that input's own run would match too.
   * `screened`: every input is `onlyScreened` (the screened engine judges them, as in evaluate()).
   */
  allClean (inputs: readonly Collected[], screened: boolean, timeoutMicros: number): boolean {
    if (!this.cacheable) throw new Error('joint evaluation needs a cacheable ruleset')
    const joint: Record<string, string[]> = {}
    for (let i = 0; i < inputs.length; i++) (inputs[i] as Collected).appendTo(joint)
    const ctx = (this.screenedWaf !== undefined && screened ? this.screenedWaf : this.waf).createContext()
    try {
      const r = ctx.run({ ephemeral: packJoint(joint) }, timeoutMicros)
      const events = r.events as WafEvent[] | undefined
      return !r.timeout && (events === undefined || events.length === 0)
    } finally {
      ctx.dispose()
    }
  }

  dispose (): void {
    if (!this.waf.disposed) this.waf.dispose()
    if (this.screenedWaf !== undefined && !this.screenedWaf.disposed) this.screenedWaf.dispose()
  }
}

interface RuleInput { address?: unknown }
interface RuleLike { conditions?: Array<{ parameters?: { inputs?: RuleInput[] } }> }

/**
 * The rules of cacheable rulesets that read screened addresses, reading only those, loaded in an
 * engine of their own; undefined when there are none or the engine refuses them (the whole
 * ruleset then judges screened values too).
 */
function screenedEngine (rulesets: ReadonlyArray<Record<string, unknown>>): Waf | undefined {
  const rules: unknown[] = []
  for (const ruleset of rulesets) {
    for (const rule of (ruleset.rules ?? []) as RuleLike[]) {
      const conditions = rule.conditions ?? []
      const c = conditions[0]
      const inputs = (c?.parameters?.inputs ?? []).filter((i) => typeof i?.address === 'string' && SCREENED_ADDRESSES.has(i.address))
      if (c === undefined || conditions.length !== 1 || inputs.length === 0) continue
      rules.push({ ...rule, conditions: [{ ...c, parameters: { ...c.parameters, inputs } }] })
    }
  }
  if (rules.length === 0) return undefined
  const waf = new (engineClass())({ version: '2.2', rules }, 'portcullis-screened')
  if (loadProblems('screened', waf.diagnostics).length > 0) {
    waf.dispose()
    return undefined
  }
  return waf
}

/** Loads the built-in ruleset and, when given, an operator ruleset file. */
export function createEngine (rulesFile?: string): InspectEngine {
  const sets = [{ name: 'portcullis', rules: preparedBuiltin(readRuleset(BUILTIN_RULES_FILE)) }]
  if (rulesFile !== undefined) sets.push({ name: 'operator', rules: preparedOperator(readRuleset(rulesFile)) })
  return new InspectEngine(sets)
}

/**
 * Evaluates a whole request (URL, headers and, with `withBody`, the body) exactly as the plugin
 * extracts it. Used by the corpus measurement; throws InspectLimitError where the plugin refuses.
 */
export function evaluateRequest (engine: InspectEngine, req: RequestLike, limits: ExtractLimits, timeoutMicros: number, withBody = true): InspectResult {
  return engine.evaluate(collectRequest(req, limits, withBody, engine.wordScreen), timeoutMicros)
}
