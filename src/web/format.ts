/** Dates and times as people read them, in the browser's locale and time zone. */

const dayKey = (date: Date) => `${date.getFullYear()}-${date.getMonth() + 1}-${date.getDate()}`

export const sameDay = (a: Date, b: Date) => dayKey(a) === dayKey(b)

export function dayLabel(date: Date, now = new Date()): string {
  if (sameDay(date, now)) return 'Today'
  const yesterday = new Date(now)
  yesterday.setDate(now.getDate() - 1)
  if (sameDay(date, yesterday)) return 'Yesterday'
  return date.toLocaleDateString(undefined, {
    weekday: 'long',
    day: 'numeric',
    month: 'long',
    ...(date.getFullYear() === now.getFullYear() ? {} : { year: 'numeric' }),
  })
}

// One formatter for every message's time: toLocaleTimeString builds a new one per call, costly over a long log.
const TIME = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' })
export const timeLabel = (date: Date) => TIME.format(date)

/** For the chat list: the time today, else the short date. */
export function shortWhen(date: Date, now = new Date()): string {
  if (sameDay(date, now)) return timeLabel(date)
  return date.toLocaleDateString(undefined, { day: 'numeric', month: 'short' })
}

export function lastSeen(iso: string | null): string {
  if (!iso) return 'offline'
  const date = new Date(iso)
  return `last seen ${sameDay(date, new Date()) ? timeLabel(date) : `${shortWhen(date)} ${timeLabel(date)}`}`
}

export { dayKey }
