/**
 * The contract's own schema keywords: `maxLength` / `minLength` count characters (code points) as
 * Ajv's do, with the UTF-16 length deciding where it can; member names folded as
 * case-insensitive backends match them; query names folded as PHP, Rails, qs and ASP.NET read them.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { foldJsonKey, foldQueryName, loadContract } from '../../plugins/openapi/contract.js'

const E = '\u{1F600}' // one character, two UTF-16 units

async function bodyValidator (t: Test, schema: Record<string, unknown>): Promise<(v: unknown) => { ok: boolean, keywords: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-keywords-'))
  const file = join(dir, 'doc.json')
  writeFileSync(file, JSON.stringify({
    openapi: '3.0.3',
    info: { title: 'keywords', version: '1' },
    paths: { '/x': { post: { requestBody: { content: { 'application/json': { schema } } }, responses: { 200: { description: 'ok' } } } } }
  }))
  const contract = await loadContract(file)
  const m = contract.match('/x', 'POST')
  if (m.kind !== 'operation') throw new Error('no operation')
  const validate = m.op.body?.media.get('application/json')?.validate
  if (validate === undefined) throw new Error('no validator')
  t.ok(validate, 'compiled')
  return (v) => {
    const ok = validate(v) as boolean
    return { ok, keywords: (validate.errors ?? []).map((e) => e.keyword) }
  }
}

t.test('maxLength and minLength count code points, as JSON Schema says', async (t) => {
  const v = await bodyValidator(t, { type: 'object', properties: { max: { type: 'string', maxLength: 3 }, min: { type: 'string', minLength: 3 } } })
  const cases: Array<[string, string, boolean]> = [
    ['max', 'abc', true], ['max', 'abcd', false], ['max', 'abcdefg', false],
    ['max', E + E + E, true], ['max', E + E + E + E, false], ['max', E + 'ab', true], ['max', E + 'abc', false],
    ['min', 'ab', false], ['min', 'abc', true], ['min', 'abcdef', true],
    ['min', E + E, false], ['min', E + E + E, true], ['min', E + 'a', false], ['min', E + 'ab', true]
  ]
  for (const [key, value, valid] of cases) {
    const r = v({ [key]: value })
    t.equal(r.ok, valid, `${key} ${JSON.stringify(value)} (${[...value].length} characters, ${value.length} units): ${valid ? 'valid' : 'invalid'}`)
    if (!valid) t.same(r.keywords, [key === 'max' ? 'maxLength' : 'minLength'], 'reported under the JSON Schema keyword')
  }
})

t.test('members of open objects that fold to a declared name are refused; closed objects refuse them anyway', async (t) => {
  const v = await bodyValidator(t, {
    type: 'object',
    properties: { sku: { type: 'string' }, kind: { type: 'string' }, inner: { type: 'object', additionalProperties: false, properties: { a: { type: 'string' } } } }
  })
  t.same(v({ sku: 'a', kind: 'b', extra: 1 }), { ok: true, keywords: [] }, 'declared members and one of its own')
  t.same(v({ SKU: 'a' }).keywords, ['portcullisAlias'], 'another case')
  t.same(v({ sku: 'a', Sku: 'b' }).keywords, ['portcullisAlias'], 'both spellings')
  t.same(v(Object.fromEntries([['\u017fku', 'a']])).keywords, ['portcullisAlias'], 'U+017F (long s) folds to s')
  t.same(v(Object.fromEntries([['\u212aind', 'a']])).keywords, ['portcullisAlias'], 'U+212A (Kelvin sign) folds to k')
  t.same(v({ inner: { A: 'x' } }).keywords, ['additionalProperties'], 'a closed object: an undeclared member, whatever its case')
})

t.test('fold functions', async (t) => {
  t.equal(foldJsonKey('\u017fKU'), 'sku')
  t.equal(foldJsonKey('\u212aind'), 'kind')
  t.equal(foldQueryName('Dry.Run'), 'dry_run', 'PHP reads . as _')
  t.equal(foldQueryName('dry run'), 'dry_run', 'and a space')
  t.equal(foldQueryName('status[]'), 'status', 'name[]')
  t.equal(foldQueryName('filter[a][b]'), 'filter', 'name[x][y]')
  t.equal(foldQueryName('PAGE'), 'page', 'case')
})

t.test('a document that declares _method lets it through', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-keywords-'))
  const file = join(dir, 'doc.json')
  writeFileSync(file, JSON.stringify({
    openapi: '3.0.3',
    info: { title: 'override', version: '1' },
    paths: {
      '/legacy': {
        post: {
          parameters: [{ name: '_method', in: 'query', schema: { type: 'string', enum: ['PUT'] } }],
          requestBody: { content: { 'application/x-www-form-urlencoded': { schema: { allOf: [{ type: 'object', properties: { _method: { type: 'string' } } }] } }, 'application/json': { schema: { type: 'object' } } } },
          responses: { 200: { description: 'ok' } }
        }
      },
      '/plain': { post: { responses: { 200: { description: 'ok' } } } }
    }
  }))
  const contract = await loadContract(file)
  const legacy = contract.match('/legacy', 'POST')
  const plain = contract.match('/plain', 'POST')
  if (legacy.kind !== 'operation' || plain.kind !== 'operation') throw new Error('no operation')
  t.equal(legacy.op.declaresMethodParam, true, 'a declared _method query parameter')
  t.equal(legacy.op.body?.media.get('application/x-www-form-urlencoded')?.declaresMethodField, true, 'a _method form field declared through allOf')
  t.equal(legacy.op.body?.media.get('application/json')?.declaresMethodField, false, 'an object schema without it')
  t.equal(plain.op.declaresMethodParam, false, 'no parameters')
})
