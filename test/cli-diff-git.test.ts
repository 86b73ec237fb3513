/**
 * `portcullis diff` between git revisions, run as an operator runs it: the built command
 * (`node dist/src/cli.js`, what the `portcullis` bin is) in a real git repository of a project
 * that has portcullis in its node_modules, whose route modules `import ... from 'portcullis'`.
 * Every run also checks that no temporary folder is left behind.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t, { type Test } from 'tap'
import type { DiffReport } from '../src/cli/diff.js'
import { TEMP_PREFIX } from '../src/cli/git-revision.js'
import { waitFor } from './helpers/wait-for.js'

// About 25 runs of the command, each loading the gateway twice: a generous guard against a hang.
t.setTimeout(300_000)

const root = fileURLToPath(new URL('..', import.meta.url))
const CLI = join(root, 'dist/src/cli.js')
const fixture = (path: string): string => readFileSync(fileURLToPath(new URL(`fixtures/${path}`, import.meta.url)), 'utf8')
const STRONG = { 'routes/orders.mjs': fixture('routes-strong/orders.mjs'), 'routes/status.mjs': fixture('routes-strong/status.mjs') }
const WEAK = { 'routes/orders.mjs': fixture('routes-weak/orders.mjs'), 'routes/status.mjs': fixture('routes-weak/status.mjs') }

interface Run { readonly code: number | null, readonly signal: NodeJS.Signals | null, readonly out: string, readonly err: string }

function start (cwd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}, nodeArgs: readonly string[] = []): { child: ChildProcess, done: Promise<Run> } {
  const child = spawn(process.execPath, [...nodeArgs, CLI, ...args], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const done = new Promise<Run>((resolve) => { child.on('close', (code, signal) => { resolve({ code, signal, out, err }) }) })
  return { child, done }
}

/** Runs `portcullis ARGS` in `cwd` (ROUTES_DIR=routes unless `env` says otherwise). */
async function portcullis (cwd: string, args: readonly string[], env: NodeJS.ProcessEnv = { ROUTES_DIR: 'routes' }, nodeArgs: readonly string[] = []): Promise<Run> {
  return await start(cwd, args, env, nodeArgs).done
}

function git (cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=Portcullis', '-c', 'user.email=dev@portcullis.invalid', '-c', 'commit.gpgsign=false', '-c', 'tag.gpgsign=false', ...args], { cwd, encoding: 'utf8' }).trim()
}

/** The command's temporary folders and their files anywhere under `dir` (node_modules and .git aside). */
function leftovers (dir: string, inside = false): string[] {
  const found: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === '.git') continue
    const path = join(dir, e.name)
    const temporary = inside || e.name.startsWith(TEMP_PREFIX)
    if (temporary) found.push(path)
    if (e.isDirectory()) found.push(...leftovers(path, temporary))
  }
  return found
}

/** Writes (or, for null, deletes) files in the project. */
function write (dir: string, files: Record<string, string | null>): void {
  for (const [path, text] of Object.entries(files)) {
    const file = join(dir, path)
    if (text === null) unlinkSync(file)
    else {
      mkdirSync(dirname(file), { recursive: true })
      writeFileSync(file, text)
    }
  }
}

function commit (dir: string, files: Record<string, string | null>, message: string, tag?: string): void {
  write(dir, files)
  git(dir, 'add', '-A')
  git(dir, 'commit', '-q', '--allow-empty', '-m', message)
  if (tag !== undefined) git(dir, 'tag', tag)
}

/** A project as an operator has one: its own package.json, portcullis in node_modules (linked to this package), a git repository. */
function project (t: Test, repository = true): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-diff-git-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  write(dir, { 'package.json': JSON.stringify({ name: 'gateway-config', private: true, type: 'module' }), '.gitignore': 'node_modules/\n' })
  mkdirSync(join(dir, 'node_modules'))
  symlinkSync(root, join(dir, 'node_modules', 'portcullis'), 'dir')
  if (repository) git(dir, 'init', '-q', '-b', 'main')
  return dir
}

const weakenings = (r: DiffReport): string[] => r.changes.filter((c) => c.kind === 'weakens').map((c) => `${c.prefix} ${c.what}`)

t.test('two revisions: every weakening is listed and fails the command unless allowed; the revisions are named', async (t) => {
  const dir = project(t)
  commit(dir, STRONG, 'strong routes', 'v1')
  commit(dir, WEAK, 'weaker routes')
  const r = await portcullis(dir, ['diff', '--json', 'v1', 'HEAD'])
  t.equal(r.code, 1, r.err)
  const report = JSON.parse(r.out) as DiffReport
  t.match(report.old, { folder: 'routes', revision: 'v1', commit: git(dir, 'rev-parse', 'v1') })
  t.match(report.new, { folder: 'routes', revision: 'HEAD', commit: git(dir, 'rev-parse', 'HEAD') })
  const weak = weakenings(report)
  for (const expected of [
    /^\/status lost authentication/,
    /^\/status rate limit raised 10x/,
    /^\/orders inspection block url\+headers\+body -> off$/,
    /^\/orders an upstream switched from https to http$/,
    /^\/orders no longer requires scope orders:read$/
  ]) t.ok(weak.some((w) => expected.test(w)), `${String(expected)} in ${JSON.stringify(weak)}`)
  t.strictSame(report.problems, { old: [], new: [] })

  const text = await portcullis(dir, ['diff', 'main~1', 'main', '--allow-weakening'])
  t.equal(text.code, 0, '--allow-weakening')
  t.match(text.out, new RegExp(`^old {6}main~1 \\(${git(dir, 'rev-parse', '--short', 'v1')}\\): routes$`, 'm'), 'the header names each revision and its commit')
  t.match(text.out, new RegExp(`^new {6}main \\(${git(dir, 'rev-parse', '--short', 'HEAD')}\\): routes$`, 'm'))
  t.match(text.out, /^weakens +\/status: lost authentication/m)
  const sha = git(dir, 'rev-parse', 'HEAD')
  const back = await portcullis(dir, ['diff', '--json', sha, 'git:v1'])
  t.equal(back.code, 0, 'the reverse change only tightens')
  const tightening = (JSON.parse(back.out) as DiffReport).changes
  t.equal(tightening.filter((c) => c.kind === 'weakens').length, 0)
  t.ok(tightening.some((c) => c.kind === 'tightens' && c.prefix === '/status' && /now requires authentication/.test(c.what)))
  t.strictSame(leftovers(dir), [], 'no temporary folder is left')
})

t.test('a revision against the working tree: one argument, ".", or the folder itself', async (t) => {
  const dir = project(t)
  commit(dir, STRONG, 'strong routes', 'v1')
  commit(dir, WEAK, 'weaker routes')
  write(dir, STRONG) // uncommitted: the change under review restores the strong routes
  const text = await portcullis(dir, ['diff', 'HEAD'])
  t.equal(text.code, 0, text.err)
  t.match(text.out, /^new {6}working tree: routes$/m)
  t.match(text.out, /^tightens \/status: now requires authentication/m)
  for (const args of [['diff', 'HEAD', '.'], ['diff', 'git:HEAD', 'routes']]) {
    const r = await portcullis(dir, [...args, '--json'])
    t.equal(r.code, 0, `${args.join(' ')}: ${r.err}`)
    const report = JSON.parse(r.out) as DiffReport
    t.strictSame(report.new, { folder: 'routes', worktree: true })
    t.ok(report.changes.some((c) => c.kind === 'tightens' && c.prefix === '/status'), `${args.join(' ')}: the working tree tightens /status`)
  }
  const same = await portcullis(dir, ['diff', 'v1', '--routes', 'routes'], {})
  t.equal(same.code, 0, same.err)
  t.match(same.out, /^0 weakening, 0 tightening, 0 other$/m, '--routes names the folder; the working tree equals v1')
  write(dir, WEAK)
  t.equal((await portcullis(dir, ['diff', 'v1'])).code, 1, 'a weakening in the working tree fails the command')
  t.strictSame(leftovers(dir), [])
})

t.test('TypeScript route modules at a revision are transpiled; relative imports find the transpiled siblings; errors name the revision and line', async (t) => {
  const dir = project(t)
  commit(dir, STRONG, 'strong routes', 'v1')
  commit(dir, {
    'routes/orders.mjs': null,
    'routes/status.mjs': null,
    'routes/_limits.ts': 'export interface Limit { readonly max: number, readonly timeWindow: string }\n' +
      "export const ORDERS_LIMIT: Limit = { max: 10, timeWindow: '1 minute' }\n",
    'routes/_upstreams.ts': "export const ORDERS_UPSTREAM: string = 'https://127.0.0.1:9/api'\n",
    'routes/orders.ts': "import { defineRoute } from 'portcullis'\n" +
      "import { ORDERS_LIMIT, type Limit } from './_limits.js'\n" +
      "import { ORDERS_UPSTREAM } from './_upstreams.ts'\n" +
      'const limit: Limit = ORDERS_LIMIT\n' +
      "export default defineRoute({ prefix: '/orders', upstream: ORDERS_UPSTREAM, auth: { scopes: ['orders:read'] }, rateLimit: limit, inspect: { mode: 'block', body: true } })\n",
    'routes/status.mts': "import { defineRoute } from 'portcullis'\n" +
      'const max: number = 10\n' +
      "export default defineRoute({ prefix: '/status', upstream: 'http://127.0.0.1:9/status', rateLimit: { max, timeWindow: '1 minute' } })\n"
  }, 'routes in TypeScript, /orders limited further', 'v2')
  const r = await portcullis(dir, ['diff', '--json', 'v1', 'v2'])
  t.equal(r.code, 0, r.err + r.out)
  const report = JSON.parse(r.out) as DiffReport
  t.strictSame(report.problems, { old: [], new: [] })
  t.strictSame(report.changes.map((c) => `${c.kind} ${c.prefix} ${c.what}`), ['tightens /orders rate limit lowered (100/1 minute per consumer (memory) -> 10/1 minute per consumer (memory))'],
    'both TypeScript modules load, with their helpers; only the limit changed')

  commit(dir, { 'routes/status.mts': "import { defineRoute } from 'portcullis'\nconst max: number = )\nexport default defineRoute({ prefix: '/status', upstream: 'http://127.0.0.1:9', rateLimit: { max, timeWindow: '1 minute' } })\n" }, 'a module that does not parse')
  const broken = await portcullis(dir, ['diff', 'v2', 'HEAD'])
  t.equal(broken.code, 1)
  t.match(broken.out, /^error {4}NEW HEAD:routes\/status\.mts \(line 2\): syntax error: Expression expected/m, 'named at the revision, with its line')
  commit(dir, { 'routes/status.mts': "import { defineRoute } from 'portcullis'\nconst max: number = 10\nif (max > 1) throw new Error('status refuses to load')\nexport default defineRoute({ prefix: '/status', upstream: 'http://127.0.0.1:9' })\n" }, 'a module that throws')
  const throws = await portcullis(dir, ['diff', 'v2', 'HEAD'])
  t.equal(throws.code, 1)
  t.match(throws.out, /^error {4}NEW HEAD:routes\/status\.mts \(line 3\): failed to load: status refuses to load/m, 'the line of the TypeScript source')
  t.notMatch(throws.out, new RegExp(TEMP_PREFIX), 'no temporary path in the report')
  t.strictSame(leftovers(dir), [], 'removed after a failure too')
})

t.test('unusable arguments exit 2 and name the problem', async (t) => {
  const dir = project(t)
  commit(dir, { 'README.md': 'no routes yet\n' }, 'before the routes', 'empty')
  commit(dir, STRONG, 'strong routes')
  const unknown = await portcullis(dir, ['diff', 'no-such-branch', 'HEAD'])
  t.equal(unknown.code, 2)
  t.match(unknown.err, /unknown revision "no-such-branch": no such branch, tag or commit in .*, and no such folder/)
  t.match((await portcullis(dir, ['diff', 'HEAD', 'git:v9'])).err, /unknown revision "v9"/)

  const target = join(dir, 'written-by-git')
  for (const args of [['diff', '--', `--output=${target}`, 'HEAD'], ['diff', `git:--output=${target}`, 'HEAD'], ['diff', 'HEAD', `git:-o${target}`]]) {
    const r = await portcullis(dir, args)
    t.equal(r.code, 2, args.join(' '))
    t.match(r.err, /is refused as a revision: a revision may not start with "-"/)
  }
  t.notOk(existsSync(target), 'no option reached git')

  const absent = await portcullis(dir, ['diff', 'empty', 'HEAD'])
  t.equal(absent.code, 0, absent.err)
  t.match(absent.out, /^old {6}empty \([0-9a-f]+\): routes \(no such folder: no routes\)$/m)
  t.match(absent.out, /^changes +\/orders: new route/m, 'a folder absent at OLD: every route is new')
  t.match(absent.out, /^changes +\/status: new route/m)
  t.match(absent.out, /^0 weakening, 0 tightening, 2 other$/m)
  const neither = await portcullis(dir, ['diff', 'empty', 'empty'])
  t.equal(neither.code, 2)
  t.match(neither.err, /the routes folder routes exists on neither side/)
  const elsewhere = await portcullis(dir, ['diff', 'empty', 'HEAD', '--routes', 'gateway/routes'], {})
  t.equal(elsewhere.code, 2, 'a mistyped --routes is an error, not an empty diff')
  t.match(elsewhere.err, /gateway\/routes exists on neither side/)
  t.equal((await portcullis(dir, ['diff', 'routes'])).code, 2, 'one argument must be a revision')

  const plain = project(t, false)
  write(plain, STRONG)
  const outside = await portcullis(plain, ['diff', 'main', 'HEAD'])
  t.equal(outside.code, 2)
  t.match(outside.err, /routes is not in a git repository/)
  t.strictSame(leftovers(dir), [])
})

t.test('the temporary folder is removed when typescript is missing and when the command is interrupted', async (t) => {
  const dir = project(t)
  commit(dir, STRONG, 'strong routes', 'v1')
  commit(dir, { 'routes/status.mjs': null, 'routes/status.ts': STRONG['routes/status.mjs'] }, 'the same route in TypeScript')
  // The command run where the typescript package cannot be found: a resolve hook refuses it.
  const hook = join(dir, 'no-typescript.mjs')
  writeFileSync(hook, "import { register } from 'node:module'\n" +
    'register(\'data:text/javascript,\' + encodeURIComponent(`export async function resolve (specifier, context, next) {\n' +
    "  if (specifier === 'typescript' || specifier.includes('/node_modules/typescript/')) throw Object.assign(new Error(\"Cannot find package 'typescript'\"), { code: 'ERR_MODULE_NOT_FOUND' })\n" +
    '  return next(specifier, context)\n}`))\n')
  t.equal((await portcullis(dir, ['diff', 'v1', 'HEAD'])).code, 0, 'with typescript the revision loads')
  const missing = await portcullis(dir, ['diff', 'v1', 'HEAD'], { ROUTES_DIR: 'routes' }, ['--import', pathToFileURL(hook).href])
  t.equal(missing.code, 2, missing.err)
  t.match(missing.err, /^portcullis: HEAD:routes holds TypeScript route modules \(HEAD:routes\/status\.ts\); reading them needs the typescript package, which cannot be found: install it/m)
  t.notMatch(missing.err, /\n\s+at /, 'no stack trace')
  t.strictSame(leftovers(dir), [], 'removed after the failure')

  commit(dir, { 'routes/slow.mjs': 'await new Promise((resolve) => setTimeout(resolve, 120_000))\nexport default undefined\n' }, 'a module that takes its time')
  const run = start(dir, ['diff', 'v1', 'HEAD'], { ROUTES_DIR: 'routes' })
  await waitFor(() => leftovers(dir).some((p) => p.endsWith('slow.mjs')), { message: 'the revision is written out' })
  run.child.kill('SIGINT')
  const interrupted = await run.done
  t.equal(interrupted.signal, 'SIGINT', 'the command ends on the interrupt')
  t.strictSame(leftovers(dir), [], 'removed on the interrupt')
})

t.test('this repository: the bundled routes (TypeScript importing portcullis by the package\'s own name) at HEAD', async (t) => {
  const r = await portcullis(root, ['diff', 'HEAD', 'HEAD'], {})
  t.equal(r.code, 0, r.err + r.out)
  t.match(r.out, /^old {6}HEAD \([0-9a-f]+\): routes$/m, 'ROUTES_DIR unset: the routes npm start loads')
  t.match(r.out, /^0 weakening, 0 tightening, 0 other$/m)
  t.notMatch(r.out, /^error/m)
  t.strictSame(readdirSync(root).filter((n) => n.startsWith(TEMP_PREFIX)), [])
})
