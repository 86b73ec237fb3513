/**
 * The joint-run scheduler alone (plugins/inspect/scheduler.ts), on stand-ins for the engine and
 * the collected values: batching bounds, the one-by-one fallback, async contexts, errors.
 * The real engine under it is tested in inspect-joint.test.ts.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import t from 'tap'
import { JOINT_MAX_CHARS, JOINT_MAX_PHASES, JointScheduler, type JointEngine, type JointInput } from '../../plugins/inspect/scheduler.js'
import type { InspectResult } from '../../plugins/inspect/engine.js'
import { waitFor } from '../helpers/wait-for.js'

class Phase implements JointInput {
  remembered = 0
  constructor (readonly name: string, readonly size = 10, readonly onlyScreened = false, readonly attack = false) {}
  rememberClean (): void { this.remembered++ }
}

class Engine implements JointEngine<Phase> {
  readonly runs: Array<{ names: string[], screened: boolean }> = []
  throwJoint = false
  allClean (inputs: readonly Phase[], screened: boolean): boolean {
    this.runs.push({ names: inputs.map((p) => p.name), screened })
    if (this.throwJoint) throw new Error('engine failed')
    return inputs.every((p) => !p.attack)
  }
}

const MATCH: InspectResult = { matches: [{ ruleId: 'r1', family: 'sqli' }], timeout: false }
const CLEAN: InspectResult = { matches: [], timeout: false }

function setup (engine: Engine | undefined = new Engine()): { engine: Engine | undefined, scheduler: JointScheduler<string, Phase, Engine>, settled: Map<string, InspectResult | Error>, alone: string[] } {
  const settled = new Map<string, InspectResult | Error>()
  const alone: string[] = []
  const scheduler = new JointScheduler<string, Phase, Engine>({
    engine: () => engine,
    evaluate: (_e, c) => {
      alone.push(c.name)
      return c.attack ? MATCH : CLEAN
    },
    settle: (waiter, result, err) => {
      if (settled.has(waiter)) throw new Error(`${waiter} settled twice`)
      settled.set(waiter, result ?? (err as Error))
    },
    timeoutMicros: 1000
  })
  return { engine, scheduler, settled, alone }
}

t.test('phases deferred in one turn share one run; a clean run settles each once and remembers its values', async (t) => {
  const { engine, scheduler, settled, alone } = setup()
  const phases = Array.from({ length: 5 }, (_, i) => new Phase(`p${i}`))
  for (const p of phases) scheduler.defer(p, p.name)
  t.equal(settled.size, 0, 'nothing is judged before setImmediate')
  await waitFor(() => settled.size === 5)
  t.same(engine?.runs, [{ names: ['p0', 'p1', 'p2', 'p3', 'p4'], screened: false }])
  t.same(alone, [], 'no phase judged alone')
  for (const p of phases) {
    t.same(settled.get(p.name), CLEAN)
    t.equal(p.remembered, 1)
  }
})

t.test('a joint run that matches is followed by one run per phase; only the attack matches', async (t) => {
  const { scheduler, settled, alone } = setup()
  scheduler.defer(new Phase('a'), 'a')
  scheduler.defer(new Phase('b', 10, false, true), 'b')
  scheduler.defer(new Phase('c'), 'c')
  await waitFor(() => settled.size === 3)
  t.same(alone, ['a', 'b', 'c'])
  t.same(settled.get('b'), MATCH)
  t.same(settled.get('a'), CLEAN)
})

t.test('batches stop at JOINT_MAX_PHASES phases and JOINT_MAX_CHARS characters; a longer phase runs alone', async (t) => {
  const { engine, scheduler, settled, alone } = setup()
  const n = JOINT_MAX_PHASES + 3
  for (let i = 0; i < n; i++) scheduler.defer(new Phase(`p${i}`), `p${i}`)
  scheduler.defer(new Phase('big', JOINT_MAX_CHARS + 1), 'big')
  await waitFor(() => settled.size === n + 1)
  t.same(engine?.runs.map((r) => r.names.length), [JOINT_MAX_PHASES, 3])
  t.same(alone, ['big'])

  engine?.runs.splice(0)
  const half = Math.floor(JOINT_MAX_CHARS / 2) + 1
  for (const name of ['x', 'y', 'z']) scheduler.defer(new Phase(name, half), name)
  await waitFor(() => settled.size === n + 4)
  t.same(engine?.runs, [], 'no joint run: each phase filled a batch alone')
  t.same(alone.slice(1), ['x', 'y', 'z'], 'and was judged alone')
})

t.test('screened and unscreened phases never share a run', async (t) => {
  const { engine, scheduler, settled } = setup()
  scheduler.defer(new Phase('s1', 10, true), 's1')
  scheduler.defer(new Phase('u1'), 'u1')
  scheduler.defer(new Phase('s2', 10, true), 's2')
  scheduler.defer(new Phase('u2'), 'u2')
  await waitFor(() => settled.size === 4)
  t.same(engine?.runs, [{ names: ['s1', 's2'], screened: true }, { names: ['u1', 'u2'], screened: false }])
})

t.test('a joint run that throws is judged one by one', async (t) => {
  const { engine, scheduler, settled, alone } = setup()
  if (engine !== undefined) engine.throwJoint = true
  scheduler.defer(new Phase('a'), 'a')
  scheduler.defer(new Phase('b'), 'b')
  await waitFor(() => settled.size === 2)
  t.same(alone, ['a', 'b'])
  t.same(settled.get('a'), CLEAN)
})

t.test('every phase is settled although a continuation throws; the first exception surfaces at the end', async (t) => {
  const order: string[] = []
  const engine = new Engine()
  const scheduler = new JointScheduler<string, Phase, Engine>({
    engine: () => engine,
    evaluate: () => CLEAN,
    settle: (waiter) => {
      order.push(waiter)
      if (waiter !== 'b') throw new Error(`continuation of ${waiter}`)
    },
    timeoutMicros: 1000
  })
  for (const name of ['a', 'b', 'c']) scheduler.defer(new Phase(name), name)
  t.throws(() => { scheduler.flush() }, { message: 'continuation of a' })
  t.same(order, ['a', 'b', 'c'])
  t.doesNotThrow(() => { scheduler.flush() }, 'nothing is left pending')
})

t.test('each phase goes on in the async context that deferred it', async (t) => {
  const als = new AsyncLocalStorage<string>()
  const seen = new Map<string, string | undefined>()
  const engine = new Engine()
  const scheduler = new JointScheduler<string, Phase, Engine>({
    engine: () => engine,
    evaluate: () => CLEAN,
    settle: (waiter) => { seen.set(waiter, als.getStore()) },
    timeoutMicros: 1000
  })
  for (const name of ['r1', 'r2', 'r3']) als.run(`ctx-${name}`, () => { scheduler.defer(new Phase(name), name) })
  await waitFor(() => seen.size === 3)
  t.same(Object.fromEntries(seen), { r1: 'ctx-r1', r2: 'ctx-r2', r3: 'ctx-r3' })
})

t.test('without an engine nothing is judged (and nothing was deferred)', async (t) => {
  const { scheduler, settled } = setup(undefined)
  t.doesNotThrow(() => { scheduler.flush() })
  t.equal(settled.size, 0)
})
