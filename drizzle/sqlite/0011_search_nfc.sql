-- Hand-written: the messages indexed before the index read a text composed (NFC, as Postgres's search_text()
-- composes it: src/search/fts.sqlite.ts indexText) are indexed again composed, so that a word typed decomposed
-- then (が as か + U+3099) is found by its composed form, as on Postgres. SQLite has no normalize(): that step is
-- JavaScript (reindexComposed, src/search/fts.sqlite.ts), run by src/storage/migrate.ts in this migration's
-- transaction, right after this statement.
SELECT 1;
