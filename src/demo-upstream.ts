/**
 * The built-in demo upstream used when the gateway runs with no environment (development only):
 * it echoes what it received, so `npm start` can be tried with curl straight away.
 */
import type { AddressInfo } from 'node:net'
import { createServer, type Server } from 'node:http'

const SHOWN_HEADERS = ['host', 'x-consumer-id', 'x-consumer-strategy', 'x-request-id', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'content-type', 'user-agent']

export async function startDemoUpstream (port: number, host = '127.0.0.1'): Promise<Server> {
  const server = createServer((req, res) => {
    let size = 0
    req.on('data', (chunk: Buffer) => { size += chunk.length })
    req.on('end', () => {
      const headers: Record<string, string | string[] | undefined> = {}
      for (const name of SHOWN_HEADERS) if (req.headers[name] !== undefined) headers[name] = req.headers[name]
      const body = JSON.stringify({ service: 'demo-upstream', method: req.method, url: req.url, headers, bodyBytes: size })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  return server
}

/**
 * The demo upstream on `port`, or on a free port when another program holds that one: the demo
 * routes must never reach a stranger's service (its address gets `x-consumer-id` and the rest).
 * `moved` is true in the second case.
 */
export async function startDemoUpstreamSomewhere (port: number, host = '127.0.0.1'): Promise<{ server: Server, url: string, moved: boolean }> {
  let server: Server
  let moved = false
  try {
    server = await startDemoUpstream(port, host)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err
    server = await startDemoUpstream(0, host)
    moved = true
  }
  const address = server.address() as AddressInfo
  return { server, url: `http://${host}:${address.port}`, moved }
}
