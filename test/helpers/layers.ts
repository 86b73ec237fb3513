/**
 * The import graph of the gateway's layers and its rules (test/architecture.test.ts):
 *
 *   lib/        the base: imports only lib/ (and packages, node:)
 *   plugins/X/  one capability: imports only lib/ and plugins/X/
 *   src/        the app: may import anything
 *
 * and no import cycle anywhere. Every import counts: `import`, `import type`, `export ... from`,
 * side-effect `import 'x'` and `import('x')`, as TypeScript's own pre-processor reads them.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, posix, relative, sep } from 'node:path'
import ts from 'typescript'

/** Folders of the graph, relative to the root. */
export const LAYER_DIRS = ['lib', 'plugins', 'src'] as const

/** file -> the files it imports (paths relative to the root, with `/`). Only edges inside the graph. */
export type ImportGraph = Map<string, string[]>

function tsFiles (root: string, dir: string, out: string[]): void {
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const rel = posix.join(dir, entry.name)
    if (entry.isDirectory()) tsFiles(root, rel, out)
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(rel)
  }
}

/** The specifiers a TypeScript source imports or re-exports (every form). */
export function importSpecifiers (source: string): string[] {
  return ts.preProcessFile(source, true, true).importedFiles.map((f) => f.fileName)
}

/** Builds the graph of lib/, plugins/ and src/ under `root`. Relative `.js` specifiers resolve to their `.ts` file. */
export function importGraph (root: string): ImportGraph {
  const files: string[] = []
  for (const dir of LAYER_DIRS) tsFiles(root, dir, files)
  const known = new Set(files)
  const graph: ImportGraph = new Map()
  for (const file of files.sort()) {
    const targets: string[] = []
    for (const spec of importSpecifiers(readFileSync(join(root, file), 'utf8'))) {
      if (!spec.startsWith('.')) continue
      const resolved = relative(root, join(root, dirname(file), spec)).split(sep).join('/').replace(/\.js$/, '.ts')
      const target = known.has(resolved) ? resolved : known.has(`${resolved}.ts`) ? `${resolved}.ts` : resolved
      // A relative import outside the three folders (routes/, a JSON file) is still an edge:
      // the layer rule judges it.
      targets.push(target)
    }
    graph.set(file, [...new Set(targets)])
  }
  return graph
}

/** The layer of a file: `lib`, `plugins/<name>`, `src`, or `other:<path>` outside them. */
export function layerOf (file: string): string {
  const parts = file.split('/')
  if (parts[0] === 'lib' || parts[0] === 'src') return parts[0]
  if (parts[0] === 'plugins' && parts.length > 2) return `plugins/${parts[1]}`
  return `other:${file}`
}

/** Why `from` may not import `to`, or undefined when the import is allowed. */
export function layerRule (from: string, to: string): string | undefined {
  const a = layerOf(from)
  const b = layerOf(to)
  if (a === 'src') return undefined
  if (a === 'lib') return b === 'lib' ? undefined : 'lib/ is the base layer: it imports only lib/ (and packages, node:)'
  if (a.startsWith('plugins/')) {
    if (b === 'lib' || b === a) return undefined
    if (b === 'src') return `a plugin imports only lib/ and its own folder; src/ is the app on top of the plugins (move what ${a} needs into lib/)`
    if (b.startsWith('plugins/')) return 'a plugin imports only lib/ and its own folder, never another plugin (share through lib/ or a Fastify decorator)'
    return 'a plugin imports only lib/ and its own folder'
  }
  return undefined
}

/** One line per import that breaks a layer rule: `a.ts imports b.ts: why`. */
export function layerViolations (graph: ImportGraph): string[] {
  const out: string[] = []
  for (const [from, targets] of graph) {
    for (const to of targets) {
      const why = layerRule(from, to)
      if (why !== undefined) out.push(`${from} imports ${to}: ${why}`)
    }
  }
  return out
}

/**
 * Every import cycle, one line per strongly connected component (files that all reach each
 * other): its shortest cycle through its first file, `a.ts -> b.ts -> a.ts`, and when more files
 * are caught in it, ` (files in the circle: ...)`.
 */
export function importCycles (graph: ImportGraph): string[] {
  // Tarjan's strongly connected components (recursive: the graph is small).
  let index = 0
  const indices = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const components: string[][] = []
  const visit = (v: string): void => {
    indices.set(v, index)
    low.set(v, index)
    index++
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue
      if (!indices.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, indices.get(w) as number))
      }
    }
    if (low.get(v) === indices.get(v)) {
      const component: string[] = []
      let w: string
      do {
        w = stack.pop() as string
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) components.push(component)
    }
  }
  for (const v of graph.keys()) if (!indices.has(v)) visit(v)
  return components.map((component) => {
    const cycle = describeCycle(graph, new Set(component))
    return component.length > cycle.split(' -> ').length - 1 ? `${cycle} (files in the circle: ${component.sort().join(', ')})` : cycle
  })
}

/** One concrete cycle through a component, from its first file (sorted) back to it. */
function describeCycle (graph: ImportGraph, members: Set<string>): string {
  const start = [...members].sort()[0] as string
  // Breadth-first search for the shortest way back to `start` inside the component.
  const previous = new Map<string, string>()
  const queue = [start]
  while (queue.length > 0) {
    const v = queue.shift() as string
    for (const w of graph.get(v) ?? []) {
      if (!members.has(w)) continue
      if (w === start) {
        const path = [start]
        for (let at = v; at !== start; at = previous.get(at) as string) path.splice(1, 0, at)
        return [...path, start].join(' -> ')
      }
      if (!previous.has(w)) {
        previous.set(w, v)
        queue.push(w)
      }
    }
  }
  return [...members].sort().join(' -> ')
}
