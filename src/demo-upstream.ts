/**
 * The built-in demo upstream used when the gateway runs with no environment (development only):
 * it echoes what it received, so `npm start` can be tried with curl straight away.
 */
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
