import pgJournal from '../../drizzle/pg/meta/_journal.json'
import pg0000 from '../../drizzle/pg/0000_init.sql' with { type: 'text' }
import pg0001 from '../../drizzle/pg/0001_drop_activity_index.sql' with { type: 'text' }
import pg0002 from '../../drizzle/pg/0002_drop_message_time_index.sql' with { type: 'text' }
import pg0003 from '../../drizzle/pg/0003_push_subscriptions.sql' with { type: 'text' }
import pg0004 from '../../drizzle/pg/0004_message_changes.sql' with { type: 'text' }
import pg0005 from '../../drizzle/pg/0005_blocks_uploads.sql' with { type: 'text' }
import pg0006 from '../../drizzle/pg/0006_partial_attachment_index.sql' with { type: 'text' }
import pg0007 from '../../drizzle/pg/0007_upload_claimed_at.sql' with { type: 'text' }
import pg0008 from '../../drizzle/pg/0008_message_dialog_trigger.sql' with { type: 'text' }
import pg0009 from '../../drizzle/pg/0009_message_sender_key.sql' with { type: 'text' }
import pg0010 from '../../drizzle/pg/0010_search_fold.sql' with { type: 'text' }
import pg0011 from '../../drizzle/pg/0011_search_cjk.sql' with { type: 'text' }
import pg0012 from '../../drizzle/pg/0012_blob_deletes.sql' with { type: 'text' }
import sqliteJournal from '../../drizzle/sqlite/meta/_journal.json'
import sqlite0000 from '../../drizzle/sqlite/0000_init.sql' with { type: 'text' }
import sqlite0001 from '../../drizzle/sqlite/0001_drop_activity_index.sql' with { type: 'text' }
import sqlite0002 from '../../drizzle/sqlite/0002_drop_message_time_index.sql' with { type: 'text' }
import sqlite0003 from '../../drizzle/sqlite/0003_push_subscriptions.sql' with { type: 'text' }
import sqlite0004 from '../../drizzle/sqlite/0004_message_changes.sql' with { type: 'text' }
import sqlite0005 from '../../drizzle/sqlite/0005_blocks_uploads.sql' with { type: 'text' }
import sqlite0006 from '../../drizzle/sqlite/0006_partial_attachment_index.sql' with { type: 'text' }
import sqlite0007 from '../../drizzle/sqlite/0007_fts_index_per_batch.sql' with { type: 'text' }
import sqlite0008 from '../../drizzle/sqlite/0008_upload_claimed_at.sql' with { type: 'text' }
import sqlite0009 from '../../drizzle/sqlite/0009_search_cjk.sql' with { type: 'text' }
import sqlite0010 from '../../drizzle/sqlite/0010_blob_deletes.sql' with { type: 'text' }
import sqlite0011 from '../../drizzle/sqlite/0011_search_nfc.sql' with { type: 'text' }

/**
 * The migrations, bundled into the code so a `bun build --compile` binary carries them; applied from
 * memory (src/storage/migrate.ts), never written out. Add each new
 * generated file here; tests/embedded-migrations.test.ts fails until this list matches drizzle/.
 */
export const EMBEDDED = {
  sqlite: { journal: sqliteJournal, files: { '0000_init': sqlite0000, '0001_drop_activity_index': sqlite0001, '0002_drop_message_time_index': sqlite0002, '0003_push_subscriptions': sqlite0003, '0004_message_changes': sqlite0004, '0005_blocks_uploads': sqlite0005, '0006_partial_attachment_index': sqlite0006, '0007_fts_index_per_batch': sqlite0007, '0008_upload_claimed_at': sqlite0008, '0009_search_cjk': sqlite0009, '0010_blob_deletes': sqlite0010, '0011_search_nfc': sqlite0011 } as Record<string, string> },
  pg: { journal: pgJournal, files: { '0000_init': pg0000, '0001_drop_activity_index': pg0001, '0002_drop_message_time_index': pg0002, '0003_push_subscriptions': pg0003, '0004_message_changes': pg0004, '0005_blocks_uploads': pg0005, '0006_partial_attachment_index': pg0006, '0007_upload_claimed_at': pg0007, '0008_message_dialog_trigger': pg0008, '0009_message_sender_key': pg0009, '0010_search_fold': pg0010, '0011_search_cjk': pg0011, '0012_blob_deletes': pg0012 } as Record<string, string> },
}
