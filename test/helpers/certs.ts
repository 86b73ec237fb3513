/**
 * Certificates generated at test time with the openssl CLI (P-256, valid one day), in a temporary
 * folder removed at process exit: self-signed ones (SAN localhost and 127.0.0.1), and CAs that
 * issue client and server certificates and revoke them through a CRL. Nothing is checked in.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
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
  const home = workDir()
  n++
  const keyFile = join(home, `key-${n}.pem`)
  const certFile = join(home, `cert-${n}.pem`)
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-days', '1', '-keyout', keyFile, '-out', certFile
  ], { stdio: 'ignore' })
  return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') }
}

function workDir (): string {
  if (dir === undefined) {
    const created = mkdtempSync(join(tmpdir(), 'portcullis-certs-'))
    dir = created
    process.once('exit', () => { rmSync(created, { recursive: true, force: true }) })
  }
  return dir
}

/** A certificate authority that issues certificates and revokes them (a CRL, openssl `ca`). */
export interface TestCa {
  /** The CA certificate (PEM) and its path, for TLS_CLIENT_CA_FILE / UPSTREAM_CA_FILE / `ca`. */
  readonly cert: string
  readonly certFile: string
  /**
   * A certificate signed by this CA. `san` is an openssl subjectAltName value (default none);
   * `server` adds the serverAuth usage (else clientAuth).
   */
  issue: (cn: string, opts?: { san?: string, server?: boolean }) => TestCert
  /** Marks `cert` revoked and returns the path of a fresh CRL (PEM), for TLS_CLIENT_CRL_FILE. */
  revoke: (cert: TestCert) => string
  /** A CRL (PEM path) of the revocations so far. */
  crl: () => string
}

/** A fresh CA (P-256, one day) in its own folder, with the files `openssl ca` needs for CRLs. */
export function makeCa (name = 'Test CA'): TestCa {
  n++
  const home = join(workDir(), `ca-${n}`)
  mkdirSync(home)
  writeFileSync(join(home, 'index.txt'), '')
  writeFileSync(join(home, 'crlnumber'), '01\n')
  const keyFile = join(home, 'ca.key')
  const certFile = join(home, 'ca.pem')
  const conf = join(home, 'ca.cnf')
  writeFileSync(conf, [
    '[ ca ]', 'default_ca = test_ca', '[ test_ca ]',
    `database = ${join(home, 'index.txt')}`, `crlnumber = ${join(home, 'crlnumber')}`,
    `certificate = ${certFile}`, `private_key = ${keyFile}`,
    'default_md = sha256', 'default_crl_days = 1', ''
  ].join('\n'))
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-days', '1', '-keyout', keyFile, '-out', certFile
  ], { stdio: 'ignore' })
  let issued = 0
  const crl = (): string => {
    const out = join(home, `crl-${++issued}.pem`)
    execFileSync('openssl', ['ca', '-config', conf, '-gencrl', '-out', out], { stdio: 'ignore' })
    return out
  }
  return {
    cert: readFileSync(certFile, 'utf8'),
    certFile,
    issue (cn, opts = {}) {
      const id = ++issued
      const leafKey = join(home, `leaf-${id}.key`)
      const csr = join(home, `leaf-${id}.csr`)
      const leafCert = join(home, `leaf-${id}.pem`)
      const ext = join(home, `leaf-${id}.ext`)
      writeFileSync(ext, [
        'basicConstraints=CA:FALSE',
        `extendedKeyUsage=${opts.server === true ? 'serverAuth' : 'clientAuth'}`,
        ...(opts.san !== undefined ? [`subjectAltName=${opts.san}`] : []), ''
      ].join('\n'))
      execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${cn}`, '-keyout', leafKey, '-out', csr], { stdio: 'ignore' })
      execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', certFile, '-CAkey', keyFile, '-set_serial', String(1000 + id), '-days', '1', '-extfile', ext, '-out', leafCert], { stdio: 'ignore' })
      return { certFile: leafCert, keyFile: leafKey, cert: readFileSync(leafCert, 'utf8'), key: readFileSync(leafKey, 'utf8') }
    },
    revoke (cert) {
      execFileSync('openssl', ['ca', '-config', conf, '-revoke', cert.certFile], { stdio: 'ignore' })
      return crl()
    },
    crl
  }
}
