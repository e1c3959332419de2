import { invalidField } from '../errors'

// ISO 8601 date-time with an explicit offset (Z or ±hh:mm / ±hhmm); fractions of any length.
const ISO_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i

/** Parses a client timestamp; anything but an ISO 8601 date-time with an offset is a validation error. */
export function parseInstant(field: string, value: string): Date {
  const time = ISO_WITH_OFFSET.test(value) ? Date.parse(value) : Number.NaN
  if (Number.isNaN(time)) throw invalidField(field, 'expected an ISO 8601 date-time with an offset')
  return new Date(time)
}

export const iso = (date: Date) => date.toISOString()
export const isoOrNull = (date: Date | null) => (date ? date.toISOString() : null)
