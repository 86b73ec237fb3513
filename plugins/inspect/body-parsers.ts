/**
 * Body parsers: a body (raw bytes, a string, or an object a host app's parser produced) into keys
 * and values by content type: JSON (duplicate keys and prototype poisoning refused), urlencoded
 * forms, multipart/form-data (each part by its own type), XML, else the text as written. Depth,
 * key-count and size limits refuse a body (`InspectLimitError`) instead of half inspecting it.
 */
import sjson from 'secure-json-parse'
import { countJsonKeys } from '../../lib/json-keys.js'
import { rememberJsonBody } from '../../lib/parsed-body.js'
import { allowedCharset, bodyText, charsetOf } from './decode.js'
import { InspectLimitError } from './limit-error.js'
import { collectForm, isLoopbackRedirect } from './values.js'
import type { Collected } from './collected.js'

/** Bounds applied while extracting. */
export interface ExtractLimits {
  /** Total characters of strings handed to the engine for one request phase. */
  readonly maxInspectBytes: number
  /** Nesting depth of a JSON body (or a parsed body object). */
  readonly maxBodyDepth: number
  /** Keys (object members and array items) in a body. */
  readonly maxBodyKeys: number
}

/** A raw body may carry this many times the text budget in syntax (JSON punctuation, numbers, tags). */
const RAW_FACTOR = 4

/**
 * Walks a parsed body: keys and string/number leaves, with depth and key-count limits. Returns the
 * number of object members.
 */
export function collectObject (c: Collected, value: unknown, limits: ExtractLimits): number {
  let keys = 0
  let members = 0
  const walk = (v: unknown, depth: number, key: string): void => {
    if (typeof v === 'string') {
      if (isLoopbackRedirect(key, v)) return
      c.addBody(v)
      return
    }
    if (typeof v !== 'object' || v === null) return
    if (depth >= limits.maxBodyDepth) throw new InspectLimitError('depth')
    if (Array.isArray(v)) {
      keys += v.length
      if (keys > limits.maxBodyKeys) throw new InspectLimitError('keys')
      for (const item of v) walk(item, depth + 1, key)
      return
    }
    for (const k in v) {
      if (!Object.hasOwn(v, k)) continue
      members++
      if (++keys > limits.maxBodyKeys) throw new InspectLimitError('keys')
      const child = (v as Record<string, unknown>)[k]
      if (k === '__proto__' || (k === 'constructor' && typeof child === 'object' && child !== null && Object.hasOwn(child, 'prototype'))) {
        throw new InspectLimitError('poison')
      }
      c.addKey(k)
      walk(child, depth + 1, k)
    }
  }
  walk(value, 0, '')
  return members
}

const XML_ENTITY = /&(?:#x([0-9a-fA-F]{1,6})|#([0-9]{1,7})|(lt|gt|amp|quot|apos));/g
const NAMED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: '\'' }
function xmlEntities (s: string): string {
  if (!s.includes('&')) return s
  return s.replace(XML_ENTITY, (m, hex: string | undefined, dec: string | undefined, name: string | undefined) => {
    const cp = hex !== undefined ? parseInt(hex, 16) : dec !== undefined ? parseInt(dec, 10) : -1
    if (cp >= 0) return cp <= 0x10ffff ? String.fromCodePoint(cp) : m
    return NAMED[name as string] ?? m
  })
}

const XML_ATTR = /([^\s=/]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g

/** XML: text, CDATA, attribute values, declarations (DOCTYPE/ENTITY) as values; names as keys. Linear scan. */
export function collectXml (c: Collected, text: string): void {
  let i = 0
  const n = text.length
  while (i < n) {
    const lt = text.indexOf('<', i)
    const end = lt === -1 ? n : lt
    if (end > i) {
      const t = text.slice(i, end).trim()
      if (t !== '') c.addBody(xmlEntities(t))
    }
    if (lt === -1) break
    if (text.startsWith('<!--', lt)) {
      const close = text.indexOf('-->', lt + 4)
      c.add(c.body, text.slice(lt + 4, close === -1 ? n : close))
      i = close === -1 ? n : close + 3
    } else if (text.startsWith('<![CDATA[', lt)) {
      const close = text.indexOf(']]>', lt + 9)
      c.addBody(text.slice(lt + 9, close === -1 ? n : close))
      i = close === -1 ? n : close + 3
    } else if (text.startsWith('<?', lt)) {
      const close = text.indexOf('?>', lt + 2)
      const pi = text.slice(lt + 2, close === -1 ? n : close)
      // Kept with its delimiters: `<?php ...?>` inside XML is still PHP code.
      if (!pi.startsWith('xml ') && pi !== 'xml') c.add(c.body, `<?${pi}?>`)
      i = close === -1 ? n : close + 2
    } else if (text.startsWith('<!', lt)) {
      // DOCTYPE / ENTITY declarations (XXE) are judged as written, internal subset included.
      const bracket = text.indexOf('[', lt)
      const gt = text.indexOf('>', lt)
      let close = gt
      if (bracket !== -1 && (gt === -1 || bracket < gt)) {
        const sub = text.indexOf(']>', bracket)
        close = sub === -1 ? -1 : sub + 1
      }
      c.add(c.body, text.slice(lt + 2, close === -1 ? n : close))
      i = close === -1 ? n : close + 1
    } else {
      const gt = text.indexOf('>', lt + 1)
      const tag = text.slice(lt + 1, gt === -1 ? n : gt)
      let nameEnd = 0
      while (nameEnd < tag.length && !/[\s/>]/.test(tag[nameEnd] as string)) nameEnd++
      const name = tag.slice(tag.startsWith('/') ? 1 : 0, nameEnd || undefined)
      if (name !== '' && !tag.startsWith('/')) c.addKey(name)
      if (!tag.startsWith('/')) {
        const rest = tag.slice(nameEnd)
        XML_ATTR.lastIndex = 0
        let m: RegExpExecArray | null
        while ((m = XML_ATTR.exec(rest)) !== null) {
          c.addKey(m[1] as string)
          c.addBody(xmlEntities(m[2] ?? m[3] ?? ''))
        }
      }
      i = gt === -1 ? n : gt + 1
    }
  }
}

const BOUNDARY = /boundary=(?:"([^"]{1,200})"|([^\s;]{1,200}))/i
const DISPOSITION_LINE = /^content-disposition:[ \t]*([^\r\n]*)/im

/**
 * The parameters of a part's Content-Disposition (RFC 7578, RFC 2183 and RFC 2045 syntax):
 * `; name=value` where a value is a token (up to the next `;`) or a quoted string, which ends at
 * the first unescaped `"` and reads `\x` as `x` (a value with such an escape is also kept as
 * written, a second occurrence); an unterminated one runs to the end of the line.
 * A `;` inside a quoted file name is part of the name, as multipart parsers (busboy, multer,
 * Spring) read it. Names lower-cased; every occurrence kept, in order.
 */
export function dispositionParams (head: string): Array<[string, string]> {
  const line = DISPOSITION_LINE.exec(head)?.[1]
  const out: Array<[string, string]> = []
  if (line === undefined) return out
  let i = line.indexOf(';')
  const n = line.length
  while (i !== -1 && i < n) {
    i++
    while (i < n && (line[i] === ' ' || line[i] === '\t')) i++
    const eq = line.indexOf('=', i)
    const semi = line.indexOf(';', i)
    if (eq === -1 || (semi !== -1 && semi < eq)) {
      i = semi
      continue
    }
    const name = line.slice(i, eq).trim().toLowerCase()
    let j = eq + 1
    while (j < n && (line[j] === ' ' || line[j] === '\t')) j++
    let value = ''
    if (line[j] === '"') {
      const start = ++j
      let escaped = false
      while (j < n && line[j] !== '"') {
        if (line[j] === '\\' && j + 1 < n) {
          escaped = true
          j++
        }
        value += line[j]
        j++
      }
      out.push([name, value])
      // Parsers that do not read `\` as an escape (browsers never write one) see the name as written.
      if (escaped) out.push([name, line.slice(start, j)])
      i = line.indexOf(';', j)
    } else {
      const end = line.indexOf(';', j)
      value = line.slice(j, end === -1 ? n : end).trim()
      out.push([name, value])
      i = end
    }
  }
  return out
}

const PART_TYPE = /content-type:\s*([^\r\n]+)/i
const PART_CODING = /content-(?:transfer-)?encoding:\s*([^\r\n]*)/i
const IDENTITY_PART_CODING = /^(?:7bit|8bit|binary|identity)?$/i

/** multipart/form-data: field names (keys), file names and field values parsed by their own type. */
export function collectMultipart (c: Collected, text: string, contentType: string, limits: ExtractLimits): void {
  const m = BOUNDARY.exec(contentType)
  const boundary = m?.[1] ?? m?.[2]
  if (boundary === undefined) {
    c.add(c.body, text)
    return
  }
  const delimiter = '--' + boundary
  let pos = text.indexOf(delimiter)
  if (pos === -1) {
    c.add(c.body, text)
    return
  }
  while (pos !== -1) {
    const start = pos + delimiter.length
    if (text.startsWith('--', start)) break
    const next = text.indexOf(delimiter, start)
    const part = text.slice(start, next === -1 ? text.length : next)
    const sep = part.indexOf('\r\n\r\n') !== -1 ? part.indexOf('\r\n\r\n') : part.indexOf('\n\n')
    const head = sep === -1 ? part : part.slice(0, sep)
    let content = sep === -1 ? '' : part.slice(sep + (part.startsWith('\r\n\r\n', sep) ? 4 : 2))
    if (content.endsWith('\r\n')) content = content.slice(0, -2)
    else if (content.endsWith('\n')) content = content.slice(0, -1)
    let name: string | undefined
    for (const [param, value] of dispositionParams(head)) {
      if (param === 'name') {
        name ??= value
        c.addKey(value)
      } else if (param === 'filename' || param === 'filename*') {
        c.add(c.files, value)
        c.add(c.body, value)
      }
    }
    // A part's own coding (base64, quoted-printable, gzip) would hide its content from inspection.
    const transfer = PART_CODING.exec(head)?.[1]
    if (transfer !== undefined && !IDENTITY_PART_CODING.test(transfer.trim())) throw new InspectLimitError('encoding')
    const partType = PART_TYPE.exec(head)?.[1] ?? 'text/plain'
    if (partType.includes(';')) charsetOf(partType, isJson(mediaType(partType)))
    if (name === '_charset_') allowedCharset(content, false)
    collectText(c, content, partType, limits, true)
    pos = next
  }
}

function mediaType (contentType: string): string {
  const semi = contentType.indexOf(';')
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
}

function isJson (type: string): boolean {
  return type === 'application/json' || type.endsWith('+json')
}

function isXml (type: string): boolean {
  return type === 'application/xml' || type === 'text/xml' || type.endsWith('+xml')
}

function collectText (c: Collected, text: string, contentType: string, limits: ExtractLimits, nested: boolean, source?: Buffer): void {
  const type = mediaType(contentType)
  if (isJson(type)) {
    let parsed: unknown
    try {
      parsed = sjson.parse(text, null, { protoAction: 'error', constructorAction: 'error' })
    } catch (err) {
      if (err instanceof SyntaxError && (err.message.includes('prototype') || err.message.includes('__proto__'))) {
        throw new InspectLimitError('poison')
      }
      // Not JSON after all: judge the text as written.
      c.addBody(text)
      return
    }
    if (collectObject(c, parsed, limits) !== countJsonKeys(text)) throw new InspectLimitError('duplicate')
    // The same bytes read the same way: other plugins (the API contract) take this value.
    if (source !== undefined) rememberJsonBody(source, parsed)
  } else if (type === 'application/x-www-form-urlencoded') {
    collectForm(c, text, c.body)
  } else if (isXml(type)) {
    collectXml(c, text)
  } else if (type === 'multipart/form-data' && !nested) {
    collectMultipart(c, text, contentType, limits)
  } else {
    c.addBody(text)
  }
}

/** Bytes of a raw body (decoded, when it was coded) that inspection parses at most. */
export function rawBodyLimit (limits: ExtractLimits): number {
  return limits.maxInspectBytes * RAW_FACTOR
}

/**
 * A body as the plugin sees it: a Buffer (proxied routes buffer raw bytes), a string, or an object
 * a host app's parser already produced.
 */
export function collectBody (c: Collected, body: unknown, contentType: string | undefined, limits: ExtractLimits): void {
  if (body === undefined || body === null) return
  if (Buffer.isBuffer(body)) {
    if (body.length === 0) return
    // Parsing is linear; a body far past the text budget cannot fit it, so refuse it unparsed.
    if (body.length > rawBodyLimit(limits)) throw new InspectLimitError('size')
    const type = contentType ?? 'text/plain'
    const json = isJson(mediaType(type))
    const decoding = charsetOf(type, json)
    collectText(c, bodyText(body, decoding, json), type, limits, false, json && decoding === 'utf8' ? body : undefined)
  } else if (typeof body === 'string') {
    if (body.length > limits.maxInspectBytes * RAW_FACTOR) throw new InspectLimitError('size')
    collectText(c, body, contentType ?? 'text/plain', limits, false)
  } else if (typeof body === 'object') {
    collectObject(c, body, limits)
  }
}
