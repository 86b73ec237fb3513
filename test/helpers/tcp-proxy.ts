/**
 * A small TCP proxy for failure tests (e.g. in front of Redis), listening on 127.0.0.1:0.
 *
 * - `pause()`: stop forwarding in both directions (bytes are held, connections stay open; new
 *   connections are accepted and held too) until `resume()`.
 * - `delay(ms)`: add `ms` of latency to every chunk in both directions.
 * - `drop()`: destroy every open connection (both sides) at once.
 * - `refuse(true)`: close every new connection immediately (the service looks down).
 * - `resume()`: forward again (held bytes first, in order), no delay, accept connections.
 * Real sockets throughout: nothing is mocked.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'

interface Teardown { teardown: (fn: () => unknown) => void }

export interface TcpProxy {
  readonly port: number
  readonly server: Server
  /** Connections accepted so far. */
  readonly accepted: () => number
  pause: () => void
  delay: (ms: number) => void
  drop: () => void
  refuse: (on: boolean) => void
  resume: () => void
  close: () => Promise<void>
}

/** One direction of one connection: chunks wait here for their due time or for resume. */
class Pipe {
  private readonly queue: Array<{ chunk: Buffer, due: number }> = []
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly to: Socket, private readonly state: { paused: boolean, delayMs: number }) {}

  push (chunk: Buffer): void {
    this.queue.push({ chunk, due: Date.now() + this.state.delayMs })
    this.pump()
  }

  pump (): void {
    if (this.timer !== undefined) return
    while (!this.state.paused && this.queue.length > 0) {
      const head = this.queue[0]
      const wait = head.due - Date.now()
      if (wait > 0) {
        this.timer = setTimeout(() => { this.timer = undefined; this.pump() }, wait)
        return
      }
      this.queue.shift()
      if (!this.to.destroyed) this.to.write(head.chunk)
    }
  }

  stop (): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.queue.length = 0
  }
}

/** Starts a proxy to `targetHost:targetPort`; closed on teardown. */
export async function startTcpProxy (t: Teardown, targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const state = { paused: false, delayMs: 0, refusing: false }
  const sockets = new Set<Socket>()
  const pipes = new Set<Pipe>()
  let accepted = 0

  const server = createServer((client) => {
    accepted++
    if (state.refusing) {
      client.destroy()
      return
    }
    const upstream = connect(targetPort, targetHost)
    const up = new Pipe(upstream, state)
    const down = new Pipe(client, state)
    pipes.add(up)
    pipes.add(down)
    sockets.add(client)
    sockets.add(upstream)
    const end = (): void => {
      up.stop()
      down.stop()
      pipes.delete(up)
      pipes.delete(down)
      sockets.delete(client)
      sockets.delete(upstream)
      client.destroy()
      upstream.destroy()
    }
    client.on('data', (c: Buffer) => up.push(c))
    upstream.on('data', (c: Buffer) => down.push(c))
    client.on('error', end)
    upstream.on('error', end)
    client.on('close', end)
    upstream.on('close', end)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port

  const drop = (): void => {
    for (const s of [...sockets]) s.destroy()
  }
  const close = async (): Promise<void> => {
    state.refusing = true
    drop()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  }
  t.teardown(close)

  return {
    port,
    server,
    accepted: () => accepted,
    pause: () => { state.paused = true },
    delay: (ms: number) => { state.delayMs = ms },
    drop,
    refuse: (on: boolean) => { state.refusing = on },
    resume: () => {
      state.paused = false
      state.delayMs = 0
      state.refusing = false
      for (const p of pipes) p.pump()
    },
    close
  }
}
