import { writeSync } from 'node:fs'
import { ConfigError } from '../config'

/**
 * Structured logs: JSON lines in production (one object per line, for a collector), readable lines in
 * development. Written with Bun's own stdout, not pino: what we log is a few fields per line, and a
 * JSON.stringify plus one write is all pino would do on this path (its pretty printer and transports are
 * worker threads, which `bun build --compile` does not carry well). `bench http` measures the cost.
 *
 * Callers pass fields, never whole requests or frames: tokens, passwords and message text stay out.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error' | 'fatal'
export type Fields = Record<string, string | number | boolean | null | undefined>

const RANK: Record<Level | 'silent', number> = { debug: 10, info: 20, warn: 30, error: 40, fatal: 50, silent: 99 }

export interface LogOptions {
  level: Level | 'silent'
  format: 'json' | 'pretty'
}

export class Logger {
  private readonly min: number

  constructor(
    readonly options: LogOptions,
    private readonly write: (line: string, level: Level) => void = defaultWrite,
  ) {
    this.min = RANK[options.level]
  }

  enabled(level: Level): boolean {
    return RANK[level] >= this.min
  }

  debug(msg: string, fields?: Fields): void {
    if (this.enabled('debug')) this.emit('debug', msg, fields)
  }
  info(msg: string, fields?: Fields): void {
    if (this.enabled('info')) this.emit('info', msg, fields)
  }
  warn(msg: string, fields?: Fields): void {
    if (this.enabled('warn')) this.emit('warn', msg, fields)
  }
  error(msg: string, fields?: Fields): void {
    if (this.enabled('error')) this.emit('error', msg, fields)
  }

  private emit(level: Level, msg: string, fields: Fields | undefined): void {
    this.write(this.options.format === 'json' ? json(level, msg, fields) : pretty(level, msg, fields), level)
  }
}

/**
 * Lines to stdout are gathered and written once per event-loop turn: a write per line cost ~20-40 µs
 * (measured), a large share of a small request. What is pending is written at exit. Warnings and errors
 * go to stderr at once (after what is pending, to keep the order), so `2>` captures what needs a look.
 */
let pending = ''
let scheduled = false
const flush = () => {
  scheduled = false
  if (pending === '') return
  const out = pending
  pending = ''
  process.stdout.write(out)
}
process.on('exit', () => {
  if (pending !== '') writeSync(1, pending)
  pending = ''
})

const defaultWrite = (line: string, level: Level) => {
  if (RANK[level] >= RANK.warn) {
    flush()
    process.stderr.write(line + '\n')
    return
  }
  pending += line + '\n'
  if (pending.length > 65_536) flush()
  else if (!scheduled) {
    scheduled = true
    setImmediate(flush)
  }
}

function json(level: Level, msg: string, fields: Fields | undefined): string {
  return JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })
}

function pretty(level: Level, msg: string, fields: Fields | undefined): string {
  let line = `${new Date().toISOString().slice(11, 23)} ${level.toUpperCase().padEnd(5)} ${msg}`
  if (fields)
    for (const [key, value] of Object.entries(fields))
      if (value !== undefined) line += ` ${key}=${typeof value === 'string' && /[\s"=]/.test(value) ? JSON.stringify(value) : value}`
  return line
}

const LEVELS = ['debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const

/** LOG_LEVEL (default info) and LOG_FORMAT (json in production, else pretty). */
export function logOptions(env: Record<string, string | undefined>, production: boolean): LogOptions {
  const level = env.LOG_LEVEL?.trim().toLowerCase() || 'info'
  const format = env.LOG_FORMAT?.trim().toLowerCase() || (production ? 'json' : 'pretty')
  if (!(LEVELS as readonly string[]).includes(level))
    throw new ConfigError('LOG_LEVEL', `expected one of ${LEVELS.join(', ')}, got "${env.LOG_LEVEL}"`)
  if (format !== 'json' && format !== 'pretty') throw new ConfigError('LOG_FORMAT', `expected json or pretty, got "${env.LOG_FORMAT}"`)
  return { level: level as LogOptions['level'], format }
}
