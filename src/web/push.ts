import type { ChatClient } from '../client'

/*
 * Web Push for the app: the service worker the server serves at /push/sw.js, and a subscription made
 * with the server's VAPID key and registered through the client library.
 */

export const pushSupported = () => 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window

const fromBase64Url = (text: string) => {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(text.length / 4) * 4, '=')
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))
}

const sameBytes = (a: ArrayBuffer | null, b: Uint8Array) => {
  if (!a || a.byteLength !== b.length) return false
  const view = new Uint8Array(a)
  return view.every((byte, i) => byte === b[i])
}

/**
 * Subscribes this browser and tells the server. `ask`: request the permission (a click); without it,
 * only an already granted permission is used (a later start). True when subscribed.
 */
export async function subscribe(client: ChatClient, ask: boolean): Promise<boolean> {
  const permission = ask ? await Notification.requestPermission() : Notification.permission
  if (permission !== 'granted') return false
  await navigator.serviceWorker.register('/push/sw.js', { scope: '/' })
  const registration = await navigator.serviceWorker.ready
  const key = fromBase64Url(await client.vapidPublicKey())
  let subscription = await registration.pushManager.getSubscription()
  // Made with another server key (keys regenerated, another server at this address): it would never work.
  if (subscription && !sameBytes(subscription.options.applicationServerKey, key)) {
    await subscription.unsubscribe()
    subscription = null
  }
  subscription ??= await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key })
  const json = subscription.toJSON()
  if (!json.endpoint || !json.keys?.p256dh || !json.keys.auth) throw new Error('the browser gave an incomplete subscription')
  await client.subscribePush({ endpoint: json.endpoint, keys: { p256dh: json.keys.p256dh, auth: json.keys.auth } })
  return true
}
