/**
 * Revoking a client certificate without a restart, in a real gateway process with real TLS and
 * certificates made here: the CRL (and the client CA bundle) is re-read on SIGHUP, on
 * `POST /reload` and when its folder changes (a Kubernetes-style `..data` symlink swap); a NEW
 * connection with the revoked certificate is then refused, while an open keep-alive connection
 * keeps the verdict of its handshake (as nginx and Envoy). No earlier TLS session is resumed
 * past a new CRL. An unparsable CRL keeps the one in use (no crash, no fail-open).
 */
import t, { type Test } from 'tap'
import { copyFileSync, mkdirSync, readFileSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, type TLSSocket } from 'node:tls'
import { fileURLToPath } from 'node:url'
import { Agent, request } from 'undici'
import { makeCa, type TestCert } from '../helpers/certs.js'
import { countLines, runGateway, sighup } from '../helpers/process.js'
import { startUpstream } from '../helpers/upstream.js'
import { waitFor } from '../helpers/wait-for.js'

const ca = makeCa('Reload client CA')
const server = ca.issue('localhost', { server: true, san: 'DNS:localhost,IP:127.0.0.1' })
const alice = ca.issue('alice')
const eve = ca.issue('eve')
const bob = ca.issue('bob')
const carol = ca.issue('carol')
/** The CRL before any revocation. */
const noneRevoked = readFileSync(ca.crl(), 'utf8')
/** A second CA, trusted only once a new bundle names it. */
const otherCa = makeCa('Second client CA')
const dave = otherCa.issue('dave')

/** A routes folder inside the package (route modules import 'portcullis'), removed afterwards. */
function routesDir (t: Test, upstream: string): string {
  const dir = fileURLToPath(new URL(`../fixtures/.tmp-crl-${process.pid}`, import.meta.url))
  mkdirSync(dir, { recursive: true })
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  writeFileSync(join(dir, 'certs.mjs'), `import { defineRoute } from 'portcullis'\nexport default defineRoute({ prefix: '/certs', upstream: '${upstream}', auth: { strategies: ['mtls'] } })\n`)
  return dir
}

/**
 * A folder laid out as Kubernetes mounts a Secret: `ca.pem` and `crl.pem` are links through
 * `..data`, a link to the current version folder; `publish` swaps `..data` in one rename.
 */
function secretVolume (t: Test): { dir: string, publish: (files: { ca: string, crl: string }) => string } {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-crl-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  let version = 0
  function publish (files: { ca: string, crl: string }): string {
    const name = `..v${++version}`
    mkdirSync(join(dir, name))
    writeFileSync(join(dir, name, 'ca.pem'), files.ca)
    writeFileSync(join(dir, name, 'crl.pem'), files.crl)
    symlinkSync(name, join(dir, '..data_tmp'))
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
    return join(dir, name)
  }
  return { dir, publish }
}

/** The status of one request on a NEW TLS connection presenting `cert`. */
async function fresh (url: string, cert: TestCert): Promise<number> {
  const agent = new Agent({ connect: { ca: ca.cert, cert: cert.cert, key: cert.key } })
  try {
    const res = await request(`${url}/certs/x`, { dispatcher: agent })
    await res.body.text()
    return res.statusCode
  } finally {
    await agent.close()
  }
}

interface RawResult { status: number, reused: boolean, session: Buffer | undefined }

/** One request on a raw TLS connection presenting `cert`, resuming `session` when given. */
async function raw (port: number, cert: TestCert, session?: Buffer): Promise<RawResult> {
  return await new Promise((resolve, reject) => {
    let latest: Buffer | undefined
    let reused = false
    let text = ''
    const socket: TLSSocket = connect({ host: '127.0.0.1', port, ca: ca.cert, cert: cert.cert, key: cert.key, ...(session !== undefined ? { session } : {}) })
    socket.on('session', (s: Buffer) => { latest = s })
    socket.once('secureConnect', () => {
      reused = socket.isSessionReused()
      socket.write('GET /certs/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
    })
    socket.on('data', (d: Buffer) => { text += d.toString() })
    socket.once('error', reject)
    socket.once('close', () => {
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), reused, session: latest })
    })
  })
}

t.test('a revoked client certificate is refused on new connections after SIGHUP, POST /reload or a file change', async (t) => {
  const up = await startUpstream(t)
  const routes = routesDir(t, up.url)
  const volume = secretVolume(t)
  const current = volume.publish({ ca: ca.cert, crl: noneRevoked })
  for (const name of ['ca.pem', 'crl.pem']) symlinkSync(join('..data', name), join(volume.dir, name))
  const p = runGateway({
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_BUFFER_BYTES: '0',
    DEMO_UPSTREAM_PORT: '0',
    ROUTES_DIR: routes,
    ADMIN_PORT: '0',
    KEEP_ALIVE_TIMEOUT_MS: '60000',
    TLS_CERT_FILE: server.certFile,
    TLS_KEY_FILE: server.keyFile,
    TLS_CLIENT_CA_FILE: join(volume.dir, 'ca.pem'),
    TLS_CLIENT_CRL_FILE: join(volume.dir, 'crl.pem')
  })
  t.teardown(() => { p.child.kill('SIGKILL') })
  const url = await waitFor(() => {
    if (p.child.exitCode !== null) throw new Error(`gateway exited: ${p.out()} ${p.err()}`)
    return /Server listening at (https:\/\/127\.0\.0\.1:\d+)/.exec(p.out())?.[1]
  }, { message: 'gateway listening' })
  const port = Number(new URL(url).port)

  t.equal(await fresh(url, alice), 200)
  t.equal(await fresh(url, eve), 200, 'eve is not revoked yet')
  t.equal(up.requests.at(-1)?.headers['x-consumer-id'], 'eve')
  t.equal(await fresh(url, dave), 401, 'the second CA is not trusted yet')
  // A keep-alive connection of eve's, and a TLS session of hers to resume later.
  const kept = new Agent({ connections: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000, connect: { ca: ca.cert, cert: eve.cert, key: eve.key } })
  t.teardown(async () => { await kept.close() })
  let connects = 0
  kept.on('connect', () => { connects++ })
  const keptGet = async (): Promise<number> => {
    const res = await request(`${url}/certs/x`, { dispatcher: kept })
    await res.body.text()
    return res.statusCode
  }
  t.equal(await keptGet(), 200)
  const first = await raw(port, eve)
  t.equal(first.status, 200)
  t.ok(first.session !== undefined, 'the gateway issued a session ticket')
  const resumed = await raw(port, eve, first.session)
  t.equal(resumed.status, 200)
  t.equal(resumed.reused, true, 'before a reload the session resumes (so the check below means something)')

  // SIGHUP. The CRL in the current version folder is rewritten in place: no event in the watched
  // folder, so only the reload can take it.
  copyFileSync(ca.revoke(eve), join(current, 'crl.pem'))
  t.equal(await fresh(url, eve), 200, 'nothing changed yet: the watched folder saw no event')
  t.equal(await sighup(p), 'reloaded')
  t.equal(await fresh(url, eve), 401, 'SIGHUP: a new connection with the revoked certificate is refused')
  t.equal(await fresh(url, alice), 200, 'the others still pass (the client CA is still in use)')
  t.equal(up.requests.at(-1)?.headers['x-consumer-id'], 'alice')
  const again = await raw(port, eve, resumed.session ?? first.session)
  t.equal(again.reused, false, 'no session from before the new CRL is resumed')
  t.equal(again.status, 401)
  t.equal(await keptGet(), 200, 'the open keep-alive connection keeps the verdict of its handshake')
  t.equal(connects, 1, 'that was the same connection')

  // POST /reload on the admin listener: bob revoked the same way.
  copyFileSync(ca.revoke(bob), join(current, 'crl.pem'))
  const admin = await waitFor(() => /"url":"(http:\/\/127\.0\.0\.1:\d+)","msg":"metrics admin listener ready"/.exec(p.out())?.[1], { message: 'admin listener' })
  const res = await request(`${admin}/reload`, { method: 'POST' })
  t.strictSame(await res.body.json(), { ok: true, problems: [] })
  t.equal(await fresh(url, bob), 401, 'POST /reload: bob is refused')

  // A file change, no signal: a Kubernetes-style swap of `..data` to a new version folder, with
  // carol revoked and a second CA (and its CRL, in the same file) added.
  const loaded = countLines(p, 'client CA and CRL reloaded')
  const revokedCarol = readFileSync(ca.revoke(carol), 'utf8')
  volume.publish({ ca: ca.cert + otherCa.cert, crl: revokedCarol + readFileSync(otherCa.crl(), 'utf8') })
  await waitFor(() => countLines(p, 'client CA and CRL reloaded') > loaded, { message: 'the folder change re-read the CRL' })
  t.equal(await fresh(url, carol), 401, 'the file change: carol is refused')
  t.equal(await fresh(url, dave), 200, 'the new bundle\'s second CA is trusted, checked against its own CRL')
  t.equal(await fresh(url, eve), 401)
  t.equal(await fresh(url, alice), 200)

  // An unparsable CRL: the ones in use stay, with a warn line; no crash, no fail-open.
  const failed = countLines(p, 'client CA and CRL not reloaded')
  volume.publish({ ca: ca.cert, crl: '-----BEGIN X509 CRL-----\nbm90IGEgcmV2b2NhdGlvbiBsaXN0\n-----END X509 CRL-----\n' })
  await waitFor(() => countLines(p, 'client CA and CRL not reloaded') > failed, { message: 'the bad CRL refused' })
  const warning = JSON.parse(p.out().split('\n').filter((line) => line.includes('client CA and CRL not reloaded')).at(-1) ?? '{}') as Record<string, unknown>
  t.match(warning, { level: 40, problems: ['TLS_CLIENT_CRL_FILE: not a usable PEM certificate revocation list'] })
  t.equal(await fresh(url, carol), 401, 'the CRL in use still refuses carol')
  t.equal(await fresh(url, eve), 401)
  t.equal(await fresh(url, dave), 200, 'and the CA bundle in use stays')
  t.equal(await fresh(url, alice), 200)
  t.equal(await sighup(p), 'refused', 'a reload with the bad CRL is refused as a whole')
  t.match(p.out(), /configuration reload refused.*TLS_CLIENT_CRL_FILE: not a usable PEM certificate revocation list/)
  t.equal(await fresh(url, carol), 401)
  t.equal(await fresh(url, alice), 200)
  t.equal(p.child.exitCode, null, 'the gateway is still running')

  p.child.kill('SIGTERM')
  t.equal(await p.exited, 0)
})
