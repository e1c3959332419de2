import { Elysia } from 'elysia'
import { authGuard } from '../auth/guard'
import type { AuthService } from '../auth/service'
import serviceWorker from './sw.js' with { type: 'text' }
import { SubscribeBody, SubscriptionSchema, UnsubscribeBody, VapidKeySchema } from './model'
import type { PushService } from './service'

/** The VAPID public key (no auth: the web app needs it to subscribe) and the caller's subscriptions. */
export const pushRoutes = (auth: AuthService, push: PushService) =>
  new Elysia({ prefix: '/push', tags: ['push'] })
    .use(authGuard(auth))
    .get('/vapid-public-key', () => ({ key: push.publicKey }), { response: { 200: VapidKeySchema } })
    // The web app's service worker; it may control the whole site although it lives under /push/.
    .get(
      '/sw.js',
      () =>
        new Response(serviceWorker, {
          headers: {
            'content-type': 'text/javascript; charset=utf-8',
            'service-worker-allowed': '/',
            'cache-control': 'no-cache',
          },
        }),
    )
    .post(
      '/subscriptions',
      async ({ principal, body, set }) => {
        const { created } = await push.subscribe(principal, body)
        set.status = created ? 201 : 200
        return { endpoint: body.endpoint }
      },
      { auth: true, body: SubscribeBody, response: { 200: SubscriptionSchema, 201: SubscriptionSchema } },
    )
    .delete(
      '/subscriptions',
      async ({ principal, body, set }) => {
        await push.unsubscribe(principal.userId, body.endpoint)
        set.status = 204
      },
      { auth: true, body: UnsubscribeBody },
    )
