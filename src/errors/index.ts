import { logFault } from '../log/fault'

/** The contract's error codes and the HTTP status each one answers with. */
export const ERROR_STATUS = {
  bad_request: 400,
  unauthorized: 401,
  invalid_credentials: 401,
  /** A member acting on the other member's message. */
  forbidden: 403,
  /** A send or a new dialog between two users while either blocks the other. */
  blocked: 403,
  not_found: 404,
  username_taken: 409,
  payload_too_large: 413,
  validation_failed: 422,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
} as const

export type ErrorCode = keyof typeof ERROR_STATUS

/** An expected failure, carried as a value up to the one place that renders it (REST or WebSocket). */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    /** Seconds, for `rate_limited`: becomes the Retry-After header. */
    readonly retryAfter?: number,
  ) {
    super(message)
  }

  get status(): number {
    return ERROR_STATUS[this.code]
  }
}

export const notFound = (what = 'resource') => new AppError('not_found', `${what} not found`)
export const unauthorized = (message = 'missing, invalid or expired token') => new AppError('unauthorized', message)
export const blocked = () => new AppError('blocked', 'one of you blocks the other')
export const invalidField = (field: string, message: string) =>
  new AppError('validation_failed', `${field}: ${message}`, { field })

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: Record<string, unknown> }
}

export function errorBody(error: AppError): ErrorBody {
  return { error: { code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) } }
}

/** Anything that is not an AppError is an internal error: logged here, never described to the client. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error
  logFault('internal error', error)
  return new AppError('internal', 'internal server error')
}
