/*
 * The web app's service worker for Web Push, served at /push/sw.js (register it with scope "/"; the
 * server sends `Service-Worker-Allowed: /`). Each push is one new message, decrypted by the browser:
 * {type: "message:new", dialog_id, message_id, seq, sender: {id, username}, preview}. It shows the
 * sender and the preview; a click focuses the app (or opens it) on that chat.
 */

self.addEventListener('install', () => self.skipWaiting())
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()))

self.addEventListener('push', (event) => {
  let data = {}
  try {
    data = event.data ? event.data.json() : {}
  } catch {
    // Not JSON: still show something, since browsers require every push to be seen (userVisibleOnly).
  }
  const isMessage = data.type === 'message:new'
  const title = isMessage && data.sender?.username ? data.sender.username : 'New message'
  event.waitUntil(
    self.registration.showNotification(title, {
      // With previews off (PUSH_PREVIEW=false) the server sends "", and the notification says only who wrote.
      body: isMessage && data.preview ? data.preview : 'Sent you a message',
      // One notification per chat, replaced by the newest message in it.
      tag: isMessage ? `dialog-${data.dialog_id}` : 'chat',
      renotify: true,
      data: isMessage ? { dialog_id: data.dialog_id, message_id: data.message_id } : {},
    }),
  )
})

self.addEventListener('notificationclick', (event) => {
  event.notification.close()
  const dialogId = event.notification.data?.dialog_id
  const target = new URL(dialogId ? `/?dialog=${dialogId}` : '/', self.location.origin)
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true })
      const app = windows.find((w) => new URL(w.url).origin === target.origin)
      if (app) {
        await app.focus()
        // The open app switches chats itself: no reload, its socket stays up.
        if (dialogId) app.postMessage({ type: 'push:open', dialog_id: dialogId })
        return
      }
      await self.clients.openWindow(target.href)
    })(),
  )
})
