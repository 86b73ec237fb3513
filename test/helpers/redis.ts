/**
 * The real Redis the shared-state tests use (127.0.0.1:6379; `.ci/run` starts it). A test that
 * needs it calls `requireRedis(t)`: when Redis is unreachable the test FAILS with a clear
 * message (never skips). Every test works under its own key prefix, deleted on teardown.
 */
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'

interface Teardown { teardown: (fn: () => unknown) => void }

export const REDIS_HOST = '127.0.0.1'
export const REDIS_PORT = 6379
export const REDIS_URL = `redis://${REDIS_HOST}:${REDIS_PORT}`

export interface TestRedis {
  /** A connected client for assertions. */
  readonly client: Redis
  /** A key prefix unique to this test (`portcullis-test:<name>:<random>:`), cleaned up on teardown. */
  readonly prefix: string
  /** Keys currently under the prefix. */
  keys: () => Promise<string[]>
}

async function deletePrefix (client: Redis, prefix: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) await client.del(...keys)
  } while (cursor !== '0')
}

/** Connects to the test Redis or throws an error that says how to start it. */
export async function requireRedis (t: Teardown, name: string): Promise<TestRedis> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false })
  client.on('error', () => {})
  try {
    await client.connect()
    const pong = await client.ping()
    if (pong !== 'PONG') throw new Error(`unexpected PING reply ${pong}`)
  } catch (err) {
    client.disconnect()
    throw new Error(`Redis is required at ${REDIS_URL} and is not reachable (${(err as Error).message}); start it (e.g. \`redis-server --daemonize yes\`, or .ci/run does it)`)
  }
  const prefix = `portcullis-test:${name}:${randomBytes(6).toString('hex')}:`
  t.teardown(async () => {
    try {
      await deletePrefix(client, prefix)
    } finally {
      client.disconnect()
    }
  })
  return {
    client,
    prefix,
    keys: async () => {
      const out: string[] = []
      let cursor = '0'
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
        cursor = next
        out.push(...keys)
      } while (cursor !== '0')
      return out
    }
  }
}

/** A redis-server of the test's own (outage tests stop, hang and kill it; never the shared one). */
export interface OwnRedis {
  readonly port: number
  readonly url: string
  /** SIGSTOP: the process hangs; connections stay open, nothing is answered. */
  hang: () => void
  /** SIGCONT after `hang`. */
  wake: () => void
  /** SIGKILL, and wait for the exit. */
  kill: () => Promise<void>
  /** Starts a fresh server on the same port (after `kill`). */
  restart: () => Promise<void>
}

async function freePort (): Promise<number> {
  const { createServer } = await import('node:net')
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      s.close(() => resolve(port))
    })
  })
}

/** Starts `redis-server` on a free port, without persistence; killed on teardown. */
export async function startOwnRedis (t: Teardown): Promise<OwnRedis> {
  const { spawn } = await import('node:child_process')
  const port = await freePort()
  let child: import('node:child_process').ChildProcess | undefined
  const start = async (): Promise<void> => {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: 'ignore' })
    child = proc
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false })
    probe.on('error', () => {})
    const until = Date.now() + 10_000
    for (;;) {
      try {
        await probe.connect()
        await probe.ping()
        probe.disconnect()
        return
      } catch (err) {
        probe.disconnect()
        if (proc.exitCode !== null || Date.now() > until) throw new Error(`redis-server on port ${port} did not start (${(err as Error).message})`)
        await new Promise((resolve) => { setImmediate(resolve) })
      }
    }
  }
  const kill = async (): Promise<void> => {
    const proc = child
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise((resolve) => { proc.once('exit', resolve) })
    proc.kill('SIGKILL')
    await exited
  }
  await start()
  t.teardown(kill)
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    hang: () => { child?.kill('SIGSTOP') },
    wake: () => { child?.kill('SIGCONT') },
    kill,
    restart: start
  }
}
