import { invalidField } from '../errors'

/*
 * ISO 8601 date-times with an explicit offset (Z, ±hh:mm, ±hhmm or ±hh), in the extended or the basic
 * format: a calendar (2026-11-23, 20261123), ordinal (2026-327) or week date (2026-W48-1), then `T`, then
 * hh, hh:mm or hh:mm:ss (hhmm, hhmmss), whose last part may carry a fraction of any length after `.` or `,`.
 */
const DATE = /^(\d{4})(?:-(\d{2})-(\d{2})|(\d{2})(\d{2})|-?(\d{3})|-?W(\d{2})-?([1-7]))$/i
const TIME = /^(\d{2})(?::?(\d{2})(?::?(\d{2}))?)?(?:[.,](\d+))?$/
const OFFSET = /(Z|[+-]\d{2}(?::?\d{2})?)$/i

/**
 * Parses a client timestamp; anything but a real ISO 8601 date-time with an offset is a validation error, and
 * so is an instant outside years 0001–9999 in UTC (an offset can carry 9999-12-31 into year 10000): Postgres
 * cannot store year 0000, and our own output format has four-digit years.
 */
export function parseInstant(field: string, value: string): Date {
  return new Date(checked(field, instantOf(value)).time)
}

/**
 * A strict upper bound (`before`): times are kept to the millisecond, so digits past the millisecond round
 * the bound up. Truncating them would exclude what was created strictly before the instant the client named
 * (a message at .413 is before .4139); microseconds are what Python's isoformat() sends.
 */
export function parseUpperBound(field: string, value: string): Date {
  const { time, pastMs } = checked(field, instantOf(value))
  // Not past the last instant: year 10000 is no time Postgres reads (and none is stored after it).
  return new Date(pastMs ? Math.min(time + 1, LAST_INSTANT) : time)
}

function checked(field: string, instant: Instant | undefined): Instant {
  if (instant === undefined) throw invalidField(field, 'expected an ISO 8601 date-time with an offset, in years 0001–9999 (UTC)')
  return instant
}

const FIRST_INSTANT = Date.parse('0001-01-01T00:00:00.000Z')
const LAST_INSTANT = Date.parse('9999-12-31T23:59:59.999Z')
const DAY_MS = 86_400_000

/** Milliseconds since the epoch, and whether the instant named lies past that millisecond (more digits). */
interface Instant {
  time: number
  pastMs: boolean
}

function instantOf(value: string): Instant | undefined {
  const t = value.search(/T/i)
  if (t < 0) return undefined
  const offset = OFFSET.exec(value.slice(t + 1))
  if (!offset) return undefined
  const day = dayOf(value.slice(0, t))
  const clock = TIME.exec(value.slice(t + 1, value.length - offset[1]!.length))
  if (day === undefined || !clock) return undefined
  const [, h, mi, s, fraction] = clock
  if (Number(h) > 23 || Number(mi ?? 0) > 59 || Number(s ?? 0) > 59) return undefined
  // The fraction is of the last part given: an hour, a minute or a second. Exactly, in BigInt.
  const unit = s !== undefined ? 1000 : mi !== undefined ? 60_000 : 3_600_000
  const digits = fraction ?? ''
  const scaled = BigInt(digits || '0') * BigInt(unit)
  const scale = 10n ** BigInt(digits.length)
  const zone = offsetMs(offset[1]!)
  if (zone === undefined) return undefined
  const time =
    day * DAY_MS + Number(h) * 3_600_000 + Number(mi ?? 0) * 60_000 + Number(s ?? 0) * 1000 + Number(scaled / scale) - zone
  return time >= FIRST_INSTANT && time <= LAST_INSTANT ? { time, pastMs: scaled % scale !== 0n } : undefined
}

/** Days since the epoch of a calendar, ordinal or week date, or undefined for none (Feb 30, week 54). */
function dayOf(text: string): number | undefined {
  const m = DATE.exec(text)
  if (!m) return undefined
  const year = Number(m[1])
  const month = Number(m[2] ?? m[4])
  const dayOfMonth = Number(m[3] ?? m[5])
  const jan1 = epochDay(year, 1, 1)
  if (m[6] !== undefined) {
    const ordinal = Number(m[6])
    return ordinal >= 1 && ordinal <= epochDay(year + 1, 1, 1) - jan1 ? jan1 + ordinal - 1 : undefined
  }
  if (m[7] !== undefined) {
    // Week 1 is the week (Monday first) holding January 4th; a year has 52 weeks, or 53.
    const week1 = isoWeek1(year)
    const week = Number(m[7])
    if (week < 1 || week > (isoWeek1(year + 1) - week1) / 7) return undefined
    return week1 + (week - 1) * 7 + Number(m[8]) - 1
  }
  // Date.UTC rolls impossible dates over (Feb 30 → Mar 2): check the calendar first.
  if (month < 1 || month > 12 || dayOfMonth < 1 || dayOfMonth > epochDay(year, month + 1, 1) - epochDay(year, month, 1)) return undefined
  return epochDay(year, month, dayOfMonth)
}

/** Days since the epoch; setUTCFullYear, unlike Date.UTC, takes years 0–99 as they are. */
function epochDay(year: number, month: number, day: number): number {
  const date = new Date(0)
  date.setUTCFullYear(year, month - 1, day)
  return Math.round(date.getTime() / DAY_MS)
}

/** The Monday that starts ISO week 1 of `year`. */
function isoWeek1(year: number): number {
  const jan4 = epochDay(year, 1, 4)
  // The epoch (1970-01-01) was a Thursday: weekday 0 is Monday.
  const weekday = (((jan4 + 3) % 7) + 7) % 7
  return jan4 - weekday
}

/** ±hh[:mm] as milliseconds east of UTC; Z is 0; hours past 23 or minutes past 59 are none. */
function offsetMs(offset: string): number | undefined {
  if (offset.toUpperCase() === 'Z') return 0
  const hours = Number(offset.slice(1, 3))
  const minutes = Number(offset.slice(offset[3] === ':' ? 4 : 3) || 0)
  if (hours > 23 || minutes > 59) return undefined
  return (offset[0] === '-' ? -1 : 1) * (hours * 60 + minutes) * 60_000
}

export const iso = (date: Date) => date.toISOString()
export const isoOrNull = (date: Date | null) => (date ? date.toISOString() : null)
