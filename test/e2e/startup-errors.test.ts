/**
 * Startup errors as an operator sees them (the built process, `npm run build` first): one line per
 * problem, all at once, each starting `portcullis: configuration error:` and naming the variable or
 * file, what is wrong and the fix; secrets never printed.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { runGateway } from '../helpers/process.js'
import { startUpstream } from '../helpers/upstream.js'

const PREFIX = 'portcullis: configuration error: '
const realKey = (): string => `svc:${randomBytes(24).toString('base64url')}`

function tempDir (t: { teardown: (fn: () => void) => void }, files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-startup-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  return dir
}

t.test('the values an older .env.example shipped are refused in production, every one, never printed', async (t) => {
  const p = runGateway({
    NODE_ENV: 'production',
    PORT: '0',
    JWT_SECRET: 'change-me-to-a-random-secret-of-32-bytes-or-more',
    API_KEYS: 'billing:change-me-billing-key-0001,reports:change-me-reports-key-0002',
    ECHO_UPSTREAM_URL: 'http://127.0.0.1:9',
    PUBLIC_UPSTREAM_URL: 'http://127.0.0.1:9'
  })
  t.equal(await p.exited, 1)
  t.strictSame(p.err().split('\n').filter((l) => l !== ''), [
    `${PREFIX}JWT_SECRET: is a published example value, refused in production; generate real ones with: npm run secrets`,
    `${PREFIX}API_KEYS: the key of consumer "billing" is a published example value, refused in production; generate real ones with: npm run secrets`,
    `${PREFIX}API_KEYS: the key of consumer "reports" is a published example value, refused in production; generate real ones with: npm run secrets`
  ])
  t.notMatch(p.err(), /change-me/, 'no secret printed')
  t.equal(p.out(), '', 'nothing started')
})

t.test('production: every missing upstream variable at once, with the route file that needs it', async (t) => {
  const p = runGateway({ NODE_ENV: 'production', PORT: '0', API_KEYS: realKey() })
  t.equal(await p.exited, 1)
  t.strictSame(p.err().split('\n').filter((l) => l !== ''), [
    `${PREFIX}ECHO_UPSTREAM_URL: required in production, the upstream of routes/echo.ts (prefix /echo); set it to the service URL, or several comma separated`,
    `${PREFIX}PUBLIC_UPSTREAM_URL: required in production, the upstream of routes/public.ts (prefix /public); set it to the service URL, or several comma separated`
  ])
})

t.test('production: a routes folder without routes is a startup error', async (t) => {
  const dir = tempDir(t, { 'README.md': 'no routes here\n' })
  const p = runGateway({ NODE_ENV: 'production', PORT: '0', API_KEYS: realKey(), ROUTES_DIR: dir })
  t.equal(await p.exited, 1)
  t.equal(p.err(), `${PREFIX}ROUTES_DIR: no route modules in ${dir}; production needs at least one (a file with \`export default defineRoute({ prefix, upstream })\`)\n`)
})

t.test('broken route modules: every file named, with the line, at once', async (t) => {
  const dir = tempDir(t, {
    'a.mjs': 'export default {\n  prefix: "/a",,\n}\n',
    'b.mjs': 'const x = undefined\n\nexport default x.trim()\n',
    'c.mjs': 'export default { prefix: "/c", upstream: "http://127.0.0.1:9" }\n'
  })
  const p = runGateway({ PORT: '0', DEMO_UPSTREAM_PORT: '0', ROUTES_DIR: dir })
  t.equal(await p.exited, 1)
  t.strictSame(p.err().split('\n').filter((l) => l !== ''), [
    `${PREFIX}${join(dir, 'a.mjs')} (line 2): syntax error: Unexpected token ','; fix the module (it runs when the gateway starts)`,
    `${PREFIX}${join(dir, 'b.mjs')} (line 3): failed to load: Cannot read properties of undefined (reading 'trim'); fix the module (it runs when the gateway starts)`,
    `${PREFIX}${join(dir, 'c.mjs')}: its default export is a plain object, not a route; wrap the options: \`export default defineRoute({ ... })\``
  ])
})

t.test('a misspelt variable is warned about beside the error it causes, without its value', async (t) => {
  const p = runGateway({ NODE_ENV: 'production', PORT: '0', JWT_SECRT: randomBytes(32).toString('base64url'), ECHO_UPSTREAM_URL: 'http://127.0.0.1:9' })
  t.equal(await p.exited, 1)
  t.strictSame(p.err().split('\n').filter((l) => l !== ''), [
    `${PREFIX}JWT_SECRET, JWT_PUBLIC_KEY, JWKS_URL or API_KEYS: production needs at least one credential source (these, INTROSPECTION_URL, FORWARD_AUTH_URL or TLS_CLIENT_CA_FILE); generate a JWT secret and an API key with: npm run secrets`,
    'portcullis: warning: JWT_SECRT: not read by the gateway; did you mean JWT_SECRET? Rename it: JWT_SECRET is unset until then'
  ])
})

t.test('the port taken by another program: the address and the variable to change, not a bare EADDRINUSE', async (t) => {
  const other = await startUpstream(t)
  const p = runGateway({ PORT: String(other.port), DEMO_UPSTREAM_PORT: '0' })
  t.equal(await p.exited, 1)
  t.equal(p.err(), `portcullis: failed to start: 127.0.0.1:${other.port} is already in use by another program (another gateway still running?); stop it, or set PORT to a free port\n`)
  t.equal(other.requests.length, 0)
})
