import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { isInternalAddress } from './address'

/**
 * Where pushes may go in production: the endpoint's host is resolved here and refused when any of its
 * addresses is internal, and the request then connects to an address that was checked, never to what a
 * second lookup (fetch's own) might answer: a name that resolves to a public address for the check and to
 * an internal one a moment later (DNS rebinding) gains nothing.
 */
export interface Egress {
  /** Every address of a host name. */
  lookup(host: string): Promise<string[]>
  /** True for an address no push may connect to. */
  refuses(address: string): boolean
  /** Certificates (PEM) trusted besides the system's: the tests' local push service. */
  ca?: string
}

/** As the system resolves names (`/etc/hosts`, then DNS); no address of this machine or its network. */
export const PUBLIC_EGRESS: Egress = {
  lookup: async (host) => (await lookup(host, { all: true })).map((found) => found.address),
  refuses: isInternalAddress,
}

/** A push request; its headers as `sendPush` builds them. */
export type PushInit = Omit<RequestInit, 'headers' | 'signal'> & { headers: Record<string, string>; signal: AbortSignal }

/** Connecting to this address failed before anything was sent: the host's next address may answer. */
const UNREACHED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH'])

/**
 * `fetch` to one of the endpoint's checked addresses, in the resolver's order; 'internal' when one of them
 * is refused, and then nothing is sent. The URL names the address, so the request says which host it is for
 * (`Host`, and the TLS server name, against which the certificate is still verified).
 */
export async function fetchChecked(endpoint: string, init: PushInit, egress: Egress): Promise<Response | 'internal'> {
  const url = new URL(endpoint)
  const host = url.hostname.replace(/^\[|\]$/g, '')
  const named = isIP(host) === 0
  const addresses = named ? await unlessAborted(egress.lookup(host), init.signal) : [host]
  if (addresses.some((address) => egress.refuses(address))) return 'internal'
  let failure: unknown = new Error(`${host}: no address`)
  for (const address of addresses) {
    const target = new URL(url)
    target.hostname = isIP(address) === 6 ? `[${address}]` : address
    try {
      return await fetch(target, {
        ...init,
        headers: { ...init.headers, host: url.host },
        // serverName sets SNI and the name Bun verifies the certificate against (else the URL's address);
        // unlike a checkServerIdentity function, it lets connections to the push service be reused.
        tls: { ...(named && { serverName: host }), ...(egress.ca && { ca: egress.ca }) },
      })
    } catch (error) {
      if (!UNREACHED.has((error as { code?: string })?.code ?? '')) throw error
      failure = error
    }
  }
  throw failure
}

/** `work`, or the signal's reason once it aborts first: a lookup cannot be cancelled, only left behind. */
function unlessAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const abort = () => reject(signal.reason)
    if (signal.aborted) return abort()
    signal.addEventListener('abort', abort, { once: true })
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort))
  })
}
