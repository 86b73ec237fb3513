/**
 * The gateway as a real process (`node <flags> dist/src/server.js`, as `npm start` runs it) with a clean
 * environment, its stdout and stderr collected.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { waitFor } from './wait-for.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const server = fileURLToPath(new URL('../../dist/src/server.js', import.meta.url))

/** The node flags of `npm start` (package.json: `node <flags> dist/src/server.js`). */
export function startNodeFlags (): string[] {
  const start = (JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as { scripts: { start: string } }).scripts.start
  const words = start.split(' ')
  if (words[0] !== 'node' || words.at(-1) !== 'dist/src/server.js') throw new Error(`package.json scripts.start is not "node [flags] dist/src/server.js": ${start}`)
  return words.slice(1, -1)
}

export interface GatewayProcess {
  readonly child: ChildProcess
  out: () => string
  err: () => string
  readonly exited: Promise<number | null>
}

/** Starts the built gateway with exactly `env` (plus PATH). */
export function runGateway (env: Record<string, string>): GatewayProcess {
  const child = spawn(process.execPath, [...startNodeFlags(), server], { cwd: root, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code) }))
  return { child, out: () => out, err: () => err, exited }
}

/** How many lines of the gateway's standard output contain `text`. */
export function countLines (p: GatewayProcess, text: string): number {
  return p.out().split('\n').filter((line) => line.includes(text)).length
}

/** Sends SIGHUP and waits for the reload's outcome line (reloaded, or refused). */
export async function sighup (p: GatewayProcess): Promise<'reloaded' | 'refused'> {
  const done = countLines(p, 'configuration reloaded')
  const refused = countLines(p, 'configuration reload refused')
  p.child.kill('SIGHUP')
  return await waitFor(() => countLines(p, 'configuration reloaded') > done ? 'reloaded' : countLines(p, 'configuration reload refused') > refused ? 'refused' : undefined, { message: 'reload outcome logged' })
}
