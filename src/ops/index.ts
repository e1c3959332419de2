import { Elysia, t } from 'elysia'
import type { Db } from '../storage/database'
import type { Metrics } from './metrics'

export interface Readiness {
  /** False once shutdown has begun. */
  accepting(): boolean
}

export const opsRoutes = (db: Db, metrics: Metrics, readiness: Readiness) =>
  new Elysia({ tags: ['operations'] })
    .get(
      '/health',
      async ({ set }) => {
        const ok = readiness.accepting() && (await db.ping().then(() => true, () => false))
        if (ok) return { status: 'ok' as const }
        set.status = 503
        return {
          status: 'unavailable' as const,
          error: { code: 'unavailable', message: 'not accepting work (database unreachable or shutting down)' },
        }
      },
      {
        response: {
          200: t.Object({ status: t.Literal('ok') }),
          503: t.Object({
            status: t.Literal('unavailable'),
            error: t.Object({ code: t.String(), message: t.String() }),
          }),
        },
      },
    )
    .get('/metrics', () => new Response(metrics.render(), { headers: { 'content-type': 'text/plain; version=0.0.4' } }))
