// Generates the gateway's secrets: a JWT_SECRET (32 random bytes) and one API key for the
// consumer "app", written into .env (created from .env.example when missing). Only empty or
// missing values are filled; a value already set is never replaced. No dependencies, so it runs
// before `npm install`:  node scripts/secrets.mjs   (or: npm run secrets)
//   --print   print the two lines instead of writing .env
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'

const secret = (bytes) => randomBytes(bytes).toString('base64url')
const generated = { JWT_SECRET: secret(32), API_KEYS: `app:${secret(24)}` }

if (process.argv.includes('--print')) {
  for (const [name, value] of Object.entries(generated)) process.stdout.write(`${name}=${value}\n`)
  process.exit(0)
}

const target = '.env'
const created = !existsSync(target)
let text = created ? (existsSync('.env.example') ? readFileSync('.env.example', 'utf8') : '') : readFileSync(target, 'utf8')
const filled = []
const kept = []
for (const [name, value] of Object.entries(generated)) {
  const line = new RegExp(`^${name}=(.*)$`, 'm')
  const m = line.exec(text)
  if (m === null) {
    text += `${text === '' || text.endsWith('\n') ? '' : '\n'}${name}=${value}\n`
    filled.push(name)
  } else if (m[1].replace(/#.*$/, '').trim() === '') {
    text = text.replace(line, `${name}=${value}`)
    filled.push(name)
  } else {
    kept.push(name)
  }
}
writeFileSync(target, text, { mode: 0o600 })
chmodSync(target, 0o600)
const done = filled.length > 0 ? `generated ${filled.join(' and ')}` : 'nothing generated'
process.stdout.write(`${created ? 'created' : 'updated'} ${target}: ${done}${kept.length > 0 ? `; kept the ${kept.join(' and ')} already set` : ''}\n`)
