import { toOpenAPISchema } from '@elysiajs/openapi'
import type { AnyElysia } from 'elysia'
import { ERROR_STATUS, type ErrorCode } from '../errors'
import { published } from './limits'

type Json = Record<string, any>

/** The contract's error body, shared by every error response in the document. */
const ERROR_SCHEMA = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', enum: Object.keys(ERROR_STATUS), description: 'Stable machine-readable code' },
        message: { type: 'string', description: 'Human text; not for parsing' },
        details: { type: 'object', description: 'E.g. `{"field": "text"}` naming the failing field', additionalProperties: true },
      },
    },
  },
}

const WHEN: Partial<Record<ErrorCode, string>> = {
  bad_request: 'The body is not JSON, or not a JSON object (`bad_request`)',
  unauthorized: 'Missing, malformed, expired or revoked access token (`unauthorized`)',
  not_found: 'No such resource, or the caller is not a member of the dialog (`not_found`)',
  payload_too_large: 'Body over the limit, 64 KiB by default (`payload_too_large`)',
  validation_failed: 'Body, query or path fails validation; `details.field` names the field (`validation_failed`)',
  rate_limited: 'Over a rate limit; `Retry-After` says when to try again (`rate_limited`)',
  internal: 'Anything else; the message reveals no internals (`internal`)',
}

/** Summaries for routes that did not set one (each route's `detail.summary` wins). */
const SUMMARIES: Record<string, string> = {
  'post /auth/register': 'Create an account and log in',
  'post /auth/login': 'Log in',
  'post /auth/refresh': 'Swap a refresh token for a new token pair',
  'post /auth/logout': 'End the login session',
  'get /me': 'The caller',
  'get /users': 'Find users by exact username or prefix',
  'get /dialogs': 'The caller’s dialogs, most recent activity first',
  'post /dialogs': 'Open (or find) the dialog with a user',
  'get /dialogs/{dialog_id}': 'One dialog',
  'get /dialogs/{dialog_id}/messages': 'A page of history, or the catch-up after a reconnect',
  'post /dialogs/{dialog_id}/messages': 'Send a message',
  'post /dialogs/{dialog_id}/read_up_to': 'Move the read watermark',
}

const BLOCKED = 'Either user blocks the other (`blocked`)'
const NOT_SENDER = 'The message is the other member’s (`forbidden`)'
const REACTION = '/dialogs/{dialog_id}/messages/{message_id}/reactions/{emoji}'
const MESSAGE = '/dialogs/{dialog_id}/messages/{message_id}'

/** Extra failures some routes answer, beyond what their shape implies. */
const EXTRA: Record<string, Partial<Record<number, string>>> = {
  'post /auth/register': { 409: 'Username taken, case-insensitively (`username_taken`)', 429: WHEN.rate_limited },
  'post /auth/login': { 401: 'Unknown user or wrong password, the same answer for both (`invalid_credentials`)', 429: WHEN.rate_limited },
  'post /auth/refresh': { 401: 'Invalid, expired or already used refresh token (reuse revokes the session)', 429: WHEN.rate_limited },
  'post /auth/logout': { 401: 'Invalid refresh token', 429: WHEN.rate_limited },
  'post /dialogs': { 403: BLOCKED, 404: 'No such user (`not_found`)' },
  'post /dialogs/{dialog_id}/messages': { 403: BLOCKED, 429: WHEN.rate_limited },
  'post /dialogs/{dialog_id}/read_up_to': { 429: WHEN.rate_limited },
  [`patch ${MESSAGE}`]: { 403: `${NOT_SENDER}; or ${BLOCKED.toLowerCase()}`, 429: WHEN.rate_limited },
  [`delete ${MESSAGE}`]: { 403: NOT_SENDER, 429: WHEN.rate_limited },
  [`put ${REACTION}`]: { 403: BLOCKED, 429: WHEN.rate_limited },
  [`delete ${REACTION}`]: { 429: WHEN.rate_limited },
  'get /uploads/{upload_id}': { 401: WHEN.unauthorized, 416: 'The Range starts past the end of the file; `Content-Range: bytes */<size>`' },
}

const BINARY = { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } }

/** Success answers of routes whose response has no body schema to show it. */
const SUCCESS: Record<string, Record<number, Json>> = {
  'post /auth/logout': { 204: { description: 'The session is over' } },
  [`delete ${MESSAGE}`]: { 204: { description: 'Deleted for everyone (already deleted: the same)' } },
  [`put ${REACTION}`]: { 204: { description: 'Added (already there: the same)' } },
  [`delete ${REACTION}`]: { 204: { description: 'Removed (not there: the same)' } },
  'put /users/{user_id}/block': { 204: { description: 'Blocked' } },
  'delete /users/{user_id}/block': { 204: { description: 'Unblocked' } },
  'delete /push/subscriptions': { 204: { description: 'Forgotten' } },
  'get /metrics': { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } },
  'get /uploads/{upload_id}': {
    200: { description: 'The file', content: BINARY },
    206: { description: 'The range asked for', content: BINARY },
    304: { description: 'Not modified (`If-None-Match` holds the ETag)' },
  },
}

/** Routes that take the access token another way as well. */
const SECURED: Record<string, string> = {
  'get /uploads/{upload_id}': 'Bearer, or `?access_token=` (so that `<img src>` works)',
}

/**
 * Each route's JSON body schema, by "method path": the generator lists a body's media types from its
 * route's named parsers, and the edge's one parser (src/http/edge.ts) is a function, so it lists none.
 */
function jsonBodies(app: AnyElysia): Map<string, Json> {
  const bodies = new Map<string, Json>()
  for (const route of app.routes) {
    const body = (route.hooks as { body?: unknown }).body
    if (body && typeof body === 'object') bodies.set(`${route.method.toLowerCase()} ${route.path.replace(/:([^/]+)/g, '{$1}')}`, body as Json)
  }
  return bodies
}

/**
 * Elysia's numeric path and query parameters are coerced from strings, and the generator shows them as
 * "string (format integer) or integer": a client author wants "integer". Folds such `anyOf`s into their
 * number branch, everywhere in the document; ids decoded from digits are shown as the integers they are.
 */
function foldNumeric(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(foldNumeric)
  if (node === null || typeof node !== 'object') return node
  const object = node as Json
  // A path or query id travels as digits and is decoded by the route (src/shared/ids.ts): to a client, an integer.
  if (object.type === 'string' && object['x-id']) {
    const { 'x-id': bounds, ...rest } = object
    return { ...rest, type: 'integer', ...(bounds as Json) }
  }
  if (Array.isArray(object.anyOf) && object.anyOf.length === 2) {
    const [text, number] = object.anyOf as Json[]
    if (
      text?.type === 'string' &&
      (text.format === 'integer' || text.format === 'numeric') &&
      (number?.type === 'integer' || number?.type === 'number')
    ) {
      const { anyOf: _, ...rest } = object
      return foldNumeric({ ...rest, ...number })
    }
  }
  // `noValidate` (src/shared/schema.ts UNCHECKED) is Elysia's, not JSON Schema.
  return Object.fromEntries(Object.entries(object).flatMap(([key, value]) => (key === 'noValidate' ? [] : [[key, foldNumeric(value)]])))
}

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
})

/** The REST half of the API as OpenAPI 3: generated from the routes' schemas, then completed. */
export function openApiDocument(app: AnyElysia, version: string): Json {
  const generated = toOpenAPISchema(app) as { paths: Json; components: Json }
  const paths = foldNumeric(published(generated.paths)) as Json
  const bodies = jsonBodies(app)
  for (const [path, operations] of Object.entries(paths)) {
    for (const [method, operation] of Object.entries(operations as Json)) {
      const op = operation as Json
      const key = `${method} ${path}`
      op.summary ??= SUMMARIES[key] ?? `${method.toUpperCase()} ${path}`
      op.tags ??= [path.split('/')[1] || 'app']
      op.operationId ??= `${method}${path.replace(/\{([^}]+)\}/g, 'By_$1').replace(/[^A-Za-z0-9_]+(.)?/g, (_, c: string | undefined) => (c ? c.toUpperCase() : ''))}`
      const body = bodies.get(key)
      if (op.requestBody && Object.keys(op.requestBody.content ?? {}).length === 0 && body)
        op.requestBody.content = { 'application/json': { schema: foldNumeric(published(JSON.parse(JSON.stringify(body)))) } }
      if (SECURED[key]) {
        op.security = [{ bearer: [] }]
        op.description ??= SECURED[key]
      }
      const responses = (op.responses ??= {}) as Json
      for (const [status, response] of Object.entries(SUCCESS[key] ?? {})) responses[status] ??= response
      for (const [status, response] of Object.entries(responses))
        if ((response as Json).description?.startsWith('Response for status')) (response as Json).description = Number(status) < 300 ? 'Success' : 'Failure'
      const errors: Partial<Record<number, string>> = { 500: WHEN.internal }
      if (op.security?.length) errors[401] = WHEN.unauthorized
      if (op.requestBody) Object.assign(errors, { 400: WHEN.bad_request, 413: WHEN.payload_too_large, 422: WHEN.validation_failed })
      if (op.parameters?.length) errors[422] = WHEN.validation_failed
      if (path.includes('{')) errors[404] = WHEN.not_found
      Object.assign(errors, EXTRA[key])
      for (const [status, description] of Object.entries(errors))
        if (description && !(status in responses)) responses[status] = errorResponse(description)
    }
  }
  return {
    // The generator writes JSON Schema 2020-12 (type arrays for nullable fields, const): OpenAPI 3.1's dialect.
    openapi: '3.1.0',
    info: {
      title: 'Chat server',
      version,
      description:
        'REST half of the chat server’s API. Authenticated routes take `Authorization: Bearer <access_token>` ' +
        '(from register, login or refresh). Every error has the body `{"error": {"code", "message", "details?"}}`. ' +
        'The WebSocket protocol (`/ws`, `/socket.io/`) is described by the AsyncAPI document at `/docs/asyncapi.json`; ' +
        'docs/API.md in the repository describes both in prose.',
    },
    tags: [
      { name: 'auth', description: 'Accounts and login sessions' },
      { name: 'users', description: 'Finding people' },
      { name: 'dialogs', description: 'One dialog per pair of users' },
      { name: 'messages', description: 'History, sending, read receipts' },
      { name: 'operations', description: 'Health and metrics, for load balancers and Prometheus' },
    ],
    paths,
    components: {
      ...generated.components,
      schemas: { ...(generated.components?.schemas ?? {}), Error: ERROR_SCHEMA },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'The `access_token` of register, login or refresh' },
      },
    },
  }
}
