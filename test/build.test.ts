/**
 * The build never leaves compiled output whose source is gone: `npm run build` (and so `npm start`
 * and `npm test`) empties dist/ first, so a route file deleted from routes/ is not served from a
 * stale dist/routes/*.js on the next start.
 */
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('..', import.meta.url))
const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts

t.test('npm start and npm test build first, and every build starts from an empty dist/', async (t) => {
  t.match(scripts.prestart, /^npm run build$/, 'npm start builds first')
  t.match(scripts.pretest, /^npm run build$/, 'npm test builds first')
  t.match(scripts.build, /^tsc /, 'the build is tsc, which npm runs after prebuild')
  t.type(scripts.prebuild, 'string', 'a prebuild step exists')
})

t.test('the prebuild step removes a stale compiled route and leaves the sources alone', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-build-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  copyFileSync(join(root, 'package.json'), join(dir, 'package.json'))
  mkdirSync(join(dir, 'dist/routes'), { recursive: true })
  mkdirSync(join(dir, 'routes'))
  writeFileSync(join(dir, 'dist/routes/deleted.js'), 'export default null\n')
  writeFileSync(join(dir, 'routes/kept.ts'), 'export {}\n')
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  const run = spawnSync(npm, ['run', '--silent', 'prebuild'], { cwd: dir, encoding: 'utf8', shell: process.platform === 'win32' })
  t.equal(run.status, 0, run.stderr)
  t.notOk(existsSync(join(dir, 'dist/routes/deleted.js')), 'the compiled route whose source is gone is removed')
  t.notOk(existsSync(join(dir, 'dist')), 'dist/ is emptied entirely')
  t.ok(existsSync(join(dir, 'routes/kept.ts')), 'sources are untouched')
})
