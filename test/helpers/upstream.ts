/**
 * A real HTTP upstream on 127.0.0.1:0 that records everything it receives, so tests can prove
 * what did or did not reach the upstream.
 */
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net'

export interface RecordedRequest {
  readonly method: string
  readonly url: string
  readonly headers: IncomingMessage['headers']
  readonly rawHeaders: string[]
  body: Buffer
  /** The body arrived completely (the request ended normally). */
  complete: boolean
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, recorded: RecordedRequest) => void

export interface Upstream {
  readonly url: string
  readonly port: number
  readonly server: Server
  readonly requests: RecordedRequest[]
  close: () => Promise<void>
}

interface Teardown { teardown: (fn: () => unknown) => void }

/** Default handler: 200 JSON echo of method, url and headers. */
export const echoHandler: UpstreamHandler = (req, res, recorded) => {
  const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyBytes: recorded.body.length })
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

/** A handler that answers `{ method, bodyBytes }` after `ms` (a slow upstream, once the body has been read). */
export function delayedEcho (ms: number): UpstreamHandler {
  return (req, res, recorded) => {
    setTimeout(() => {
      const body = JSON.stringify({ method: req.method, bodyBytes: recorded.body.length })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    }, ms)
  }
}

/** Starts a recording upstream; `handler` runs once the request body has been read. */
export async function startUpstream (t: Teardown, handler: UpstreamHandler = echoHandler, opts: { waitForBody?: boolean } = {}): Promise<Upstream> {
  const requests: RecordedRequest[] = []
  const sockets = new Set<Socket>()
  const server = createServer((req, res) => {
    const rec: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.alloc(0), complete: false }
    requests.push(rec)
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => { chunks.push(c); rec.body = Buffer.concat(chunks) })
    req.on('error', () => {})
    if (opts.waitForBody === false) {
      req.on('end', () => { rec.complete = true })
      handler(req, res, rec)
      return
    }
    req.on('end', () => {
      rec.complete = true
      handler(req, res, rec)
    })
  })
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const close = async (): Promise<void> => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  }
  t.teardown(close)
  return { url: `http://127.0.0.1:${port}`, port, server, requests, close }
}

/** A TCP port on 127.0.0.1 with nothing listening (connection refused). */
export async function closedPort (): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((resolve) => { s.close(() => { resolve() }) })
  return port
}

/**
 * A raw TCP "upstream" on 127.0.0.1:0 that hands every connection to `behaviour` (by default it
 * accepts and never answers), for responses no HTTP server would send. Closed on teardown.
 */
export async function rawUpstream (t: Teardown, behaviour: (s: Socket) => void = () => {}): Promise<{ url: string, connections: () => number }> {
  let n = 0
  const sockets = new Set<Socket>()
  const server = createTcpServer((s) => { n++; sockets.add(s); s.on('error', () => {}); behaviour(s) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => n }
}
