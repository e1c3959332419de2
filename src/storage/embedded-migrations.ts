import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pgJournal from '../../drizzle/pg/meta/_journal.json'
import pg0000 from '../../drizzle/pg/0000_init.sql' with { type: 'text' }
import pg0001 from '../../drizzle/pg/0001_drop_activity_index.sql' with { type: 'text' }
import pg0002 from '../../drizzle/pg/0002_drop_message_time_index.sql' with { type: 'text' }
import pg0003 from '../../drizzle/pg/0003_blocks_uploads.sql' with { type: 'text' }
import sqliteJournal from '../../drizzle/sqlite/meta/_journal.json'
import sqlite0000 from '../../drizzle/sqlite/0000_init.sql' with { type: 'text' }
import sqlite0001 from '../../drizzle/sqlite/0001_drop_activity_index.sql' with { type: 'text' }
import sqlite0002 from '../../drizzle/sqlite/0002_drop_message_time_index.sql' with { type: 'text' }
import sqlite0003 from '../../drizzle/sqlite/0003_blocks_uploads.sql' with { type: 'text' }

/**
 * The migrations, bundled into the code so a `bun build --compile` binary carries them. Add each new
 * generated file here; tests/embedded-migrations.test.ts fails until this list matches drizzle/.
 */
export const EMBEDDED = {
  sqlite: { journal: sqliteJournal, files: { '0000_init': sqlite0000, '0001_drop_activity_index': sqlite0001, '0002_drop_message_time_index': sqlite0002, '0003_blocks_uploads': sqlite0003 } as Record<string, string> },
  pg: { journal: pgJournal, files: { '0000_init': pg0000, '0001_drop_activity_index': pg0001, '0002_drop_message_time_index': pg0002, '0003_blocks_uploads': pg0003 } as Record<string, string> },
}

/** Writes a dialect's embedded migrations to a temporary folder drizzle's migrator can read. */
export function materializeMigrations(dialect: 'sqlite' | 'pg'): string {
  const { journal, files } = EMBEDDED[dialect]
  const dir = join(tmpdir(), `chat-migrations-${dialect}-${Bun.hash(JSON.stringify(files)).toString(36)}`)
  if (!existsSync(join(dir, 'meta', '_journal.json'))) {
    mkdirSync(join(dir, 'meta'), { recursive: true })
    for (const [tag, sql] of Object.entries(files)) writeFileSync(join(dir, `${tag}.sql`), sql)
    writeFileSync(join(dir, 'meta', '_journal.json'), JSON.stringify(journal))
  }
  return dir
}
