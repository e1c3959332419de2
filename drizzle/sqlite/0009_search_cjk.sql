-- Hand-written: a CJK character (Han, Hiragana, Katakana: CJK_CHARS in src/search/fts.sqlite.ts, the ranges below) is
-- a word of its own. Written without spaces, a run of them was one word to unicode61, so only a query for its
-- beginning found it (`東京` did not find 私は東京に住んでいます). The index now holds each text with those characters
-- spaced apart (indexText() there), and a word of q holding some is the phrase of its parts (src/search/store.ts).
-- SQL here cannot space them where it matters (no regular expressions, and a trigger takes no WITH): the writer's
-- batch and an edit's transaction pass the text to index. So the table no longer reads messages.text (external
-- content would take a message's words out by its text as the index read it): it is contentless, and a trigger
-- takes a message's words out by its rowid alone, on an edit (whose transaction then indexes the new text) or a delete.
DROP TRIGGER `messages_fts_delete`;--> statement-breakpoint
DROP TRIGGER `messages_fts_update`;--> statement-breakpoint
DROP TABLE `messages_fts`;--> statement-breakpoint
CREATE VIRTUAL TABLE `messages_fts` USING fts5(`text`, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2');--> statement-breakpoint
CREATE TRIGGER `messages_fts_delete` AFTER DELETE ON `messages` BEGIN
  DELETE FROM `messages_fts` WHERE `rowid` = old.`id`;
END;--> statement-breakpoint
CREATE TRIGGER `messages_fts_update` AFTER UPDATE OF `text` ON `messages` BEGIN
  DELETE FROM `messages_fts` WHERE `rowid` = old.`id`;
END;--> statement-breakpoint
-- Every message indexed again: a text without CJK as it is, one with some spaced as indexText() spaces it, by a walk
-- over its characters (a migration's statement may recurse; a trigger's may not).
INSERT INTO `messages_fts`(`rowid`, `text`) SELECT `id`, `text` FROM `messages` WHERE `text` NOT GLOB '*[々-〇〡-〩〱-〵〸-〼ぁ-ヿㇰ-ㇿ㐀-䶿一-鿿豈-﫿ｦ-ﾟ𚿰-𛅯𠀀-𲎯]*';--> statement-breakpoint
INSERT INTO `messages_fts`(`rowid`, `text`)
  WITH RECURSIVE `walk`(`id`, `rest`, `done`) AS (
    SELECT `id`, `text`, '' FROM `messages` WHERE `text` GLOB '*[々-〇〡-〩〱-〵〸-〼ぁ-ヿㇰ-ㇿ㐀-䶿一-鿿豈-﫿ｦ-ﾟ𚿰-𛅯𠀀-𲎯]*'
    UNION ALL
    SELECT `id`, substr(`rest`, 2), `done` || CASE WHEN `rest` GLOB '[々-〇〡-〩〱-〵〸-〼ぁ-ヿㇰ-ㇿ㐀-䶿一-鿿豈-﫿ｦ-ﾟ𚿰-𛅯𠀀-𲎯]*' THEN ' ' || substr(`rest`, 1, 1) || ' ' ELSE substr(`rest`, 1, 1) END
    FROM `walk` WHERE `rest` <> ''
  )
  SELECT `id`, `done` FROM `walk` WHERE `rest` = '';
