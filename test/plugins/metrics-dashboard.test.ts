import t from 'tap'
import { readFileSync } from 'node:fs'
import Fastify from 'fastify'
import { request } from 'undici'
import { parse } from 'yaml'
import { metricsPlugin } from '../../plugins/metrics/index.js'

const root = new URL('../../', import.meta.url)

t.test('every metric the Grafana dashboard queries is one the gateway exports', async (t) => {
  const dashboard = JSON.parse(readFileSync(new URL('deploy/grafana/portcullis-dashboard.json', root), 'utf8')) as { uid: string, panels: Array<{ title: string, targets: Array<{ expr: string }> }> }
  t.equal(dashboard.uid, 'portcullis-gateway')
  const queried = new Set<string>()
  for (const p of dashboard.panels) {
    t.ok(p.targets.length > 0, `${p.title} has a query`)
    for (const target of p.targets) for (const m of target.expr.matchAll(/portcullis_[a-z0-9_]+/g)) queried.add(m[0])
  }
  t.ok(queried.size >= 10)

  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(metricsPlugin, { port: 0 })
  await app.ready()
  const text = await (await request(`${app.portcullisAdmin.url ?? ''}/metrics`)).body.text()
  const exported = new Set([...text.matchAll(/^# TYPE (\S+) (\w+)/gm)].flatMap((m) => m[2] === 'histogram' ? [`${m[1]}_bucket`, `${m[1]}_sum`, `${m[1]}_count`] : [m[1] as string]))
  for (const name of queried) t.ok(exported.has(name), `${name} is exported`)
})

t.test('Prometheus scrapes the admin port the compose file gives the gateways', async (t) => {
  const prom = parse(readFileSync(new URL('deploy/prometheus.yml', root), 'utf8')) as { scrape_configs: Array<{ metrics_path: string, static_configs: Array<{ targets: string[] }> }> }
  const compose = parse(readFileSync(new URL('docker-compose.yml', root), 'utf8')) as { 'x-gateway': { environment: Record<string, string> }, services: Record<string, unknown> }
  const port = compose['x-gateway'].environment.ADMIN_PORT
  const job = prom.scrape_configs[0]
  t.equal(job?.metrics_path, '/metrics')
  const targets = job?.static_configs.flatMap((s) => s.targets) ?? []
  t.ok(targets.length > 0)
  for (const target of targets) {
    const [host, p] = target.split(':')
    t.equal(p, port, `${target} uses ADMIN_PORT`)
    t.ok(host !== undefined && host in compose.services, `${host ?? ''} is a compose service`)
  }
})
