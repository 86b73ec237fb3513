/**
 * Request shapes at the edges of the inspection rules, through the plugin's extraction and engine:
 * multipart file names read as a quoted string (RFC 7578 / RFC 2183), remote-inclusion URLs ending
 * in `?` against data URLs that end so too, and SQL quoted-operator shapes in parameters and headers.
 */
import t from 'tap'
import { createEngine, evaluateRequest } from '../../plugins/inspect/index.js'

const limits = { maxInspectBytes: 262_144, maxBodyDepth: 32, maxBodyKeys: 2048 }
const BOUNDARY = 'b0undary'

function multipart (disposition: string): { url: string, headers: Record<string, string>, body: Buffer } {
  return {
    url: '/upload',
    headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
    body: Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; ${disposition}\r\nContent-Type: text/plain\r\n\r\nhello\r\n--${BOUNDARY}--\r\n`)
  }
}

t.test('rules', async (t) => {
  const engine = createEngine()
  t.teardown(() => { engine.dispose() })
  const rules = (req: { url: string, headers?: Record<string, string>, body?: Buffer }): string[] =>
    evaluateRequest(engine, { url: req.url, headers: req.headers ?? {}, body: req.body }, limits, 2_000_000).matches.map((m) => m.ruleId)
  const json = (v: string): { url: string, headers: Record<string, string>, body: Buffer } =>
    ({ url: '/hooks', headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify({ v })) })

  t.test('a quoted multipart file name is read whole: a ; inside it does not end it', async (t) => {
    t.ok(rules(multipart('name="file"; filename="a\'; return db.a.find(); var dummy=\'!"')).includes('pc-nosql-003'))
    t.ok(rules(multipart('name="file"; filename="1; return db.a.find(); var dummy=1"')).includes('pc-nosql-003'))
    // A backslash escape is read both as an escape and as written.
    t.not(rules(multipart('name="file"; filename="x\\"><svg onload=alert(1)>.png"')).length, 0)
    t.not(rules(multipart('name="file"; filename="..\\..\\windows\\win.ini"')).length, 0)
    t.strictSame(rules(multipart('name="file"; filename="report; final (v2).pdf"')), [])
    t.strictSame(rules(multipart('name="file"; filename=plain.txt')), [])
  })

  t.test('a URL ending in ? is an inclusion after a file name, a folder or a host, not after a resource path', async (t) => {
    t.strictSame(rules(json('https://avatars.githubusercontent.com/in/29110?')), [])
    t.strictSame(rules({ url: '/a?avatar=https%3A%2F%2Favatars.githubusercontent.com%2Fu%2F1%3F' }), [])
    for (const v of ['http://evil.example/shell.txt?', 'https://evil.example/c99.txt??', 'http://evil.example/?', 'http://evil.example?', 'https://attacker.example:8443/inc.php?', 'http://evil.example/shell.txt#']) {
      t.ok(rules(json(v)).includes('pc-rfi-002'), `${v} in JSON`)
      t.ok(rules({ url: '/a?file=' + encodeURIComponent(v) }).includes('pc-rfi-002'), `${v} in the query`)
    }
  })

  t.test('a URL with a null byte is refused in a header too', async (t) => {
    t.ok(rules({ url: '/a', headers: { 'user-agent': 'http://evil.example/shell.txt%00' } }).includes('pc-rfi-006'))
    t.strictSame(rules({ url: '/a', headers: { referer: 'https://www.example.com/search?q=shell.txt' } }), [])
  })

  t.test('quoted SQL operators in parameters and headers', async (t) => {
    for (const v of ["A '!=' B", "A 'DIV' B", "'SOUNDS LIKE'", "aa'|LOCALTIME*0!='1", "'<~'", "abc' = !!!!'0"]) {
      t.not(rules({ url: '/a?q=' + encodeURIComponent(v) }).length, 0, `${v} in the query`)
      t.not(rules({ url: '/a', headers: { 'user-agent': v } }).length, 0, `${v} in User-Agent`)
    }
    t.not(rules({ url: '/a?q=' + encodeURIComponent("'+'") }).length, 0, "'+' in the query")
    t.not(rules({ url: '/a', headers: { 'x-note': "'%2B'" } }).length, 0, "'%2B' in a header")
    t.not(rules({ url: '/a?q=' + encodeURIComponent('SELECT 0xUNION SELECT 2') }).length, 0)
    t.not(rules({ url: '/a?q=' + encodeURIComponent('(select id from users limit 1,1)') }).length, 0)
    for (const v of ["O'Reilly", "'2020-01-01'", "rock 'n' roll", 'select x from y where', "it's 'quoted'"]) {
      t.strictSame(rules({ url: '/a?q=' + encodeURIComponent(v) }), [], `${v} passes`)
    }
  })
})
