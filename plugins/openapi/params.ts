/**
 * Parameter values read from a request as OpenAPI serialises them (`style` / `explode`), into
 * strings, arrays of strings and objects of strings that Ajv then coerces to the declared types.
 *
 * Supported: path `simple` (default), `label`, `matrix`; query `form` (default), `spaceDelimited`,
 * `pipeDelimited`, `deepObject`; header `simple`; cookie `form`; `content` parameters as JSON.
 */
import type { IncomingHttpHeaders } from 'node:http'
import querystring from 'fast-querystring'
import { foldQueryName, type Param, type QueryNames } from './contract.js'

export type ParamValue = string | string[] | Record<string, string> | unknown

/** A query string's values by name, as a form decodes them (`+` is a space); a repeated name's values in order. */
export type QueryValues = Readonly<Record<string, string | string[]>>

const NO_QUERY: QueryValues = Object.freeze(Object.create(null) as Record<string, string | string[]>)

/** Parses a query string (fast-querystring: what Fastify's router reads queries with). */
export function parseQuery (query: string): QueryValues {
  if (query === '') return NO_QUERY
  return querystring.parse(query) as QueryValues
}

/** A query name's values as a list. */
function valuesOf (query: QueryValues, name: string): readonly string[] | undefined {
  const v = query[name]
  return v === undefined ? undefined : typeof v === 'string' ? [v] : v
}

/** The first value of a query name. */
function firstOf (query: QueryValues, name: string): string | undefined {
  const v = query[name]
  return v === undefined || typeof v === 'string' ? v : v[0]
}

/** Cookies of the Cookie header (first value of a name wins) and the names given more than once. */
export interface Cookies {
  readonly values: ReadonlyMap<string, string>
  readonly repeated: ReadonlySet<string> | undefined
}

/** Cookies of the Cookie header (first value of a name wins). */
export function parseCookies (header: string | undefined): Cookies {
  const values = new Map<string, string>()
  let repeated: Set<string> | undefined
  if (header === undefined) return { values, repeated }
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=')
    if (eq === -1) continue
    const name = pair.slice(0, eq).trim()
    if (name === '') continue
    if (values.has(name)) (repeated ??= new Set()).add(name)
    else values.set(name, pair.slice(eq + 1).trim())
  }
  return { values, repeated }
}

function decode (s: string): string | undefined {
  try {
    return decodeURIComponent(s)
  } catch {
    return undefined
  }
}

/** `k,v,k2,v2` (explode false) or `k=v,k2=v2` (explode true) into an object. */
function pairs (parts: string[], explode: boolean): Record<string, string> {
  const obj: Record<string, string> = {}
  if (explode) {
    for (const part of parts) {
      const eq = part.indexOf('=')
      if (eq > 0) obj[part.slice(0, eq)] = part.slice(eq + 1)
    }
  } else {
    for (let i = 0; i + 1 < parts.length; i += 2) obj[parts[i] as string] = parts[i + 1] as string
  }
  return obj
}

/** A serialised value (one string) as its shape. */
function shaped (p: Param, value: string, separator: string): ParamValue {
  if (p.json) {
    try {
      return JSON.parse(value)
    } catch {
      return Symbol.for('portcullis.invalid-json')
    }
  }
  if (p.shape === 'array') return value === '' ? [] : value.split(separator)
  if (p.shape === 'object') return pairs(value === '' ? [] : value.split(separator), p.explode)
  return value
}

/** A path parameter's raw (percent-encoded) segment; undefined when it does not decode. */
export function pathValue (p: Param, raw: string): ParamValue | undefined {
  let value = raw
  if (p.style === 'label' && value.startsWith('.')) {
    value = value.slice(1)
    if (p.explode && p.shape !== 'primitive') {
      const parts = value.split('.').map(decode)
      if (parts.some((x) => x === undefined)) return undefined
      return p.shape === 'array' ? parts : pairs(parts as string[], true)
    }
  } else if (p.style === 'matrix' && value.startsWith(`;${p.name}=`)) {
    value = value.slice(p.name.length + 2)
  }
  const parts = value.split(',').map(decode)
  if (parts.some((x) => x === undefined)) return undefined
  if (p.json) return shaped(p, parts.join(','), ',')
  if (p.shape === 'array') return parts
  if (p.shape === 'object') return pairs(parts as string[], p.explode)
  return parts.join(',')
}

/**
 * A query parameter's value, or undefined when absent. A `deepObject` parameter given as a plain
 * name (`filter=x`) is that string, which its object schema then refuses.
 */
export function queryValue (p: Param, query: QueryValues): ParamValue | undefined {
  if (p.style === 'deepObject') {
    const obj: Record<string, string> = {}
    let found = false
    const open = `${p.name}[`
    for (const k in query) {
      if (k.startsWith(open) && k.endsWith(']')) {
        obj[k.slice(open.length, -1)] = firstOf(query, k) as string
        found = true
      }
    }
    return found ? obj : firstOf(query, p.name)
  }
  if (p.shape === 'object' && p.explode && !p.json) {
    const obj: Record<string, string> = {}
    let found = false
    for (const prop of p.properties) {
      const v = firstOf(query, prop)
      if (v !== undefined) {
        obj[prop] = v
        found = true
      }
    }
    return found ? obj : undefined
  }
  if (p.shape === 'array' && p.explode && !p.json) return valuesOf(query, p.name)
  const value = firstOf(query, p.name)
  if (value === undefined) return undefined
  const separator = p.style === 'spaceDelimited' ? ' ' : p.style === 'pipeDelimited' ? '|' : ','
  return shaped(p, value, separator)
}

/**
 * Query names a backend could read other than the contract did (parameter pollution): a declared
 * name given more than once where it holds one value (backends take the first, the last, or
 * join them), and a name the contract does not declare that folds to a declared one
 * (`Channel`, `channel[]`). As `/query/<declared name>: repeated | ambiguous` lines.
 */
export function queryPollution (names: QueryNames, query: QueryValues): string[] | undefined {
  let problems: string[] | undefined
  for (const name of names.single) if (typeof query[name] === 'object') (problems ??= []).push(`/query/${name}: repeated`)
  for (const k in query) {
    if (names.exact.has(k)) continue
    const deep = names.deep.find((prefix) => k.startsWith(prefix))
    if (deep !== undefined) {
      // `filter[min]=1&filter[min]=-5`: qs makes an array of the member, the contract read the first.
      if (typeof query[k] === 'object') (problems ??= []).push(`/query/${deep.slice(0, -1)}: repeated`)
      continue
    }
    const declared = names.folded.get(foldQueryName(k))
    if (declared !== undefined) (problems ??= []).push(`/query/${declared}: ambiguous`)
  }
  return problems
}

/** A header parameter's value (`simple`), or undefined when absent. */
export function headerValue (p: Param, headers: IncomingHttpHeaders): ParamValue | undefined {
  const raw = headers[p.key]
  if (raw === undefined) return undefined
  const value = Array.isArray(raw) ? raw.join(',') : raw
  if (p.shape === 'primitive' && !p.json) return value
  return shaped(p, value, ',')
}

/** A cookie parameter's value (`form`), or undefined when absent. */
export function cookieValue (p: Param, cookies: Cookies): ParamValue | undefined {
  const raw = cookies.values.get(p.name)
  if (raw === undefined) return undefined
  const value = decode(raw) ?? raw
  if (p.shape === 'primitive' && !p.json) return value
  return shaped(p, value, ',')
}

/** An urlencoded body as an object: a name given once is a string, several times an array. */
export function formObject (body: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>
  for (const [k, v] of new URLSearchParams(body)) {
    if (k === '__proto__' || k === 'constructor' || k === 'prototype') continue
    const prev = out[k]
    if (prev === undefined) out[k] = v
    else if (Array.isArray(prev)) prev.push(v)
    else out[k] = [prev, v]
  }
  return out
}
