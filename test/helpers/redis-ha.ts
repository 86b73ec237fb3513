/**
 * Redis topologies of the test's own, on free loopback ports, configured in a temporary folder:
 * a Redis Cluster of three primaries, and a primary + replica watched by three sentinels. Every
 * process is SIGKILLed on teardown (and when the test process exits), pass or fail. Without
 * `redis-server` (and `redis-cli` for the cluster) the test FAILS with a message saying so.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { waitFor } from './wait-for.js'

interface Teardown { teardown: (fn: () => unknown) => void }

const HOST = '127.0.0.1'

/** Every server still running, killed when the test process exits whatever the outcome. */
const running = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/** Fails (never skips) when a binary the topology needs is not installed. */
function requireBinary (name: string): void {
  const probe = spawnSync(name, ['--version'], { encoding: 'utf8' })
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error(`${name} is required for this test and could not be run (${probe.error?.message ?? `exit ${String(probe.status)}`}); install Redis 7 (e.g. \`apt-get install redis-server\`, which also provides redis-cli and Sentinel)`)
  }
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, HOST, () => {
      const addr = s.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      s.close(() => resolve(port))
    })
  })
}

/** A short-lived client for probes and assertions (never retries, never queues). */
export function probeClient (port: number): Redis {
  const client = new Redis({ host: HOST, port, lazyConnect: true, connectTimeout: 1000, commandTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false })
  client.on('error', () => {})
  return client
}

/** Runs one command on a fresh connection to `port`. */
export async function ask (port: number, ...args: Array<string | number>): Promise<unknown> {
  const client = probeClient(port)
  try {
    await client.connect()
    return await client.call(String(args[0]), ...args.slice(1).map(String))
  } finally {
    client.disconnect()
  }
}

export interface RedisProcess {
  readonly port: number
  readonly child: ChildProcess
  /** SIGKILL, and wait for the exit. */
  kill: () => Promise<void>
}

/** A fresh folder for configs and cluster state, removed on teardown. */
function workDir (t: Teardown, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `portcullis-${name}-`))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** Starts `redis-server <conf> [--sentinel]` and waits for it to answer PING; killed on teardown. */
async function startServer (t: Teardown, dir: string, port: number, config: string, sentinel = false): Promise<RedisProcess> {
  const conf = join(dir, `${sentinel ? 'sentinel' : 'redis'}-${port}.conf`)
  writeFileSync(conf, `port ${port}\nbind ${HOST}\ndir ${dir}\nlogfile ${join(dir, `${port}.log`)}\n${config}\n`)
  const child = spawn('redis-server', sentinel ? [conf, '--sentinel'] : [conf], { stdio: 'ignore' })
  running.add(child)
  let spawnError: Error | undefined
  child.once('error', (err) => { spawnError = err })
  child.once('exit', () => { running.delete(child) })
  const kill = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
    const exited = new Promise((resolve) => { child.once('exit', resolve) })
    child.kill('SIGKILL')
    await exited
  }
  t.teardown(kill)
  await waitFor(async () => {
    if (spawnError !== undefined || child.exitCode !== null) throw new Error(`redis-server on port ${port} exited (${spawnError?.message ?? `code ${String(child.exitCode)}`}; see ${dir})`)
    return await ask(port, 'PING') === 'PONG'
  }, { timeoutMs: 30_000, message: `redis-server${sentinel ? ' --sentinel' : ''} on port ${port} to answer PING` }).catch((err: Error) => {
    if (spawnError !== undefined) throw new Error(`redis-server could not be started (${spawnError.message}); install Redis 7`)
    throw err
  })
  return { port, child, kill }
}

const NO_PERSISTENCE = 'save ""\nappendonly no'

export interface TestCluster {
  /** The primaries as `host:port`. */
  readonly nodes: readonly string[]
  readonly ports: readonly number[]
  /** The port of the primary serving `key`'s slot. */
  nodeOf: (key: string) => Promise<number>
  /** CLUSTER KEYSLOT of `key`. */
  slotOf: (key: string) => Promise<number>
  /** Every key of every primary matching `pattern`. */
  keys: (pattern: string) => Promise<Array<{ key: string, port: number }>>
}

/** Three cluster-enabled primaries (no replicas), joined with `redis-cli --cluster create`. */
export async function startRedisCluster (t: Teardown, primaries = 3): Promise<TestCluster> {
  requireBinary('redis-server')
  requireBinary('redis-cli')
  const dir = workDir(t, 'cluster')
  const ports: number[] = []
  for (let i = 0; i < primaries; i++) {
    const port = await freePort()
    // The bus port defaults to port + 10000, which may be taken or out of range: pick one.
    const bus = await freePort()
    await startServer(t, dir, port, `${NO_PERSISTENCE}\ncluster-enabled yes\ncluster-port ${bus}\ncluster-config-file ${join(dir, `nodes-${port}.conf`)}\ncluster-node-timeout 2000`)
    ports.push(port)
  }
  const nodes = ports.map((p) => `${HOST}:${p}`)
  const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: 60_000 })
  if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`)
  for (const port of ports) {
    await waitFor(async () => /cluster_state:ok/.test(String(await ask(port, 'CLUSTER', 'INFO'))), { timeoutMs: 30_000, message: `cluster_state:ok on ${port}` })
  }
  const slotOf = async (key: string): Promise<number> => Number(await ask(ports[0] as number, 'CLUSTER', 'KEYSLOT', key))
  const nodeOf = async (key: string): Promise<number> => {
    const slot = await slotOf(key)
    const shards = await ask(ports[0] as number, 'CLUSTER', 'SLOTS') as Array<[number, number, [string, number]]>
    const owner = shards.find(([from, to]) => slot >= from && slot <= to)
    if (owner === undefined) throw new Error(`no node serves slot ${slot}`)
    return Number(owner[2][1])
  }
  const keys = async (pattern: string): Promise<Array<{ key: string, port: number }>> => {
    const out: Array<{ key: string, port: number }> = []
    for (const port of ports) {
      for (const key of await ask(port, 'KEYS', pattern) as string[]) out.push({ key, port })
    }
    return out
  }
  return { nodes, ports, nodeOf, slotOf, keys }
}

export interface TestSentinels {
  /** The group name (`sentinel monitor <name> …`). */
  readonly name: string
  /** The sentinels as `host:port`. */
  readonly sentinels: readonly string[]
  readonly sentinelPorts: readonly number[]
  readonly primary: RedisProcess
  readonly replica: RedisProcess
  /** The primary's port as the sentinels currently name it. */
  primaryPort: () => Promise<number>
}

export interface SentinelTimings {
  /** `sentinel down-after-milliseconds` (default 1000). */
  readonly downAfterMs?: number
  /** `sentinel failover-timeout` (default 3000). */
  readonly failoverTimeoutMs?: number
}

/**
 * A primary, one replica and three sentinels (quorum 2) watching them; resolves once the
 * replica is in sync and every sentinel knows the replica and the two other sentinels, so a
 * failover can be agreed on.
 */
export async function startRedisSentinels (t: Teardown, timings: SentinelTimings = {}): Promise<TestSentinels> {
  requireBinary('redis-server')
  const dir = workDir(t, 'sentinel')
  const name = 'portcullis-test'
  const primaryPort = await freePort()
  const primary = await startServer(t, dir, primaryPort, NO_PERSISTENCE)
  const replicaPort = await freePort()
  const replica = await startServer(t, dir, replicaPort, `${NO_PERSISTENCE}\nreplicaof ${HOST} ${primaryPort}`)
  await waitFor(async () => /master_link_status:up/.test(String(await ask(replicaPort, 'INFO', 'replication'))), { timeoutMs: 30_000, message: 'the replica to sync with the primary' })
  const sentinelPorts: number[] = []
  for (let i = 0; i < 3; i++) {
    const port = await freePort()
    await startServer(t, dir, port, [
      `sentinel monitor ${name} ${HOST} ${primaryPort} 2`,
      `sentinel down-after-milliseconds ${name} ${timings.downAfterMs ?? 1000}`,
      `sentinel failover-timeout ${name} ${timings.failoverTimeoutMs ?? 3000}`,
      `sentinel parallel-syncs ${name} 1`
    ].join('\n'), true)
    sentinelPorts.push(port)
  }
  for (const port of sentinelPorts) {
    await waitFor(async () => {
      const replicas = await ask(port, 'SENTINEL', 'REPLICAS', name) as string[][]
      const others = await ask(port, 'SENTINEL', 'SENTINELS', name) as string[][]
      const healthy = (entry: string[]): boolean => !/s_down|o_down|disconnected/.test(entry[entry.indexOf('flags') + 1] ?? '')
      return replicas.some((r) => r[r.indexOf('port') + 1] === String(replicaPort) && healthy(r)) && others.filter(healthy).length === 2
    }, { timeoutMs: 60_000, intervalMs: 100, message: `sentinel ${port} to know the replica and the two other sentinels` })
  }
  return {
    name,
    sentinels: sentinelPorts.map((p) => `${HOST}:${p}`),
    sentinelPorts,
    primary,
    replica,
    primaryPort: async () => {
      const addr = await ask(sentinelPorts[0] as number, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name) as [string, string]
      return Number(addr[1])
    }
  }
}
