import { describe, expect, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { EMBEDDED } from '../src/storage/embedded-migrations'

const root = join(import.meta.dir, '..', 'drizzle')

describe.each(['sqlite', 'pg'] as const)('migrations bundled for the compiled binary (%s)', (dialect) => {
  test('match drizzle/ file for file', () => {
    const onDisk = Object.fromEntries(
      readdirSync(join(root, dialect))
        .filter((f) => f.endsWith('.sql'))
        .map((f) => [f.replace(/\.sql$/, ''), readFileSync(join(root, dialect, f), 'utf8')]),
    )
    expect(EMBEDDED[dialect].files).toEqual(onDisk)
    expect(EMBEDDED[dialect].journal).toEqual(JSON.parse(readFileSync(join(root, dialect, 'meta', '_journal.json'), 'utf8')))
  })
})
