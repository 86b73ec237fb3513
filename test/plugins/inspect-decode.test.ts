/**
 * The pieces that make inspection read a body as the backend will: Content-Encoding parsing and
 * bounded decoding, charsets and byte-order marks, duplicate JSON keys; and the route option
 * `inspect.contentEncoding` (validated at startup, applied per route).
 */
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib'
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { gatewayErrorHandler } from 'portcullis'
import { inspectPlugin } from '../../plugins/inspect/index.js'
import { bodyText, charsetOf, decodeBody, parseContentEncoding } from '../../plugins/inspect/decode.js'
import { Collected, collectBody, collectHeaders, countJsonKeys, InspectLimitError } from '../../plugins/inspect/extract.js'

const limits = { maxInspectBytes: 32 * 1024, maxBodyDepth: 32, maxBodyKeys: 2000 }

function reason (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    if (err instanceof InspectLimitError) return err.reason
    throw err
  }
  return undefined
}

async function rejection (p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
  } catch (err) {
    if (err instanceof InspectLimitError) return err.reason
    throw err
  }
  return undefined
}

t.test('Content-Encoding: every spelling of the codings, identity dropped, anything else refused', async (t) => {
  t.strictSame(parseContentEncoding('gzip'), ['gzip'])
  t.strictSame(parseContentEncoding('X-GZip'), ['gzip'])
  t.strictSame(parseContentEncoding(' Deflate ,BR'), ['deflate', 'br'])
  t.strictSame(parseContentEncoding('identity'), [])
  t.strictSame(parseContentEncoding(''), [])
  t.strictSame(parseContentEncoding('gzip,,identity'), ['gzip'])
  t.strictSame(parseContentEncoding(['gzip', 'br']), ['gzip', 'br'], 'repeated fields are one list')
  for (const v of ['compress', 'zstd', 'x-compress', 'gzip;q=1', 'gzip, identity, foo', 'gzip,gzip,gzip,gzip', 'identity;x']) {
    t.equal(reason(() => parseContentEncoding(v)), 'encoding', v)
  }
})

t.test('decoding: each coding, raw deflate, stacked, bounded output, corrupt data', async (t) => {
  const text = Buffer.from('{"q":"hello"}')
  t.same(await decodeBody(gzipSync(text), ['gzip'], 1024), text)
  t.same(await decodeBody(deflateSync(text), ['deflate'], 1024), text, 'zlib-wrapped deflate')
  t.same(await decodeBody(deflateRawSync(text), ['deflate'], 1024), text, 'raw deflate, as browsers send it')
  t.same(await decodeBody(brotliCompressSync(text), ['br'], 1024), text)
  t.same(await decodeBody(brotliCompressSync(gzipSync(text)), ['gzip', 'br'], 1024), text, 'undone last first')
  t.same(await decodeBody(gzipSync(Buffer.alloc(1024)), ['gzip'], 1024), Buffer.alloc(1024), 'exactly the bound')
  t.equal(await rejection(decodeBody(gzipSync(Buffer.alloc(1025)), ['gzip'], 1024)), 'size')
  t.equal(await rejection(decodeBody(brotliCompressSync(Buffer.alloc(8 * 1024 * 1024)), ['br'], 1024)), 'size')
  t.equal(await rejection(decodeBody(gzipSync(gzipSync(Buffer.alloc(8 * 1024 * 1024))), ['gzip', 'gzip'], 64 * 1024)), 'size')
  t.equal(await rejection(decodeBody(text, ['gzip'], 1024)), 'corrupt')
  t.equal(await rejection(decodeBody(gzipSync(text).subarray(0, 12), ['gzip'], 1024)), 'corrupt')
})

t.test('charsets: only the ones inspection decodes, JSON only UTF-8, one parameter at most', async (t) => {
  t.equal(charsetOf('application/json', true), 'utf8')
  t.equal(charsetOf('application/json; charset=UTF-8', true), 'utf8')
  t.equal(charsetOf('application/json;charset="utf-8"', true), 'utf8')
  t.equal(charsetOf('text/plain; charset=ISO-8859-1', false), 'latin1')
  t.equal(charsetOf('text/plain; format=flowed; charset=us-ascii', false), 'utf8')
  t.equal(charsetOf('multipart/form-data; boundary="a;b"', false), 'utf8')
  for (const [ct, json] of [
    ['application/x-www-form-urlencoded; charset=ibm037', false], ['text/plain; CHARSET="IBM037"', false], ['text/plain;charset = cp1047', false],
    ['text/plain; charset=utf-16', false], ['text/plain; charset=utf-16le', false], ['text/plain; charset=utf-32', false], ['text/plain; charset=utf-7', false],
    ['text/plain; charset=utf-8; charset=utf-8', false], ['text/plain; charset=', false], ['text/plain; charset=""', false],
    ['application/json; charset=iso-8859-1', true], ['application/json; charset=us-ascii', true], ['application/json; charset=utf-16', true]
  ] as const) {
    t.equal(reason(() => charsetOf(ct, json)), 'charset', ct)
  }
  t.equal(charsetOf('text/plain; x-charset=ibm037', false), 'utf8', 'another parameter ending in charset is not the charset')
})

t.test('byte-order marks: UTF-16/32 refused whatever is declared, UTF-8 skipped', async (t) => {
  const json = Buffer.from('{"a":1}')
  t.equal(bodyText(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json]), 'utf8', true), '{"a":1}')
  for (const bom of [[0xfe, 0xff], [0xff, 0xfe], [0x00, 0x00, 0xfe, 0xff], [0xff, 0xfe, 0x00, 0x00]]) {
    t.equal(reason(() => bodyText(Buffer.concat([Buffer.from(bom), json]), 'utf8', false)), 'charset', bom.join(' '))
  }
  t.equal(reason(() => bodyText(Buffer.from('{"a":1}', 'utf16le'), 'utf8', true)), 'charset', 'UTF-16 JSON without a BOM')
  t.equal(bodyText(Buffer.from('caf\xe9', 'latin1'), 'latin1', false), 'café')
})

t.test('duplicate JSON keys: counted in the text against the members JSON.parse kept', async (t) => {
  t.equal(countJsonKeys('{"a":1,"b":{"c":[{"d":"x:y"}]}}'), 4)
  t.equal(countJsonKeys('{"a\\"":"\\\\","b" :  "\\":"}'), 2, 'escaped quotes and backslashes')
  t.equal(countJsonKeys('[":",":"]'), 0, 'colons inside strings are not members')
  const c = (): Collected => new Collected(limits.maxInspectBytes)
  const body = (s: string): string | undefined => reason(() => { collectBody(c(), Buffer.from(s), 'application/json', limits) })
  t.equal(body('{"a":1,"a":2}'), 'duplicate')
  t.equal(body('{"a":1,"\\u0061":2}'), 'duplicate', 'equal after unescaping')
  t.equal(body('{"x":[{"y":{"z":1,"z":2}}]}'), 'duplicate', 'at depth')
  t.equal(body('{"q":"1\' OR 1=1--","q":"x"}'), 'duplicate')
  t.equal(body('[{"a":1},{"a":2}]'), undefined, 'equal keys in different objects')
  t.equal(body('{"__proto__":{"admin":true}}'), 'poison')
  t.equal(body('{"\\u005f_proto__":{"admin":true}}'), 'poison', 'escaped __proto__')
})

t.test('header names: judged as keys when they hold more than letters, digits, - and _', async (t) => {
  const c = new Collected(limits.maxInspectBytes)
  collectHeaders(c, { ':authority': 'api.example.com', ':path': '/x', 'x-api-version': '1', 'x-\'--': '1', 'user-agent': 'curl/8.5.0' })
  t.strictSame([...c.keys, ...c.keyText, ...c.words], ['x-\'--'], 'only the odd name; HTTP/2 pseudo-header names are not')
  t.strictSame(c.headers, ['api.example.com', '/x', '1', 'curl/8.5.0'], 'every value (repeats once)')
})

async function app (contentEncoding?: 'decode' | 'refuse'): Promise<FastifyInstance> {
  const f = Fastify()
  f.setErrorHandler(gatewayErrorHandler)
  await f.register(inspectPlugin, { mode: 'block' })
  f.removeAllContentTypeParsers()
  f.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => { done(null, body) })
  f.post('/x', { config: { inspect: { mode: 'block', body: true, ...(contentEncoding !== undefined ? { contentEncoding } : {}) } } }, async () => ({ ok: true }))
  return f
}

t.test('route option contentEncoding: decode (default) or refuse; anything else fails at startup', async (t) => {
  const payload = gzipSync('{"q":"<script>alert(1)</script>"}')
  const decoding = await app()
  t.teardown(() => decoding.close())
  const blocked = await decoding.inject({ method: 'POST', url: '/x', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload })
  t.equal(blocked.statusCode, 403)
  t.equal(blocked.json().code, 'GW_INSPECT_BLOCKED')

  const refusing = await app('refuse')
  t.teardown(() => refusing.close())
  const refused = await refusing.inject({ method: 'POST', url: '/x', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: gzipSync('{"q":1}') })
  t.equal(refused.statusCode, 415)
  t.strictSame(refused.json(), { statusCode: 415, code: 'GW_INSPECT_ENCODING_UNSUPPORTED', error: 'Unsupported Media Type', message: 'Unsupported content encoding' })
  const plain = await refusing.inject({ method: 'POST', url: '/x', headers: { 'content-type': 'application/json', 'content-encoding': 'identity' }, payload: '{"q":1}' })
  t.equal(plain.statusCode, 200)

  const bad = Fastify()
  t.teardown(() => bad.close())
  await bad.register(inspectPlugin, {})
  t.throws(() => bad.post('/x', { config: { inspect: { body: true, contentEncoding: 'inflate' as 'decode' } } }, async () => ({})), { code: 'GW_INSPECT_CONFIG_INVALID' }, 'an unknown value is refused when the route is added')
})
