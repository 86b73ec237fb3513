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
