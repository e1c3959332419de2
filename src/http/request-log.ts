import { Elysia } from 'elysia'
import type { Logger } from '../log/logger'
import type { Metrics } from '../ops/metrics'
import { addressOf } from './client-address'

/** A client's own id is kept when it is a plain token of sane length; anything else is replaced. */
const GOOD_ID = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * One line per HTTP request — method, route pattern (never the path or query: a token may ride in the
 * query), status, duration, client address, request id — and the latency histogram by route. The
 * request id is the client's `X-Request-Id` or a new one, echoed back in the response.
 * `sample` is the share of successful requests logged; 4xx and 5xx are always logged.
 */
export const requestLog = (log: Logger, metrics: Metrics, sample: number) => {
  const started = new WeakMap<Request, { at: number; id: string }>()
  const logging = log.enabled('info')
  return new Elysia({ name: 'request-log' })
    .onRequest(({ request, set }) => {
      const given = request.headers.get('x-request-id')
      const id = given && GOOD_ID.test(given) ? given : Bun.randomUUIDv7()
      started.set(request, { at: performance.now(), id })
      set.headers['x-request-id'] = id
    })
    .onAfterResponse({ as: 'global' }, ({ request, route, set, responseValue }) => {
      const start = started.get(request)
      if (!start) return
      const ms = performance.now() - start.at
      const pattern = route || 'unmatched'
      metrics.httpDuration.observe(ms / 1000, { route: pattern })
      if (!logging) return
      const status = responseValue instanceof Response ? responseValue.status : Number(set.status ?? 200)
      if (status < 400 && sample < 1 && Math.random() >= sample) return
      const fields = {
        method: request.method,
        route: pattern,
        status,
        ms: Math.round(ms * 100) / 100,
        client: addressOf(request),
        request_id: start.id,
      }
      if (status >= 500) log.error('http', fields)
      else log.info('http', fields)
    })
}
