/**
 * WORKERS > 1: the primary process forks that many gateway workers (node:cluster) that share the
 * public port; it serves no traffic itself.
 *
 * - Worker i (1-based) gets ADMIN_PORT + i - 1 when ADMIN_PORT is set, so each worker's metrics
 *   can be scraped on its own port (ADMIN_PORT=0 stays 0: a free port each).
 * - A worker that dies unexpectedly after it was serving is replaced, at most once per second
 *   per slot; a worker that fails before it serves (its `serving` message, sent once the public
 *   port listens: other listeners, such as the demo upstream, come earlier) stops the whole group
 *   with status 1.
 * - SIGTERM/SIGINT go to every worker, which drain as a single process does; the primary exits
 *   when all have exited (SIGKILL for any still running DRAIN_DELAY_MS + DRAIN_TIMEOUT_MS + 5 s later), with
 *   status 0 when every worker exited cleanly.
 * - SIGHUP goes to every serving worker, which reloads its configuration in place (src/reload.ts;
 *   API_KEYS_FILE included): no worker restarts, so no connection is dropped.
 */
import cluster, { type Worker } from 'node:cluster'
import type { GatewayConfig } from './config.js'

const RESTART_MIN_INTERVAL_MS = 1000

/** What a worker sends its primary once its public port listens. */
export const WORKER_SERVING = 'portcullis:serving'

function log (msg: string): void {
  process.stderr.write(`${JSON.stringify({ level: 40, time: Date.now(), pid: process.pid, msg })}\n`)
}

/** Runs the cluster primary; resolves with the exit status once every worker has exited. */
export async function runPrimary (config: GatewayConfig, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const slots = new Map<Worker, number>()
  const lastStart = new Map<number, number>()
  const serving = new Set<Worker>()
  let stopping = false
  let failed = false

  function fork (slot: number): void {
    const workerEnv: NodeJS.ProcessEnv = {}
    if (config.admin.port !== undefined && config.admin.port !== 0) workerEnv.ADMIN_PORT = String(config.admin.port + slot - 1)
    lastStart.set(slot, Date.now())
    const worker = cluster.fork({ ...env, ...workerEnv })
    slots.set(worker, slot)
  }

  return await new Promise<number>((resolve) => {
    cluster.on('message', (worker, message) => { if (message === WORKER_SERVING) serving.add(worker) })
    cluster.on('exit', (worker, code, signal) => {
      const slot = slots.get(worker)
      const started = serving.delete(worker)
      slots.delete(worker)
      if (slot === undefined) return
      if (!started && !stopping) {
        // It never served: a startup failure (port in use, bad route module) that a restart
        // would only repeat. Stop the others and fail like a single process would.
        log(`worker ${slot} failed to start (${signal ?? `code ${String(code)}`}); stopping`)
        failed = true
        stop('SIGTERM')
        return
      }
      if (stopping) {
        if (code !== 0) failed = true
        if (slots.size === 0) resolve(failed ? 1 : 0)
        return
      }
      log(`worker ${slot} (pid ${String(worker.process.pid)}) exited (${signal ?? `code ${String(code)}`}); replacing it`)
      const wait = Math.max(0, (lastStart.get(slot) ?? 0) + RESTART_MIN_INTERVAL_MS - Date.now())
      setTimeout(() => { if (!stopping) fork(slot) }, wait).unref()
    })

    function stop (signal: NodeJS.Signals): void {
      if (stopping) return
      stopping = true
      if (slots.size === 0) {
        resolve(failed ? 1 : 0)
        return
      }
      for (const worker of slots.keys()) worker.process.kill(signal)
      setTimeout(() => {
        for (const worker of slots.keys()) worker.process.kill('SIGKILL')
      }, config.drainDelayMs + config.drainTimeoutMs + 5000).unref()
    }
    process.on('SIGTERM', () => { stop('SIGTERM') })
    process.on('SIGINT', () => { stop('SIGINT') })
    // Only to serving workers: one still starting has no SIGHUP handler yet, and the signal
    // would end it (a failed start stops the group).
    process.on('SIGHUP', () => {
      if (stopping) return
      log(`reloading the configuration of ${String(serving.size)} workers`)
      for (const worker of serving) worker.process.kill('SIGHUP')
    })

    for (let slot = 1; slot <= config.workers; slot++) fork(slot)
  })
}

/** True in the cluster primary when the configuration asks for several workers. */
export function isClusterPrimary (config: GatewayConfig): boolean {
  return config.workers > 1 && cluster.isPrimary
}
