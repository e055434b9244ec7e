-- The alert names a runbook answers (declared `alerts`, and an alert-style title or file
-- name), each as its lexemes separated by spaces: search compares them with the query's
-- lexemes to break near-ties between near-twin runbooks (`knowledge::names`). Written by
-- ingest on every run, so existing runbooks get theirs on the next ingest.
ALTER TABLE runbooks ADD COLUMN name_lexemes TEXT[] NOT NULL DEFAULT '{}';

-- English stemming without stop words: an alert name is a few words and each one counts
-- (`...ToAnyAlertmanager` vs `...ToSomeAlertmanagers`, `...Down`, `...FillingUp`).
CREATE TEXT SEARCH DICTIONARY sentinel_english_all (TEMPLATE = snowball, LANGUAGE = english);
CREATE TEXT SEARCH CONFIGURATION sentinel_names (COPY = english);
ALTER TEXT SEARCH CONFIGURATION sentinel_names
    ALTER MAPPING REPLACE english_stem WITH sentinel_english_all;
