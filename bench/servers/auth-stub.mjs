// Benchmark authorization services in one keep-alive HTTP server (PORT):
// - POST /introspect: an RFC 7662 token introspection endpoint. The bench token is active (a
//   day's `exp`, the bench scopes), any other token inactive. The gateway caches the answer, so
//   under load it is asked once per token and cache TTL: the steady state measured is the hit.
// - GET /check: a forward-auth service (Traefik forwardAuth / nginx auth_request style). `Bearer
//   <the bench token>` is allowed with `x-user-id: bench-user`, anything else 401. The gateway
//   asks on every request, unless its decision cache is on (FORWARD_AUTH_CACHE_TTL_MS): then once
//   per distinct check and TTL.
// The bench token comes in BENCH_TOKEN; the introspection client credentials are not checked.
import { createServer } from 'node:http'

const token = process.env.BENCH_TOKEN ?? ''
const exp = Math.floor(Date.now() / 1000) + 86400
const active = JSON.stringify({ active: true, sub: 'bench-user', client_id: 'bench-client', scope: 'read write', token_type: 'Bearer', exp })
const inactive = JSON.stringify({ active: false })

const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/introspect') {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c) => { body += c })
    req.on('end', () => {
      const answer = new URLSearchParams(body).get('token') === token ? active : inactive
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) })
      res.end(answer)
    })
    return
  }
  req.resume()
  if (req.url === '/check' && req.headers.authorization === `Bearer ${token}`) {
    res.writeHead(200, { 'x-user-id': 'bench-user', 'content-length': 0 })
  } else {
    res.writeHead(req.url === '/check' ? 401 : 404, { 'content-length': 0 })
  }
  res.end()
})
server.keepAliveTimeout = 60_000
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`)
})
