/**
 * Finds and imports the route modules of a folder (the rules of @fastify/autoload: index files,
 * ignored names, subfolders; symbolic links followed), checking each: used by the gateway at startup and by the `portcullis` command-line tool,
 * so both read a configuration the same way.
 */
import { existsSync } from 'node:fs'
import type { Dirent } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { ConfigError } from './errors.js'
import { isRoutePlugin, missingVariableProblems, type RoutePlugin } from './route.js'
import { describePosition, errorPosition, sourcePosition } from './source-file.js'

/** The bundled route modules (routes/ next to src/, also after compilation to dist/). */
export const DEFAULT_ROUTES_DIR = fileURLToPath(new URL('../routes', import.meta.url))

/** Files skipped in a routes folder. */
export const ROUTE_IGNORE = /(?:^[._])|\.d\.ts$|\.map$|\.test\.[cm]?[jt]s$/
const ROUTE_SCRIPT = /\.(?:[cm]?js|[cm]?ts)$/
const INDEX_SCRIPT = /^index\.(?:[cm]?js|[cm]?ts)$/

/** The route module files under `dir`, in name order (index files, ignore pattern, subfolders). */
async function routeModuleFiles (root: string, dir = root): Promise<string[]> {
  let entries: Dirent[]
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch {
    return []
  }
  entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  const visible: Array<{ name: string, file: boolean, directory: boolean }> = []
  for (const e of entries) {
    if (ROUTE_IGNORE.test(relative(root, join(dir, e.name)).replaceAll('\\', '/'))) continue
    // A symbolic link counts as what it points to: a Kubernetes ConfigMap mounted as a folder
    // presents every key as a link (orders.mjs -> ..data/orders.mjs).
    const target = e.isSymbolicLink() ? await stat(join(dir, e.name)).catch(() => undefined) : e
    if (target !== undefined) visible.push({ name: e.name, file: target.isFile(), directory: target.isDirectory() })
  }
  const index = visible.find((e) => e.file && INDEX_SCRIPT.test(e.name))
  const files: string[] = []
  for (const e of visible) {
    if (e.directory) files.push(...await routeModuleFiles(root, join(dir, e.name)))
    // A folder with an index module is loaded through its index only (autoload's rule).
    else if (e.file && ROUTE_SCRIPT.test(e.name) && (index === undefined || e === index)) files.push(join(dir, e.name))
  }
  return files
}

/** Why an imported module cannot be a route, or undefined when its default export is one. */
function notARoute (mod: Record<string, unknown>): string | undefined {
  if (!('default' in mod) || mod.default === undefined) {
    return 'has no default export; end the file with `export default defineRoute({ prefix, upstream })`'
  }
  if (isRoutePlugin(mod.default)) return undefined
  const kind = mod.default === null ? 'null' : typeof mod.default === 'function' ? 'a plain function' : typeof mod.default === 'object' ? 'a plain object' : `a ${typeof mod.default}`
  return `its default export is ${kind}, not a route; wrap the options: \`export default defineRoute({ ... })\``
}

/** Node's error for `import ... from 'portcullis'` in a module outside the package and its node_modules. */
function cannotFindPortcullis (err: unknown): boolean {
  const message = (err as { message?: unknown } | null)?.message
  return typeof message === 'string' && message.startsWith("Cannot find package 'portcullis' imported from ")
}

/** The gateway's own folder: the nearest package.json above this file (src/ or dist/src/). */
function packageRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir)
  return dir
}

/**
 * Imports every route module under `dir` one after another and checks each; returns the routes
 * in name order for the gateway to register. Every problem is gathered and thrown at once (GW_CONFIG_INVALID), each line
 * naming the file (mapped back to its source and line when compiled): a syntax error or a
 * top-level exception, a missing or wrong default export, and in production the upstream
 * variables routes need but are unset, and a folder with no routes at all. `version` (a
 * configuration reload) imports the files afresh instead of from Node's module cache.
 *
 * One at a time on purpose: Node's ESM loader walks the whole module graph behind every
 * top-level import; starting all imports at once (as @fastify/autoload does) keeps a thousand
 * walks of the gateway's graph alive together with a thousand route modules (hundreds of MB).
 */
export async function loadRouteModules (dir: string, production: boolean, version?: number): Promise<RoutePlugin[]> {
  // Node keeps every imported module for the life of the process: a reload imports the files
  // again under a new URL (only the route modules themselves; modules they import stay cached).
  const query = version === undefined ? '' : `?v=${String(version)}`
  const problems: string[] = []
  const files = await routeModuleFiles(dir)
  const routes: RoutePlugin[] = []
  for (const file of files) {
    let mod: Record<string, unknown>
    try {
      mod = await import(pathToFileURL(file).href + query) as Record<string, unknown>
    } catch (err) {
      if (err instanceof ConfigError && err.where !== undefined) {
        problems.push(...err.lines())
        continue
      }
      const position = describePosition(errorPosition(err, file))
      if (cannotFindPortcullis(err)) {
        problems.push(`${position}: cannot import 'portcullis' from ${sourcePosition(dir).file}: a route module resolves it only inside the gateway's folder (${packageRoot()}; /app in the image) or with portcullis installed in a node_modules above it; move the folder there`)
        continue
      }
      const what = err instanceof SyntaxError ? 'syntax error' : 'failed to load'
      const message = (err instanceof Error ? err.message : String(err)).split('\n')[0]
      problems.push(`${position}: ${what}: ${message}; fix the module (it runs when the gateway starts)`)
      continue
    }
    const reason = notARoute(mod)
    if (reason !== undefined) {
      problems.push(`${sourcePosition(file).file}: ${reason}`)
      continue
    }
    routes.push(mod.default as RoutePlugin)
    if (production) problems.push(...missingVariableProblems(mod.default as RoutePlugin))
  }
  if (production && routes.length === 0 && problems.length === 0) {
    problems.push(`ROUTES_DIR: no route modules in ${sourcePosition(dir).file}; production needs at least one (a file with \`export default defineRoute({ prefix, upstream })\`)`)
  }
  if (problems.length > 0) throw new ConfigError('invalid routes', problems, '')
  return routes
}
