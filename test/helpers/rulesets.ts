/** Operator rulesets for the inspection tests, written to temporary files. */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Writes `ruleset` (libddwaf JSON) to a new temporary file and returns its path. */
export function rulesetFile (ruleset: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), 'pc-rules-')), 'rules.json')
  writeFileSync(file, JSON.stringify(ruleset))
  return file
}

/**
 * One operator rule whose two conditions tie a header value to a query value: with it loaded,
 * values are not judged alone (no verdict cache, no joint runs).
 */
export const TIED_PAIR_RULESET = Object.freeze({
  version: '2.2',
  rules: [{
    id: 'acme-pair',
    name: 'debug header with a debug query',
    tags: { type: 'generic', category: 'attack_attempt', family: 'generic' },
    conditions: [
      { operator: 'match_regex', parameters: { inputs: [{ address: 'server.request.headers.no_cookies' }], regex: '^acme-debug$' } },
      { operator: 'match_regex', parameters: { inputs: [{ address: 'server.request.query' }], regex: '^acme on$' } }
    ]
  }]
})
