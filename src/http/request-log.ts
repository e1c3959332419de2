import type { Server } from 'bun'
import { Elysia } from 'elysia'
import type { Logger } from '../log/logger'
import type { Metrics } from '../ops/metrics'
import { addressOf } from './client-address'
import { clientAddress, type TrustProxy } from './trust-proxy'

/** A client's own id is kept when it is a plain token of sane length; anything else is replaced. */
const GOOD_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** The client's `X-Request-Id`, or a new one. */
const requestId = (request: Request) => {
  const given = request.headers.get('x-request-id')
  return given && GOOD_ID.test(given) ? given : Bun.randomUUIDv7()
}

/**
 * One line per HTTP request — method, route pattern (never the path or query: a token may ride in the
 * query), status, duration, client address, request id — and the latency histogram by route, whoever
 * answers it: the app (`requestLog`) or the server itself (`outsideLog`), and the request counter by route
 * and status. The request id is the client's
 * `X-Request-Id` or a new one, echoed back in the response.
 * `sample` is the share of successful requests logged; 4xx and 5xx are always logged.
 */
const requestLine = (log: Logger, metrics: Metrics, sample: number) => {
  const logging = log.enabled('info')
  return (method: string, route: string, status: number, at: number, client: string, id: string) => {
    const ms = performance.now() - at
    metrics.httpDuration.observe(ms / 1000, { route })
    metrics.httpRequests.inc({ route, status: String(status) })
    if (!logging) return
    if (status < 400 && sample < 1 && Math.random() >= sample) return
    const fields = { method, route, status, ms: Math.round(ms * 100) / 100, client, request_id: id }
    if (status >= 500) log.error('http', fields)
    else log.info('http', fields)
  }
}

/** The line of each request the Elysia app answers. */
export const requestLog = (log: Logger, metrics: Metrics, sample: number) => {
  const started = new WeakMap<Request, { at: number; id: string }>()
  const line = requestLine(log, metrics, sample)
  return new Elysia({ name: 'request-log' })
    .onRequest(({ request, set }) => {
      const id = requestId(request)
      started.set(request, { at: performance.now(), id })
      set.headers['x-request-id'] = id
    })
    .onAfterResponse({ as: 'global' }, ({ request, route, set, responseValue }) => {
      const start = started.get(request)
      if (!start) return
      const status = responseValue instanceof Response ? responseValue.status : Number(set.status ?? 200)
      line(request.method, route || 'unmatched', status, start.at, addressOf(request), start.id)
    })
}

/** A request the server answers outside the app: when it began, its id, its client (as TRUST_PROXY finds it). */
interface Trace {
  at: number
  id: string
  client: string
}

/**
 * The same line for the requests the server answers itself, outside the app: the web app, WebSocket
 * upgrades, Socket.IO's transports. `finish` takes the answer: a response (given the request id), one to
 * come (a long-poll, logged when it ends), or undefined once upgraded (logged as 101).
 */
export const outsideLog = (log: Logger, metrics: Metrics, sample: number, trust: TrustProxy) => {
  const line = requestLine(log, metrics, sample)
  const answered = (request: Request, route: string, trace: Trace, response: Response) => {
    response.headers.set('x-request-id', trace.id)
    line(request.method, route, response.status, trace.at, trace.client, trace.id)
    return response
  }
  return {
    start(request: Request, server: Server<never>): Trace {
      const peer = server.requestIP(request)?.address
      return { at: performance.now(), id: requestId(request), client: peer ? clientAddress(trust, peer, request.headers) : 'local' }
    },
    finish(request: Request, route: string, trace: Trace, answer: Response | Promise<Response> | undefined) {
      if (answer === undefined) line(request.method, route, 101, trace.at, trace.client, trace.id)
      else if (answer instanceof Response) answered(request, route, trace, answer)
      else
        return answer.then(
          (response) => answered(request, route, trace, response),
          (error: unknown) => {
            // Bun answers 500.
            line(request.method, route, 500, trace.at, trace.client, trace.id)
            throw error
          },
        )
      return answer
    },
  }
}
