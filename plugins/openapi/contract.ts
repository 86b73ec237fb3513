/**
 * An OpenAPI document loaded, validated and compiled into what the gateway checks per request.
 *
 * Loading: @apidevtools/swagger-parser bundles the document (every `$ref` to another file inlined
 * once, the rest internal pointers; HTTP references are not followed) and validates it against the
 * OpenAPI 3.0 / 3.1 schema. Compiling: two views of the document are handed to Ajv whole (requests:
 * `readOnly` properties refused and not required; responses: the same for `writeOnly`), 3.0's
 * draft-04-isms (`nullable`, boolean `exclusiveMinimum`) rewritten (`nullable` in 3.1 documents
 * too, where converted documents keep it); every operation gets one validator for its parameters
 * and one per declared JSON, urlencoded or multipart body, each a `$ref` into the view, so
 * recursive schemas stay references. Ajv draft-07 for 3.0, draft 2020-12 for 3.1.
 */
import SwaggerParser from '@apidevtools/swagger-parser'
import ajvModule, { _, str, type CodeKeywordDefinition, type ErrorObject, type ValidateFunction } from 'ajv'
import type { DataValidateFunction } from 'ajv/dist/types/index.js'
import ajvUtil from 'ajv/dist/compile/util.js'
import ucs2lengthModule from 'ajv/dist/runtime/ucs2length.js'
import ajv2020Module from 'ajv/dist/2020.js'
import ajvFormatsModule from 'ajv-formats'
import { isDate, isDateTime, isTime } from './formats.js'

type Json = Record<string, unknown>
// CommonJS modules: their classes are on `default`.
const AjvDraft7 = ajvModule.default
const Ajv2020 = ajv2020Module.default
const addFormats = ajvFormatsModule.default
type AjvInstance = InstanceType<typeof AjvDraft7>

/** Why a document was refused: the file, the JSON pointer inside it, and the reason. */
export class ContractLoadError extends Error {
  constructor (readonly file: string, readonly pointer: string, readonly reason: string) {
    super(`${file}#${pointer}: ${reason}`)
    this.name = 'ContractLoadError'
  }
}

export type ParamIn = 'path' | 'query' | 'header' | 'cookie'
export type Shape = 'primitive' | 'array' | 'object'

/** One declared parameter, ready for parsing. */
export interface Param {
  readonly name: string
  /** The key in the validated object (header names lower case). */
  readonly key: string
  readonly in: ParamIn
  readonly required: boolean
  readonly style: string
  readonly explode: boolean
  readonly shape: Shape
  /** `content: { 'application/json': … }` parameters: the value is JSON. */
  readonly json: boolean
  /** Properties of an object parameter (form-exploded objects read them as query keys). */
  readonly properties: readonly string[]
}

/**
 * How a multipart/form-data body's parts map to its schema's properties (from the schema and the
 * media type's `encoding`).
 */
export interface MultipartSpec {
  /**
   * Properties whose parts hold JSON (object schemas, or an `encoding` contentType that is JSON),
   * each with a validator of its schema that does not coerce types (the body's own does, for
   * the text parts), when the property is declared.
   */
  readonly json: ReadonlyMap<string, ValidateFunction | undefined>
  /** Properties read as files (`format: binary` / `byte`, `contentMediaType`, `contentEncoding`). */
  readonly files: ReadonlySet<string>
  /** `encoding.<name>.contentType`: the media ranges (`image/png`, `image/*`) a part may declare. */
  readonly types: ReadonlyMap<string, readonly string[]>
}

/** What one media type of a body (request or response) is checked with. */
export interface MediaCheck {
  /** `xml`: declared and accepted, never validated (Ajv validates JSON values, not XML). */
  readonly kind: 'json' | 'form' | 'multipart' | 'xml' | 'other'
  readonly validate: ValidateFunction | undefined
  readonly multipart?: MultipartSpec
  /**
   * Request bodies (JSON, form, multipart): whether the schema declares a top-level `_method`
   * member (otherwise one in the body is a method override, refused).
   */
  readonly declaresMethodField?: boolean
}

export interface SecurityScheme {
  readonly type: string
  readonly scheme?: string
}

/**
 * What a request's query string is read against, besides the declared values: the names that
 * are declared (parameters, exploded objects' properties), the `deepObject` prefixes
 * (`filter[`), and each declared name's folded spelling (see `foldQueryName`), so that a name a
 * backend would read as a declared one (`Channel`, `channel[]`, `dry.run` for `dry_run`) is
 * refused rather than passed unread.
 */
export interface QueryNames {
  /** Names that hold one value (not exploded arrays, not `deepObject`): given twice, refused. */
  readonly single: readonly string[]
  readonly exact: ReadonlySet<string>
  readonly deep: readonly string[]
  readonly folded: ReadonlyMap<string, string>
}

export interface Operation {
  readonly method: string
  readonly template: string
  /** `GET /pets/{id}`: a bounded label (from the document, never from traffic). */
  readonly label: string
  readonly params: readonly Param[]
  /** The parameter groups (`path`, `query`…) the validator reads: each is given an object. */
  readonly paramGroups: readonly ParamIn[]
  /** Declared query names; undefined when the operation declares no query parameter. */
  readonly queryNames: QueryNames | undefined
  /** Whether a header parameter is declared (repeated header lines are then looked for). */
  readonly hasHeaderParams: boolean
  /** Every parameter is in the URL (path and query): its verdict depends on nothing else. */
  readonly urlParamsOnly: boolean
  /** A `_method` query parameter is declared (otherwise one in the query is a method override, refused). */
  readonly declaresMethodParam: boolean
  readonly validateParams: ValidateFunction | undefined
  readonly body: { readonly required: boolean, readonly media: ReadonlyMap<string, MediaCheck> } | undefined
  /** Alternatives (OR) of scheme sets (AND) with scopes; empty = no requirement. */
  readonly security: ReadonlyArray<ReadonlyArray<{ readonly scheme: SecurityScheme | undefined, readonly scopes: readonly string[] }>>
  /** Status key (`200`, `4XX`, `default`) -> media type -> check. */
  readonly responses: ReadonlyMap<string, ReadonlyMap<string, MediaCheck>>
}

interface PathEntry {
  readonly template: string
  readonly pattern: RegExp | undefined
  readonly names: readonly string[]
  readonly literals: number
  /** Lower-case method -> operation. */
  readonly ops: Map<string, Operation>
}

/** A path entry ready for requests: its answers per request method (upper case, as Node gives it). */
interface Entry extends PathEntry {
  /** Exact paths: the whole answer, made once; templates: the operation. */
  readonly byMethod: Map<string, Operation>
  readonly exactAnswers: Map<string, Match>
  readonly methodAnswer: Match
}

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({})
const UNKNOWN: Match = Object.freeze({ kind: 'unknown' })

/** Where a request path lands in the document. */
export type Match =
  | { readonly kind: 'operation', readonly op: Operation, readonly pathParams: Readonly<Record<string, string>> }
  | { readonly kind: 'method', readonly allow: string }
  | { readonly kind: 'unknown' }

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const

export class Contract {
  private readonly exact = new Map<string, Entry>()
  private readonly templated: Entry[] = []
  readonly operations: Operation[] = []

  constructor (readonly file: string, readonly version: string, private readonly bases: readonly string[]) {}

  add (path: PathEntry): void {
    const byMethod = new Map<string, Operation>()
    const exactAnswers = new Map<string, Match>()
    for (const [method, op] of path.ops) {
      byMethod.set(method.toUpperCase(), op)
      exactAnswers.set(method.toUpperCase(), Object.freeze({ kind: 'operation', op, pathParams: NO_PARAMS }))
    }
    // HEAD is answered as GET when the document does not declare it.
    const get = path.ops.get('get')
    if (get !== undefined && !byMethod.has('HEAD')) {
      byMethod.set('HEAD', get)
      exactAnswers.set('HEAD', exactAnswers.get('GET') as Match)
    }
    const methodAnswer: Match = Object.freeze({ kind: 'method', allow: [...path.ops.keys()].map((k) => k.toUpperCase()).join(', ') })
    const entry: Entry = { ...path, byMethod, exactAnswers, methodAnswer }
    if (entry.pattern === undefined) this.exact.set(entry.template, entry)
    else this.templated.push(entry)
    for (const op of entry.ops.values()) this.operations.push(op)
  }

  seal (): void {
    // Concrete paths first, then templates with more literal segments (OpenAPI 3: "Path Templating Matching").
    this.templated.sort((a, b) => b.literals - a.literals)
  }

  /**
   * The operation for a path as the upstream sees it (percent-encoded, no query) and a method
   * (upper case, as Node gives it). Exact paths answer without allocating.
   */
  match (upstreamPath: string, method: string): Match {
    for (const base of this.bases) {
      let path: string
      if (base === '') path = upstreamPath
      else if (upstreamPath === base) path = '/'
      else if (upstreamPath.startsWith(base) && upstreamPath.charCodeAt(base.length) === 47) path = upstreamPath.slice(base.length)
      else continue
      const exact = this.exact.get(path)
      if (exact !== undefined) return exact.exactAnswers.get(method) ?? exact.methodAnswer
      for (const entry of this.templated) {
        const m = (entry.pattern as RegExp).exec(path)
        if (m === null) continue
        const op = entry.byMethod.get(method)
        if (op === undefined) return entry.methodAnswer
        const pathParams: Record<string, string> = {}
        for (let i = 0; i < entry.names.length; i++) pathParams[entry.names[i] as string] = m[i + 1] as string
        return { kind: 'operation', op, pathParams }
      }
    }
    return UNKNOWN
  }
}

/**
 * A query name as backends may read it: lower case (ASP.NET binds names case-insensitively), cut
 * before `[` (PHP, Rails and qs read `name[]` and `name[x]` as `name`), `.` and spaces as `_`
 * (PHP's `dry.run` is `dry_run`).
 */
export function foldQueryName (name: string): string {
  const bracket = name.indexOf('[')
  const head = bracket === -1 ? name : name.slice(0, bracket)
  return head.toLowerCase().replace(/[. ]/g, '_')
}

function escapePointer (s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1')
}

function unescapePointer (s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~')
}

function at (doc: Json, pointer: string): unknown {
  let node: unknown = doc
  for (const part of pointer.split('/').slice(1)) {
    if (node === null || typeof node !== 'object') return undefined
    node = (node as Json)[unescapePointer(decodeURIComponent(part))]
  }
  return node
}

/** Follows internal `$ref`s: the object and its pointer. */
function deref (doc: Json, node: unknown, pointer: string): { node: Json, pointer: string } {
  let n = node
  let p = pointer
  for (let i = 0; i < 32 && n !== null && typeof n === 'object' && typeof (n as Json).$ref === 'string'; i++) {
    const ref = (n as Json).$ref as string
    if (!ref.startsWith('#')) throw new ContractLoadError('', p, `unresolved reference ${ref}`)
    p = ref.slice(1)
    n = at(doc, p)
  }
  if (n === null || typeof n !== 'object') throw new ContractLoadError('', p, 'reference to nothing')
  return { node: n as Json, pointer: p }
}

/**
 * A view of the document for Ajv: 3.0 keywords rewritten, and properties marked `hidden`
 * (`readOnly` in requests, `writeOnly` in responses) refused and taken out of `required`.
 */
function view (node: unknown, v30: boolean, hidden: 'readOnly' | 'writeOnly'): unknown {
  if (Array.isArray(node)) return node.map((x) => view(x, v30, hidden))
  if (node === null || typeof node !== 'object') return node
  const src = node as Json
  const out: Json = {}
  for (const [k, v] of Object.entries(src)) out[k] = view(v, v30, hidden)
  if (v30) {
    for (const [flag, bound] of [['exclusiveMinimum', 'minimum'], ['exclusiveMaximum', 'maximum']] as const) {
      if (typeof out[flag] === 'boolean') {
        if (out[flag] === true && typeof out[bound] === 'number') {
          out[flag] = out[bound]
          delete out[bound]
        } else {
          delete out[flag]
        }
      }
    }
  }
  // `nullable` is 3.0's; 3.1 documents converted from 3.0 still carry it, meaning the same.
  if (out.nullable === true) {
    delete out.nullable
    if (typeof out.type === 'string') out.type = [out.type, 'null']
    else if (Array.isArray(out.type) && !out.type.includes('null')) out.type = [...out.type, 'null']
    if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null]
    if (out.type === undefined) return { anyOf: [out, { type: 'null' }] }
  } else if (out.nullable === false) {
    delete out.nullable
  }
  const props = src.properties
  if (props !== null && typeof props === 'object' && !Array.isArray(props)) {
    const hiddenNames: string[] = []
    for (const [name, schema] of Object.entries(props as Json)) {
      if (schema !== null && typeof schema === 'object' && (schema as Json)[hidden] === true) hiddenNames.push(name)
    }
    if (hiddenNames.length > 0) {
      const p = out.properties as Json
      for (const name of hiddenNames) p[name] = { portcullisHidden: hidden }
      if (Array.isArray(out.required)) out.required = (out.required as unknown[]).filter((r) => typeof r !== 'string' || !hiddenNames.includes(r))
    }
    // Requests: an object that admits other properties refuses those that only differ from a
    // declared one in case (see `aliasCheck`).
    const isObject = src.type === 'object' || (Array.isArray(src.type) && src.type.includes('object'))
    if (hidden === 'readOnly' && isObject && src.additionalProperties !== false && Object.keys(props).length > 0) out.portcullisAlias = Object.keys(props)
  }
  return out
}

/** A JSON member name as case-insensitive backends match it (Go's encoding/json, ASP.NET): `ſku` and `SKU` are `sku`. */
export function foldJsonKey (key: string): string {
  return key.toUpperCase().toLowerCase()
}

/**
 * The `portcullisAlias` keyword: an object member that is not declared but folds to a declared
 * name (`Quantity`, `QUANTITY` beside `quantity`). Go's encoding/json and ASP.NET bind such a
 * member to the declared field, so a value the schema never judged would replace the judged one.
 */
function aliasCheck (names: readonly string[]): DataValidateFunction {
  const exact = new Set(names)
  const folded = new Map(names.map((n) => [foldJsonKey(n), n]))
  const check: DataValidateFunction = (data: unknown): boolean => {
    for (const key in data as Record<string, unknown>) {
      if (exact.has(key)) continue
      const declared = folded.get(foldJsonKey(key))
      if (declared !== undefined) {
        // Ajv sets the member's instancePath (the object's) when it is left out.
        check.errors = [{ keyword: 'portcullisAlias', params: { property: declared }, message: 'ambiguous' }]
        return false
      }
    }
    return true
  }
  return check
}

const ucs2length = ucs2lengthModule.default

/**
 * `maxLength` / `minLength` as Ajv's own (characters are code points, so the same verdicts and
 * error lines), without counting code points when the UTF-16 length decides: a string has at
 * most `length` and at least `length / 2` code points. Ajv counts every string's code points
 * one by one, which was more than half of validating a typical JSON body.
 */
const limitLength: CodeKeywordDefinition = {
  keyword: ['maxLength', 'minLength'],
  type: 'string',
  schemaType: 'number',
  error: {
    message: ({ keyword, schemaCode }) => str`must NOT have ${keyword === 'maxLength' ? 'more' : 'fewer'} than ${schemaCode} characters`,
    params: ({ schemaCode }) => _`{limit: ${schemaCode}}`
  },
  code (cxt) {
    const { keyword, data, schemaCode, gen } = cxt
    const count = _`${ajvUtil.useFunc(gen, ucs2length)}(${data})`
    cxt.fail(keyword === 'maxLength'
      ? _`${data}.length > ${schemaCode} && (${data}.length > 2 * ${schemaCode} || ${count} > ${schemaCode})`
      : _`${data}.length < 2 * ${schemaCode} && (${data}.length < ${schemaCode} || ${count} < ${schemaCode})`)
  }
}

function newAjv (v31: boolean, coerce: boolean): AjvInstance {
  const Ctor = (v31 ? Ajv2020 : AjvDraft7) as unknown as typeof AjvDraft7
  const ajv = new Ctor({
    strict: false,
    allErrors: true,
    validateSchema: false,
    logger: false,
    ...(coerce ? { coerceTypes: 'array' as const } : {})
  })
  addFormats(ajv)
  // The same verdicts as ajv-formats' full mode, without regular expressions (formats.ts).
  ajv.addFormat('date', isDate)
  ajv.addFormat('time', isTime)
  ajv.addFormat('date-time', isDateTime)
  ajv.removeKeyword('maxLength')
  ajv.removeKeyword('minLength')
  ajv.addKeyword(limitLength)
  // OpenAPI's own formats (3.0 "Data Types"): widths checked, the rest documentary.
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -2147483648 && n <= 2147483647 })
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) })
  ajv.addFormat('float', { type: 'number', validate: () => true })
  ajv.addFormat('double', { type: 'number', validate: () => true })
  ajv.addFormat('byte', /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/)
  for (const f of ['binary', 'password']) ajv.addFormat(f, () => true)
  ajv.addKeyword({ keyword: 'portcullisHidden', schemaType: 'string', validate: () => false, errors: false })
  ajv.addKeyword({ keyword: 'portcullisAlias', type: 'object', schemaType: 'array', errors: true, compile: (names: string[]) => aliasCheck(names) })
  return ajv
}

function mediaKind (type: string): MediaCheck['kind'] {
  if (type === 'application/json' || type.endsWith('+json')) return 'json'
  if (type === 'application/x-www-form-urlencoded') return 'form'
  if (type === 'multipart/form-data') return 'multipart'
  if (type === 'application/xml' || type === 'text/xml' || type.endsWith('+xml')) return 'xml'
  return 'other'
}

function typesOf (s: Json): unknown[] {
  return Array.isArray(s.type) ? s.type as unknown[] : s.type === undefined ? [] : [s.type]
}

/** A property's schema holds a file: a binary string (3.0) or content described as media (3.1). */
function isFileSchema (doc: Json, schema: unknown, pointer: string, depth = 0): boolean {
  if (schema === null || typeof schema !== 'object') return false
  const s = deref(doc, schema, pointer).node
  if (s.format === 'binary' || s.format === 'byte' || s.contentMediaType !== undefined || s.contentEncoding !== undefined) return true
  if (depth === 0 && typesOf(s).includes('array') && s.items !== undefined) return isFileSchema(doc, s.items, `${pointer}/items`, 1)
  return false
}

/**
 * Which properties of a multipart/form-data schema are JSON parts and which are files, and the
 * content types `encoding` allows per part. Properties are read from the schema (after `$ref`s)
 * and the members of its `allOf`.
 */
function multipartSpec (doc: Json, schema: unknown, schemaPointer: string, encoding: unknown, strict: (pointer: string) => ValidateFunction): MultipartSpec {
  const json = new Map<string, ValidateFunction | undefined>()
  const declared = new Map<string, string>()
  const files = new Set<string>()
  const types = new Map<string, string[]>()
  const collect = (node: unknown, pointer: string, depth: number): void => {
    if (node === null || typeof node !== 'object' || depth > 8) return
    const { node: s, pointer: at } = deref(doc, node, pointer)
    const props = s.properties
    if (props !== null && typeof props === 'object') {
      for (const [name, prop] of Object.entries(props as Json)) {
        const propAt = `${at}/properties/${escapePointer(name)}`
        declared.set(name, propAt)
        if (isFileSchema(doc, prop, propAt)) {
          files.add(name)
          continue
        }
        if (prop === null || typeof prop !== 'object') continue
        const p = deref(doc, prop, propAt).node
        const t = typesOf(p)
        if (t.includes('object') || (t.length === 0 && p.properties !== undefined)) json.set(name, strict(propAt))
      }
    }
    if (Array.isArray(s.allOf)) s.allOf.forEach((member, i) => { collect(member, `${at}/allOf/${i}`, depth + 1) })
  }
  collect(schema, schemaPointer, 0)
  if (encoding !== null && typeof encoding === 'object') {
    for (const [name, e] of Object.entries(encoding as Json)) {
      const contentType = (e as Json | null)?.contentType
      if (typeof contentType !== 'string') continue
      const ranges = contentType.split(',').map((r) => r.split(';')[0]?.trim().toLowerCase() ?? '').filter((r) => r !== '')
      if (ranges.length === 0) continue
      types.set(name, ranges)
      if (ranges.every((r) => mediaKind(r) === 'json') && !json.has(name)) {
        const at = declared.get(name)
        json.set(name, at === undefined ? undefined : strict(at))
      }
    }
  }
  return { json, files, types }
}

function shapeOf (doc: Json, schema: unknown, pointer: string): { shape: Shape, properties: string[] } {
  if (schema === undefined) return { shape: 'primitive', properties: [] }
  const s = deref(doc, schema, pointer).node
  const type = Array.isArray(s.type) ? (s.type as unknown[]).find((t) => t !== 'null') : s.type
  if (type === 'array') return { shape: 'array', properties: [] }
  if (type === 'object' || (type === undefined && s.properties !== undefined)) {
    return { shape: 'object', properties: Object.keys((s.properties as Json | undefined) ?? {}) }
  }
  return { shape: 'primitive', properties: [] }
}

/** Base paths of `servers` (variables at their defaults); '' when the document has none. */
function basePaths (doc: Json): string[] {
  const servers = Array.isArray(doc.servers) && doc.servers.length > 0 ? doc.servers as Json[] : [{ url: '/' }]
  const bases = new Set<string>()
  for (const server of servers) {
    let url = String(server.url ?? '/')
    const vars = (server.variables ?? {}) as Record<string, { default?: unknown }>
    url = url.replace(/\{([^}]+)\}/g, (_m, name: string) => String(vars[name]?.default ?? ''))
    let path: string
    try {
      path = new URL(url, 'http://relative.invalid').pathname
    } catch {
      path = '/'
    }
    bases.add(path.replace(/\/+$/, ''))
  }
  // Longer bases first: `/v2/admin` before `/v2`.
  return [...bases].sort((a, b) => b.length - a.length)
}

function templatePattern (template: string): { pattern: RegExp | undefined, names: string[], literals: number } {
  const names: string[] = []
  let literals = 0
  const source = template.split('/').map((segment) => {
    if (!segment.includes('{')) {
      literals++
      return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    }
    return segment.split(/(\{[^}]+\})/).map((part) => {
      const m = /^\{([^}]+)\}$/.exec(part)
      if (m === null) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      names.push(m[1] as string)
      return '([^/]+)'
    }).join('')
  }).join('/')
  return { pattern: names.length === 0 ? undefined : new RegExp(`^${source}$`), names, literals }
}

/** Which HTTP-level schemes the gateway can vouch for: see `securityMet` in index.ts. */
function schemesOf (doc: Json): Record<string, SecurityScheme> {
  const components = (doc.components ?? {}) as Json
  const raw = (components.securitySchemes ?? {}) as Record<string, unknown>
  const out: Record<string, SecurityScheme> = {}
  for (const [name, value] of Object.entries(raw)) {
    const s = deref(doc, value, `/components/securitySchemes/${escapePointer(name)}`).node
    out[name] = { type: String(s.type), ...(typeof s.scheme === 'string' ? { scheme: s.scheme.toLowerCase() } : {}) }
  }
  return out
}

/**
 * The field frameworks read as a method override on a POST (Rails, Laravel and Symfony, Spring's
 * HiddenHttpMethodFilter: `_method=DELETE` in the query or the body), folded as PHP reads names.
 */
export const METHOD_FIELD = '_method'

/** The top-level property names a schema declares (through `$ref`s, `allOf`, `anyOf`, `oneOf`). */
function topLevelNames (doc: Json, schema: unknown, pointer: string, depth = 0): string[] {
  if (schema === null || typeof schema !== 'object' || depth > 8) return []
  const { node: s, pointer: at } = deref(doc, schema, pointer)
  const names = s.properties !== null && typeof s.properties === 'object' ? Object.keys(s.properties as Json) : []
  for (const k of ['allOf', 'anyOf', 'oneOf'] as const) {
    const list = s[k]
    if (Array.isArray(list)) list.forEach((member, i) => { names.push(...topLevelNames(doc, member, `${at}/${k}/${i}`, depth + 1)) })
  }
  return names
}

/** The query names an operation declares (see `QueryNames`); undefined when it declares none. */
function queryNamesOf (params: readonly Param[]): QueryNames | undefined {
  const query = params.filter((p) => p.in === 'query')
  if (query.length === 0) return undefined
  const single: string[] = []
  const exact = new Set<string>()
  const deep: string[] = []
  const folded = new Map<string, string>()
  for (const p of query) {
    if (p.style === 'deepObject') deep.push(`${p.name}[`)
    // An exploded object's properties are sent as names of their own.
    const names = p.shape === 'object' && p.explode && !p.json && p.style !== 'deepObject' ? p.properties : [p.name]
    const repeatable = p.style === 'deepObject' || (p.shape === 'array' && p.explode && !p.json)
    for (const name of names) {
      if (!repeatable) single.push(name)
      exact.add(name)
      if (!folded.has(foldQueryName(name))) folded.set(foldQueryName(name), name)
    }
  }
  return { single, exact, deep, folded }
}

/** Loads, validates and compiles one document. Throws ContractLoadError with a pointer. */
export async function loadContract (file: string): Promise<Contract> {
  let doc: Json
  try {
    doc = await SwaggerParser.bundle(file, { resolve: { http: false } } as never) as unknown as Json
  } catch (err) {
    throw new ContractLoadError(file, '', (err as Error).message.split('\n')[0] ?? 'cannot be read')
  }
  if (typeof doc.openapi !== 'string' || !/^3\.[01]\./.test(doc.openapi)) {
    throw new ContractLoadError(file, '/openapi', 'must be an OpenAPI 3.0 or 3.1 document (Swagger 2.0 is not supported)')
  }
  try {
    await SwaggerParser.validate(structuredClone(doc) as never, { resolve: { http: false } } as never)
  } catch (err) {
    const details = (err as { details?: ErrorObject[] }).details
    const first = details?.[0]
    if (first !== undefined) throw new ContractLoadError(file, first.instancePath === '' ? '/' : first.instancePath, first.message ?? 'invalid')
    throw new ContractLoadError(file, '', (err as Error).message.split('\n')[0] ?? 'invalid')
  }
  try {
    return compile(file, doc)
  } catch (err) {
    if (err instanceof ContractLoadError) throw new ContractLoadError(file, err.pointer, err.reason)
    throw new ContractLoadError(file, '', (err as Error).message)
  }
}

function compile (file: string, doc: Json): Contract {
  const version = doc.openapi as string
  const v31 = version.startsWith('3.1')
  const bodies = newAjv(v31, false)
  const forms = newAjv(v31, true)
  const requestView = view(doc, !v31, 'readOnly') as Json
  bodies.addSchema(requestView, 'req')
  bodies.addSchema(view(doc, !v31, 'writeOnly') as Json, 'res')
  forms.addSchema(structuredClone(requestView), 'req')
  const schemes = schemesOf(doc)
  const rootSecurity = doc.security
  const contract = new Contract(file, version, basePaths(doc))

  function compileRef (ajv: AjvInstance, which: 'req' | 'res', pointer: string): ValidateFunction {
    try {
      // Through the view's own root: the schemas it references compile once for every operation.
      const validate = ajv.getSchema(`${which}#${pointer}`)
      if (validate === undefined) throw new ContractLoadError(file, pointer, 'schema not found')
      return validate
    } catch (err) {
      // Ajv compiles a chain of distinct referenced schemas recursively: hundreds deep exhausts the stack.
      if (err instanceof RangeError) throw new ContractLoadError(file, pointer, 'schema does not compile: its chain of $refs to distinct schemas is too deep')
      throw new ContractLoadError(file, pointer, `schema does not compile: ${(err as Error).message}`)
    }
  }

  function mediaChecks (content: unknown, pointer: string, which: 'req' | 'res'): Map<string, MediaCheck> {
    const out = new Map<string, MediaCheck>()
    if (content === null || typeof content !== 'object') return out
    for (const [type, media] of Object.entries(content as Json)) {
      const kind = mediaKind(type.toLowerCase().split(';')[0]?.trim() ?? '')
      const hasSchema = media !== null && typeof media === 'object' && (media as Json).schema !== undefined
      const schemaPointer = `${pointer}/${escapePointer(type)}/schema`
      const key = type.toLowerCase().split(';')[0]?.trim() ?? type
      if (which === 'res') {
        // Response schemas compile when a route first validates a response (most routes never do).
        let compiled: ValidateFunction | null | undefined
        out.set(key, {
          kind,
          get validate (): ValidateFunction | undefined {
            if (compiled === undefined) {
              compiled = null
              // Thrown once (the caller logs it); afterwards the response passes unvalidated.
              if (hasSchema && kind === 'json') compiled = compileRef(bodies, 'res', schemaPointer)
            }
            return compiled ?? undefined
          }
        })
        continue
      }
      let validate: ValidateFunction | undefined
      let multipart: MultipartSpec | undefined
      if (hasSchema && kind === 'json') {
        validate = compileRef(bodies, which, schemaPointer)
      } else if (hasSchema && kind === 'form') {
        validate = compileRef(forms, 'req', schemaPointer)
      } else if (hasSchema && kind === 'multipart') {
        // Parts are text (coerced as form fields are), JSON or files: see multipart.ts.
        validate = compileRef(forms, 'req', schemaPointer)
        multipart = multipartSpec(doc, (media as Json).schema, schemaPointer, (media as Json).encoding, (at) => compileRef(bodies, 'req', at))
      }
      const declaresMethodField = hasSchema && topLevelNames(doc, (media as Json).schema, schemaPointer).some((n) => foldQueryName(n) === METHOD_FIELD)
      if (multipart !== undefined) {
        out.set(key, { kind, validate, multipart, declaresMethodField })
        continue
      }
      out.set(key, { kind, validate, declaresMethodField })
    }
    return out
  }

  const paths = (doc.paths ?? {}) as Json
  for (const [template, rawItem] of Object.entries(paths)) {
    const itemPointer = `/paths/${escapePointer(template)}`
    const { node: item, pointer: itemAt } = deref(doc, rawItem, itemPointer)
    const { pattern, names, literals } = templatePattern(template)
    const ops = new Map<string, Operation>()
    for (const method of METHODS) {
      const rawOp = item[method]
      if (rawOp === undefined) continue
      const opPointer = `${itemAt}/${method}`
      const op = rawOp as Json
      // Operation parameters override path-item ones with the same name and location.
      const declared = new Map<string, { p: Json, at: string }>()
      const lists: Array<[unknown, string]> = [[item.parameters, `${itemAt}/parameters`], [op.parameters, `${opPointer}/parameters`]]
      for (const [list, listAt] of lists) {
        if (!Array.isArray(list)) continue
        list.forEach((raw, i) => {
          const { node: p, pointer } = deref(doc, raw, `${listAt}/${i}`)
          declared.set(`${String(p.in)}:${String(p.name)}`, { p, at: pointer })
        })
      }
      const params: Param[] = []
      const groups: Record<ParamIn, { properties: Json, required: string[] }> = {
        path: { properties: {}, required: [] }, query: { properties: {}, required: [] }, header: { properties: {}, required: [] }, cookie: { properties: {}, required: [] }
      }
      for (const { p, at: pAt } of declared.values()) {
        const where = p.in as ParamIn
        const name = String(p.name)
        if (where === 'header' && ['accept', 'content-type', 'authorization'].includes(name.toLowerCase())) continue
        const key = where === 'header' ? name.toLowerCase() : name
        let schemaPointer = `${pAt}/schema`
        let json = false
        if (p.schema === undefined && p.content !== null && typeof p.content === 'object') {
          const type = Object.keys(p.content as Json)[0] as string
          schemaPointer = `${pAt}/content/${escapePointer(type)}/schema`
          json = mediaKind(type.toLowerCase()) === 'json'
        }
        const schema = at(doc, schemaPointer)
        const { shape, properties } = shapeOf(doc, schema, schemaPointer)
        const defaultStyle = where === 'query' || where === 'cookie' ? 'form' : 'simple'
        const style = typeof p.style === 'string' ? p.style : defaultStyle
        params.push({
          name,
          key,
          in: where,
          required: p.required === true || where === 'path',
          style,
          explode: typeof p.explode === 'boolean' ? p.explode : style === 'form',
          shape,
          json,
          properties
        })
        if (schema !== undefined) groups[where].properties[key] = { $ref: `req#${schemaPointer}` }
        if (p.required === true || where === 'path') groups[where].required.push(key)
      }
      let validateParams: ValidateFunction | undefined
      const paramGroups: ParamIn[] = []
      if (params.length > 0) {
        const properties: Json = {}
        for (const [where, g] of Object.entries(groups)) {
          if (Object.keys(g.properties).length > 0 || g.required.length > 0) {
            properties[where] = { type: 'object', properties: g.properties, required: g.required }
            paramGroups.push(where as ParamIn)
          }
        }
        try {
          validateParams = forms.compile({ type: 'object', properties })
        } catch (err) {
          throw new ContractLoadError(file, `${opPointer}/parameters`, `schema does not compile: ${(err as Error).message}`)
        }
      }
      let body: Operation['body']
      if (op.requestBody !== undefined) {
        const { node: rb, pointer: rbAt } = deref(doc, op.requestBody, `${opPointer}/requestBody`)
        body = { required: rb.required === true, media: mediaChecks(rb.content, `${rbAt}/content`, 'req') }
      }
      const responses = new Map<string, Map<string, MediaCheck>>()
      for (const [status, raw] of Object.entries((op.responses ?? {}) as Json)) {
        const { node: r, pointer: rAt } = deref(doc, raw, `${opPointer}/responses/${escapePointer(status)}`)
        responses.set(status.toUpperCase(), mediaChecks(r.content, `${rAt}/content`, 'res'))
      }
      const requirements = (op.security ?? rootSecurity ?? []) as Array<Record<string, string[]>>
      const security = requirements.map((req) => Object.entries(req).map(([name, scopes]) => {
        const scheme = schemes[name]
        if (scheme === undefined) throw new ContractLoadError(file, `${opPointer}/security`, `security scheme "${name}" is not declared in components.securitySchemes`)
        return { scheme, scopes: Array.isArray(scopes) ? scopes.map(String) : [] }
      }))
      ops.set(method, {
        method: method.toUpperCase(),
        template,
        label: `${method.toUpperCase()} ${template}`,
        params,
        paramGroups,
        queryNames: queryNamesOf(params),
        hasHeaderParams: params.some((p) => p.in === 'header'),
        urlParamsOnly: params.every((p) => p.in === 'path' || p.in === 'query'),
        declaresMethodParam: params.some((p) => p.in === 'query' && foldQueryName(p.name) === METHOD_FIELD),
        validateParams,
        body,
        security,
        responses
      })
    }
    contract.add({ template, pattern, names, literals, ops })
  }
  contract.seal()
  return contract
}

const cache = new Map<string, Promise<Contract>>()

/** One load per document file per process (several routes may share a document). */
export function contractFor (file: string): Promise<Contract> {
  let p = cache.get(file)
  if (p === undefined) {
    p = loadContract(file)
    cache.set(file, p)
    // A failed load is not kept: a corrected file is read again by the next gateway.
    p.catch(() => { cache.delete(file) })
  }
  return p
}
