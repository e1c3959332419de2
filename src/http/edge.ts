import { Elysia } from 'elysia'
import { AppError, errorBody, toAppError } from '../errors'
import { parseJson } from '../shared/json'

/** Elysia's validation error, read only for the field it names. */
interface ValidationLike {
  type?: string
  all?: { path?: string; summary?: string; message?: string; value?: unknown; schema?: { error?: unknown } }[]
}

function validationError(error: ValidationLike, request: Request, params: Record<string, unknown>): AppError {
  const first = error.all?.[0]
  const field = first?.path?.replace(/^\//, '').replace(/\//g, '.') || coercedField(request, params, first?.value) || 'query'
  const custom = first?.schema?.error
  const message = typeof custom === 'string' ? custom : `${field}: ${first?.summary ?? first?.message ?? 'invalid'}`
  return new AppError('validation_failed', message, { field })
}

/**
 * A path or query value Elysia coerced to a number and then rejected is reported without its name
 * (type "property", empty path): find the parameter that holds that value.
 */
function coercedField(request: Request, params: Record<string, unknown>, value: unknown): string | undefined {
  // Compared as numbers too: a long digit string coerces to a number that prints differently (1e+20).
  const same = (raw: unknown) =>
    raw !== undefined && (String(raw) === String(value) || (typeof value === 'number' && String(raw).trim() !== '' && Number(raw) === value))
  for (const [key, raw] of Object.entries(params)) if (same(raw)) return key
  for (const [key, raw] of new URL(request.url).searchParams) if (same(raw)) return key
  return undefined
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
const NO_BODY_OK = new Set(['PUT', 'DELETE'])
/** Bodies are UTF-8: bytes that are not are a body that is not JSON (400), not text to patch up with U+FFFD. */
const utf8 = new TextDecoder('utf-8', { fatal: true })

/** The body a streamed route (an upload) gets from the edge: nothing parsed, its handler reads the request itself. */
export const STREAMED = Object.freeze({})

/**
 * The HTTP edge every route passes: body size limit, JSON parsing (an object or 400), and the one place
 * that turns errors into the contract's error shape. (Requests are counted by the request log, for every answer.)
 * `streamed` requests (uploads) skip the limit and the parsing: their route streams the body with its own bound.
 */
export const edge = (maxBodyBytes: number, streamed: (request: Request) => boolean = () => false) =>
  new Elysia({ name: 'edge' })
    .onRequest(({ request }) => {
      if (streamed(request)) return
      const length = Number(request.headers.get('content-length') ?? 0)
      if (length > maxBodyBytes) throw tooLarge(maxBodyBytes)
    })
    .onParse({ as: 'global' }, async ({ request }) => {
      if (!BODY_METHODS.has(request.method)) return
      if (streamed(request)) return STREAMED
      const bytes = await readCapped(request, maxBodyBytes)
      // PUT and DELETE usually have no body (a reaction, a deletion): none is an empty object.
      if (bytes.byteLength === 0 && NO_BODY_OK.has(request.method)) return {}
      if (bytes.byteLength === 0) throw new AppError('bad_request', 'body must be a JSON object')
      let value: unknown
      try {
        value = parseJson(utf8.decode(bytes))
      } catch {
        throw new AppError('bad_request', 'body is not valid JSON')
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value))
        throw new AppError('bad_request', 'body must be a JSON object')
      return value
    })
    .onError({ as: 'global' }, ({ code, error, set, request, params }) => {
      const appError =
        // An answer failing its own route's schema is the server's fault (500, logged), not the client's 422.
        code === 'VALIDATION' && (error as ValidationLike).type !== 'response'
          ? validationError(error as ValidationLike, request, params ?? {})
          : code === 'NOT_FOUND'
            ? new AppError('not_found', 'no such route')
            : code === 'PARSE'
              ? error.cause instanceof AppError
                ? error.cause
                : new AppError('bad_request', 'body is not valid JSON')
              : toAppError(error)
      set.status = appError.status
      set.headers['content-type'] = 'application/json; charset=utf-8'
      if (appError.retryAfter) set.headers['retry-after'] = String(appError.retryAfter)
      return errorBody(appError)
    })

/**
 * The body, up to `limit` bytes, else 413. A body with a Content-Length (checked on arrival) is read whole; a
 * chunked one is read chunk by chunk and abandoned past the limit, never held entire.
 */
export async function readCapped(request: Request, limit: number): Promise<Uint8Array> {
  if (request.headers.has('content-length') || !request.body) return new Uint8Array(await request.arrayBuffer())
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of request.body) {
    size += chunk.byteLength
    if (size > limit) throw tooLarge(limit)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, size)
}

const tooLarge = (limit: number) => new AppError('payload_too_large', `request body over ${limit} bytes`)
