/**
 * gateway-openapi: multipart/form-data bodies against the operation's schema (parts to properties,
 * files, `encoding` content types, JSON parts, bounds, malformed bodies) and XML bodies (declared:
 * accepted unvalidated, counted).
 */
import diagnostics from 'node:diagnostics_channel'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { defineRoute } from 'portcullis'
import type { ContractViolationSignal } from '../../lib/signals.js'
import { CANARY, multipart, passes, refused } from '../helpers/contract.js'
import { startGateway } from '../helpers/gateway.js'
import { startUpstream } from '../helpers/upstream.js'

const DOC = {
  openapi: '3.0.3',
  info: { title: 'documents', version: '1' },
  paths: {
    '/documents': {
      post: {
        requestBody: {
          required: true,
          content: {
            'multipart/form-data': {
              schema: {
                type: 'object',
                additionalProperties: false,
                required: ['title', 'file'],
                properties: {
                  title: { type: 'string', maxLength: 40 },
                  pages: { type: 'integer', minimum: 1 },
                  draft: { type: 'boolean' },
                  tags: { type: 'array', maxItems: 3, items: { type: 'string' } },
                  meta: { type: 'object', additionalProperties: false, properties: { author: { type: 'string' } } },
                  id: { type: 'string', readOnly: true },
                  file: { type: 'string', format: 'binary', maxLength: 4096 },
                  thumbnails: { type: 'array', items: { type: 'string', format: 'binary' } }
                }
              },
              encoding: { file: { contentType: 'application/pdf, image/*' } }
            },
            'application/xml': { schema: { type: 'object', properties: { title: { type: 'string' } } } }
          }
        },
        responses: { 201: { description: 'stored' } }
      }
    }
  }
}

function docFile (): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-openapi-mp-'))
  const file = join(dir, 'documents.json')
  writeFileSync(file, JSON.stringify(DOC))
  return file
}

const PDF = Buffer.concat([Buffer.from('%PDF-1.7\n'), Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i))])
const file = { name: 'file', value: PDF, filename: 'report.pdf', type: 'application/pdf' }

t.test('multipart bodies: parts to properties, files, encoding, JSON parts, bounds', async (t) => {
  const seen: ContractViolationSignal[] = []
  const channel = diagnostics.channel('portcullis:contract.violation')
  const fn = (m: unknown): void => { seen.push(m as ContractViolationSignal) }
  channel.subscribe(fn)
  t.teardown(() => { channel.unsubscribe(fn) })
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    routes: [defineRoute({ prefix: '/docs', upstream: up.url, auth: false, rateLimit: false, openapi: { spec: docFile() } })]
  })
  const post = (body: { body: Buffer, type: string }): { method: string, path: string, headers: Record<string, string>, body: Buffer } =>
    ({ method: 'POST', path: '/docs/documents', headers: { 'content-type': body.type }, body: body.body })

  await passes(t, gw, up, post(multipart([{ name: 'title', value: 'Quarterly report' }, { name: 'pages', value: '12' }, { name: 'draft', value: 'false' }, { name: 'tags', value: 'finance' }, { name: 'tags', value: 'q3' }, { name: 'meta', value: '{"author":"Ana"}', type: 'application/json' }, file, { name: 'thumbnails', value: PDF, filename: 't1.png', type: 'image/png' }])), '/documents', 'every kind of part')
  await passes(t, gw, up, post(multipart([{ name: 'title', value: 'Scan' }, { ...file, type: 'image/jpeg', filename: 'scan.jpg' }])), '/documents', 'a media range of the encoding (image/*)')
  await passes(t, gw, up, post(multipart([{ name: 'title', value: 'Ünïcödé title' }, file], 'x'.repeat(70))), '/documents', 'UTF-8 text and a 70-character boundary')
  await passes(t, gw, up, post({ type: 'multipart/form-data; boundary="quoted;boundary"', body: multipart([{ name: 'title', value: 'Quoted' }, file], 'quoted;boundary').body }), '/documents', 'a quoted boundary')
  await passes(t, gw, up, { method: 'POST', path: '/docs/documents', headers: { 'content-type': 'application/xml' }, body: `<document><title>${'x'.repeat(100)}</title></document>` }, '/documents', 'XML: declared, passed unvalidated')
  t.ok(seen.some((s) => s.kind === 'body-unvalidated' && !s.blocked), 'the XML body is counted as unvalidated')

  const cases: Array<[string, Array<Parameters<typeof multipart>[0][number]>, string]> = [
    ['required file missing', [{ name: 'title', value: 'x' }], '/body/file: required'],
    ['required text part missing', [file], '/body/title: required'],
    ['text part too long', [{ name: 'title', value: CANARY.repeat(10) }, file], '/body/title: maxLength'],
    ['integer part not an integer', [{ name: 'title', value: 'x' }, { name: 'pages', value: CANARY }, file], '/body/pages: type'],
    ['integer part below its minimum', [{ name: 'title', value: 'x' }, { name: 'pages', value: '0' }, file], '/body/pages: minimum'],
    ['boolean part not a boolean', [{ name: 'title', value: 'x' }, { name: 'draft', value: CANARY }, file], '/body/draft: type'],
    ['too many parts of an array', [{ name: 'title', value: 'x' }, ...['a', 'b', 'c', 'd'].map((v) => ({ name: 'tags', value: v })), file], '/body/tags: maxItems'],
    ['text part given twice', [{ name: 'title', value: 'x' }, { name: 'title', value: CANARY }, file], '/body/title: type'],
    ['undeclared part', [{ name: 'title', value: 'x' }, file, { name: CANARY, value: 'x' }], '/body: additionalProperties'],
    ['readOnly part', [{ name: 'title', value: 'x' }, { name: 'id', value: CANARY }, file], '/body/id: readOnly'],
    ['JSON part that is not JSON', [{ name: 'title', value: 'x' }, { name: 'meta', value: `{${CANARY}` }, file], '/body/meta: json'],
    ['JSON part with an undeclared member', [{ name: 'title', value: 'x' }, { name: 'meta', value: `{"${CANARY}":1}` }, file], '/body/meta: additionalProperties'],
    ['JSON part poisoning the prototype', [{ name: 'title', value: 'x' }, { name: 'meta', value: '{"__proto__":{"admin":true}}' }, file], '/body/meta: json'],
    ['file of a type the encoding does not allow', [{ name: 'title', value: 'x' }, { ...file, type: 'text/html' }], '/body/file: contentType'],
    ['file without a type where the encoding names some', [{ name: 'title', value: 'x' }, { name: 'file', value: PDF, filename: 'a.pdf' }], '/body/file: contentType'],
    ['file past maxLength (bytes)', [{ name: 'title', value: 'x' }, { ...file, value: Buffer.alloc(4097, 0xff) }], '/body/file: maxLength'],
    ['a part with a transfer encoding', [{ name: 'title', value: 'x', headers: ['Content-Transfer-Encoding: base64'] }, file], '/body: encoding']
  ]
  for (const [what, parts, violation] of cases) {
    await refused(t, gw, up, post(multipart(parts)), 400, 'GW_CONTRACT_VIOLATION', what, violation)
  }
  const good = multipart([{ name: 'title', value: CANARY }, file])
  const malformed: Array<[string, { body: Buffer, type: string }, string]> = [
    ['no boundary parameter', { type: 'multipart/form-data', body: good.body }, '/body: multipart'],
    ['another boundary than the body\'s', { type: 'multipart/form-data; boundary=other', body: good.body }, '/body: multipart'],
    ['no closing delimiter', { type: good.type, body: good.body.subarray(0, good.body.length - 30) }, '/body: multipart'],
    ['a part without Content-Disposition', { type: good.type, body: Buffer.concat([Buffer.from(`--${good.type.split('=')[1] as string}\r\nContent-Type: text/plain\r\n\r\n${CANARY}\r\n`), good.body]) }, '/body: multipart'],
    ['a part without a name', { type: good.type, body: Buffer.concat([Buffer.from(`--${good.type.split('=')[1] as string}\r\nContent-Disposition: form-data\r\n\r\n${CANARY}\r\n`), good.body]) }, '/body: multipart'],
    ['a part header block past 8 KiB', multipart([{ name: 'title', value: 'x', headers: [`X-Pad: ${'p'.repeat(9000)}`] }, file]), '/body: multipart'],
    ['more than 1000 parts', multipart([...Array.from({ length: 1001 }, () => ({ name: 'tags', value: 'a' })), { name: 'title', value: 'x' }, file]), '/body: parts']
  ]
  for (const [what, body, violation] of malformed) {
    await refused(t, gw, up, post(body), 400, 'GW_CONTRACT_VIOLATION', what, violation)
  }
  await refused(t, gw, up, { method: 'POST', path: '/docs/documents', headers: { 'content-type': 'multipart/mixed; boundary=b' }, body: good.body }, 415, 'GW_REQUEST_UNSUPPORTED_MEDIA_TYPE', 'multipart/mixed where form-data is declared')
  await refused(t, gw, up, { method: 'POST', path: '/docs/documents', headers: { 'content-type': good.type } }, 400, 'GW_CONTRACT_VIOLATION', 'required body missing', '/body: required')
  t.ok(seen.some((s) => s.kind === 'body' && s.blocked && s.operation === 'POST /documents'), 'violations are counted per operation')
})

t.test('multipart bodies in detect mode pass, counted', async (t) => {
  const seen: ContractViolationSignal[] = []
  const channel = diagnostics.channel('portcullis:contract.violation')
  const fn = (m: unknown): void => { seen.push(m as ContractViolationSignal) }
  channel.subscribe(fn)
  t.teardown(() => { channel.unsubscribe(fn) })
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    routes: [defineRoute({ prefix: '/docs', upstream: up.url, auth: false, rateLimit: false, openapi: { spec: docFile(), mode: 'detect' } })]
  })
  const bad = multipart([{ name: 'title', value: 'x' }, { name: 'pages', value: 'many' }, file])
  await passes(t, gw, up, { method: 'POST', path: '/docs/documents', headers: { 'content-type': bad.type }, body: bad.body }, '/documents', 'a violation passes in detect mode')
  const unterminated = { type: bad.type, body: bad.body.subarray(0, 40) }
  await passes(t, gw, up, { method: 'POST', path: '/docs/documents', headers: { 'content-type': unterminated.type }, body: unterminated.body }, '/documents', 'a malformed body passes in detect mode')
  t.same(seen.filter((s) => s.kind === 'body').map((s) => s.blocked), [false, false], 'both counted as detected')
  t.ok(gw.logs.some((l) => (l.contract as { violations?: string[] } | undefined)?.violations?.includes('/body/pages: type')), 'details at debug')
})
