/** `portcullis check`: every problem and risky choice of a configuration, at once. */
import { riskWarnings, type RiskWarning } from '../risks.js'
import { loadGatewayQuietly, type Problem } from './load.js'

export interface CheckReport {
  readonly ok: boolean
  readonly errors: readonly Problem[]
  readonly warnings: readonly RiskWarning[]
  readonly routes: number
}

export async function check (env: NodeJS.ProcessEnv, routesDir?: string): Promise<CheckReport> {
  const loaded = await loadGatewayQuietly(env, routesDir !== undefined ? { routesDir } : {})
  try {
    const typos: RiskWarning[] = loaded.environmentWarnings.map((w) => {
      const i = w.indexOf(':')
      const variable = i > 0 ? w.slice(0, i) : ''
      return { id: 'environment-variable', source: variable, option: variable, message: i > 0 ? w.slice(i + 1).trim() : w, fix: 'correct or remove the variable' }
    })
    const risks = loaded.config !== undefined ? riskWarnings(loaded.config, loaded.routes) : []
    return { ok: loaded.problems.length === 0, errors: loaded.problems, warnings: [...typos, ...risks], routes: loaded.routes.length }
  } finally {
    await loaded.app?.close()
  }
}

export function formatCheck (r: CheckReport): string {
  const lines: string[] = []
  for (const e of r.errors) lines.push(`error    ${e.source === '' ? '' : `${e.source}: `}${e.message}`)
  for (const w of r.warnings) lines.push(`warning  ${w.source}: ${w.message}\n         fix: ${w.fix}  [${w.id}]`)
  const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`
  lines.push(`${r.ok ? 'ok' : 'invalid'}: ${plural(r.errors.length, 'error')}, ${plural(r.warnings.length, 'warning')}${r.ok ? `, ${plural(r.routes, 'route')}` : ''}`)
  return lines.join('\n') + '\n'
}
