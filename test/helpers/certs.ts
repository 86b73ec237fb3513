/**
 * Self-signed certificates generated at test time with the openssl CLI (P-256, SAN localhost and
 * 127.0.0.1, valid one day), in a temporary folder removed at process exit. Nothing is checked in.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TestCert {
  /** Paths, for TLS_CERT_FILE / TLS_KEY_FILE. */
  readonly certFile: string
  readonly keyFile: string
  /** PEM contents; the certificate is its own CA. */
  readonly cert: string
  readonly key: string
}

let dir: string | undefined
let n = 0

/** A fresh self-signed certificate for `localhost` / `127.0.0.1`. */
export function makeCert (cn = 'localhost'): TestCert {
  if (dir === undefined) {
    const created = mkdtempSync(join(tmpdir(), 'portcullis-certs-'))
    dir = created
    process.once('exit', () => { rmSync(created, { recursive: true, force: true }) })
  }
  n++
  const keyFile = join(dir, `key-${n}.pem`)
  const certFile = join(dir, `cert-${n}.pem`)
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-days', '1', '-keyout', keyFile, '-out', certFile
  ], { stdio: 'ignore' })
  return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') }
}
