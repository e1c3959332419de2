import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

/**
 * `.env` read as python-dotenv reads it (the original Flask backend's loader, whose `.env` files must keep
 * working), not as Bun's loader does: Bun expands `$name` even inside single quotes and takes `#` as a
 * comment even with no space before it, so `JWT_SECRET_KEY='ab$cd'` or `…=ab#cd` would silently change.
 *
 * python-dotenv's rules (its parser.py and variables.py, ported):
 * - `KEY=value`, optionally `export KEY=value`; a `KEY` alone (no `=`) sets nothing; `#` lines are comments;
 * - unquoted values are trimmed; whitespace then `#` starts a comment (`a#b` stays `a#b`);
 * - `'single quotes'`: taken as written except `\\` and `\'`;
 * - `"double quotes"`: the escapes `\\ \' \" \a \b \f \n \r \t \v`; both quotes may span lines;
 * - `${NAME}` and `${NAME:-default}` are expanded (in every form of value, as python-dotenv does): from the
 *   real environment first, then from the lines above; `$NAME` without braces stays as written;
 * - a line that does not parse is skipped (python-dotenv warns and goes on).
 */
export interface DotenvFile {
  /** Keys in file order, with their raw value (`undefined`: a key without `=`). */
  bindings: Array<[key: string, value: string | undefined]>
  /** 1-based lines of statements that did not parse (skipped). */
  errorLines: number[]
}

const BLANK = /\s*/y
const EXPORT = /(?:export[^\S\r\n]+)?/y
const SINGLE_QUOTED_KEY = /'([^']+)'/y
const UNQUOTED_KEY = /([^=#\s]+)/y
const WHITESPACE = /[^\S\r\n]*/y
const EQUAL_SIGN = /=[^\S\r\n]*/y
const SINGLE_QUOTED_VALUE = /'((?:\\'|[^'])*)'/y
const DOUBLE_QUOTED_VALUE = /"((?:\\"|[^"])*)"/y
const UNQUOTED_VALUE = /([^\r\n]*)/y
const COMMENT = /(?:[^\S\r\n]*#[^\r\n]*)?/y
const END_OF_LINE = /[^\S\r\n]*(?:\r\n|\n|\r|$)/y
const REST_OF_LINE = /[^\r\n]*(?:\r|\n|\r\n)?/y
const DOUBLE_QUOTE_ESCAPES = /\\[\\'"abfnrtv]/g
const SINGLE_QUOTE_ESCAPES = /\\[\\']/g
const ESCAPED: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' }
const VARIABLE = /\$\{([^}:]*)(?::-([^}]*))?\}/g

class Unparsed extends Error {}

export function parseDotenv(text: string): DotenvFile {
  const source = text.startsWith('\ufeff') ? text.slice(1) : text
  let at = 0
  const read = (pattern: RegExp): string[] => {
    pattern.lastIndex = at
    const match = pattern.exec(source)
    if (!match) throw new Unparsed()
    at = pattern.lastIndex
    return match.slice(1).map((group) => group ?? '')
  }
  const lineOf = (index: number) => source.slice(0, index).split(/\r\n|\n|\r/).length
  const bindings: DotenvFile['bindings'] = []
  const errorLines: number[] = []
  while (at < source.length) {
    let statement = at
    try {
      read(BLANK)
      if (at >= source.length) break
      statement = at
      read(EXPORT)
      let key: string | undefined
      const first = source[at]
      if (first === '#') key = undefined
      else if (first === "'") key = read(SINGLE_QUOTED_KEY)[0]
      else key = read(UNQUOTED_KEY)[0]
      read(WHITESPACE)
      let value: string | undefined
      if (source[at] === '=') {
        read(EQUAL_SIGN)
        value = parseValue(source[at], read)
      }
      read(COMMENT)
      read(END_OF_LINE)
      if (key !== undefined) bindings.push([key, value])
    } catch (error) {
      if (!(error instanceof Unparsed)) throw error
      errorLines.push(lineOf(statement))
      read(REST_OF_LINE)
    }
  }
  return { bindings, errorLines }
}

function parseValue(first: string | undefined, read: (pattern: RegExp) => string[]): string {
  if (first === "'") return read(SINGLE_QUOTED_VALUE)[0]!.replace(SINGLE_QUOTE_ESCAPES, (e) => e[1]!)
  if (first === '"') return read(DOUBLE_QUOTED_VALUE)[0]!.replace(DOUBLE_QUOTE_ESCAPES, (e) => ESCAPED[e[1]!] ?? e[1]!)
  if (first === undefined || first === '\n' || first === '\r') return ''
  return read(UNQUOTED_VALUE)[0]!.replace(/\s+#.*/, '').trimEnd()
}

/**
 * The values the file gives, `${…}` expanded as python-dotenv's `load_dotenv()` (override=False) does:
 * a name is looked up in `environment` first, then among the file's lines above, then its `:-default`.
 */
export function resolveDotenv(file: DotenvFile, environment: Record<string, string | undefined>): Map<string, string | undefined> {
  const values = new Map<string, string | undefined>()
  for (const [key, raw] of file.bindings) {
    if (raw === undefined) {
      values.set(key, undefined)
      continue
    }
    const value = raw.replace(VARIABLE, (_, name: string, fallback: string | undefined) => {
      if (environment[name] !== undefined) return environment[name]!
      if (values.has(name)) return values.get(name) ?? ''
      return fallback ?? ''
    })
    values.set(key, value)
  }
  return values
}

/** The files Bun loads by itself (its automatic loading, when it is not switched off). */
const BUN_DOTENV_FILES = ['.env', '.env.local', ...['development', 'production', 'test'].flatMap((mode) => [`.env.${mode}`, `.env.${mode}.local`])]

export interface DotenvResult {
  /** The `.env` read, if there was one. */
  file?: string
  /** Warnings to print (statements that did not parse). */
  warnings: string[]
  /** Why `.env` could not be read (it is there, but unreadable): the process stops on it. */
  failure?: string
}

/**
 * Applies `<cwd>/.env` to `env` (process.env) as python-dotenv's `load_dotenv()` does: variables of the real
 * environment win; the file fills in the others. Only `.env` is read (`.env.local`, `.env.production`, … are
 * not: the original read none of them).
 *
 * Bun's automatic loading is switched off (bunfig.toml, `--no-env-file`, `--no-compile-autoload-dotenv`), but
 * a `bun …/src/index.ts` started in another folder still has it: what Bun set from its `.env*` files is taken
 * back first, by the names those files hold that the process was not started with (`startEnv`).
 */
export function loadDotenv(
  env: Record<string, string | undefined> = process.env,
  cwd = process.cwd(),
  startEnv: (names: string[]) => Map<string, string> | undefined = processStartEnvironment,
): DotenvResult {
  const present = BUN_DOTENV_FILES.map((name) => join(cwd, name)).filter(isFile)
  if (present.length === 0) return { warnings: [] }
  const path = join(cwd, '.env')
  const parsed = new Map<string, ReturnType<typeof parseDotenv>>()
  for (const each of present) {
    try {
      parsed.set(each, parseDotenv(readFileSync(each, 'utf8')))
    } catch (error) {
      // Only `.env` is ours to read; the others only to take back what Bun's loader set, which could not read them either.
      if (each === path) return { warnings: [], failure: `.env: cannot read ${path}: ${(error as Error).message}` }
    }
  }
  const names = [...new Set([...parsed.values()].flatMap((file) => file.bindings.map(([key]) => key)))]
  const real = startEnv(names)
  if (real) {
    for (const name of names) {
      if (real.has(name)) env[name] = real.get(name)
      else delete env[name]
    }
  }
  const file = parsed.get(path)
  if (!file) return { warnings: [] }
  for (const [key, value] of resolveDotenv(file, env)) {
    if (value !== undefined && env[key] === undefined) env[key] = value
  }
  const warnings = file.errorLines.map((line) => `${path} line ${line} could not be read; skipped (as python-dotenv does)`)
  return { file: path, warnings }
}

const isFile = (path: string) => {
  try {
    return existsSync(path) && statSync(path).isFile()
  } catch {
    return false
  }
}

/**
 * The values `names` had in the environment the process was started with, before Bun's `.env` loading
 * (which changes only Bun's own copy): Linux's /proc/self/environ. Undefined elsewhere (then process.env
 * is taken as it is, Bun's values included).
 */
export function processStartEnvironment(names: string[]): Map<string, string> | undefined {
  const wanted = new Set(names)
  try {
    const found = new Map<string, string>()
    for (const entry of readFileSync('/proc/self/environ', 'latin1').split('\0')) {
      const eq = entry.indexOf('=')
      if (eq > 0 && wanted.has(entry.slice(0, eq))) found.set(entry.slice(0, eq), Buffer.from(entry.slice(eq + 1), 'latin1').toString('utf8'))
    }
    return found
  } catch {
    return undefined
  }
}
