/**
 * Route modules that cannot be loaded stop startup, every problem at once, each naming the file
 * (and the line where there is one) and the fix: a syntax error, a top-level exception, no default
 * export, a default export that is not `defineRoute(...)`. A compiled module is named by its source.
 */
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import ts from 'typescript'
import { startGateway } from './helpers/gateway.js'
import { errorPosition } from '../src/source-file.js'

function routesDir (t: { teardown: (fn: () => void) => void }, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-routes-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true })
    writeFileSync(join(dir, name), text)
  }
  return dir
}

async function startupProblems (t: Test, dir: string): Promise<string[]> {
  const err = await startGateway(t, { env: { ROUTES_DIR: dir }, listen: false }).then(() => undefined, (e: unknown) => e) as (Error & { code?: string, lines?: () => string[] }) | undefined
  t.equal(err?.code, 'GW_CONFIG_INVALID', 'startup stops with a configuration error')
  return err?.lines?.() ?? []
}

t.test('a syntax error names the file and the line', async (t) => {
  const dir = routesDir(t, { 'a.mjs': 'export default {\n  prefix: "/a",,\n}\n' })
  const lines = await startupProblems(t, dir)
  t.equal(lines.length, 1)
  t.match(lines[0], `${join(dir, 'a.mjs')} (line 2): syntax error: `)
  t.match(lines[0], /fix the module/)
})

t.test('a top-level exception names the file and the line it was thrown at', async (t) => {
  const dir = routesDir(t, { 'b.mjs': 'const x = undefined\n\nexport default x.trim()\n' })
  const lines = await startupProblems(t, dir)
  t.equal(lines.length, 1)
  t.match(lines[0], `${join(dir, 'b.mjs')} (line 3): failed to load: `)
  t.match(lines[0], /Cannot read properties of undefined/)
})

t.test('a folder outside the gateway that imports portcullis: says where route modules can resolve it', async (t) => {
  const dir = routesDir(t, { 'a.mjs': "import { defineRoute } from 'portcullis'\nexport default defineRoute({ prefix: '/a', upstream: 'http://127.0.0.1:1' })\n" })
  const lines = await startupProblems(t, dir)
  t.equal(lines.length, 1)
  t.match(lines[0], `${join(dir, 'a.mjs')}`)
  t.match(lines[0], `cannot import 'portcullis' from ${dir}: a route module resolves it only inside the gateway's folder (`)
  t.match(lines[0], /\/app in the image/)
})

t.test('no default export, or a plain object or function as default: refused, naming the file and how to fix it', async (t) => {
  const dir = routesDir(t, {
    'a-none.mjs': 'export const route = 1\n',
    'b-object.mjs': 'export default { prefix: "/b", upstream: "http://127.0.0.1:1" }\n',
    'c-function.mjs': 'export default async function plugin () {}\n'
  })
  const lines = await startupProblems(t, dir)
  t.strictSame(lines, [
    `${join(dir, 'a-none.mjs')}: has no default export; end the file with \`export default defineRoute({ prefix, upstream })\``,
    `${join(dir, 'b-object.mjs')}: its default export is a plain object, not a route; wrap the options: \`export default defineRoute({ ... })\``,
    `${join(dir, 'c-function.mjs')}: its default export is a plain function, not a route; wrap the options: \`export default defineRoute({ ... })\``
  ], 'every bad module at once, in file order')
})

t.test('modules in subfolders are checked too; helper files (_x, .d.ts) are not', async (t) => {
  const dir = routesDir(t, { 'sub/x.mjs': 'export const x = 1\n', '_helper.mjs': 'export const y = 1\n' })
  const lines = await startupProblems(t, dir)
  t.strictSame(lines, [`${join(dir, 'sub/x.mjs')}: has no default export; end the file with \`export default defineRoute({ prefix, upstream })\``])
})

t.test('a compiled module is named by its source file and line (source map)', async (t) => {
  const source = 'const settings: { url?: string } = {}\n\n\nexport default settings.url!.trim()\n'
  const dir = routesDir(t, {})
  const out = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: true }, fileName: 'boom.ts' })
  mkdirSync(join(dir, 'routes'))
  mkdirSync(join(dir, 'dist'))
  writeFileSync(join(dir, 'routes/boom.ts'), source)
  const map = JSON.parse(out.sourceMapText ?? '{}') as { sources: string[] }
  map.sources = ['../routes/boom.ts']
  writeFileSync(join(dir, 'dist/boom.mjs'), `\n\n${out.outputText}`.replace('//# sourceMappingURL=boom.js.map', ''))
  writeFileSync(join(dir, 'dist/boom.mjs.map'), JSON.stringify({ ...map, mappings: `;;${(map as unknown as { mappings: string }).mappings}` }))
  const err = await import(pathToFileURL(join(dir, 'dist/boom.mjs')).href).then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof TypeError, 'the module throws at load')
  const position = errorPosition(err, join(dir, 'dist/boom.mjs'))
  t.equal(position.file, join(dir, 'routes/boom.ts'), 'the source file, not dist/')
  t.equal(position.line, 4, 'the source line')
})

t.test('a folder of symbolic links (a Kubernetes ConfigMap mount) is served like plain files', async (t) => {
  // ConfigMap volume layout: ..data -> the current revision's folder, each key -> ..data/<key>.
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-configmap-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  symlinkSync(fileURLToPath(new URL('fixtures/routes-strong', import.meta.url)), join(dir, '..data'))
  for (const key of ['orders.mjs', 'status.mjs']) symlinkSync(join('..data', key), join(dir, key))
  symlinkSync(join(dir, 'missing.mjs'), join(dir, 'dangling.mjs'))
  const gw = await startGateway(t, { env: { ROUTES_DIR: dir }, listen: false })
  t.same(gw.app.portcullisProxy.routes.map((r) => r.prefix), ['/orders', '/status'], 'both linked modules are routes; a dangling link is not')
  const res = await gw.app.inject({ method: 'GET', url: '/orders/x' })
  t.equal(res.statusCode, 401, 'the linked route is registered with its policy')
})
