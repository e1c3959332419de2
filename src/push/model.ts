import { createECDH } from 'node:crypto'
import { isIP } from 'node:net'
import { t } from 'elysia'
import { invalidField } from '../errors'
import { isInternalHost } from './address'

export const MAX_SUBSCRIPTIONS_PER_USER = 10
const MAX_ENDPOINT_CHARS = 2048

/** The browser's `PushSubscription.toJSON()`; `expirationTime` is accepted and not kept. */
export const SubscribeBody = t.Object({
  endpoint: t.String({ minLength: 1, maxLength: MAX_ENDPOINT_CHARS }),
  keys: t.Object({
    p256dh: t.String({ minLength: 1, maxLength: 128 }),
    auth: t.String({ minLength: 1, maxLength: 64 }),
  }),
  expirationTime: t.Optional(t.Union([t.Number(), t.Null()])),
})

export const UnsubscribeBody = t.Object({ endpoint: t.String({ minLength: 1, maxLength: MAX_ENDPOINT_CHARS }) })

export const SubscriptionSchema = t.Object({ endpoint: t.String() })

export const VapidKeySchema = t.Object({ key: t.String() })

/** What a push carries, encrypted so that only the subscribed browser reads it. */
export interface PushPayload {
  type: 'message:new'
  dialog_id: number
  message_id: number
  seq: number
  sender: { id: number; username: string }
  preview: string
}

const PREVIEW_CHARS = 100

/** The first 100 characters (code points, never half an emoji). */
export function previewOf(text: string): string {
  let out = ''
  let chars = 0
  for (const ch of text) {
    if (++chars > PREVIEW_CHARS) break
    out += ch
  }
  return out
}

/**
 * `https://`, or `http://` to a loopback address outside production (a push service on the same machine:
 * tests, local development). No credentials in the URL.
 */
export function checkEndpoint(endpoint: string, production: boolean): void {
  checkSerialised(endpoint)
  let url: URL
  try {
    url = new URL(endpoint)
  } catch {
    throw invalidField('endpoint', 'not a URL')
  }
  if (url.username || url.password) throw invalidField('endpoint', 'must not hold credentials')
  // The server POSTs to it: in production not to its own network (push services are public hosts). A name
  // that resolves there is caught before each push (egress.ts).
  if (production && isInternalHost(url.hostname)) throw invalidField('endpoint', 'must not be a loopback, private or link-local address')
  if (url.protocol === 'https:') return
  if (url.protocol === 'http:' && !production && isLoopback(url.hostname)) return
  throw invalidField('endpoint', production ? 'must be https://' : 'must be https:// (or http:// to a loopback address)')
}

/**
 * A browser hands its endpoint over serialised (`PushSubscription.toJSON()`): printable ASCII, anything else
 * percent-encoded. Holding to that keeps NULs and control characters out, and 2 048 characters within
 * what a Postgres index entry holds (about 2.7 kB; 2 048 non-ASCII characters are up to 8 kB).
 */
export function checkSerialised(endpoint: string): void {
  if (!/^[\x21-\x7e]+$/.test(endpoint)) throw invalidField('endpoint', 'must be a URL as browsers serialise it: printable ASCII')
}

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '')
  if (host === 'localhost' || host === '::1') return true
  return isIP(host) === 4 && host.startsWith('127.')
}

const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/

/** p256dh: the browser's P-256 public key (65 bytes, a point on the curve); auth: its 16-byte secret. */
export function checkKeys(keys: { p256dh: string; auth: string }): void {
  const p256dh = BASE64URL.test(keys.p256dh) ? Buffer.from(keys.p256dh, 'base64url') : Buffer.alloc(0)
  let onCurve = p256dh.length === 65 && p256dh[0] === 4
  if (onCurve) {
    const probe = createECDH('prime256v1')
    probe.generateKeys()
    try {
      probe.computeSecret(p256dh)
    } catch {
      onCurve = false
    }
  }
  if (!onCurve) throw invalidField('keys.p256dh', 'expected a base64url P-256 public key (65 bytes)')
  const auth = BASE64URL.test(keys.auth) ? Buffer.from(keys.auth, 'base64url') : Buffer.alloc(0)
  if (auth.length !== 16) throw invalidField('keys.auth', 'expected a base64url 16-byte secret')
}
