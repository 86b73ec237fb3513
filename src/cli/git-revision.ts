/**
 * The sides of `portcullis diff`: a route folder, or the routes folder as it is at a git
 * revision. A revision's folder is written by git (`ls-tree` and `cat-file`, argument lists,
 * never a shell) into a hidden temporary folder beside the real one, so that its modules'
 * `import ... from 'portcullis'`, package.json and node_modules resolve exactly as they do for
 * the real folder; TypeScript modules are transpiled there (a working folder of TypeScript modules
 * is copied and transpiled the same way). Every temporary folder is removed afterwards, also on an
 * error or an interrupt; its name starts with `.portcullis-diff-`, which git, the route loader,
 * tsc, lint and tap all skip.
 */
import { execFile } from 'node:child_process'
import { copyFileSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type ts from 'typescript'
import type { Problem } from './load.js'

/** How the temporary folders are named (their parent is the real folder's). */
export const TEMP_PREFIX = '.portcullis-diff-'

/** A wrong argument, a missing repository or revision, or a missing tool: exit code 2. */
export class DiffUsageError extends Error {}

/** One side of a diff, as the report names it. */
export interface DiffSide {
  /** The folder: a path (relative to the working folder when inside it), or its path in the repository at `revision` (`.` for the top). */
  readonly folder: string
  /** The git revision as given, the commit it names and that commit's short name (the git form). */
  readonly revision?: string
  readonly commit?: string
  readonly shortCommit?: string
  /** The working tree's routes folder (`diff REV`, or a NEW folder that holds the routes folder, such as `.`). */
  readonly worktree?: boolean
  /** The folder does not exist (at the revision, or in the working tree): compared as a folder with no routes. */
  readonly absent?: boolean
}

/** A side made loadable. */
export interface PreparedSide {
  readonly side: DiffSide
  /** The folder to load; undefined when the side is absent. */
  readonly dir: string | undefined
  /** Problems found before loading (TypeScript that does not parse). */
  readonly problems: readonly Problem[]
  /** Names a temporary path in a message as the operator knows it (`main:routes/orders.ts`). */
  readonly show: (text: string) => string
}

type Argument = { readonly kind: 'folder', readonly path: string } | { readonly kind: 'revision', readonly revision: string }

const TS_MODULE = /\.([cm]?)ts$/
const TS_DECLARATION = /\.d\.[cm]?ts$/

function isDirectory (path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() === true
}

/** A path as messages show it: relative to the working folder when inside it. */
function shown (path: string): string {
  const rel = relative(process.cwd(), path)
  return rel === '' ? '.' : !rel.startsWith('..') && !isAbsolute(rel) ? rel : path
}

function checkedRevision (revision: string): string {
  if (revision === '') throw new DiffUsageError('git: needs a revision, e.g. git:main')
  if (revision.startsWith('-')) throw new DiffUsageError(`"${revision}" is refused as a revision: a revision may not start with "-" (git would read it as an option)`)
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(revision)) throw new DiffUsageError('a revision may not hold control characters')
  return revision
}

/**
 * How `diff` reads an argument: `git:REV` is a revision; a path to an existing folder is that
 * folder; anything else is a revision (a branch, tag, commit, `HEAD~1`, `origin/main`).
 */
function classifyArgument (arg: string): Argument {
  if (arg.startsWith('git:')) return { kind: 'revision', revision: checkedRevision(arg.slice(4)) }
  if (isDirectory(arg)) return { kind: 'folder', path: arg }
  return { kind: 'revision', revision: checkedRevision(arg) }
}

interface GitResult { readonly code: number, readonly stdout: Buffer, readonly stderr: string }

/** Runs git with an argument list (no shell); resolves with its exit code and output. */
async function git (cwd: string, args: readonly string[], input?: string): Promise<GitResult> {
  return await new Promise((resolve, reject) => {
    const child = execFile('git', args, { cwd, encoding: 'buffer', maxBuffer: 1 << 30, windowsHide: true }, (err, stdout, stderr) => {
      const code = err === null ? 0 : err.code
      if (typeof code !== 'number') {
        reject(code === 'ENOENT' ? new DiffUsageError('git is not installed (or not on PATH); a git revision cannot be read') : err)
        return
      }
      resolve({ code, stdout, stderr: stderr.toString('utf8') })
    })
    child.stdin?.end(input)
  })
}

function firstLine (text: string): string {
  return text.trim().split('\n')[0] ?? ''
}

/** The routes folder of the git form: `--routes`, else ROUTES_DIR, else the bundled routes/ (its sources, in this package). */
function routesFolder (env: NodeJS.ProcessEnv, option: string | undefined): string {
  if (option !== undefined) return resolve(option)
  if (env.ROUTES_DIR !== undefined && env.ROUTES_DIR !== '') return resolve(env.ROUTES_DIR)
  // The package's own folder (src/cli/ or dist/src/cli/ below it): npm start loads routes/ compiled.
  let dir = dirname(fileURLToPath(import.meta.url))
  while (statSync(join(dir, 'package.json'), { throwIfNoEntry: false }) === undefined && dirname(dir) !== dir) dir = dirname(dir)
  const bundled = join(dir, 'routes')
  if (!isDirectory(bundled)) throw new DiffUsageError('ROUTES_DIR is not set and this installation has no bundled routes; name the folder to compare with --routes DIR (or ROUTES_DIR)')
  return bundled
}

interface Repository {
  /** The top of the working tree. */
  readonly top: string
  /** The routes folder's path in the repository ('' for the top). */
  readonly path: string
}

/** The repository holding `folder` (which need not exist in the working tree). */
async function repositoryOf (folder: string): Promise<Repository> {
  let existing = folder
  const rest: string[] = []
  while (!isDirectory(existing) && dirname(existing) !== existing) {
    rest.unshift(basename(existing))
    existing = dirname(existing)
  }
  const r = await git(existing, ['rev-parse', '--show-toplevel', '--show-prefix'])
  if (r.code !== 0) throw new DiffUsageError(`${shown(folder)} is not in a git repository, so it cannot be read at a revision (git: ${firstLine(r.stderr)})`)
  const [top = '', prefix = ''] = r.stdout.toString('utf8').split('\n')
  return { top, path: [prefix.replace(/\/$/, ''), ...rest].filter((p) => p !== '').join('/') }
}

interface Revision { readonly name: string, readonly commit: string, readonly short: string }

async function resolveRevision (repo: Repository, name: string, explicit: boolean): Promise<Revision> {
  const r = await git(repo.top, ['rev-parse', '--verify', '--quiet', `${name}^{commit}`])
  if (r.code !== 0) {
    const shallow = (await git(repo.top, ['rev-parse', '--is-shallow-repository'])).stdout.toString('utf8').trim() === 'true'
    throw new DiffUsageError(`unknown revision "${name}": no such branch, tag or commit in ${repo.top}` +
      (explicit ? '' : ', and no such folder') +
      (shallow ? ' (this clone is shallow: fetch the history, e.g. actions/checkout with fetch-depth: 0)' : ''))
  }
  const commit = r.stdout.toString('utf8').trim()
  const short = (await git(repo.top, ['rev-parse', '--short', commit])).stdout.toString('utf8').trim()
  return { name, commit, short }
}

/** Temporary folders, removed together (also when the process is interrupted). */
export class Scratch {
  private readonly dirs: string[] = []
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.remove()
    process.kill(process.pid, signal)
  }

  /** A new hidden folder in `parent`, ignored by git wherever it is. */
  create (parent: string): string {
    if (this.dirs.length === 0) for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, this.onSignal)
    const dir = mkdtempSync(join(parent, TEMP_PREFIX))
    this.dirs.push(dir)
    writeFileSync(join(dir, '.gitignore'), '*\n')
    return dir
  }

  remove (): void {
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeListener(s, this.onSignal)
    for (const dir of this.dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Where a copy of `folder` goes: inside a temporary folder in the folder's parent (so that every
 * folder above the copy is one above the real folder), or inside the folder itself when it is the
 * top of its repository (the repository's package.json and node_modules are then still above).
 */
function copyLocation (scratch: Scratch, folder: string, atTop: boolean): string {
  if (atTop) return join(scratch.create(folder), basename(folder))
  let parent = dirname(folder)
  while (!isDirectory(parent) && dirname(parent) !== parent) parent = dirname(parent)
  return join(scratch.create(parent), relative(parent, folder))
}

/** Rewrites a temporary path in messages to `label` (and paths under it to `prefix` + the rest). */
function rewriter (copy: string, prefix: string, label: string): (text: string) => string {
  const forms = [copy]
  const rel = relative(process.cwd(), copy)
  if (rel !== '' && !rel.startsWith('..') && !isAbsolute(rel)) forms.push(rel)
  return (text) => {
    let out = text
    for (const f of forms) out = out.split(f + sep).join(prefix).split(f).join(label)
    return out
  }
}

interface TreeEntry { readonly mode: string, readonly type: string, readonly object: string, readonly path: string }

/** Writes the tree `commit:path` into `dest` (files, executables and symbolic links; submodules skipped). */
async function writeTree (repo: Repository, commit: string, dest: string): Promise<void> {
  const listed = await git(repo.top, ['ls-tree', '-r', '-z', `${commit}:${repo.path}`])
  if (listed.code !== 0) throw new DiffUsageError(`git ls-tree failed: ${firstLine(listed.stderr)}`)
  const entries: TreeEntry[] = []
  for (const record of listed.stdout.toString('utf8').split('\0')) {
    const m = /^(\d+) (\w+) ([0-9a-f]+)\t(.+)$/s.exec(record)
    if (m === null) continue
    const [, mode = '', type = '', object = '', path = ''] = m
    if (type !== 'blob') continue
    if (path.split('/').some((p) => p === '' || p === '.' || p === '..')) throw new DiffUsageError(`refusing the path "${path}" in ${commit}`)
    entries.push({ mode, type, object, path })
  }
  mkdirSync(dest, { recursive: true })
  const objects = [...new Set(entries.map((e) => e.object))]
  const contents = new Map<string, Buffer>()
  if (objects.length > 0) {
    const batch = await git(repo.top, ['cat-file', '--batch'], objects.join('\n') + '\n')
    if (batch.code !== 0) throw new DiffUsageError(`git cat-file failed: ${firstLine(batch.stderr)}`)
    const out = batch.stdout
    let at = 0
    while (at < out.length) {
      const eol = out.indexOf(10, at)
      if (eol === -1) break
      const [object = '', type = '', size = ''] = out.subarray(at, eol).toString('utf8').split(' ')
      if (type !== 'blob') throw new DiffUsageError(`git cat-file: ${object} is ${type}`)
      const end = eol + 1 + Number(size)
      contents.set(object, out.subarray(eol + 1, end))
      at = end + 1
    }
  }
  for (const e of entries) {
    const file = join(dest, ...e.path.split('/'))
    const content = contents.get(e.object)
    if (content === undefined) throw new DiffUsageError(`git cat-file did not return ${e.object} (${e.path})`)
    mkdirSync(dirname(file), { recursive: true })
    if (e.mode === '120000') symlinkSync(content.toString('utf8'), file)
    else writeFileSync(file, content, { mode: e.mode === '100755' ? 0o755 : 0o644 })
  }
}

/**
 * Copies a working folder: files, folders, symbolic links (a link leaving the folder points at
 * its absolute target); a `node_modules` folder becomes a link to the real one.
 */
function copyFolder (from: string, to: string, root = from): void {
  mkdirSync(to, { recursive: true })
  for (const e of readdirSync(from, { withFileTypes: true })) {
    if (e.name.startsWith(TEMP_PREFIX)) continue
    const src = join(from, e.name)
    const dst = join(to, e.name)
    if (e.isSymbolicLink()) {
      const target = readlinkSync(src)
      const rel = relative(root, resolve(from, target))
      symlinkSync(isAbsolute(target) || (!rel.startsWith('..') && !isAbsolute(rel)) ? target : resolve(from, target), dst)
    } else if (e.isDirectory()) {
      if (e.name === 'node_modules') symlinkSync(src, dst, 'junction')
      else copyFolder(src, dst, root)
    } else if (e.isFile()) copyFileSync(src, dst)
  }
}

/** The TypeScript modules under `dir` (files and links to files; declarations and node_modules skipped). */
function typeScriptFiles (dir: string): string[] {
  const found: string[] = []
  let entries
  try {
    entries = readdirSync(dir, { withFileTypes: true })
  } catch {
    return found
  }
  for (const e of entries) {
    const path = join(dir, e.name)
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && !e.name.startsWith(TEMP_PREFIX)) found.push(...typeScriptFiles(path))
    } else if ((e.isFile() || e.isSymbolicLink()) && TS_MODULE.test(e.name) && !TS_DECLARATION.test(e.name)) found.push(path)
  }
  return found.sort()
}

type TypeScript = typeof ts

/** The typescript package: the one the routes' project has, else the one next to the gateway; undefined when neither resolves. */
async function loadTypeScript (from: string): Promise<TypeScript | undefined> {
  const attempts: Array<() => Promise<unknown>> = [
    async () => await import(pathToFileURL(createRequire(join(from, 'noop.js')).resolve('typescript')).href),
    async () => await import('typescript')
  ]
  for (const attempt of attempts) {
    try {
      const mod = await attempt() as { default?: TypeScript }
      return mod.default ?? (mod as TypeScript)
    } catch {}
  }
  return undefined
}

/**
 * Transpiles the TypeScript modules under `dir` in place: `x.ts` becomes `x.js` (`.mts` `.mjs`,
 * `.cts` `.cjs`) with a source map beside it, so that `./x.js` imports find it and errors name
 * the source line; `./x.ts` imports are rewritten to `./x.js`. A module that does not parse is a
 * problem (and is left out). `what` names the folder in the message when typescript is missing.
 */
async function transpileFolder (dir: string, what: string, show: (text: string) => string): Promise<Problem[]> {
  const files = typeScriptFiles(dir)
  if (files.length === 0) return []
  const typescript = await loadTypeScript(dir)
  if (typescript === undefined) {
    throw new DiffUsageError(`${what} holds TypeScript route modules (${show(files[0] as string)}); reading them needs the typescript package, which cannot be found: install it (npm install --save-dev typescript)`)
  }
  // Every source is read before anything is written (a link may point at another module); a
  // dangling link is left as it is (the loader skips it, as it does in the real folder).
  const sources: Array<{ file: string, text: string }> = []
  for (const file of files) {
    try {
      sources.push({ file, text: readFileSync(file, 'utf8') })
    } catch {}
  }
  const problems: Problem[] = []
  for (const { file, text } of sources) {
    const js = file.replace(TS_MODULE, '.$1js')
    if (lstatSync(js, { throwIfNoEntry: false }) !== undefined) {
      throw new DiffUsageError(`${show(file)} and ${show(js)} both exist; the gateway would load both (keep one)`)
    }
    const out = typescript.transpileModule(text, {
      fileName: basename(file),
      reportDiagnostics: true,
      compilerOptions: {
        target: typescript.ScriptTarget.ES2022,
        module: file.endsWith('.cts') ? typescript.ModuleKind.CommonJS : typescript.ModuleKind.ESNext,
        sourceMap: true,
        rewriteRelativeImportExtensions: true
      }
    })
    unlinkSync(file)
    const errors = (out.diagnostics ?? []).filter((d) => d.category === typescript.DiagnosticCategory.Error)
    if (errors.length > 0) {
      for (const d of errors) {
        const line = d.file !== undefined && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : undefined
        problems.push({
          source: show(line === undefined ? file : `${file} (line ${line})`),
          message: `syntax error: ${typescript.flattenDiagnosticMessageText(d.messageText, ' ')}; fix the module (it runs when the gateway starts)`
        })
      }
      continue
    }
    writeFileSync(js, out.outputText)
    if (out.sourceMapText !== undefined) writeFileSync(`${js}.map`, out.sourceMapText)
  }
  return problems
}

/** A folder as given: loaded in place, or, when it holds TypeScript modules, from a transpiled copy beside it. */
async function prepareFolder (scratch: Scratch, path: string, side: DiffSide): Promise<PreparedSide> {
  const folder = resolve(path)
  if (!isDirectory(folder)) return { side: { ...side, absent: true }, dir: undefined, problems: [], show: (t) => t }
  if (typeScriptFiles(folder).length === 0) return { side, dir: folder, problems: [], show: (t) => t }
  const copy = copyLocation(scratch, folder, false)
  const show = rewriter(copy, shown(folder) + sep, shown(folder))
  copyFolder(folder, copy)
  const problems = await transpileFolder(copy, shown(folder), show)
  return { side, dir: copy, problems, show }
}

/** The routes folder at a revision, written into a temporary folder and transpiled. */
async function prepareRevision (scratch: Scratch, repo: Repository, folder: string, rev: Revision): Promise<PreparedSide> {
  const side: DiffSide = { folder: repo.path === '' ? '.' : repo.path, revision: rev.name, commit: rev.commit, shortCommit: rev.short }
  const kind = await git(repo.top, ['cat-file', '-t', `${rev.commit}:${repo.path}`])
  if (kind.code !== 0) return { side: { ...side, absent: true }, dir: undefined, problems: [], show: (t) => t }
  const type = kind.stdout.toString('utf8').trim()
  if (type !== 'tree') throw new DiffUsageError(`${rev.name}:${repo.path} is a ${type}, not a folder`)
  const copy = copyLocation(scratch, folder, repo.path === '')
  const show = rewriter(copy, repo.path === '' ? `${rev.name}:` : `${rev.name}:${repo.path}/`, `${rev.name}:${side.folder}`)
  await writeTree(repo, rev.commit, copy)
  const problems = await transpileFolder(copy, `${rev.name}:${side.folder}`, show)
  return { side, dir: copy, problems, show }
}

/** Whether `outer` is `inner` or a folder above it. */
function holds (outer: string, inner: string): boolean {
  const rel = relative(resolve(outer), inner)
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))
}

/**
 * Makes both sides of `portcullis diff OLD [NEW]` loadable. Folders are loaded as they are; git
 * revisions (and NEW omitted: the working tree) read the routes folder (`routes`: --routes,
 * ROUTES_DIR or the bundled routes/). Every temporary folder belongs to `scratch`.
 */
export async function prepareSides (scratch: Scratch, env: NodeJS.ProcessEnv, oldArg: string, newArg: string | undefined, routesOption: string | undefined): Promise<{ old: PreparedSide, new: PreparedSide }> {
  const a = classifyArgument(oldArg)
  if (newArg === undefined && a.kind === 'folder') throw new DiffUsageError(`with one argument, diff compares a git revision with the working tree, and "${oldArg}" is a folder: give OLD and NEW`)
  const b = newArg === undefined ? undefined : classifyArgument(newArg)
  if (a.kind === 'folder' && b?.kind === 'folder') {
    if (routesOption !== undefined) throw new DiffUsageError('--routes names the folder read at git revisions; OLD and NEW here are both folders')
    return {
      old: await prepareFolder(scratch, a.path, { folder: shown(resolve(a.path)) }),
      new: await prepareFolder(scratch, b.path, { folder: shown(resolve(b.path)) })
    }
  }
  const folder = routesFolder(env, routesOption)
  const repo = await repositoryOf(folder)
  // Every revision is resolved before anything is written.
  const revisionOf = async (arg: string, c: Argument | undefined): Promise<Revision | undefined> =>
    c?.kind === 'revision' ? await resolveRevision(repo, c.revision, arg.startsWith('git:')) : undefined
  const oldRev = await revisionOf(oldArg, a)
  const newRev = newArg === undefined ? undefined : await revisionOf(newArg, b)
  const prepare = async (c: Argument | undefined, rev: Revision | undefined): Promise<PreparedSide> => {
    if (rev !== undefined) return await prepareRevision(scratch, repo, folder, rev)
    // A folder holding the routes folder (such as `.`) stands for the working tree.
    if (c === undefined || (c.kind === 'folder' && holds(c.path, folder))) return await prepareFolder(scratch, folder, { folder: shown(folder), worktree: true })
    const path = (c as { path: string }).path
    return await prepareFolder(scratch, path, { folder: shown(resolve(path)) })
  }
  const sides = { old: await prepare(a, oldRev), new: await prepare(b, newRev) }
  if (sides.old.dir === undefined && sides.new.dir === undefined) {
    throw new DiffUsageError(`the routes folder ${repo.path === '' ? '.' : repo.path} exists on neither side (in ${repo.top}); name it with --routes DIR (or ROUTES_DIR)`)
  }
  return sides
}
