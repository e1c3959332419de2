-- Hand-written: new messages are indexed by the writer, one statement per batch
-- (src/search/fts.sqlite.ts), not by a trigger per row, which cost more than half of a batch's
-- time (measured: 22 k against 55 k inserts per second, 170 per transaction, synchronous=FULL).
-- Edits and deletes keep their triggers: they are rare, and each one changes one row.
DROP TRIGGER `messages_fts_insert`;
