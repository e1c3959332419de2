import { BlockList, isIP } from 'node:net'

/*
 * Which addresses are this machine's or its network's rather than the internet's: the one list both the
 * check of an endpoint's host when subscribing and the check of its resolved addresses before each push use.
 */

const INTERNAL_V4 = blockList('ipv4', [
  ['0.0.0.0', 8], // "this network", 0.0.0.0 itself
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // shared (carrier-grade NAT)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, cloud metadata services
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 3], // multicast, reserved (240/4), broadcast
])

/** IPv4-mapped, NAT64 and 6to4 addresses are judged by the IPv4 address they carry (see `embeddedV4`). */
const INTERNAL_V6 = blockList('ipv6', [
  ['::', 8], // unspecified, loopback, IPv4-compatible and the rest of ::/8
  ['2001::', 32], // Teredo: a tunnel to an IPv4 host it hides (obfuscated); no push service is reached so
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated, still routed inside some networks)
  ['ff00::', 8], // multicast
])

function blockList(type: 'ipv4' | 'ipv6', ranges: [string, number][]): BlockList {
  const list = new BlockList()
  for (const [network, bits] of ranges) list.addSubnet(network, bits, type)
  return list
}

/** An IP address the server must not send to. Anything that is not an address counts as internal. */
export function isInternalAddress(address: string): boolean {
  const family = isIP(address)
  if (family === 4) return INTERNAL_V4.check(address, 'ipv4')
  if (family !== 6) return true
  const groups = groupsOf(address.toLowerCase())
  const v4 = embeddedV4(groups)
  if (v4) return INTERNAL_V4.check(v4, 'ipv4')
  return INTERNAL_V6.check(groups.map((g) => g.toString(16)).join(':'), 'ipv6')
}

/**
 * A URL host that names this machine or its network: `localhost` or a name under it (fully qualified too),
 * or an internal address literal. The URL parser has already written IPv4 in dotted decimal.
 */
export function isInternalHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').replace(/\.+$/, '').toLowerCase()
  if (host === 'localhost' || host.endsWith('.localhost')) return true
  return isIP(host) !== 0 && isInternalAddress(host)
}

/** The eight 16-bit groups of a valid IPv6 address: `::` expanded, a dotted IPv4 tail read as two groups. */
function groupsOf(v6: string): number[] {
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(v6)
  const text = dotted ? `${v6.slice(0, dotted.index)}${hex(dotted[1], dotted[2])}:${hex(dotted[3], dotted[4])}` : v6
  const [head, tail] = text.split('::') as [string, string | undefined]
  const parse = (part: string | undefined) => (part ? part.split(':').map((g) => parseInt(g, 16)) : [])
  if (tail === undefined) return parse(head)
  const left = parse(head)
  const right = parse(tail)
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right]
}

function hex(high: string | undefined, low: string | undefined): string {
  return ((Number(high) << 8) | Number(low)).toString(16)
}

/**
 * The IPv4 address an IPv6 address stands for: IPv4-mapped (::ffff:0:0/96), NAT64 (64:ff9b::/96, what
 * DNS64 hands an IPv6-only host for every IPv4-only name) and 6to4 (2002::/16, the address in bits 16–47).
 */
function embeddedV4(g: number[]): string | undefined {
  const v4 = (high: number, low: number) => `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0)
  if (zeros(0, 5) && g[5] === 0xffff) return v4(g[6]!, g[7]!)
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return v4(g[6]!, g[7]!)
  if (g[0] === 0x2002) return v4(g[1]!, g[2]!)
  return undefined
}
