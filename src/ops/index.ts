import { Elysia, t } from 'elysia'
import type { Db } from '../storage/database'
import type { Metrics } from './metrics'

export interface Readiness {
  /** False once shutdown has begun. */
  accepting(): boolean
  /** True without a cluster, or while joined to it (Redis connected). */
  clusterJoined(): boolean
}

const Ready = t.Object({ status: t.Literal('ok') })
const NotReady = t.Object({
  status: t.Literal('unavailable'),
  error: t.Object({ code: t.Literal('unavailable'), message: t.String() }),
  checks: t.Record(t.String(), t.Boolean()),
})

/**
 * How long the database gets to answer a readiness check. A database that holds the connection and says
 * nothing (a network partition) would otherwise keep the check waiting for the driver's own timeouts,
 * longer than any load balancer waits: it answers 503 instead.
 */
const DATABASE_CHECK_MS = 2_000

const within = (ms: number, check: () => Promise<unknown>): Promise<boolean> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))
  const answered = check().then(() => true, () => false)
  return Promise.race([answered, late]).finally(() => clearTimeout(timer))
}

/** What is not ready, or nothing: each check answers on its own, so the 503 says which one failed. */
async function readiness(db: Db, ready: Readiness): Promise<Record<string, boolean>> {
  const started = Date.now()
  const reachable = await within(DATABASE_CHECK_MS, () => db.ping())
  const migrated = reachable && (await within(DATABASE_CHECK_MS - (Date.now() - started), async () => {
    if (!(await db.migrated())) throw new Error('migrations pending')
  }))
  return {
    accepting: ready.accepting(),
    database: reachable,
    migrations: migrated,
    cluster: ready.clusterJoined(),
  }
}

export const opsRoutes = (db: Db, metrics: Metrics, ready: Readiness) => {
  const readyHandler = async ({ set }: { set: { status?: number | string } }) => {
    const checks = await readiness(db, ready)
    const failed = Object.keys(checks).filter((name) => !checks[name])
    if (failed.length === 0) return { status: 'ok' as const }
    set.status = 503
    return {
      status: 'unavailable' as const,
      error: { code: 'unavailable' as const, message: `not ready: ${failed.join(', ')}` },
      checks,
    }
  }
  const readyDoc = {
    response: { 200: Ready, 503: NotReady },
  }
  return new Elysia({ tags: ['operations'] })
    .get('/health', readyHandler, {
      ...readyDoc,
      detail: { summary: 'Readiness (same as /health/ready)', description: 'Kept for the original clients and load balancers.' },
    })
    .get('/health/ready', readyHandler, {
      ...readyDoc,
      detail: {
        summary: 'Readiness',
        description: 'Database reachable, migrations applied, Redis joined when configured, not shutting down. 503 names what failed.',
      },
    })
    .get('/health/live', () => ({ status: 'ok' as const }), {
      response: { 200: Ready },
      detail: { summary: 'Liveness', description: 'The process is up and its event loop answers; nothing else is checked.' },
    })
    .get('/metrics', () => new Response(metrics.render(), { headers: { 'content-type': 'text/plain; version=0.0.4' } }), {
      detail: { summary: 'Prometheus metrics', description: 'Text exposition format 0.0.4.' },
    })
}
