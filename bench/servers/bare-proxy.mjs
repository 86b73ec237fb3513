// The anchor: bare @fastify/http-proxy with default options and no logging.
import Fastify from 'fastify'
import proxy from '@fastify/http-proxy'

const app = Fastify({ logger: false })
const prefixes = Number(process.env.PREFIXES ?? 1)
for (let i = 0; i < prefixes; i++) {
  await app.register(proxy, { upstream: process.env.UPSTREAM, prefix: prefixes === 1 ? '/api' : `/api${i}` })
}
await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' })
process.stdout.write(`listening ${app.server.address().port}\n`)
