/**
 * Requests against a gateway route with an API contract: `passes` proves a request reached the
 * upstream with the same path, query and body bytes; `refused` proves it was answered by the
 * gateway with the upstream receiving nothing and no value echoed.
 */
import type { Test } from 'tap'
import type { TestGateway } from './gateway.js'
import type { Upstream } from './upstream.js'

/** A value tests put into refused requests: it must never come back in an answer. */
export const CANARY = 'canary-7f3a9'

export interface Sent { method: string, path: string, headers?: Record<string, string>, body?: string | Buffer }

export interface Answer { status: number, text: string, json: Record<string, unknown>, headers: Headers }

export async function send (gw: TestGateway, s: Sent): Promise<Answer> {
  const body = s.body === undefined ? undefined : typeof s.body === 'string' ? s.body : new Uint8Array(s.body)
  const res = await fetch(gw.url + s.path, { method: s.method, headers: s.headers ?? {}, ...(body !== undefined ? { body } : {}) })
  const text = await res.text()
  let json: Record<string, unknown> = {}
  try { json = JSON.parse(text) as Record<string, unknown> } catch {}
  return { status: res.status, text, json, headers: res.headers }
}

export async function passes (t: Test, gw: TestGateway, up: Upstream, s: Sent, upstreamPath: string, what: string): Promise<void> {
  const before = up.requests.length
  const res = await send(gw, s)
  t.equal(res.status, 200, `${what}: passes (${res.text.slice(0, 200)})`)
  t.equal(up.requests.length, before + 1, `${what}: the upstream received it`)
  const got = up.requests[up.requests.length - 1]
  t.equal(got?.url, upstreamPath, `${what}: upstream path and query unchanged`)
  if (s.body !== undefined) t.ok(got?.body.equals(Buffer.from(s.body)), `${what}: upstream received the same body bytes`)
}

export async function refused (t: Test, gw: TestGateway, up: Upstream, s: Sent, status: number, code: string, what: string, violation?: string): Promise<Record<string, unknown>> {
  const before = up.requests.length
  const res = await send(gw, s)
  t.equal(res.status, status, `${what}: ${status} (${res.text.slice(0, 200)})`)
  t.equal(res.json.code, code, `${what}: ${code}`)
  if (violation !== undefined) t.ok((res.json.violations as string[] | undefined)?.includes(violation), `${what}: names ${violation} (got ${JSON.stringify(res.json.violations)})`)
  t.notOk(res.text.includes(CANARY), `${what}: the value is not echoed`)
  t.equal(up.requests.length, before, `${what}: the upstream received nothing`)
  return res.json
}

export interface FormPart {
  readonly name: string
  readonly value: string | Buffer
  readonly filename?: string
  readonly type?: string
  /** Extra header lines of the part (`Content-Transfer-Encoding: base64`). */
  readonly headers?: readonly string[]
}

/** A multipart/form-data body as browsers write it, and its Content-Type. */
export function multipart (parts: readonly FormPart[], boundary = '----portcullis7MA4YWxkTrZu0gW'): { body: Buffer, type: string } {
  const chunks: Buffer[] = []
  for (const p of parts) {
    const head = [
      `Content-Disposition: form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}`,
      ...(p.type !== undefined ? [`Content-Type: ${p.type}`] : []),
      ...(p.headers ?? [])
    ]
    chunks.push(Buffer.from(`--${boundary}\r\n${head.join('\r\n')}\r\n\r\n`), Buffer.from(p.value), Buffer.from('\r\n'))
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return { body: Buffer.concat(chunks), type: `multipart/form-data; boundary=${boundary}` }
}
