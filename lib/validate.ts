/**
 * Options validation shared by the gateway's traffic plugins (rate-limit, ip-filter, overload):
 * apply the TypeBox schema's defaults to a copy, collect every problem, run the cross-field
 * validator, then freeze. Never mutates the caller's object.
 */
import type { TSchema } from '@sinclair/typebox'
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value'

/** Keys Fastify's `register()` itself understands; they are not plugin options. */
const REGISTER_KEYS = new Set(['prefix', 'logLevel', 'logSerializers'])

function deepFreeze<T> (o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o)) deepFreeze(v)
  }
  return o
}

/** A message that only says the value is of another kind (the branch was not the one meant). */
const KIND_MISMATCH = /^Expected (?:union value|object|array|string|boolean|number|integer|null|undefined|true|false|'[^']*'|-?\d+(?:\.\d+)?)$/

/**
 * For a union, the error of the branch the value came closest to: the deepest path, then one that
 * says more than "another kind" (`rateLimit.max: Expected integer to be greater or equal to 1`,
 * not `rateLimit: Expected union value`). Recursive, for unions inside unions.
 */
function mostSpecific (e: ValueError): ValueError {
  const choices = (e.schema as { anyOf?: Array<{ const?: unknown }> }).anyOf
  if (choices !== undefined && choices.length > 0 && choices.every((c) => 'const' in c)) {
    return { ...e, message: `Expected one of ${choices.map((c) => JSON.stringify(c.const)).join(', ')}` }
  }
  let best = e
  let bestScore = -1
  for (const branch of e.errors ?? []) {
    const first = branch.First()
    if (first === undefined) continue
    const candidate = mostSpecific(first)
    const score = candidate.path.split('/').length * 2 + (KIND_MISMATCH.test(candidate.message) ? 0 : 1)
    if (score > bestScore) {
      best = candidate
      bestScore = score
    }
  }
  return best
}

/**
 * A pattern mismatch said in the words of the schema's `patternMessage` (what the value must
 * look like), never as the raw regular expression.
 */
function inWords (e: ValueError): ValueError {
  if (e.type !== ValueErrorType.StringPattern) return e
  const words = (e.schema as { patternMessage?: unknown, description?: unknown }).patternMessage
  if (typeof words === 'string') return { ...e, message: words }
  const description = (e.schema as { description?: unknown }).description
  return { ...e, message: `has the wrong form${typeof description === 'string' ? ` (${description})` : ''}` }
}

/**
 * One line per schema problem, at most one per option path, named from `root` (`options` or
 * nothing: the option's own path; anything else: `root.path`).
 */
export function errorLines (errors: Iterable<ValueError>, root = ''): string[] {
  const lines: string[] = []
  const seen = new Set<string>()
  for (const error of errors) {
    const e = inWords(mostSpecific(error))
    const key = e.path === '' ? (root === '' ? 'options' : root) : (root === '' || root === 'options' ? '' : `${root}.`) + e.path.slice(1).replaceAll('/', '.')
    if (seen.has(key)) continue
    seen.add(key)
    lines.push(`${key}: ${e.message}`)
  }
  return lines
}

/** One line per problem of `value` against `schema` (see errorLines). */
export function schemaProblems (schema: TSchema, value: unknown, where = ''): string[] {
  return errorLines(Value.Errors(schema, value), where)
}

/**
 * Validates plugin options against `schema` (defaults applied to a copy), then `crossCheck`;
 * throws `invalid(<every problem>)` or returns the frozen result.
 */
export function compileOptions<T> (
  schema: TSchema,
  input: unknown,
  invalid: (problems: readonly string[]) => Error,
  crossCheck?: (options: T, problems: string[]) => void
): Readonly<T> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw invalid(['options: must be an object'])
  }
  const own: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(input)) if (!REGISTER_KEYS.has(k)) own[k] = v
  const copy = Value.Default(schema, Value.Clone(own))
  const problems = schemaProblems(schema, copy)
  if (problems.length === 0 && crossCheck !== undefined) crossCheck(copy as T, problems)
  if (problems.length > 0) throw invalid(problems)
  return deepFreeze(copy as T)
}
