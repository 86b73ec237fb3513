/**
 * Warnings about environment variables that look like the gateway's but are not read by it
 * (`RATE_LIMT_MAX`, `JWT_SECRT`, `REDIS_TIMEOUT`): a misspelt setting is otherwise silently
 * ignored and its default applies. Warnings only: the environment holds many other programs'
 * variables. Never echoes a value.
 */

/** Prefixes only the gateway's variables use. */
const GATEWAY_PREFIXES = ['JWT_', 'JWKS_', 'API_KEYS', 'RATE_LIMIT_', 'IP_RATE_LIMIT_', 'REDIS_', 'INSPECT_', 'TLS_', 'ADMIN_', 'UPSTREAM_', 'IP_ALLOW', 'IP_DENY', 'DEMO_UPSTREAM', 'LOG_BUFFER', 'ROUTES_']

/**
 * Edit distance with adjacent swaps counted as one edit (optimal string alignment), stopping
 * early once it exceeds `max`.
 */
export function editDistance (a: string, b: string, max = Infinity): number {
  if (Math.abs(a.length - b.length) > max) return max + 1
  let prev2: number[] = []
  let prev: number[] = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    let best = i
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let d = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, (prev2[j - 2] as number) + 1)
      row.push(d)
      if (d < best) best = d
    }
    if (best > max) return max + 1
    prev2 = prev
    prev = row
  }
  return prev[b.length] as number
}

/**
 * Variables of the shell, the OS and common tools: never a misspelling of the gateway's. `NODE`
 * is set by `npm start` itself (the path of node); `SSL_CERT_FILE`/`SSL_CERT_DIR` are OpenSSL's.
 */
const OTHER_PROGRAMS: ReadonlySet<string> = new Set([
  'PATH', 'HOME', 'PWD', 'OLDPWD', 'USER', 'LOGNAME', 'SHELL', 'TERM', 'LANG', 'LANGUAGE', 'HOSTNAME',
  'TMPDIR', 'TMP', 'TEMP', 'TZ', 'SHLVL', 'MAIL', 'EDITOR', 'PAGER', 'DISPLAY', 'COLUMNS', 'LINES',
  'NODE', 'NODE_OPTIONS', 'NODE_PATH', 'NODE_EXTRA_CA_CERTS', 'CI', 'DEBUG', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY',
  'SSL_CERT_FILE', 'SSL_CERT_DIR'
])

/**
 * The variables Kubernetes sets for every service in the namespace (a service named `redis`
 * gives REDIS_SERVICE_HOST, REDIS_SERVICE_PORT, REDIS_PORT=tcp://..., REDIS_PORT_6379_TCP...).
 * https://kubernetes.io/docs/concepts/services-networking/service/#environment-variables
 */
function isServiceLink (name: string, value: string | undefined): boolean {
  if (/_SERVICE_(?:HOST|PORT)(?:_[A-Z0-9_]+)?$/.test(name)) return true
  if (/_PORT_\d+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?$/.test(name)) return true
  return /_PORT$/.test(name) && /^(?:tcp|udp|sctp):\/\//.test(value ?? '')
}

/** The known name `name` is most likely a misspelling of, or undefined. */
function closest (name: string, known: readonly string[]): string | undefined {
  // Short names get one edit only: HOME is two edits from HOST.
  const max = name.length <= 5 ? 1 : 2
  // A unit or part left off (REDIS_TIMEOUT for REDIS_TIMEOUT_MS).
  const longer = known.find((k) => k.startsWith(`${name}_`))
  if (longer !== undefined) return longer
  let best: string | undefined
  let bestDistance = max + 1
  for (const k of known) {
    const d = editDistance(name, k, max)
    if (d < bestDistance) {
      best = k
      bestDistance = d
    }
  }
  return best
}

/**
 * One warning per variable in `env` that the gateway does not read but that is close to one of
 * `known` or uses a gateway prefix. `routeVariables` (read by route modules) and names ending
 * in `_UPSTREAM_URL` are route settings and never warned about.
 */
export function unknownVariableWarnings (env: NodeJS.ProcessEnv, known: readonly string[], routeVariables: ReadonlySet<string>): string[] {
  const knownSet = new Set(known)
  const warnings: string[] = []
  for (const name of Object.keys(env).sort()) {
    if (knownSet.has(name) || routeVariables.has(name) || OTHER_PROGRAMS.has(name) || name.endsWith('_UPSTREAM_URL') || isServiceLink(name, env[name])) continue
    const upper = name.toUpperCase()
    if (upper !== name && knownSet.has(upper)) {
      warnings.push(env[upper] === undefined
        ? `${name}: not read by the gateway (names are case-sensitive); rename it to ${upper}, which is unset until then`
        : `${name}: not read by the gateway (names are case-sensitive); ${upper} is set and applies, remove ${name}`)
      continue
    }
    const likely = closest(upper, known)
    if (likely !== undefined) {
      warnings.push(env[likely] === undefined
        ? `${name}: not read by the gateway; did you mean ${likely}? Rename it: ${likely} is unset until then`
        : `${name}: not read by the gateway; did you mean ${likely}? ${likely} is set and applies, remove ${name}`)
    } else if (GATEWAY_PREFIXES.some((p) => upper.startsWith(p))) {
      const family = known.filter((k) => GATEWAY_PREFIXES.some((p) => upper.startsWith(p) && k.startsWith(p)))
      warnings.push(`${name}: not read by the gateway; remove it, or use one it reads with this prefix: ${family.join(', ')}`)
    }
  }
  return warnings
}
