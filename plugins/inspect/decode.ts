/**
 * What a backend will read from an inspected body, so inspection reads the same: the
 * Content-Encoding codings (gzip, x-gzip, deflate, br, stacked) undone within a bound, and the
 * charsets inspection can decode (anything else is refused, never guessed). The upstream always
 * receives the original bytes; these functions only produce the text that is inspected.
 */
import { charsetDecoding, contentTypeDecoding, type TextDecoding } from '../../lib/charset.js'
import { brotliDecompress, gunzip, inflate, inflateRaw, type ZlibOptions } from 'node:zlib'
import { InspectLimitError } from './limit-error.js'

/** A content coding inspection can undo. */
export type Coding = 'gzip' | 'deflate' | 'br'

const CODINGS: ReadonlyMap<string, Coding | null> = new Map<string, Coding | null>([
  ['gzip', 'gzip'], ['x-gzip', 'gzip'], ['deflate', 'deflate'], ['br', 'br'], ['identity', null]
])

/** Codings stacked on one body at most; more is refused like an unknown coding. */
export const MAX_CODINGS = 3

/**
 * The codings of a Content-Encoding value (or values), in the order they were applied, without
 * `identity`. Throws `encoding` for an unknown coding or more than MAX_CODINGS.
 */
export function parseContentEncoding (value: string | string[]): Coding[] {
  const codings: Coding[] = []
  for (const field of Array.isArray(value) ? value : [value]) {
    for (const raw of field.split(',')) {
      const token = raw.trim().toLowerCase()
      if (token === '') continue
      const coding = CODINGS.get(token)
      if (coding === undefined) throw new InspectLimitError('encoding')
      if (coding !== null) codings.push(coding)
    }
  }
  if (codings.length > MAX_CODINGS) throw new InspectLimitError('encoding')
  return codings
}

/** RFC 1950 2.2: a zlib header (CM 8, FCHECK). Without one, `deflate` is raw DEFLATE (as browsers send it). */
function hasZlibHeader (b: Buffer): boolean {
  if (b.length < 2) return false
  const cmf = b[0] as number
  return (cmf & 0x0f) === 8 && (cmf >> 4) <= 7 && ((cmf << 8) | (b[1] as number)) % 31 === 0
}

type Inflater = (buf: Buffer, options: ZlibOptions, callback: (err: Error | null, out: Buffer) => void) => void

function undo (coding: Coding, input: Buffer, maxBytes: number): Promise<Buffer> {
  const fn: Inflater = coding === 'gzip' ? gunzip : coding === 'br' ? brotliDecompress as Inflater : hasZlibHeader(input) ? inflate : inflateRaw
  return new Promise((resolve, reject) => {
    // maxOutputLength stops zlib as soon as the output would pass the bound: a bomb is never inflated.
    fn(input, { maxOutputLength: maxBytes }, (err, out) => {
      if (err === null) resolve(out)
      else reject(err)
    })
  })
}

/**
 * Undoes `codings` (applied in order, so undone last first), each output at most `maxBytes`.
 * Rejects with `size` past the bound and `corrupt` for data the coding cannot decode.
 */
export async function decodeBody (body: Buffer, codings: readonly Coding[], maxBytes: number): Promise<Buffer> {
  let out = body
  for (let i = codings.length - 1; i >= 0; i--) {
    try {
      out = await undo(codings[i] as Coding, out, maxBytes)
    } catch (err) {
      const code = (err as { code?: unknown }).code
      throw new InspectLimitError(code === 'ERR_BUFFER_TOO_LARGE' ? 'size' : 'corrupt', { cause: err })
    }
  }
  return out
}

export type { TextDecoding } from '../../lib/charset.js'

/**
 * The decoding of a Content-Type's charset (utf8 when none is declared). Throws `charset` for a
 * charset inspection does not decode, an empty one, or more than one charset parameter.
 */
export function charsetOf (contentType: string, json: boolean): TextDecoding {
  const decoding = contentTypeDecoding(contentType, json)
  if (decoding === undefined) throw new InspectLimitError('charset')
  return decoding
}

/** The decoding of a charset name (a `_charset_` field, a parameter), or `charset` refused. */
export function allowedCharset (name: string, json: boolean): TextDecoding {
  const decoding = charsetDecoding(name, json)
  if (decoding === undefined) throw new InspectLimitError('charset')
  return decoding
}

/**
 * The text of a body for inspection: UTF-16/32 byte-order marks are refused (`charset`) whatever
 * the declared charset, a UTF-8 one is skipped; JSON whose first bytes hold a NUL (UTF-16/32
 * without a BOM, which some parsers detect) is refused too.
 */
export function bodyText (body: Buffer, decoding: TextDecoding, json: boolean): string {
  const b0 = body[0]
  if (b0 === 0xfe || b0 === 0xff || (b0 === 0 && body[1] === 0 && body[2] === 0xfe && body[3] === 0xff)) {
    if ((b0 === 0xfe && body[1] === 0xff) || (b0 === 0xff && body[1] === 0xfe) || b0 === 0) throw new InspectLimitError('charset')
  }
  if (json && (b0 === 0 || body[1] === 0 || body[2] === 0 || body[3] === 0)) throw new InspectLimitError('charset')
  if (decoding === 'utf8') {
    const start = b0 === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0
    return body.toString('utf8', start)
  }
  return body.toString('latin1')
}
