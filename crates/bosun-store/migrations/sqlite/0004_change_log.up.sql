-- Version 4: how far retention has compacted the change log. Below `compacted_through`,
-- missing sequence numbers are superseded records removed on purpose; above it, every
-- number the log handed out must be present, and `bosun db check` reports a gap.
CREATE TABLE change_log (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    compacted_through  INTEGER NOT NULL CHECK (compacted_through >= 0)
) STRICT;
-- A store from before this version may have been compacted already: its history is taken
-- as it is, and the gap check covers what is written from now on.
INSERT INTO change_log (id, compacted_through)
SELECT 1, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0);
