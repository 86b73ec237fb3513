/**
 * Parameter values read from a request as OpenAPI serialises them (`style` / `explode`), into
 * strings, arrays of strings and objects of strings that Ajv then coerces to the declared types.
 *
 * Supported: path `simple` (default), `label`, `matrix`; query `form` (default), `spaceDelimited`,
 * `pipeDelimited`, `deepObject`; header `simple`; cookie `form`; `content` parameters as JSON.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { Param } from './contract.js'

export type ParamValue = string | string[] | Record<string, string> | unknown

/** A query string's values by name, as a form decodes them (`+` is a space). */
export function parseQuery (query: string): Map<string, string[]> {
  const out = new Map<string, string[]>()
  if (query === '') return out
  for (const [k, v] of new URLSearchParams(query)) {
    const list = out.get(k)
    if (list === undefined) out.set(k, [v])
    else list.push(v)
  }
  return out
}

/** Cookies of the Cookie header (first value of a name wins). */
export function parseCookies (header: string | undefined): Map<string, string> {
  const out = new Map<string, string>()
  if (header === undefined) return out
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=')
    if (eq === -1) continue
    const name = pair.slice(0, eq).trim()
    if (name !== '' && !out.has(name)) out.set(name, pair.slice(eq + 1).trim())
  }
  return out
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

/** A query parameter's value, or undefined when absent. */
export function queryValue (p: Param, query: Map<string, string[]>): ParamValue | undefined {
  if (p.style === 'deepObject') {
    const obj: Record<string, string> = {}
    let found = false
    const open = `${p.name}[`
    for (const [k, values] of query) {
      if (k.startsWith(open) && k.endsWith(']')) {
        obj[k.slice(open.length, -1)] = values[0] as string
        found = true
      }
    }
    return found ? obj : undefined
  }
  if (p.shape === 'object' && p.explode && !p.json) {
    const obj: Record<string, string> = {}
    let found = false
    for (const prop of p.properties) {
      const v = query.get(prop)
      if (v !== undefined) {
        obj[prop] = v[0] as string
        found = true
      }
    }
    return found ? obj : undefined
  }
  const values = query.get(p.name)
  if (values === undefined) return undefined
  if (p.shape === 'array' && p.explode && !p.json) return values
  const separator = p.style === 'spaceDelimited' ? ' ' : p.style === 'pipeDelimited' ? '|' : ','
  return shaped(p, values[0] as string, separator)
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
export function cookieValue (p: Param, cookies: Map<string, string>): ParamValue | undefined {
  const raw = cookies.get(p.name)
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
