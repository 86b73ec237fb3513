/**
 * The layers of the source tree (docs/internals/architecture.md): lib/ is the base and imports
 * only lib/; each plugins/<name>/ imports only lib/ and itself; src/ (the app) may import
 * anything; and no import cycle anywhere. Checked over every import form, `import type` included.
 */
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { importCycles, importGraph, importSpecifiers, layerViolations, type ImportGraph } from './helpers/layers.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

t.test('the source tree keeps its layers: lib/ -> plugins/<name>/ -> src/', async (t) => {
  const graph = importGraph(ROOT)
  t.ok(graph.has('lib/errors.ts') && graph.has('plugins/proxy/route.ts') && graph.has('src/app.ts'), 'the graph holds lib/, plugins/ and src/')
  t.ok((graph.get('src/app.ts') ?? []).length > 5, 'imports are read')
  const violations = layerViolations(graph)
  t.strictSame(violations, [], violations.length === 0 ? 'every import is allowed' : `imports across layers:\n  ${violations.join('\n  ')}`)
})

t.test('no import cycle between source files', async (t) => {
  const cycles = importCycles(importGraph(ROOT))
  t.strictSame(cycles, [], cycles.length === 0 ? 'acyclic' : `import cycles:\n  ${cycles.join('\n  ')}`)
})

t.test('the checker reads every import form', async (t) => {
  const source = [
    "import a from './a.js'",
    "import type { B } from './b.js'",
    "import './c.js'",
    "export { d } from './d.js'",
    "export type { E } from './e.js'",
    "export * from './f.js'",
    "const g = await import('./g.js')"
  ].join('\n')
  t.strictSame(importSpecifiers(source).sort(), ['./a.js', './b.js', './c.js', './d.js', './e.js', './f.js', './g.js'])
})

t.test('the checker finds an upward import and a cycle (it cannot pass vacuously)', async (t) => {
  const graph: ImportGraph = new Map([
    ['lib/a.ts', ['lib/b.ts', 'plugins/x/index.ts']],
    ['lib/b.ts', ['lib/a.ts']],
    ['plugins/x/index.ts', ['lib/a.ts', 'plugins/x/util.ts', 'plugins/y/index.ts', 'src/app.ts']],
    ['plugins/x/util.ts', []],
    ['plugins/y/index.ts', ['lib/b.ts']],
    ['src/app.ts', ['plugins/x/index.ts', 'plugins/y/index.ts', 'lib/a.ts']]
  ])
  const violations = layerViolations(graph)
  t.equal(violations.length, 3, violations.join('\n'))
  t.match(violations[0], /^lib\/a\.ts imports plugins\/x\/index\.ts: lib\/ is the base layer/)
  t.match(violations[1], /^plugins\/x\/index\.ts imports plugins\/y\/index\.ts: .*never another plugin/)
  t.match(violations[2], /^plugins\/x\/index\.ts imports src\/app\.ts: .*src\/ is the app/)
  const cycles = importCycles(graph)
  t.equal(cycles.length, 1, 'one circle')
  t.match(cycles[0], /^lib\/a\.ts -> lib\/b\.ts -> lib\/a\.ts \(files in the circle: lib\/a\.ts, lib\/b\.ts, plugins\/x\/index\.ts, plugins\/y\/index\.ts, src\/app\.ts\)$/, 'named with its shortest cycle and every file caught in it')
  t.strictSame(importCycles(new Map([['a.ts', ['a.ts']]])), ['a.ts -> a.ts'], 'a file importing itself')
  t.strictSame(importCycles(new Map([['a.ts', ['b.ts']], ['b.ts', []]])), [], 'no cycle in a chain')
})
