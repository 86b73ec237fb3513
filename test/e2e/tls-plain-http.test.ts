/**
 * Plain HTTP to the TLS port: a 400 in the gateway's body saying to use https (as nginx answers
 * "The plain HTTP request was sent to HTTPS port"), then the connection closes; nothing is
 * proxied, and TLS clients on the same port are served as before.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { Agent, request } from 'undici'
import { defineRoute } from 'portcullis'
import { startUpstream } from '../helpers/upstream.js'
import { startGateway } from '../helpers/gateway.js'
import { rawRequest } from '../helpers/raw-http.js'
import { makeCert } from '../helpers/certs.js'

const cert = makeCert()

t.test('plain HTTP on the TLS listener gets 400 GW_REQUEST_TLS_REQUIRED', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    logLevel: 'warn',
    env: { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile },
    routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false })]
  })

  const raw = await rawRequest(gw.port, 'GET /svc/x HTTP/1.1\r\nHost: gw\r\n\r\n')
  t.equal(raw.status, 400, 'raw socket')
  t.equal(raw.headers.connection, 'close')
  t.strictSame(JSON.parse(raw.body), { statusCode: 400, code: 'GW_REQUEST_TLS_REQUIRED', error: 'Bad Request', message: 'This port speaks HTTPS: use https://' })

  const curl = await new Promise<{ code: number, stdout: string }>((resolve) => {
    execFile('curl', ['-sS', '-i', '--max-time', '10', `http://127.0.0.1:${gw.port}/svc/x`], (err, stdout) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: unknown }).code ?? 1), stdout })
    })
  })
  t.equal(curl.code, 0, 'curl http:// reads a complete answer')
  t.match(curl.stdout, /^HTTP\/1\.1 400 Bad Request\r\n/)
  t.match(curl.stdout, /"code":"GW_REQUEST_TLS_REQUIRED"/)
  t.equal(up.requests.length, 0, 'nothing proxied')

  const agent = new Agent({ connect: { ca: cert.cert } })
  t.teardown(async () => { await agent.close() })
  const ok = await request(`https://localhost:${gw.port}/svc/x`, { dispatcher: agent })
  t.equal(ok.statusCode, 200, 'TLS clients are unaffected')
  await ok.body.text()
  t.equal(up.requests.length, 1)
})

t.test('the same with HTTP/2 enabled', async (t) => {
  const up = await startUpstream(t)
  const gw = await startGateway(t, {
    logLevel: 'warn',
    env: { TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: cert.keyFile, HTTP2: 'true' },
    routes: [defineRoute({ prefix: '/svc', upstream: up.url, auth: false })]
  })
  const raw = await rawRequest(gw.port, 'POST /svc/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n')
  t.equal(raw.status, 400)
  t.equal(JSON.parse(raw.body).code, 'GW_REQUEST_TLS_REQUIRED')
  t.equal(up.requests.length, 0)
})
