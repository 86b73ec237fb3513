/**
 * A raw HTTP/2 client over TLS that writes frames itself, so tests can send what Node's http2
 * client refuses to (CR/LF/NUL in values, uppercase names, connection-specific fields, pseudo-header
 * misuse, a Content-Length that disagrees with DATA). Header blocks are HPACK literals without
 * indexing and without Huffman coding (RFC 7541 6.2.2), so any byte can be sent. Responses are
 * decoded only as far as tests need: `:status` (the first field), DATA, RST_STREAM, GOAWAY.
 */
import { once } from 'node:events'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'

export type Field = readonly [name: string, value: string]

export interface StreamOutcome {
  /** Response status, when the gateway answered. */
  status?: number
  body: string
  /** RST_STREAM error code, when the stream was reset (1 = PROTOCOL_ERROR). */
  reset?: number
}

const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7 } as const
const END_STREAM = 0x1
const END_HEADERS = 0x4
/** Static-table `:status` entries (RFC 7541 Appendix A). */
const STATIC_STATUS: Record<number, number> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 }
/** Huffman codes of the digits (RFC 7541 Appendix B): enough for a `:status` value. */
const HUFFMAN_DIGITS: Record<string, string> = {
  '00000': '0', '00001': '1', '00010': '2', '011001': '3', '011010': '4', '011011': '5', '011100': '6', '011101': '7', '011110': '8', '011111': '9'
}

function integer (n: number, prefixBits: number): number[] {
  const max = (1 << prefixBits) - 1
  if (n < max) return [n]
  const out = [max]
  let rest = n - max
  while (rest >= 128) { out.push((rest % 128) + 128); rest = Math.floor(rest / 128) }
  out.push(rest)
  return out
}

function literal (s: string): Buffer {
  const bytes = Buffer.from(s, 'latin1')
  return Buffer.concat([Buffer.from(integer(bytes.length, 7)), bytes])
}

/** An HPACK block of literal fields without indexing, raw strings: every byte as given. */
export function headerBlock (fields: readonly Field[]): Buffer {
  return Buffer.concat(fields.map(([name, value]) => Buffer.concat([Buffer.from([0]), literal(name), literal(value)])))
}

export function frame (type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9)
  head.writeUIntBE(payload.length, 0, 3)
  head[3] = type
  head[4] = flags
  head.writeUInt32BE(stream, 5)
  return Buffer.concat([head, payload])
}

function readInteger (buf: Buffer, at: number, prefixBits: number): [number, number] {
  const max = (1 << prefixBits) - 1
  let n = (buf[at] as number) & max
  let i = at + 1
  if (n < max) return [n, i]
  let shift = 0
  let b: number
  do {
    b = buf[i++] as number
    n += (b & 0x7f) * 2 ** shift
    shift += 7
  } while ((b & 0x80) !== 0)
  return [n, i]
}

/** The `:status` of a response header block (always its first field). */
function decodeStatus (block: Buffer): number {
  const first = block[0] as number
  if ((first & 0x80) !== 0) {
    const status = STATIC_STATUS[first & 0x7f]
    if (status === undefined) throw new Error(`unexpected indexed field ${first & 0x7f}`)
    return status
  }
  const [, afterName] = readInteger(block, 0, (first & 0x40) !== 0 ? 6 : 4)
  const huffman = ((block[afterName] as number) & 0x80) !== 0
  const [length, start] = readInteger(block, afterName, 7)
  const raw = block.subarray(start, start + length)
  if (!huffman) return Number(raw.toString('latin1'))
  let bits = ''
  for (const byte of raw) bits += byte.toString(2).padStart(8, '0')
  let out = ''
  let code = ''
  for (const bit of bits) {
    code += bit
    const digit = HUFFMAN_DIGITS[code]
    if (digit !== undefined) { out += digit; code = '' }
  }
  return Number(out)
}

/** One HTTP/2 connection; `request` opens a stream and resolves with how it ended. */
export class RawH2Client {
  private readonly socket: TLSSocket
  private buffer = Buffer.alloc(0)
  private nextStream = 1
  private readonly pending = new Map<number, { outcome: StreamOutcome, resolve: (o: StreamOutcome) => void }>()
  /** GOAWAY error code, once received. */
  goaway: number | undefined

  private constructor (socket: TLSSocket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => { this.onData(chunk) })
    socket.on('error', () => {})
    socket.on('close', () => {
      for (const [, p] of this.pending) p.resolve(p.outcome)
      this.pending.clear()
    })
  }

  static async connect (port: number, ca: string): Promise<RawH2Client> {
    const socket = tlsConnect({ port, host: '127.0.0.1', servername: 'localhost', ca, ALPNProtocols: ['h2'] })
    await once(socket, 'secureConnect')
    if (socket.alpnProtocol !== 'h2') throw new Error(`ALPN ${String(socket.alpnProtocol)}`)
    socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
    socket.write(frame(FRAME.SETTINGS, 0, 0))
    return new RawH2Client(socket)
  }

  /**
   * Sends a request: HEADERS (with END_STREAM when there is no body), then `body` as one DATA frame
   * once `beforeBody` has resolved.
   */
  async request (fields: readonly Field[], body?: string, beforeBody?: () => Promise<void>): Promise<StreamOutcome> {
    const id = this.nextStream
    this.nextStream += 2
    const done = new Promise<StreamOutcome>((resolve) => { this.pending.set(id, { outcome: { body: '' }, resolve }) })
    this.socket.write(frame(FRAME.HEADERS, END_HEADERS | (body === undefined ? END_STREAM : 0), id, headerBlock(fields)))
    if (body !== undefined) {
      if (beforeBody !== undefined) await beforeBody()
      this.socket.write(frame(FRAME.DATA, END_STREAM, id, Buffer.from(body)))
    }
    return await done
  }

  close (): void {
    this.socket.destroy()
  }

  private onData (chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk])
    while (this.buffer.length >= 9) {
      const length = this.buffer.readUIntBE(0, 3)
      if (this.buffer.length < 9 + length) return
      const type = this.buffer[3] as number
      const flags = this.buffer[4] as number
      const id = this.buffer.readUInt32BE(5) & 0x7fffffff
      const payload = this.buffer.subarray(9, 9 + length)
      this.buffer = this.buffer.subarray(9 + length)
      this.onFrame(type, flags, id, payload)
    }
  }

  private onFrame (type: number, flags: number, id: number, payload: Buffer): void {
    if (type === FRAME.SETTINGS && (flags & 0x1) === 0) this.socket.write(frame(FRAME.SETTINGS, 0x1, 0))
    if (type === FRAME.PING && (flags & 0x1) === 0) this.socket.write(frame(FRAME.PING, 0x1, 0, payload))
    if (type === FRAME.GOAWAY) this.goaway = payload.readUInt32BE(4)
    const p = this.pending.get(id)
    if (p === undefined) return
    if (type === FRAME.HEADERS && p.outcome.status === undefined) p.outcome.status = decodeStatus(payload)
    if (type === FRAME.DATA) p.outcome.body += payload.toString()
    if (type === FRAME.RST_STREAM) p.outcome.reset = payload.readUInt32BE(0)
    if (type === FRAME.RST_STREAM || ((type === FRAME.DATA || type === FRAME.HEADERS) && (flags & END_STREAM) !== 0)) {
      this.pending.delete(id)
      p.resolve(p.outcome)
    }
  }
}
