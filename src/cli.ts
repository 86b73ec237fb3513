#!/usr/bin/env node
/**
 * The `portcullis` command: runs the gateway, or inspects its configuration.
 *
 *   portcullis [start]                 run the gateway (what `npm start` does)
 *   portcullis check [--strict]        every configuration problem and risky choice, at once
 *   portcullis routes                  the effective route table, defaults resolved
 *   portcullis explain 'GET /path'     how the gateway reads one request (no upstream contacted)
 *   portcullis diff OLD [NEW]          what a change to the routes does to security (folders or git revisions)
 *   portcullis audit                   bypass attempts against every route, through the real chain
 *
 * Every command reads the same environment as the gateway and takes `--routes DIR` (instead of
 * ROUTES_DIR) and `--json`. Exit codes: 0 fine, 1 problems found (errors; warnings with
 * `--strict`; weakening changes without `--allow-weakening`; a bypass or a failed control in
 * `audit`), 2 usage.
 */
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const USAGE = `usage: portcullis [start]
       portcullis check [--strict] [--json] [--routes DIR]
       portcullis routes [--json] [--routes DIR]
       portcullis explain 'METHOD /path' [-H 'name: value']... [--json] [--routes DIR]
       portcullis explain --request FILE|-  (a raw HTTP request) [--json]
       portcullis diff OLD [NEW] [--allow-weakening] [--json] [--routes DIR]
           OLD, NEW: a route folder, or a git revision of the routes folder (main, HEAD~1,
           origin/main, a tag or commit; git:REV when a folder has that name);
           NEW omitted or '.': the working tree
       portcullis audit [--json] [--routes DIR]
`

export interface CliIo {
  readonly env: NodeJS.ProcessEnv
  readonly out: (text: string) => void
  readonly err: (text: string) => void
  readonly stdin?: () => Promise<string>
}

async function readStdin (): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('latin1')
}

/** Runs one command; returns the exit code. */
export async function runCli (argv: readonly string[], io: CliIo): Promise<number> {
  const [command = 'start', ...rest] = argv
  let parsed
  try {
    parsed = parseArgs({
      args: [...rest],
      allowPositionals: true,
      options: {
        json: { type: 'boolean', default: false },
        strict: { type: 'boolean', default: false },
        routes: { type: 'string' },
        'allow-weakening': { type: 'boolean', default: false },
        header: { type: 'string', short: 'H', multiple: true },
        request: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false }
      }
    })
  } catch (err) {
    io.err(`portcullis: ${(err as Error).message}\n${USAGE}`)
    return 2
  }
  const { values: o, positionals } = parsed
  const show = (value: unknown, text: () => string): void => { io.out(o.json ? JSON.stringify(value, null, 2) + '\n' : text()) }
  if (o.help || command === 'help' || command === '--help' || command === '-h') {
    io.out(USAGE)
    return 0
  }
  switch (command) {
    case 'check': {
      const { check, formatCheck } = await import('./cli/check.js')
      const report = await check(io.env, o.routes)
      show(report, () => formatCheck(report))
      return !report.ok || (o.strict && report.warnings.length > 0) ? 1 : 0
    }
    case 'routes': {
      const { loadGatewayQuietly } = await import('./cli/load.js')
      const { effectiveRoute } = await import('./cli/effective.js')
      const { formatTable, routeRow } = await import('./cli/routes.js')
      const loaded = await loadGatewayQuietly(io.env, o.routes !== undefined ? { routesDir: o.routes } : {})
      try {
        if (loaded.config === undefined || loaded.problems.length > 0) {
          for (const p of loaded.problems) io.err(`error    ${p.source === '' ? '' : `${p.source}: `}${p.message}\n`)
          io.err('portcullis: the configuration is invalid (portcullis check lists every problem)\n')
          return 1
        }
        const config = loaded.config
        const routes = loaded.routes.map((r) => effectiveRoute(r, config))
        show(routes, () => formatTable(routes.map(routeRow)))
        return 0
      } finally {
        await loaded.app?.close()
      }
    }
    case 'explain': {
      const { explain, formatExplain, parseRequestLine, parseRawRequest } = await import('./cli/explain.js')
      let request
      try {
        if (o.request !== undefined) {
          const { readFileSync } = await import('node:fs')
          const raw = o.request === '-' ? await (io.stdin ?? readStdin)() : readFileSync(o.request, 'latin1')
          request = parseRawRequest(raw)
        } else {
          if (positionals.length !== 1) throw new Error("give the request as one argument, e.g. 'GET /orders/1', or --request FILE")
          request = parseRequestLine(positionals[0] as string, o.header ?? [])
        }
      } catch (err) {
        io.err(`portcullis: ${(err as Error).message}\n${USAGE}`)
        return 2
      }
      const report = await explain(io.env, request, o.routes)
      show(report, () => formatExplain(report))
      return report.problems.length > 0 ? 1 : 0
    }
    case 'diff': {
      if (positionals.length < 1 || positionals.length > 2) {
        io.err(`portcullis: diff needs OLD and NEW (route folders or git revisions), or one revision to compare with the working tree\n${USAGE}`)
        return 2
      }
      const { diff, formatDiff } = await import('./cli/diff.js')
      const { DiffUsageError } = await import('./cli/git-revision.js')
      let report
      try {
        report = await diff(io.env, positionals[0] as string, positionals[1], o.routes)
      } catch (err) {
        if (!(err instanceof DiffUsageError)) throw err
        io.err(`portcullis: ${err.message}\n`)
        return 2
      }
      show(report, () => formatDiff(report))
      const invalid = report.problems.old.length + report.problems.new.length > 0
      const weakens = report.changes.some((c) => c.kind === 'weakens')
      return invalid || (weakens && !o['allow-weakening']) ? 1 : 0
    }
    case 'audit': {
      if (positionals.length > 0) {
        io.err(`portcullis: audit takes no arguments\n${USAGE}`)
        return 2
      }
      const { audit, formatAudit } = await import('./cli/audit.js')
      const report = await audit(io.env, o.routes)
      if (report.problems.length > 0) {
        for (const p of report.problems) io.err(`error    ${p.source === '' ? '' : `${p.source}: `}${p.message}\n`)
        io.err('portcullis: the configuration is invalid (portcullis check lists every problem)\n')
        return 1
      }
      show(report, () => formatAudit(report))
      return report.ok ? 0 : 1
    }
    default:
      io.err(`portcullis: unknown command "${command}"\n${USAGE}`)
      return 2
  }
}

const entry = process.argv[1]
if (entry !== undefined && realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url))) {
  const [command] = process.argv.slice(2)
  if (command === undefined || command === 'start') {
    const { runServer } = await import('./server.js')
    await runServer()
  } else {
    const code = await runCli(process.argv.slice(2), {
      env: process.env,
      out: (t) => { process.stdout.write(t) },
      err: (t) => { process.stderr.write(t) }
    })
    // Handles a loaded configuration may leave open (a Redis client) must not keep the tool alive.
    process.stdout.write('', () => process.exit(code))
  }
}
