import { isIP } from 'node:net'
import { ConfigError } from '../config'

/**
 * TRUST_PROXY: when the forwarding header the proxies set (TRUST_PROXY_HEADER) names the client.
 * - off (default): never; the peer address is the client.
 * - a hop count `n`: the n nearest proxies are trusted, whatever their address.
 * - a list of addresses / CIDRs: proxies at those addresses are trusted.
 * The client is found walking the chain from the nearest hop back, past trusted proxies only: a client
 * that writes its own header adds entries to the far end of the chain, which is never reached while an
 * untrusted hop comes first — so a spoofed header from an untrusted peer changes nothing.
 * TRUST_PROXY_HEADER names the one header the proxies set (X-Forwarded-For unless told `forwarded`): the
 * other is the client's own, passed through untouched, and is never read.
 */
export type TrustProxy = { kind: 'off' } | ({ kind: 'hops'; hops: number } | { kind: 'list'; ranges: Range[] }) & { header: ForwardingHeader }

export type ForwardingHeader = 'x-forwarded-for' | 'forwarded'

interface Range {
  v6: boolean
  bits: bigint
  prefix: number
}

export function parseTrustProxy(value: string | undefined, headerValue?: string): TrustProxy {
  const named = headerValue?.trim().toLowerCase() || 'x-forwarded-for'
  if (named !== 'x-forwarded-for' && named !== 'forwarded')
    throw new ConfigError('TRUST_PROXY_HEADER', `expected x-forwarded-for or forwarded, got "${headerValue}"`)
  const header: ForwardingHeader = named
  const raw = value?.trim().toLowerCase() ?? ''
  if (raw === '' || raw === 'off' || raw === 'false' || raw === '0') return { kind: 'off' }
  if (/^\d+$/.test(raw)) return { kind: 'hops', hops: Number(raw), header }
  const ranges = raw.split(',').map((part) => part.trim()).filter(Boolean).map((part) => {
    const named = NAMED[part]
    if (named) return named.map(parseRange)
    const range = parseRange(part)
    if (!range) throw new ConfigError('TRUST_PROXY', `expected off, a hop count, or addresses/CIDRs (loopback, private), got "${part}"`)
    return [range]
  })
  return { kind: 'list', ranges: ranges.flat().filter((r): r is Range => r !== undefined), header }
}

const NAMED: Record<string, string[]> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  private: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
}

function parseRange(text: string): Range | undefined {
  const [address, prefixText] = text.split('/')
  const bits = addressBits(address ?? '')
  if (!bits) return undefined
  const max = bits.v6 ? 128 : 32
  const prefix = prefixText === undefined ? max : Number(prefixText)
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return undefined
  return { v6: bits.v6, bits: bits.value, prefix }
}

function addressBits(address: string): { v6: boolean; value: bigint } | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped) address = mapped[1]!
  const version = isIP(address)
  if (version === 4) return { v6: false, value: address.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n) }
  if (version !== 6) return undefined
  const [head = '', tail = ''] = address.split('::')
  const groups = (s: string) => (s ? s.split(':') : [])
  let parts = [...groups(head)]
  const rest = groups(tail)
  // An embedded IPv4 tail (::ffff:1.2.3.4 handled above; others rare) is two groups.
  const last = (address.includes('::') ? rest : parts).at(-1)
  if (last?.includes('.')) return undefined
  if (address.includes('::')) parts = [...parts, ...Array(8 - parts.length - rest.length).fill('0'), ...rest]
  return { v6: true, value: parts.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || '0', 16)), 0n) }
}

function inRange(address: string, ranges: Range[]): boolean {
  const bits = addressBits(address)
  if (!bits) return false
  return ranges.some((r) => {
    if (r.v6 !== bits.v6) return false
    const shift = BigInt((r.v6 ? 128 : 32) - r.prefix)
    return bits.value >> shift === r.bits >> shift
  })
}

/** The forwarding chain, farthest first, from the header the proxies set: X-Forwarded-For, or RFC 7239 `Forwarded` (for=). */
function chain(headers: Headers, header: ForwardingHeader): string[] {
  if (header === 'forwarded') {
    const forwarded = headers.get('forwarded')
    if (!forwarded) return []
    const hops: string[] = []
    for (const element of forwarded.split(',')) {
      const match = /(?:^|;)\s*for=("?)([^;,"]*)\1/i.exec(element)
      if (!match) return []
      let value = match[2]!.trim()
      // "[2001:db8::1]:4711" and "192.0.2.43:47011": the port goes.
      const bracketed = /^\[([^\]]+)\]/.exec(value)
      if (bracketed) value = bracketed[1]!
      else if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(value)) value = value.slice(0, value.lastIndexOf(':'))
      hops.push(value)
    }
    return hops
  }
  const xff = headers.get('x-forwarded-for')
  return xff ? xff.split(',').map((s) => s.trim()) : []
}

/** The client's address for rate limits and logs, given the socket peer's. */
export function clientAddress(trust: TrustProxy, peer: string, headers: Headers): string {
  if (trust.kind === 'off') return peer
  const hops = chain(headers, trust.header)
  let client = peer
  let trusted = 0
  while (hops.length > 0) {
    const ok = trust.kind === 'hops' ? trusted < trust.hops : inRange(client, trust.ranges)
    if (!ok) break
    const next = hops.pop()!
    // A garbled entry ends the walk at the last address we could trust.
    if (isIP(next) === 0) break
    client = next
    trusted++
  }
  return client
}
