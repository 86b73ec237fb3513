/**
 * Names a module file the way an operator wrote it: relative to the working folder, and a
 * compiled `dist/.../x.js` mapped back to its source (`routes/x.ts`) and line through the source
 * map tsc writes beside it. Used by startup errors about route modules.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { SourceMap } from 'node:module'
import { isAbsolute, relative, resolve, dirname } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

/** A file (and line, when known) as shown in messages. */
export interface SourcePosition {
  readonly file: string
  readonly line: number | undefined
}

function shown (file: string): string {
  const rel = relative(process.cwd(), file)
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file
}

function toPath (file: string): string {
  return file.startsWith('file:') ? fileURLToPath(file) : file
}

/** The source map beside `path` (`${path}.map`) and its first source, when there is one. */
function sourceMap (path: string): { payload: { sources?: unknown }, source: string } | undefined {
  let payload: { sources?: unknown } | undefined
  try {
    payload = JSON.parse(readFileSync(`${path}.map`, 'utf8')) as { sources?: unknown }
  } catch {}
  const sources = payload?.sources
  return payload !== undefined && Array.isArray(sources) && typeof sources[0] === 'string' ? { payload, source: sources[0] } : undefined
}

/** The source position of `file` (a path or file URL) at `line`/`column` (1-based), mapped when a map exists. */
export function sourcePosition (file: string, line?: number, column?: number): SourcePosition {
  const path = toPath(file)
  const map = sourceMap(path)
  if (map === undefined) return { file: shown(path), line }
  const payload = map.payload
  const base = dirname(path)
  if (line !== undefined) {
    try {
      const entry = new SourceMap(payload as ConstructorParameters<typeof SourceMap>[0]).findEntry(line - 1, (column ?? 1) - 1) as { originalSource?: string, originalLine?: number }
      if (entry.originalSource !== undefined && entry.originalLine !== undefined) {
        return { file: shown(resolve(base, toPath(entry.originalSource))), line: entry.originalLine + 1 }
      }
    } catch {}
  }
  return { file: shown(resolve(base, map.source)), line: undefined }
}

/** `routes/x.ts` or `routes/x.ts (line 3)`. */
export function describePosition (p: SourcePosition): string {
  return p.line === undefined ? p.file : `${p.file} (line ${p.line})`
}

/** Where in `file` an error was raised: its syntax-error location or its first stack frame in that file. */
export function errorPosition (err: unknown, file: string): SourcePosition {
  const path = toPath(file)
  const text = err instanceof Error ? `${err.stack ?? ''}\n${err.message}` : ''
  const escaped = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  const url = pathToFileURL(path).href
  const m = new RegExp(`(?:${escaped(path)}|${escaped(url)}):(\\d+)(?::(\\d+))?`).exec(text)
  if (m === null) {
    // With source maps enabled (node --enable-source-maps) the stack names the source already.
    const mapped = sourceMap(path)
    if (mapped !== undefined) {
      const source = resolve(dirname(path), toPath(mapped.source))
      const s = new RegExp(`(?:${escaped(source)}|${escaped(pathToFileURL(source).href)}):(\\d+)`).exec(text)
      if (s !== null) return { file: shown(source), line: Number(s[1]) }
    }
    return err instanceof SyntaxError ? sourcePosition(path, syntaxErrorLine(path)) : sourcePosition(path)
  }
  return sourcePosition(path, Number(m[1]), m[2] === undefined ? undefined : Number(m[2]))
}

/**
 * The line of a syntax error in a JavaScript module: a failed `import()` does not say where, so
 * `node --check` parses the file again (only on this error path, at startup).
 */
function syntaxErrorLine (path: string): number | undefined {
  if (!/\.[cm]?js$/.test(path)) return undefined
  const check = spawnSync(process.execPath, ['--check', path], { encoding: 'utf8', timeout: 10_000 })
  const first = (check.stderr ?? '').split('\n')[0] ?? ''
  const m = /:(\d+)$/.exec(first)
  return m === null ? undefined : Number(m[1])
}
