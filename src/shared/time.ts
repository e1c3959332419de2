import { invalidField } from '../errors'

// ISO 8601 date-time with an explicit offset (Z, ±hh:mm, ±hhmm or ±hh); seconds optional, fractions of any length.
const ISO_WITH_OFFSET = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}(?::?\d{2})?)$/i

/** Parses a client timestamp; anything but a real ISO 8601 date-time with an offset is a validation error. */
export function parseInstant(field: string, value: string): Date {
  const time = instantOf(value)
  if (time === undefined) throw invalidField(field, 'expected an ISO 8601 date-time with an offset')
  return new Date(time)
}

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
  return Number.isNaN(time) ? undefined : time
}

export const iso = (date: Date) => date.toISOString()
export const isoOrNull = (date: Date | null) => (date ? date.toISOString() : null)
