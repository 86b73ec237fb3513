/**
 * The PROXY protocol header parser (src/proxy-protocol.ts): v1 TCP4/TCP6/UNKNOWN, v2 PROXY/LOCAL
 * over INET/INET6 (with TLVs), and the malformed shapes it must refuse.
 */
import t from 'tap'
import { parseProxyHeader, V2_MAX_PAYLOAD } from '../src/proxy-protocol.js'

const V2_SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])

function v2 (verCmd: number, famProto: number, payload: Buffer): Buffer {
  const len = Buffer.alloc(2)
  len.writeUInt16BE(payload.length)
  return Buffer.concat([V2_SIG, Buffer.from([verCmd, famProto]), len, payload])
}

function inet (src: number[], sport: number): Buffer {
  const b = Buffer.alloc(12)
  Buffer.from(src).copy(b, 0)
  Buffer.from([10, 0, 0, 1]).copy(b, 4)
  b.writeUInt16BE(sport, 8)
  b.writeUInt16BE(443, 10)
  return b
}

t.test('v1 TCP4, TCP6 and UNKNOWN', async (t) => {
  const line = 'PROXY TCP4 192.0.2.7 10.0.0.1 56324 8080\r\n'
  t.strictSame(parseProxyHeader(Buffer.from(line + 'GET / HTTP/1.1\r\n')), { kind: 'header', length: line.length, source: { address: '192.0.2.7', port: 56324, family: 'IPv4' } })
  const six = 'PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n'
  t.strictSame(parseProxyHeader(Buffer.from(six)), { kind: 'header', length: six.length, source: { address: '2001:db8::1', port: 1, family: 'IPv6' } })
  const unknown = 'PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n'
  t.strictSame(parseProxyHeader(Buffer.from(unknown)), { kind: 'header', length: unknown.length }, 'UNKNOWN keeps the real address')
  t.strictSame(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), { kind: 'header', length: 15 })
})

t.test('v1 arriving in pieces is incomplete until its CRLF', async (t) => {
  const line = 'PROXY TCP4 192.0.2.7 10.0.0.1 56324 8080\r\n'
  for (const n of [1, 3, 6, 20, line.length - 1]) {
    t.equal(parseProxyHeader(Buffer.from(line.slice(0, n))).kind, 'incomplete', `${n} bytes`)
  }
})

t.test('malformed v1 headers are invalid', async (t) => {
  const bad = [
    'PROXY TCP4 192.0.2.7 10.0.0.1 56324\r\n',
    'PROXY TCP4 192.0.2.7 10.0.0.1 56324 8080 extra\r\n',
    'PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n',
    'PROXY TCP6 192.0.2.7 2001:db8::2 1 2\r\n',
    'PROXY TCP4 192.0.2.256 10.0.0.1 1 2\r\n',
    'PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n',
    'PROXY TCP4 192.0.2.7 10.0.0.1 01 2\r\n',
    'PROXY TCP4 192.0.2.7 10.0.0.1 -1 2\r\n',
    'PROXY TCP4  192.0.2.7 10.0.0.1 1 2\r\n',
    'PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n',
    'PROXY tcp4 192.0.2.7 10.0.0.1 1 2\r\n',
    'GET / HTTP/1.1\r\n',
    'PROXX TCP4 192.0.2.7 10.0.0.1 1 2\r\n'
  ]
  for (const b of bad) t.equal(parseProxyHeader(Buffer.from(b)).kind, 'invalid', JSON.stringify(b))
  t.equal(parseProxyHeader(Buffer.from('PROXY UNKNOWN ' + 'x'.repeat(120))).kind, 'invalid', 'no CRLF within 107 bytes')
  t.equal(parseProxyHeader(Buffer.from('PROXY UNKNOWN ' + 'x'.repeat(100) + '\r\n')).kind, 'invalid', 'CRLF past 107 bytes')
})

t.test('v2 PROXY over INET and INET6, with TLVs; LOCAL', async (t) => {
  const four = v2(0x21, 0x11, inet([198, 51, 100, 23], 40000))
  t.strictSame(parseProxyHeader(Buffer.concat([four, Buffer.from('GET')])), { kind: 'header', length: 28, source: { address: '198.51.100.23', port: 40000, family: 'IPv4' } })

  const six = Buffer.alloc(36)
  Buffer.from('20010db8000000000000000000000042', 'hex').copy(six, 0)
  Buffer.from('20010db8000000000000000000000001', 'hex').copy(six, 16)
  six.writeUInt16BE(1234, 32)
  six.writeUInt16BE(443, 34)
  t.strictSame(parseProxyHeader(v2(0x21, 0x21, six)), { kind: 'header', length: 52, source: { address: '2001:db8::42', port: 1234, family: 'IPv6' } })

  const mapped = Buffer.from(six)
  Buffer.from('00000000000000000000ffffc0000201', 'hex').copy(mapped, 0)
  t.strictSame(parseProxyHeader(v2(0x21, 0x21, mapped)).kind === 'header' && (parseProxyHeader(v2(0x21, 0x21, mapped)) as { source?: { address: string } }).source?.address, '192.0.2.1', 'an IPv4-mapped source is IPv4')

  const tlv = Buffer.concat([inet([203, 0, 113, 5], 1), Buffer.from([0x01, 0x00, 0x02, 0x68, 0x32])])
  t.strictSame(parseProxyHeader(v2(0x21, 0x11, tlv)), { kind: 'header', length: 16 + 17, source: { address: '203.0.113.5', port: 1, family: 'IPv4' } }, 'TLVs are skipped')

  t.strictSame(parseProxyHeader(v2(0x20, 0x00, Buffer.alloc(0))), { kind: 'header', length: 16 }, 'LOCAL: the balancer speaks for itself')
  t.strictSame(parseProxyHeader(v2(0x20, 0x11, inet([1, 2, 3, 4], 1))), { kind: 'header', length: 28 }, 'LOCAL ignores addresses')
  t.strictSame(parseProxyHeader(v2(0x21, 0x00, Buffer.alloc(0))), { kind: 'header', length: 16 }, 'UNSPEC: no address')
  t.strictSame(parseProxyHeader(v2(0x21, 0x31, Buffer.alloc(216))), { kind: 'header', length: 232 }, 'UNIX: no IP address')
})

t.test('v2 in pieces is incomplete; malformed v2 is invalid', async (t) => {
  const four = v2(0x21, 0x11, inet([198, 51, 100, 23], 40000))
  for (const n of [1, 5, 12, 15, 16, 27]) t.equal(parseProxyHeader(four.subarray(0, n)).kind, 'incomplete', `${n} bytes`)
  t.equal(parseProxyHeader(v2(0x11, 0x11, inet([1, 2, 3, 4], 1))).kind, 'invalid', 'version 1 in the binary form')
  t.equal(parseProxyHeader(v2(0x22, 0x11, inet([1, 2, 3, 4], 1))).kind, 'invalid', 'unknown command')
  t.equal(parseProxyHeader(v2(0x21, 0x12, inet([1, 2, 3, 4], 1))).kind, 'invalid', 'datagram')
  t.equal(parseProxyHeader(v2(0x21, 0x41, inet([1, 2, 3, 4], 1))).kind, 'invalid', 'unknown family')
  t.equal(parseProxyHeader(v2(0x21, 0x11, Buffer.alloc(8))).kind, 'invalid', 'INET block too short')
  t.equal(parseProxyHeader(v2(0x21, 0x21, Buffer.alloc(12))).kind, 'invalid', 'INET6 block too short')
  const huge = Buffer.concat([V2_SIG, Buffer.from([0x21, 0x11, 0, 0])])
  huge.writeUInt16BE(V2_MAX_PAYLOAD + 1, 14)
  t.equal(parseProxyHeader(huge).kind, 'invalid', 'length past the bound, refused before it arrives')
  t.equal(parseProxyHeader(Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0b])).kind, 'invalid', 'signature mismatch')
  t.equal(parseProxyHeader(Buffer.from([0x16, 0x03, 0x01])).kind, 'invalid', 'a TLS ClientHello is no header')
})
