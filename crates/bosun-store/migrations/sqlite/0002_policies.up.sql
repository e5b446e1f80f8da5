-- Version 2: the health policy document operators store through the API, and 'policy'
-- as a kind of resource in the change log.
CREATE TABLE policies (
    -- There is one stored policy; the key keeps it that way.
    id          TEXT PRIMARY KEY NOT NULL CHECK (id = 'active'),
    name        TEXT NOT NULL,
    document    TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    revision    INTEGER NOT NULL CHECK (revision > 0)
) STRICT;

-- SQLite cannot alter a CHECK constraint: rebuild the change log with the wider one.
CREATE TABLE changes_v2 (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('node', 'instance', 'command', 'pool', 'policy')),
    resource_id  TEXT NOT NULL,
    op           TEXT NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
    revision     INTEGER NOT NULL CHECK (revision > 0),
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL,
    resource     TEXT NOT NULL
) STRICT;
INSERT INTO changes_v2 (seq, at, kind, resource_id, op, revision, actor, reason, resource)
    SELECT seq, at, kind, resource_id, op, revision, actor, reason, resource FROM changes;
-- Keep the sequence where it was, even past records retention removed: a sequence
-- number handed to a watcher is never handed out again.
DELETE FROM sqlite_sequence WHERE name = 'changes_v2';
INSERT INTO sqlite_sequence (name, seq) SELECT 'changes_v2', seq FROM sqlite_sequence WHERE name = 'changes';
DROP TABLE changes;
ALTER TABLE changes_v2 RENAME TO changes;
CREATE INDEX changes_by_resource ON changes (kind, resource_id, seq);
CREATE INDEX changes_by_time ON changes (at);
