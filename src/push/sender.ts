import webpush from 'web-push'
import type { SubscriptionRecord } from './store'

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
  /** 429, 5xx, a timeout or a network failure: worth trying again (after `afterMs` when the service said). */
  | { kind: 'retry'; reason: 'rate_limited' | 'server_error' | 'timeout' | 'network'; afterMs?: number }
  /** Anything else the service refused (400, 401, 403, 413…): trying again would fail again. */
  | { kind: 'rejected'; status: number }

/**
 * One Web Push request: web-push builds it (RFC 8291 aes128gcm encryption to the subscription's keys, RFC
 * 8292 VAPID signature for the endpoint's origin) and Bun's fetch sends it, so the request has our timeout
 * and cancellation and web-push's own https client is never used.
 */
export async function sendPush(
  vapid: VapidKeys,
  sub: SubscriptionRecord,
  payload: string,
  ttlSeconds: number,
  signal: AbortSignal,
): Promise<Outcome> {
  const details = webpush.generateRequestDetails({ endpoint: sub.endpoint, keys: { p256dh: sub.p256dh, auth: sub.auth } }, payload, {
    TTL: ttlSeconds,
    urgency: 'high',
    contentEncoding: 'aes128gcm',
    vapidDetails: vapid,
  })
  const headers = Object.fromEntries(Object.entries(details.headers).map(([k, v]) => [k, String(v)]))
  let response: Response
  try {
    // No redirects: the request goes to the endpoint the browser gave, or nowhere.
    response = await fetch(details.endpoint, { method: 'POST', headers, body: details.body ?? undefined, signal, redirect: 'manual' })
  } catch (error) {
    const name = (error as Error)?.name
    return { kind: 'retry', reason: name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'network' }
  }
  // The body is never needed; reading it lets the connection be reused.
  await response.arrayBuffer().catch(() => undefined)
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
