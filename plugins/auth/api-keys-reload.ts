/**
 * The API keys of the auth plugin's `apiKeysFile`, read at registration and again on demand
 * (`reloadApiKeys()`, SIGHUP in the process entry) or when the file's folder changes (fs.watch,
 * debounced). The folder, not the file, is watched: editors and Kubernetes Secret volumes replace
 * the file (a rename, or the `..data` symlink swap), which a watch on the old file never sees.
 * Any event re-reads the file; an unchanged SHA-256 of its text ends there. A new key table is
 * built off to the side and handed over in one assignment, so a request sees the old table or
 * the new one, never a mix. A bad file keeps the keys in use and says why in one warn line,
 * naming lines and problems, never a key.
 */
import { watch, type FSWatcher } from 'node:fs'
import { dirname } from 'node:path'
import type { FastifyBaseLogger } from 'fastify'
import { readText } from '../../lib/files.js'
import { ApiKeyStore } from './api-keys.js'
import { fileProblemLine, parseApiKeyText, textDigest } from './api-keys-file.js'
import type { ApiKeyEntrySpec, ReadonlyDeep } from './schema.js'

/** What a reload did. */
export interface ApiKeysReloadResult {
  /**
   * `loaded`: the file's keys are in use now; `unchanged`: same text as the keys in use;
   * `failed`: the file is unreadable or invalid, the keys in use stay; `static`: no file configured.
   */
  readonly status: 'loaded' | 'unchanged' | 'failed' | 'static'
  /** Keys in use after the reload (the `apiKeys` option and the file's). */
  readonly keys: number
}

type StaticEntries = ReadonlyArray<ReadonlyDeep<ApiKeyEntrySpec>>

/** The file's keys plus the static ones, as a store; or every problem (never a key). */
function build (file: string, text: string, staticEntries: StaticEntries): ApiKeyStore | string[] {
  const parsed = parseApiKeyText(text)
  const problems = parsed.problems.map((p) => fileProblemLine(file, p))
  if (staticEntries.length > 0) {
    const staticKeys = new Set(staticEntries.map((e) => e.key))
    parsed.entries.forEach((e, i) => {
      if (staticKeys.has(e.key)) problems.push(`${file} line ${String(parsed.lines[i])}: consumer "${e.consumer}" reuses a key of the apiKeys option (API_KEYS)`)
    })
  }
  if (problems.length > 0) return problems
  return new ApiKeyStore(staticEntries.length === 0 ? parsed.entries : [...staticEntries, ...parsed.entries])
}

export class ApiKeysFileSource {
  readonly #file: string
  readonly #static: StaticEntries
  readonly #log: FastifyBaseLogger
  readonly #swap: (store: ApiKeyStore) => void
  readonly #delayMs: number
  #digest = ''
  #keys = 0
  #timer: NodeJS.Timeout | undefined
  #watcher: FSWatcher | undefined

  constructor (opts: { file: string, staticEntries: StaticEntries, log: FastifyBaseLogger, swap: (store: ApiKeyStore) => void, delayMs: number }) {
    this.#file = opts.file
    this.#static = opts.staticEntries
    this.#log = opts.log
    this.#swap = opts.swap
    this.#delayMs = opts.delayMs
  }

  /** The first read, at registration: the store, or every problem (startup fails on them). */
  initial (): ApiKeyStore | string[] {
    let text: string
    try {
      text = readText(this.#file)
    } catch {
      return [`${this.#file}: cannot be read`]
    }
    const store = build(this.#file, text, this.#static)
    if (Array.isArray(store)) return store
    this.#digest = textDigest(text)
    this.#keys = store.size
    this.#log.info({ apiKeys: store.size, file: this.#file }, 'API keys loaded')
    return store
  }

  /** Re-reads the file now; a failure keeps the keys in use. */
  reload (): ApiKeysReloadResult {
    let text: string
    try {
      text = readText(this.#file)
    } catch (err) {
      this.#log.warn({ file: this.#file, problems: [`cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`], apiKeys: this.#keys }, 'API keys file not reloaded; the keys in use stay')
      return { status: 'failed', keys: this.#keys }
    }
    const digest = textDigest(text)
    if (digest === this.#digest) return { status: 'unchanged', keys: this.#keys }
    const store = build(this.#file, text, this.#static)
    if (Array.isArray(store)) {
      this.#log.warn({ file: this.#file, problems: store, apiKeys: this.#keys }, 'API keys file not reloaded; the keys in use stay')
      return { status: 'failed', keys: this.#keys }
    }
    this.#swap(store)
    this.#digest = digest
    this.#keys = store.size
    this.#log.info({ apiKeys: store.size, file: this.#file }, 'API keys reloaded')
    return { status: 'loaded', keys: store.size }
  }

  /** Re-reads the file `delayMs` after the last event in its folder. */
  watch (): void {
    const schedule = (): void => {
      if (this.#timer !== undefined) clearTimeout(this.#timer)
      this.#timer = setTimeout(() => {
        this.#timer = undefined
        this.reload()
      }, this.#delayMs)
      this.#timer.unref()
    }
    try {
      this.#watcher = watch(dirname(this.#file), { persistent: false }, schedule)
    } catch (err) {
      this.#log.warn({ file: this.#file, code: (err as NodeJS.ErrnoException).code }, 'API keys file not watched (reload with SIGHUP)')
      return
    }
    this.#watcher.on('error', (err: NodeJS.ErrnoException) => {
      this.#log.warn({ file: this.#file, code: err.code }, 'API keys file no longer watched (reload with SIGHUP)')
      this.close()
    })
  }

  close (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#watcher?.close()
    this.#watcher = undefined
  }
}
