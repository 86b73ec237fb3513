/**
 * Per-field rule exclusions (`inspect.exclude: [{ rule, field }]`): the field syntax, its
 * validation, and the split of one request phase into the values of the excluded fields and
 * everything else, so the rules excluded on a field are not applied to exactly that field's
 * values, and every other rule still is.
 *
 * Field syntax (case-sensitive unless said otherwise):
 * - `*`: every field (the rule is off on the whole route);
 * - `path`: the decoded path;
 * - `query.<name>`: every query parameter whose name, percent-decoded (`+` as a space), is `<name>`;
 * - `header.<name>`: the header `<name>`, written in lower case (as Node delivers names);
 * - `cookie.<name>`: every cookie whose percent-decoded name is `<name>`;
 * - `body.<path>`: in a JSON body (or an object a host app's parser made), the member reached by
 *   the dot path `<path>` (each segment a member name; arrays on the way are entered, every item),
 *   the value and everything inside it (member names of an object value included); in an
 *   urlencoded or multipart body, every field whose name is `<path>` as a whole (dots and
 *   brackets included). A multipart part counts only when its head names it once, in its
 *   Content-Disposition line. Other bodies (XML, text) have no fields.
 *
 * The exclusion covers the field's values as the backend reads them, never their spelling
 * variants (`SQL`, `sql[]`, `sql ` are other fields); the field's own name stays judged by every
 * rule. Duplicated names (`?sql=a&sql=b`) are all that field.
 */
import sjson from 'secure-json-parse'
import { bodyText, charsetOf } from './decode.js'
import { Collected, collectBody, collectCookies, collectForm, collectHeaders, collectMultipart, collectObject, collectUrl, decode, type ExtractLimits, type WordScreen } from './extract.js'

/** One parsed field of an exclusion. */
export type FieldRef =
  | { readonly kind: 'all' }
  | { readonly kind: 'path' }
  | { readonly kind: 'query' | 'cookie' | 'header', readonly name: string }
  | { readonly kind: 'body', readonly name: string, readonly path: readonly string[] }

/** Headers inspection never reads (extract.ts SKIPPED_HEADERS but `cookie`): excluding them means nothing. */
const UNINSPECTED_HEADERS: ReadonlySet<string> = new Set([
  'authorization', 'proxy-authorization', 'x-api-key', 'host', 'content-length', 'transfer-encoding',
  'connection', 'keep-alive', 'te', 'upgrade', 'x-request-id'
])
const HEADER_TOKEN = /^[a-z0-9!#$%&'*+.^_`|~-]+$/
// eslint-disable-next-line no-control-regex -- field names with control characters are refused
const CONTROL = /[\u0000-\u001f\u007f]/

/** Parses a field; a string is the problem (without the option's name). */
export function parseField (field: string): FieldRef | string {
  if (field === '*') return { kind: 'all' }
  if (field === 'path') return { kind: 'path' }
  const dot = field.indexOf('.')
  const scope = dot === -1 ? field : field.slice(0, dot)
  const name = dot === -1 ? '' : field.slice(dot + 1)
  const syntax = 'write "*", "path", "query.<name>", "header.<name>", "cookie.<name>" or "body.<path>"'
  if (scope !== 'query' && scope !== 'header' && scope !== 'cookie' && scope !== 'body') return `"${field}" is not a field (${syntax})`
  if (name === '') return `"${field}" names no ${scope} field (${syntax})`
  if (CONTROL.test(name)) return `"${JSON.stringify(field).slice(1, -1)}": control characters in a field name`
  if (scope === 'header') {
    if (name === 'cookie') return `"${field}": cookies are excluded one by one ("cookie.<name>")`
    if (!HEADER_TOKEN.test(name)) {
      const lower = name.toLowerCase()
      return HEADER_TOKEN.test(lower) ? `"${field}": header names are written in lower case ("header.${lower}")` : `"${field}": not a header name`
    }
    if (UNINSPECTED_HEADERS.has(name)) return `"${field}": this header is never inspected`
    return { kind: 'header', name }
  }
  if (scope === 'body') {
    const path = name.split('.')
    if (path.includes('')) return `"${field}": empty segment in the body path`
    return { kind: 'body', name, path }
  }
  return { kind: scope, name }
}

/** One field with exclusions (the caller keeps what it needs beside it: the rules, their engine filter). */
export interface FieldExclusion {
  readonly field: Exclude<FieldRef, { kind: 'all' }>
}

/** One phase split for a recheck: everything but the excluded fields, and each excluded field's values. */
export interface PhaseSplit<E extends FieldExclusion> {
  readonly rest: Collected
  readonly fields: ReadonlyArray<{ readonly c: Collected, readonly exclusion: E }>
}

function newCollected (limits: ExtractLimits, screen: WordScreen | undefined): Collected {
  return new Collected(limits.maxInspectBytes, undefined, screen)
}

/** Splits `a=1&b=2` into the pairs of `names` (each to its own list) and the rest, names kept bare. */
function splitForm (text: string, names: ReadonlyMap<string, string[]>): string {
  const rest: string[] = []
  let start = 0
  while (start <= text.length) {
    let end = text.indexOf('&', start)
    if (end === -1) end = text.length
    const pair = text.slice(start, end)
    const eq = pair.indexOf('=')
    const taken = eq === -1 ? undefined : names.get(decode(pair.slice(0, eq), true))
    if (taken !== undefined) {
      taken.push(pair)
      // The name stays judged (it is the configured one), without its value.
      rest.push(pair.slice(0, eq))
    } else {
      rest.push(pair)
    }
    start = end + 1
  }
  return rest.join('&')
}

/**
 * The URL and headers phase split by the excluded request fields (path, query, header, cookie),
 * each value collected exactly as extract.ts collects it.
 */
export function splitRequest<E extends FieldExclusion> (url: string, headers: Record<string, string | string[] | undefined>, fields: readonly E[], limits: ExtractLimits, screen: WordScreen | undefined): PhaseSplit<E> {
  const rest = newCollected(limits, screen)
  const out: Array<{ c: Collected, exclusion: E }> = []
  const q = url.indexOf('?')
  let path = q === -1 ? url : url.slice(0, q)
  let query = q === -1 ? undefined : url.slice(q + 1)
  const queryNames = new Map<string, string[]>()
  const cookieNames = new Map<string, string[]>()
  const restHeaders: Record<string, string | string[] | undefined> = { ...headers }
  const sides: Array<() => void> = []
  for (const ex of fields) {
    const c = newCollected(limits, screen)
    const f = ex.field
    if (f.kind === 'path') {
      const p = path
      path = ''
      sides.push(() => { collectUrl(c, p) })
    } else if (f.kind === 'query') {
      const pairs: string[] = []
      queryNames.set(f.name, pairs)
      sides.push(() => { if (pairs.length > 0) collectForm(c, pairs.join('&'), c.query) })
    } else if (f.kind === 'cookie') {
      const pairs: string[] = []
      cookieNames.set(f.name, pairs)
      sides.push(() => { if (pairs.length > 0) collectCookies(c, pairs.join('; ')) })
    } else if (f.kind === 'header') {
      const value = restHeaders[f.name]
      if (value === undefined) continue
      delete restHeaders[f.name]
      sides.push(() => { collectHeaders(c, { [f.name]: value }) })
    } else {
      continue
    }
    out.push({ c, exclusion: ex })
  }
  if (query !== undefined && queryNames.size > 0) query = splitForm(query, queryNames)
  const cookie = restHeaders.cookie
  if (cookie !== undefined && cookieNames.size > 0) restHeaders.cookie = splitCookies(Array.isArray(cookie) ? cookie.join('; ') : cookie, cookieNames)
  // HTTP/2 carries the URL again in `:path`: judged as the URL is, split above.
  if (restHeaders[':path'] === url) delete restHeaders[':path']
  collectUrl(rest, query === undefined ? path : `${path}?${query}`)
  collectHeaders(rest, restHeaders)
  for (const side of sides) side()
  return { rest, fields: out }
}

/** The Cookie header without the cookies of `names` (each added to its own list). */
function splitCookies (header: string, names: ReadonlyMap<string, string[]>): string {
  const rest: string[] = []
  for (const raw of header.split(';')) {
    const pair = raw.trim()
    const eq = pair.indexOf('=')
    const taken = eq === -1 ? undefined : names.get(decode(pair.slice(0, eq).trim(), false))
    if (taken !== undefined) taken.push(pair)
    else rest.push(raw)
  }
  return rest.join(';')
}

function mediaType (contentType: string): string {
  const semi = contentType.indexOf(';')
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
}

function isJson (type: string): boolean {
  return type === 'application/json' || type.endsWith('+json')
}

/**
 * Every value at `path` in a parsed JSON value (arrays entered), replaced by '' in `value` (a copy
 * the caller owns) and handed to `take`.
 */
function takePath (value: unknown, path: readonly string[], i: number, take: (v: unknown) => void): void {
  if (typeof value !== 'object' || value === null) return
  if (Array.isArray(value)) {
    for (const item of value) takePath(item, path, i, take)
    return
  }
  const key = path[i] as string
  if (!Object.hasOwn(value, key)) return
  const record = value as Record<string, unknown>
  if (i === path.length - 1) {
    take(record[key])
    record[key] = ''
  } else {
    takePath(record[key], path, i + 1, take)
  }
}

const BOUNDARY = /boundary=(?:"([^"]{1,200})"|([^\s;]{1,200}))/i
const NAME_PARAM = /\bname\*?\s*=/gi
const DISPOSITION_LINE = /^content-disposition:[^\r\n]*\bname="([^"]*)"/im
const PART_TYPE = /content-type:\s*([^\r\n]+)/i

/**
 * A multipart body without the content of the parts named in `names` (each part's content and
 * type handed to its list). Scans parts exactly as extract.ts collectMultipart does.
 */
function splitMultipart (text: string, contentType: string, names: ReadonlyMap<string, Array<[string, string]>>): string {
  const m = BOUNDARY.exec(contentType)
  const boundary = m?.[1] ?? m?.[2]
  if (boundary === undefined) return text
  const delimiter = '--' + boundary
  let pos = text.indexOf(delimiter)
  let out = ''
  let copied = 0
  while (pos !== -1) {
    const start = pos + delimiter.length
    if (text.startsWith('--', start)) break
    const next = text.indexOf(delimiter, start)
    const end = next === -1 ? text.length : next
    const part = text.slice(start, end)
    const sep = part.indexOf('\r\n\r\n') !== -1 ? part.indexOf('\r\n\r\n') : part.indexOf('\n\n')
    if (sep !== -1) {
      const head = part.slice(0, sep)
      const contentStart = sep + (part.startsWith('\r\n\r\n', sep) ? 4 : 2)
      let contentEnd = part.length
      if (part.endsWith('\r\n')) contentEnd -= 2
      else if (part.endsWith('\n')) contentEnd -= 1
      // The part's name counts only when its head states one name, in its Content-Disposition.
      const named = (head.match(NAME_PARAM) ?? []).length === 1 ? DISPOSITION_LINE.exec(head)?.[1] : undefined
      const taken = named === undefined || contentEnd < contentStart ? undefined : names.get(named)
      if (taken !== undefined) {
        taken.push([part.slice(contentStart, contentEnd), PART_TYPE.exec(head)?.[1] ?? 'text/plain'])
        out += text.slice(copied, start + contentStart)
        copied = start + contentEnd
      }
    }
    pos = next
  }
  return out + text.slice(copied)
}

/**
 * The body phase split by the excluded body fields; undefined when the body is not one whose
 * fields are known (then the whole body is judged by every rule).
 */
export function splitBody<E extends FieldExclusion> (body: unknown, contentType: string | undefined, fields: readonly E[], limits: ExtractLimits, screen: WordScreen | undefined): PhaseSplit<E> | undefined {
  const type = contentType ?? 'text/plain'
  const media = mediaType(type)
  const rest = newCollected(limits, screen)
  const out: Array<{ c: Collected, exclusion: E }> = []
  const bodyFields = fields.filter((ex): ex is E & { field: { kind: 'body' } } => ex.field.kind === 'body')
  if (typeof body === 'object' && body !== null && !Buffer.isBuffer(body)) {
    let copy: unknown
    try {
      copy = structuredClone(body)
    } catch {
      return undefined
    }
    for (const ex of bodyFields) {
      const c = newCollected(limits, screen)
      takePath(copy, ex.field.path, 0, (v) => { collectObject(c, v, limits) })
      out.push({ c, exclusion: ex })
    }
    collectObject(rest, copy, limits)
    return { rest, fields: out }
  }
  if (!Buffer.isBuffer(body) && typeof body !== 'string') return undefined
  const json = isJson(media)
  const text = Buffer.isBuffer(body) ? bodyText(body, charsetOf(type, json), json) : body
  if (json) {
    let parsed: unknown
    try {
      parsed = sjson.parse(text, null, { protoAction: 'error', constructorAction: 'error' })
    } catch {
      return undefined
    }
    for (const ex of bodyFields) {
      const c = newCollected(limits, screen)
      takePath(parsed, ex.field.path, 0, (v) => { collectObject(c, v, limits) })
      out.push({ c, exclusion: ex })
    }
    collectObject(rest, parsed, limits)
    return { rest, fields: out }
  }
  if (media === 'application/x-www-form-urlencoded') {
    const names = new Map<string, string[]>()
    for (const ex of bodyFields) names.set(ex.field.name, [])
    const restText = splitForm(text, names)
    for (const ex of bodyFields) {
      const c = newCollected(limits, screen)
      const pairs = names.get(ex.field.name) as string[]
      if (pairs.length > 0) collectForm(c, pairs.join('&'), c.body)
      out.push({ c, exclusion: ex })
    }
    collectForm(rest, restText, rest.body)
    return { rest, fields: out }
  }
  if (media === 'multipart/form-data') {
    const names = new Map<string, Array<[string, string]>>()
    for (const ex of bodyFields) names.set(ex.field.name, [])
    const restText = splitMultipart(text, type, names)
    for (const ex of bodyFields) {
      const c = newCollected(limits, screen)
      for (const [content, partType] of names.get(ex.field.name) as Array<[string, string]>) {
        // A part is judged by its own type, but never as multipart again (as collectMultipart does).
        if (mediaType(partType) === 'multipart/form-data') c.addBody(content)
        else collectBody(c, content, partType, limits)
      }
      out.push({ c, exclusion: ex })
    }
    collectMultipart(rest, restText, type, limits)
    return { rest, fields: out }
  }
  return undefined
}

/** Levenshtein distance, for "did you mean" lists of rule ids. */
function distance (a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = cur
  }
  return prev[b.length] as number
}

/** Up to three known ids close to `id` (same prefix family first). */
export function closeIds (id: string, known: Iterable<string>): string[] {
  const scored: Array<[number, string]> = []
  for (const k of known) {
    const d = distance(id, k)
    if (d <= Math.max(2, Math.floor(id.length / 3))) scored.push([d, k])
  }
  return scored.sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1])).slice(0, 3).map(([, k]) => k)
}

/**
 * Problems of a route's `exclude` and `detect` (option paths under `prefix`): field syntax,
 * repeats and, given the loaded rule ids, unknown ids with the close ones.
 */
export function tuningProblems (policy: { readonly exclude?: ReadonlyArray<{ readonly rule: string, readonly field: string }>, readonly detect?: readonly string[] }, ruleIds: ReadonlySet<string> | undefined, prefix = 'config.inspect'): string[] {
  const problems: string[] = []
  const known = (id: string, at: string): void => {
    if (ruleIds === undefined || ruleIds.has(id)) return
    const close = closeIds(id, ruleIds)
    problems.push(`${at}: unknown rule id "${id}"${close.length > 0 ? ` (close: ${close.join(', ')})` : ''}`)
  }
  const seen = new Set<string>()
  ;(policy.exclude ?? []).forEach((ex, i) => {
    const at = `${prefix}.exclude.${i}`
    if (typeof ex !== 'object' || ex === null) return
    known(ex.rule, `${at}.rule`)
    const field = parseField(ex.field)
    if (typeof field === 'string') problems.push(`${at}.field: ${field}`)
    const key = `${ex.rule}\n${ex.field}`
    if (seen.has(key)) problems.push(`${at}: "${ex.rule}" on "${ex.field}" is listed twice`)
    seen.add(key)
  })
  ;(policy.detect ?? []).forEach((id, i) => { known(id, `${prefix}.detect.${i}`) })
  return problems
}

/** Rule ids written alone in `exclude` (a form this option no longer takes), with the way to write them. */
export function legacyExcludeProblems (policy: unknown, prefix: string): string[] {
  const exclude = (policy as { exclude?: unknown } | null | undefined)?.exclude
  if (!Array.isArray(exclude)) return []
  const problems: string[] = []
  exclude.forEach((item: unknown, i) => {
    if (typeof item === 'string') problems.push(`${prefix}.exclude.${i}: name the field: { rule: "${item}", field: "query.<name>" } (or field "*" for every field)`)
  })
  return problems
}
