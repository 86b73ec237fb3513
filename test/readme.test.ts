/**
 * The README's examples run. Every fenced block of README.md carries an info string saying how it
 * is checked; a block with any other info string fails this test, so no example goes unchecked.
 */
import { readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { createSigner } from 'fast-jwt'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import ts from 'typescript'
import { parse as parseYaml } from 'yaml'
import { DEMO_JWT_SECRET } from 'portcullis'
import { EnvSchema } from '../src/config.js'
import { startGateway } from './helpers/gateway.js'
import { runGateway } from './helpers/process.js'
import { closedPort, startUpstream } from './helpers/upstream.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const readme = readFileSync(join(root, 'README.md'), 'utf8')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
const envExample = readFileSync(join(root, '.env.example'), 'utf8')

interface Block { readonly info: string, readonly body: string }
const blocks: Block[] = [...readme.matchAll(/^```([^\n]*)\n([\s\S]*?)^```$/gm)].map((m) => ({ info: m[1].trim(), body: m[2] }))

/** How each kind of block is checked (the test of the same name below). */
const CHECKED = ['sh', 'text startup-output', 'ts route', 'text config-error', 'ts embedding']

function only (info: string): string {
  const found = blocks.filter((b) => b.info === info)
  if (found.length !== 1) throw new Error(`README.md: expected one \`\`\`${info} block, found ${found.length}`)
  return found[0].body
}

const knownVariables = new Set([
  ...Object.keys(EnvSchema.properties),
  ...[...envExample.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1])
])

t.test('every fenced block is one of the checked kinds', async (t) => {
  t.ok(blocks.length >= CHECKED.length)
  for (const b of blocks) t.ok(CHECKED.includes(b.info), `\`\`\`${b.info} is checked (known kinds: ${CHECKED.join(', ')})`)
})

t.test('README is short', async (t) => {
  t.ok(readme.split('\n').length < 250, `${readme.split('\n').length} lines`)
})

t.test('sh: every command is one package.json, the repository or docker compose provides', async (t) => {
  const compose = parseYaml(readFileSync(join(root, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { profiles?: string[] }> }
  const profiles = new Set(Object.values(compose.services).flatMap((s) => s.profiles ?? []))
  const commands = blocks.filter((b) => b.info === 'sh')
    .flatMap((b) => b.body.split('\n'))
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line !== '')
    .flatMap((line) => line.split('&&').map((c) => c.trim()))
  t.ok(commands.length > 0)
  for (const command of commands) {
    const words = command.split(/\s+/)
    while (words.length > 0 && /^[A-Z][A-Z0-9_]*=/.test(words[0])) {
      const name = words.shift()?.split('=')[0] ?? ''
      t.ok(knownVariables.has(name), `${name} is a variable the gateway reads`)
    }
    const [tool, sub, arg] = words
    if (tool === 'npm' && sub === 'install') t.pass(command)
    else if (tool === 'npm' && (sub === 'start' || sub === 'test')) t.type(pkg.scripts[sub], 'string', `${command}: package.json has "${sub}"`)
    else if (tool === 'npm' && sub === 'run') t.type(pkg.scripts[arg], 'string', `${command}: package.json has "${arg}"`)
    else if (tool === 'npx' && sub === 'portcullis') {
      t.type((pkg as { bin?: Record<string, string> }).bin?.portcullis, 'string', `${command}: package.json has the portcullis bin`)
      t.match(readFileSync(join(root, 'src/cli.ts'), 'utf8'), `case '${arg}':`, `${command}: the portcullis command has "${arg}"`)
    } else if (tool === 'cp') t.ok(readFileSync(join(root, sub), 'utf8').length > 0, `${command}: ${sub} exists`)
    else if (tool === 'docker' && sub === 'compose') {
      const profile = words.indexOf('--profile')
      if (profile !== -1) t.ok(profiles.has(words[profile + 1]), `${command}: the compose file has that profile`)
      else t.ok(Object.keys(compose.services).length > 0, `${command}: docker-compose.yml has services`)
    } else t.fail(`README.md: no check for the command "${command}"`)
  }
})

t.test('variables and error codes the README names exist', async (t) => {
  const names = new Set([...readme.matchAll(/`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=[^`]*)?`/g)].map((m) => m[1]))
  t.ok(names.size > 0)
  const errors = readFileSync(join(root, 'docs/reference/errors.md'), 'utf8')
  for (const name of names) {
    if (name.startsWith('GW_')) t.match(errors, `| \`${name}\` |`, `${name} is an error code`)
    else t.ok(knownVariables.has(name), `${name} is a variable the gateway reads`)
  }
})

t.test('text startup-output: what `npm start` prints with no environment', async (t) => {
  const normalize = (msg: string): string => msg.replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>')
  const shown = only('text startup-output').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  const p = runGateway({ PORT: '0', DEMO_UPSTREAM_PORT: String(await closedPort()) })
  t.teardown(() => { p.child.kill('SIGKILL') })
  const out = await new Promise<string>((resolve, reject) => {
    const done = (): void => { if (/"msg":"try: /.test(p.out())) resolve(p.out()) }
    p.child.stdout?.on('data', done)
    p.exited.then(() => { reject(new Error(`gateway exited: ${p.out()} ${p.err()}`)) }, reject)
    done()
  })
  const printed = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  t.strictSame(printed.map((l) => normalize(String(l.msg))), shown.map((l) => normalize(String(l.msg))), 'the same lines, ports aside')
  t.strictSame(printed.map((l) => Object.keys(l)), shown.map((l) => Object.keys(l)), 'the same fields')
  t.strictSame(printed.map((l) => l.level), shown.map((l) => l.level))
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)
})

t.test('text config-error: a bad route option stops startup with that line', async (t) => {
  const dir = t.testdir({
    'billing.mjs': "import { defineRoute } from 'portcullis'\n" +
      "export default defineRoute({ prefix: '/billing', upstream: 'http://127.0.0.1:9', rateLimit: { max: 0, timeWindow: '1 minute' } })\n"
  })
  const p = runGateway({ PORT: '0', ROUTES_DIR: dir })
  t.equal(await p.exited, 1)
  const shown = only('text config-error').trim().replace(/\/\S+\/billing\.ts:/, '<file>:')
  t.equal(p.err().trim().replace(`${relative(process.cwd(), join(dir, 'billing.mjs'))}:`, '<file>:').replace(`${join(dir, 'billing.mjs')}:`, '<file>:'), shown)
})

/** Type-checks files with the project's compiler options; returns the diagnostics, formatted. */
function typeCheck (files: string[]): string[] {
  const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })
  if (config === undefined) throw new Error('tsconfig.json does not parse')
  const program = ts.createProgram({ rootNames: files, options: { ...config.options, noEmit: true, declaration: false, sourceMap: false } })
  return ts.getPreEmitDiagnostics(program)
    .filter((d) => d.file !== undefined && files.includes(d.file.fileName))
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))
}

t.test('ts route and ts embedding type-check', async (t) => {
  const dir = t.testdir({ routes: { 'billing.ts': only('ts route') }, 'embedding.ts': only('ts embedding') })
  t.strictSame(typeCheck([join(dir, 'routes', 'billing.ts'), join(dir, 'embedding.ts')]), [])
})

t.test('ts route: the example loads from a routes folder and proxies under its policy', async (t) => {
  const up = await startUpstream(t)
  process.env.BILLING_UPSTREAM_URL = up.url
  t.teardown(() => { delete process.env.BILLING_UPSTREAM_URL })
  const dir = t.testdir({ 'billing.ts': only('ts route') })
  const gw = await startGateway(t, { env: { ROUTES_DIR: dir }, logLevel: 'warn' })
  t.strictSame(gw.app.portcullisProxy.routes.map((r) => r.prefix), ['/billing'])

  const anonymous = await gw.app.inject({ url: '/billing/invoices' })
  t.equal(anonymous.statusCode, 401)
  const sign = createSigner({ key: DEMO_JWT_SECRET, expiresIn: 60_000 })
  const noScope = await gw.app.inject({ url: '/billing/invoices', headers: { authorization: `Bearer ${sign({ sub: 'ann' })}` } })
  t.equal(noScope.statusCode, 403, 'billing:read is required')
  const proxied = up.requests.filter((r) => r.url !== '/health')
  t.equal(proxied.length, 0, 'neither reached the upstream')

  const ok = await gw.app.inject({ url: '/billing/invoices?page=2', headers: { authorization: `Bearer ${sign({ sub: 'ann', scope: 'billing:read' })}` } })
  t.equal(ok.statusCode, 200)
  const reached = up.requests.filter((r) => r.url !== '/health')
  t.equal(reached.length, 1)
  t.equal(reached[0].url, '/v2/invoices?page=2', 'rewritePrefix: /billing -> /v2')
  t.equal(reached[0].headers['x-consumer-id'], 'ann')
  t.equal(reached[0].headers.authorization, undefined, 'the token does not go upstream')
})

t.test('ts embedding: the snippet builds a host app that serves its routes under policy', async (t) => {
  const snippet = only('ts embedding')
  const listen = 'await app.listen({ port: 3000 })'
  t.equal(snippet.split(listen).length, 2, 'the snippet ends by listening on port 3000')
  const dir = t.testdir({ 'embedding.ts': `${snippet.replace(listen, "await app.listen({ port: 0, host: '127.0.0.1' })")}\nexport { app }\n` })
  const { app } = await import(pathToFileURL(join(dir, 'embedding.ts')).href) as { app: FastifyInstance }
  t.teardown(async () => { await app.close() })
  const address = app.server.address()
  t.ok(typeof address === 'object' && address !== null && address.port > 0, 'listening')

  const hello = await app.inject({ url: '/hello' })
  t.strictSame(hello.json(), { hello: 'world' })
  t.equal(hello.headers['x-consumer-id'], undefined)
  const anonymous = await app.inject({ url: '/me' })
  t.equal(anonymous.statusCode, 401)
  const me = await app.inject({ url: '/me', headers: { 'x-api-key': 'alice-key-0123456789abcdef' } })
  t.strictSame(me.json(), { consumer: 'alice' })
  const proxied = await app.inject({ url: '/upstream/x' })
  t.equal(proxied.statusCode, 401, 'the proxied prefix asks for a key too')
})
