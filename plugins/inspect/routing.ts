/**
 * Per-address rule routing: which rules read the derived addresses of the registry
 * (addresses.ts), decided when a ruleset is loaded by rewriting its rule conditions to also read
 * them. Rules name only the standard addresses; here each condition reading a standard address
 * (without a key path) is given:
 * - its prose counterpart, unless its operator is in the registry's `prose` skips (built-in rules);
 * - its bare-word counterpart, when the condition could match a bare word (text-words.ts) and its
 *   operator is not in the registry's `bareWords` skips (built-in rules); an operator ruleset's
 *   rules all read bare words;
 * - its text-word counterpart, when the condition could match a text word (every ruleset);
 * and each condition reading a text-word address whose rule the JavaScript screen cannot read
 * (screen.ts) is given the screened counterpart.
 */
import { PLAIN_COUNTERPART, PROSE_COUNTERPART, ROUTING_SKIPS, SCREENED_COUNTERPART, TEXT_COUNTERPART } from './addresses.js'
import { conditionCanMatchBareWord, conditionCanMatchTextWord } from './text-words.js'
import { wordTest } from './screen.js'

interface RuleInput { address?: unknown, key_path?: unknown, transformers?: unknown }
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

/** Inputs with transformers of their own are not analysed: such a condition keeps reading every counterpart. */
function ownTransformers (c: ConditionLike): boolean {
  return (c.parameters?.inputs ?? []).some((i) => i?.transformers !== undefined)
}

/** Every condition reading a standard address with a prose counterpart reads it, but the skipped operators. */
export function withProseCounterparts (ruleset: Record<string, unknown>): Record<string, unknown> {
  return withCounterparts(ruleset, PROSE_COUNTERPART, (_rule, c) => typeof c.operator !== 'string' || !ROUTING_SKIPS.prose.has(c.operator))
}

/**
 * Every condition that could match a bare word (text-words.ts decides "could") reads the
 * bare-word counterparts of the standard addresses it reads, but the skipped operators.
 */
export function withBareWordCounterparts (ruleset: Record<string, unknown>): Record<string, unknown> {
  return withCounterparts(ruleset, PLAIN_COUNTERPART, (rule, c) =>
    (typeof c.operator !== 'string' || !ROUTING_SKIPS.bareWords.has(c.operator)) &&
    (ownTransformers(c) || conditionCanMatchBareWord(rule.transformers, c)))
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
  return withCounterparts(ruleset, TEXT_COUNTERPART, (rule, c) => ownTransformers(c) || conditionCanMatchTextWord(rule.transformers, c))
}

/**
 * Every rule condition reading a text-word address whose rule the JavaScript screen cannot read
 * (screen.ts) also reads that address's screened counterpart, where the values the screen
 * cleared of every other rule go.
 */
export function withScreenedCounterparts (ruleset: Record<string, unknown>): Record<string, unknown> {
  return withCounterparts(ruleset, SCREENED_COUNTERPART, (rule) => wordTest(rule) === null)
}

/** The built-in ruleset as loaded: every derived address routed. */
export function preparedBuiltin (ruleset: Record<string, unknown>): Record<string, unknown> {
  return withScreenedCounterparts(withTextCounterparts(withBareWordCounterparts(withProseCounterparts(ruleset))))
}

/** An operator ruleset as loaded: bare words read by every rule, text words and screened values derived. */
export function preparedOperator (ruleset: Record<string, unknown>): Record<string, unknown> {
  return withScreenedCounterparts(withTextCounterparts(withPlainCounterparts(ruleset)))
}
