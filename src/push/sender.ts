import webpush from 'web-push'
import type { SubscriptionRecord } from './store'
import { fetchChecked, type Egress } from './egress'
import { Lru } from '../shared/lru'

export interface VapidKeys {
  publicKey: string
  privateKey: string
  subject: string
}

/** How one request to a push service ended. */
export type Outcome =
  | { kind: 'sent' }
  /** 404/410: the subscription no longer exists. */
  | { kind: 'gone'; status: number }
  /** In production: the endpoint's host resolves to an internal address; nothing was sent. */
  | { kind: 'internal' }
  /** 429, 5xx, a timeout or a network failure: worth trying again (after `afterMs` when the service said). */
  | { kind: 'retry'; reason: 'rate_limited' | 'server_error' | 'timeout' | 'network'; afterMs?: number }
  /** Anything else the service refused (400, 401, 403, 413…): trying again would fail again. */
  | { kind: 'rejected'; status: number }

const VAPID_TTL_SECONDS = 12 * 3600
const VAPID_RENEW_MS = 11 * 3600_000
const MAX_ORIGINS = 1_000

/**
 * VAPID `Authorization` headers (RFC 8292), one per push service origin, signed by web-push and reused
 * until an hour before they expire: signing costs as much as encrypting, and a few origins serve everyone.
 */
export class VapidSigner {
  private readonly signed = new Lru<string, { header: string; renewAt: number }>(MAX_ORIGINS)

  constructor(readonly keys: VapidKeys) {}

  authorization(endpoint: string, now = Date.now()): string {
    const origin = new URL(endpoint).origin
    const kept = this.signed.get(origin)
    if (kept && now < kept.renewAt) return kept.header
    const { Authorization } = webpush.getVapidHeaders(
      origin,
      this.keys.subject,
      this.keys.publicKey,
      this.keys.privateKey,
      'aes128gcm',
      Math.floor(now / 1000) + VAPID_TTL_SECONDS,
    )
    this.signed.set(origin, { header: Authorization, renewAt: now + VAPID_RENEW_MS })
    return Authorization
  }
}

/**
 * One Web Push request: web-push builds it (RFC 8291 aes128gcm encryption to the subscription's keys), the
 * signer adds VAPID for the endpoint's origin, and Bun's fetch sends it, so the request has our timeout and
 * cancellation and web-push's own https client is never used. With `egress` (production) it goes only to
 * public addresses, checked before connecting.
 */
export async function sendPush(
  vapid: VapidSigner,
  sub: SubscriptionRecord,
  payload: string,
  ttlSeconds: number,
  signal: AbortSignal,
  egress?: Egress,
): Promise<Outcome> {
  const details = webpush.generateRequestDetails({ endpoint: sub.endpoint, keys: { p256dh: sub.p256dh, auth: sub.auth } }, payload, {
    TTL: ttlSeconds,
    urgency: 'high',
    contentEncoding: 'aes128gcm',
    // No vapidDetails (and none set globally with setVapidDetails): the signer adds Authorization below.
  })
  const headers = Object.fromEntries(Object.entries(details.headers).map(([k, v]) => [k, String(v)]))
  headers.Authorization = vapid.authorization(sub.endpoint)
  let response: Response | 'internal'
  try {
    // No redirects: the request goes to the endpoint the browser gave, or nowhere.
    const init = { method: 'POST', headers, body: details.body ?? undefined, signal, redirect: 'manual' } as const
    response = egress ? await fetchChecked(details.endpoint, init, egress) : await fetch(details.endpoint, init)
  } catch (error) {
    const name = (error as Error)?.name
    return { kind: 'retry', reason: name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'network' }
  }
  if (response === 'internal') return { kind: 'internal' }
  // The body is never needed, and not read: an endpoint could answer with any amount of it.
  await response.body?.cancel().catch(() => undefined)
  const status = response.status
  if (status >= 200 && status < 300) return { kind: 'sent' }
  if (status === 404 || status === 410) return { kind: 'gone', status }
  if (status === 429 || status >= 500)
    return { kind: 'retry', reason: status === 429 ? 'rate_limited' : 'server_error', afterMs: retryAfterMs(response.headers.get('retry-after')) }
  return { kind: 'rejected', status }
}

/** Retry-After as seconds or an HTTP date (RFC 9110), in ms from now; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000
  const at = Date.parse(trimmed)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}
