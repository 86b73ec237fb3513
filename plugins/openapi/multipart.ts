/**
 * multipart/form-data request bodies read for the contract. @fastify/busboy parses the buffered
 * body (RFC 7578: part headers, the `name` and `filename` parameters, RFC 2231 values, charsets);
 * the parts become the object the operation's schema judges, as a form body does:
 *   - a text part is a string (Ajv coerces it to the declared type); a name given several times
 *     is an array;
 *   - a part of a JSON property (an object schema, or an `encoding` contentType that is JSON) is
 *     parsed as JSON (`/body/<name>: json` when it is not);
 *   - a file (a part with a filename, `application/octet-stream`, or a property whose schema is a
 *     file: `format: binary`, `contentMediaType`...) is its bytes as a string of as many
 *     characters, so `required`, `maxLength` and `additionalProperties` apply to files too;
 *   - where `encoding` names a contentType, each part of that name must declare one of its media
 *     ranges (`/body/<name>: contentType`).
 * Bounds: the body is at most BODY_LIMIT (buffered by the proxy), at most MAX_MULTIPART_PARTS
 * parts, each part's header block at most MAX_PART_HEADER_BYTES. A body busboy would read
 * otherwise than it is written (no boundary, no closing delimiter, a part without a form-data
 * disposition and a name, a header block past the bound) is malformed: `/body: multipart`,
 * refused whole, never half judged. Parts coded with a Content-Transfer-Encoding (RFC 7578
 * deprecates it) are refused: `/body: encoding`. The upstream gets the original bytes.
 */
import { Busboy, type BusboyInstance } from '@fastify/busboy'
import sjson from 'secure-json-parse'
import type { MultipartSpec } from './contract.js'

/** Parts in one body. */
export const MAX_MULTIPART_PARTS = 1000
/** Bytes of one part's header block (from its delimiter line to the blank line). */
export const MAX_PART_HEADER_BYTES = 8 * 1024

/** The object the schema judges, or why the body cannot be judged (pointer: rule lines). */
export interface MultipartResult {
  readonly data: Record<string, unknown> | undefined
  readonly problems: readonly string[]
  /** The JSON parts, parsed, by name (validated without type coercion before `data` is). */
  readonly json: ReadonlyArray<readonly [string, unknown]>
}

interface Part {
  readonly name: string
  readonly type: string
  readonly text: string | undefined
  readonly chunks: Buffer[]
}

const BOUNDARY = /;\s*boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i
const IDENTITY_CODING = /^(?:7bit|8bit|binary)$/i
const CRLFCRLF = Buffer.from('\r\n\r\n')
const MALFORMED: MultipartResult = { data: undefined, problems: ['/body: multipart'], json: [] }

function escapePointer (s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1')
}

/**
 * The parts the body declares, counted on its bytes as busboy's delimiter search sees them
 * (every `CRLF--boundary`, the body's start counting as a CRLF, up to the closing one): -1 when
 * there is no closing delimiter or a header block is past the bound.
 */
function countParts (body: Buffer, boundary: string): number {
  const delimiter = Buffer.from(`\r\n--${boundary}`)
  let at = body.subarray(0, delimiter.length - 2).equals(delimiter.subarray(2)) ? -2 : body.indexOf(delimiter)
  let parts = 0
  while (at !== -1) {
    const end = at + delimiter.length
    if (body[end] === 45 && body[end + 1] === 45) return parts
    if (++parts > MAX_MULTIPART_PARTS) return parts
    const blank = body.indexOf(CRLFCRLF, end)
    if (blank === -1 || blank - end > MAX_PART_HEADER_BYTES) return -1
    at = body.indexOf(delimiter, end)
  }
  return -1
}

function parse (body: Buffer, contentType: string, spec: MultipartSpec): Promise<{ parts: Part[], coded: boolean } | undefined> {
  return new Promise((resolve) => {
    const parts: Part[] = []
    let coded = false
    let failed = false
    let bb: BusboyInstance
    try {
      bb = Busboy({
        headers: { 'content-type': contentType },
        // Parts are counted and header blocks bounded before busboy runs (countParts): these
        // limits only make sure busboy never truncates what was counted.
        limits: { fieldSize: body.length + 1, fileSize: Infinity, parts: Infinity, headerSize: MAX_PART_HEADER_BYTES + 4, headerPairs: MAX_PART_HEADER_BYTES },
        preservePath: true,
        isPartAFile: (name, type, filename) => filename !== undefined || type === 'application/octet-stream' || (name !== undefined && spec.files.has(name))
      })
    } catch {
      resolve(undefined)
      return
    }
    bb.on('field', (name: string | undefined, value: string, _nameTruncated: boolean, _valueTruncated: boolean, encoding: string, type: string) => {
      if (name === undefined) failed = true
      if (!IDENTITY_CODING.test(encoding)) coded = true
      parts.push({ name: name ?? '', type, text: value, chunks: [] })
    })
    bb.on('file', (name: string | undefined, stream, _filename: string, encoding: string, type: string) => {
      if (name === undefined) failed = true
      if (!IDENTITY_CODING.test(encoding)) coded = true
      const part: Part = { name: name ?? '', type, text: undefined, chunks: [] }
      parts.push(part)
      stream.on('data', (chunk: Buffer) => { part.chunks.push(chunk) })
      stream.on('error', () => { failed = true })
    })
    bb.on('error', () => {
      failed = true
      resolve(undefined)
    })
    bb.on('finish', () => { resolve(failed ? undefined : { parts, coded }) })
    bb.end(body)
  })
}

/** Whether a part's media type is one of `ranges` (`image/png`, `image/*`, `*\/*`). */
function typeAllowed (type: string, ranges: readonly string[]): boolean {
  for (const range of ranges) {
    if (range === '*/*' || range === type) return true
    if (range.endsWith('/*') && type.startsWith(range.slice(0, -1))) return true
  }
  return false
}

/** A multipart/form-data body (`contentType` with its boundary) as the object its schema judges. */
export async function readMultipart (body: Buffer, contentType: string, spec: MultipartSpec): Promise<MultipartResult> {
  const m = BOUNDARY.exec(contentType)
  const boundary = m?.[1] ?? m?.[2]
  if (boundary === undefined) return MALFORMED
  const declared = countParts(body, boundary)
  if (declared === -1) return MALFORMED
  if (declared > MAX_MULTIPART_PARTS) return { data: undefined, problems: ['/body: parts'], json: [] }
  const read = await parse(body, contentType, spec)
  // Fewer parts read than written: busboy skipped some (no form-data disposition, a bare line break in a name).
  if (read === undefined || read.parts.length !== declared) return MALFORMED
  if (read.coded) return { data: undefined, problems: ['/body: encoding'], json: [] }
  const values = new Map<string, unknown[]>()
  const problems: string[] = []
  const json: Array<[string, unknown]> = []
  const problem = (name: string, rule: string): void => {
    const line = `/body/${escapePointer(name)}: ${rule}`
    if (!problems.includes(line)) problems.push(line)
  }
  for (const part of read.parts) {
    let value: unknown = part.text ?? Buffer.concat(part.chunks).toString('latin1')
    if (spec.json.has(part.name)) {
      try {
        value = sjson.parse(part.text ?? Buffer.concat(part.chunks).toString('utf8'), null, { protoAction: 'error', constructorAction: 'error' })
      } catch {
        problem(part.name, 'json')
        continue
      }
      json.push([part.name, value])
    }
    const ranges = spec.types.get(part.name)
    if (ranges !== undefined && !typeAllowed(part.type, ranges)) problem(part.name, 'contentType')
    const list = values.get(part.name)
    if (list === undefined) values.set(part.name, [value])
    else list.push(value)
  }
  // A name given once is its value, several times an array (as urlencoded forms read).
  const data = Object.create(null) as Record<string, unknown>
  for (const [name, list] of values) data[name] = list.length === 1 ? list[0] : list
  return { data, problems, json }
}
