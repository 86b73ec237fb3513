// The floor of prefix flatness: a Fastify app answering the upstream's body itself on PREFIXES
// prefixes, each in its own encapsulated plugin with `/` and `/*` routes for the methods
// @fastify/http-proxy registers, and one onRequest hook per prefix (as a route's policies add).
// No proxying, no logging: what Fastify's router and per-plugin contexts cost when traffic is
// spread over many prefixes. FLAT=1 registers every route on the root context instead, with the
// hook at route level: no per-prefix plugin context (nor Request/Reply classes) at all.
import Fastify from 'fastify'

const body = JSON.stringify({ ok: true, service: 'bench-upstream', items: [1, 2, 3] })
const methods = ['DELETE', 'GET', 'PATCH', 'POST', 'PUT', 'OPTIONS']
const app = Fastify({ logger: false })
const prefixes = Number(process.env.PREFIXES ?? 1)
async function answer (request, reply) {
  reply.header('content-type', 'application/json')
  return body
}
const flat = process.env.FLAT === '1'
for (let i = 0; i < prefixes; i++) {
  const prefix = prefixes === 1 ? '/api' : `/api${i}`
  if (flat) {
    const onRequest = async function policy (request) { request.prefixIndex = i }
    app.route({ method: methods, url: prefix, onRequest, handler: answer })
    app.route({ method: methods, url: `${prefix}/*`, onRequest, handler: answer })
    continue
  }
  await app.register(async (scope) => {
    scope.addHook('onRequest', async function policy (request) { request.prefixIndex = i })
    scope.route({ method: methods, url: '/', handler: answer })
    scope.route({ method: methods, url: '/*', handler: answer })
  }, { prefix })
}
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' })
process.stdout.write(`listening ${app.server.address().port}\n`)
