/**
 * The shared counter store (Redis through ioredis) and the failure policy applied when it fails.
 *
 * Every Redis wait is bounded: each request's store call settles within `redisTimeoutMs`
 * (redis-store.ts), there is no offline queue (a command while disconnected fails at once), a
 * stalled socket is dropped, and reconnects back off up to one second, so limits apply again
 * within about a second of Redis returning. Failures are published on the `storeState` channel
 * and logged once per interval with their count, never once per request.
 */
import type { FastifyBaseLogger } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import { storeState } from '../../lib/signals.js'
import type { RedisConnectionOptions } from './schema.js'

/** A client of one Redis (direct or found through Sentinel) or of a Redis Cluster. */
export type RedisClient = Redis | Cluster

/** One `host:port` (IPv6 in brackets). */
export interface RedisNode { readonly host: string, readonly port: number }

/**
 * Where the shared counters live: one server (`url`), the primary that Sentinel names for a
 * group and follows through failovers, or a Redis Cluster (seed nodes; the rest are discovered).
 */
export type RedisTarget =
  | { readonly kind: 'url', readonly url: string }
  | { readonly kind: 'sentinel', readonly sentinels: readonly RedisNode[], readonly name: string, readonly password: string | undefined, readonly sentinelPassword: string | undefined }
  | { readonly kind: 'cluster', readonly nodes: readonly RedisNode[], readonly password: string | undefined }

/** A validated `host:port` (HOST_PORT_PATTERN in schema.ts) as a node. */
function parseNode (text: string): RedisNode {
  const at = text.lastIndexOf(':')
  const host = text.slice(0, at)
  return { host: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(text.slice(at + 1)) }
}

/** The Redis the validated options name (`redisProblems` found none), or undefined: in memory. */
export function redisTargetOf (o: RedisConnectionOptions): RedisTarget | undefined {
  if (o.redisUrl !== undefined) return { kind: 'url', url: o.redisUrl }
  if (o.redisSentinels !== undefined && o.redisSentinelName !== undefined) {
    return { kind: 'sentinel', sentinels: o.redisSentinels.map(parseNode), name: o.redisSentinelName, password: o.redisPassword, sentinelPassword: o.redisSentinelPassword }
  }
  if (o.redisClusterNodes !== undefined) return { kind: 'cluster', nodes: o.redisClusterNodes.map(parseNode), password: o.redisPassword }
  return undefined
}

/** The error of a write sent to a replica (a primary demoted by a failover). */
const READONLY = /^READONLY /

/** Longest pause between reconnect attempts. */
const MAX_RECONNECT_DELAY_MS = 1000

function reconnectDelay (times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 10), MAX_RECONNECT_DELAY_MS)
}

/**
 * An ioredis client configured so that no request ever waits long on Redis. ioredis is loaded
 * here, so a gateway on the in-memory store never loads it.
 *
 * - Sentinel: the client asks the sentinels for the group's primary and connects to it (and
 *   checks its role). When the primary dies, commands fail at once (no offline queue) while the
 *   client asks again, with back-off, until the sentinels have promoted a replica. A primary
 *   demoted while alive (a manual failover, or after a partition) refuses the scripts with
 *   READONLY, which sends the client back to the sentinels.
 * - Cluster: commands go to the node serving their key's slot; every rate-limit script touches
 *   the keys of one limit only, hash-tagged to one slot (redis-store.ts).
 */
export async function createRedisClient (target: RedisTarget, timeoutMs: number): Promise<RedisClient> {
  const { Redis: RedisConstructor, Cluster: ClusterConstructor } = await import('ioredis')
  const connectTimeout = Math.min(Math.max(timeoutMs * 5, 500), 5000)
  const common = {
    connectTimeout,
    // Armed on send, so a command queued behind a timing-out auto-pipeline could wait twice as
    // long; the store's DeadlineQueue bounds each request's wait. This one still ends every
    // pipeline: a command lost with its connection is never answered otherwise, and ioredis
    // sends no later pipeline while one is running.
    commandTimeout: timeoutMs,
    // A stalled connection (no reply at all) is replaced instead of timing out forever.
    socketTimeout: Math.max(timeoutMs * 5, 1000),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: reconnectDelay,
    // The rate-limit script is idempotent per request only once; never replay it after a reconnect.
    autoResendUnfulfilledCommands: false,
    // Commands of concurrent requests issued in one tick go out in one write.
    enableAutoPipelining: true,
    lazyConnect: false
  }
  if (target.kind === 'url') return new RedisConstructor(target.url, common)
  if (target.kind === 'sentinel') {
    return new RedisConstructor({
      ...common,
      sentinels: target.sentinels.map((n) => ({ host: n.host, port: n.port })),
      name: target.name,
      ...(target.password !== undefined ? { password: target.password } : {}),
      ...(target.sentinelPassword !== undefined ? { sentinelPassword: target.sentinelPassword } : {}),
      // A sentinel that accepts and never answers does not hold the reconnect up.
      sentinelCommandTimeout: connectTimeout,
      sentinelRetryStrategy: reconnectDelay,
      // Not ioredis's failover detector: a `+switch-master` arriving while the client is
      // reconnecting ends the client for good (its connect is aborted, and an aborted connect is
      // not retried). A primary demoted while alive answers writes with READONLY instead, and
      // that reconnects through the sentinels (without replaying the refused command).
      failoverDetector: false,
      reconnectOnError: (err: Error) => READONLY.test(err.message) ? 1 : false
    })
  }
  return new ClusterConstructor(target.nodes.map((n) => ({ host: n.host, port: n.port })), {
    redisOptions: {
      connectTimeout: common.connectTimeout,
      commandTimeout: common.commandTimeout,
      socketTimeout: common.socketTimeout,
      maxRetriesPerRequest: common.maxRetriesPerRequest,
      autoResendUnfulfilledCommands: false,
      ...(target.password !== undefined ? { password: target.password } : {})
    },
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    // With none of the seed nodes reachable: try them again, backing off up to a second.
    clusterRetryStrategy: reconnectDelay,
    slotsRefreshTimeout: connectTimeout,
    lazyConnect: false
  })
}

/** The error fields worth a log line: code and message (no stack, no URL: ioredis never puts the password in them). */
function errorSummary (err: unknown): { code?: string, message: string } {
  if (err instanceof Error) {
    const code = (err as Error & { code?: unknown }).code
    return typeof code === 'string' ? { code, message: err.message } : { message: err.message }
  }
  return { message: String(err) }
}

/**
 * Tracks the store's state, publishes `storeState`, and logs failures: the first failure after a
 * quiet interval at once, then one line per interval with the count of failures in it while they
 * go on (`failures`), and nothing once an interval passes without any.
 */
export class StoreMonitor {
  private up = false
  private failures = 0
  private lastErr: unknown
  private timer: NodeJS.Timeout | null = null

  constructor (
    private readonly log: FastifyBaseLogger,
    private readonly intervalMs: number,
    /** What applies while the store fails: `open`, `closed`, or `local` (per-instance memory, the per-IP tier). */
    private readonly mode: 'open' | 'closed' | 'local',
    private readonly tier: 'ip' | 'route' = 'route'
  ) {}

  /** Watches the client's connection events. */
  watch (client: RedisClient): void {
    client.on('ready', () => this.setUp(true))
    client.on('close', () => this.setUp(false))
    // Without a listener an 'error' event would crash the process; the log is interval-limited.
    client.on('error', (err: Error) => this.failure(err, false))
  }

  get isUp (): boolean {
    return this.up
  }

  private setUp (up: boolean): void {
    if (up === this.up) return
    this.up = up
    if (up) this.log.info({ tier: this.tier }, 'rate-limit store (redis) connected; shared limits apply')
    else this.log.warn({ tier: this.tier, failureMode: this.mode }, 'rate-limit store (redis) disconnected; failure mode applies')
    if (storeState.hasSubscribers) storeState.publish({ store: 'redis', state: up ? 'up' : 'down' })
  }

  /**
   * One failed store operation (published as `error` for metrics, and counted in the next line)
   * or a connection error (`count` false: logged, not counted). Costs a counter increment while
   * an interval is open.
   */
  failure (err: unknown, count = true): void {
    if (count && storeState.hasSubscribers) storeState.publish({ store: 'redis', state: 'error' })
    if (this.timer !== null) {
      if (count) {
        this.failures++
        this.lastErr = err
      }
      return
    }
    this.log.warn({ tier: this.tier, failureMode: this.mode, error: errorSummary(err) }, 'rate-limit store (redis) failed; failure mode applied')
    this.failures = 0
    this.timer = setInterval(() => this.flush(), this.intervalMs)
    this.timer.unref()
  }

  private flush (): void {
    if (this.failures === 0) {
      this.close()
      return
    }
    this.log.warn({ tier: this.tier, failureMode: this.mode, failures: this.failures, intervalMs: this.intervalMs, error: errorSummary(this.lastErr) }, 'rate-limit store (redis) still failing; failure mode applied')
    this.failures = 0
  }

  /** Stops the interval (onClose). */
  close (): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    this.failures = 0
  }
}

/** Resolves when the client is ready or after `waitMs`, whichever comes first. */
export async function waitReady (client: RedisClient, waitMs: number): Promise<boolean> {
  if (client.status === 'ready') return true
  return await new Promise<boolean>((resolve) => {
    const done = (ready: boolean): void => {
      clearTimeout(timer)
      client.off('ready', onReady)
      resolve(ready)
    }
    const onReady = (): void => done(true)
    const timer = setTimeout(done, waitMs, false)
    timer.unref()
    client.on('ready', onReady)
  })
}

/**
 * Resolves like `waitReady`, but rejects when the server refuses the database the URL names:
 * ioredis reports the failed SELECT as an error and then goes ready on database 0, which would
 * count every limit in a database nobody configured.
 */
export async function waitReadyOnDatabase (client: RedisClient, waitMs: number): Promise<boolean> {
  let refused: Error | undefined
  const onError = (err: Error & { command?: { name?: string } }): void => {
    if (err.command?.name === 'select') refused = err
  }
  client.on('error', onError)
  try {
    const ready = await waitReady(client, waitMs)
    if (refused !== undefined) throw refused
    return ready
  } finally {
    client.off('error', onError)
  }
}

/** Closes the client without waiting on a dead connection. */
export async function closeRedis (client: RedisClient): Promise<void> {
  try {
    if (client.status === 'ready') await client.quit()
  } catch {
    // Already gone: disconnect below stops any reconnect loop.
  }
  client.disconnect()
}
