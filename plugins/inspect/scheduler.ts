/**
 * Joint engine runs. With a cacheable ruleset, the phases that reach the engine in one turn of the
 * event loop (the requests read in one poll) are judged together at setImmediate: one run over all
 * of them (InspectEngine.allClean), and only when it matches something or times out, one run per
 * phase, exactly as alone. A clean joint run costs each phase a fraction of the engine's fixed
 * cost per run.
 *
 * The scheduler knows nothing of requests or policy: each phase carries its collected values and
 * an opaque `waiter` that `settle` receives with the verdict (or the engine's error), in the async
 * context of the request that deferred it.
 */
import { AsyncResource } from 'node:async_hooks'
import type { InspectResult } from './engine.js'

/** What the scheduler reads of a phase's collected values (`Collected`). */
export interface JointInput {
  readonly size: number
  readonly onlyScreened: boolean
  rememberClean: () => void
}

/** What the scheduler asks of the engine (`InspectEngine`). */
export interface JointEngine<C extends JointInput> {
  allClean: (inputs: readonly C[], screened: boolean, timeoutMicros: number) => boolean
}

/** Phases judged in one engine run at most (well under the engine's 256 items of a list). */
export const JOINT_MAX_PHASES = 64
/** Characters judged in one engine run at most; a longer phase runs alone. */
export const JOINT_MAX_CHARS = 4096
const CLEAN: InspectResult = Object.freeze({ matches: Object.freeze([]), timeout: false })

/**
 * A phase waiting for the next joint run. An AsyncResource: its request goes on in its own async
 * context, not in that of the phase that scheduled the run.
 */
class PendingPhase<W, C> extends AsyncResource {
  constructor (readonly c: C, readonly waiter: W) {
    super('portcullis-inspect')
  }
}

/** Phases gathered for one joint engine run, and their characters. */
interface JointBatch<W, C> {
  phases: Array<PendingPhase<W, C>>
  chars: number
  readonly screened: boolean
}

export interface JointSchedulerOptions<W, C extends JointInput, E extends JointEngine<C>> {
  /** The engine, or undefined when none was built (nothing can be pending then). */
  readonly engine: () => E | undefined
  /** Judges one phase alone (remembering a clean verdict's values). */
  readonly evaluate: (engine: E, c: C) => InspectResult
  /** Goes on with a phase's request: `result`, or `err` when the engine threw. May throw. */
  readonly settle: (waiter: W, result: InspectResult | undefined, err: unknown) => void
  readonly timeoutMicros: number
}

export class JointScheduler<W, C extends JointInput, E extends JointEngine<C>> {
  private pending: Array<PendingPhase<W, C>> = []
  private firstError: unknown
  private readonly options: JointSchedulerOptions<W, C, E>
  private readonly flushSoon: () => void

  constructor (options: JointSchedulerOptions<W, C, E>) {
    this.options = options
    this.flushSoon = () => { this.flush() }
  }

  /** Queues a phase for the next joint run (at setImmediate). */
  defer (c: C, waiter: W): void {
    this.pending.push(new PendingPhase(c, waiter))
    if (this.pending.length === 1) setImmediate(this.flushSoon)
  }

  /**
   * Judges every pending phase (at setImmediate, and before the engine is disposed). Every phase
   * is settled whatever another one's continuation does; the first exception one threw is
   * rethrown at the end, as it would have surfaced alone.
   */
  flush (): void {
    const phases = this.pending
    const engine = this.options.engine()
    if (phases.length === 0 || engine === undefined) return
    this.pending = []
    // Screened phases go to the screened engine, the others to the whole ruleset (as evaluate()).
    const screened: JointBatch<W, C> = { phases: [], chars: 0, screened: true }
    const plain: JointBatch<W, C> = { phases: [], chars: 0, screened: false }
    for (const p of phases) {
      if (p.c.size > JOINT_MAX_CHARS) this.settleAlone(engine, p)
      else this.addToBatch(engine, p.c.onlyScreened ? screened : plain, p)
    }
    this.runJoint(engine, screened.phases, true)
    this.runJoint(engine, plain.phases, false)
    const err = this.firstError
    this.firstError = undefined
    if (err !== undefined) throw err
  }

  /** Settles one phase in its request's async context, keeping the first exception for the end. */
  private settle (p: PendingPhase<W, C>, result: InspectResult | undefined, err?: unknown): void {
    try {
      p.runInAsyncScope(this.options.settle, null, p.waiter, result, err)
    } catch (thrown) {
      this.firstError ??= thrown
    }
  }

  private settleAlone (engine: E, p: PendingPhase<W, C>): void {
    let result: InspectResult
    try {
      result = this.options.evaluate(engine, p.c)
    } catch (err) {
      this.settle(p, undefined, err)
      return
    }
    this.settle(p, result)
  }

  private runJoint (engine: E, group: Array<PendingPhase<W, C>>, screened: boolean): void {
    let clean = false
    if (group.length > 1) {
      try {
        clean = engine.allClean(group.map((p) => p.c), screened, this.options.timeoutMicros)
      } catch {
        // Judged one by one below, where the error reaches each request.
      }
    }
    if (clean) {
      for (const p of group) {
        p.c.rememberClean()
        this.settle(p, CLEAN)
      }
      return
    }
    for (const p of group) this.settleAlone(engine, p)
  }

  /** Adds a phase to its batch, running the batch first when the phase would overfill it. */
  private addToBatch (engine: E, batch: JointBatch<W, C>, p: PendingPhase<W, C>): void {
    const size = p.c.size
    if (batch.phases.length === JOINT_MAX_PHASES || batch.chars + size > JOINT_MAX_CHARS) {
      this.runJoint(engine, batch.phases, batch.screened)
      batch.phases = []
      batch.chars = 0
    }
    batch.phases.push(p)
    batch.chars += size
  }
}
