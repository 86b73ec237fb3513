/**
 * Options validation shared by the gateway's traffic plugins (rate-limit, ip-filter, overload):
 * apply the TypeBox schema's defaults to a copy, collect every problem, run the cross-field
 * validator, then freeze. Never mutates the caller's object.
 */
import type { FastifyErrorConstructor } from '@fastify/error'
import type { TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'

/** Keys Fastify's `register()` itself understands; they are not plugin options. */
const REGISTER_KEYS = new Set(['prefix', 'logLevel', 'logSerializers'])

function deepFreeze<T> (o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o)) deepFreeze(v)
  }
  return o
}

/** One line per schema problem, at most one per option path. */
export function schemaProblems (schema: TSchema, value: unknown, where = ''): string[] {
  const problems: string[] = []
  const seen = new Set<string>()
  for (const e of Value.Errors(schema, value)) {
    const path = where + (e.path === '' ? '' : (where === '' ? '' : '.') + e.path.slice(1).replaceAll('/', '.'))
    const key = path === '' ? 'options' : path
    // Unions report every branch; the first message per option is the useful one.
    if (seen.has(key)) continue
    seen.add(key)
    problems.push(`${key}: ${e.message}`)
  }
  return problems
}

/**
 * Validates plugin options against `schema` (defaults applied to a copy), then `crossCheck`;
 * throws `new ErrorClass(<every problem>)` or returns the frozen result.
 */
export function compileOptions<T> (
  schema: TSchema,
  input: unknown,
  ErrorClass: FastifyErrorConstructor,
  crossCheck?: (options: T, problems: string[]) => void
): Readonly<T> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new ErrorClass('options: must be an object')
  }
  const own: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(input)) if (!REGISTER_KEYS.has(k)) own[k] = v
  const copy = Value.Default(schema, Value.Clone(own))
  const problems = schemaProblems(schema, copy)
  if (problems.length === 0 && crossCheck !== undefined) crossCheck(copy as T, problems)
  if (problems.length > 0) throw new ErrorClass(problems.join('; '))
  return deepFreeze(copy as T)
}
