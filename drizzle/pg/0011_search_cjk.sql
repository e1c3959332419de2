-- Hand-written: a CJK character (Han, Hiragana, Katakana: CJK_CHARS in src/search/fts.sqlite.ts, the ranges below) is
-- a word of its own. Written without spaces, a run of them was one word to the parser, as to SQLite's unicode61, so
-- only a query for its beginning found it (`東京` did not find 私は東京に住んでいます). search_text() now spaces them
-- apart, after it has composed the text (NFC), in the text and in each word of q, so a word of q holding some is the
-- phrase of its parts (src/search/store.ts). The rest of the function is 0010's; the index is built again through it.
CREATE OR REPLACE FUNCTION "search_text"("t" text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
  -- Only a text beyond ASCII, or one with a `1e5` in it, has more to do than its punctuation.
  IF t ~ E'[^\u0001-\u007f]|[0-9][eE][0-9]' THEN
    IF t ~ E'[\u00b5\u00c0-\u024f\u0300-\u036f\u03c2\u03d0-\u03f5\u1e00-\u1eff\u1fbe\u212b]|[0-9][eE][0-9]' THEN
      -- Combining marks as written: the accents SQLite drops go (those Latin letters decompose into), the rest
      -- of the block separates words, as there.
      IF t ~ E'[\u0300-\u036f]' THEN
        t := regexp_replace(regexp_replace(t, E'[\u0300-\u0304\u0306-\u030c\u030f\u0311\u031b\u0323-\u0328\u032d\u032e\u0330\u0331]+', '', 'g'),
          E'[\u0300-\u036f]+', ' ', 'g');
      END IF;
      -- A Latin letter loses its accents (é → e, ồ → o). A letter of another script keeps its own (й, ά), as in
      -- SQLite: with one in the text, it is decomposed (NFD), only the accents after an ASCII letter go, and it
      -- is recomposed (NFC: canonically equivalent texts are one text, here as everywhere); without (the common
      -- case) every accent goes.
      IF t ~ E'[\u00c0-\u024f\u1e00-\u1eff\u212b]' THEN
        IF t ~ E'[^\u0001-\u01e1\u01e4-\u01ed\u01f0-\u01fb\u0200-\u024f\u1e00-\u1e9a\u1e9c-\u1eff\u2000-\u2bff\ufe00-\ufe0f\U0001f000-\U0001faff]' THEN
          t := normalize(regexp_replace(normalize(t, NFD),
            E'(?<=[A-Za-z])[\u0300-\u0304\u0306-\u030c\u030f\u0311\u031b\u0323-\u0328\u032d\u032e\u0330\u0331]+', '', 'g'), NFC);
        ELSE
          t := regexp_replace(normalize(t, NFD), E'[\u0300-\u036f]+', '', 'g');
        END IF;
      ELSIF t IS NOT NFC NORMALIZED THEN
        t := normalize(t, NFC);
      END IF;
      -- SQLite's other folds: µ, long s, final sigma, Greek symbol forms.
      IF t ~ E'[\u00b5\u017f\u1e9b\u03c2\u03d0-\u03f5\u1fbe]' THEN
        t := translate(t, E'\u00B5\u017F\u1E9B\u03C2\u03D0\u03D1\u03D5\u03D6\u03F0\u03F1\u03F5\u1FBE', E'\u03BCss\u03C3\u03B2\u03B8\u03C6\u03C0\u03BA\u03C1\u03B5\u03B9');
      END IF;
      -- The parser reads `3e7` as a number and splits it from what follows (3e7f0a2 → 3e7, f0a2): a combining
      -- grapheme joiner after the e keeps the word whole, in the text and in q alike.
      IF t ~ '[0-9][eE][0-9]' THEN
        t := regexp_replace(t, '([0-9][eE])(?=[0-9])', E'\\1\u034F', 'g');
      END IF;
    ELSIF t IS NOT NFC NORMALIZED THEN  -- (Hangul, kana, Indic text decomposed, CJK compatibility ideographs)
      t := normalize(t, NFC);
    END IF;
    -- A CJK character is a word of its own (0011): spaced apart from its neighbours, as SQLite's index holds it.
    IF t ~ E'[\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3038-\u303c\u3041-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U0001aff0-\U0001b16f\U00020000-\U000323af]' THEN
      t := regexp_replace(t, E'[\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3038-\u303c\u3041-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U0001aff0-\U0001b16f\U00020000-\U000323af]', E' \\& ', 'g');
    END IF;
  END IF;
  -- ASCII punctuation separates words (the parser's addresses, hosts, URLs, paths, versions, decimals, tags).
  RETURN regexp_replace(t, '[!-/:-@[-`{-~]+', ' ', 'g');
END
$$;--> statement-breakpoint
DROP INDEX "messages_text_fts_idx";--> statement-breakpoint
CREATE INDEX "messages_text_fts_idx" ON "messages" USING gin (to_tsvector('simple', search_text("text")));
