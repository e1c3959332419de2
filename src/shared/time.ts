import { invalidField } from '../errors'

// ISO 8601 date-time with an explicit offset (Z, ±hh:mm, ±hhmm or ±hh); seconds optional, fractions of any length.
const ISO_WITH_OFFSET = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}(?::?\d{2})?)$/i

/**
 * Parses a client timestamp; anything but a real ISO 8601 date-time with an offset is a validation error, and
 * so is an instant outside years 0001–9999 in UTC (an offset can carry 9999-12-31 into year 10000): Postgres
 * cannot store year 0000, and our own output format has four-digit years.
 */
export function parseInstant(field: string, value: string): Date {
  return new Date(checked(field, instantOf(value)))
}

/**
 * A strict upper bound (`before`): times are kept to the millisecond, so digits past the millisecond round
 * the bound up. Truncating them would exclude what was created strictly before the instant the client named
 * (a message at .413 is before .4139); microseconds are what Python's isoformat() sends.
 */
export function parseUpperBound(field: string, value: string): Date {
  const time = checked(field, instantOf(value))
  const past = /^\.\d{3}\d*[1-9]/.test(ISO_WITH_OFFSET.exec(value)![7] ?? '')
  // Not past the last instant: year 10000 is no time Postgres reads (and none is stored after it).
  return new Date(past ? Math.min(time + 1, LAST_INSTANT) : time)
}

function checked(field: string, time: number | undefined): number {
  if (time === undefined) throw invalidField(field, 'expected an ISO 8601 date-time with an offset, in years 0001–9999 (UTC)')
  return time
}

const FIRST_INSTANT = Date.parse('0001-01-01T00:00:00.000Z')
const LAST_INSTANT = Date.parse('9999-12-31T23:59:59.999Z')

function instantOf(value: string): number | undefined {
  const m = ISO_WITH_OFFSET.exec(value)
  if (!m) return undefined
  const [, y, mo, d, h, mi, s = '00', fraction = '', offset] = m as unknown as string[]
  const year = Number(y)
  const month = Number(mo)
  const day = Number(d)
  // Date.parse rolls impossible dates over (Feb 30 → Mar 2): check the calendar first.
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate()
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth) return undefined
  if (Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) return undefined
  const zone = offset!.toUpperCase() === 'Z' ? 'Z' : /^[+-]\d{2}$/.test(offset!) ? `${offset}:00` : offset!.replace(/^([+-]\d{2})(\d{2})$/, '$1:$2')
  if (zone !== 'Z' && (Number(zone.slice(1, 3)) > 23 || Number(zone.slice(4, 6)) > 59)) return undefined
  const time = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s}${fraction.slice(0, 4)}${zone}`)
  return time >= FIRST_INSTANT && time <= LAST_INSTANT ? time : undefined
}

export const iso = (date: Date) => date.toISOString()
export const isoOrNull = (date: Date | null) => (date ? date.toISOString() : null)
